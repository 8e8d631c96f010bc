import Foundation

/// Why a Parquet file, Arrow file or `datasets` directory cannot be read: the path at fault and what is wrong.
public struct ColumnarError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file or directory.
    public let path: String
    /// What is wrong with it.
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

/// A problem found while decoding bytes, before the file it belongs to is known; `ColumnarError` adds the path.
struct Malformed: Error {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Runs `body`, turning a `Malformed` into a `ColumnarError` naming `path`.
func naming<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as Malformed {
        throw ColumnarError(path: path, reason: error.reason)
    }
}

/// A bounds-checked little-endian reader over bytes: every read past the end throws instead of trapping.
struct ByteCursor {
    let bytes: [UInt8]
    var position: Int
    let end: Int
    /// What is being read, for error messages ("page header", "footer").
    let what: String

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil, what: String) {
        self.bytes = bytes
        position = start
        self.end = end ?? bytes.count
        self.what = what
    }

    var remaining: Int { end - position }

    mutating func need(_ count: Int) throws {
        guard count >= 0, count <= remaining else {
            throw Malformed("the \(what) is truncated (needs \(count) bytes at offset \(position), \(max(0, remaining)) left)")
        }
    }

    mutating func byte() throws -> UInt8 {
        try need(1)
        defer { position += 1 }
        return bytes[position]
    }

    mutating func take(_ count: Int) throws -> Range<Int> {
        try need(count)
        defer { position += count }
        return position..<(position + count)
    }

    mutating func uint32() throws -> UInt32 {
        try need(4)
        defer { position += 4 }
        return loadUInt32(bytes, position)
    }

    mutating func varint() throws -> UInt64 {
        if let value = readULEB128(bytes, &position, end: end) { return value }
        try need(1)   // throws when the bytes ended first
        throw Malformed("the \(what) holds a variable-length integer longer than 10 bytes")
    }
}

/// An unsigned LEB128 integer (7 bits a byte, least significant first, as Thrift, Parquet and Snappy write them)
/// at `bytes[position..<end]`, moving `position` past it; nil when the bytes end first or it runs past `maxBytes`.
@inline(__always)
func readULEB128<Bytes: RandomAccessCollection>(_ bytes: Bytes, _ position: inout Int, end: Int, maxBytes: Int = 10)
    -> UInt64? where Bytes.Element == UInt8, Bytes.Index == Int {
    var result: UInt64 = 0
    for k in 0..<maxBytes {
        guard position < end else { return nil }
        let b = bytes[position]
        position += 1
        result |= UInt64(b & 0x7F) << UInt64(7 * k)
        if b & 0x80 == 0 { return result }
    }
    return nil
}

@inline(__always) func loadUInt32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
    UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
}

@inline(__always) func loadUInt64(_ bytes: [UInt8], _ at: Int) -> UInt64 {
    UInt64(loadUInt32(bytes, at)) | UInt64(loadUInt32(bytes, at + 4)) << 32
}

/// Reads byte ranges of a file with positioned reads, so that only what is asked for is ever in memory (or of
/// bytes already in memory, which the tests use).
final class RandomAccessFile {
    let path: String
    let size: Int
    private let descriptor: Int32
    private let contents: [UInt8]?

    init(path: String) throws {
        self.path = path
        contents = nil
        descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            throw ColumnarError(path: path, reason: "cannot open the file for reading (\(String(cString: strerror(errno))))")
        }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            close(descriptor)
            throw ColumnarError(path: path, reason: "cannot read the file's size")
        }
        size = Int(info.st_size)
    }

    /// A file's bytes held in memory, read as if from `path`.
    init(path: String, contents: [UInt8]) {
        self.path = path
        self.contents = contents
        descriptor = -1
        size = contents.count
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// `count` bytes from `offset`; throws a `Malformed` naming `what` when they are not all in the file.
    func read(_ offset: Int, _ count: Int, what: String) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw Malformed("the \(what) (\(count) bytes at offset \(offset)) lies outside the file (\(size) bytes)")
        }
        if let contents { return Array(contents[offset..<(offset + count)]) }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = out.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset + done))
            }
            guard got > 0 else {
                if got < 0 && errno == EINTR { continue }
                throw Malformed("cannot read the \(what) at offset \(offset + done)")
            }
            done += got
        }
        return out
    }
}
