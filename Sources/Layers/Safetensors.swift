import Foundation

/// The element types a safetensors file may hold.
public enum SafetensorsDType: String {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    var size: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }
}

/// One tensor of a safetensors or PyTorch file: floating-point types as Float32 (F16, BF16 and F64 converted),
/// integer and bool types as 32-bit integers.
public enum SafetensorsValue {
    case float(Tensor)
    case int(IntTensor)
}

/// The contents of a safetensors file: tensors by name and the string metadata.
public struct SafetensorsFile {
    public var tensors: [String: SafetensorsValue]
    public var metadata: [String: String]

    /// Headers larger than this are refused (the format's own limit).
    public static let maxHeaderBytes = 100_000_000

    /// Reads a whole file. Every damage (truncation, offsets out of range or overlapping, unknown types,
    /// invalid JSON) is an `AlbertMoEError.badFile`, never a crash.
    public static func read(_ url: URL) throws -> SafetensorsFile {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw AlbertMoEError.badFile(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try read(data, name: url.path)
    }

    public static func read(_ data: Data, name: String = "safetensors data") throws -> SafetensorsFile {
        func fail(_ why: String) -> AlbertMoEError { .badFile(path: name, reason: why) }
        guard data.count >= 8 else { throw fail("file of \(data.count) bytes is too short for a safetensors header") }
        let headerLength = data.withUnsafeBytes { raw -> UInt64 in
            var n: UInt64 = 0
            for i in 0..<8 { n |= UInt64(raw[i]) << UInt64(8 * i) }
            return n
        }
        guard headerLength <= UInt64(maxHeaderBytes) else {
            throw fail("header of \(headerLength) bytes exceeds the limit of \(maxHeaderBytes)")
        }
        guard headerLength <= UInt64(data.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the file (\(data.count) bytes)")
        }
        let headerEnd = 8 + Int(headerLength)
        let header = data.subdata(in: data.startIndex + 8 ..< data.startIndex + headerEnd)
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: header) } catch {
            throw fail("header is not valid JSON")
        }
        guard let object = json as? [String: Any] else { throw fail("header is not a JSON object") }

        var metadata: [String: String] = [:]
        if let meta = object["__metadata__"] {
            guard let m = meta as? [String: Any] else { throw fail("__metadata__ is not an object") }
            for (k, v) in m {
                guard let s = v as? String else { throw fail("__metadata__ value for \"\(k)\" is not a string") }
                metadata[k] = s
            }
        }

        struct Entry { let name: String; let dtype: SafetensorsDType; let shape: [Int]; let begin: Int; let end: Int }
        let bufferSize = data.count - headerEnd
        var entries: [Entry] = []
        for (key, value) in object where key != "__metadata__" {
            guard let info = value as? [String: Any] else { throw fail("entry \"\(key)\" is not an object") }
            guard let typeName = info["dtype"] as? String else { throw fail("entry \"\(key)\" has no dtype string") }
            guard let dtype = SafetensorsDType(rawValue: typeName) else {
                throw fail("entry \"\(key)\" has unknown dtype \"\(typeName)\"")
            }
            guard let shapeValues = info["shape"] as? [Any] else { throw fail("entry \"\(key)\" has no shape list") }
            var shape: [Int] = []
            var elements = 1
            for v in shapeValues {
                guard let d = exactInt(v), d >= 0 else { throw fail("entry \"\(key)\" has an invalid dimension in its shape") }
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow, product <= bufferSize else { throw fail("entry \"\(key)\": shape \(shapeValues) is larger than the file") }
                elements = product
                shape.append(d)
            }
            guard let offsets = info["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = exactInt(offsets[0]), let end = exactInt(offsets[1]) else {
                throw fail("entry \"\(key)\" has no data_offsets pair of integers")
            }
            guard 0 <= begin, begin <= end, end <= bufferSize else {
                throw fail("entry \"\(key)\": data_offsets [\(begin), \(end)] are outside the data (\(bufferSize) bytes)")
            }
            guard end - begin == elements * dtype.size else {
                throw fail("entry \"\(key)\": \(end - begin) bytes for shape \(shape) of \(typeName) (expected \(elements * dtype.size))")
            }
            entries.append(Entry(name: key, dtype: dtype, shape: shape, begin: begin, end: end))
        }
        // The data must be covered exactly, without overlaps or gaps, as the Python library requires.
        entries.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var position = 0
        for e in entries {
            guard e.begin == position else {
                throw fail(e.begin < position ? "entry \"\(e.name)\" overlaps the tensor before it"
                                              : "gap in the data before entry \"\(e.name)\"")
            }
            position = e.end
        }
        guard position == bufferSize else { throw fail("\(bufferSize - position) bytes of data after the last tensor") }

        var tensors: [String: SafetensorsValue] = [:]
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + headerEnd
            for e in entries {
                tensors[e.name] = decode(base + e.begin, e.dtype, e.shape)
            }
        }
        return SafetensorsFile(tensors: tensors, metadata: metadata)
    }

    /// A JSON number that is an integer exactly (no fraction, within Int's range).
    private static func exactInt(_ v: Any) -> Int? {
        guard let n = v as? NSNumber, String(cString: n.objCType) != "c" else { return nil }   // "c": a JSON boolean
        let d = n.doubleValue
        guard d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return n.intValue
    }

    private static func decode(_ p: UnsafeRawPointer, _ dtype: SafetensorsDType, _ shape: [Int]) -> SafetensorsValue {
        let n = shape.reduce(1, *)
        func load<T>(_ type: T.Type, _ i: Int) -> T { p.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self) }
        switch dtype {
        case .F32:
            let t = Tensor.zeros(shape)
            if n > 0 { UnsafeMutableRawPointer(t.pointer).copyMemory(from: p, byteCount: n * 4) }
            return .float(t)
        case .F16:
            let t = Tensor.zeros(shape)
            for i in 0..<n { t.pointer[i] = Float(Float16(bitPattern: UInt16(littleEndian: load(UInt16.self, i)))) }
            return .float(t)
        case .BF16:
            let t = Tensor.zeros(shape)
            for i in 0..<n { t.pointer[i] = Float(bitPattern: UInt32(UInt16(littleEndian: load(UInt16.self, i))) << 16) }
            return .float(t)
        case .F64:
            let t = Tensor.zeros(shape)
            for i in 0..<n { t.pointer[i] = Float(Double(bitPattern: UInt64(littleEndian: load(UInt64.self, i)))) }
            return .float(t)
        case .I64:
            return .int(IntTensor((0..<n).map { Int32(truncatingIfNeeded: Int64(littleEndian: load(Int64.self, $0))) }, shape: shape))
        case .I32:
            return .int(IntTensor((0..<n).map { Int32(littleEndian: load(Int32.self, $0)) }, shape: shape))
        case .I16:
            return .int(IntTensor((0..<n).map { Int32(Int16(littleEndian: load(Int16.self, $0))) }, shape: shape))
        case .I8:
            return .int(IntTensor((0..<n).map { Int32(load(Int8.self, $0)) }, shape: shape))
        case .U8, .BOOL:
            return .int(IntTensor((0..<n).map { Int32(load(UInt8.self, $0)) }, shape: shape))
        }
    }

    /// The floating-point tensors.
    public var floatTensors: [String: Tensor] {
        tensors.compactMapValues { if case .float(let t) = $0 { return t } else { return nil } }
    }

    public func float(_ name: String) throws -> Tensor {
        guard let v = tensors[name] else { throw AlbertMoEError.invalidValue(field: name, reason: "no such tensor") }
        guard case .float(let t) = v else {
            throw AlbertMoEError.invalidValue(field: name, reason: "not a floating-point tensor")
        }
        return t
    }

    public func int(_ name: String) throws -> IntTensor {
        guard let v = tensors[name] else { throw AlbertMoEError.invalidValue(field: name, reason: "no such tensor") }
        guard case .int(let t) = v else { throw AlbertMoEError.invalidValue(field: name, reason: "not an integer tensor") }
        return t
    }
}

/// Writing safetensors files.
public enum Safetensors {
    /// The bytes of a safetensors file holding F32 tensors and I64 integer tensors, keys sorted.
    public static func encode(_ tensors: [String: Tensor], ints: [String: IntTensor] = [:],
                              metadata: [String: String] = [:]) throws -> Data {
        if let name = Set(tensors.keys).intersection(ints.keys).min() {
            throw AlbertMoEError.invalidValue(field: name, reason: "used for both a float and an int tensor")
        }
        let names = (Array(tensors.keys) + Array(ints.keys)).sorted()
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for name in names {
            let (dtype, shape, bytes) = tensors[name].map { ("F32", $0.shape, $0.count * 4) } ?? ("I64", ints[name]!.shape, ints[name]!.count * 8)
            header[name] = ["dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }   // pad with spaces to align the data
        var out = Data(capacity: 8 + json.count + offset)
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            if let t = tensors[name] {
                out.append(UnsafeBufferPointer(start: t.pointer, count: t.count))
            } else {
                let values = ints[name]!.scalars.map { Int64($0).littleEndian }
                values.withUnsafeBufferPointer { out.append($0) }
            }
        }
        return out
    }

    /// Writes a file atomically: a temporary file in the same directory, then a rename, so the previous file
    /// stays intact if anything fails.
    public static func write(_ tensors: [String: Tensor], ints: [String: IntTensor] = [:],
                             metadata: [String: String] = [:], to url: URL) throws {
        let data = try encode(tensors, ints: ints, metadata: metadata)
        do { try data.write(to: url, options: .atomic) } catch {
            throw AlbertMoEError.badFile(path: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
