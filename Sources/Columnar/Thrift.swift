/// The Thrift compact protocol, as Parquet's footer and page headers use it: structs are read field by field,
/// and what the reader does not need is skipped. Every length is checked against the bytes left.
struct ThriftReader {
    var cursor: ByteCursor
    private var depth = 0

    init(_ cursor: ByteCursor) { self.cursor = cursor }

    enum FieldType: UInt8 {
        case stop = 0, boolTrue = 1, boolFalse = 2, byte = 3, i16 = 4, i32 = 5, i64 = 6, double = 7, binary = 8,
             list = 9, set = 10, map = 11, structure = 12
    }

    /// Reads one struct: `field(reader, id, type)` is called for each field and reads it, or returns false to
    /// have it skipped.
    mutating func readStruct(_ field: (inout ThriftReader, Int, FieldType) throws -> Bool) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 64 else { throw Malformed("the \(cursor.what) nests structures more than 64 deep") }
        var lastID = 0
        while true {
            let header = try cursor.byte()
            guard let type = FieldType(rawValue: header & 0x0F) else {
                throw Malformed("the \(cursor.what) holds an unknown Thrift field type \(header & 0x0F)")
            }
            if type == .stop { return }
            let delta = Int(header >> 4)
            let id = delta == 0 ? Int(try zigzag()) : lastID + delta
            lastID = id
            if try !field(&self, id, type) { try skip(type) }
        }
    }

    private mutating func zigzag() throws -> Int64 {
        let v = try cursor.varint()
        return Int64(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
    }

    /// An integer field of any width.
    mutating func int(_ type: FieldType) throws -> Int64 {
        switch type {
        case .byte: return Int64(Int8(bitPattern: try cursor.byte()))
        case .i16, .i32, .i64: return try zigzag()
        default: throw Malformed("the \(cursor.what) holds a \(type) where an integer belongs")
        }
    }

    /// An integer field that must fit an Int32 (counts, sizes, enums).
    mutating func int32(_ type: FieldType) throws -> Int {
        let value = try int(type)
        guard value >= Int64(Int32.min), value <= Int64(Int32.max) else {
            throw Malformed("the \(cursor.what) holds \(value) where a 32-bit integer belongs")
        }
        return Int(value)
    }

    mutating func bool(_ type: FieldType) throws -> Bool {
        switch type {
        case .boolTrue: return true
        case .boolFalse: return false
        default: throw Malformed("the \(cursor.what) holds a \(type) where a boolean belongs")
        }
    }

    /// A binary field's byte range in the cursor's bytes.
    mutating func binary(_ type: FieldType) throws -> Range<Int> {
        guard type == .binary else { throw Malformed("the \(cursor.what) holds a \(type) where a string belongs") }
        let length = try cursor.varint()
        guard length <= UInt64(cursor.remaining) else { throw Malformed("the \(cursor.what) is truncated (a string runs past its end)") }
        return try cursor.take(Int(length))
    }

    mutating func string(_ type: FieldType) throws -> String {
        String(decoding: cursor.bytes[try binary(type)], as: UTF8.self)
    }

    /// A list field: `element(reader, elementType)` reads each element.
    mutating func list<T>(_ type: FieldType, _ element: (inout ThriftReader, FieldType) throws -> T) throws -> [T] {
        guard type == .list || type == .set else { throw Malformed("the \(cursor.what) holds a \(type) where a list belongs") }
        let (count, elementType) = try listHeader()
        var out: [T] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(try element(&self, elementType)) }
        return out
    }

    private mutating func listHeader() throws -> (Int, FieldType) {
        let header = try cursor.byte()
        guard let elementType = FieldType(rawValue: header & 0x0F), elementType != .stop else {
            throw Malformed("the \(cursor.what) holds a list of an unknown type")
        }
        var count = UInt64(header >> 4)
        if count == 15 { count = try cursor.varint() }
        // Every element takes at least one byte (booleans in lists are one byte each).
        guard count <= UInt64(cursor.remaining) else {
            throw Malformed("the \(cursor.what) is truncated (a list of \(count) elements runs past its end)")
        }
        return (Int(count), elementType)
    }

    /// Skips a value of `type`.
    mutating func skip(_ type: FieldType) throws {
        switch type {
        case .stop: throw Malformed("the \(cursor.what) is damaged (a stop where a value belongs)")
        case .boolTrue, .boolFalse: return
        case .byte: _ = try cursor.byte()
        case .i16, .i32, .i64: _ = try cursor.varint()
        case .double: _ = try cursor.take(8)
        case .binary: _ = try binary(type)
        case .list, .set:
            let (count, elementType) = try listHeader()
            for _ in 0..<count {
                if elementType == .boolTrue || elementType == .boolFalse { _ = try cursor.byte() } else { try skipNested(elementType) }
            }
        case .map:
            let count = try cursor.varint()
            guard count <= UInt64(cursor.remaining) else { throw Malformed("the \(cursor.what) is truncated (a map runs past its end)") }
            if count == 0 { return }
            let types = try cursor.byte()
            guard let key = FieldType(rawValue: types >> 4), let value = FieldType(rawValue: types & 0x0F),
                  key != .stop, value != .stop else { throw Malformed("the \(cursor.what) holds a map of an unknown type") }
            for _ in 0..<count {
                if key == .boolTrue || key == .boolFalse { _ = try cursor.byte() } else { try skipNested(key) }
                if value == .boolTrue || value == .boolFalse { _ = try cursor.byte() } else { try skipNested(value) }
            }
        case .structure: try readStruct { _, _, _ in false }
        }
    }

    private mutating func skipNested(_ type: FieldType) throws {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 64 else { throw Malformed("the \(cursor.what) nests values more than 64 deep") }
        try skip(type)
    }
}
