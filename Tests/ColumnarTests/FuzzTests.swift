import Foundation
import Tensors
import XCTest
@testable import Columnar

/// Seeded mutations of the valid fixtures (bit flips, byte stores, truncations, length-sized fields set to huge or
/// negative values) must read to an error naming the file or to some result, never a crash, hang or huge allocation.
/// The mutated bytes are read from memory through the same positioned reads as a file.
final class FuzzTests: XCTestCase {
    func mutate(_ bytes: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var out = bytes
        switch rng.next() % 6 {
        case 0:
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(out.count))
                out[i] ^= 1 << UInt8(rng.next() % 8)
            }
        case 1:
            out[Int(rng.next() % UInt64(out.count))] = UInt8(truncatingIfNeeded: rng.next())
        case 2:
            out = Array(out.prefix(Int(rng.next() % UInt64(out.count))))
        case 3, 4:
            let values: [UInt32] = [0xFFFF_FFFF, 0x7FFF_FFFF, 0x8000_0000, 0x0100_0000, 0xFFFF]
            let value = values[Int(rng.next() % UInt64(values.count))]
            let i = Int(rng.next() % UInt64(max(1, out.count - 4)))
            for k in 0..<min(4, out.count - i) { out[i + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
        default:
            // A Thrift varint made huge: a run of continuation bytes.
            let i = Int(rng.next() % UInt64(out.count))
            for k in i..<min(out.count, i + 1 + Int(rng.next() % 9)) { out[k] = 0xFF }
        }
        return out
    }

    func testMutatedFixturesGiveAnErrorOrAResult() throws {
        var rng = SeededGenerator(seed: 20_261_203)
        var cases = 0, errors = 0
        for fixture in try Fixtures.files() {
            let bytes = try [UInt8](Data(contentsOf: fixture))
            let column = fixture.lastPathComponent == "nested.parquet" ? "meta.text" : "text"
            let target = "mutated/\(fixture.lastPathComponent)"
            for _ in 0..<400 {
                let file = RandomAccessFile(path: target, contents: mutate(bytes, &rng))
                cases += 1
                do {
                    let source: any TextColumnSource = fixture.pathExtension == "parquet" ? try ParquetFile(file) : try ArrowFile(file)
                    var values = 0
                    try source.forEachString(column: column) { _, text in
                        values += 1
                        XCTAssertLessThan(text.utf8.count, 1 << 20)
                        return true
                    }
                    XCTAssertLessThan(values, 1000)
                } catch let error as ColumnarError {
                    errors += 1
                    XCTAssertEqual(error.path, target)
                    XCTAssertFalse(error.reason.isEmpty)
                }
            }
        }
        XCTAssertGreaterThan(cases, 6000)
        XCTAssertGreaterThan(errors, cases / 4)
    }

    /// Damaged state.json and dataset_dict.json files give a `ColumnarError`, a list of files, or nil.
    func testMutatedSaveToDiskStateFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("columnar-fuzz-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(at: Fixtures.directory.appendingPathComponent("saved_dataset_dict"), to: directory)
        var rng = SeededGenerator(seed: 5)
        for name in ["dataset_dict.json", "train/state.json"] {
            let url = directory.appendingPathComponent(name)
            let original = try [UInt8](Data(contentsOf: url))
            for _ in 0..<100 {
                try Data(mutate(original, &rng)).write(to: url)
                do { _ = try SavedDataset.dataFiles(in: directory, split: "train") } catch let error as ColumnarError {
                    XCTAssertTrue(error.path.hasPrefix(directory.path), error.description)
                }
            }
            try Data(original).write(to: url)
        }
        XCTAssertEqual(try SavedDataset.dataFiles(in: directory, split: "train")?.count, 1)
    }
}
