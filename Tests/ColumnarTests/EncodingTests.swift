import Tensors
import XCTest
@testable import Columnar

/// The RLE / bit-packed hybrid and Snappy decoders against encoders written here from the format descriptions.
final class EncodingTests: XCTestCase {
    func varint(_ value: Int) -> [UInt8] {
        var v = UInt64(value), out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    /// Encodes `values` as a random mix of repeated runs and bit-packed groups of 8.
    func hybrid(_ values: [UInt32], bitWidth: Int, _ rng: inout SeededGenerator) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < values.count {
            var run = 1
            while i + run < values.count && values[i + run] == values[i] { run += 1 }
            if run >= 8 || rng.next() % 2 == 0 || values.count - i < 8 {
                out += varint(run << 1)
                for k in 0..<((bitWidth + 7) / 8) { out.append(UInt8(truncatingIfNeeded: values[i] >> (8 * UInt32(k)))) }
                i += run
            } else {
                let groups = (values.count - i) / 8 > 1 && rng.next() % 2 == 0 ? 2 : 1
                out += varint(groups << 1 | 1)
                var bits = [Bool]()
                for v in values[i..<(i + 8 * groups)] { for b in 0..<bitWidth { bits.append((v >> UInt32(b)) & 1 == 1) } }
                for start in stride(from: 0, to: bits.count, by: 8) {
                    var byte: UInt8 = 0
                    for b in 0..<8 where start + b < bits.count && bits[start + b] { byte |= 1 << UInt8(b) }
                    out.append(byte)
                }
                i += 8 * groups
            }
        }
        return out
    }

    func testHybridDecoderReadsWhatWasEncoded() throws {
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<300 {
            let bitWidth = Int(rng.next() % 33)
            let count = 1 + Int(rng.next() % 200)
            let limit: UInt64 = bitWidth == 32 ? UInt64(UInt32.max) + 1 : 1 << UInt64(bitWidth)
            var values: [UInt32] = []
            while values.count < count {
                let v = UInt32(truncatingIfNeeded: rng.next() % limit)
                values += Array(repeating: v, count: min(count - values.count, rng.next() % 3 == 0 ? 1 + Int(rng.next() % 20) : 1))
            }
            let bytes = hybrid(values, bitWidth: bitWidth, &rng)
            try bytes.withUnsafeBufferPointer { buffer in
                var decoder = try HybridDecoder(buffer, start: 0, end: buffer.count, bitWidth: bitWidth)
                for (i, v) in values.enumerated() { XCTAssertEqual(try decoder.next(), v, "value \(i), width \(bitWidth)") }
            }
        }
    }

    /// DELTA_BINARY_PACKED as the format describes it: blocks of `blockSize` deltas, a minimum delta per block and
    /// `miniblocks` miniblocks bit-packed at the width of their largest delta above that minimum.
    func deltaEncode(_ values: [Int64], blockSize: Int, miniblocks: Int) -> [UInt8] {
        func zigzag(_ v: Int64) -> [UInt8] { varint64(UInt64(bitPattern: (v << 1) ^ (v >> 63))) }
        var out = varint(blockSize) + varint(miniblocks) + varint(values.count) + zigzag(values.first ?? 0)
        let deltas = zip(values.dropFirst(), values).map { $0 &- $1 }
        let perMiniblock = blockSize / miniblocks
        for blockStart in stride(from: 0, to: deltas.count, by: blockSize) {
            let block = Array(deltas[blockStart..<min(deltas.count, blockStart + blockSize)])
            let minimum = block.min()!
            out += zigzag(minimum)
            let packed = block.map { UInt64(bitPattern: $0 &- minimum) }
            var widths: [Int] = []
            var bodies: [UInt8] = []
            for m in 0..<miniblocks {
                let part = packed.dropFirst(m * perMiniblock).prefix(perMiniblock)
                guard !part.isEmpty else { widths.append(0); continue }
                let width = part.map { 64 - $0.leadingZeroBitCount }.max()!
                widths.append(width)
                var bits: [Bool] = []
                for i in 0..<perMiniblock {
                    let v = i < part.count ? part[part.startIndex + i] : 0
                    for b in 0..<width { bits.append((v >> UInt64(b)) & 1 == 1) }
                }
                for start in stride(from: 0, to: bits.count, by: 8) {
                    var byte: UInt8 = 0
                    for b in 0..<8 where bits[start + b] { byte |= 1 << UInt8(b) }
                    bodies.append(byte)
                }
            }
            out += widths.map(UInt8.init) + bodies
        }
        return out
    }

    func varint64(_ value: UInt64) -> [UInt8] {
        var v = value, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    func testDeltaBinaryPackedReadsWhatWasEncoded() throws {
        var rng = SeededGenerator(seed: 13)
        for _ in 0..<200 {
            let count = Int(rng.next() % 700)
            let spread = [UInt64(4), 300, 1 << 20, UInt64.max][Int(rng.next() % 4)]
            let values = (0..<count).map { _ in Int64(bitPattern: spread == .max ? rng.next() : rng.next() % spread) }
            let (blockSize, miniblocks) = [(128, 4), (256, 8), (128, 1)][Int(rng.next() % 3)]
            let bytes = deltaEncode(values, blockSize: blockSize, miniblocks: miniblocks) + [0xAB]
            try bytes.withUnsafeBufferPointer { buffer in
                var position = 0
                XCTAssertEqual(try DeltaBinaryPacked.decode(buffer, &position, end: buffer.count, limit: count), values)
                XCTAssertEqual(position, buffer.count - 1, "the decoder stops where the encoding ends")
                position = 0
                if count > 1 {
                    XCTAssertThrowsError(try DeltaBinaryPacked.decode(buffer, &position, end: buffer.count, limit: count - 1))
                }
            }
        }
    }

    func testHybridDecoderRefusesTruncatedData() throws {
        let bytes: [UInt8] = [0x03, 0xFF]  // one bit-packed group of width 3 needs 3 bytes: only 2 values fit in 1
        try bytes.withUnsafeBufferPointer { buffer in
            var decoder = try HybridDecoder(buffer, start: 0, end: 2, bitWidth: 3)
            XCTAssertEqual(try decoder.next(), 7)
            XCTAssertEqual(try decoder.next(), 7)
            XCTAssertThrowsError(try decoder.next())
        }
        XCTAssertThrowsError(try bytes.withUnsafeBufferPointer { try HybridDecoder($0, start: 0, end: 2, bitWidth: 33) })
    }

    /// Snappy literals and copies (including overlapping ones) built by hand against the bytes they stand for.
    func testSnappyLiteralsAndCopies() throws {
        var rng = SeededGenerator(seed: 11)
        for _ in 0..<300 {
            var plain: [UInt8] = []
            var compressed: [UInt8] = []
            for _ in 0..<(1 + Int(rng.next() % 12)) {
                if plain.isEmpty || rng.next() % 2 == 0 {
                    let n = 1 + Int(rng.next() % 100)
                    let literal = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                    if n <= 60 { compressed.append(UInt8(n - 1) << 2) } else { compressed += [60 << 2, UInt8(n - 1)] }
                    compressed += literal
                    plain += literal
                } else {
                    let offset = 1 + Int(rng.next() % UInt64(min(plain.count, 2000)))
                    let n = 4 + Int(rng.next() % 60)
                    if n <= 11 && offset < 2048 && rng.next() % 2 == 0 {
                        compressed += [UInt8(offset >> 8) << 5 | UInt8(n - 4) << 2 | 1, UInt8(offset & 0xFF)]
                    } else if rng.next() % 2 == 0 {
                        compressed += [UInt8(n - 1) << 2 | 2, UInt8(offset & 0xFF), UInt8(offset >> 8)]
                    } else {
                        compressed += [UInt8(n - 1) << 2 | 3, UInt8(offset & 0xFF), UInt8(offset >> 8), 0, 0]
                    }
                    for _ in 0..<n { plain.append(plain[plain.count - offset]) }
                }
            }
            let stream = varint(plain.count) + compressed
            XCTAssertEqual(try Codec.snappy.decompress(stream, 0..<stream.count, size: plain.count), plain)
            XCTAssertThrowsError(try Codec.snappy.decompress(stream, 0..<(stream.count - 1), size: plain.count))
        }
        let badOffset = varint(8) + [3 << 2, 1, 2, 3, 4, 1 << 2 | 2, 9, 0]
        XCTAssertThrowsError(try Codec.snappy.decompress(badOffset, 0..<badOffset.count, size: 8))
    }

    func testStatedSizesBeyondWhatTheDataCanHoldAreRefusedBeforeAllocating() {
        let data: [UInt8] = Array(repeating: 0, count: 16)
        for codec in [Codec.none, .snappy, .gzip, .zstd, .lz4Raw, .lz4Frame] {
            XCTAssertThrowsError(try codec.decompress(data, 0..<16, size: Int(Int32.max))) { error in
                XCTAssertTrue((error as? Malformed)?.reason.contains("cannot hold") == true, "\(codec): \(error)")
            }
        }
    }
}
