@testable import Hub
import Foundation
import XCTest

/// The cache our downloads leave against the one huggingface_hub left for the same repositories served the same way
/// (Fixtures/huggingface_hub_layout.json, made by Scripts/make_hub_fixture.py).
final class LayoutParityTests: XCTestCase {
    struct Fixture: Decodable {
        struct Repository: Decodable {
            struct File: Decodable { let text: String; let lfs: Bool; let etag: String }
            let kind: String, id: String, commit: String
            let files: [String: File]
        }
        struct Entry: Decodable, Equatable { let link: String?; let dir: Bool?; let text: String?; let size: Int? }
        let repositories: [Repository]
        let cache: [String: Entry]
    }

    func testDownloadsLeaveTheCacheHuggingFaceHubLeaves() async throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/huggingface_hub_layout", withExtension: "json"))
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let server = FakeHub(fixture.repositories.map { repo in
            let files = repo.files.mapValues { Data($0.text.unicodeScalars.map { UInt8($0.value) }) }
            return FakeRepository(kind: repo.kind, id: repo.id, revisions: ["main": repo.commit], files: [repo.commit: files],
                                  lfs: Set(repo.files.filter(\.value.lfs).keys), etags: repo.files.mapValues(\.etag))
        })
        try server.start()
        let root = try temporaryDirectory(self)
        let hub = Hub(settings: try HubSettings(environment: ["HF_HUB_CACHE": root.path, "HF_ENDPOINT": server.endpoint.absoluteString]))
        _ = try await hub.model("org/fixture")
        _ = try await hub.datasetSplit("org/fixdata", config: "cfg", split: "train")

        var ours: [String: Fixture.Entry] = [:]
        let walker = try XCTUnwrap(FileManager.default.enumerator(atPath: root.path))
        while let path = walker.nextObject() as? String {
            guard !path.hasPrefix(".locks") else { continue }
            let full = root.appendingPathComponent(path).path
            let attributes = try FileManager.default.attributesOfItem(atPath: full)
            switch attributes[.type] as? FileAttributeType {
            case .typeSymbolicLink?:
                ours[path] = .init(link: try FileManager.default.destinationOfSymbolicLink(atPath: full), dir: nil, text: nil, size: nil)
            case .typeDirectory?:
                ours[path] = .init(link: nil, dir: true, text: nil, size: nil)
            default:
                ours[path] = path.contains("/refs/")
                    ? .init(link: nil, dir: nil, text: try String(contentsOfFile: full, encoding: .utf8), size: nil)
                    : .init(link: nil, dir: nil, text: nil, size: (attributes[.size] as? NSNumber)?.intValue)
            }
        }
        XCTAssertEqual(Set(ours.keys), Set(fixture.cache.keys))
        for (path, entry) in fixture.cache { XCTAssertEqual(ours[path], entry, path) }
        XCTAssertTrue(server.leakedTokens.isEmpty)
        await server.stop()
    }
}
