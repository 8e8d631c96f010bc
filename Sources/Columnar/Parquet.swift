import Foundation

/// A Parquet file's text columns, read one column chunk (one row group) at a time: the footer is parsed when the
/// file is opened, and `forEachString` reads only the pages of the column asked for.
///
/// Supported: BYTE_ARRAY columns (strings, large strings), flat or inside optional groups; data pages v1 and v2;
/// PLAIN, dictionary, DELTA_LENGTH_BYTE_ARRAY and DELTA_BYTE_ARRAY encodings; UNCOMPRESSED, SNAPPY, GZIP
/// (libz.so.1), ZSTD (libzstd.so.1) and LZ4_RAW (liblz4.so.1), the libraries being loaded when a file needs them.
public final class ParquetFile: TextColumnSource {
    /// The file.
    public let path: String
    /// The leaf columns, as dotted paths (`text`, `meta.text`), in schema order.
    public let columns: [String]
    /// The rows in the file.
    public let rowCount: Int
    /// The rows of each row group.
    public let rowGroupRows: [Int]
    /// The most bytes held at once by the last `forEachString`: one column chunk, its dictionary and one page.
    public private(set) var peakResidentBytes = 0
    /// The data pages the last `forEachString` decoded, as (page version 1 or 2, encoding number).
    private(set) var pageKinds: Set<[Int]> = []

    private let file: RandomAccessFile
    private let leaves: [Leaf]
    private let rowGroups: [[Chunk]]

    struct Leaf {
        let name: String
        let physicalType: Int
        let maxDefinition: Int
        let maxRepetition: Int
    }

    struct Chunk {
        let codec: Int
        let valueCount: Int
        let start: Int
        let compressedSize: Int
        let uncompressedSize: Int
    }

    /// Opens a file and reads its footer; throws a `ColumnarError` for anything that is not a readable Parquet file.
    public convenience init(path: String) throws {
        try self.init(try RandomAccessFile(path: path))
    }

    init(_ file: RandomAccessFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        let footer = try naming(path) { () throws -> Footer in try Self.readFooter(file) }
        leaves = footer.leaves
        columns = footer.leaves.map(\.name)
        rowCount = footer.rowCount
        rowGroups = footer.rowGroups
        rowGroupRows = footer.rowGroupRows
    }

    /// The compressed and uncompressed sizes of `column`'s chunk in each row group.
    public func chunkSizes(column: String) throws -> [(compressed: Int, uncompressed: Int)] {
        let index = try columnIndex(column)
        return rowGroups.map { ($0[index].compressedSize, $0[index].uncompressedSize) }
    }

    public func forEachString(column: String, _ body: (Int, String) throws -> Bool) throws {
        let index = try columnIndex(column)
        let leaf = leaves[index]
        peakResidentBytes = 0
        pageKinds = []
        var firstRow = 0
        for (group, chunks) in rowGroups.enumerated() {
            let going = try naming(path) { () throws -> Bool in
                do {
                    return try readChunk(chunks[index], leaf: leaf, firstRow: firstRow, rows: rowGroupRows[group], body)
                } catch let error as Malformed {
                    throw Malformed("row group \(group), column '\(leaf.name)': \(error.reason)")
                }
            }
            if !going { return }
            firstRow += rowGroupRows[group]
        }
    }

    private func columnIndex(_ column: String) throws -> Int {
        guard let index = columns.firstIndex(of: column) else {
            throw ColumnarError(path: path, reason: "no column '\(column)' (columns: \(columns.map { "'\($0)'" }.joined(separator: ", ")))")
        }
        let leaf = leaves[index]
        guard leaf.physicalType == 6 else {
            throw ColumnarError(path: path, reason: "column '\(column)' holds \(Self.typeName(leaf.physicalType)) values, not text")
        }
        guard leaf.maxRepetition == 0 else {
            throw ColumnarError(path: path, reason: "column '\(column)' is a list (repeated), not one text per row")
        }
        return index
    }

    private static func typeName(_ type: Int) -> String {
        let names = ["BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"]
        return type >= 0 && type < names.count ? names[type] : "type \(type)"
    }

    // MARK: Footer

    struct Footer {
        var leaves: [Leaf] = []
        var rowCount = 0
        var rowGroups: [[Chunk]] = []
        var rowGroupRows: [Int] = []
    }

    private struct SchemaElement {
        var type = -1
        var repetition = 0
        var name = ""
        var children = 0
    }

    private static func readFooter(_ file: RandomAccessFile) throws -> Footer {
        guard file.size >= 12 else {
            throw Malformed("not a Parquet file (\(file.size) bytes, too short for the PAR1 header and footer)")
        }
        let head = try file.read(0, 4, what: "header")
        let tail = try file.read(file.size - 8, 8, what: "footer length")
        guard head == Array("PAR1".utf8) else { throw Malformed("not a Parquet file (it does not start with PAR1)") }
        if Array(tail[4...]) == Array("PARE".utf8) { throw Malformed("an encrypted Parquet file (not supported)") }
        guard Array(tail[4...]) == Array("PAR1".utf8) else { throw Malformed("not a Parquet file, or truncated (it does not end with PAR1)") }
        let length = Int(loadUInt32(tail, 0))
        guard length <= file.size - 12 else {
            throw Malformed("the footer length \(length) is larger than the file (\(file.size) bytes)")
        }
        let bytes = try file.read(file.size - 8 - length, length, what: "footer")
        var reader = ThriftReader(ByteCursor(bytes, what: "footer"))
        var schema: [SchemaElement] = []
        var footer = Footer()
        var sawRows = false
        var groups: [(rows: Int, chunks: [(Chunk, [String])])] = []
        try reader.readStruct { r, id, type in
            switch id {
            case 2:
                schema = try r.list(type) { r, t in
                    var element = SchemaElement()
                    guard t == .structure else { throw Malformed("the footer's schema is damaged") }
                    try r.readStruct { r, id, type in
                        switch id {
                        case 1: element.type = try r.int32(type)
                        case 3: element.repetition = try r.int32(type)
                        case 4: element.name = try r.string(type)
                        case 5: element.children = try r.int32(type)
                        default: return false
                        }
                        return true
                    }
                    return element
                }
            case 3:
                footer.rowCount = Int(try r.int(type))
                sawRows = true
            case 4:
                groups = try r.list(type) { r, t in
                    guard t == .structure else { throw Malformed("the footer's row groups are damaged") }
                    return try readRowGroup(&r)
                }
            default: return false
            }
            return true
        }
        guard sawRows, footer.rowCount >= 0 else { throw Malformed("the footer has no valid row count") }
        footer.leaves = try leaves(of: schema)
        var total = 0
        for (number, group) in groups.enumerated() {
            guard group.chunks.count == footer.leaves.count else {
                throw Malformed("row group \(number) has \(group.chunks.count) column chunks for \(footer.leaves.count) columns")
            }
            guard group.rows >= 0 else { throw Malformed("row group \(number) has \(group.rows) rows") }
            for (column, (chunk, path)) in group.chunks.enumerated() {
                let leaf = footer.leaves[column]
                guard path.joined(separator: ".") == leaf.name else {
                    throw Malformed("row group \(number)'s chunk \(column) is for '\(path.joined(separator: "."))', not '\(leaf.name)'")
                }
                guard chunk.start >= 4, chunk.compressedSize >= 0, chunk.compressedSize <= file.size - 8 - length - chunk.start else {
                    throw Malformed("row group \(number), column '\(leaf.name)': the chunk lies outside the file's data")
                }
                guard leaf.maxRepetition > 0 || chunk.valueCount == group.rows else {
                    throw Malformed("row group \(number), column '\(leaf.name)': \(chunk.valueCount) values for \(group.rows) rows")
                }
            }
            footer.rowGroups.append(group.chunks.map(\.0))
            footer.rowGroupRows.append(group.rows)
            let (sum, overflow) = total.addingReportingOverflow(group.rows)
            guard !overflow, sum <= footer.rowCount else { total = -1; break }
            total = sum
        }
        guard total == footer.rowCount else {
            throw Malformed("the row groups hold \(total < 0 ? "more" : "\(total)") rows, but the footer says \(footer.rowCount)")
        }
        return footer
    }

    private static func readRowGroup(_ r: inout ThriftReader) throws -> (rows: Int, chunks: [(Chunk, [String])]) {
        var rows = -1
        var chunks: [(Chunk, [String])] = []
        try r.readStruct { r, id, type in
            switch id {
            case 1:
                chunks = try r.list(type) { r, t in
                    guard t == .structure else { throw Malformed("the footer's column chunks are damaged") }
                    return try readColumnChunk(&r)
                }
            case 3: rows = Int(try r.int(type))
            default: return false
            }
            return true
        }
        return (rows, chunks)
    }

    private static func readColumnChunk(_ r: inout ThriftReader) throws -> (Chunk, [String]) {
        var codec = 0, values = -1, compressed = -1, uncompressed = 0, dataOffset = -1, dictionaryOffset = -1
        var path: [String] = []
        var external = false
        var sawMeta = false
        try r.readStruct { r, id, type in
            switch id {
            case 1: external = !(try r.string(type)).isEmpty
            case 3:
                sawMeta = true
                try r.readStruct { r, id, type in
                    switch id {
                    case 3: path = try r.list(type) { r, t in try r.string(t) }
                    case 4: codec = try r.int32(type)
                    case 5: values = Int(try r.int(type))
                    case 6: uncompressed = Int(try r.int(type))
                    case 7: compressed = Int(try r.int(type))
                    case 9: dataOffset = Int(try r.int(type))
                    case 11: dictionaryOffset = Int(try r.int(type))
                    default: return false
                    }
                    return true
                }
            default: return false
            }
            return true
        }
        guard !external else { throw Malformed("a column chunk stored in another file (not supported)") }
        guard sawMeta, values >= 0, dataOffset >= 0 else { throw Malformed("a column chunk without its metadata") }
        let start = dictionaryOffset > 0 && dictionaryOffset < dataOffset ? dictionaryOffset : dataOffset
        return (Chunk(codec: codec, valueCount: values, start: start, compressedSize: compressed,
                      uncompressedSize: uncompressed), path)
    }

    /// The leaf columns of a flattened schema (element 0 is the root), with their definition and repetition depths.
    private static func leaves(of schema: [SchemaElement]) throws -> [Leaf] {
        guard let root = schema.first else { throw Malformed("the footer has no schema") }
        var out: [Leaf] = []
        var next = 1
        func walk(_ count: Int, prefix: [String], definition: Int, repetition: Int, depth: Int) throws {
            guard depth <= 64 else { throw Malformed("the schema nests groups more than 64 deep") }
            for _ in 0..<count {
                guard next < schema.count else { throw Malformed("the schema is damaged (fewer elements than its groups declare)") }
                let element = schema[next]
                next += 1
                let path = prefix + [element.name]
                let def = definition + (element.repetition == 0 ? 0 : 1)
                let rep = repetition + (element.repetition == 2 ? 1 : 0)
                if element.children > 0 {
                    try walk(element.children, prefix: path, definition: def, repetition: rep, depth: depth + 1)
                } else {
                    out.append(Leaf(name: path.joined(separator: "."), physicalType: element.type, maxDefinition: def, maxRepetition: rep))
                }
            }
        }
        guard root.children >= 0, root.children < schema.count else { throw Malformed("the schema is damaged") }
        try walk(root.children, prefix: [], definition: 0, repetition: 0, depth: 0)
        guard next == schema.count else { throw Malformed("the schema is damaged (more elements than its groups declare)") }
        return out
    }

    // MARK: Pages

    private static func codec(_ value: Int) throws -> Codec {
        switch value {
        case 0: return .none
        case 1: return .snappy
        case 2: return .gzip
        case 6: return .zstd
        case 7: return .lz4Raw
        default:
            let names = [3: "LZO", 4: "BROTLI", 5: "LZ4 (Hadoop framing)"]
            throw Malformed("the \(names[value] ?? "codec \(value)") compression is not supported")
        }
    }

    private struct PageHeader {
        var type = -1
        var uncompressedSize = -1
        var compressedSize = -1
        var valueCount = -1
        var encoding = -1
        /// v1 pages: how definition levels are encoded (RLE, 3, unless an old writer's BIT_PACKED).
        var definitionEncoding = 3
        var definitionBytes = 0
        var repetitionBytes = 0
        var compressed = true
    }

    private static func readPageHeader(_ r: inout ThriftReader) throws -> PageHeader {
        var h = PageHeader()
        try r.readStruct { r, id, type in
            switch id {
            case 1: h.type = try r.int32(type)
            case 2: h.uncompressedSize = try r.int32(type)
            case 3: h.compressedSize = try r.int32(type)
            case 5, 7, 8:
                try r.readStruct { r, field, type in
                    switch (id, field) {
                    case (_, 1): h.valueCount = try r.int32(type)
                    case (5, 2), (7, 2), (8, 4): h.encoding = try r.int32(type)
                    case (5, 3): h.definitionEncoding = try r.int32(type)
                    case (8, 5): h.definitionBytes = try r.int32(type)
                    case (8, 6): h.repetitionBytes = try r.int32(type)
                    case (8, 7): h.compressed = try r.bool(type)
                    default: return false
                    }
                    return true
                }
            default: return false
            }
            return true
        }
        guard h.uncompressedSize >= 0, h.compressedSize >= 0 else { throw Malformed("a page header without its sizes") }
        return h
    }

    /// Reads one column chunk page by page, giving each non-null value to `body`.
    private func readChunk(_ chunk: Chunk, leaf: Leaf, firstRow: Int, rows: Int,
                           _ body: (Int, String) throws -> Bool) throws -> Bool {
        let codec = try Self.codec(chunk.codec)
        let bytes = try file.read(chunk.start, chunk.compressedSize, what: "column chunk")
        var cursor = ByteCursor(bytes, what: "column chunk")
        var dictionary: [String]? = nil
        var dictionaryBytes = 0
        var row = 0
        while row < chunk.valueCount {
            var reader = ThriftReader(cursor)
            let header = try Self.readPageHeader(&reader)
            cursor = reader.cursor
            let pageRange = try cursor.take(header.compressedSize)
            func note(_ page: Int) {
                peakResidentBytes = max(peakResidentBytes, bytes.count + dictionaryBytes + page)
            }
            switch header.type {
            case 2:  // dictionary page
                guard dictionary == nil else { throw Malformed("a second dictionary page") }
                let page = try codec.decompress(bytes, pageRange, size: header.uncompressedSize)
                note(page.count)
                guard header.valueCount >= 0, header.valueCount <= page.count / 4 else {
                    throw Malformed("a dictionary page of \(page.count) bytes cannot hold \(header.valueCount) values")
                }
                var values: [String] = []
                values.reserveCapacity(header.valueCount)
                try page.withUnsafeBufferPointer { buffer in
                    var position = 0
                    for _ in 0..<header.valueCount {
                        values.append(try Self.plainValue(buffer, &position, end: buffer.count))
                    }
                }
                dictionary = values
                dictionaryBytes = page.count
            case 0, 3:  // data page v1, v2
                guard header.valueCount >= 0, header.valueCount <= chunk.valueCount - row else {
                    throw Malformed("a data page of \(header.valueCount) values where \(chunk.valueCount - row) are left")
                }
                let page: [UInt8]
                let levelsEnd: Int
                var definitions: (Int, Int)? = nil
                if header.type == 0 {
                    page = try codec.decompress(bytes, pageRange, size: header.uncompressedSize)
                    var position = 0
                    if leaf.maxDefinition > 0 {
                        guard header.definitionEncoding == 3 else {
                            throw Malformed("definition levels in the \(header.definitionEncoding == 4 ? "BIT_PACKED" : "\(header.definitionEncoding)") encoding are not supported")
                        }
                        guard page.count >= 4 else { throw Malformed("a data page too short for its definition levels") }
                        let length = Int(loadUInt32(page, 0))
                        guard length <= page.count - 4 else { throw Malformed("definition levels run past the page") }
                        definitions = (4, 4 + length)
                        position = 4 + length
                    }
                    levelsEnd = position
                } else {
                    let levels = header.definitionBytes + header.repetitionBytes
                    guard header.definitionBytes >= 0, header.repetitionBytes == 0, levels <= pageRange.count,
                          levels <= header.uncompressedSize else {
                        throw Malformed("a v2 data page's level lengths do not fit the page")
                    }
                    let valuesRange = (pageRange.lowerBound + levels)..<pageRange.upperBound
                    let valuesCodec = header.compressed ? codec : .none
                    let values = try valuesCodec.decompress(bytes, valuesRange, size: header.uncompressedSize - levels)
                    page = Array(bytes[pageRange.lowerBound..<(pageRange.lowerBound + levels)]) + values
                    if leaf.maxDefinition > 0 { definitions = (0, header.definitionBytes) }
                    levelsEnd = levels
                }
                note(page.count)
                pageKinds.insert([header.type == 0 ? 1 : 2, header.encoding])
                let going = try decodeValues(page, header: header, leaf: leaf, definitions: definitions, valuesStart: levelsEnd,
                                             dictionary: dictionary, firstRow: firstRow + row, body)
                row += header.valueCount
                if !going { return false }
            default:
                continue  // index pages and unknown page types carry no values
            }
        }
        guard row == rows else { throw Malformed("the pages hold \(row) values for \(rows) rows") }
        return true
    }

    /// Gives the non-null values of one data page to `body`.
    private func decodeValues(_ page: [UInt8], header: PageHeader, leaf: Leaf, definitions: (Int, Int)?, valuesStart: Int,
                              dictionary: [String]?, firstRow: Int, _ body: (Int, String) throws -> Bool) throws -> Bool {
        try page.withUnsafeBufferPointer { buffer in
            var levels = try definitions.map {
                try HybridDecoder(buffer, start: $0.0, end: $0.1, bitWidth: bitWidth(of: leaf.maxDefinition))
            }
            switch header.encoding {
            case 0:  // PLAIN
                var position = valuesStart
                for i in 0..<header.valueCount {
                    if var decoder = levels {
                        let level = try decoder.next()
                        levels = decoder
                        if level != leaf.maxDefinition { continue }
                    }
                    let text = try Self.plainValue(buffer, &position, end: buffer.count)
                    if try !body(firstRow + i, text) { return false }
                }
            case 2, 8:  // PLAIN_DICTIONARY, RLE_DICTIONARY
                guard let dictionary else { throw Malformed("a dictionary-encoded page without a dictionary page") }
                var indices: HybridDecoder? = nil
                for i in 0..<header.valueCount {
                    if var decoder = levels {
                        let level = try decoder.next()
                        levels = decoder
                        if level != leaf.maxDefinition { continue }
                    }
                    if indices == nil {
                        guard valuesStart < buffer.count else { throw Malformed("a dictionary-encoded page without its bit width") }
                        indices = try HybridDecoder(buffer, start: valuesStart + 1, end: buffer.count, bitWidth: Int(buffer[valuesStart]))
                    }
                    let index = Int(try indices!.next())
                    guard index < dictionary.count else {
                        throw Malformed("dictionary index \(index) in a dictionary of \(dictionary.count) values")
                    }
                    if try !body(firstRow + i, dictionary[index]) { return false }
                }
            case 6, 7:  // DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY
                var position = valuesStart
                let prefixes = header.encoding == 7
                    ? try DeltaBinaryPacked.decode(buffer, &position, end: buffer.count, limit: header.valueCount) : nil
                let lengths = try DeltaBinaryPacked.decode(buffer, &position, end: buffer.count, limit: header.valueCount)
                guard prefixes == nil || prefixes!.count == lengths.count else {
                    throw Malformed("DELTA_BYTE_ARRAY data with \(prefixes!.count) prefixes for \(lengths.count) suffixes")
                }
                var previous: [UInt8] = []
                var next = 0
                for i in 0..<header.valueCount {
                    if var decoder = levels {
                        let level = try decoder.next()
                        levels = decoder
                        if level != leaf.maxDefinition { continue }
                    }
                    guard next < lengths.count else { throw Malformed("a page with fewer values than its levels say") }
                    let length = lengths[next]
                    guard length >= 0, length <= Int64(buffer.count - position) else {
                        throw Malformed("a value of \(length) bytes runs past the end of its page")
                    }
                    let suffix = UnsafeBufferPointer(rebasing: buffer[position..<(position + Int(length))])
                    position += Int(length)
                    let text: String?
                    if let prefixes {
                        let prefix = prefixes[next]
                        guard prefix >= 0, prefix <= Int64(previous.count) else {
                            throw Malformed("a prefix of \(prefix) bytes after a value of \(previous.count)")
                        }
                        previous.removeSubrange(Int(prefix)...)
                        previous.append(contentsOf: suffix)
                        text = String(validating: previous, as: UTF8.self)
                    } else {
                        text = String(validating: suffix, as: UTF8.self)
                    }
                    next += 1
                    guard let text else { throw Malformed("a value is not valid UTF-8") }
                    if try !body(firstRow + i, text) { return false }
                }
            default:
                let names = [3: "RLE", 4: "BIT_PACKED", 5: "DELTA_BINARY_PACKED", 9: "BYTE_STREAM_SPLIT"]
                throw Malformed("the \(names[header.encoding] ?? "\(header.encoding)") encoding of text values is not supported")
            }
            return true
        }
    }

    /// One PLAIN BYTE_ARRAY value (a 4-byte length, then the bytes) as a string.
    private static func plainValue(_ buffer: UnsafeBufferPointer<UInt8>, _ position: inout Int, end: Int) throws -> String {
        guard end - position >= 4 else { throw Malformed("a value runs past the end of its page") }
        let length = Int(UInt32(buffer[position]) | UInt32(buffer[position + 1]) << 8
                          | UInt32(buffer[position + 2]) << 16 | UInt32(buffer[position + 3]) << 24)
        position += 4
        guard length <= end - position else { throw Malformed("a value of \(length) bytes runs past the end of its page") }
        let bytes = UnsafeBufferPointer(rebasing: buffer[position..<(position + length)])
        position += length
        guard let text = String(validating: bytes, as: UTF8.self) else { throw Malformed("a value is not valid UTF-8") }
        return text
    }
}
