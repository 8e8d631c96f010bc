import AlbertMoE
import AlbertMoECommands
import AlbertMoEServer
import ArgumentParser
import Dispatch
import Foundation
import Synchronization

/// `albertmoe serve`: an HTTP server with an OpenAI-like API (completions, embeddings, mask filling) for one model
/// directory, until SIGINT or SIGTERM.
struct Serve: ParsableCommand {

    static let configuration = CommandConfiguration(
        abstract: "Serve a model over HTTP: /v1/completions, /v1/embeddings, /v1/fill-mask, /v1/models, /health.")

    @Option(help: ArgumentHelp("A model directory written by train-clm or train-mlm, or by the Python package "
                + "(pytorch_model.bin and its tokenizer files, no config.json: the size flags give what its weights do not), "
                + "or a Hugging Face model name (from the cache, or downloaded into it)."))
    var model: String
    @Option(name: .customLong("hub_token"), help: "A Hugging Face token for private or gated models (default: HF_TOKEN).")
    var hubToken: String?
    @Option(help: "The address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "The port to listen on (0: any free port).") var port: Int = 8080
    @Option(name: .customLong("model_name"), help: "The model's name in the API (default: the directory's name).")
    var modelName: String?
    @Option(name: .customLong("max_body_bytes"), help: "Larger request bodies are refused (413).")
    var maxBodyBytes: Int = 1 << 20
    @Option(name: .customLong("max_tokens_limit"), help: "The largest max_tokens a completion may ask for.")
    var maxTokensLimit: Int = 2048
    @Option(name: .customLong("max_batch_size"), help: "The most completions decoded together in one batched step.")
    var maxBatchSize: Int = 64
    @Option(name: .customLong("header_timeout"),
            help: "Seconds a request's head may take once its first bytes arrived (then 408 and the connection closes).")
    var headerTimeout: Double = 10
    @Option(name: .customLong("body_timeout"),
            help: "Seconds a request's body may take once its head arrived (then 408 and the connection closes).")
    var bodyTimeout: Double = 30
    @Option(name: .customLong("idle_timeout"), help: "Seconds a connection may stay open without a request in progress.")
    var idleTimeout: Double = 60
    @Option(name: .customLong("max_connections"), help: "Connections open at once; past it a new one is answered 503 and closed.")
    var maxConnections: Int = 10_000
    @OptionGroup(title: "Model") var sizes: ModelArguments

    func validate() throws {
        guard (0 ... 65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
        guard maxBodyBytes >= 1 else { throw ValidationError("--max_body_bytes must be at least 1, got \(maxBodyBytes)") }
        guard maxTokensLimit >= 1 else {
            throw ValidationError("--max_tokens_limit must be at least 1, got \(maxTokensLimit)")
        }
        guard maxBatchSize >= 1 else { throw ValidationError("--max_batch_size must be at least 1, got \(maxBatchSize)") }
        if let modelName, modelName.isEmpty { throw ValidationError("--model_name must not be empty") }
        for (value, flag) in [(headerTimeout, "header_timeout"), (bodyTimeout, "body_timeout"), (idleTimeout, "idle_timeout")] {
            guard value > 0 && value <= 86_400 else {
                throw ValidationError("--\(flag) must be more than 0 and at most 86400 seconds, got \(value)")
            }
        }
        guard maxConnections >= 1 else { throw ValidationError("--max_connections must be at least 1, got \(maxConnections)") }
    }

    func run() throws {
        // Each connection takes a descriptor: the soft limit (often 1024) would stop the server long before its own.
        var connections = maxConnections
        if let descriptors = OpenFileLimit.raiseToHardLimit(), descriptors - 64 < connections {
            connections = max(descriptors - 64, 1)
            FileHandle.standardError.write(Data(("--max_connections \(maxConnections): the process may open \(descriptors) files; "
                                                 + "serving at most \(connections) connections\n").utf8))
        }
        // Up to --max_batch_size completions decode together, each prompt and its new tokens filling at most the
        // model's positions.
        let workload = ModelWorkload.generation(sequences: maxBatchSize, tokens: .max, tokensField: "max_position_embeddings")
        let configuration = ServerConfiguration(host: host, port: port, maxBodyBytes: maxBodyBytes,
                                                maxTokensLimit: maxTokensLimit, maxBatchSize: maxBatchSize, modelName: modelName,
                                                loadOptions: sizes.loadOptions(for: workload),
                                                headerTimeout: .seconds(headerTimeout), bodyTimeout: .seconds(bodyTimeout),
                                                idleTimeout: .seconds(idleTimeout), maxConnections: connections)
        let directory = try HubNames(token: hubToken).modelDirectory(model, flag: "model")
        let server: InferenceServer
        do { server = try InferenceServer(modelDirectory: directory, configuration: configuration) } catch {
            throw ValidationError("--model \(model): \(error)")
        }
        server.notices.forEach { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        let (kind, name, address) = (server.modelKind, server.modelName, "\(host):\(port)")
        try waitFor {
            let listening = Flag()
            do {
                try await server.run { host, port in
                    listening.set()
                    print("Serving \(name) (\(kind.summary)) on http://\(host):\(port)")
                    fflush(nil)
                }
            } catch where !listening.isSet {
                throw AlbertMoEError.cannotContinue("cannot listen on \(address): \(error)")
            }
        }
    }
}

/// Whether something happened, noted from any thread.
private final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

/// Runs `body` in a task and blocks the calling thread until it ends, returning its result: the command line's entry
/// point is synchronous.
func waitFor<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Mutex<Result<T, Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let result: Result<T, Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        outcome.withLock { $0 = result }
        done.signal()
    }
    done.wait()
    return try outcome.withLock { $0! }.get()
}
