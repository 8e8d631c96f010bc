import Foundation
import XCTest
@testable import AlbertMoE

/// Tests of `TensorBoardWriter` and `MetricsLog`. Event files are read back by a reader written here from the
/// file-format description (TFRecord framing with both CRCs checked, then protobuf decoding).
///
/// Set `ALBERTMOE_KEEP_EVENTS=/some/dir` to keep the event file of `testEventFileRoundTrip` in that directory,
/// e.g. to check it with `python3 Scripts/read_tensorboard_logs.py /some/dir`.
final class MetricsLogTests: XCTestCase {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-metrics-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func eventFiles(in directory: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.lastPathComponent.hasPrefix("events.out.tfevents.") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    // MARK: - CRC-32C

    func testCRC32CKnownValues() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        // Masked values as computed by the tensorboard Python package's own TFRecord code.
        XCTAssertEqual(CRC32C.masked(Array("123456789".utf8)), 0xC78A_B0E5)
        XCTAssertEqual(CRC32C.masked(littleEndianBytes(UInt64(5))), 0x3E04_B2EA)
    }

    // MARK: - Event files

    func testEventFileRoundTrip() throws {
        let keep = ProcessInfo.processInfo.environment["ALBERTMOE_KEEP_EVENTS"].map { URL(fileURLWithPath: $0) }
        let dir = try keep ?? temporaryDirectory()
        let before = Date().timeIntervalSince1970
        let writer = try TensorBoardWriter(directory: dir)
        for step in 0..<5 {
            writer.addScalar("train/loss", 4.0 - 0.5 * Double(step), step: step * 10)
        }
        writer.addScalars([("train/lr", 3e-4), ("train/λ_ünïcode", -2.25)], step: 40, wallTime: 1_700_000_000.5)
        writer.addScalar("train/nan", .nan, step: 50)
        writer.addScalar("train/inf", .infinity, step: 50)
        writer.addScalar("train/big_step", 1.5, step: 1 << 40)
        try writer.close()
        writer.addScalar("train/after_close", 1, step: 0)  // ignored

        let events = try EventFileReader.read(writer.fileURL)
        XCTAssertEqual(events.count, 1 + 5 + 1 + 3)
        XCTAssertEqual(events[0].fileVersion, "brain.Event:2")
        XCTAssertTrue(events[0].values.isEmpty)
        XCTAssertEqual(events[0].wallTime!, before, accuracy: 60)

        let losses = events.filter { $0.values.first?.tag == "train/loss" }
        XCTAssertEqual(losses.map(\.step), [0, 10, 20, 30, 40])
        XCTAssertEqual(losses.map { $0.values[0].value }, [4.0, 3.5, 3.0, 2.5, 2.0])
        for event in losses { XCTAssertEqual(event.wallTime!, before, accuracy: 60) }

        let multi = events[6]
        XCTAssertEqual(multi.step, 40)
        XCTAssertEqual(multi.wallTime, 1_700_000_000.5)
        XCTAssertEqual(multi.values.map(\.tag), ["train/lr", "train/λ_ünïcode"])
        XCTAssertEqual(multi.values.map(\.value), [Float(3e-4), -2.25])

        XCTAssertEqual(events[7].values.map(\.tag), ["train/nan"])
        XCTAssertTrue(events[7].values[0].value.isNaN)
        XCTAssertEqual(events[8].values[0].value, .infinity)
        XCTAssertEqual(events[9].step, 1 << 40)
        XCTAssertFalse(events.contains { $0.values.contains { $0.tag == "train/after_close" } })

        // events.out.tfevents.<seconds>.<hostname>.<pid>.<counter>; the hostname may contain dots.
        let parts = writer.fileURL.lastPathComponent.split(separator: ".").map(String.init)
        XCTAssertEqual(Array(parts.prefix(3)), ["events", "out", "tfevents"])
        XCTAssertGreaterThanOrEqual(parts.count, 7)
        XCTAssertEqual(Double(Int(parts[3]) ?? 0), before.rounded(.down), accuracy: 60)
        XCTAssertEqual(parts[4..<(parts.count - 2)].joined(separator: "."), ProcessInfo.processInfo.hostName)
        XCTAssertEqual(Int32(parts[parts.count - 2]), ProcessInfo.processInfo.processIdentifier)
        XCTAssertNotNil(Int(parts[parts.count - 1]))
    }

    func testRecordsReachTheFileEveryNRecords() throws {
        let dir = try temporaryDirectory()
        let writer = try TensorBoardWriter(directory: dir, flushEvery: 3)
        XCTAssertEqual(try EventFileReader.read(writer.fileURL).count, 1)  // the file-version record, at once
        writer.addScalar("a", 1, step: 1)
        writer.addScalar("a", 2, step: 2)
        XCTAssertEqual(try EventFileReader.read(writer.fileURL).count, 1)
        writer.addScalar("a", 3, step: 3)
        XCTAssertEqual(try EventFileReader.read(writer.fileURL).count, 4)
        writer.addScalar("a", 4, step: 4)
        try writer.flush()
        XCTAssertEqual(try EventFileReader.read(writer.fileURL).map(\.step), [0, 1, 2, 3, 4])
        try writer.close()
    }

    func testCorruptedByteFailsTheCRCCheck() throws {
        let dir = try temporaryDirectory()
        let writer = try TensorBoardWriter(directory: dir)
        writer.addScalar("train/loss", 1.25, step: 7)
        try writer.close()
        let good = try Data(contentsOf: writer.fileURL)
        XCTAssertEqual(try EventFileReader.parse(good).count, 2)

        // A record is 8 length bytes, 4 CRC bytes, the data, 4 CRC bytes. The first record is short, so its
        // length fits in its first byte.
        let second = 16 + Int(good[0])
        var badData = good
        badData[second + 12 + 3] ^= 0x01  // a byte inside the second record's data
        XCTAssertThrowsError(try EventFileReader.parse(badData)) { error in
            XCTAssertEqual(error as? EventFileReader.Failure, .dataCRC(record: 1))
        }
        var badLength = good
        badLength[second] ^= 0x01  // the second record's length
        XCTAssertThrowsError(try EventFileReader.parse(badLength)) { error in
            XCTAssertEqual(error as? EventFileReader.Failure, .lengthCRC(record: 1))
        }
        var badCRC = good
        badCRC[good.count - 1] ^= 0x80  // the last data CRC itself
        XCTAssertThrowsError(try EventFileReader.parse(badCRC)) { error in
            XCTAssertEqual(error as? EventFileReader.Failure, .dataCRC(record: 1))
        }
        XCTAssertThrowsError(try EventFileReader.parse(good.dropLast(2))) { error in
            XCTAssertEqual(error as? EventFileReader.Failure, .truncated(record: 1))
        }
    }

    func testTwoWritersInTheSameSecondMakeTwoFiles() throws {
        let dir = try temporaryDirectory()
        let first = try TensorBoardWriter(directory: dir)
        let second = try TensorBoardWriter(directory: dir)
        XCTAssertNotEqual(first.fileURL, second.fileURL)
        first.addScalar("x", 1, step: 1)
        second.addScalar("x", 2, step: 2)
        try first.close()
        try second.close()
        XCTAssertEqual(try eventFiles(in: dir).count, 2)
        XCTAssertEqual(try EventFileReader.read(first.fileURL).last?.values.first?.value, 1)
        XCTAssertEqual(try EventFileReader.read(second.fileURL).last?.values.first?.value, 2)
    }

    // MARK: - MetricsLog

    func readLines(_ url: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: url, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"))
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testMetricsLogWritesJSONLinesAndTensorBoard() throws {
        let dir = try temporaryDirectory()
        let log = try MetricsLog(directory: dir)
        let before = Date().timeIntervalSince1970
        log.log(step: 10, [("train/loss", 2.5), ("train/lr", 1e-5), ("say \"hi\"\\ λ", 0.1)])
        log.log(step: 20, [("train/loss", .nan), ("train/grad_norm", -.infinity)])
        try log.close()
        log.log(step: 30, [("train/loss", 1)])  // ignored

        let text = try String(contentsOf: log.fileURL, encoding: .utf8)
        let firstLine = try XCTUnwrap(text.split(separator: "\n").first)
        XCTAssertTrue(firstLine.hasPrefix("{\"step\": 10, \"time\": "))
        let order = ["\"time\"", "\"train/loss\"", "\"train/lr\"", "\"say"].map { firstLine.range(of: $0)!.lowerBound }
        XCTAssertEqual(order, order.sorted())  // keys in the given order

        let lines = try readLines(log.fileURL)
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines[0]["step"] as? Int, 10)
        XCTAssertEqual(try XCTUnwrap(lines[0]["time"] as? Double), before, accuracy: 60)
        XCTAssertEqual(lines[0]["train/loss"] as? Double, 2.5)
        XCTAssertEqual(lines[0]["train/lr"] as? Double, 1e-5)
        XCTAssertEqual(lines[0]["say \"hi\"\\ λ"] as? Double, 0.1)
        XCTAssertEqual(lines[1]["step"] as? Int, 20)
        XCTAssertTrue(lines[1]["train/loss"] is NSNull)
        XCTAssertTrue(lines[1]["train/grad_norm"] is NSNull)

        let files = try eventFiles(in: dir)
        XCTAssertEqual(files, [log.tensorBoard!.fileURL])
        let events = try EventFileReader.read(files[0]).dropFirst()
        XCTAssertEqual(events.map(\.step), [10, 20])
        XCTAssertEqual(events.first!.values.map(\.tag), ["train/loss", "train/lr", "say \"hi\"\\ λ"])
        XCTAssertEqual(events.first!.values.map(\.value), [2.5, 1e-5, 0.1])
        // The same time in both files (to the microsecond: Foundation's JSON parser may round the last digit).
        XCTAssertEqual(events.first!.wallTime ?? 0, (lines[0]["time"] as? Double) ?? 0, accuracy: 1e-5)
        XCTAssertTrue(events.last!.values[0].value.isNaN)
        XCTAssertEqual(events.last!.values[1].value, -.infinity)
    }

    func testReopeningAppends() throws {
        let dir = try temporaryDirectory()
        let first = try MetricsLog(directory: dir)
        first.log(step: 1, [("train/loss", 3)])
        first.log(step: 2, [("train/loss", 2)])
        try first.close()
        let second = try MetricsLog(directory: dir)
        second.log(step: 3, [("train/loss", 1)])
        try second.close()
        XCTAssertEqual(try readLines(dir.appendingPathComponent("metrics.jsonl")).map { $0["step"] as? Int }, [1, 2, 3])
        let files = try eventFiles(in: dir)
        XCTAssertEqual(files.count, 2)
        let steps = try files.flatMap { try EventFileReader.read($0).filter { !$0.values.isEmpty }.map(\.step) }
        XCTAssertEqual(steps.sorted(), [1, 2, 3])
    }

    func testReopeningAfterACutShortLineStartsANewLine() throws {
        let dir = try temporaryDirectory()
        let url = dir.appendingPathComponent("metrics.jsonl")
        try Data("{\"step\": 1, \"train/loss\": 2}\n{\"step\": 2, \"tra".utf8).write(to: url)
        let log = try MetricsLog(directory: dir, tensorBoard: false)
        log.log(step: 3, [("train/loss", 1)])
        try log.close()
        XCTAssertNil(log.tensorBoard)
        XCTAssertEqual(try eventFiles(in: dir), [])
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        let last = try JSONSerialization.jsonObject(with: Data(lines[2].utf8)) as? [String: Any]
        XCTAssertEqual(last?["step"] as? Int, 3)
        XCTAssertEqual(last?["train/loss"] as? Double, 1)
    }

    func testExpertLoadScalars() {
        let balanced = MetricsLog.expertLoadScalars([0.25, 0.25, 0.25, 0.25])
        XCTAssertEqual(balanced.map(\.0), ["train/expert_load/0", "train/expert_load/1", "train/expert_load/2",
                                           "train/expert_load/3", "train/load_imbalance"])
        XCTAssertEqual(balanced.map(\.1), [0.25, 0.25, 0.25, 0.25, 1.0])

        let skewed = MetricsLog.expertLoadScalars([0.5, 0.25, 0.125, 0.125], prefix: "eval/load")
        XCTAssertEqual(skewed.map(\.0), ["eval/load/0", "eval/load/1", "eval/load/2", "eval/load/3", "eval/load_imbalance"])
        XCTAssertEqual(skewed.last!.1, 2.0, accuracy: 1e-12)  // 0.5 / mean 0.25

        let oneExpert = MetricsLog.expertLoadScalars([0, 1, 0], prefix: "load")
        XCTAssertEqual(oneExpert.last!.0, "load_imbalance")
        XCTAssertEqual(oneExpert.last!.1, 3.0, accuracy: 1e-6)

        XCTAssertTrue(MetricsLog.expertLoadScalars([0, 0]).last!.1.isNaN)
        XCTAssertTrue(MetricsLog.expertLoadScalars([]).isEmpty)
    }
}

/// Reads a TensorBoard event file back, independently of the writer: TFRecord framing with both masked
/// CRC-32Cs verified, then a small protobuf decoder for `Event` and `Summary`.
enum EventFileReader {
    struct Event {
        var wallTime: Double?
        var step: Int64 = 0
        var fileVersion: String?
        var values: [(tag: String, value: Float)] = []
    }

    enum Failure: Error, Equatable {
        case truncated(record: Int)
        case lengthCRC(record: Int)
        case dataCRC(record: Int)
        case badProtobuf(String)
    }

    static func read(_ url: URL) throws -> [Event] {
        try parse(Data(contentsOf: url))
    }

    static func parse(_ data: Data) throws -> [Event] {
        try records(Array(data)).map(decodeEvent)
    }

    /// Splits the file into record payloads, checking the framing and both CRCs.
    static func records(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let index = records.count
            guard offset + 12 <= bytes.count else { throw Failure.truncated(record: index) }
            let lengthBytes = Array(bytes[offset..<(offset + 8)])
            guard uint32(bytes, offset + 8) == mask(CRC32C.checksum(lengthBytes)) else {
                throw Failure.lengthCRC(record: index)
            }
            let length = Int(lengthBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) })
            let start = offset + 12
            guard start + length + 4 <= bytes.count else { throw Failure.truncated(record: index) }
            let payload = Array(bytes[start..<(start + length)])
            guard uint32(bytes, start + length) == mask(CRC32C.checksum(payload)) else {
                throw Failure.dataCRC(record: index)
            }
            records.append(payload)
            offset = start + length + 4
        }
        return records
    }

    /// The TFRecord mask, written out again here rather than taken from the writer.
    static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    static func uint32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }

    enum Field {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        case bytes([UInt8])
    }

    /// The (field number, value) pairs of one protobuf message, in order.
    static func fields(_ bytes: [UInt8]) throws -> [(Int, Field)] {
        var fields: [(Int, Field)] = []
        var offset = 0
        func varint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard offset < bytes.count, shift < 64 else { throw Failure.badProtobuf("bad varint") }
                let byte = bytes[offset]
                offset += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
        }
        func take(_ count: Int) throws -> [UInt8] {
            guard count >= 0, offset + count <= bytes.count else { throw Failure.badProtobuf("field runs past the end") }
            defer { offset += count }
            return Array(bytes[offset..<(offset + count)])
        }
        func littleEndian(_ count: Int) throws -> UInt64 {
            try take(count).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        }
        while offset < bytes.count {
            let key = try varint()
            let field = Int(key >> 3)
            switch key & 7 {
            case 0: fields.append((field, .varint(try varint())))
            case 1: fields.append((field, .fixed64(try littleEndian(8))))
            case 2: fields.append((field, .bytes(try take(Int(try varint())))))
            case 5: fields.append((field, .fixed32(UInt32(try littleEndian(4)))))
            default: throw Failure.badProtobuf("wire type \(key & 7)")
            }
        }
        return fields
    }

    static func decodeEvent(_ bytes: [UInt8]) throws -> Event {
        var event = Event()
        for (field, value) in try fields(bytes) {
            switch (field, value) {
            case (1, .fixed64(let bits)): event.wallTime = Double(bitPattern: bits)
            case (2, .varint(let step)): event.step = Int64(bitPattern: step)
            case (3, .bytes(let text)): event.fileVersion = String(decoding: text, as: UTF8.self)
            case (5, .bytes(let summary)):
                for case (1, .bytes(let entry)) in try fields(summary) {
                    var tag = ""
                    var number = Float.nan
                    var hasValue = false
                    for (valueField, item) in try fields(entry) {
                        switch (valueField, item) {
                        case (1, .bytes(let text)): tag = String(decoding: text, as: UTF8.self)
                        case (2, .fixed32(let bits)): number = Float(bitPattern: bits); hasValue = true
                        default: throw Failure.badProtobuf("unexpected Summary.Value field \(valueField)")
                        }
                    }
                    guard hasValue else { throw Failure.badProtobuf("no simple_value for \(tag)") }
                    event.values.append((tag, number))
                }
            default: throw Failure.badProtobuf("unexpected Event field \(field)")
            }
        }
        return event
    }
}
