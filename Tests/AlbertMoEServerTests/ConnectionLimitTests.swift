import AlbertMoE
@testable import AlbertMoEServer
import Foundation
import Tokenizers
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The server's header, body and idle timeouts and its connection limit, over real sockets.
final class ConnectionLimitTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-limits-\(UUID().uuidString)")
        let bpe = try ByteLevelBPETrainer(options: TrainerOptions(vocabSize: 280, minFrequency: 1, specialTokens: ["<pad>"]))
            .train(texts: ["the cat sat on the mat", "the dog sat on the rug"])
        try bpe.declareSpecialTokens([.pad: "<pad>"])
        try AlbertForCausalLM(ServerFixture.config(vocabSize: bpe.vocabSize), seed: 1).save(to: directory)
        try bpe.saveFiles(to: directory)
        let dir = directory!
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    }

    /// A server of the tiny model with `change` applied to its configuration, stopped when the test ends.
    func server(_ change: (inout ServerConfiguration) -> Void) throws -> Int {
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        change(&configuration)
        let server = try InferenceServer(modelDirectory: directory, configuration: configuration)
        let port = try blocking { try await server.start() }
        addTeardownBlock { try? blocking { await server.stop() } }
        return port
    }

    /// A socket connected to the server, with reads that give up after `timeout` seconds.
    func connect(_ port: Int, timeout: Int = 10) throws -> Int32 {
        try RawHTTPClient.connected(port: port, timeout: timeout)
    }

    func send(_ fd: Int32, _ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
    }

    /// Everything the server sends until it closes the connection, and how long that took; nil bytes when the read
    /// timed out with the connection still open.
    func readUntilClosed(_ fd: Int32) -> (bytes: Data?, seconds: Double) {
        let start = Date()
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0 { received.append(contentsOf: buffer[0 ..< n]); continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return (nil, Date().timeIntervalSince(start)) }
            return (received, Date().timeIntervalSince(start))
        }
    }

    /// Reads one answer's head (up to the blank line) from a connection that stays open.
    func readHead(_ fd: Int32) throws -> String {
        var received = [UInt8]()
        var byte: UInt8 = 0
        while !received.suffix(4).elementsEqual("\r\n\r\n".utf8) {
            guard recv(fd, &byte, 1, 0) == 1 else { throw ClientError("no answer head: \(String(decoding: received, as: UTF8.self))") }
            received.append(byte)
        }
        return String(decoding: received, as: UTF8.self)
    }

    func testAnUnterminatedChunkedBodyIsAnswered408AndClosed() throws {
        let port = try server { $0.bodyTimeout = .milliseconds(300) }
        let fd = try connect(port)
        defer { close(fd) }
        send(fd, "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
             + "6\r\n{\"inpu\r\n")
        let (bytes, seconds) = readUntilClosed(fd)
        let answer = try RawHTTPClient.parse(try XCTUnwrap(bytes, "the connection stayed open"))
        XCTAssertEqual(answer.status, 408, answer.text)
        XCTAssertTrue(try XCTUnwrap((answer.json()["error"] as? [String: Any])?["message"] as? String).contains("body"), answer.text)
        XCTAssertGreaterThan(seconds, 0.2)
        XCTAssertLessThan(seconds, 5)
    }

    func testABodyTrickledSlowerThanTheTimeoutIsCutOff() throws {
        let port = try server { $0.bodyTimeout = .milliseconds(400) }
        let fd = try connect(port)
        defer { close(fd) }
        send(fd, "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n")
        // A byte every 100 ms keeps the connection busy, but the body as a whole takes too long.
        let start = Date()
        for byte in "{\"input\": \"the cat\"}".map(String.init) {
            send(fd, byte)
            usleep(100_000)
            if Date().timeIntervalSince(start) > 1.5 { break }
        }
        let (bytes, _) = readUntilClosed(fd)
        XCTAssertEqual(try RawHTTPClient.parse(try XCTUnwrap(bytes)).status, 408)
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testAHeadThatNeverEndsIsAnswered408() throws {
        let port = try server { $0.headerTimeout = .milliseconds(300) }
        let fd = try connect(port)
        defer { close(fd) }
        send(fd, "GET /health HTTP/1.1\r\nHost: x\r\n")
        let (bytes, seconds) = readUntilClosed(fd)
        let answer = try RawHTTPClient.parse(try XCTUnwrap(bytes, "the connection stayed open"))
        XCTAssertEqual(answer.status, 408, answer.text)
        XCTAssertTrue(answer.text.contains("head"), answer.text)
        XCTAssertLessThan(seconds, 5)
    }

    func testIdleConnectionsAreClosedAfterTheIdleTimeout() throws {
        let port = try server { $0.idleTimeout = .milliseconds(300) }
        // A connection that never sends anything.
        let silent = try connect(port)
        defer { close(silent) }
        let (nothing, seconds) = readUntilClosed(silent)
        XCTAssertEqual(nothing, Data(), "the idle connection was not closed")
        XCTAssertGreaterThan(seconds, 0.2)
        XCTAssertLessThan(seconds, 5)

        // A kept-alive connection after its answer; a request in progress is not cut off by the idle timeout.
        let kept = try connect(port)
        defer { close(kept) }
        let body = "{\"prompt\": \"the cat\", \"max_tokens\": 30, \"seed\": 1}"
        send(kept, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             + "Content-Length: \(body.utf8.count)\r\n\r\n" + body)
        let (bytes, _) = readUntilClosed(kept)
        let answer = try RawHTTPClient.parse(try XCTUnwrap(bytes, "the kept-alive connection was not closed"))
        XCTAssertEqual(answer.status, 200, answer.text)
    }

    func testConnectionsPastTheLimitAre503AndTheLimitFreesUp() throws {
        let port = try server { $0.maxConnections = 3 }
        var open: [Int32] = []
        defer { open.forEach { close($0) } }
        for _ in 0 ..< 3 {
            let fd = try connect(port)
            send(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            XCTAssertTrue(try readHead(fd).hasPrefix("HTTP/1.1 200"))   // accepted, and kept alive
            open.append(fd)
        }
        // Each one more gets its answer (not a reset connection), with a body or without.
        for i in 0 ..< 20 {
            let refused = i % 2 == 0 ? try RawHTTPClient.request(port: port, "GET", "/health")
                : try RawHTTPClient.post(port: port, "/v1/embeddings", "{\"input\": \"" + String(repeating: "cat ", count: 500) + "\"}")
            XCTAssertEqual(refused.status, 503, refused.text)
            XCTAssertEqual(refused.headers["connection"], "close")
            XCTAssertTrue(try XCTUnwrap((refused.json()["error"] as? [String: Any])?["message"] as? String).contains("3 connections"))
        }

        close(open.removeLast())
        var status = 0
        for _ in 0 ..< 50 where status != 200 {
            usleep(20_000)
            status = try RawHTTPClient.request(port: port, "GET", "/health").status
        }
        XCTAssertEqual(status, 200, "a closed connection did not free its place")
    }

    func testHealthAnswersQuicklyWithThousandsOfIdleAndSlowConnectionsOpen() throws {
        // Client and server ends share this process's descriptors.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let connections = min(2000, Int(clamping: limit.rlim_cur) / 2 - 100)
        let port = try server { $0.maxConnections = connections + 10 }
        var open: [Int32] = []
        defer { open.forEach { close($0) } }
        for i in 0 ..< connections {
            let fd = try connect(port)
            if i % 2 == 1 { send(fd, "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n") }   // a head still arriving
            open.append(fd)
        }
        var times: [Double] = []
        for _ in 0 ..< 5 {
            let start = Date()
            let answer = try RawHTTPClient.request(port: port, "GET", "/health")
            times.append(Date().timeIntervalSince(start))
            XCTAssertEqual(answer.status, 200, answer.text)
        }
        XCTAssertLessThan(times.sorted()[2], 0.1, "/health took \(times) s with \(connections) connections open")
    }

    func testTheSettingsAreChecked() throws {
        for (change, field) in [({ (c: inout ServerConfiguration) in c.bodyTimeout = .zero }, "bodyTimeout"),
                                ({ $0.headerTimeout = .seconds(-1) }, "headerTimeout"),
                                ({ $0.idleTimeout = .seconds(100_000) }, "idleTimeout"),
                                ({ $0.maxConnections = 0 }, "maxConnections")] {
            var configuration = ServerConfiguration()
            change(&configuration)
            XCTAssertThrowsError(try configuration.validate()) { XCTAssertEqual(($0 as? AlbertMoEError)?.field, field) }
        }
    }

    func testAnswersNeverHoldNonFiniteNumbers() {
        XCTAssertThrowsError(try JSONBody.encode(["value": Float.nan]))
        XCTAssertThrowsError(try JSONBody.encode([Float.infinity]))
    }
}
