import Foundation
import XCTest
@testable import Layers

final class SafetensorsTests: XCTestCase {
    let expected: [Float] = (0..<12).map { Float($0) * 0.5 - 3 }

    func fixture(_ name: String) throws -> URL {
        let dir = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return dir.appendingPathComponent(name)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testReadsFilesWrittenByPython() throws {
        for dtype in ["f32", "f16", "bf16", "f64"] {
            let f = try SafetensorsFile.read(try fixture("python_\(dtype).safetensors"))
            XCTAssertEqual(f.metadata, ["made_by": "python", "dtype": dtype])
            let w = try f.float("weights")
            XCTAssertEqual(w.shape, [3, 4])
            XCTAssertEqual(w.scalars, expected, dtype)
            XCTAssertEqual(try f.float("scalar").shape, [])
            XCTAssertEqual(try f.float("scalar").item, 2.5)
            XCTAssertEqual(try f.float("empty").shape, [0])
            XCTAssertEqual(try f.int("ids"), IntTensor([Int32(1), -2, 3], shape: [1, 3]))
            XCTAssertThrowsError(try f.float("ids")) { XCTAssertTrue("\($0)".contains("ids")) }
            XCTAssertThrowsError(try f.float("missing")) { XCTAssertTrue("\($0)".contains("missing")) }
        }
    }

    func testRoundTrip() throws {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]), s = Tensor(scalar: -1), e = Tensor.zeros([0, 4])
        let ids = IntTensor([Int32(7), -8], shape: [2])
        let url = try temporaryDirectory().appendingPathComponent("x.safetensors")
        try Safetensors.write(["a": a, "s": s, "e": e], ints: ["ids": ids], metadata: ["k": "v"], to: url)
        let f = try SafetensorsFile.read(url)
        XCTAssertEqual(f.metadata, ["k": "v"])
        XCTAssertEqual(try f.float("a").scalars, a.scalars)
        XCTAssertEqual(try f.float("a").shape, [2, 3])
        XCTAssertEqual(try f.float("s").shape, [])
        XCTAssertEqual(try f.float("e").shape, [0, 4])
        XCTAssertEqual(try f.int("ids"), ids)
        // The layout the Python library expects: header padded to 8 bytes, keys in order, data contiguous.
        let data = try Data(contentsOf: url)
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(data.count, 8 + n + 6 * 4 + 4 + 2 * 8)
    }

    func testAtomicWrite() throws {
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("m.safetensors")
        try Safetensors.write(["a": Tensor([1])], to: url)
        try Safetensors.write(["a": Tensor([2, 3])], to: url)
        XCTAssertEqual(try SafetensorsFile.read(url).float("a").scalars, [2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["m.safetensors"], "no temporary file left")
        let nowhere = dir.appendingPathComponent("missing/dir/m.safetensors")
        XCTAssertThrowsError(try Safetensors.write(["a": Tensor([1])], to: nowhere)) { e in
            XCTAssertTrue("\(e)".contains("cannot write"), "\(e)")
        }
    }

    /// A file made of a raw header and data.
    func file(_ header: String, data: [UInt8] = [], lengthOverride: UInt64? = nil) -> Data {
        var out = Data()
        var n = (lengthOverride ?? UInt64(header.utf8.count)).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(contentsOf: Array(header.utf8))
        out.append(contentsOf: data)
        return out
    }

    func assertRejected(_ data: Data, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try SafetensorsFile.read(data, name: "bad.safetensors"), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(fragment) && "\(e)".contains("bad.safetensors"), "\(e)", file: file, line: line)
        }
    }

    func testDamagedFilesAreNamedErrors() {
        let four = [UInt8](repeating: 0, count: 8)
        assertRejected(Data([1, 2, 3]), "too short")
        assertRejected(file("{}", lengthOverride: 50), "past the end")
        assertRejected(file("{}", lengthOverride: 200_000_000), "exceeds the limit")
        assertRejected(file("{not json"), "not valid JSON")
        assertRejected(file("[1, 2]"), "not a JSON object")
        assertRejected(file(#"{"a": 3}"#), "not an object")
        assertRejected(file(#"{"a": {"shape": [2], "data_offsets": [0, 8]}}"#, data: four), "no dtype")
        assertRejected(file(#"{"a": {"dtype": "Q8", "shape": [2], "data_offsets": [0, 8]}}"#, data: four), "unknown dtype \"Q8\"")
        assertRejected(file(#"{"a": {"dtype": "F32", "data_offsets": [0, 8]}}"#, data: four), "no shape")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#, data: four), "invalid dimension")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 8]}}"#, data: four), "invalid dimension")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [true], "data_offsets": [0, 8]}}"#, data: four), "invalid dimension")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [100000000, 100000000], "data_offsets": [0, 8]}}"#, data: four), "larger than the file")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}"#, data: four), "data_offsets")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}"#, data: four), "outside the data")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}"#, data: four), "outside the data")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, data: four), "expected 12")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, data: four), "overlaps")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, data: four), "gap")
        assertRejected(file(#"{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, data: four), "after the last tensor")
        assertRejected(file(#"{"__metadata__": {"k": 1}}"#), "not a string")
        XCTAssertNoThrow(try SafetensorsFile.read(file(#"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}"#, data: four)))
    }

    /// Truncations and flipped bytes of a valid file: each read either succeeds or throws, never crashes.
    func testDamageNeverCrashes() throws {
        let good = try Safetensors.encode(["weight": Tensor((0..<40).map(Float.init), shape: [5, 8]), "b": Tensor([1, 2])],
                                          ints: ["ids": IntTensor([Int32(3), 4])], metadata: ["m": "x"])
        var outcomes = 0
        for length in 0..<good.count {
            _ = try? SafetensorsFile.read(good.prefix(length))
            outcomes += 1
        }
        var g = SeededGenerator(seed: 5)
        for _ in 0..<2000 {
            var bad = good
            for _ in 0..<(1 + g.nextInt(below: 3)) {
                let i = g.nextInt(below: min(bad.count, 8 + 200))
                bad[i] = UInt8(g.nextInt(below: 256))
            }
            _ = try? SafetensorsFile.read(bad)
            outcomes += 1
        }
        XCTAssertEqual(outcomes, good.count + 2000)
    }
}
