import Foundation
import Tokenizers

/// Writes scalar summaries to a TensorBoard event file, with no dependency beyond Foundation.
///
/// The file is a sequence of TFRecords, each holding one serialized `tensorflow.Event` protobuf. The first
/// record carries `file_version = "brain.Event:2"`; every later one carries a step and a `Summary` of
/// `simple_value` scalars. Open the directory with `tensorboard --logdir DIR`, or read it back with
/// `Scripts/read_tensorboard_logs.py`.
///
/// Records are collected in memory and written to the file every `flushEvery` records, on `flush()` and on
/// `close()`, so a crashed process loses at most `flushEvery - 1` records. Write errors cannot stop training:
/// `addScalar` never throws; the first error is kept and thrown by the next `flush()` or `close()`.
///
/// Not thread-safe: use one writer from one thread (or guard it with a lock).
public final class TensorBoardWriter {
    /// The event file being written.
    public let fileURL: URL
    /// Records are written to the file each time this many are waiting.
    public let flushEvery: Int

    private var handle: FileHandle?
    private var pending = Data()
    private var pendingRecords = 0
    private var deferredError: Error?

    /// Creates `directory` if needed and a new event file in it, named like TensorBoard's own:
    /// `events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>`. The counter is shared by all the
    /// writers of the process (and skips names already taken), so two writers made in the same second get
    /// two files. The file-version record is written at once.
    public init(directory: URL, flushEvery: Int = 10) throws {
        precondition(flushEvery >= 1, "flushEvery must be at least 1")
        self.flushEvery = flushEvery
        let manager = FileManager.default
        try manager.createDirectory(at: directory, withIntermediateDirectories: true)
        let seconds = Int(Date().timeIntervalSince1970)
        let host = ProcessInfo.processInfo.hostName.replacingOccurrences(of: "/", with: "_")
        let pid = ProcessInfo.processInfo.processIdentifier
        var url: URL
        repeat {
            let name = "\(Self.fileNamePrefix)\(seconds).\(host).\(pid).\(EventFileCounter.next())"
            url = directory.appendingPathComponent(name)
        } while manager.fileExists(atPath: url.path)
        guard manager.createFile(atPath: url.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
        fileURL = url
        handle = try FileHandle(forWritingTo: url)
        var event = ProtobufWriter()
        event.double(field: 1, Date().timeIntervalSince1970)
        event.string(field: 3, "brain.Event:2")
        try handle!.write(contentsOf: TFRecord.frame(event.bytes))
    }

    deinit { try? close() }

    /// Appends one scalar at `step`. `wallTime` is in Unix seconds (now if nil). The value is stored as a
    /// 32-bit float, as TensorBoard's `simple_value` is; NaN and infinities are kept as they are.
    public func addScalar(_ tag: String, _ value: Double, step: Int, wallTime: Double? = nil) {
        addScalars([(tag, value)], step: step, wallTime: wallTime)
    }

    /// Appends several scalars at `step` as one event (one record). Does nothing if `values` is empty or the
    /// writer is closed. Tags are stored as UTF-8.
    public func addScalars(_ values: [(String, Double)], step: Int, wallTime: Double? = nil) {
        guard !values.isEmpty, handle != nil else { return }
        var summary = ProtobufWriter()
        for (tag, value) in values {
            var entry = ProtobufWriter()
            entry.string(field: 1, tag)
            entry.float(field: 2, Float(value))
            summary.message(field: 1, entry)
        }
        var event = ProtobufWriter()
        event.double(field: 1, wallTime ?? Date().timeIntervalSince1970)
        event.int64(field: 2, Int64(step))
        event.message(field: 5, summary)
        pending.append(TFRecord.frame(event.bytes))
        pendingRecords += 1
        if pendingRecords >= flushEvery {
            do { try writePending() } catch { if deferredError == nil { deferredError = error } }
        }
    }

    /// Writes the waiting records to the file. Throws the first write error met since the last call.
    public func flush() throws {
        if handle != nil { try writePending() }
        if let error = deferredError {
            deferredError = nil
            throw error
        }
    }

    /// Flushes, syncs the file to disk and closes it. Later calls to `addScalar` are ignored; calling
    /// `close()` again does nothing.
    public func close() throws {
        guard let handle else { return }
        defer {
            try? handle.close()
            self.handle = nil
        }
        try flush()
        try handle.synchronize()
    }

    /// The prefix of the event files' names.
    static let fileNamePrefix = "events.out.tfevents."

    /// Cuts each event file in `directory` after its last event of a step up to `step` (the file-version record,
    /// of step 0, always stays), dropping the later events and a record cut short by a crash: see
    /// `MetricsLog.discardRecords(after:in:)`.
    public static func discardEvents(after step: Int, in directory: URL) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        for name in names where name.hasPrefix(fileNamePrefix) {
            let url = directory.appendingPathComponent(name)
            let bytes = [UInt8](try Data(contentsOf: url))
            var keep = 0, offset = 0
            while offset + 16 <= bytes.count {
                let length = bytes[offset..<(offset + 8)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                guard length <= UInt64(bytes.count - offset - 16) else { break }
                let data = offset + 12, end = data + Int(length) + 4
                if lastVarintField(2, in: bytes, data..<(end - 4)).map({ $0 <= Int64(step) }) ?? true { keep = end }
                offset = end
            }
            if keep < bytes.count { try MetricsLog.truncate(url, at: keep) }
        }
    }

    private func writePending() throws {
        guard let handle, !pending.isEmpty else { return }
        let data = pending
        pending.removeAll(keepingCapacity: true)
        pendingRecords = 0
        try handle.write(contentsOf: data)
    }
}

/// The process-wide counter that makes event-file names unique.
private enum EventFileCounter {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var value = 0

    static func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value - 1
    }
}

/// TFRecord framing: uint64 little-endian length, masked CRC-32C of those 8 bytes (uint32 LE), the data,
/// masked CRC-32C of the data (uint32 LE).
enum TFRecord {
    static func frame(_ data: [UInt8]) -> Data {
        let length = littleEndianBytes(UInt64(data.count))
        var record = Data(capacity: data.count + 16)
        record.append(contentsOf: length)
        record.append(contentsOf: littleEndianBytes(CRC32C.masked(length)))
        record.append(contentsOf: data)
        record.append(contentsOf: littleEndianBytes(CRC32C.masked(data)))
        return record
    }
}

/// CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF.
enum CRC32C {
    /// One entry per byte value: the CRC of that byte alone (without the initial value and final XOR).
    static let table: [UInt32] = (0..<256).map { byte in
        var crc = UInt32(byte)
        for _ in 0..<8 {
            crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
        }
        return crc
    }

    /// The CRC-32C of `bytes`.
    static func checksum<Bytes: Sequence>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// The checksum as TFRecord stores it: rotated right by 15 bits, plus 0xa282ead8 (wrapping).
    static func masked<Bytes: Sequence>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        let crc = checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

/// The bytes of an integer, least significant first.
func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

/// The last value of varint field `field` in the protobuf message at `range` of `bytes` (as protobuf reads a
/// repeated scalar), nil when the field is absent or the message malformed.
func lastVarintField(_ field: Int, in bytes: [UInt8], _ range: Range<Int>) -> Int64? {
    var reader = ProtoReader(bytes, range: range)
    var found: Int64?
    do {
        while !reader.atEnd {
            let (number, wire) = try reader.tag()
            guard wire == 0 else { try reader.skip(wire: wire); continue }
            let value = try reader.varint()
            if number == field { found = Int64(bitPattern: value) }
        }
    } catch {
        return nil
    }
    return found
}

/// A minimal protobuf encoder: just the field kinds that `Event` and `Summary` need.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    /// An unsigned varint: 7 bits a byte, least significant first, high bit set on all but the last byte.
    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    /// A field key: field number and wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
    mutating func key(field: Int, wireType: UInt64) {
        varint(UInt64(field) << 3 | wireType)
    }

    /// An int64 field (negative values take ten bytes, as protobuf encodes them).
    mutating func int64(field: Int, _ value: Int64) {
        key(field: field, wireType: 0)
        varint(UInt64(bitPattern: value))
    }

    mutating func double(field: Int, _ value: Double) {
        key(field: field, wireType: 1)
        bytes += littleEndianBytes(value.bitPattern)
    }

    mutating func float(field: Int, _ value: Float) {
        key(field: field, wireType: 5)
        bytes += littleEndianBytes(value.bitPattern)
    }

    mutating func lengthDelimited(field: Int, _ payload: [UInt8]) {
        key(field: field, wireType: 2)
        varint(UInt64(payload.count))
        bytes += payload
    }

    /// A string field, UTF-8 encoded.
    mutating func string(field: Int, _ value: String) {
        lengthDelimited(field: field, Array(value.utf8))
    }

    /// An embedded message field.
    mutating func message(field: Int, _ message: ProtobufWriter) {
        lengthDelimited(field: field, message.bytes)
    }
}
