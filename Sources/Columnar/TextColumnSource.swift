import Foundation

/// A file holding text columns that is read one batch of rows at a time (a Parquet row group, an Arrow record
/// batch), so that memory is bounded by a batch, not by the file.
public protocol TextColumnSource: AnyObject {
    /// The file.
    var path: String { get }
    /// The columns that can be read.
    var columns: [String] { get }
    /// The most bytes the last `forEachString` held at once (file bytes read plus decompressed buffers).
    var peakResidentBytes: Int { get }
    /// Calls `body(row, text)` for each non-null value of `column` in row order (`row` is 0-based over the file),
    /// until `body` returns false. Throws a `ColumnarError` naming the file for a missing column, a column that is
    /// not text, or damaged data.
    func forEachString(column: String, _ body: (Int, String) throws -> Bool) throws
}

/// Opens a Parquet file (PAR1), an Arrow IPC file (ARROW1) or an Arrow IPC stream, recognised by its first bytes.
public func openColumnarFile(path: String) throws -> any TextColumnSource {
    let file = try RandomAccessFile(path: path)
    let head = try naming(path) { try file.read(0, min(file.size, 8), what: "header") }
    if head.starts(with: Array("PAR1".utf8)) { return try ParquetFile(path: path) }
    if head.starts(with: Array("ARROW1".utf8)) || head.starts(with: [0xFF, 0xFF, 0xFF, 0xFF]) { return try ArrowFile(path: path) }
    throw ColumnarError(path: path, reason: "neither a Parquet file (PAR1) nor an Arrow IPC file or stream")
}
