import Foundation
import XCTest
@testable import AlbertMoE

/// TextCorpus over the Parquet, Arrow and save_to_disk fixtures of the Columnar tests (made by
/// Scripts/make_columnar_fixtures.py): the same examples as the Python libraries wrote, nulls and blank texts skipped.
final class ColumnarCorpusTests: XCTestCase {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("ColumnarTests/Fixtures")

    /// The values the fixture script wrote for `name` (nil for null), or those of one split.
    func expected(_ name: String, split: String? = nil) throws -> [String?] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("expected.json"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        let entry = try XCTUnwrap(object[name])
        let values = split.map { (entry["splits"] as? [String: Any])?[$0] } ?? entry["values"]
        return try XCTUnwrap(values as? [Any]).map { $0 as? String }
    }

    func kept(_ values: [String?]) -> [String] { values.compactMap { $0 }.filter { !isBlank($0) } }

    func testParquetDirectoryReadsShardsInOrderWithRowNumbers() throws {
        let corpus = try TextCorpus(path: fixtures.appendingPathComponent("shards"))
        XCTAssertEqual(corpus.files.map(\.lastPathComponent),
                       ["train-00000-of-00003.parquet", "train-00001-of-00003.parquet", "train-00002-of-00003.parquet"])
        let examples = try corpus.readAll()
        XCTAssertEqual(examples.map(\.text), kept(try expected("shards")))
        XCTAssertEqual(examples.map(\.index), Array(0..<examples.count))
        // The line is the 1-based row within its file.
        let values = try expected("shards")
        for example in examples {
            let shard = corpus.files.firstIndex(of: example.file)!
            XCTAssertEqual(values[shard * 23 + example.line - 1], example.text)
        }
        XCTAssertEqual(try corpus.readAll(maxSamples: 5).map(\.text), Array(kept(try expected("shards")).prefix(5)))
    }

    func testADirectoryWithShardsReadsOnlyTheShards() throws {
        let dir = try DataTestSupport.temporaryDirectory(self)
        try DataTestSupport.write("# A dataset card, not an example\n", to: "README.md", in: dir)
        try DataTestSupport.write("{\"features\": {}}\n", to: "dataset_info.json", in: dir)
        for name in ["plain_v1_none.parquet", "ipc_stream.arrow"] {
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let corpus = try TextCorpus(path: dir)
        XCTAssertEqual(corpus.files.map(\.lastPathComponent), ["ipc_stream.arrow", "plain_v1_none.parquet"])
        XCTAssertEqual(try corpus.readAll().map(\.text), kept(try expected("ipc_stream.arrow")) + kept(try expected("plain_v1_none.parquet")))
    }

    func testSingleParquetAndArrowFiles() throws {
        for name in ["dict_v2_zstd.parquet", "plain_v1_none.parquet", "ipc_stream_lz4.arrow", "ipc_file.arrow"] {
            let corpus = try TextCorpus(path: fixtures.appendingPathComponent(name))
            XCTAssertEqual(try corpus.readAll().map(\.text), kept(try expected(name)), name)
        }
        let nested = try TextCorpus(path: fixtures.appendingPathComponent("nested.parquet"), textColumn: "meta.text")
        XCTAssertEqual(try nested.readAll().map(\.text), kept(try expected("nested.parquet")))
    }

    func testSaveToDiskDirectories() throws {
        let dataset = try TextCorpus(path: fixtures.appendingPathComponent("saved_dataset"))
        XCTAssertEqual(dataset.files.map(\.lastPathComponent), ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"])
        XCTAssertEqual(try dataset.readAll().map(\.text), kept(try expected("saved_dataset")))
        let dict = fixtures.appendingPathComponent("saved_dataset_dict")
        XCTAssertEqual(try TextCorpus(path: dict).readAll().map(\.text), kept(try expected("saved_dataset_dict", split: "train")))
        XCTAssertEqual(try TextCorpus(path: dict, split: "validation").readAll().map(\.text),
                       kept(try expected("saved_dataset_dict", split: "validation")))
        XCTAssertThrowsError(try TextCorpus(path: dict, split: "test")) { error in
            XCTAssertEqual(error as? AlbertMoEError, .badFile(path: dict.path, reason: "no split 'test' in this DatasetDict (splits: 'train', 'validation')"))
        }
    }

    func testColumnarErrorsNameTheFile() throws {
        let file = fixtures.appendingPathComponent("plain_v2_gzip.parquet")
        XCTAssertThrowsError(try TextCorpus(path: file, textColumn: "body").readAll()) { error in
            XCTAssertEqual(error as? AlbertMoEError, .badFile(path: file.path, reason: "no column 'body' (columns: 'id', 'text', 'score')"))
        }
        let fake = fixtures.appendingPathComponent("not_parquet.parquet")
        XCTAssertThrowsError(try TextCorpus(path: fake).readAll()) { error in
            XCTAssertEqual(error as? AlbertMoEError, .badFile(path: fake.path, reason: "not a Parquet file (it does not start with PAR1)"))
        }
    }
}
