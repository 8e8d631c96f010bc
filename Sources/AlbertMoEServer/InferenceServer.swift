import AlbertMoE
import Foundation
import Hummingbird
import Synchronization
import Tokenizers

/// An HTTP server for one model directory, with an OpenAI-like JSON API:
///
/// - `POST /v1/completions` (causal models): `{prompt, max_tokens, temperature, top_p, top_k, repetition_penalty,
///   seed, stop, stream}`; with `"stream": true` the answer is server-sent events, one chunk per new piece of text,
///   a last chunk with the finish reason, then `data: [DONE]`.
/// - `POST /v1/embeddings` (any model): `{input: string or [string], encoding_format}`, unit-length mean-pooled
///   vectors, as arrays of numbers (`encoding_format` "float", the default) or as base64 of their little-endian
///   float32 bytes ("base64").
/// - `POST /v1/fill-mask` (masked models): `{text (or inputs), top_k}` →
///   `{model, predictions: [{position, candidates: [{token, token_id, probability}]}]}`, one prediction per mask
///   token of the text, in order, `position` being the mask's index among the text's tokens, candidates best first.
/// - `GET /v1/models`, `GET /health`.
///
/// Errors are `{"error": {"message", "type", "param"}}`: 400 for a bad request (invalid JSON, a field of the wrong
/// type or value, a prompt too long for the model), 404 for an unknown route or an endpoint the model cannot serve,
/// 405 for a known route with another method, 413 for a body over the limit, 500 for a failure of the server.
///
/// Model work runs on a serial worker, one job at a time. The completions in flight are decoded together: each step
/// is one batched forward over all of them (up to `ServerConfiguration.maxBatchSize`), each with its own cache,
/// position and sampling; a new prompt runs on its own when its request comes, and joins the next step.
public final class InferenceServer: Sendable {
    /// The settings the server was made with.
    public let configuration: ServerConfiguration
    /// The model's name in the answers.
    public let modelName: String
    /// What the model can do.
    public var modelKind: ModelKind { served.kind }

    let served: ServedModel
    let worker = ModelWorker()
    /// Decodes the completions in flight together.
    let scheduler: CompletionScheduler
    /// When the model was loaded (Unix time), for /v1/models.
    let created = Int(Date().timeIntervalSince1970)

    private let running = Mutex<(task: Task<Void, Error>?, port: Int?)>((nil, nil))

    /// What loading the model had to say (a model written by the Python package runs differently from there).
    public let notices: [String]

    /// Loads the model in `modelDirectory` (a causal, masked or sentence-encoder model with its tokenizer, this
    /// package's or the Python package's, as `configuration.loadOptions` says).
    public init(modelDirectory: URL, configuration: ServerConfiguration = ServerConfiguration()) throws {
        try configuration.validate()
        self.configuration = configuration
        var notices: [String] = []
        served = try ServedModel(directory: modelDirectory, options: configuration.loadOptions) { notices.append($0) }
        self.notices = notices
        scheduler = CompletionScheduler(worker: worker, maxBatchSize: configuration.maxBatchSize)
        modelName = configuration.modelName ?? modelDirectory.standardizedFileURL.lastPathComponent
    }

    /// The port the server listens on, once started.
    public var port: Int? { running.withLock { $0.port } }

    /// Starts listening in the background and returns the bound port (the free one picked when the configuration's
    /// port is 0). Throws if the address cannot be bound. Stop the server with `stop()` before starting it again.
    @discardableResult
    public func start() async throws -> Int {
        precondition(running.withLock { $0.task == nil }, "InferenceServer.start: the server is already started")
        let listening = OneShot<Int>()
        let app = makeApplication { port in listening.resolve(.success(port)) }
        let task = Task {
            do {
                try await app.run()
                listening.resolve(.failure(APIError(status: 500, message: "the server stopped before listening")))
            } catch {
                listening.resolve(.failure(error))
                throw error
            }
        }
        running.withLock { $0.task = task }
        do {
            return try await listening.value()
        } catch {
            task.cancel()
            throw error
        }
    }

    /// Stops a server started with `start()`, closing its connections, and waits until it is down.
    public func stop() async {
        let task = running.withLock { r -> Task<Void, Error>? in
            defer { r = (nil, nil) }
            return r.task
        }
        task?.cancel()
        _ = await task?.result
    }

    /// Serves until the process receives SIGINT or SIGTERM (then finishes the requests in progress), calling
    /// `onListening` with the host and the bound port once the server listens.
    public func run(onListening: @escaping @Sendable (_ host: String, _ port: Int) -> Void = { _, _ in }) async throws {
        let host = configuration.host
        try await makeApplication { port in onListening(host, port) }.runService()
    }

    /// The Hummingbird application serving the routes, which reports its port to `onListening`.
    /// Each connection is held to the configuration's timeouts and connection limit (see `ConnectionGuard`).
    private func makeApplication(onListening: @escaping @Sendable (Int) -> Void) -> some ApplicationProtocol {
        let limits = ConnectionLimits(configuration)
        return Application(
            router: makeRouter(),
            server: .guardedHTTP1(limits),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port),
                                                    serverName: "albertmoe"),
            onServerRunning: { [weak self] channel in
                let port = channel.localAddress?.port ?? 0
                self?.running.withLock { $0.port = port }
                onListening(port)
            })
    }

    /// The routes with their methods, for telling 405 from 404.
    static let routes: [String: HTTPRequest.Method] = [
        "/health": .get, "/v1/models": .get,
        "/v1/completions": .post, "/v1/embeddings": .post, "/v1/fill-mask": .post,
    ]

    private func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: JSONErrorMiddleware(routes: Self.routes))
        router.get("/health") { _, _ in try jsonResponse(["status": "ok"]) }
        router.get("/v1/models") { _, _ in try self.models() }
        router.post("/v1/completions") { request, _ in try await self.completions(request) }
        router.post("/v1/embeddings") { request, _ in try await self.embeddings(request) }
        router.post("/v1/fill-mask") { request, _ in try await self.fillMask(request) }
        return router
    }

    // MARK: Endpoints

    private func models() throws -> Response {
        try jsonResponse(ModelListBody(data: [.init(id: modelName, created: created)]))
    }

    private func completions(_ request: Request) async throws -> Response {
        guard served.kind == .causal else {
            throw APIError(status: 404, message: "the model \(modelName) is a \(served.kind.summary), which cannot "
                           + "complete text: /v1/completions needs a causal language model")
        }
        let settings = try CompletionRequest(try await readFields(request), maxTokensLimit: configuration.maxTokensLimit)
        let served = self.served
        let generator = try await worker.run { try CompletionGenerator(settings, served: served) }
        let id = "cmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let model = modelName
        @Sendable func body(_ text: String, _ finishReason: String?, usage: Usage?) -> CompletionBody {
            CompletionBody(id: id, created: created, model: model,
                           choices: [.init(text: text, index: 0, finishReason: finishReason)], usage: usage)
        }
        let steps = scheduler.steps(of: generator)
        if settings.stream {
            let events = ResponseBody { writer in
                do {
                    for try await step in steps {
                        if !step.text.isEmpty {
                            try await writer.write(serverSentEvent(try JSONBody.encode(body(step.text, nil, usage: nil))))
                        }
                        if let reason = step.finishReason {
                            try await writer.write(serverSentEvent(try JSONBody.encode(body("", reason, usage: nil))))
                        }
                    }
                } catch {
                    let failure = APIError(status: 500, message: "generation failed: \(error)", type: "server_error")
                    try await writer.write(serverSentEvent(try JSONBody.encode(ErrorBody(failure))))
                }
                try await writer.write(serverSentEvent(Data("[DONE]".utf8)))
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                            body: events)
        }
        var text = "", finishReason: String?, completion = 0
        for try await step in steps {
            text += step.text
            finishReason = step.finishReason
            completion = step.completionTokens
        }
        try Task.checkCancellation()
        let prompt = generator.promptTokens
        let usage = Usage(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)
        return try jsonResponse(body(text, finishReason, usage: usage))
    }

    private func embeddings(_ request: Request) async throws -> Response {
        let settings = try EmbeddingsRequest(try await readFields(request))
        let (inputs, encoding) = (settings.inputs, settings.encoding)
        let encoder = served.encoder
        // Batches of 32 texts, each its own job, so that a long list does not hold up the other requests.
        var vectors: [[Float]] = [], tokens = 0
        for start in stride(from: 0, to: inputs.count, by: 32) {
            let batch = Array(inputs[start ..< min(start + 32, inputs.count)])
            let (batchVectors, batchTokens) = try await worker.run { () throws -> ([[Float]], Int) in
                do {
                    let vectors = try encoder.encode(batch)
                    return (vectors, try Self.embeddingTokenCount(batch, encoder: encoder))
                } catch let error as TokenizerError {
                    throw APIError.invalid("input cannot be tokenized: \(error)", param: "input")
                } catch AlbertMoEError.invalidValue(_, let reason) {
                    throw APIError.invalid(reason, param: "input")
                }
            }
            vectors += batchVectors
            tokens += batchTokens
        }
        let data = vectors.enumerated().map {
            EmbeddingsBody.Item(index: $0.offset, embedding: EmbeddingsBody.Vector($0.element, encoding: encoding))
        }
        return try jsonResponse(EmbeddingsBody(data: data, model: modelName,
                                               usage: Usage(promptTokens: tokens, completionTokens: nil, totalTokens: tokens)))
    }

    /// The tokens `SentenceAlbert.encode` runs for `texts`.
    private static func embeddingTokenCount(_ texts: [String], encoder: SentenceAlbert) throws -> Int {
        try texts.reduce(0) { total, text in total + (try encoder.inputIDs(text).count) }
    }

    private func fillMask(_ request: Request) async throws -> Response {
        guard let model = served.masked else {
            throw APIError(status: 404, message: "the model \(modelName) is a \(served.kind.summary), which cannot "
                           + "fill masks: /v1/fill-mask needs a masked language model")
        }
        let settings = try FillMaskRequest(try await readFields(request))
        let text = settings.text, param = settings.param, topK = settings.topK
        let tokenizer = served.tokenizer
        let fills = try await worker.run { () throws -> [MaskFill] in
            do {
                return try model.fillMask(text, tokenizer: tokenizer, topK: min(topK, model.config.vocabSize))
            } catch AlbertMoEError.invalidValue(_, let reason) {
                throw APIError.invalid(reason, param: param)
            } catch let error as TokenizerError {
                throw APIError.invalid("\(param) cannot be tokenized: \(error)", param: param)
            }
        }
        let predictions = fills.map { fill in
            FillMaskBody.Prediction(position: fill.position, candidates: fill.predictions.map {
                .init(token: $0.token, tokenID: $0.tokenID, probability: $0.probability)
            })
        }
        return try jsonResponse(FillMaskBody(model: modelName, predictions: predictions))
    }

    // MARK: Request bodies

    /// The request's JSON object body, refused with 413 beyond the configured size.
    private func readFields(_ request: Request) async throws -> RequestFields {
        let limit = configuration.maxBodyBytes
        let tooLarge = APIError(status: 413, message: "the request body is larger than the server's limit of \(limit) bytes")
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit { throw tooLarge }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch let error as HTTPResponseError where error.status == .contentTooLarge {
            throw tooLarge
        } catch {
            throw ConnectionFailure(underlying: error)
        }
        return try RequestFields(body: Data(buffer.readableBytesView))
    }
}

/// A failure reading the request from the connection (a malformed or cut HTTP message), left to the HTTP layer.
struct ConnectionFailure: Error {
    let underlying: Error
}

/// Answers every error as JSON: `APIError`s as they are, unknown routes as 404 (405 for a known route with another
/// method), other Hummingbird errors with their status, anything else as 500.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: [String: HTTPRequest.Method]

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try errorResponse(error)
        } catch let error as ConnectionFailure {
            throw error.underlying
        } catch let error as HTTPResponseError where error.status == .notFound {
            let path = request.uri.path
            if let method = routes[path] {
                return try errorResponse(APIError(status: 405, message: "\(path) takes \(method.rawValue), not "
                                                  + "\(request.method.rawValue)"), allow: method)
            }
            return try errorResponse(APIError(status: 404, message: "no route \(request.method.rawValue) \(path)",
                                              type: "not_found_error"))
        } catch let error as HTTPResponseError {
            return try errorResponse(APIError(status: error.status.code, message: error.status.reasonPhrase))
        } catch {
            context.logger.error("request failed: \(error)")
            return try errorResponse(APIError(status: 500, message: "internal server error: \(error)", type: "server_error"))
        }
    }
}

/// A JSON answer.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    Response(status: status, headers: [.contentType: "application/json"],
             body: ResponseBody(byteBuffer: ByteBuffer(bytes: try JSONBody.encode(value))))
}

/// The JSON answer for `error`.
func errorResponse(_ error: APIError, allow: HTTPRequest.Method? = nil) throws -> Response {
    var response = try jsonResponse(ErrorBody(error), status: HTTPResponse.Status(code: error.status))
    if let allow { response.headers[.allow] = allow.rawValue }
    return response
}

/// One server-sent event carrying `data`.
func serverSentEvent(_ data: Data) -> ByteBuffer {
    ByteBuffer(bytes: Data("data: ".utf8) + data + Data("\n\n".utf8))
}

/// A value set once from one task and awaited by another (whichever comes first).
final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(result: Result<Value, Error>?, waiter: CheckedContinuation<Value, Error>?)>((nil, nil))

    /// Sets the value; later calls are ignored.
    func resolve(_ result: Result<Value, Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<Value, Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(with: result)
    }

    /// Waits for the value.
    func value() async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { s -> Result<Value, Error>? in
                if s.result == nil { s.waiter = continuation }
                return s.result
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
