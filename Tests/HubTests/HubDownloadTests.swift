@testable import Hub
import Foundation
import Synchronization
import Tensors
import XCTest

/// Downloads from a local fake hub (real sockets, the hub's URLs, redirects and headers) into a temporary cache.
final class HubDownloadTests: XCTestCase {
    var server: FakeHub!
    var cacheRoot: URL!

    let modelCommit = commit(10), oldModelCommit = commit(11), datasetCommit = commit(12), privateCommit = commit(13)
    let weights = Data((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })

    override func setUpWithError() throws {
        let modelFiles: [String: Data] = [
            "config.json": Data(#"{"model_type": "albert_moe"}"#.utf8), "model.safetensors": weights,
            "pytorch_model.bin": Data("not fetched when safetensors exist".utf8),
            "tokenizer.json": Data(tokenizerJSON.utf8), "tokenizer_config.json": Data("{}".utf8),
            "special_tokens_map.json": Data("{}".utf8), "spiece.model": Data("sentencepiece".utf8),
            "README.md": Data("# tiny".utf8), "onnx/model.onnx": Data("not fetched".utf8),
        ]
        var datasetFiles: [String: Data] = ["README.md": Data("# data".utf8)]
        for config in ["wikitext-2-raw-v1", "wikitext-103-raw-v1"] {
            for split in ["train", "test"] {
                for shard in 0..<(split == "train" ? 3 : 1) {
                    datasetFiles["\(config)/\(split)-0000\(shard)-of-0000\(split == "train" ? 3 : 1).parquet"] =
                        Data("PAR1 \(config) \(split) \(shard)".utf8)
                }
            }
        }
        server = FakeHub([
            FakeRepository(kind: "models", id: "org/tiny", revisions: ["main": modelCommit, "v1": oldModelCommit],
                           files: [modelCommit: modelFiles, oldModelCommit: ["tokenizer.json": Data("{\"old\": 1}".utf8)]],
                           lfs: ["model.safetensors", "spiece.model"], alias: "tiny"),
            FakeRepository(kind: "datasets", id: "Salesforce/wikitext", revisions: ["main": datasetCommit],
                           files: [datasetCommit: datasetFiles], lfs: Set(datasetFiles.keys.filter { $0.hasSuffix(".parquet") }),
                           alias: "wikitext"),
            FakeRepository(kind: "datasets", id: "org/scripted", revisions: ["main": commit(14), "refs/convert/parquet": commit(15)],
                           files: [commit(14): ["scripted.py": Data("# a loading script".utf8)],
                                   commit(15): ["default/train/0000.parquet": Data("PAR1 0".utf8),
                                                "default/train/0001.parquet": Data("PAR1 1".utf8),
                                                "default/test/0000.parquet": Data("PAR1 t".utf8)]]),
            FakeRepository(kind: "models", id: "org/private", revisions: ["main": privateCommit],
                           files: [privateCommit: ["tokenizer.json": Data(tokenizerJSON.utf8)]], lfs: [], isPrivate: true),
            FakeRepository(kind: "models", id: "org/gated", revisions: ["main": privateCommit],
                           files: [privateCommit: ["tokenizer.json": Data(tokenizerJSON.utf8)]], lfs: [], isGated: true),
        ])
        try server.start()
        cacheRoot = try temporaryDirectory(self)
    }

    override func tearDown() async throws { await server.stop() }

    func hub(token: String? = nil, offline: Bool = false) throws -> Hub {
        var environment = ["HF_HUB_CACHE": cacheRoot.path, "HF_ENDPOINT": server.endpoint.absoluteString, "HOME": cacheRoot.path,
                           "HF_HUB_DOWNLOAD_TIMEOUT": "2"]
        if offline { environment["HF_HUB_OFFLINE"] = "1" }
        return Hub(settings: try HubSettings(environment: environment, token: token))
    }

    func folder(_ name: String) -> URL { cacheRoot.appendingPathComponent(name) }

    /// What huggingface_hub leaves for one file: `snapshots/COMMIT/FILE` a relative symlink to `blobs/ETAG`.
    func assertLinked(_ folder: URL, commit: String, file: String, etag: String, contents: Data,
                      line: UInt = #line) throws {
        let pointer = folder.appendingPathComponent("snapshots/\(commit)/\(file)")
        let target = try FileManager.default.destinationOfSymbolicLink(atPath: pointer.path)
        XCTAssertEqual(target, String(repeating: "../", count: file.split(separator: "/").count + 1) + "blobs/\(etag)", line: line)
        XCTAssertEqual(try Data(contentsOf: folder.appendingPathComponent("blobs/\(etag)")), contents, line: line)
        XCTAssertEqual(try Data(contentsOf: pointer), contents, line: line)
    }

    func testAModelLandsWhereHuggingFaceHubPutsItAndASecondRunTouchesNoNetwork() async throws {
        let progress = Mutex<[HubProgress]>([])
        let snapshot = try await hub().model("org/tiny") { p in progress.withLock { $0.append(p) } }
        let repo = folder("models--org--tiny")
        XCTAssertEqual(snapshot.directory.path, repo.appendingPathComponent("snapshots/\(modelCommit)").path)
        XCTAssertEqual(snapshot.files, ["config.json", "model.safetensors", "special_tokens_map.json", "spiece.model",
                                        "tokenizer.json", "tokenizer_config.json"])
        XCTAssertEqual(try String(contentsOf: repo.appendingPathComponent("refs/main"), encoding: .utf8), modelCommit)
        // LFS files are named by X-Linked-Etag, the others by their ETag without W/ and quotes.
        try assertLinked(repo, commit: modelCommit, file: "model.safetensors",
                         etag: FakeHub.etag(weights, length: 64, salt: "lfs"), contents: weights)
        let config = Data(#"{"model_type": "albert_moe"}"#.utf8)
        try assertLinked(repo, commit: modelCommit, file: "config.json", etag: FakeHub.etag(config, length: 40, salt: "git"),
                         contents: config)
        let blobs = try FileManager.default.contentsOfDirectory(atPath: repo.appendingPathComponent("blobs").path)
        XCTAssertEqual(blobs.count, 5, "two files hold the same bytes, so share one blob")
        XCTAssertFalse(blobs.contains { $0.hasSuffix(".incomplete") })
        XCTAssertTrue(server.leakedTokens.isEmpty)
        let weightEvents = progress.withLock { $0 }.filter { $0.file == "model.safetensors" }
        XCTAssertEqual(weightEvents.last, HubProgress(repository: "org/tiny", file: "model.safetensors", fileNumber: 2,
                                                      fileCount: 6, bytes: Int64(weights.count),
                                                      totalBytes: Int64(weights.count), finished: true))

        let requests = server.requests.count
        let again = try await hub().model("org/tiny")
        XCTAssertEqual(again, snapshot)
        let tokenizer = try await hub().tokenizer("org/tiny")
        XCTAssertEqual(tokenizer.directory, snapshot.directory)
        XCTAssertEqual(server.requests.count, requests, "a cached repository is used without asking the hub")
    }

    func testALegacyNameIsStoredUnderTheNameGivenAndOtherRevisionsGetTheirRef() async throws {
        let snapshot = try await hub().tokenizer("tiny")
        XCTAssertEqual(snapshot.directory.path, folder("models--tiny/snapshots/\(modelCommit)").path)
        XCTAssertEqual(snapshot.files, ["special_tokens_map.json", "spiece.model", "tokenizer.json", "tokenizer_config.json"])

        let old = try await hub().tokenizer("org/tiny", revision: "v1")
        XCTAssertEqual(old.commit, oldModelCommit)
        XCTAssertEqual(try String(contentsOf: folder("models--org--tiny/refs/v1"), encoding: .utf8), oldModelCommit)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder("models--org--tiny/refs/main").path))
        let byCommit = try await hub(offline: true).tokenizer("org/tiny", revision: oldModelCommit)
        XCTAssertEqual(byCommit, old)
    }

    func testADatasetSplitIsItsShardsInOrder() async throws {
        let files = try await hub().datasetSplit("wikitext", config: "wikitext-2-raw-v1", split: "train")
        let snapshot = folder("datasets--wikitext/snapshots/\(datasetCommit)")
        XCTAssertEqual(files.map(\.path), (0..<3).map { snapshot.appendingPathComponent("wikitext-2-raw-v1/train-0000\($0)-of-00003.parquet").path })
        XCTAssertEqual(try String(contentsOf: files[2], encoding: .utf8), "PAR1 wikitext-2-raw-v1 train 2")
        let pointer = try FileManager.default.destinationOfSymbolicLink(atPath: files[0].path)
        XCTAssertTrue(pointer.hasPrefix("../../../blobs/"), pointer)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: snapshot.path), ["wikitext-2-raw-v1"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: snapshot.appendingPathComponent("wikitext-2-raw-v1").path).count, 3)

        let missing = await thrown { _ = try await self.hub().datasetSplit("wikitext", config: "wikitext-2-raw-v1", split: "dev") }
        XCTAssertTrue("\(missing!)".contains("wikitext-103-raw-v1: test, train; wikitext-2-raw-v1: test, train"), "\(missing!)")
    }

    func testADatasetWithoutParquetOnMainIsReadFromTheParquetConversion() async throws {
        let files = try await hub().datasetSplit("org/scripted", config: "default", split: "train")
        let snapshot = folder("datasets--org--scripted/snapshots/\(commit(15))")
        XCTAssertEqual(files.map(\.path), ["default/train/0000.parquet", "default/train/0001.parquet"].map {
            snapshot.appendingPathComponent($0).path
        })
        XCTAssertEqual(try String(contentsOf: folder("datasets--org--scripted/refs/refs/convert/parquet"), encoding: .utf8), commit(15))
        let requests = server.requests.count
        let offline = try await hub(offline: true).datasetSplit("org/scripted", config: "default", split: "train")
        XCTAssertEqual(offline, files)
        XCTAssertEqual(server.requests.count, requests)
        // Absent from both: the error is about the revision asked for.
        let missing = await thrown { _ = try await self.hub().datasetSplit("org/scripted", config: "default", split: "dev") }
        XCTAssertTrue("\(missing!)".contains("no parquet files"), "\(missing!)")
    }

    func testOfflineUsesOnlyTheCache() async throws {
        let notCached = await thrown { _ = try await self.hub(offline: true).model("org/tiny") }
        XCTAssertTrue(server.requests.isEmpty)
        guard case .notCached? = notCached as? HubError else { return XCTFail("\(String(describing: notCached))") }
        XCTAssertTrue("\(notCached!)".contains(folder("models--org--tiny").path), "\(notCached!)")
        XCTAssertTrue("\(notCached!)".contains("HF_HUB_OFFLINE"), "\(notCached!)")
        let bare = await thrown { _ = try await self.hub(offline: true).datasetSplit("wikitext", config: "c", split: "train") }
        XCTAssertTrue("\(bare!)".contains("datasets--*--wikitext"), "\(bare!)")

        _ = try await hub().datasetSplit("Salesforce/wikitext", config: "wikitext-2-raw-v1", split: "test")
        let requests = server.requests.count
        let offline = try await hub(offline: true).datasetSplit("wikitext", config: "wikitext-2-raw-v1", split: "test")
        XCTAssertEqual(offline.map(\.lastPathComponent), ["test-00000-of-00001.parquet"])
        XCTAssertEqual(server.requests.count, requests)
        let otherSplit = await thrown { _ = try await self.hub(offline: true).datasetSplit("wikitext", config: "wikitext-2-raw-v1", split: "train") }
        XCTAssertTrue("\(otherSplit!)".contains("Split 'train'"), "\(otherSplit!)")
        XCTAssertEqual(server.requests.count, requests)
    }

    func testPrivateAndGatedRepositoriesNeedAToken() async throws {
        let anonymous = await thrown { _ = try await self.hub().tokenizer("org/private") }
        XCTAssertEqual(anonymous as? HubError, .accessDenied(repository: "org/private", status: 401, tokenGiven: false))
        XCTAssertTrue("\(anonymous!)".contains("HF_TOKEN"), "\(anonymous!)")
        let wrong = await thrown { _ = try await self.hub(token: "hf_wrong").tokenizer("org/private") }
        XCTAssertNotNil(wrong as? HubError)
        let snapshot = try await hub(token: FakeHub.token).tokenizer("org/private")
        XCTAssertEqual(snapshot.files, ["tokenizer.json"])
        let gated = await thrown { _ = try await self.hub(token: FakeHub.token).tokenizer("org/gated") }
        XCTAssertEqual(gated as? HubError, .accessDenied(repository: "org/gated", status: 403, tokenGiven: true))
        XCTAssertTrue("\(gated!)".contains("gated"), "\(gated!)")
    }

    func testWhatDoesNotExistIsNamed() async throws {
        let noRepo = await thrown { _ = try await self.hub().model("org/nothing") }
        XCTAssertTrue("\(noRepo!)".contains("no repository org/nothing"), "\(noRepo!)")
        let noRevision = await thrown { _ = try await self.hub().model("org/tiny", revision: "v9") }
        XCTAssertTrue("\(noRevision!)".contains("no revision 'v9'"), "\(noRevision!)")
        let noWeights = await thrown { _ = try await self.hub().model("org/tiny", revision: "v1") }
        XCTAssertTrue("\(noWeights!)".contains("no config.json"), "\(noWeights!)")
        let noParquet = await thrown { _ = try await self.hub().datasetSplit("org/tiny", config: "default", split: "train") }
        XCTAssertTrue("\(noParquet!)".contains("no repository dataset org/tiny"), "\(noParquet!)")
        let badName = await thrown { _ = try await self.hub().model("../etc") }
        XCTAssertNotNil(badName as? HubError)
    }

    func testAFileFromAnotherCommitIsRefused() async throws {
        server.resolveHeaders.withLock { $0 = ["X-Repo-Commit": commit(99)] }
        let error = await thrown { _ = try await self.hub().tokenizer("org/tiny") }
        guard case .badResponse? = error as? HubError else { return XCTFail("\(String(describing: error))") }
        XCTAssertTrue("\(error!)".contains(commit(99)), "\(error!)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder("models--org--tiny/snapshots").path))
    }

    func testAnUnreachableEndpointIsNamed() async throws {
        // A model cached without its tokenizer (as Python may leave it) serves when the hub cannot be reached.
        try CacheBuilder(root: cacheRoot).add(.model, "org/partial", commit: commit(30), files: ["config.json": "{}", "model.safetensors": "w"])
        await server.stop()
        let partial = try await hub().model("org/partial")
        XCTAssertEqual(partial.files, ["config.json", "model.safetensors"])

        let endpoint = server.endpoint.absoluteString
        let error = await thrown { _ = try await self.hub().model("org/tiny") }
        guard case .network(let named, _)? = error as? HubError else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(named, endpoint)
        XCTAssertTrue("\(error!)".contains("HF_HUB_OFFLINE"), "\(error!)")
    }

    func testABrokenDownloadIsNotTakenAsCompleteAndAnotherRunResumesIt() async throws {
        server.breakOff.withLock { $0["model.safetensors"] = 30_000 }
        let broken = await thrown { _ = try await self.hub().model("org/tiny") }
        guard case .network? = broken as? HubError else { return XCTFail("\(String(describing: broken))") }
        let etag = FakeHub.etag(weights, length: 64, salt: "lfs")
        let blob = folder("models--org--tiny/blobs/\(etag)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: blob.path))
        let partial = try Data(contentsOf: URL(fileURLWithPath: blob.path + ".incomplete"))
        XCTAssertLessThanOrEqual(partial.count, 30_000)
        XCTAssertEqual(partial, weights.prefix(partial.count))
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder("models--org--tiny/snapshots/\(modelCommit)/model.safetensors").path))
        let offline = await thrown { _ = try await self.hub(offline: true).model("org/tiny") }
        guard case .notCached? = offline as? HubError else { return XCTFail("\(String(describing: offline))") }

        let snapshot = try await hub().model("org/tiny")
        XCTAssertEqual(try Data(contentsOf: snapshot.directory.appendingPathComponent("model.safetensors")), weights)
        XCTAssertFalse(FileManager.default.fileExists(atPath: blob.path + ".incomplete"))
        XCTAssertGreaterThan(partial.count, 0)
        XCTAssertTrue(server.requests.contains { $0.hasSuffix("bytes=\(partial.count)-") }, "\(server.requests)")
    }

    func testABrokenDownloadStartsOverWhereRangesAreNotHonoured() async throws {
        server.honoursRange.withLock { $0 = false }
        server.breakOff.withLock { $0["model.safetensors"] = 20_000 }
        _ = await thrown { _ = try await self.hub().model("org/tiny") }
        let snapshot = try await hub().model("org/tiny")
        XCTAssertEqual(try Data(contentsOf: snapshot.directory.appendingPathComponent("model.safetensors")), weights)
    }
}
