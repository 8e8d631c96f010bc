import Foundation
import Tensors
import XCTest
@testable import Columnar

/// The fixtures of Scripts/make_columnar_fixtures.py and the values pyarrow / datasets wrote into them.
enum Fixtures {
    static let directory = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    /// Each fixture's column and its values in row order (nil for a null row); `splits` for a DatasetDict.
    static func expected() throws -> [String: (column: String, values: [String?], splits: [String: [String?]])] {
        let data = try Data(contentsOf: directory.appendingPathComponent("expected.json"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]])
        func values(_ any: Any?) throws -> [String?] {
            try XCTUnwrap(any as? [Any]).map { $0 as? String }
        }
        return try object.mapValues { entry in
            let splits = try (entry["splits"] as? [String: Any] ?? [:]).mapValues { try values($0) }
            return (try XCTUnwrap(entry["column"] as? String), try values(entry["values"]), splits)
        }
    }

    /// The single files (Parquet and Arrow) among the fixtures.
    static func files() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { ["parquet", "arrow"].contains($0.pathExtension) && $0.lastPathComponent != "not_parquet.parquet" }
            .sorted { $0.path < $1.path }
    }

    /// The non-null values of `column` in `files`, with their row in their file.
    static func read(_ files: [URL], column: String) throws -> [(Int, String)] {
        var out: [(Int, String)] = []
        for file in files {
            try openColumnarFile(path: file.path).forEachString(column: column) { row, text in
                out.append((row, text))
                return true
            }
        }
        return out
    }

    /// The expected non-null values with their row, each file's rows counted from 0.
    static func rows(_ values: [String?], fileLengths: [Int]? = nil) -> [(Int, String)] {
        var starts: [Int] = []
        var total = 0
        for n in fileLengths ?? [values.count] { starts.append(total); total += n }
        return values.enumerated().compactMap { i, v in
            let file = starts.lastIndex { $0 <= i }!
            return v.map { (i - starts[file], $0) }
        }
    }
}

final class ColumnarReaderTests: XCTestCase {
    func assertSame(_ got: [(Int, String)], _ want: [(Int, String)], _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, name, file: file, line: line)
        for (g, w) in zip(got, want) where g != w {
            XCTFail("\(name): got row \(g.0) \(g.1.debugDescription), expected row \(w.0) \(w.1.debugDescription)", file: file, line: line)
            return
        }
    }

    func testEveryFileGivesItsValuesInOrder() throws {
        let expected = try Fixtures.expected()
        let files = try Fixtures.files()
        XCTAssertGreaterThanOrEqual(files.count, 21)
        for file in files {
            let entry = try XCTUnwrap(expected[file.lastPathComponent], file.lastPathComponent)
            let got = try Fixtures.read([file], column: entry.column)
            assertSame(got, Fixtures.rows(entry.values), file.lastPathComponent)
            XCTAssertTrue(got.contains { $0.1.isEmpty }, "\(file.lastPathComponent) has an empty string")
        }
    }

    /// The fixtures hold the page versions and encodings they are named for (so each decoder is exercised).
    func testFixturesCoverEachPageVersionAndEncoding() throws {
        let expected: [String: Set<[Int]>] = [
            "plain_v1_none.parquet": [[1, 0]], "plain_v2_gzip.parquet": [[2, 0]], "plain_v1_zstd.parquet": [[1, 0]],
            "dict_v1_snappy.parquet": [[1, 8]], "dict_v2_snappy.parquet": [[2, 8]], "dict_v1_gzip.parquet": [[1, 8]],
            "dict_v2_zstd.parquet": [[2, 8]], "delta_v2_zstd.parquet": [[2, 7]], "delta_length_v1_gzip.parquet": [[1, 6]],
            "small_pages.parquet": [[1, 8], [1, 0]], "dict_v2_lz4.parquet": [[2, 8]],
        ]
        for (name, kinds) in expected {
            let file = try ParquetFile(path: Fixtures.directory.appendingPathComponent(name).path)
            try file.forEachString(column: "text") { _, _ in true }
            XCTAssertEqual(file.pageKinds, kinds, name)
        }
    }

    func testUnicodeSurvives() throws {
        let texts = try Fixtures.read([Fixtures.directory.appendingPathComponent("dict_v2_zstd.parquet")], column: "text").map(\.1)
        let all = texts.joined()
        for needle in ["café", "東京", "😀", "Привет", "line one\nline two"] where all.contains(needle) == false {
            XCTFail("no \(needle) in the texts")
        }
    }

    func testShardsInSortedOrder() throws {
        let expected = try XCTUnwrap(try Fixtures.expected()["shards"])
        let directory = Fixtures.directory.appendingPathComponent("shards")
        let shards = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil).sorted { $0.path < $1.path }
        XCTAssertEqual(shards.count, 3)
        let lengths = try shards.map { try ParquetFile(path: $0.path).rowCount }
        XCTAssertEqual(lengths, [23, 23, 23])
        assertSame(try Fixtures.read(shards, column: "text"), Fixtures.rows(expected.values, fileLengths: lengths), "shards")
    }

    func testSavedDatasetAndDatasetDict() throws {
        let expected = try Fixtures.expected()
        let dataset = Fixtures.directory.appendingPathComponent("saved_dataset")
        let files = try XCTUnwrap(try SavedDataset.dataFiles(in: dataset, split: "train"))
        XCTAssertEqual(files.map(\.lastPathComponent), ["data-00000-of-00002.arrow", "data-00001-of-00002.arrow"])
        XCTAssertFalse(try files.contains { try ArrowFile(path: $0.path).isFileFormat })
        let got = try Fixtures.read(files, column: "text").map(\.1)
        XCTAssertEqual(got, expected["saved_dataset"]!.values.compactMap { $0 })

        let dict = Fixtures.directory.appendingPathComponent("saved_dataset_dict")
        for split in ["train", "validation"] {
            let files = try XCTUnwrap(try SavedDataset.dataFiles(in: dict, split: split))
            XCTAssertEqual(try Fixtures.read(files, column: "text").map(\.1), expected["saved_dataset_dict"]!.splits[split]!.compactMap { $0 })
        }
        XCTAssertThrowsError(try SavedDataset.dataFiles(in: dict, split: "test")) { error in
            XCTAssertTrue("\(error)".contains("no split 'test'") && "\(error)".contains("'train', 'validation'"), "\(error)")
        }
        XCTAssertNil(try SavedDataset.dataFiles(in: Fixtures.directory.appendingPathComponent("shards"), split: "train"))
    }

    func testFileAndStreamFormats() throws {
        XCTAssertTrue(try ArrowFile(path: Fixtures.directory.appendingPathComponent("ipc_file.arrow").path).isFileFormat)
        XCTAssertTrue(try ArrowFile(path: Fixtures.directory.appendingPathComponent("ipc_file_zstd.arrow").path).isFileFormat)
        XCTAssertFalse(try ArrowFile(path: Fixtures.directory.appendingPathComponent("ipc_stream_lz4.arrow").path).isFileFormat)
        XCTAssertTrue(try ArrowFile(path: Fixtures.directory.appendingPathComponent("ipc_string_view.arrow").path).isFileFormat)
    }

    func testStoppingEarly() throws {
        for file in try Fixtures.files() {
            let source = try openColumnarFile(path: file.path)
            let column = file.lastPathComponent == "nested.parquet" ? "meta.text" : "text"
            var seen = 0
            try source.forEachString(column: column) { _, _ in seen += 1; return seen < 3 }
            XCTAssertEqual(seen, 3, file.lastPathComponent)
        }
    }

    /// Row groups and record batches are read one at a time: what is resident never exceeds one column chunk
    /// (compressed, plus its pages decompressed), and stays below the whole column.
    func testMemoryIsBoundedByOneRowGroupOrBatch() throws {
        for name in ["plain_v1_none.parquet", "dict_v2_snappy.parquet", "plain_v2_gzip.parquet", "small_pages.parquet", "large_string.parquet"] {
            let file = try ParquetFile(path: Fixtures.directory.appendingPathComponent(name).path)
            XCTAssertGreaterThan(file.rowGroupRows.count, 1, name)
            let sizes = try file.chunkSizes(column: "text")
            try file.forEachString(column: "text") { _, _ in true }
            let largestGroup = sizes.map { $0.compressed + $0.uncompressed }.max()!
            XCTAssertGreaterThan(file.peakResidentBytes, 0, name)
            XCTAssertLessThanOrEqual(file.peakResidentBytes, largestGroup, name)
            XCTAssertLessThan(file.peakResidentBytes, sizes.map(\.compressed).reduce(0, +), name)
        }
        for name in ["ipc_file.arrow", "ipc_stream.arrow", "ipc_stream_lz4.arrow", "ipc_file_zstd.arrow"] {
            let url = Fixtures.directory.appendingPathComponent(name)
            let file = try ArrowFile(path: url.path)
            try file.forEachString(column: "text") { _, _ in true }
            let size = try XCTUnwrap(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int)
            XCTAssertGreaterThan(file.peakResidentBytes, 0, name)
            XCTAssertLessThan(file.peakResidentBytes * 3, size, name)
        }
    }

    func testMissingColumnListsTheColumns() throws {
        for name in ["plain_v1_none.parquet", "ipc_file.arrow", "ipc_stream.arrow"] {
            let path = Fixtures.directory.appendingPathComponent(name).path
            XCTAssertThrowsError(try openColumnarFile(path: path).forEachString(column: "body") { _, _ in true }) { error in
                let e = error as? ColumnarError
                XCTAssertEqual(e?.path, path)
                XCTAssertEqual(e?.reason, "no column 'body' (columns: 'id', 'text', 'score')")
            }
        }
        let nested = Fixtures.directory.appendingPathComponent("nested.parquet").path
        XCTAssertThrowsError(try ParquetFile(path: nested).forEachString(column: "text") { _, _ in true }) { error in
            XCTAssertEqual((error as? ColumnarError)?.reason, "no column 'text' (columns: 'id', 'meta.text', 'meta.n')")
        }
    }

    func testNonTextColumnIsRefused() throws {
        let parquet = Fixtures.directory.appendingPathComponent("plain_v1_none.parquet").path
        XCTAssertThrowsError(try ParquetFile(path: parquet).forEachString(column: "id") { _, _ in true }) { error in
            XCTAssertEqual((error as? ColumnarError)?.reason, "column 'id' holds INT64 values, not text")
        }
        let arrow = Fixtures.directory.appendingPathComponent("ipc_stream.arrow").path
        XCTAssertThrowsError(try ArrowFile(path: arrow).forEachString(column: "score") { _, _ in true }) { error in
            XCTAssertEqual((error as? ColumnarError)?.reason, "column 'score' holds values of Arrow type FloatingPoint, not Utf8, LargeUtf8 or Utf8View text")
        }
    }

    /// Text after list, group, dictionary, view, null and other columns: the right pages and buffers are found.
    func testTextAfterColumnsOfOtherShapes() throws {
        let parquet = try ParquetFile(path: Fixtures.directory.appendingPathComponent("mixed.parquet").path)
        XCTAssertEqual(parquet.columns, ["tags.list.element", "meta.n", "meta.s", "text"])
        XCTAssertThrowsError(try parquet.forEachString(column: "tags.list.element") { _, _ in true }) { error in
            XCTAssertEqual((error as? ColumnarError)?.reason, "column 'tags.list.element' is a list (repeated), not one text per row")
        }
        let strings = try ParquetFile(path: Fixtures.directory.appendingPathComponent("mixed.parquet").path)
        var got: [String] = []
        try strings.forEachString(column: "meta.s") { _, text in got.append(text); return true }
        XCTAssertEqual(got, (0..<40).map(String.init))

        let arrow = try ArrowFile(path: Fixtures.directory.appendingPathComponent("ipc_mixed.arrow").path)
        XCTAssertEqual(arrow.columns, ["flag", "meta", "tags", "big", "fixed", "category", "view", "nothing", "bytes", "when", "text"])
        XCTAssertThrowsError(try arrow.forEachString(column: "category") { _, _ in true }) { error in
            XCTAssertEqual((error as? ColumnarError)?.reason,
                           "column 'category' holds dictionary-encoded values, not Utf8, LargeUtf8 or Utf8View text")
        }
        var views = 0
        try arrow.forEachString(column: "view") { _, text in views += text.isEmpty ? 0 : 1; return true }
        XCTAssertEqual(views, 24)
    }

    func testUnsupportedCodecIsNamed() throws {
        let path = Fixtures.directory.appendingPathComponent("brotli.parquet.unsupported").path
        XCTAssertThrowsError(try ParquetFile(path: path).forEachString(column: "text") { _, _ in true }) { error in
            XCTAssertEqual(error as? ColumnarError,
                           ColumnarError(path: path, reason: "row group 0, column 'text': the BROTLI compression is not supported"))
        }
    }

    func testNotAParquetFile() throws {
        let path = Fixtures.directory.appendingPathComponent("not_parquet.parquet").path
        XCTAssertThrowsError(try ParquetFile(path: path)) { error in
            XCTAssertEqual(error as? ColumnarError, ColumnarError(path: path, reason: "not a Parquet file (it does not start with PAR1)"))
        }
        XCTAssertThrowsError(try ArrowFile(path: path)) { error in
            XCTAssertEqual((error as? ColumnarError)?.path, path)
        }
        XCTAssertThrowsError(try openColumnarFile(path: path)) { error in
            XCTAssertEqual((error as? ColumnarError)?.path, path)
        }
        XCTAssertThrowsError(try ParquetFile(path: path + ".missing")) { error in
            XCTAssertTrue("\(error)".contains("cannot open the file"), "\(error)")
        }
    }

    func testMissingLibraryNamesTheLibrary() {
        let result = loadCodecLibrary("libnot-a-codec.so.7", codec: "ZSTD") { _ in 0 }
        guard case let .failure(error) = result else { return XCTFail("loaded a library that does not exist") }
        XCTAssertTrue(error.reason.hasPrefix("ZSTD compression needs libnot-a-codec.so.7, which is not available"), error.reason)
        XCTAssertThrowsError(try naming("data/x.parquet") { try result.get() }) { error in
            XCTAssertTrue("\(error)".hasPrefix("data/x.parquet: ZSTD compression needs libnot-a-codec.so.7"), "\(error)")
        }
    }
}
