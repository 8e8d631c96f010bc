import JSON
import Foundation
import Tokenizers

/// Training metrics, written as JSON lines (`metrics.jsonl`) and, optionally, as a TensorBoard event file in
/// the same directory.
///
/// Each `log` call writes one line such as
///
///     {"step": 100, "time": 1767225600.25, "train/loss": 2.5, "train/lr": 0.0003}
///
/// with the keys in the order given. `time` is the wall-clock time in Unix seconds. Non-finite values (NaN,
/// +Infinity, -Infinity) are written as JSON `null`, so every line stays valid JSON for any parser; the
/// TensorBoard file keeps the exact value. Scalar names must differ from each other and from "step" and "time".
///
/// The JSON line is written to the file at once and the TensorBoard file is flushed after each call, so a
/// crash loses nothing already logged. An existing `metrics.jsonl` is appended to, so a resumed run continues
/// the same file (TensorBoard gets a new event file, which it reads after the older ones);
/// `discardRecords(after:in:)` first drops what the stopped run logged after the step it resumes from. I/O errors never
/// stop training: `log` does not throw; the first error is kept and thrown by the next `flush()` or `close()`.
///
/// Not thread-safe: use one log from one thread.
public final class MetricsLog {
    /// The name of the JSON-lines file.
    public static let fileName = "metrics.jsonl"

    /// The JSON-lines file.
    public let fileURL: URL
    /// The TensorBoard writer, if one was asked for.
    public let tensorBoard: TensorBoardWriter?

    private var handle: FileHandle?
    private var deferredError: Error?

    /// Opens (or creates) `directory/metrics.jsonl` for appending and, if `tensorBoard` is true, starts a new
    /// TensorBoard event file in `directory`. If the existing file's last line was cut short (a crash while
    /// writing), a newline is added first so the next line starts cleanly.
    public init(directory: URL, tensorBoard: Bool = true) throws {
        let manager = FileManager.default
        try manager.createDirectory(at: directory, withIntermediateDirectories: true)
        fileURL = directory.appendingPathComponent(Self.fileName)
        if !manager.fileExists(atPath: fileURL.path) {
            guard manager.createFile(atPath: fileURL.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: fileURL.path])
            }
        }
        let handle = try FileHandle(forUpdating: fileURL)
        let end = try handle.seekToEnd()
        if end > 0 {
            try handle.seek(toOffset: end - 1)
            let last = try handle.read(upToCount: 1)
            try handle.seekToEnd()
            if last != Data("\n".utf8) { try handle.write(contentsOf: Data("\n".utf8)) }
        }
        self.handle = handle
        self.tensorBoard = tensorBoard ? try TensorBoardWriter(directory: directory) : nil
    }

    deinit { try? close() }

    /// Writes the scalars of `step`: one JSON line, and one TensorBoard event with the same wall time.
    /// Does nothing after `close()`.
    public func log(step: Int, _ scalars: [(String, Double)]) {
        guard let handle else { return }
        let time = Date().timeIntervalSince1970
        var line = "{\"step\": \(step), \"time\": \(Self.jsonNumber(time))"
        for (name, value) in scalars {
            precondition(name != "step" && name != "time", "MetricsLog: \"\(name)\" is a reserved key")
            line += ", \(Self.jsonString(name)): \(Self.jsonNumber(value))"
        }
        line += "}\n"
        do { try handle.write(contentsOf: Data(line.utf8)) } catch { keep(error) }
        if let tensorBoard {
            tensorBoard.addScalars(scalars, step: step, wallTime: time)
            do { try tensorBoard.flush() } catch { keep(error) }
        }
    }

    /// Makes sure everything logged is in the files. Throws the first I/O error met since the last call.
    public func flush() throws {
        try tensorBoard?.flush()
        if let error = deferredError {
            deferredError = nil
            throw error
        }
    }

    /// Flushes, syncs and closes both files. Later `log` calls are ignored; calling `close()` again does nothing.
    public func close() throws {
        guard let handle else { return }
        self.handle = nil
        defer { try? handle.close() }
        try tensorBoard?.close()
        try flush()
        try handle.synchronize()
    }

    /// Drops from `directory`'s metrics.jsonl and TensorBoard event files what was logged after `step`: a run
    /// resuming from a checkpoint of `step` logs the later steps again, which must not appear twice. Each file is cut
    /// after its last record of a step up to `step` (records after it, and a record cut short by a crash, go), so
    /// that the records of an earlier run in the same files stay. A directory or file that does not exist is fine.
    public static func discardRecords(after step: Int, in directory: URL) throws {
        let url = directory.appendingPathComponent(fileName)
        if FileManager.default.fileExists(atPath: url.path) {
            let data = try Data(contentsOf: url)
            var keep = 0, start = 0
            let bytes = [UInt8](data)
            while start < bytes.count {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? bytes.count
                if case let .object(object)? = try? JSONValue.parse(Data(bytes[start..<end])),
                   case let .number(logged)? = object["step"], logged <= Double(step) {
                    keep = end
                }
                start = end
            }
            if keep < bytes.count { try truncate(url, at: keep) }
        }
        try TensorBoardWriter.discardEvents(after: step, in: directory)
    }

    /// Cuts a file to its first `length` bytes.
    static func truncate(_ url: URL, at length: Int) throws {
        let handle = try FileHandle(forUpdating: url)
        defer { try? handle.close() }
        try handle.truncate(atOffset: UInt64(length))
        try handle.synchronize()
    }

    /// Scalars for the per-expert load: `<prefix>/0` ... `<prefix>/<X-1>` (the fraction of routed tokens that
    /// each expert received, as in `LMOutput.expertLoad`), then the load imbalance, max load / mean load:
    /// 1.0 when every expert gets the same share, X when one expert gets everything. The imbalance is named
    /// after the prefix's parent: `train/load_imbalance` for the default prefix, `load_imbalance` for a prefix
    /// with no "/". It is NaN when no load was recorded (all zeros). An empty `load` gives no scalars.
    public static func expertLoadScalars(_ load: [Float], prefix: String = "train/expert_load") -> [(String, Double)] {
        guard !load.isEmpty else { return [] }
        var scalars = load.enumerated().map { ("\(prefix)/\($0.offset)", Double($0.element)) }
        let values = load.map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let imbalance = mean > 0 ? values.max()! / mean : .nan
        let parent = prefix.lastIndex(of: "/").map { String(prefix[...$0]) } ?? ""
        scalars.append(("\(parent)load_imbalance", imbalance))
        return scalars
    }

    private func keep(_ error: Error) {
        if deferredError == nil { deferredError = error }
    }

    /// A JSON number: the shortest text that reads back as the same Double (e.g. `0.1`, `2.0`, `1e-05`), or
    /// `null` for NaN and the infinities, which JSON cannot represent.
    static func jsonNumber(_ value: Double) -> String {
        value.isFinite ? "\(value)" : "null"
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped; other characters as UTF-8.
    static func jsonString(_ text: String) -> String { JSONValue.quoted(text) }
}
