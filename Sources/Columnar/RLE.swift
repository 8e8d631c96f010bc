/// Parquet's RLE / bit-packed hybrid encoding of small integers (definition levels, dictionary indices):
/// runs of one repeated value, and groups of 8 values packed `bitWidth` bits each, least significant bit first.
struct HybridDecoder {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var position: Int
    private let end: Int
    let bitWidth: Int
    /// Values left in the current run.
    private var left = 0
    private var repeated = true
    private var value: UInt32 = 0
    /// Bit-packed runs: the bit where the next value starts.
    private var bit = 0

    /// Decodes `bytes[start..<end]`; `bitWidth` is at most 32.
    init(_ bytes: UnsafeBufferPointer<UInt8>, start: Int, end: Int, bitWidth: Int) throws {
        guard bitWidth >= 0, bitWidth <= 32 else { throw Malformed("a bit width of \(bitWidth) (at most 32 is valid)") }
        guard start >= 0, start <= end, end <= bytes.count else { throw Malformed("encoded levels run past the page") }
        self.bytes = bytes
        position = start
        self.end = end
        self.bitWidth = bitWidth
    }

    /// The next value; throws when the data ends first.
    mutating func next() throws -> UInt32 {
        if left == 0 { try startRun() }
        left -= 1
        if repeated { return value }
        var out: UInt64 = 0
        let first = bit >> 3
        let last = (bit + bitWidth - 1) >> 3
        var shift = 0
        for i in first...last {
            out |= UInt64(bytes[i]) << shift
            shift += 8
        }
        let result = UInt32(truncatingIfNeeded: (out >> UInt64(bit & 7)) & ((1 << UInt64(bitWidth)) - 1))
        bit += bitWidth
        return result
    }

    private mutating func startRun() throws {
        let damaged = Malformed("run-length encoded data ends before all its values")
        guard let header = readULEB128(bytes, &position, end: end) else { throw damaged }
        if header & 1 == 0 {
            let count = header >> 1
            let width = (bitWidth + 7) / 8
            guard count > 0, position + width <= end else { throw damaged }
            value = 0
            for i in 0..<width { value |= UInt32(bytes[position + i]) << (8 * i) }
            guard bitWidth == 32 || value >> UInt32(bitWidth) == 0 else { throw Malformed("a run-length encoded value wider than its bit width") }
            position += width
            repeated = true
            left = Int(min(count, UInt64(Int32.max)))
        } else {
            let groups = header >> 1
            guard groups > 0, bitWidth > 0 else {
                if bitWidth == 0, groups > 0 { repeated = true; value = 0; left = Int(min(groups, 1 << 27) * 8); return }
                throw damaged
            }
            // The last run of a page may stop short of its declared groups.
            let available = UInt64(end - position)
            let bytesWanted = groups.multipliedReportingOverflow(by: UInt64(bitWidth))
            let runBytes = bytesWanted.overflow ? available : min(available, bytesWanted.partialValue)
            let count = Int(runBytes) * 8 / bitWidth
            guard count > 0 else { throw damaged }
            repeated = false
            bit = position * 8
            left = count
            position += Int(runBytes)
        }
    }
}

/// The bits needed for values up to `maxValue`.
func bitWidth(of maxValue: Int) -> Int {
    maxValue <= 0 ? 0 : Int.bitWidth - maxValue.leadingZeroBitCount
}

/// Parquet's DELTA_BINARY_PACKED integers: a header (block size, miniblocks per block, value count, first value),
/// then blocks of a minimum delta and miniblocks of deltas bit-packed at their own widths.
enum DeltaBinaryPacked {
    /// Decodes the integers starting at `position`, leaving `position` after them; at most `limit` values.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, _ position: inout Int, end: Int, limit: Int) throws -> [Int64] {
        let damaged = Malformed("damaged DELTA_BINARY_PACKED data")
        func varint() throws -> UInt64 {
            guard let value = readULEB128(bytes, &position, end: end) else { throw damaged }
            return value
        }
        func zigzag() throws -> Int64 {
            let v = try varint()
            return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
        }
        let blockSize = try varint(), miniblocks = try varint(), count = try varint()
        var value = try zigzag()
        guard blockSize > 0, blockSize % 128 == 0, blockSize <= 1 << 20, miniblocks > 0, blockSize % miniblocks == 0,
              (blockSize / miniblocks) % 32 == 0 else { throw damaged }
        guard count <= UInt64(limit) else { throw Malformed("DELTA_BINARY_PACKED data of \(count) values where \(limit) belong") }
        let perMiniblock = Int(blockSize / miniblocks)
        var out: [Int64] = []
        out.reserveCapacity(Int(count))
        if count > 0 { out.append(value) }
        while out.count < Int(count) {
            let minimum = try zigzag()
            guard end - position >= Int(miniblocks) else { throw damaged }
            let widths = (0..<Int(miniblocks)).map { Int(bytes[position + $0]) }
            position += Int(miniblocks)
            for width in widths where out.count < Int(count) {
                guard width <= 64 else { throw damaged }
                guard (end - position) * 8 >= width * perMiniblock else { throw damaged }
                var bit = position * 8
                for _ in 0..<perMiniblock {
                    var delta: UInt64 = 0
                    var got = 0
                    while got < width {
                        let byte = UInt64(bytes[bit >> 3]) >> UInt64(bit & 7)
                        let take = min(8 - (bit & 7), width - got)
                        delta |= (byte & ((1 << UInt64(take)) - 1)) << UInt64(got)
                        got += take
                        bit += take
                    }
                    if out.count < Int(count) {
                        value = value &+ minimum &+ Int64(bitPattern: delta)
                        out.append(value)
                    }
                }
                position += width * perMiniblock / 8
            }
        }
        return out
    }
}
