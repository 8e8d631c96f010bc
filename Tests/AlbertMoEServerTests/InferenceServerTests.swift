import AlbertMoE
@testable import AlbertMoEServer
import Foundation
import Synchronization
import Tokenizers
import XCTest

/// Two servers on free local ports, one for a tiny causal model and one for a tiny masked model, saved to a
/// temporary directory; the tests talk to them over real sockets.
final class ServerFixture {
    let directory: URL
    let causalDirectory: URL
    let maskedDirectory: URL
    let causal: InferenceServer
    let masked: InferenceServer
    let causalPort: Int
    let maskedPort: Int
    /// The causal model and tokenizer as loaded from disk, to compare the server's answers with.
    let causalModel: AlbertForCausalLM
    let causalTokenizer: Tokenizer

    static let maxBodyBytes = 4096
    static let maxTokensLimit = 40

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-server-\(UUID().uuidString)")
        causalDirectory = directory.appendingPathComponent("tiny-clm")
        maskedDirectory = directory.appendingPathComponent("tiny-mlm")
        let texts = ["the cat sat on the mat", "the dog sat on the rug", "a cat and a dog met in the tall grass",
                     "the bird sang a long song in the tree", "café crème brûlée — naïve façade", "dogs and cats"]

        let bpe = try ByteLevelBPETrainer(options: TrainerOptions(vocabSize: 300, minFrequency: 1,
                                                                  specialTokens: ["<pad>", "<|endoftext|>"]))
            .train(texts: texts)
        try bpe.declareSpecialTokens([.pad: "<pad>", .eos: "<|endoftext|>"])
        let clm = AlbertForCausalLM(Self.config(vocabSize: bpe.vocabSize), seed: 3)   // a seed with varied output
        try clm.save(to: causalDirectory)
        try bpe.saveFiles(to: causalDirectory)

        let wordPiece = try WordPieceTrainer(options: TrainerOptions(
            vocabSize: 80, minFrequency: 1, specialTokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
            .train(texts: texts)
        try wordPiece.declareSpecialTokens([.pad: "[PAD]", .mask: "[MASK]"])
        let mlm = AlbertForMaskedLM(Self.config(vocabSize: wordPiece.vocabSize), seed: 5)
        try mlm.save(to: maskedDirectory)
        try wordPiece.saveFiles(to: maskedDirectory)

        let settings = ServerConfiguration(host: "127.0.0.1", port: 0, maxBodyBytes: Self.maxBodyBytes,
                                           maxTokensLimit: Self.maxTokensLimit)
        causal = try InferenceServer(modelDirectory: causalDirectory, configuration: settings)
        var maskedSettings = settings
        maskedSettings.modelName = "tiny-masked"
        masked = try InferenceServer(modelDirectory: maskedDirectory, configuration: maskedSettings)
        let (causal, masked) = (causal, masked)
        (causalPort, maskedPort) = try blocking { (try await causal.start(), try await masked.start()) }

        causalModel = try AlbertForCausalLM.load(from: causalDirectory)
        causalModel.eval()
        causalTokenizer = try Tokenizer.load(from: causalDirectory)
    }

    /// A tiny model with dropout on in training mode, so that a server that left evaluation mode would be caught.
    static func config(vocabSize: Int) -> AlbertMoEConfig {
        AlbertMoEConfig(vocabSize: vocabSize, embeddingSize: 8, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                        intermediateSize: 24, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1,
                        maxPositionEmbeddings: 64, numExperts: 4, topKExperts: 2)
    }

    func stop() {
        let (causal, masked) = (causal, masked)
        try? blocking {
            await causal.stop()
            await masked.stop()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Runs async work from a synchronous test, blocking the calling thread (never a Swift concurrency thread).
func blocking<T>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Failures noted from several threads.
final class Failures: Sendable {
    private let failures = Mutex<[String]>([])
    var list: [String] { failures.withLock { $0 } }

    func check(_ ok: Bool, _ what: String) {
        if !ok { failures.withLock { $0.append(what) } }
    }
}

/// Carries a task's result to the thread that waits for it.
/// Unchecked Sendable: written by the task before it signals, read by the waiter after.
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}

final class InferenceServerTests: XCTestCase {
    nonisolated(unsafe) static var fixture: Result<ServerFixture, Error>?

    /// The servers, started once for all the tests.
    var f: ServerFixture!

    override func setUpWithError() throws {
        if Self.fixture == nil { Self.fixture = Result { try ServerFixture() } }
        f = try Self.fixture!.get()
    }

    override class func tearDown() {
        if case .success(let fixture) = fixture { fixture.stop() }
        fixture = nil
        super.tearDown()
    }

    // MARK: Helpers

    /// POSTs to the causal server and checks the status.
    func post(_ path: String, _ json: String, port: Int? = nil, status: Int = 200,
              file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let answer = try RawHTTPClient.post(port: port ?? f.causalPort, path, json)
        XCTAssertEqual(answer.status, status, answer.text, file: file, line: line)
        XCTAssertEqual(answer.headers["content-type"], "application/json", file: file, line: line)
        return try answer.json()
    }

    /// The text and finish reason of a non-streamed completion.
    func complete(_ json: String) throws -> (text: String, finishReason: String, usage: [String: Int]) {
        let body = try post("/v1/completions", json)
        let choice = try XCTUnwrap((body["choices"] as? [[String: Any]])?.first)
        return (try XCTUnwrap(choice["text"] as? String), try XCTUnwrap(choice["finish_reason"] as? String),
                try XCTUnwrap(body["usage"] as? [String: Int]))
    }

    /// The text pieces and finish reason of a streamed completion, checking the event stream's shape.
    func stream(_ json: String, file: StaticString = #filePath, line: UInt = #line) throws
        -> (pieces: [String], finishReason: String) {
        let answer = try RawHTTPClient.post(port: f.causalPort, "/v1/completions", json)
        XCTAssertEqual(answer.status, 200, answer.text, file: file, line: line)
        XCTAssertEqual(answer.headers["content-type"], "text/event-stream", file: file, line: line)
        let events = answer.events
        XCTAssertEqual(events.last, "[DONE]", file: file, line: line)
        XCTAssertEqual(events.filter { $0 == "[DONE]" }.count, 1, file: file, line: line)
        var pieces: [String] = [], finishReasons: [String] = [], ids = Set<String>()
        for event in events.dropLast() {
            let chunk = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
            XCTAssertEqual(chunk["object"] as? String, "text_completion", file: file, line: line)
            ids.insert(try XCTUnwrap(chunk["id"] as? String))
            let choice = try XCTUnwrap((chunk["choices"] as? [[String: Any]])?.first)
            if let reason = choice["finish_reason"] as? String {
                finishReasons.append(reason)
            } else {
                XCTAssertTrue(choice["finish_reason"] is NSNull, file: file, line: line)
                pieces.append(try XCTUnwrap(choice["text"] as? String))
            }
        }
        XCTAssertEqual(ids.count, 1, "one id for all the chunks", file: file, line: line)
        XCTAssertEqual(finishReasons.count, 1, "one last chunk with the finish reason", file: file, line: line)
        return (pieces, finishReasons.first ?? "")
    }

    /// The greedy continuation of `prompt` computed with the model directly, decoded as the server decodes it.
    func greedyAlone(_ prompt: String, maxTokens: Int) throws -> String {
        let ids = try f.causalTokenizer.encode(prompt, addSpecialTokens: false).ids.map { Int32($0) }
        let eos = Int32(try XCTUnwrap(f.causalTokenizer.tokenToId("<|endoftext|>")))
        let tokens = try f.causalModel.generate(ids, options: .greedy(maxNewTokens: maxTokens, stopTokens: [eos]))
        return try f.causalTokenizer.decode(tokens.filter { $0 != eos }.map { Int($0) })
    }

    func errorOf(_ body: [String: Any]) throws -> (message: String, type: String, param: String?) {
        let error = try XCTUnwrap(body["error"] as? [String: Any], "\(body)")
        XCTAssertTrue(error.keys.contains("param"), "param is always present (null when no field is at fault)")
        return (try XCTUnwrap(error["message"] as? String), try XCTUnwrap(error["type"] as? String), error["param"] as? String)
    }

    // MARK: Tests

    func testHealthAndModels() throws {
        let health = try RawHTTPClient.request(port: f.causalPort, "GET", "/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(try health.json() as? [String: String], ["status": "ok"])

        let models = try RawHTTPClient.request(port: f.causalPort, "GET", "/v1/models")
        XCTAssertEqual(models.status, 200)
        let body = try models.json()
        XCTAssertEqual(body["object"] as? String, "list")
        let data = try XCTUnwrap(body["data"] as? [[String: Any]])
        XCTAssertEqual(data.count, 1)
        XCTAssertEqual(data[0]["id"] as? String, "tiny-clm", "the directory's name")
        XCTAssertEqual(data[0]["object"] as? String, "model")
        XCTAssertEqual(data[0]["owned_by"] as? String, "albertmoe")
        XCTAssertGreaterThan(try XCTUnwrap(data[0]["created"] as? Int), 1_600_000_000)

        let masked = try RawHTTPClient.request(port: f.maskedPort, "GET", "/v1/models").json()
        XCTAssertEqual((masked["data"] as? [[String: Any]])?.first?["id"] as? String, "tiny-masked", "--model_name")
        XCTAssertEqual(f.causal.port, f.causalPort)
        XCTAssertEqual(f.causal.modelKind, .causal)
        XCTAssertEqual(f.masked.modelKind, .masked)
    }

    func testGreedyCompletionIsTheModelsOwnAndDeterministic() throws {
        let body = try post("/v1/completions", #"{"model": "tiny-clm", "prompt": "the cat", "max_tokens": 12, "temperature": 0}"#)
        XCTAssertTrue(try XCTUnwrap(body["id"] as? String).hasPrefix("cmpl-"))
        XCTAssertEqual(body["object"] as? String, "text_completion")
        XCTAssertEqual(body["model"] as? String, "tiny-clm")
        XCTAssertNotNil(body["created"] as? Int)
        let choice = try XCTUnwrap((body["choices"] as? [[String: Any]])?.first)
        XCTAssertEqual(choice["index"] as? Int, 0)
        XCTAssertTrue(choice["logprobs"] is NSNull)
        let text = try XCTUnwrap(choice["text"] as? String)
        XCTAssertEqual(text, try greedyAlone("the cat", maxTokens: 12))
        let usage = try XCTUnwrap(body["usage"] as? [String: Int])
        let promptTokens = try f.causalTokenizer.encode("the cat", addSpecialTokens: false).ids.count
        XCTAssertEqual(usage["prompt_tokens"], promptTokens)
        XCTAssertEqual(usage["total_tokens"], promptTokens + (usage["completion_tokens"] ?? -1))
        if choice["finish_reason"] as? String == "length" { XCTAssertEqual(usage["completion_tokens"], 12) }

        // The same again, whatever the seed; the array form of the prompt is the same prompt.
        let again = try complete(#"{"prompt": ["the cat"], "max_tokens": 12, "temperature": 0, "seed": 99}"#)
        XCTAssertEqual(again.text, text)
    }

    func testSeededSamplingIsReproducible() throws {
        let request = #"{"prompt": "a dog", "max_tokens": 10, "temperature": 1.3, "top_p": 0.95, "top_k": 40, "#
            + #""repetition_penalty": 1.1, "seed": 1234}"#
        let first = try complete(request), second = try complete(request)
        XCTAssertEqual(first.text, second.text)
        // Without a seed each request draws its own: over a few requests they are not all the same.
        let texts = try (0 ..< 4).map { _ in try complete(#"{"prompt": "a dog", "max_tokens": 10, "temperature": 5}"#).text }
        XCTAssertGreaterThan(Set(texts).count, 1, "\(texts)")
    }

    func testStreamingGivesTheSameTextAsOneAnswer() throws {
        for settings in [#""temperature": 0"#, #""temperature": 1, "seed": 42"#] {
            let whole = try complete(#"{"prompt": "the dog", "max_tokens": 14, \#(settings)}"#)
            let streamed = try stream(#"{"prompt": "the dog", "max_tokens": 14, "stream": true, \#(settings)}"#)
            XCTAssertEqual(streamed.pieces.joined(), whole.text, settings)
            XCTAssertEqual(streamed.finishReason, whole.finishReason, settings)
            XCTAssertFalse(streamed.pieces.contains(""), "no empty chunks before the last")
            if whole.finishReason == "length" { XCTAssertGreaterThan(streamed.pieces.count, 1, "one chunk per token") }
        }
    }

    func testStopStringsCutTheText() throws {
        let prompt = "the cat"
        let full = try complete(#"{"prompt": "\#(prompt)", "max_tokens": 20, "temperature": 0}"#).text
        // A stop string from inside the text (two ASCII letters first seen there): the answer is the text before it.
        let scalars = Array(full.unicodeScalars)
        let letters = CharacterSet.letters
        let start = try XCTUnwrap((1 ..< max(scalars.count - 1, 1)).first { i in
            scalars[i].isASCII && scalars[i + 1].isASCII && letters.contains(scalars[i]) && letters.contains(scalars[i + 1])
                && full.firstRange(of: String(String.UnicodeScalarView(scalars[i ... i + 1])))?.lowerBound
                == full.unicodeScalars.index(full.startIndex, offsetBy: i)
        }, "the tiny model's completion has letters to cut at: \(full.debugDescription)")
        let stop = String(String.UnicodeScalarView(scalars[start ... start + 1]))
        let expected = String(String.UnicodeScalarView(scalars[..<start]))
        XCTAssertFalse(expected.isEmpty)
        let stops = #"["\#(stop)", "never appears ~~~"]"#
        let cut = try complete(#"{"prompt": "\#(prompt)", "max_tokens": 20, "temperature": 0, "stop": \#(stops)}"#)
        XCTAssertEqual(cut.text, expected, "stop \(stop) in \(full.debugDescription)")
        XCTAssertEqual(cut.finishReason, "stop")
        XCTAssertLessThan(cut.usage["completion_tokens"] ?? 99, 20, "generation ends at the stop string")
        let streamed = try stream(#"{"prompt": "\#(prompt)", "max_tokens": 20, "temperature": 0, "stream": true, "stop": \#(stops)}"#)
        XCTAssertEqual(streamed.pieces.joined(), expected, "no piece of the stop string is streamed")
        XCTAssertEqual(streamed.finishReason, "stop")
        // A single stop string works too; one that never appears changes nothing.
        let single = try complete(#"{"prompt": "\#(prompt)", "max_tokens": 20, "temperature": 0, "stop": "~~~"}"#)
        XCTAssertEqual(single.text, full)
        XCTAssertEqual(single.finishReason, "length")
    }

    func testCompletionText() {
        var text = CompletionText(stops: ["END"])
        XCTAssertEqual(text.update("ab").piece, "ab")
        XCTAssertEqual(text.update("abE").piece, "", "held back: could start END")
        XCTAssertEqual(text.update("abEx").piece, "Ex")
        XCTAssertEqual(text.update("abEx\u{FFFD}").piece, "", "held back: an incomplete character")
        XCTAssertEqual(text.update("abExé").piece, "é")
        XCTAssertEqual(text.update("abExée\u{301}").piece, "e\u{301}", "a combining mark is not lost")
        let last = text.update("abExée\u{301}zENDmore")
        XCTAssertEqual(last.piece, "z")
        XCTAssertTrue(last.stopped)
        XCTAssertEqual(text.sent, "abExée\u{301}z")
        var plain = CompletionText(stops: [])
        XCTAssertEqual(plain.update("x\u{FFFD}").piece, "x")
        XCTAssertEqual(plain.finish("x\u{FFFD}"), "\u{FFFD}", "the end sends what is left")
    }

    func testEmbeddings() throws {
        let texts = ["the cat sat on the mat", "a dog", "", "café crème"]
        let list = try post("/v1/embeddings", String(decoding: try JSONSerialization.data(withJSONObject: ["input": texts]),
                                                     as: UTF8.self))
        XCTAssertEqual(list["object"] as? String, "list")
        XCTAssertEqual(list["model"] as? String, "tiny-clm")
        let data = try XCTUnwrap(list["data"] as? [[String: Any]])
        XCTAssertEqual(data.map { $0["index"] as? Int }, [0, 1, 2, 3])
        XCTAssertEqual(Set(data.map { $0["object"] as? String }), ["embedding"])
        let vectors = try data.map { try XCTUnwrap(($0["embedding"] as? [NSNumber])?.map(\.floatValue)) }
        for (text, vector) in zip(texts, vectors) {
            XCTAssertEqual(vector.count, 16)
            // The empty text gives no token with this tokenizer (no special tokens): the mean over nothing is zero.
            XCTAssertEqual(sqrt(vector.map { $0 * $0 }.reduce(0, +)), text.isEmpty ? 0 : 1, accuracy: 1e-4)
        }
        XCTAssertNotEqual(vectors[0], vectors[1])
        // Each text alone (a plain string) gives the vector it got in the list, in the same place.
        for (i, text) in texts.enumerated() {
            let json = String(decoding: try JSONSerialization.data(withJSONObject: ["input": text]), as: UTF8.self)
            let alone = try post("/v1/embeddings", json)
            let vector = try XCTUnwrap(((alone["data"] as? [[String: Any]])?.first?["embedding"] as? [NSNumber])?.map(\.floatValue))
            XCTAssertLessThan(zip(vector, vectors[i]).map { abs($0 - $1) }.max()!, 1e-5, text)
        }
        let usage = try XCTUnwrap(list["usage"] as? [String: Int])
        XCTAssertGreaterThan(usage["prompt_tokens"] ?? 0, texts.count)
        XCTAssertEqual(usage["total_tokens"], usage["prompt_tokens"])
        // The masked model embeds too.
        let masked = try post("/v1/embeddings", #"{"input": "a cat"}"#, port: f.maskedPort)
        XCTAssertEqual((masked["data"] as? [[String: Any]])?.count, 1)
    }

    /// `encoding_format: "base64"` gives each vector as base64 of its little-endian float32 bytes, the same vector
    /// as "float" (the default) gives; another value is a 400 naming the field.
    func testEmbeddingsInBase64() throws {
        let input = #""input": ["the cat sat on the mat", "a dog", ""]"#
        let floats = try post("/v1/embeddings", "{\(input)}")["data"] as? [[String: Any]]
        let expected = try XCTUnwrap(floats).map { try XCTUnwrap(($0["embedding"] as? [NSNumber])?.map(\.floatValue)) }
        let explicit = try post("/v1/embeddings", #"{\#(input), "encoding_format": "float"}"#)["data"] as? [[String: Any]]
        XCTAssertEqual(try XCTUnwrap(explicit).map { ($0["embedding"] as? [NSNumber])?.map(\.floatValue) }, expected)
        let encoded = try XCTUnwrap(try post("/v1/embeddings", #"{\#(input), "encoding_format": "base64"}"#)["data"] as? [[String: Any]])
        XCTAssertEqual(encoded.map { $0["index"] as? Int }, [0, 1, 2])
        for (item, vector) in zip(encoded, expected) {
            let bytes = try XCTUnwrap(Data(base64Encoded: try XCTUnwrap(item["embedding"] as? String)))
            XCTAssertEqual(bytes.count, 4 * vector.count)
            let decoded = stride(from: 0, to: bytes.count, by: 4).map { i in
                Float(bitPattern: bytes[i ..< i + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            }
            XCTAssertEqual(decoded, vector)
        }
        for bad in [#""binary""#, "1", #""Base64""#] {
            let body = try post("/v1/embeddings", #"{"input": "a", "encoding_format": \#(bad)}"#, status: 400)
            let error = try errorOf(body)
            XCTAssertEqual(error.param, "encoding_format")
            XCTAssertTrue(error.message.contains("encoding_format"), error.message)
        }
    }

    func testFillMask() throws {
        let body = try post("/v1/fill-mask", #"{"text": "the [MASK] sat on the [MASK]", "top_k": 3}"#, port: f.maskedPort)
        XCTAssertEqual(body["model"] as? String, "tiny-masked")
        let predictions = try XCTUnwrap(body["predictions"] as? [[String: Any]])
        XCTAssertEqual(predictions.map { $0["position"] as? Int }, [2, 6])
        for prediction in predictions {
            let candidates = try XCTUnwrap(prediction["candidates"] as? [[String: Any]])
            XCTAssertEqual(candidates.count, 3)
            let probabilities = candidates.map { ($0["probability"] as? NSNumber)?.floatValue ?? -1 }
            XCTAssertEqual(probabilities, probabilities.sorted(by: >))
            XCTAssertTrue(probabilities.allSatisfy { $0 > 0 && $0 <= 1 })
            XCTAssertNotNil(candidates[0]["token"] as? String)
            XCTAssertNotNil(candidates[0]["token_id"] as? Int)
        }
        let inputs = try post("/v1/fill-mask", #"{"inputs": "a [MASK] and a dog"}"#, port: f.maskedPort)
        let first = try XCTUnwrap((inputs["predictions"] as? [[String: Any]])?.first)
        XCTAssertEqual((first["candidates"] as? [Any])?.count, 5, "top_k defaults to 5")

        let noMask = try errorOf(try post("/v1/fill-mask", #"{"text": "no mask here"}"#, port: f.maskedPort, status: 400))
        XCTAssertTrue(noMask.message.contains("[MASK]"), noMask.message)
        XCTAssertEqual(noMask.param, "text")
        let badK = try errorOf(try post("/v1/fill-mask", #"{"text": "a [MASK]", "top_k": 0}"#, port: f.maskedPort, status: 400))
        XCTAssertEqual(badK.param, "top_k")
    }

    func testMalformedRequestsAreAnsweredWithJSONErrors() throws {
        // (body, expected param or nil, words the message must hold)
        let cases: [(String, String?, String)] = [
            (#"{"prompt": "the cat", "max_tokens": 5"#, nil, "not valid JSON"),              // cut short
            (#"not json at all"#, nil, "not valid JSON"),
            (#""#, nil, "not valid JSON"),
            (#"["the cat"]"#, nil, "JSON object"),
            (#"{"max_tokens": 5}"#, "prompt", "prompt is required"),
            (#"{"prompt": ""}"#, "prompt", "prompt must not be empty"),
            (#"{"prompt": 42}"#, "prompt", "prompt must be a string"),
            (#"{"prompt": ["a", "b"]}"#, "prompt", "one string"),
            (#"{"prompt": [1]}"#, "prompt", "prompt[0] must be a string"),
            (#"{"prompt": "the cat", "max_tokens": "many"}"#, "max_tokens", "max_tokens must be an integer"),
            (#"{"prompt": "the cat", "max_tokens": 2.5}"#, "max_tokens", "max_tokens must be an integer"),
            (#"{"prompt": "the cat", "max_tokens": -3}"#, "max_tokens", "max_tokens must be at least 1"),
            (#"{"prompt": "the cat", "max_tokens": 0}"#, "max_tokens", "max_tokens must be at least 1"),
            (#"{"prompt": "the cat", "max_tokens": 41}"#, "max_tokens", "at most 40"),
            (#"{"prompt": "the cat", "temperature": "hot"}"#, "temperature", "temperature must be a number"),
            (#"{"prompt": "the cat", "temperature": -0.5}"#, "temperature", "temperature must be >= 0"),
            (#"{"prompt": "the cat", "top_p": 1.5}"#, "top_p", "top_p must be in (0, 1]"),
            (#"{"prompt": "the cat", "top_k": -1}"#, "top_k", "top_k must be >= 0"),
            (#"{"prompt": "the cat", "repetition_penalty": 0}"#, "repetition_penalty", "repetition_penalty must be > 0"),
            (#"{"prompt": "the cat", "seed": -1}"#, "seed", "seed must be >= 0"),
            (#"{"prompt": "the cat", "seed": "x"}"#, "seed", "seed must be an integer"),
            (#"{"prompt": "the cat", "stream": "yes"}"#, "stream", "stream must be a boolean"),
            (#"{"prompt": "the cat", "stop": 3}"#, "stop", "stop must be a string or an array of strings"),
            (#"{"prompt": "the cat", "stop": [""]}"#, "stop", "must not be empty"),
            (#"{"prompt": "the cat", "n": 2}"#, "n", "n must be 1"),
            (#"{"prompt": "the cat", "logprobs": 2}"#, "logprobs", "not supported"),
            (#"{"prompt": "\#(String(repeating: "the cat sat on the mat ", count: 8))", "max_tokens": 30}"#,
             "prompt", "context of 64 tokens"),
        ]
        for (json, param, words) in cases {
            let body = try post("/v1/completions", json, status: 400)
            let error = try errorOf(body)
            XCTAssertEqual(error.type, "invalid_request_error", json)
            XCTAssertEqual(error.param, param, json)
            XCTAssertTrue(error.message.contains(words), "\(json): \(error.message)")
        }
        let embeddingCases: [(String, String?, String)] = [
            (#"{}"#, "input", "input is required"),
            (#"{"input": []}"#, "input", "must not be an empty array"),
            (#"{"input": ["a", 2]}"#, "input", "input[1] must be a string"),
            (#"{"input": {"text": "a"}}"#, "input", "input must be a string or an array of strings"),
        ]
        for (json, param, words) in embeddingCases {
            let error = try errorOf(try post("/v1/embeddings", json, status: 400))
            XCTAssertEqual(error.param, param, json)
            XCTAssertTrue(error.message.contains(words), "\(json): \(error.message)")
        }
    }

    func testBodiesOverTheLimitAre413() throws {
        let big = #"{"input": ""# + String(repeating: "a", count: ServerFixture.maxBodyBytes) + #""}"#
        let error = try errorOf(try post("/v1/embeddings", big, status: 413))
        XCTAssertTrue(error.message.contains("\(ServerFixture.maxBodyBytes) bytes"), error.message)
        // Without a Content-Length (chunked), the limit holds as the body is read.
        var raw = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _ in 0 ..< 10 { raw += "200\r\n" + String(repeating: "b", count: 512) + "\r\n" }
        raw += "0\r\n\r\n"
        let chunked = try XCTUnwrap(try RawHTTPClient.exchange(port: f.causalPort, Data(raw.utf8)))
        XCTAssertEqual(chunked.status, 413)
        XCTAssertNotNil(try chunked.json()["error"])
    }

    func testEndpointsTheModelCannotServe() throws {
        let completion = try errorOf(try post("/v1/completions", #"{"prompt": "the cat"}"#, port: f.maskedPort, status: 404))
        XCTAssertTrue(completion.message.contains("causal"), completion.message)
        let fill = try errorOf(try post("/v1/fill-mask", #"{"text": "the [MASK]"}"#, status: 404))
        XCTAssertTrue(fill.message.contains("masked"), fill.message)
    }

    func testUnknownRoutesAndMethods() throws {
        let unknown = try RawHTTPClient.request(port: f.causalPort, "GET", "/v1/nothing")
        XCTAssertEqual(unknown.status, 404)
        XCTAssertTrue(try errorOf(try unknown.json()).message.contains("/v1/nothing"))
        let wrongMethod = try RawHTTPClient.request(port: f.causalPort, "GET", "/v1/completions")
        XCTAssertEqual(wrongMethod.status, 405)
        XCTAssertEqual(wrongMethod.headers["allow"], "POST")
        XCTAssertTrue(try errorOf(try wrongMethod.json()).message.contains("POST"))
        let postHealth = try RawHTTPClient.request(port: f.causalPort, "POST", "/health", body: Data("{}".utf8))
        XCTAssertEqual(postHealth.status, 405)
    }

    func testBrokenConnectionsLeaveTheServerServing() throws {
        // A body cut short (the client stops sending before Content-Length bytes).
        let cut = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\": \"the"
        if let answer = try RawHTTPClient.exchange(port: f.causalPort, Data(cut.utf8), closeWriting: true, timeout: 10) {
            XCTAssertEqual(answer.status, 400)
        }
        // Not HTTP at all.
        if let answer = try RawHTTPClient.exchange(port: f.causalPort, Data("\u{1}\u{2} garbage\r\n\r\n".utf8),
                                                   closeWriting: true, timeout: 10) {
            XCTAssertEqual(answer.status, 400)
        }
        // Clients that hang up as soon as the answer starts, streamed or not.
        for stream in [true, false] {
            let json = #"{"prompt": "the cat", "max_tokens": 40, "stream": \#(stream)}"#
            let request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(json.utf8.count)\r\n\r\n" + json
            try RawHTTPClient.hangUpEarly(port: f.causalPort, Data(request.utf8))
        }
        XCTAssertEqual(try RawHTTPClient.request(port: f.causalPort, "GET", "/health").status, 200)
        XCTAssertEqual(try complete(#"{"prompt": "the cat", "max_tokens": 3, "temperature": 0}"#).text,
                       try greedyAlone("the cat", maxTokens: 3))
    }

    func testConcurrentRequestsAreAnsweredEachAsAlone() throws {
        let prompts = ["the cat", "a dog", "the bird sang", "dogs and"]
        let alone = try prompts.map { try greedyAlone($0, maxTokens: 20) }
        XCTAssertEqual(Set(alone).count, prompts.count, "the prompts have different continuations, so a mix-up shows: \(alone)")
        let embedJSON = #"{"input": ["the cat sat", "a dog"]}"#
        let embeddingAlone = try post("/v1/embeddings", embedJSON)["data"] as? [[String: Any]]
        let expectedVectors = try XCTUnwrap(embeddingAlone).map { ($0["embedding"] as? [NSNumber])?.map(\.floatValue) }

        // 8 requests at once: 4 streamed greedy completions, 2 whole ones, 1 embedding, 1 health check.
        let failures = Failures()
        let check = failures.check
        var jobs: [() throws -> Void] = prompts.enumerated().map { i, prompt in {
            let pieces = try self.stream(#"{"prompt": "\#(prompt)", "max_tokens": 20, "temperature": 0, "stream": true}"#).pieces
            check(pieces.joined() == alone[i], "stream \(i): \(pieces.joined()) != \(alone[i])")
        } }
        jobs += prompts.prefix(2).enumerated().map { i, prompt in {
            let text = try self.complete(#"{"prompt": "\#(prompt)", "max_tokens": 20, "temperature": 0}"#).text
            check(text == alone[i], "completion \(i): \(text) != \(alone[i])")
        } }
        jobs.append {
            let data = try self.post("/v1/embeddings", embedJSON)["data"] as? [[String: Any]]
            let vectors = (data ?? []).map { ($0["embedding"] as? [NSNumber])?.map(\.floatValue) }
            check(vectors == expectedVectors, "embeddings differ")
        }
        jobs.append {
            let status = try RawHTTPClient.request(port: self.f.causalPort, "GET", "/health").status
            check(status == 200, "health: \(status)")
        }
        XCTAssertEqual(jobs.count, 8)
        let group = DispatchGroup()
        for (i, job) in jobs.enumerated() {
            group.enter()
            // Unchecked: each job runs on a thread of its own; they share only the locked `failures`.
            nonisolated(unsafe) let job = job
            Thread {
                do { try job() } catch { check(false, "request \(i): \(error)") }
                group.leave()
            }.start()
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(failures.list, [])
    }

    /// Continuous batching: 14 requests at once (greedy and seeded sampling, different prompts and lengths, streamed
    /// and whole, on a server that decodes at most 4 together) get the answers the same requests get one at a time,
    /// while other clients hang up mid-answer; the steps did batch, up to the cap, and every completion leaves.
    func testConcurrentCompletionsAreBatchedAndAnswerAsAlone() throws {
        var settings = ServerConfiguration(host: "127.0.0.1", port: 0, maxTokensLimit: 40, maxBatchSize: 4)
        settings.modelName = "batched"
        let server = try InferenceServer(modelDirectory: f.causalDirectory, configuration: settings)
        let port = try blocking { try await server.start() }
        defer { try? blocking { await server.stop() } }
        let prompts = ["the cat", "a dog", "the bird sang", "dogs and", "café", "the tall grass", "a"]
        let requests = prompts.enumerated().flatMap { i, prompt in
            [#"{"prompt": "\#(prompt)", "max_tokens": \#(6 + 3 * i), "temperature": 0, "stream": \#(i % 2 == 0)}"#,
             #"{"prompt": "\#(prompt)", "max_tokens": \#(20 - 2 * i), "temperature": 1.2, "top_k": 20, "seed": \#(i), "stream": \#(i % 3 == 0)}"#]
        }
        @Sendable func answer(_ json: String) throws -> String {
            let answer = try RawHTTPClient.post(port: port, "/v1/completions", json)
            guard answer.status == 200 else { return "status \(answer.status): \(answer.text)" }
            if answer.headers["content-type"] == "text/event-stream" { return answer.events.joined(separator: "|") }
            let choice = (try answer.json()["choices"] as? [[String: Any]])?.first
            return "\(choice?["text"] ?? "none") \(choice?["finish_reason"] ?? "none")"
        }
        // Ids and creation times differ from answer to answer: compare what is left.
        @Sendable func content(_ answer: String) -> String {
            answer.replacing(/"id":"cmpl-[0-9a-f]+"/, with: "").replacing(/"created":[0-9]+/, with: "")
        }
        let alone = try requests.map { content(try answer($0)) }
        XCTAssertEqual(server.scheduler.largestBatch, 1)

        let failures = Failures()
        let check = failures.check
        let group = DispatchGroup()
        for (i, request) in requests.enumerated() {
            group.enter()
            Thread {
                do { check(content(try answer(request)) == alone[i], "request \(i): \(request)") } catch {
                    check(false, "request \(i): \(error)")
                }
                group.leave()
            }.start()
        }
        for i in 0..<3 {
            let json = #"{"prompt": "the cat", "max_tokens": 40, "temperature": 1, "stream": \#(i != 1)}"#
            let raw = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: \(json.utf8.count)\r\n\r\n" + json
            try RawHTTPClient.hangUpEarly(port: port, Data(raw.utf8))
        }
        XCTAssertEqual(group.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(failures.list, [])
        XCTAssertGreaterThan(server.scheduler.largestBatch, 1, "the requests were decoded together")
        XCTAssertLessThanOrEqual(server.scheduler.largestBatch, 4, "at most maxBatchSize at once")
        let deadline = Date().addingTimeInterval(10)
        while server.scheduler.activeCount > 0 && Date() < deadline { usleep(10_000) }
        XCTAssertEqual(server.scheduler.activeCount, 0, "finished and abandoned completions leave the batch")
        XCTAssertThrowsError(try InferenceServer(modelDirectory: f.causalDirectory,
                                                 configuration: ServerConfiguration(maxBatchSize: 0))) { error in
            XCTAssertTrue("\(error)".contains("maxBatchSize"), "\(error)")
        }
    }

    func testModelWorkerRunsOneJobAtATime() throws {
        /// Unchecked Sendable: every property is used with `lock` held.
        final class Probe: @unchecked Sendable {
            let lock = NSLock()
            var active = 0, mostActive = 0, order: [Int] = []
            func enter(_ n: Int) { lock.withLock { active += 1; mostActive = max(mostActive, active); order.append(n) } }
            func leave() { lock.withLock { active -= 1 } }
        }
        let worker = ModelWorker(), probe = Probe()
        try blocking {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for n in 0 ..< 16 {
                    group.addTask { try await worker.run { probe.enter(n); usleep(2000); probe.leave() } }
                }
                try await group.waitForAll()
            }
        }
        XCTAssertEqual(probe.mostActive, 1, "jobs never overlap")
        XCTAssertEqual(probe.order.sorted(), Array(0 ..< 16))
        // A job's error comes back to its caller.
        XCTAssertThrowsError(try blocking { try await worker.run { throw APIError.invalid("boom") } }) { error in
            XCTAssertEqual((error as? APIError)?.message, "boom")
        }
    }

    func testStartFailsOnABusyPortAndStopFreesIt() throws {
        let directory = f.causalDirectory
        let busy = try InferenceServer(modelDirectory: directory,
                                       configuration: ServerConfiguration(host: "127.0.0.1", port: f.causalPort))
        XCTAssertThrowsError(try blocking { try await busy.start() })
        XCTAssertThrowsError(try InferenceServer(modelDirectory: directory.appendingPathComponent("missing")))
        XCTAssertThrowsError(try InferenceServer(modelDirectory: directory, configuration: ServerConfiguration(maxBodyBytes: 0))) {
            XCTAssertTrue("\($0)".contains("maxBodyBytes"), "\($0)")
            XCTAssertEqual(($0 as? AlbertMoEError)?.field, "maxBodyBytes")
        }

        let extra = try InferenceServer(modelDirectory: directory, configuration: ServerConfiguration(port: 0))
        let port = try blocking { try await extra.start() }
        XCTAssertEqual(try RawHTTPClient.request(port: port, "GET", "/health").status, 200)
        try blocking { await extra.stop() }
        XCTAssertNil(extra.port)
        XCTAssertThrowsError(try RawHTTPClient.request(port: port, "GET", "/health"), "nothing listens any more")
    }

    /// A copy of `directory` whose tokenizer.json declares fixed padding and truncation at 128, as published
    /// sentence-embedding tokenizers do.
    func copyDeclaringPadding(_ directory: URL, padToken: String) throws -> URL {
        let copy = f.directory.appendingPathComponent(directory.lastPathComponent + "-padded-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: directory, to: copy)
        let file = copy.appendingPathComponent("tokenizer.json")
        let tokenizer = try Tokenizer.load(from: file)
        tokenizer.padding = PaddingParams(fixedLength: 128, padId: try XCTUnwrap(tokenizer.tokenToId(padToken)), padToken: padToken)
        tokenizer.truncation = TruncationParams(maxLength: 128)
        try tokenizer.saveFiles(to: copy)
        XCTAssertEqual(try Tokenizer.load(from: file).encode("a").ids.count, 128)
        return copy
    }

    /// Completions, embeddings and mask filling answer the same when the model's tokenizer.json declares its own
    /// padding: the padding never reaches the model as content (nor the usage counts).
    func testDeclaredTokenizerPaddingChangesNoAnswer() throws {
        let causal = try InferenceServer(modelDirectory: try copyDeclaringPadding(f.causalDirectory, padToken: "<pad>"),
                                         configuration: ServerConfiguration(host: "127.0.0.1", port: 0))
        var maskedSettings = ServerConfiguration(host: "127.0.0.1", port: 0)
        maskedSettings.modelName = "tiny-masked"
        let masked = try InferenceServer(modelDirectory: try copyDeclaringPadding(f.maskedDirectory, padToken: "[PAD]"),
                                         configuration: maskedSettings)
        let (causalPort, maskedPort) = try blocking { (try await causal.start(), try await masked.start()) }
        defer { try? blocking { await causal.stop(); await masked.stop() } }

        func same(_ path: String, _ json: String, port: Int, paddedPort: Int, _ keys: [String]) throws {
            let expected = try post(path, json, port: port), got = try post(path, json, port: paddedPort)
            for key in keys {
                XCTAssertNotNil(expected[key], "\(path) \(key)")
                XCTAssertEqual(got[key] as? NSObject, expected[key] as? NSObject, "\(path) \(key) for \(json)")
            }
        }
        for prompt in ["the cat", "a", "the bird sang a long song in the tree and"] {
            try same("/v1/completions", #"{"prompt": "\#(prompt)", "max_tokens": 12, "temperature": 0}"#,
                     port: f.causalPort, paddedPort: causalPort, ["choices", "usage"])
        }
        let texts = #"["the cat sat on the mat", "a dog", "", "café crème", "\#(String(repeating: "dogs and cats ", count: 40))"]"#
        try same("/v1/embeddings", #"{"input": \#(texts)}"#, port: f.causalPort, paddedPort: causalPort, ["data", "usage"])
        try same("/v1/embeddings", #"{"input": \#(texts)}"#, port: f.maskedPort, paddedPort: maskedPort, ["data", "usage"])
        try same("/v1/fill-mask", #"{"text": "the [MASK] sat on the [MASK]", "top_k": 3}"#,
                 port: f.maskedPort, paddedPort: maskedPort, ["predictions"])
    }

    /// A model whose vocabulary is smaller than its tokenizer's (a tokenizer grown after training): the server
    /// starts, answers the texts whose tokens the model knows, refuses the others with 400 naming the field, and
    /// keeps serving.
    func testATokenizerLargerThanTheModelIsRefusedPerRequest() throws {
        let directory = f.directory.appendingPathComponent("small-vocab-\(UUID().uuidString)")
        let tokenizer = f.causalTokenizer
        let vocab = tokenizer.vocabSize - 30
        try AlbertForCausalLM(ServerFixture.config(vocabSize: vocab), seed: 1).save(to: directory)
        try tokenizer.saveFiles(to: directory)
        let server = try InferenceServer(modelDirectory: directory, configuration: ServerConfiguration(host: "127.0.0.1", port: 0))
        let port = try blocking { try await server.start() }
        defer { try? blocking { await server.stop() } }

        let candidates = ["the cat sat on the mat", "a dog", "zq", "the bird sang a long song in the tree", "xv", "café"]
        let maxID = try candidates.map { try tokenizer.encodeUnpadded($0, addSpecialTokens: false).ids.max() ?? 0 }
        let known = zip(candidates, maxID).filter { $0.1 < vocab }.map(\.0)
        let unknown = zip(candidates, maxID).filter { $0.1 >= vocab }.map(\.0)
        XCTAssertFalse(known.isEmpty)
        XCTAssertFalse(unknown.isEmpty)
        for text in unknown {
            let embedding = try errorOf(post("/v1/embeddings", #"{"input": ["a", "\#(text)"]}"#, port: port, status: 400))
            XCTAssertEqual(embedding.param, "input")
            XCTAssertTrue(embedding.message.contains("outside the model's vocabulary [0, \(vocab))"), embedding.message)
            let completion = try errorOf(post("/v1/completions", #"{"prompt": "\#(text)", "max_tokens": 3}"#, port: port, status: 400))
            XCTAssertEqual(completion.param, "prompt")
            XCTAssertTrue(completion.message.contains("outside the model's vocabulary"), completion.message)
        }
        for text in known {
            _ = try post("/v1/embeddings", #"{"input": "\#(text)"}"#, port: port)
            _ = try post("/v1/completions", #"{"prompt": "\#(text)", "max_tokens": 3, "temperature": 0}"#, port: port)
        }
        XCTAssertEqual(try RawHTTPClient.request(port: port, "GET", "/health").status, 200)
    }
}
