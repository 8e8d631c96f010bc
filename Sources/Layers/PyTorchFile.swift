import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// PyTorch checkpoint files (`torch.save(model.state_dict(), "pytorch_model.bin")`): a zip archive of a pickled
/// OrderedDict of tensors and one entry per storage. Reading executes nothing: the pickle may name only the
/// globals `torch.load(weights_only=True)` allows for a state dict; views (offsets, strides, shared storages) are
/// gathered into contiguous tensors; storages saved on `cuda` or `mps` are read onto the CPU.
public enum PyTorchFile {
    /// The float tensors of a state dict: float32, float16, bfloat16 and float64 as Float32. An integer or bool
    /// tensor is an error naming it (`readAll` reads those).
    public static func read(_ url: URL) throws -> [String: Tensor] {
        var floats: [String: Tensor] = [:]
        var ints: [String] = []
        for (name, value) in try readAll(url) {
            switch value {
            case .float(let t): floats[name] = t
            case .int: ints.append(name)
            }
        }
        guard ints.isEmpty else {
            throw AlbertMoEError.badFile(path: url.path, reason: "tensors \(ints.sorted().joined(separator: ", ")) are not floating point")
        }
        return floats
    }

    /// Every tensor of a state dict: floating-point ones as Float32, integer and bool ones (int64, int32, int16,
    /// int8, uint8, bool) as 32-bit integers; an integer outside Int32's range is an error naming its tensor.
    public static func readAll(_ url: URL) throws -> [String: SafetensorsValue] {
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw AlbertMoEError.badFile(path: url.path, reason: "cannot read: \(error.localizedDescription)")
        }
        return try readAll(data, name: url.path)
    }

    /// The tensors of a checkpoint held in memory; `name` is the file named in errors.
    public static func readAll(_ data: Data, name: String = "PyTorch data") throws -> [String: SafetensorsValue] {
        try data.withUnsafeBytes { try decode($0, path: name) }
    }

    /// How many times over the tensors of a file may repeat its storages' elements (tied weights and other
    /// views share a storage; a pickle naming one storage millions of times would otherwise allocate without
    /// bound).
    static let maxRepetition = 16

    private static func decode(_ bytes: UnsafeRawBufferPointer, path: String) throws -> [String: SafetensorsValue] {
        func fail(_ why: String) -> AlbertMoEError { .badFile(path: path, reason: why) }
        // The legacy format begins with the pickled magic number 0x1950a86a20f9469cfc6c.
        let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
        if bytes.starts(with: legacyMagic) {
            throw fail("a legacy PyTorch file (torch.save with _use_new_zipfile_serialization=False, or a PyTorch before 1.6), not a zip archive; load it in PyTorch and save it again with torch.save")
        }
        guard bytes.count >= 4 && bytes.loadLE(0, UInt32.self) == 0x0403_4B50 else {
            throw fail("not a PyTorch checkpoint: it does not begin as a zip archive")
        }
        let archive = try ZipArchive(bytes, path: path)
        guard let first = archive.entries.first, let slash = first.name.firstIndex(of: "/") else {
            throw fail("not a PyTorch checkpoint: the archive holds no ARCHIVE/data.pkl")
        }
        let prefix = String(first.name[...slash])
        guard let pickle = archive.byName[prefix + "data.pkl"] else {
            throw fail("not a PyTorch checkpoint: the archive holds no \(prefix)data.pkl")
        }
        var verified: Set<String> = []
        func contents(_ entry: ZipEntry) throws -> UnsafeRawBufferPointer {
            let slice = UnsafeRawBufferPointer(rebasing: bytes[entry.offset..<(entry.offset + entry.size)])
            if !verified.contains(entry.name) {
                let crc = CRC32.update(0, slice)
                guard crc == entry.crc else {
                    throw fail("entry \"\(entry.name)\" is damaged: its CRC-32 is \(String(crc, radix: 16)), the archive says \(String(entry.crc, radix: 16))")
                }
                verified.insert(entry.name)
            }
            return slice
        }
        if let order = archive.byName[prefix + "byteorder"] {
            let value = String(decoding: try contents(order), as: UTF8.self)
            guard value == "little" else {
                throw fail("storages are \"\(value.prefix(20))\"-endian; only little-endian checkpoints are read")
            }
        }

        let (objects, root) = try Unpickler.load(try contents(pickle), path: path)
        guard case .object(let r) = root, case .dict(let keys, let values) = objects[r] else {
            throw fail("the pickle does not hold a state dict (an OrderedDict of tensors)")
        }
        // Every entry is checked, and the elements to gather counted, before anything is allocated.
        var plan: [(name: String, object: Int, tensor: PickledTensor, dtype: TorchDType, entry: ZipEntry)] = []
        var storageElements: [String: Int] = [:]
        var counted: Set<Int> = []
        var viewElements = 0
        for (key, value) in zip(keys, values) {
            guard case .string(let name) = key else { throw fail("the state dict has a key that is not a string") }
            guard case .object(let v) = value, case .tensor(let t) = objects[v],
                  case .storage(let dtype, let storageKey, let count) = objects[t.storage] else {
                throw fail("state dict entry \"\(name)\" is not a tensor")
            }
            guard let entry = archive.byName[prefix + "data/" + storageKey] else {
                throw fail("tensor \"\(name)\": storage \(storageKey) has no entry \(prefix)data/\(storageKey) in the archive")
            }
            guard entry.size == count * dtype.size else {
                throw fail("tensor \"\(name)\": entry \(entry.name) holds \(entry.size) bytes, not the \(count) \(dtype.rawValue) elements of \(count * dtype.size) bytes")
            }
            storageElements[entry.name] = max(storageElements[entry.name] ?? 0, count)
            if counted.insert(v).inserted { viewElements += t.shape.reduce(1, *) }
            plan.append((name, v, t, dtype, entry))
        }
        let stored = storageElements.values.reduce(0, +)
        guard viewElements <= maxRepetition * stored + (1 << 20) else {
            throw fail("its tensors hold \(viewElements) elements, more than \(maxRepetition) times the \(stored) of their storages: views repeat the storages too often for a state dict")
        }
        var out: [String: SafetensorsValue] = [:]
        var gathered: [Int: SafetensorsValue] = [:]
        for p in plan {
            if gathered[p.object] == nil {
                gathered[p.object] = try gather(p.tensor, p.dtype, try contents(p.entry), name: p.name, fail: fail)
            }
            out[p.name] = gathered[p.object]
        }
        return out
    }

    /// The elements of a view, in row-major order, converted from `dtype`.
    private static func gather(_ t: PickledTensor, _ dtype: TorchDType, _ storage: UnsafeRawBufferPointer, name: String,
                               fail: (String) -> AlbertMoEError) throws -> SafetensorsValue {
        let count = t.shape.reduce(1, *)
        /// Calls `body(i, source)` for each output element `i` and the storage element it comes from, walking the
        /// view's indices like an odometer.
        func walk(_ body: (Int, Int) -> Void) {
            guard count > 0 else { return }
            var index = [Int](repeating: 0, count: t.shape.count)
            var source = t.offset
            for i in 0..<count {
                body(i, source)
                var d = t.shape.count - 1
                while d >= 0 {
                    index[d] += 1
                    source += t.strides[d]
                    if index[d] < t.shape[d] { break }
                    source -= t.strides[d] * t.shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        func load<T: FixedWidthInteger>(_ type: T.Type, _ i: Int) -> T {
            T(littleEndian: storage.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
        }
        if dtype.isFloatingPoint {
            let out = Tensor.zeros(t.shape)
            let p = out.pointer
            let contiguous = zip(t.shape, zip(t.strides, Tensor.strides(t.shape))).allSatisfy { $0 == 1 || $1.0 == $1.1 }
            switch dtype {
            case .float32 where contiguous && count > 0:
                UnsafeMutableRawPointer(p).copyMemory(from: storage.baseAddress! + 4 * t.offset, byteCount: 4 * count)
            case .float32: walk { p[$0] = Float(bitPattern: load(UInt32.self, $1)) }
            case .float16: walk { p[$0] = Float(Float16(bitPattern: load(UInt16.self, $1))) }
            case .bfloat16: walk { p[$0] = Float(bitPattern: UInt32(load(UInt16.self, $1)) << 16) }
            default: walk { p[$0] = Float(Double(bitPattern: load(UInt64.self, $1))) }
            }
            return .float(out)
        }
        var values = [Int32](repeating: 0, count: count)
        var outOfRange: Int64?
        walk { i, s in
            let v: Int64
            switch dtype {
            case .int64: v = load(Int64.self, s)
            case .int32: v = Int64(load(Int32.self, s))
            case .int16: v = Int64(load(Int16.self, s))
            case .int8: v = Int64(load(Int8.self, s))
            default: v = Int64(load(UInt8.self, s))
            }
            if let x = Int32(exactly: v) { values[i] = x } else if outOfRange == nil { outOfRange = v }
        }
        if let v = outOfRange { throw fail("tensor \"\(name)\" holds \(v), outside the 32-bit integers this package uses") }
        return .int(IntTensor(values, shape: t.shape))
    }

    /// Writes a state dict that `torch.load` reads (with `weights_only=True` too): float tensors as float32,
    /// integer ones as int64, each in a storage of its own, little-endian, 64-byte aligned, keys in sorted order.
    /// The file is written atomically: a temporary file in the same directory, then a rename.
    public static func write(_ tensors: [String: Tensor], ints: [String: IntTensor] = [:], to url: URL) throws {
        try write(tensors, ints: ints, to: url, forceZip64: false)
    }

    /// `write`, with ZIP64 fields on every entry when `forceZip64` (as PyTorch writes archives past 4 GiB).
    static func write(_ tensors: [String: Tensor], ints: [String: IntTensor], to url: URL, forceZip64: Bool) throws {
        if let name = Set(tensors.keys).intersection(ints.keys).min() {
            throw AlbertMoEError.invalidValue(field: name, reason: "used for both a float and an int tensor")
        }
        let names = (Array(tensors.keys) + Array(ints.keys)).sorted()
        let entries = names.enumerated().map { i, name in
            (name: name, key: String(i), dtype: tensors[name] != nil ? TorchDType.float32 : .int64,
             shape: tensors[name]?.shape ?? ints[name]!.shape)
        }
        let storages = entries.map { e -> (key: String, bytes: () -> Data) in
            if let t = tensors[e.name] {
                return (e.key, { Data(bytesNoCopy: t.pointer, count: t.count * 4, deallocator: .none) })
            }
            let ints = ints[e.name]!
            return (e.key, { ints.scalars.map { Int64($0).littleEndian }.withUnsafeBufferPointer { Data(buffer: $0) } })
        }
        let stem = url.deletingPathExtension().lastPathComponent
        let archive = !stem.isEmpty && stem.utf8.allSatisfy({ $0 < 0x80 && (isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")) })
            ? stem : "archive"

        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw AlbertMoEError.badFile(path: url.path, reason: "cannot write: cannot create a file in \(directory.path)")
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            defer { try? handle.close() }
            try writeArchive(archive, pickle: PickleWriter.stateDict(entries), storages: storages, forceZip64: forceZip64) {
                try handle.write(contentsOf: $0)
            }
            try handle.synchronize()
            guard rename(temporary.path, url.path) == 0 else {
                throw AlbertMoEError.badFile(path: url.path, reason: "cannot write: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            if let e = error as? AlbertMoEError { throw e }
            throw AlbertMoEError.badFile(path: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    /// The entries of a checkpoint archive named `archive`, in the order torch.save writes them, to `sink`.
    static func writeArchive(_ archive: String, pickle: [UInt8], storages: [(key: String, bytes: () -> Data)],
                             forceZip64: Bool = false, sink: @escaping (Data) throws -> Void) throws {
        var zip = ZipWriter(forceZip64: forceZip64, sink: sink)
        try zip.add(archive + "/data.pkl", Data(pickle))
        try zip.add(archive + "/.format_version", Data("1".utf8))
        try zip.add(archive + "/.storage_alignment", Data("64".utf8))
        try zip.add(archive + "/byteorder", Data("little".utf8))
        for s in storages { try zip.add(archive + "/data/" + s.key, s.bytes()) }
        try zip.add(archive + "/version", Data("3\n".utf8))
        try zip.finish()
    }
}
