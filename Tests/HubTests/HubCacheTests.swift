@testable import Hub
import Foundation
import Tensors
import XCTest

/// Writes repositories into a cache folder as huggingface_hub does: blobs named by ETag, snapshot files as relative
/// symlinks into them, refs naming commits.
struct CacheBuilder {
    let root: URL

    @discardableResult
    func add(_ kind: HubRepository.Kind, _ id: String, commit: String, refs: [String] = ["main"],
             files: [String: String]) throws -> URL {
        let folder = root.appendingPathComponent("\(kind.rawValue)s--" + id.replacingOccurrences(of: "/", with: "--"))
        for (path, text) in files {
            let etag = FakeHub.etag(Data(text.utf8), length: 64, salt: path)
            let blob = folder.appendingPathComponent("blobs/\(etag)")
            try FileManager.default.createDirectory(at: blob.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: blob)
            let pointer = folder.appendingPathComponent("snapshots/\(commit)/\(path)")
            try FileManager.default.createDirectory(at: pointer.deletingLastPathComponent(), withIntermediateDirectories: true)
            let target = String(repeating: "../", count: path.split(separator: "/").count + 1) + "blobs/\(etag)"
            try FileManager.default.createSymbolicLink(atPath: pointer.path, withDestinationPath: target)
        }
        for ref in refs {
            let url = folder.appendingPathComponent("refs/\(ref)")
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(commit.utf8).write(to: url)
        }
        return folder
    }
}

func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-hub-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

func commit(_ n: Int) -> String { FakeHub.etag(Data("\(n)".utf8), length: 40, salt: "commit") }

func thrown(_ body: () async throws -> Void) async -> Error? {
    do { try await body(); return nil } catch { return error }
}

let tokenizerJSON = #"{"version": "1.0", "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1}, "unk_token": "[UNK]"}}"#

final class HubCacheTests: XCTestCase {
    func testTheCacheRootIsWhereHuggingFaceHubPutsIt() {
        XCTAssertEqual(HubCache(environment: ["HF_HUB_CACHE": "/x/hub", "HF_HOME": "/y"]).root.path, "/x/hub")
        XCTAssertEqual(HubCache(environment: ["HF_HOME": "/y", "XDG_CACHE_HOME": "/z"]).root.path, "/y/hub")
        XCTAssertEqual(HubCache(environment: ["XDG_CACHE_HOME": "/z", "HOME": "/h"]).root.path, "/z/huggingface/hub")
        XCTAssertEqual(HubCache(environment: ["HOME": "/h"]).root.path, "/h/.cache/huggingface/hub")
        XCTAssertEqual(HubCache(environment: ["HF_HOME": "~/hf", "HOME": "/h"]).root.path, "/h/hf/hub")
        XCTAssertEqual(HubCache(environment: ["HF_HUB_CACHE": "", "HF_HOME": "/y"]).root.path, "/y/hub")
    }

    func testSettingsComeFromTheEnvironment() throws {
        let dir = try temporaryDirectory(self)
        try Data("hf_from_file\n".utf8).write(to: dir.appendingPathComponent("token"))
        let fromFile = try HubSettings(environment: ["HF_HOME": dir.path])
        XCTAssertEqual(fromFile.token, "hf_from_file")
        XCTAssertEqual(fromFile.endpoint.absoluteString, "https://huggingface.co")
        XCTAssertFalse(fromFile.offline)
        let fromVariables = try HubSettings(environment: ["HF_HOME": dir.path, "HF_TOKEN": "hf_env", "HF_HUB_OFFLINE": "1",
                                                          "HF_ENDPOINT": "http://127.0.0.1:9/"])
        XCTAssertEqual(fromVariables.token, "hf_env")
        XCTAssertTrue(fromVariables.offline)
        XCTAssertEqual(fromVariables.endpoint.absoluteString, "http://127.0.0.1:9")
        XCTAssertEqual(try HubSettings(environment: ["HF_TOKEN": "hf_env"], token: "hf_flag").token, "hf_flag")
        for value in ["true", "YES", "on"] { XCTAssertTrue(try HubSettings(environment: ["HF_HUB_OFFLINE": value]).offline) }
        for value in ["0", "", "no"] { XCTAssertFalse(try HubSettings(environment: ["HF_HUB_OFFLINE": value]).offline) }
        XCTAssertThrowsError(try HubSettings(environment: ["HF_ENDPOINT": "ftp://x"])) {
            XCTAssertTrue("\($0)".contains("HF_ENDPOINT"), "\($0)")
        }
    }

    /// Random ids against huggingface_hub's own rule, written as its regular expression.
    func testRepositoryIDsAreCheckedAsHuggingFaceHubChecksThem() throws {
        let rule = try NSRegularExpression(pattern: #"^(\b[A-Za-z0-9_.\-]+\b/)?\b[A-Za-z0-9_.\-]{1,96}\b$"#)
        func oracle(_ id: String) -> Bool {
            rule.firstMatch(in: id, range: NSRange(id.startIndex..., in: id)) != nil && !id.contains("--") && !id.contains("..")
                && !id.hasSuffix(".git")
        }
        let alphabet = Array("ab9_-./Zé ")
        var g = SeededGenerator(seed: 7)
        var valid = 0
        for _ in 0..<5000 {
            let count = 1 + g.nextInt(below: 12)
            let id = String((0..<count).map { _ in alphabet[g.nextInt(below: alphabet.count)] })
            XCTAssertEqual(HubRepository.isValidID(id), oracle(id), id)
            if oracle(id) { valid += 1 }
        }
        XCTAssertGreaterThan(valid, 200)
        XCTAssertTrue(HubRepository.isValidID("albert/albert-base-v2"))
        XCTAssertFalse(HubRepository.isValidID(String(repeating: "a", count: 97)))
        XCTAssertTrue(HubRepository.isValidID(String(repeating: "a", count: 100) + "/" + String(repeating: "b", count: 96)))
        XCTAssertEqual(try HubRepository("Salesforce/wikitext", kind: .dataset).cacheFolderName, "datasets--Salesforce--wikitext")
        XCTAssertEqual(try HubRepository("albert-base-v2", kind: .model).cacheFolderName, "models--albert-base-v2")
    }

    func testSnapshotsFollowRefsAndCommits() throws {
        let root = try temporaryDirectory(self)
        let cache = HubCache(root: root)
        let builder = CacheBuilder(root: root)
        try builder.add(.model, "org/tiny", commit: commit(1), refs: ["main"], files: ["config.json": "{}", "tokenizer.json": "new"])
        try builder.add(.model, "org/tiny", commit: commit(2), refs: ["v1.0", "refs/pr/1"], files: ["tokenizer.json": "old"])
        let repo = try HubRepository("org/tiny", kind: .model)

        let main = try XCTUnwrap(cache.snapshot(of: repo))
        XCTAssertEqual(main.commit, commit(1))
        XCTAssertEqual(main.files, ["config.json", "tokenizer.json"])
        XCTAssertEqual(try String(contentsOf: main.directory.appendingPathComponent("tokenizer.json"), encoding: .utf8), "new")
        let tagged = try XCTUnwrap(cache.snapshot(of: repo, revision: "v1.0"))
        XCTAssertEqual(tagged.commit, commit(2))
        XCTAssertEqual(try String(contentsOf: tagged.directory.appendingPathComponent("tokenizer.json"), encoding: .utf8), "old")
        XCTAssertEqual(try cache.snapshot(of: repo, revision: "refs/pr/1")?.commit, commit(2))
        XCTAssertEqual(try cache.snapshot(of: repo, revision: commit(2))?.commit, commit(2))
        XCTAssertNil(try cache.snapshot(of: repo, revision: "v2.0"))
        XCTAssertNil(try cache.snapshot(of: HubRepository("org/other", kind: .model)))
        XCTAssertNil(try cache.snapshot(of: HubRepository("org/tiny", kind: .dataset)))
        XCTAssertThrowsError(try cache.snapshot(of: repo, revision: "../../etc"))

        // A file whose blob is gone is not there.
        let blob = try FileManager.default.destinationOfSymbolicLink(atPath: main.directory.appendingPathComponent("config.json").path)
        try FileManager.default.removeItem(at: main.directory.appendingPathComponent(blob).standardizedFileURL)
        XCTAssertEqual(main.files, ["tokenizer.json"])
    }

    func testBareLegacyNamesFindTheirNamespacedRepository() throws {
        let root = try temporaryDirectory(self)
        let cache = HubCache(root: root)
        let builder = CacheBuilder(root: root)
        try builder.add(.model, "albert/albert-base-v2", commit: commit(1), files: ["tokenizer.json": "x"])
        try builder.add(.dataset, "Salesforce/wikitext", commit: commit(2), files: ["a/train.parquet": "x"])
        try builder.add(.model, "someone/wikitext", commit: commit(3), files: ["config.json": "x"])

        let albert = try XCTUnwrap(cache.snapshot(of: HubRepository("albert-base-v2", kind: .model)))
        XCTAssertEqual(albert.repository.id, "albert/albert-base-v2")
        XCTAssertEqual(albert.commit, commit(1))
        let wikitext = try XCTUnwrap(cache.snapshot(of: HubRepository("wikitext", kind: .dataset)))
        XCTAssertEqual(wikitext.repository.id, "Salesforce/wikitext")
        XCTAssertEqual(try cache.snapshot(of: HubRepository("wikitext", kind: .model))?.repository.id, "someone/wikitext")

        // The repository of exactly that name wins; two namespaced ones and none exact: an error naming both.
        try builder.add(.model, "albert-base-v2", commit: commit(4), files: ["tokenizer.json": "y"])
        XCTAssertEqual(try cache.snapshot(of: HubRepository("albert-base-v2", kind: .model))?.commit, commit(4))
        try builder.add(.dataset, "mirror/wikitext", commit: commit(5), files: ["a/train.parquet": "y"])
        XCTAssertThrowsError(try cache.snapshot(of: HubRepository("wikitext", kind: .dataset))) { error in
            XCTAssertEqual(error as? HubError, .ambiguous(name: "wikitext", matches: ["Salesforce/wikitext", "mirror/wikitext"]))
            XCTAssertTrue("\(error)".contains("Salesforce/wikitext, mirror/wikitext"), "\(error)")
        }
    }

    /// Random dataset layouts as the hub's writers lay them out: each split's shards, and only those, in order.
    func testDatasetSplitsAreTheirShardsInOrder() {
        var g = SeededGenerator(seed: 11)
        let configs = ["default", "wikitext-2-raw-v1", "plain_text", "en"]
        let splits = ["train", "test", "validation", "train_extra"]
        for _ in 0..<300 {
            var files: [String] = ["README.md", ".gitattributes"]
            var expected: [String: [String]] = [:]
            for config in configs where g.nextInt(below: 3) > 0 {
                for split in splits where g.nextInt(below: 3) > 0 {
                    let shards = 1 + g.nextInt(below: 4)
                    let style = g.nextInt(below: 3)
                    let folder = config == "default" && g.nextInt(below: 2) == 0 ? "data" : config
                    let names: [String] = (0..<shards).map { n in
                        switch style {
                        case 0: return "\(folder)/\(split)-\(String(format: "%05d", n))-of-\(String(format: "%05d", shards)).parquet"
                        case 1: return "\(folder)/\(split)/\(String(format: "%04d", n)).parquet"
                        default: return shards == 1 ? "\(folder)/\(split).parquet" : "\(folder)/partial-\(split)/\(String(format: "%04d", n)).parquet"
                        }
                    }
                    expected["\(config)|\(split)"] = names.sorted()
                    files += names
                    if g.nextInt(below: 2) == 0 { files.append("\(folder)/\(split)-notes.json") }
                }
            }
            files.shuffle(using: &g)
            for config in configs {
                for split in splits {
                    XCTAssertEqual(parquetShards(files, config: config, split: split), expected["\(config)|\(split)"] ?? [],
                                   "\(config) \(split) in \(files)")
                }
            }
        }
    }

    /// Refs files mutated (bit flips, truncations, huge files): an error or a snapshot, never a crash.
    func testMutatedRefsGiveAnErrorOrASnapshot() throws {
        let root = try temporaryDirectory(self)
        let cache = HubCache(root: root)
        let folder = try CacheBuilder(root: root).add(.model, "org/tiny", commit: commit(1), files: ["tokenizer.json": "x"])
        let ref = folder.appendingPathComponent("refs/main")
        let valid = Array(commit(1).utf8)
        var g = SeededGenerator(seed: 3)
        for _ in 0..<2000 {
            var bytes = valid
            switch g.nextInt(below: 3) {
            case 0: bytes[g.nextInt(below: bytes.count)] ^= UInt8(1 << g.nextInt(below: 8))
            case 1: bytes = Array(bytes.prefix(g.nextInt(below: bytes.count)))
            default: bytes += [UInt8](repeating: UInt8(ascii: "a"), count: g.nextInt(below: 3) == 0 ? 1 << 20 : 3)
            }
            try Data(bytes).write(to: ref)
            do {
                if let snapshot = try cache.snapshot(of: HubRepository("org/tiny", kind: .model)) {
                    XCTAssertEqual(snapshot.commit, commit(1))
                }
            } catch let error as HubError {
                XCTAssertTrue("\(error)".contains(ref.path), "\(error)")
            }
        }
    }
}
