@testable import Hub
import Foundation
import Tensors
import XCTest

/// Seeded mutations of what the hub answers (the revision description, the ETag headers): an error or files inside
/// the cache, never a crash or a write outside it.
final class HubFuzzTests: XCTestCase {
    let head = commit(20)
    var server: FakeHub!

    override func setUpWithError() throws {
        server = FakeHub([FakeRepository(kind: "models", id: "org/tiny", revisions: ["main": head],
                                         files: [head: ["tokenizer.json": Data(tokenizerJSON.utf8), "spiece.model": Data("spm".utf8),
                                                        "config.json": Data("{}".utf8)]],
                                         lfs: ["spiece.model"])])
        try server.start()
    }

    override func tearDown() async throws { await server.stop() }

    /// Fetches the tokenizer into a fresh cache; on success, every file of the snapshot resolves inside the cache.
    func fetchIntoFreshCache(_ root: URL) async {
        let hub = Hub(settings: try! HubSettings(environment: ["HF_HUB_CACHE": root.path, "HF_ENDPOINT": server.endpoint.absoluteString,
                                                               "HF_HUB_DOWNLOAD_TIMEOUT": "5"]))
        do {
            let snapshot = try await hub.tokenizer("org/tiny")
            XCTAssertTrue(snapshot.directory.path.hasPrefix(root.path))
            for file in snapshot.files {
                let resolved = snapshot.directory.appendingPathComponent(file).resolvingSymlinksInPath().path
                XCTAssertTrue(resolved.hasPrefix(root.resolvingSymlinksInPath().path), "\(file) -> \(resolved)")
            }
        } catch {
            XCTAssertTrue(error is HubError, "\(error)")
        }
        let outside = try! FileManager.default.contentsOfDirectory(atPath: root.deletingLastPathComponent().path)
        XCTAssertTrue(Set(outside).isSubset(of: [root.lastPathComponent]), "written beside the cache: \(outside)")
    }

    func testMutatedRevisionDescriptions() async throws {
        let siblings: [[String: String]] = [["rfilename": "tokenizer.json"], ["rfilename": "spiece.model"], ["rfilename": "config.json"],
                                            ["rfilename": "../../escape.model"], ["rfilename": "/abs/tokenizer.json"]]
        let valid = Array(try JSONSerialization.data(withJSONObject: ["id": "org/tiny", "sha": head, "siblings": siblings]))
        var g = SeededGenerator(seed: 5)
        var successes = 0
        for _ in 0..<300 {
            var bytes = valid
            switch g.nextInt(below: 4) {
            case 0: for _ in 0..<(1 + g.nextInt(below: 3)) { bytes[g.nextInt(below: bytes.count)] ^= UInt8(1 << g.nextInt(below: 8)) }
            case 1: bytes = Array(bytes.prefix(g.nextInt(below: bytes.count)))
            case 2:
                let sha = Array(head.utf8)
                let at = try XCTUnwrap(bytes.indices.first { Array(bytes[$0...].prefix(sha.count)) == sha })
                let replacement = ["../../../tmp", "", String(repeating: "f", count: 41), "ABCDEF" + head.dropFirst(6), head.uppercased()]
                bytes.replaceSubrange(at..<(at + sha.count), with: Array(replacement[g.nextInt(below: replacement.count)].utf8))
            default: bytes = valid
            }
            server.apiBody.withLock { $0 = Data(bytes) }
            let dir = try temporaryDirectory(self)
            await fetchIntoFreshCache(dir.appendingPathComponent("hub"))
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("hub/models--org--tiny/refs/main").path) { successes += 1 }
        }
        XCTAssertGreaterThan(successes, 20)
    }

    func testMutatedETags() async throws {
        let awkward = ["", "\"\"", "W/\"\"", "../../x", "a/b", "..", ".", String(repeating: "e", count: 300), "\"a b\"", "W/\"ok-1\"",
                       "\"deadbeef\"", "x.incomplete"]
        var g = SeededGenerator(seed: 9)
        for n in 0..<120 {
            let pick = n < awkward.count ? awkward[n] : String((0..<(1 + g.nextInt(below: 20))).map { _ in
                Character(UnicodeScalar(UInt8(32 + g.nextInt(below: 95))))
            })
            let name = ["ETag", "X-Linked-Etag", "X-Repo-Commit"][g.nextInt(below: 3)]
            server.resolveHeaders.withLock { $0 = [name: pick] }
            let dir = try temporaryDirectory(self)
            await fetchIntoFreshCache(dir.appendingPathComponent("hub"))
        }
    }
}
