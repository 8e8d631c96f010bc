import Foundation

/// One stored entry of a zip archive: where its bytes lie in the archive.
struct ZipEntry {
    let name: String
    let offset: Int
    let size: Int
    let crc: UInt32
}

/// The central directory of a zip archive held in memory (usually a mapped file), as PyTorch writes them:
/// stored entries, ZIP64 records where sizes or offsets need them. Every offset and size is checked against the
/// bytes that exist; a compressed or encrypted entry is an error naming it.
struct ZipArchive {
    /// Entries in the order of the central directory.
    let entries: [ZipEntry]
    let byName: [String: ZipEntry]

    init(_ bytes: UnsafeRawBufferPointer, path: String) throws {
        func fail(_ why: String) -> AlbertMoEError { .badFile(path: path, reason: why) }
        let size = bytes.count
        func need(_ start: Int, _ count: Int, _ what: String) throws {
            guard start >= 0, count >= 0, start <= size, count <= size - start else {
                throw fail("\(what) at byte \(start) (\(count) bytes) runs past the end of the file (\(size) bytes): truncated or damaged archive")
            }
        }
        func u16(_ at: Int) -> Int { Int(bytes.loadLE(at, UInt16.self)) }
        func u32(_ at: Int) -> Int { Int(bytes.loadLE(at, UInt32.self)) }
        func u64(_ at: Int, _ what: String) throws -> Int {
            let v = bytes.loadLE(at, UInt64.self)
            guard v <= UInt64(size) else { throw fail("\(what) \(v) is larger than the file (\(size) bytes)") }
            return Int(v)
        }

        // The end of central directory record: the last one whose comment reaches the end of the file.
        guard size >= 22 else { throw fail("file of \(size) bytes is too short for a zip archive") }
        var eocd = -1
        var p = size - 22
        while p >= max(0, size - 22 - 0xFFFF) {
            if bytes.loadLE(p, UInt32.self) == 0x0605_4B50 && p + 22 + u16(p + 20) == size { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw fail("no end of central directory record: not a zip archive, or truncated") }
        var count = u16(eocd + 10)
        var directorySize = u32(eocd + 12)
        var directoryOffset = u32(eocd + 16)
        if eocd >= 20 && bytes.loadLE(eocd - 20, UInt32.self) == 0x0706_4B50 {
            let record = try u64(eocd - 20 + 8, "ZIP64 end of central directory offset")
            guard record <= eocd - 20 - 56, bytes.loadLE(record, UInt32.self) == 0x0606_4B50 else {
                throw fail("the ZIP64 end of central directory record at byte \(record) is missing or damaged")
            }
            count = try u64(record + 32, "ZIP64 entry count")
            directorySize = try u64(record + 40, "ZIP64 central directory size")
            directoryOffset = try u64(record + 48, "ZIP64 central directory offset")
        } else if count == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            throw fail("the archive needs a ZIP64 end of central directory record, which is missing")
        }
        try need(directoryOffset, directorySize, "central directory")
        let directoryEnd = directoryOffset + directorySize
        guard count <= directorySize / 46 else {
            throw fail("central directory of \(directorySize) bytes cannot hold \(count) entries")
        }

        var entries: [ZipEntry] = []
        var byName: [String: ZipEntry] = [:]
        p = directoryOffset
        for index in 0..<count {
            guard p <= directoryEnd - 46, bytes.loadLE(p, UInt32.self) == 0x0201_4B50 else {
                throw fail("central directory entry \(index) at byte \(p) is damaged")
            }
            let flags = u16(p + 8), method = u16(p + 10)
            let crc = bytes.loadLE(p + 16, UInt32.self)
            var compressed = u32(p + 20), uncompressed = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var local = u32(p + 42)
            let recordEnd = p + 46 + nameLength + extraLength + commentLength
            guard recordEnd <= directoryEnd else { throw fail("central directory entry \(index) runs past the directory") }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: bytes[(p + 46)..<(p + 46 + nameLength)]), as: UTF8.self) else {
                throw fail("central directory entry \(index) has a name that is not UTF-8")
            }
            // The ZIP64 extended information: the 8-byte values of the fields saturated above, in this order.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), length = u16(e + 2)
                guard e + 4 + length <= extraEnd else { throw fail("entry \"\(name)\": damaged extra field") }
                if id == 1 {
                    var q = e + 4
                    func next(_ what: String) throws -> Int {
                        guard q + 8 <= e + 4 + length else { throw fail("entry \"\(name)\": ZIP64 field lacks the \(what)") }
                        defer { q += 8 }
                        return try u64(q, "entry \"\(name)\": ZIP64 \(what)")
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = try next("size") }
                    if compressed == 0xFFFF_FFFF { compressed = try next("compressed size") }
                    if local == 0xFFFF_FFFF { local = try next("local header offset") }
                }
                e += 4 + length
            }
            guard flags & 1 == 0 else { throw fail("entry \"\(name)\" is encrypted") }
            guard method == 0 else {
                throw fail("entry \"\(name)\" is compressed (method \(method)\(method == 8 ? ", deflate" : "")); only stored entries are read")
            }
            guard compressed == uncompressed else {
                throw fail("stored entry \"\(name)\" has a compressed size \(compressed) unlike its size \(uncompressed)")
            }
            try need(local, 30, "local header of \"\(name)\"")
            guard bytes.loadLE(local, UInt32.self) == 0x0403_4B50 else {
                throw fail("the local header of \"\(name)\" at byte \(local) is damaged")
            }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            try need(start, uncompressed, "data of \"\(name)\"")
            guard byName[name] == nil else { throw fail("entry \"\(name)\" appears twice") }
            let entry = ZipEntry(name: name, offset: start, size: uncompressed, crc: crc)
            entries.append(entry)
            byName[name] = entry
            p = recordEnd
        }
        self.entries = entries
        self.byName = byName
    }
}

extension UnsafeRawBufferPointer {
    /// A little-endian integer at a byte offset the caller has checked.
    func loadLE<T: FixedWidthInteger>(_ offset: Int, _ type: T.Type) -> T {
        precondition(offset >= 0 && offset + MemoryLayout<T>.size <= count)
        return T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

/// CRC-32 (the zip polynomial), eight bytes a step.
enum CRC32 {
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t
    }()

    /// The CRC of `bytes`, continuing from `crc` (0 to start).
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        var i = 0
        let n = bytes.count
        tables.withUnsafeBufferPointer { tables in
            let t0 = tables[0], t1 = tables[1], t2 = tables[2], t3 = tables[3]
            let t4 = tables[4], t5 = tables[5], t6 = tables[6], t7 = tables[7]
            while i + 8 <= n {
                let lo = c ^ UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))
                let hi = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                c = t7[Int(lo & 0xFF)] ^ t6[Int((lo >> 8) & 0xFF)] ^ t5[Int((lo >> 16) & 0xFF)] ^ t4[Int(lo >> 24)]
                  ^ t3[Int(hi & 0xFF)] ^ t2[Int((hi >> 8) & 0xFF)] ^ t1[Int((hi >> 16) & 0xFF)] ^ t0[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t0[Int((c ^ UInt32(bytes[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
        }
        return ~c
    }
}

/// Writes a zip archive of stored entries to a file, each entry's data starting at a multiple of 64 bytes (padding
/// in an extra field, as PyTorch does), with the ZIP64 end records PyTorch writes and ZIP64 entry fields where
/// sizes or offsets pass 4 GiB (or always, with `forceZip64`). The bytes go to `sink`, in order.
struct ZipWriter {
    private let sink: (Data) throws -> Void
    private let forceZip64: Bool
    private var position = 0
    private var directory = Data()
    private var count = 0

    init(forceZip64: Bool = false, sink: @escaping (Data) throws -> Void) {
        self.sink = sink
        self.forceZip64 = forceZip64
    }

    /// Adds a stored entry.
    mutating func add(_ name: String, _ data: Data) throws {
        let size = data.count
        let crc = data.withUnsafeBytes { CRC32.update(0, $0) }
        let zip64 = forceZip64 || size >= 0xFFFF_FFFF || position >= 0xFFFF_FFFF
        let nameBytes = Data(name.utf8)

        var local = Data()
        local.appendLE(UInt32(0x0403_4B50))
        local.appendLE(UInt16(zip64 ? 45 : 20))
        local.appendLE(UInt16(0x0800))   // UTF-8 names
        local.appendLE(UInt16(0))        // stored
        local.appendLE(UInt16(0)); local.appendLE(UInt16(0x21))   // 1980-01-01 00:00
        local.appendLE(crc)
        local.appendLE(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(size)))
        local.appendLE(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(size)))
        var extra = Data()
        if zip64 {
            extra.appendLE(UInt16(1)); extra.appendLE(UInt16(16))
            extra.appendLE(UInt64(size)); extra.appendLE(UInt64(size))
        }
        let unpadded = position + 30 + nameBytes.count + extra.count + 4
        let padding = (64 - unpadded % 64) % 64
        extra.appendLE(UInt16(0x4246)); extra.appendLE(UInt16(padding))   // "FB"
        extra.append(Data(repeating: UInt8(ascii: "Z"), count: padding))
        local.appendLE(UInt16(nameBytes.count))
        local.appendLE(UInt16(extra.count))
        local.append(nameBytes)
        local.append(extra)
        try sink(local)
        try sink(data)

        let offset = position
        var central = Data()
        central.appendLE(UInt32(0x0201_4B50))
        central.appendLE(UInt16(zip64 ? 45 : 20)); central.appendLE(UInt16(zip64 ? 45 : 20))
        central.appendLE(UInt16(0x0800)); central.appendLE(UInt16(0))
        central.appendLE(UInt16(0)); central.appendLE(UInt16(0x21))
        central.appendLE(crc)
        central.appendLE(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(size)))
        central.appendLE(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(size)))
        central.appendLE(UInt16(nameBytes.count))
        central.appendLE(UInt16(zip64 ? 28 : 0))
        central.appendLE(UInt16(0)); central.appendLE(UInt16(0)); central.appendLE(UInt16(0))
        central.appendLE(UInt32(0))
        central.appendLE(UInt32(zip64 ? 0xFFFF_FFFF : UInt32(offset)))
        central.append(nameBytes)
        if zip64 {
            central.appendLE(UInt16(1)); central.appendLE(UInt16(24))
            central.appendLE(UInt64(size)); central.appendLE(UInt64(size)); central.appendLE(UInt64(offset))
        }
        directory.append(central)
        position += local.count + size
        count += 1
    }

    /// Writes the central directory and the end records.
    mutating func finish() throws {
        let directoryOffset = position
        var tail = directory
        let record = directoryOffset + directory.count
        tail.appendLE(UInt32(0x0606_4B50)); tail.appendLE(UInt64(44))
        tail.appendLE(UInt16(45)); tail.appendLE(UInt16(45))
        tail.appendLE(UInt32(0)); tail.appendLE(UInt32(0))
        tail.appendLE(UInt64(count)); tail.appendLE(UInt64(count))
        tail.appendLE(UInt64(directory.count)); tail.appendLE(UInt64(directoryOffset))
        tail.appendLE(UInt32(0x0706_4B50)); tail.appendLE(UInt32(0)); tail.appendLE(UInt64(record)); tail.appendLE(UInt32(1))
        let saturated = forceZip64 || count >= 0xFFFF || directoryOffset >= 0xFFFF_FFFF || directory.count >= 0xFFFF_FFFF
        tail.appendLE(UInt32(0x0605_4B50)); tail.appendLE(UInt16(0)); tail.appendLE(UInt16(0))
        tail.appendLE(UInt16(saturated ? 0xFFFF : UInt16(count))); tail.appendLE(UInt16(saturated ? 0xFFFF : UInt16(count)))
        tail.appendLE(UInt32(saturated ? 0xFFFF_FFFF : UInt32(directory.count)))
        tail.appendLE(UInt32(saturated ? 0xFFFF_FFFF : UInt32(directoryOffset)))
        tail.appendLE(UInt16(0))
        try sink(tail)
        position += tail.count
    }
}

extension Data {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
