import AlbertMoE
import Foundation
import Tokenizers
import XCTest

/// `albertmoe load-bench` against an `albertmoe serve` process, as a user would run them.
final class LoadBenchCommandTests: XCTestCase {
    func testLoadBenchMeasuresARunningServer() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-load-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let texts = ["the cat sat on the mat", "the dog sat on the rug", "a bird sang in the tree"]
        let bpe = try ByteLevelBPETrainer(options: TrainerOptions(vocabSize: 280, minFrequency: 1, specialTokens: ["<|endoftext|>"]))
            .train(texts: texts)
        let config = AlbertMoEConfig(vocabSize: bpe.vocabSize, embeddingSize: 8, hiddenSize: 16, numHiddenLayers: 2,
                                     numAttentionHeads: 2, intermediateSize: 24, maxPositionEmbeddings: 64, numExperts: 2)
        try AlbertForCausalLM(config, seed: 3).save(to: dir)
        try bpe.saveFiles(to: dir)

        let server = Process()
        server.executableURL = Bundle.main.bundleURL.appendingPathComponent("albertmoe")
        server.arguments = ["serve", "--model", dir.path, "--port", "0"]
        server.environment = offlineEnvironment()
        let output = Pipe()
        server.standardOutput = output
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            if server.isRunning { server.terminate() }
            server.waitUntilExit()
        }
        var printed = Data()
        while !printed.contains(UInt8(ascii: "\n")) {
            let more = output.fileHandleForReading.availableData
            guard !more.isEmpty else { break }
            printed += more
        }
        let line = String(decoding: printed, as: UTF8.self)
        let address = try XCTUnwrap(line.firstMatch(of: /on (http:\/\/[0-9.]+:[0-9]+)/)?.1, line)

        let bench = try runCommand("albertmoe", ["load-bench", "--url", String(address), "--clients", "4", "--duration", "1",
                                                 "--warmup", "0.2", "--max_tokens", "5", "--prompt", "the cat"])
        XCTAssertEqual(bench.status, 0, bench.stderr)
        let figures = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Double], bench.stdout)
        XCTAssertEqual(figures["clients"], 4)
        XCTAssertEqual(figures["errors"], 0)
        let requests = try XCTUnwrap(figures["requests"]), seconds = try XCTUnwrap(figures["duration_s"])
        XCTAssertGreaterThan(requests, 4)
        XCTAssertGreaterThanOrEqual(seconds, 1)
        XCTAssertEqual(try XCTUnwrap(figures["requests_per_s"]), requests / seconds, accuracy: 0.2 + requests / seconds * 0.1)
        XCTAssertGreaterThan(try XCTUnwrap(figures["generated_tokens_per_s"]), 0)
        XCTAssertLessThanOrEqual(try XCTUnwrap(figures["generated_tokens_per_s"]), 5 * requests / seconds * 1.1 + 1)
        let (p50, p90, p99) = (try XCTUnwrap(figures["latency_p50_ms"]), try XCTUnwrap(figures["latency_p90_ms"]),
                               try XCTUnwrap(figures["latency_p99_ms"]))
        XCTAssertTrue(0 < p50 && p50 <= p90 && p90 <= p99, "\(figures)")

        server.terminate()
        server.waitUntilExit()
        let nobody = try runCommand("albertmoe", ["load-bench", "--url", String(address), "--clients", "2", "--duration", "0.3",
                                                  "--warmup", "0"])
        XCTAssertNotEqual(nobody.status, 0)
        XCTAssertTrue(nobody.stderr.contains("no request to \(address)/v1/completions was answered"), nobody.stderr)
        let bad = try runCommand("albertmoe", ["load-bench", "--clients", "0"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--clients must be at least 1, got 0"), bad.stderr)
    }
}
