import Foundation

/// An Arrow IPC file (ARROW1 magic and footer) or stream (what `datasets` writes in its cache and in
/// `save_to_disk` directories), read one record batch at a time, and only the buffers of the column asked for.
/// Text columns are Utf8, LargeUtf8 and Utf8View with validity bitmaps; compressed bodies (LZ4_FRAME through liblz4.so.1,
/// ZSTD through libzstd.so.1) are decompressed buffer by buffer.
public final class ArrowFile: TextColumnSource {
    /// The file.
    public let path: String
    /// The top-level fields, in schema order.
    public let columns: [String]
    /// Whether the file is in the file format (with a footer) rather than the stream format.
    public let isFileFormat: Bool
    public private(set) var peakResidentBytes = 0

    private let file: RandomAccessFile
    private let fields: [Field]
    /// File format: the record batches' blocks (offset of the message, its metadata length, its body length).
    private let blocks: [(offset: Int, metadata: Int, body: Int)]
    /// Stream format: where the first message after the schema starts.
    private let firstMessage: Int

    struct Field {
        let name: String
        let type: UInt8
        let dictionaryEncoded: Bool
        let unionDense: Bool
        let children: [Field]
    }

    /// Opens a file and reads its schema; throws a `ColumnarError` for anything that is not a readable Arrow file.
    public convenience init(path: String) throws {
        try self.init(try RandomAccessFile(path: path))
    }

    init(_ file: RandomAccessFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        let head = try naming(path) { try file.read(0, min(file.size, 8), what: "header") }
        isFileFormat = head.starts(with: Array("ARROW1".utf8))
        if isFileFormat {
            (fields, blocks) = try naming(path) { try Self.readFooter(file) }
            firstMessage = 0
        } else {
            let first = try naming(path) { try Self.readMessage(file, at: 0) }
            guard let first, first.type == 1, let schema = try naming(path, { try first.header() }) else {
                throw ColumnarError(path: path, reason: "not an Arrow IPC file or stream (no schema message at its start)")
            }
            fields = try naming(path) { try Self.readSchema(schema) }
            blocks = []
            firstMessage = first.next
        }
        columns = fields.map(\.name)
    }

    public func forEachString(column: String, _ body: (Int, String) throws -> Bool) throws {
        guard let index = columns.firstIndex(of: column) else {
            throw ColumnarError(path: path, reason: "no column '\(column)' (columns: \(columns.map { "'\($0)'" }.joined(separator: ", ")))")
        }
        let field = fields[index]
        guard [5, 20, 24].contains(field.type), !field.dictionaryEncoded else {
            let what = field.dictionaryEncoded ? "dictionary-encoded values" : "values of Arrow type \(Self.typeName(field.type))"
            throw ColumnarError(path: path, reason: "column '\(column)' holds \(what), not Utf8, LargeUtf8 or Utf8View text")
        }
        // The field's node and first buffer in a record batch: fields before it, depth first.
        var node = 0, buffer = 0, variadic = 0
        for earlier in fields[..<index] { Self.count(earlier, nodes: &node, buffers: &buffer, variadic: &variadic) }
        peakResidentBytes = 0
        var row = 0
        var number = 0
        func batch(_ message: Message) throws -> Bool {
            defer { number += 1 }
            do {
                return try readBatch(message, type: field.type, node: node, buffer: buffer, variadic: variadic, firstRow: &row, body)
            } catch let error as Malformed {
                throw Malformed("record batch \(number), column '\(column)': \(error.reason)")
            }
        }
        try naming(path) {
            if isFileFormat {
                for block in blocks {
                    guard let message = try Self.readMessage(file, at: block.offset), message.type == 3 else {
                        throw Malformed("the footer's block at offset \(block.offset) is not a record batch")
                    }
                    guard message.next - block.offset == block.metadata + block.body else {
                        throw Malformed("the footer's block at offset \(block.offset) does not match its message")
                    }
                    if try !batch(message) { return }
                }
            } else {
                var offset = firstMessage
                while let message = try Self.readMessage(file, at: offset) {
                    offset = message.next
                    switch message.type {
                    case 3: if try !batch(message) { return }
                    case 2: continue  // dictionaries belong to dictionary-encoded columns, which are refused above
                    default: throw Malformed("an unexpected message (type \(message.type)) at offset \(message.start)")
                    }
                }
            }
        }
    }

    // MARK: Messages

    struct Message {
        let start: Int
        let metadata: FlatTable
        let type: UInt8
        let bodyStart: Int
        let bodyLength: Int
        let next: Int

        /// The header table (Schema, RecordBatch...).
        func header() throws -> FlatTable? { try metadata.table(2) }
    }

    /// The message at `offset` (continuation marker, metadata length, Message FlatBuffer, body); nil at the
    /// end-of-stream marker or the end of the file.
    static func readMessage(_ file: RandomAccessFile, at offset: Int) throws -> Message? {
        if offset == file.size { return nil }
        var prefix = try file.read(offset, 4, what: "message length")
        var metadataStart = offset + 4
        if prefix == [0xFF, 0xFF, 0xFF, 0xFF] {
            if offset + 4 == file.size { return nil }
            prefix = try file.read(offset + 4, 4, what: "message length")
            metadataStart += 4
        }
        let length = Int(Int32(bitPattern: loadUInt32(prefix, 0)))
        if length == 0 { return nil }
        guard length > 0 else { throw Malformed("a message of negative length \(length) at offset \(offset)") }
        let bytes = try file.read(metadataStart, length, what: "message metadata")
        let metadata = try FlatTable.root(bytes)
        let type = try metadata.uint8(1)
        let bodyLength = try metadata.int(3, width: 8)
        let bodyStart = metadataStart + length
        guard bodyLength >= 0, bodyLength <= Int64(file.size - bodyStart) else {
            throw Malformed("the message at offset \(offset) has a body of \(bodyLength) bytes, past the end of the file")
        }
        return Message(start: offset, metadata: metadata, type: type, bodyStart: bodyStart, bodyLength: Int(bodyLength),
                       next: bodyStart + Int(bodyLength))
    }

    private static func readFooter(_ file: RandomAccessFile) throws -> ([Field], [(offset: Int, metadata: Int, body: Int)]) {
        guard file.size >= 18 else { throw Malformed("an Arrow file too short (\(file.size) bytes) for its magic and footer") }
        let tail = try file.read(file.size - 10, 10, what: "footer length")
        guard Array(tail[4...]) == Array("ARROW1".utf8) else {
            throw Malformed("an Arrow file without its end (no ARROW1 at the end: truncated?)")
        }
        let length = Int(Int32(bitPattern: loadUInt32(tail, 0)))
        guard length > 0, length <= file.size - 18 else { throw Malformed("the footer length \(length) does not fit the file") }
        let footer = try FlatTable.root(try file.read(file.size - 10 - length, length, what: "footer"))
        guard let schema = try footer.table(1) else { throw Malformed("the footer has no schema") }
        let fields = try readSchema(schema)
        var blocks: [(offset: Int, metadata: Int, body: Int)] = []
        if let (start, count) = try footer.vector(3, elementSize: 24) {
            for i in 0..<count {
                let at = start + 24 * i
                let offset = Int64(bitPattern: loadUInt64(footer.bytes, at))
                let metadata = Int64(Int32(bitPattern: loadUInt32(footer.bytes, at + 8)))
                let body = Int64(bitPattern: loadUInt64(footer.bytes, at + 16))
                guard offset >= 8, metadata > 0, body >= 0, offset < Int64(file.size), metadata <= Int64(file.size),
                      body <= Int64(file.size) else {
                    throw Malformed("the footer's record batch block \(i) lies outside the file")
                }
                blocks.append((Int(offset), Int(metadata), Int(body)))
            }
        }
        return (fields, blocks)
    }

    // MARK: Schema

    private static func readSchema(_ schema: FlatTable) throws -> [Field] {
        func field(_ table: FlatTable, depth: Int) throws -> Field {
            guard depth <= 64 else { throw Malformed("the schema nests fields more than 64 deep") }
            let type = try table.uint8(2)
            var dense = false
            if type == 14, let union = try table.table(3) { dense = try union.int(0, width: 2) == 1 }
            return Field(name: try table.string(0) ?? "", type: type, dictionaryEncoded: try table.table(4) != nil,
                         unionDense: dense, children: try table.tables(5).map { try field($0, depth: depth + 1) })
        }
        return try schema.tables(1).map { try field($0, depth: 0) }
    }

    /// Counts the nodes and buffers a field takes in a record batch (Arrow's columnar format, version 5).
    private static func count(_ field: Field, nodes: inout Int, buffers: inout Int, variadic: inout Int) {
        nodes += 1
        if field.dictionaryEncoded { buffers += 2; return }
        switch field.type {
        case 1, 22: break                          // Null, RunEndEncoded
        case 13, 16: buffers += 1                  // Struct, FixedSizeList
        case 14: buffers += field.unionDense ? 2 : 1
        case 12, 17, 21: buffers += 2              // List, Map, LargeList
        case 25, 26: buffers += 3                  // ListView, LargeListView
        case 4, 5, 19, 20: buffers += 3            // Binary, Utf8, LargeBinary, LargeUtf8
        case 23, 24: buffers += 2; variadic += 1   // BinaryView, Utf8View (+ their variadic buffers)
        default: buffers += 2
        }
        for child in field.children { count(child, nodes: &nodes, buffers: &buffers, variadic: &variadic) }
    }

    private static func typeName(_ type: UInt8) -> String {
        let names = ["NONE", "Null", "Int", "FloatingPoint", "Binary", "Utf8", "Bool", "Decimal", "Date", "Time",
                     "Timestamp", "Interval", "List", "Struct", "Union", "FixedSizeBinary", "FixedSizeList", "Map",
                     "Duration", "LargeBinary", "LargeUtf8", "LargeList", "RunEndEncoded", "BinaryView", "Utf8View",
                     "ListView", "LargeListView"]
        return Int(type) < names.count ? names[Int(type)] : "\(type)"
    }

    // MARK: Record batches

    private func readBatch(_ message: Message, type: UInt8, node: Int, buffer: Int, variadic: Int, firstRow row: inout Int,
                           _ body: (Int, String) throws -> Bool) throws -> Bool {
        guard let batch = try message.header() else { throw Malformed("a record batch message without its header") }
        let rows = try batch.int(0, width: 8)
        guard let nodes = try batch.vector(1, elementSize: 16), node < nodes.count else {
            throw Malformed("the record batch has no field node for the column")
        }
        guard let buffers = try batch.vector(2, elementSize: 16) else { throw Malformed("the record batch has no buffers") }
        var first = buffer
        var dataBuffers = 1
        if variadic > 0 || type == 24 {
            guard let counts = try batch.vector(4, elementSize: 8), counts.count >= variadic + (type == 24 ? 1 : 0) else {
                throw Malformed("the record batch lacks the variadic buffer counts of its view columns")
            }
            for i in 0...variadic where i < variadic || type == 24 {
                let n = Int64(bitPattern: loadUInt64(batch.bytes, counts.start + 8 * i))
                guard n >= 0, n <= Int64(buffers.count) else { throw Malformed("a variadic buffer count of \(n)") }
                if i < variadic { first += Int(n) } else { dataBuffers = Int(n) }
            }
        }
        guard first + 2 + dataBuffers <= buffers.count else { throw Malformed("the record batch has too few buffers for the column") }
        var codec = Codec.none
        if let compression = try batch.table(3) {
            switch try compression.int(0, width: 1) {
            case 0: codec = .lz4Frame
            case 1: codec = .zstd
            case let other: throw Malformed("an unknown body compression \(other)")
            }
            guard try compression.int(1, width: 1) == 0 else { throw Malformed("a body compression method other than BUFFER") }
        }
        let nodeAt = nodes.start + 16 * node
        let length = Int64(bitPattern: loadUInt64(batch.bytes, nodeAt))
        let nulls = Int64(bitPattern: loadUInt64(batch.bytes, nodeAt + 8))
        guard length >= 0, length == rows, nulls >= 0, nulls <= length else {
            throw Malformed("the column has \(length) values (\(nulls) null) in a batch of \(rows) rows")
        }
        var resident = message.metadata.bytes.count
        func read(_ i: Int) throws -> [UInt8] {
            let at = buffers.start + 16 * (first + i)
            let offset = Int64(bitPattern: loadUInt64(batch.bytes, at))
            let size = Int64(bitPattern: loadUInt64(batch.bytes, at + 8))
            guard offset >= 0, size >= 0, offset <= Int64(message.bodyLength), size <= Int64(message.bodyLength) - offset else {
                throw Malformed("buffer \(first + i) lies outside the message body")
            }
            let raw = try file.read(message.bodyStart + Int(offset), Int(size), what: "buffer")
            resident += raw.count
            guard codec != .none, !raw.isEmpty else { return raw }
            guard raw.count >= 8 else { throw Malformed("a compressed buffer shorter than its length prefix") }
            let stated = Int64(bitPattern: loadUInt64(raw, 0))
            if stated == -1 { return Array(raw[8...]) }
            guard stated >= 0, stated <= Int64(codec.largestOutput(compressed: raw.count - 8)) else {
                throw Malformed("a compressed buffer of \(raw.count) bytes claims \(stated) bytes")
            }
            let out = try codec.decompress(raw, 8..<raw.count, size: Int(stated))
            resident += out.count
            return out
        }
        let validity = nulls > 0 ? try read(0) : []
        let n = Int(length)
        guard nulls == 0 || validity.count >= (n + 7) / 8 else { throw Malformed("a validity bitmap too short for \(n) values") }
        func isNull(_ i: Int) -> Bool { nulls > 0 && validity[i >> 3] & (1 << UInt8(i & 7)) == 0 }
        let going: Bool
        if type == 24 {
            let views = try read(1)
            let data = try (0..<dataBuffers).map { try read(2 + $0) }
            peakResidentBytes = max(peakResidentBytes, resident)
            guard views.count / 16 >= n else { throw Malformed("a views buffer of \(views.count) bytes for \(n) values") }
            going = try Self.forEachView(views, data, count: n, isNull: isNull) { i, text in try body(row + i, text) }
        } else {
            let offsets = try read(1)
            let data = try read(2)
            peakResidentBytes = max(peakResidentBytes, resident)
            going = try Self.forEachOffsetValue(offsets, data, count: n, large: type == 20, isNull: isNull) { i, text in
                try body(row + i, text)
            }
        }
        row += n
        return going
    }

    /// The values of a Utf8 or LargeUtf8 array: `count + 1` offsets into `data`.
    private static func forEachOffsetValue(_ offsets: [UInt8], _ data: [UInt8], count n: Int, large: Bool, isNull: (Int) -> Bool,
                                           _ body: (Int, String) throws -> Bool) throws -> Bool {
        let width = large ? 8 : 4
        guard n == 0 || offsets.count / width > n else {
            throw Malformed("an offsets buffer of \(offsets.count) bytes for \(n) values")
        }
        return try data.withUnsafeBufferPointer { text in
            func offset(_ i: Int) -> Int64 {
                large ? Int64(bitPattern: loadUInt64(offsets, width * i)) : Int64(Int32(bitPattern: loadUInt32(offsets, width * i)))
            }
            var start = n > 0 ? offset(0) : 0
            for i in 0..<n {
                let end = offset(i + 1)
                guard start >= 0, start <= end, end <= Int64(text.count) else {
                    throw Malformed("value \(i)'s offsets (\(start) to \(end)) are outside the data buffer of \(text.count) bytes")
                }
                defer { start = end }
                if isNull(i) { continue }
                guard let value = String(validating: UnsafeBufferPointer(rebasing: text[Int(start)..<Int(end)]), as: UTF8.self) else {
                    throw Malformed("value \(i) is not valid UTF-8")
                }
                if try !body(i, value) { return false }
            }
            return true
        }
    }

    /// The values of a Utf8View array: 16-byte views holding short strings inline, longer ones as a buffer and offset.
    private static func forEachView(_ views: [UInt8], _ data: [[UInt8]], count n: Int, isNull: (Int) -> Bool,
                                    _ body: (Int, String) throws -> Bool) throws -> Bool {
        for i in 0..<n where !isNull(i) {
            let at = 16 * i
            let length = Int(Int32(bitPattern: loadUInt32(views, at)))
            let value: String?
            if length >= 0 && length <= 12 {
                value = String(validating: views[(at + 4)..<(at + 4 + length)], as: UTF8.self)
            } else {
                let index = Int(Int32(bitPattern: loadUInt32(views, at + 8)))
                let offset = Int(Int32(bitPattern: loadUInt32(views, at + 12)))
                guard length > 0, index >= 0, index < data.count, offset >= 0, offset <= data[index].count,
                      length <= data[index].count - offset else {
                    throw Malformed("value \(i)'s view (\(length) bytes in buffer \(index) at \(offset)) lies outside its buffers")
                }
                value = String(validating: data[index][offset..<(offset + length)], as: UTF8.self)
            }
            guard let value else { throw Malformed("value \(i) is not valid UTF-8") }
            if try !body(i, value) { return false }
        }
        return true
    }
}
