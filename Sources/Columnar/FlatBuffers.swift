/// A table of a FlatBuffers buffer, read by hand with every offset checked against the buffer: Arrow's IPC
/// metadata (schema, record batches, the file footer) is FlatBuffers.
struct FlatTable {
    let bytes: [UInt8]
    let position: Int
    private let vtable: Int
    private let vtableSize: Int
    private let tableSize: Int

    /// The root table of a buffer (which starts with the root table's offset).
    static func root(_ bytes: [UInt8]) throws -> FlatTable {
        guard bytes.count >= 8 else { throw Malformed("metadata too short to be a FlatBuffer") }
        return try FlatTable(bytes, at: Int(loadUInt32(bytes, 0)))
    }

    init(_ bytes: [UInt8], at position: Int) throws {
        let damaged = Malformed("damaged metadata (a FlatBuffers table outside its buffer)")
        guard position >= 0, position <= bytes.count - 4 else { throw damaged }
        let soffset = Int(Int32(bitPattern: loadUInt32(bytes, position)))
        let vtable = position - soffset
        guard vtable >= 0, vtable <= bytes.count - 4 else { throw damaged }
        let vtableSize = Int(bytes[vtable]) | Int(bytes[vtable + 1]) << 8
        let tableSize = Int(bytes[vtable + 2]) | Int(bytes[vtable + 3]) << 8
        guard vtableSize >= 4, vtableSize <= bytes.count - vtable, tableSize <= bytes.count - position else { throw damaged }
        self.bytes = bytes
        self.position = position
        self.vtable = vtable
        self.vtableSize = vtableSize
        self.tableSize = tableSize
    }

    /// Where field `index`'s value is, nil when the field is absent; `width` bytes must fit in the table.
    private func field(_ index: Int, width: Int) throws -> Int? {
        let slot = 4 + 2 * index
        guard slot + 2 <= vtableSize else { return nil }
        let offset = Int(bytes[vtable + slot]) | Int(bytes[vtable + slot + 1]) << 8
        if offset == 0 { return nil }
        guard offset + width <= tableSize else { throw Malformed("damaged metadata (a field outside its table)") }
        return position + offset
    }

    func int(_ index: Int, width: Int, default value: Int64 = 0) throws -> Int64 {
        guard let at = try field(index, width: width) else { return value }
        switch width {
        case 1: return Int64(Int8(bitPattern: bytes[at]))
        case 2: return Int64(Int16(bitPattern: UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8))
        case 4: return Int64(Int32(bitPattern: loadUInt32(bytes, at)))
        default: return Int64(bitPattern: loadUInt64(bytes, at))
        }
    }

    func uint8(_ index: Int, default value: UInt8 = 0) throws -> UInt8 {
        guard let at = try field(index, width: 1) else { return value }
        return bytes[at]
    }

    /// Where an offset field points to.
    private func target(_ index: Int) throws -> Int? {
        guard let at = try field(index, width: 4) else { return nil }
        let target = at + Int(loadUInt32(bytes, at))
        guard target <= bytes.count - 4 else { throw Malformed("damaged metadata (an offset outside its buffer)") }
        return target
    }

    func table(_ index: Int) throws -> FlatTable? {
        try target(index).map { try FlatTable(bytes, at: $0) }
    }

    /// A vector field: where its elements start and how many there are, each `elementSize` bytes.
    func vector(_ index: Int, elementSize: Int) throws -> (start: Int, count: Int)? {
        guard let at = try target(index) else { return nil }
        let count = Int(loadUInt32(bytes, at))
        guard count <= (bytes.count - at - 4) / elementSize else { throw Malformed("damaged metadata (a vector outside its buffer)") }
        return (at + 4, count)
    }

    /// The tables of a vector-of-tables field.
    func tables(_ index: Int) throws -> [FlatTable] {
        guard let (start, count) = try vector(index, elementSize: 4) else { return [] }
        return try (0..<count).map { i in
            let at = start + 4 * i
            return try FlatTable(bytes, at: at + Int(loadUInt32(bytes, at)))
        }
    }

    func string(_ index: Int) throws -> String? {
        guard let (start, count) = try vector(index, elementSize: 1) else { return nil }
        return String(decoding: bytes[start..<(start + count)], as: UTF8.self)
    }
}
