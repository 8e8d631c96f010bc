import JSON
import Columnar
import Foundation
import Tokenizers

// Local text datasets for training: a file or a directory of files, read lazily in chunks.
//
//   .jsonl / .json   JSON lines: one object per line, the text in `textColumn` (a string)
//   .csv             comma-separated values with a header row (RFC 4180 quoting)
//   .tsv             tab-separated values with a header row (same quoting rules)
//   .parquet         Parquet, the text in column `textColumn` (a dotted path inside groups), row group by row group
//   .arrow .feather  Arrow IPC file or stream (as `datasets` writes them), record batch by record batch
//   anything else    plain text, one example per line
//
// A directory written by `datasets`' `save_to_disk` (state.json, or dataset_dict.json and one folder per split)
// reads the Arrow files it lists. Blank lines, empty (or whitespace-only) texts and null values are skipped, like
// the Hugging Face scripts do. A text longer than `TextCorpus.maxTextLength` bytes (4 MiB: a line, a JSON or CSV
// value, a Parquet or Arrow value) is refused, so that reading and tokenizing an example takes bounded memory.
// Every problem is an `AlbertMoEError.badFile` that names the file and, when there is one, the line (the first line
// of a multi-line CSV record), e.g. `data/train.jsonl:17: not valid JSON (column 9: expected ':')`.

/// One text of a corpus and where it comes from.
public struct TextExample: Equatable, Sendable {
    /// The text.
    public let text: String
    /// The file it was read from.
    public let file: URL
    /// The 1-based line it starts on; for a Parquet or Arrow file, its 1-based row in the file.
    public let line: Int
    /// Its 0-based position among all the corpus's examples (skipped lines not counted): what `SplitRule` uses.
    public let index: Int
}

/// Which side of a train/validation split to use.
public enum SplitSide: Sendable {
    case train
    case validation
}

/// A deterministic train/validation split that needs no second pass over the data: example number `i`
/// (0-based over the whole corpus, counting only examples that were not skipped) goes to validation when a hash
/// of `(seed, i)` modulo 10 000 is below `percentage * 100`. So `percentage` 10 sends about 10% of the examples
/// to validation, the same ones on every machine and every run.
public struct SplitRule: Equatable, Sendable {
    /// The share of examples that go to validation, in percent (0...100).
    public var percentage: Double
    /// The seed of the hash.
    public var seed: UInt64

    public init(percentage: Double, seed: UInt64 = 42) {
        self.percentage = percentage
        self.seed = seed
    }

    /// Whether example number `index` belongs to the validation side.
    public func isValidation(index: Int) -> Bool {
        let hash = mixSeeds(seed, SeedPurpose.split.rawValue, UInt64(bitPattern: Int64(index)))
        return Double(hash % 10_000) < percentage * 100
    }

    /// Whether example number `index` belongs to `side`.
    public func includes(index: Int, side: SplitSide) -> Bool {
        isValidation(index: index) == (side == .validation)
    }
}

/// A local text dataset: one file, or every file under a directory (recursively, sorted by path, hidden
/// files and folders skipped; only the Parquet and Arrow files when there are any), or the Arrow files of a
/// `save_to_disk` directory. Files are only listed here; they are read lazily by `forEachExample`.
public struct TextCorpus: Sendable {
    /// How a file is read, chosen by its extension.
    public enum Format: Equatable, Sendable {
        case jsonLines, csv, tsv, parquet, arrow, plainText

        /// The format of a file: .jsonl and .json are JSON lines, .csv and .tsv delimited, .parquet Parquet,
        /// .arrow and .feather Arrow IPC, anything else text.
        public init(file: URL) {
            switch file.pathExtension.lowercased() {
            case "jsonl", "json": self = .jsonLines
            case "csv": self = .csv
            case "tsv": self = .tsv
            case "parquet": self = .parquet
            case "arrow", "feather": self = .arrow
            default: self = .plainText
            }
        }
    }

    /// The path the corpus was opened with.
    public let path: URL
    /// The files read, in order.
    public let files: [URL]
    /// The JSON key or CSV/TSV/Parquet/Arrow column holding the text.
    public let textColumn: String
    /// How many bytes each read takes (small values are for tests of the line splitting).
    var readChunkSize = 1 << 20
    /// The longest text (and line) read, in UTF-8 bytes: 4 MiB. Tokenizing takes memory in proportion to a text's
    /// length, so a longer one (a whole file on one line) is refused, naming its file and line, rather than read.
    public static let maxTextLength = 4 << 20
    /// `maxTextLength`, smaller in tests.
    var textLengthLimit = maxTextLength

    /// Opens a file or a directory (`split` is the split of a `save_to_disk` DatasetDict directory). Throws when
    /// the path does not exist, a directory holds no files, or a `save_to_disk` directory is damaged.
    public init(path: URL, textColumn: String = "text", split: String = "train") throws {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: path.path, isDirectory: &isDirectory) else {
            throw AlbertMoEError.badFile(path: path.path, reason: "no such file or directory")
        }
        if isDirectory.boolValue, let saved = try Self.columnar({ try SavedDataset.dataFiles(in: path, split: split) }) {
            files = saved
        } else if isDirectory.boolValue {
            var found: [URL] = []
            let walker = manager.enumerator(at: path, includingPropertiesForKeys: nil, options: [.skipsHiddenFiles])
            while let url = walker?.nextObject() as? URL {
                var isDir: ObjCBool = false
                if manager.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue { found.append(url) }
            }
            guard !found.isEmpty else {
                throw AlbertMoEError.badFile(path: path.path, reason: "the directory holds no (non-hidden) files")
            }
            // A directory of Parquet or Arrow shards (a Hub download, a datasets cache) also holds README.md,
            // dataset_info.json and the like, which are not examples.
            let columnar = found.filter { [.parquet, .arrow].contains(Format(file: $0)) }
            files = (columnar.isEmpty ? found : columnar).sorted { $0.path < $1.path }
        } else {
            files = [path]
        }
        self.path = path
        self.textColumn = textColumn
    }

    /// Runs `body`, turning a `ColumnarError` into an `AlbertMoEError` naming its file.
    private static func columnar<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ColumnarError {
            throw AlbertMoEError.badFile(path: error.path, reason: error.reason)
        }
    }

    /// A corpus of exactly `files`, read in that order (the shards of a dataset split); `path` names the corpus
    /// in messages. Throws when the list is empty or a file does not exist.
    public init(files: [URL], path: URL, textColumn: String = "text") throws {
        guard !files.isEmpty else { throw AlbertMoEError.badFile(path: path.path, reason: "no files to read") }
        for file in files where !FileManager.default.fileExists(atPath: file.path) {
            throw AlbertMoEError.badFile(path: file.path, reason: "no such file")
        }
        self.files = files
        self.path = path
        self.textColumn = textColumn
    }

    /// Calls `body` with each example in order, reading the files in chunks (memory does not grow with the
    /// corpus). Stops as soon as `body` returns false. Throws an `AlbertMoEError` at the first problem found, and
    /// for a file that turns out to hold no example at all.
    public func forEachExample(_ body: (TextExample) throws -> Bool) throws {
        var index = 0
        for file in files {
            var countInFile = 0
            var stopped = false
            try forEachText(in: file) { text, line in
                let example = TextExample(text: text, file: file, line: line, index: index)
                index += 1
                countInFile += 1
                stopped = try !body(example)
                return !stopped
            }
            if stopped { return }
            if countInFile == 0 {
                throw AlbertMoEError.badFile(path: file.path,
                                             reason: "no examples (the file is empty, or holds only blank lines or empty texts)")
            }
        }
    }

    /// All the examples (or the first `maxSamples`), in order.
    public func readAll(maxSamples: Int? = nil) throws -> [TextExample] {
        var out: [TextExample] = []
        if let maxSamples, maxSamples <= 0 { return out }
        try forEachExample { example in
            out.append(example)
            return maxSamples.map { out.count < $0 } ?? true
        }
        return out
    }

    /// Calls `body(text, line)` for each non-empty text of one file, until it returns false. A text longer than
    /// `textLengthLimit` is an error.
    private func forEachText(in file: URL, _ body: (String, Int) throws -> Bool) throws {
        let limit = textLengthLimit
        func give(_ text: String, _ line: Int) throws -> Bool {
            if isBlank(text) { return true }
            guard text.utf8.count <= limit else { throw LineReader.tooLong(file, line: line, limit: limit, what: "text") }
            return try body(text, line)
        }
        let format = Format(file: file)
        if format == .parquet || format == .arrow {
            try Self.columnar {
                let source: any TextColumnSource = format == .parquet ? try ParquetFile(path: file.path) : try ArrowFile(path: file.path)
                try source.forEachString(column: textColumn) { row, text in try give(text, row + 1) }
            }
            return
        }
        guard format == .plainText else {
            try Self.forEachRecord(in: file, columns: [textColumn], chunkSize: readChunkSize, maxLineLength: limit) { fields, line in
                try give(fields[0], line)
            }
            return
        }
        var reader = try LineReader(file: file, chunkSize: readChunkSize, maxLineLength: limit)
        defer { reader.close() }
        while let (text, line) = try reader.nextLine() {
            if try !give(text, line) { return }
        }
    }

    /// Calls `body(values, line)` with the values of `columns`, in that order, for each record of a JSON-lines,
    /// CSV or TSV file (a CSV record that spans lines reports its first line), until it returns false. In JSON
    /// lines a column must be a string, or a number when it is one of `numericColumns`. Throws an `AlbertMoEError`
    /// naming the file and line for anything malformed or missing, and for a line or a CSV record longer than
    /// `maxLineLength` bytes.
    static func forEachRecord(in file: URL, columns: [String], numericColumns: Set<String> = [], chunkSize: Int = 1 << 20,
                              maxLineLength: Int = maxTextLength, _ body: ([String], Int) throws -> Bool) throws {
        var reader = try LineReader(file: file, chunkSize: chunkSize, maxLineLength: maxLineLength)
        defer { reader.close() }
        switch Format(file: file) {
        case .plainText, .parquet, .arrow:
            throw AlbertMoEError.badFile(path: file.path,
                                         reason: "expected a .jsonl, .csv or .tsv file with the columns \(columns.joined(separator: ", "))")
        case .jsonLines:
            while let (text, line) = try reader.nextLine() {
                if isBlank(text) { continue }
                let values = try jsonValues(text, columns: columns, numericColumns: numericColumns, file: file, line: line)
                if try !body(values, line) { return }
            }
        case .csv, .tsv:
            let tsv = Format(file: file) == .tsv
            var parser = DelimitedRecordParser(delimiter: tsv ? UInt8(ascii: "\t") : UInt8(ascii: ","))
            var header: [String]? = nil
            var positions: [Int] = []
            var recordLength = 0
            while let (text, line) = try reader.nextLine() {
                recordLength += text.utf8.count + 1
                guard let (fields, firstLine) = parser.feed(text, line: line) else {
                    if let open = parser.openRecordLine, recordLength > maxLineLength {
                        throw LineReader.tooLong(file, line: open, limit: maxLineLength, what: "record")
                    }
                    if parser.openRecordLine == nil { recordLength = 0 }
                    continue
                }
                recordLength = 0
                guard let header else {
                    let names = fields.map { "'\($0)'" }.joined(separator: ", ")
                    for column in columns where !fields.contains(column) {
                        throw AlbertMoEError.badFile(path: file.path, line: firstLine,
                                                     reason: "no column '\(column)' in the header (columns: \(names))")
                    }
                    header = fields
                    positions = columns.map { fields.firstIndex(of: $0)! }
                    continue
                }
                guard fields.count == header.count else {
                    let hint = tsv ? "" : "; quote fields that contain commas"
                    throw AlbertMoEError.badFile(path: file.path, line: firstLine,
                                                 reason: "\(fields.count) fields, but the header has \(header.count)\(hint)")
                }
                if try !body(positions.map { fields[$0] }, firstLine) { return }
            }
            if let open = parser.openRecordLine {
                throw AlbertMoEError.badFile(path: file.path, line: open,
                                             reason: "unterminated quoted field (the quote opened here is never closed)")
            }
        }
    }

    /// The values of `columns` in one JSON line.
    private static func jsonValues(_ text: String, columns: [String], numericColumns: Set<String>, file: URL,
                                   line: Int) throws -> [String] {
        let value: JSONValue
        do {
            value = try JSONValue.parse(text)
        } catch let error as JSONError {
            throw AlbertMoEError.badFile(path: file.path, line: line,
                                         reason: "not valid JSON (column \(error.offset + 1): \(error.reason))")
        }
        guard case let .object(object) = value else {
            throw AlbertMoEError.badFile(path: file.path, line: line, reason: "expected a JSON object, found \(describe(value))")
        }
        return try columns.map { column in
            guard let field = object[column] else {
                let keys = object.pairs.map { "'\($0.0)'" }.joined(separator: ", ")
                throw AlbertMoEError.badFile(path: file.path, line: line,
                                             reason: "no key '\(column)' in this object (keys: \(keys))")
            }
            switch field {
            case let .string(s): return s
            case let .number(n) where numericColumns.contains(column): return String(n)
            default:
                throw AlbertMoEError.badFile(path: file.path, line: line,
                                             reason: "'\(column)' is \(describe(field)), not a string")
            }
        }
    }

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// Whether a text is empty or only whitespace (such texts are skipped).
func isBlank(_ text: String) -> Bool { text.allSatisfy(\.isWhitespace) }

/// Reads a file line by line through a fixed-size buffer. Lines are split on "\n" (a "\r" before it is
/// dropped), a UTF-8 byte-order mark at the start of the file is dropped, and each line must be valid UTF-8 and at
/// most `maxLineLength` bytes long (the buffer never holds more than that and a chunk).
struct LineReader {
    private let file: URL
    private let handle: FileHandle
    private let chunkSize: Int
    private let maxLineLength: Int
    private var buffer: [UInt8] = []
    /// Where the next line starts in `buffer`.
    private var start = 0
    /// Bytes of `buffer` from `start` up to here hold no newline.
    private var scanned = 0
    private var atEnd = false
    private var lineNumber = 0

    init(file: URL, chunkSize: Int, maxLineLength: Int) throws {
        guard let handle = FileHandle(forReadingAtPath: file.path) else {
            throw AlbertMoEError.badFile(path: file.path, reason: "cannot open the file for reading")
        }
        self.file = file
        self.handle = handle
        self.chunkSize = max(1, chunkSize)
        self.maxLineLength = maxLineLength
    }

    /// The error for a line or text of `file` longer than `limit` bytes.
    static func tooLong(_ file: URL, line: Int, limit: Int, what: String) -> AlbertMoEError {
        .badFile(path: file.path, line: line, reason: "a \(what) longer than \(limit) bytes, the longest read (tokenizing takes "
                 + "memory in proportion to its length): split it into lines")
    }

    func close() { try? handle.close() }

    /// The next line and its 1-based number, or nil at the end of the file.
    mutating func nextLine() throws -> (String, Int)? {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                try checkLength(newline - start)
                let line = try decode(buffer[start..<newline])
                start = newline + 1
                scanned = start
                return line
            }
            scanned = buffer.count
            try checkLength(buffer.count - start)
            if atEnd {
                guard start < buffer.count else { return nil }
                let line = try decode(buffer[start...])
                start = buffer.count
                return line
            }
            try refill()
        }
    }

    /// Throws when the line being read, of at least `length` bytes (its "\r" included), is too long.
    private func checkLength(_ length: Int) throws {
        let carriageReturn = length > 0 && buffer[start + length - 1] == UInt8(ascii: "\r") ? 1 : 0
        if length - carriageReturn > maxLineLength {
            throw Self.tooLong(file, line: lineNumber + 1, limit: maxLineLength, what: "line")
        }
    }

    /// Drops the consumed bytes and appends the next chunk of the file.
    private mutating func refill() throws {
        if start > 0 {
            buffer.removeFirst(start)
            scanned -= start
            start = 0
        }
        let data: Data?
        do { data = try handle.read(upToCount: chunkSize) } catch {
            throw AlbertMoEError.badFile(path: file.path, line: lineNumber + 1,
                                         reason: "cannot read the file (\(error.localizedDescription))")
        }
        if let data, !data.isEmpty { buffer.append(contentsOf: data) } else { atEnd = true }
    }

    private mutating func decode(_ bytes: ArraySlice<UInt8>) throws -> (String, Int) {
        lineNumber += 1
        var bytes = bytes
        if bytes.last == UInt8(ascii: "\r") { bytes = bytes.dropLast() }
        if lineNumber == 1, bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let offset = validUTF8PrefixLength(bytes)
            throw AlbertMoEError.badFile(path: file.path, line: lineNumber,
                                         reason: "invalid UTF-8 (byte \(offset + 1) of the line)")
        }
        return (text, lineNumber)
    }

    /// How many bytes at the start of `bytes` are valid UTF-8 (where the first bad sequence starts).
    private func validUTF8PrefixLength(_ bytes: ArraySlice<UInt8>) -> Int {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case let .scalarValue(scalar): offset += UTF8.width(scalar)
            case .emptyInput, .error: return offset
            }
        }
    }
}

/// Splits CSV/TSV lines into records with RFC 4180 quoting: a field that starts with a quote runs to the
/// matching quote and may hold delimiters, doubled quotes ("" for ") and newlines. A quote inside an unquoted
/// field is an ordinary character, and characters after a closing quote are kept (like Python's csv module).
struct DelimitedRecordParser {
    private enum State { case fieldStart, unquoted, quoted, quoteInQuoted }

    let delimiter: UInt8
    private var state = State.fieldStart
    private var fields: [String] = []
    private var field: [UInt8] = []
    private var recordLine: Int? = nil

    init(delimiter: UInt8) { self.delimiter = delimiter }

    /// The line where a record that is still open (inside quotes) started, if any.
    var openRecordLine: Int? { recordLine }

    /// Feeds one line. Returns the record's fields and the line it started on when the line ends a record;
    /// nil when the record continues on the next line (a newline inside quotes) or the line is blank.
    mutating func feed(_ text: String, line: Int) -> ([String], Int)? {
        if recordLine == nil {
            if isBlank(text) { return nil }
            recordLine = line
        } else {
            field.append(UInt8(ascii: "\n"))  // the newline inside a quoted field
        }
        let quote = UInt8(ascii: "\"")
        for byte in text.utf8 {
            switch state {
            case .fieldStart:
                if byte == quote { state = .quoted }
                else if byte == delimiter { endField() }
                else { field.append(byte); state = .unquoted }
            case .unquoted:
                if byte == delimiter { endField() } else { field.append(byte) }
            case .quoted:
                if byte == quote { state = .quoteInQuoted } else { field.append(byte) }
            case .quoteInQuoted:
                if byte == quote { field.append(quote); state = .quoted }
                else if byte == delimiter { endField() }
                else { field.append(byte); state = .unquoted }
            }
        }
        if state == .quoted { return nil }
        endField()
        let record = (fields, recordLine!)
        fields = []
        recordLine = nil
        return record
    }

    private mutating func endField() {
        fields.append(String(decoding: field, as: UTF8.self))
        field.removeAll(keepingCapacity: true)
        state = .fieldStart
    }
}
