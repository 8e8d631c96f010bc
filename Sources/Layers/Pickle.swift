import Foundation

/// The storage types a state dict may hold, by their pickled global names (`torch.FloatStorage` ...).
enum TorchDType: String, CaseIterable {
    case float64 = "DoubleStorage", float32 = "FloatStorage", float16 = "HalfStorage", bfloat16 = "BFloat16Storage"
    case int64 = "LongStorage", int32 = "IntStorage", int16 = "ShortStorage", int8 = "CharStorage"
    case uint8 = "ByteStorage", bool = "BoolStorage"

    var size: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    var isFloatingPoint: Bool { [.float64, .float32, .float16, .bfloat16].contains(self) }
}

/// A value on the unpickler's stack. Containers live in the unpickler's object table and are referred to by
/// index, so values never nest: no recursion reading, using or releasing them, whatever the pickle holds.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes(Int)
    case object(Int)
}

/// An object of the unpickler's table.
enum PickleObject {
    case tuple([PickleValue])
    case list([PickleValue])
    case dict(keys: [PickleValue], values: [PickleValue])
    case global(PickleGlobal)
    case storage(dtype: TorchDType, key: String, count: Int)
    case tensor(PickledTensor)
}

/// The globals a state dict may name: those `torch.load(weights_only=True)` allows for one.
enum PickleGlobal: Equatable {
    case orderedDict
    case rebuildTensor
    case rebuildParameter
    case rebuildParameterWithState
    case storageType(TorchDType)

    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): self = .rebuildParameterWithState
        case ("torch", let n):
            guard let t = TorchDType(rawValue: n) else { return nil }
            self = .storageType(t)
        default: return nil
        }
    }
}

/// A tensor view of a storage: the storage's object index, offset, sizes and strides in elements, checked to
/// lie inside the storage.
struct PickledTensor {
    let storage: Int
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// A restricted unpickler: the opcodes of protocols 0 to 5 that a state dict can contain, the state-dict globals
/// only, storages from persistent ids. It executes nothing; anything else is an error naming `path`.
struct Unpickler {
    private(set) var objects: [PickleObject] = []
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private let path: String

    /// Dimensions a tensor may have.
    static let maxRank = 64

    private init(path: String) { self.path = path }

    /// The object table and the top-level value of the pickle in `bytes`.
    static func load(_ bytes: UnsafeRawBufferPointer, path: String) throws -> (objects: [PickleObject], root: PickleValue) {
        var u = Unpickler(path: path)
        let root = try u.run(bytes)
        return (u.objects, root)
    }

    /// Why a pickle is refused; `run` adds where.
    private struct Refusal: Error { let reason: String }
    private func fail(_ why: String) -> Refusal { Refusal(reason: why) }

    private mutating func add(_ object: PickleObject) -> PickleValue {
        objects.append(object)
        return .object(objects.count - 1)
    }

    private mutating func run(_ bytes: UnsafeRawBufferPointer) throws -> PickleValue {
        var opcode = 0
        do { return try interpret(bytes, &opcode) } catch let r as Refusal {
            throw AlbertMoEError.badFile(path: path, reason: "data.pkl byte \(opcode): \(r.reason)")
        }
    }

    /// Runs the opcodes of `bytes`, keeping in `opcode` the position of the one running.
    private mutating func interpret(_ bytes: UnsafeRawBufferPointer, _ opcode: inout Int) throws -> PickleValue {
        var p = 0
        let n = bytes.count
        func take(_ k: Int) throws -> Int {
            guard k >= 0, k <= n - p else { throw fail("truncated pickle") }
            defer { p += k }
            return p
        }
        func u8() throws -> Int { Int(bytes[try take(1)]) }
        func le<T: FixedWidthInteger>(_ t: T.Type) throws -> T { bytes.loadLE(try take(MemoryLayout<T>.size), T.self) }
        func length<T: FixedWidthInteger>(_ t: T.Type) throws -> Int {
            let v = try le(T.self)
            guard v >= 0, UInt64(v) <= UInt64(n - p) else { throw fail("length \(v) runs past the end of the pickle") }
            return Int(v)
        }
        func utf8(_ k: Int) throws -> String {
            let start = try take(k)
            guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<(start + k)]), as: UTF8.self) else {
                throw fail("string is not UTF-8")
            }
            return s
        }
        func line() throws -> String {
            var e = p
            while e < n && bytes[e] != 0x0A { e += 1 }
            guard e < n else { throw fail("truncated pickle") }
            let s = try utf8(e - p)
            p += 1
            return s
        }
        func pop() throws -> PickleValue {
            guard stack.count > (marks.last ?? 0) else { throw fail("pops an empty stack") }
            return stack.removeLast()
        }
        func popMark() throws -> [PickleValue] {
            guard let m = marks.popLast() else { throw fail("no mark on the stack") }
            defer { stack.removeSubrange(m...) }
            return Array(stack[m...])
        }
        func top() throws -> Int {
            guard stack.count > (marks.last ?? 0), case .object(let i) = stack[stack.count - 1] else {
                throw fail("expects an object on the stack")
            }
            return i
        }
        func signedLittleEndian(_ k: Int) throws -> Int {
            let start = try take(k)
            guard k > 0 else { return 0 }
            var significant = k
            while significant > 1 {
                let b = bytes[start + significant - 1], below = bytes[start + significant - 2]
                guard (b == 0 && below & 0x80 == 0) || (b == 0xFF && below & 0x80 != 0) else { break }
                significant -= 1
            }
            guard significant <= 8 else { throw fail("integer of \(k) bytes is too large") }
            var v: UInt64 = 0
            for i in 0..<significant { v |= UInt64(bytes[start + i]) << UInt64(8 * i) }
            if significant < 8 && bytes[start + significant - 1] & 0x80 != 0 { v |= ~0 << UInt64(8 * significant) }
            return Int(Int64(bitPattern: v))
        }
        func global(_ module: String, _ name: String) throws -> PickleValue {
            guard let g = PickleGlobal(module: module, name: name) else {
                throw fail("forbidden global \(module).\(name): a state dict holds only tensors, storages and OrderedDicts")
            }
            return add(.global(g))
        }
        func setItems(_ pairs: [PickleValue]) throws {
            let d = try top()
            guard case .dict(var keys, var values) = objects[d] else { throw fail("sets items on something other than a dict") }
            guard pairs.count % 2 == 0 else { throw fail("odd number of values for a dict") }
            objects[d] = .tuple([])   // keeps the arrays uniquely referenced while they grow
            for i in stride(from: 0, to: pairs.count, by: 2) {
                keys.append(pairs[i])
                values.append(pairs[i + 1])
            }
            objects[d] = .dict(keys: keys, values: values)
        }
        func append(_ items: [PickleValue]) throws {
            let l = try top()
            guard case .list(var list) = objects[l] else { throw fail("appends to something other than a list") }
            objects[l] = .tuple([])
            list.append(contentsOf: items)
            objects[l] = .list(list)
        }

        func peek() throws -> PickleValue {
            guard stack.count > (marks.last ?? 0) else { throw fail("memoizes an empty stack") }
            return stack[stack.count - 1]
        }
        func get(_ i: Int) throws {
            guard let v = memo[i] else { throw fail("memo entry \(i) was never stored") }
            stack.append(v)
        }

        while true {
            opcode = p
            let op = try u8()
            switch UInt8(op) {
            case 0x80: _ = try u8()                                          // PROTO
            case 0x95: _ = try take(8)                                       // FRAME
            case 0x2E: return try pop()                                      // STOP
            case 0x28: marks.append(stack.count)                             // MARK
            case 0x30: _ = try pop()                                         // POP
            case 0x31: _ = try popMark()                                     // POP_MARK
            case 0x32:                                                       // DUP
                let v = try pop()
                stack.append(v); stack.append(v)
            case 0x4E: stack.append(.none)                                   // NONE
            case 0x88: stack.append(.bool(true))                             // NEWTRUE
            case 0x89: stack.append(.bool(false))                            // NEWFALSE
            case 0x4B: stack.append(.int(try u8()))                          // BININT1
            case 0x4D: stack.append(.int(Int(try le(UInt16.self))))          // BININT2
            case 0x4A: stack.append(.int(Int(try le(Int32.self))))           // BININT
            case 0x8A: stack.append(.int(try signedLittleEndian(try u8())))  // LONG1
            case 0x8B: stack.append(.int(try signedLittleEndian(try length(Int32.self))))   // LONG4
            case 0x49:                                                       // INT
                let s = try line()
                if s == "00" || s == "01" { stack.append(.bool(s == "01")) }
                else if let v = Int(s) { stack.append(.int(v)) }
                else { throw fail("INT \"\(s.prefix(40))\" is not an integer") }
            case 0x4C:                                                       // LONG
                let s = try line()
                guard let v = Int(s.hasSuffix("L") ? String(s.dropLast()) : s) else { throw fail("LONG \"\(s.prefix(40))\" is out of range") }
                stack.append(.int(v))
            case 0x47: stack.append(.float(Double(bitPattern: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self)))))   // BINFLOAT
            case 0x46:                                                       // FLOAT
                let s = try line()
                guard let v = Double(s) else { throw fail("FLOAT \"\(s.prefix(40))\" is not a number") }
                stack.append(.float(v))
            case 0x58: stack.append(.string(try utf8(try length(UInt32.self))))   // BINUNICODE
            case 0x8C: stack.append(.string(try utf8(try u8())))                  // SHORT_BINUNICODE
            case 0x8D: stack.append(.string(try utf8(try length(UInt64.self))))   // BINUNICODE8
            case 0x54: stack.append(.string(try utf8(try length(Int32.self))))    // BINSTRING
            case 0x55: stack.append(.string(try utf8(try u8())))                  // SHORT_BINSTRING
            case 0x42: let k = try length(UInt32.self); _ = try take(k); stack.append(.bytes(k))   // BINBYTES
            case 0x43: let k = try u8(); _ = try take(k); stack.append(.bytes(k))                  // SHORT_BINBYTES
            case 0x8E: let k = try length(UInt64.self); _ = try take(k); stack.append(.bytes(k))   // BINBYTES8
            case 0x29: stack.append(add(.tuple([])))                         // EMPTY_TUPLE
            case 0x74: stack.append(add(.tuple(try popMark())))              // TUPLE
            case 0x85: let a = try pop(); stack.append(add(.tuple([a])))     // TUPLE1
            case 0x86:                                                       // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(add(.tuple([a, b])))
            case 0x87:                                                       // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(add(.tuple([a, b, c])))
            case 0x5D: stack.append(add(.list([])))                          // EMPTY_LIST
            case 0x6C: stack.append(add(.list(try popMark())))               // LIST
            case 0x61: try append([try pop()])                               // APPEND
            case 0x65: try append(try popMark())                             // APPENDS
            case 0x7D: stack.append(add(.dict(keys: [], values: [])))        // EMPTY_DICT
            case 0x64:                                                       // DICT
                let items = try popMark()
                stack.append(add(.dict(keys: [], values: [])))
                try setItems(items)
            case 0x73:                                                       // SETITEM
                let v = try pop(), k = try pop()
                try setItems([k, v])
            case 0x75: try setItems(try popMark())                           // SETITEMS
            case 0x71: memo[try u8()] = try peek()                           // BINPUT
            case 0x72: memo[Int(try le(UInt32.self))] = try peek()           // LONG_BINPUT
            case 0x70:                                                       // PUT
                let s = try line()
                guard let i = Int(s) else { throw fail("PUT index \"\(s.prefix(40))\" is not an integer") }
                memo[i] = try peek()
            case 0x94: memo[memo.count] = try peek()                         // MEMOIZE
            case 0x68: try get(try u8())                                     // BINGET
            case 0x6A: try get(Int(try le(UInt32.self)))                     // LONG_BINGET
            case 0x67:                                                       // GET
                let s = try line()
                guard let i = Int(s) else { throw fail("GET index \"\(s.prefix(40))\" is not an integer") }
                try get(i)
            case 0x63:                                                       // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:                                                       // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                    throw fail("STACK_GLOBAL expects two strings")
                }
                stack.append(try global(module, name))
            case 0x51: stack.append(try persistentLoad(try pop()))      // BINPERSID
            case 0x52:                                                       // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try reduce(callable, args))
            case 0x62:                                                       // BUILD
                _ = try pop()
                let target = try top()
                switch objects[target] {
                case .dict, .tensor: break   // an OrderedDict's `_metadata`, a parameter's state: not needed
                default: throw fail("BUILD on something other than a dict or a tensor")
                }
            default:
                throw fail(String(format: "opcode 0x%02X is not one a state dict uses", op))
            }
        }
    }

    private func ints(_ v: PickleValue) -> [Int]? {
        guard case .object(let i) = v, case .tuple(let items) = objects[i] else { return nil }
        var out: [Int] = []
        for item in items {
            guard case .int(let x) = item else { return nil }
            out.append(x)
        }
        return out
    }

    /// A storage from its persistent id `('storage', storage type, key, location, element count)`.
    private mutating func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        guard case .object(let i) = pid, case .tuple(let items) = objects[i], items.count == 5,
              case .string("storage") = items[0] else {
            throw fail("persistent id is not a ('storage', type, key, location, size) tuple")
        }
        guard case .object(let g) = items[1], case .global(.storageType(let dtype)) = objects[g] else {
            throw fail("persistent id does not name a storage type")
        }
        guard case .string(let key) = items[2], case .string(let location) = items[3], case .int(let count) = items[4] else {
            throw fail("persistent id has no string key, string location and integer size")
        }
        guard location == "cpu" || location == "mps" || location == "cuda" || location.hasPrefix("cuda:") else {
            throw fail("storage \(key) is on the device \"\(location)\", which cannot be read onto the CPU")
        }
        guard count >= 0, count <= Int.max / 8 else { throw fail("storage \(key) has the size \(count)") }
        return add(.storage(dtype: dtype, key: key, count: count))
    }

    private mutating func reduce(_ callable: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case .object(let c) = callable, case .global(let g) = objects[c] else { throw fail("REDUCE calls something that is not a global") }
        guard case .object(let a) = args, case .tuple(let items) = objects[a] else { throw fail("REDUCE arguments are not a tuple") }
        switch g {
        case .orderedDict:
            guard items.isEmpty else { throw fail("OrderedDict is called with arguments") }
            return add(.dict(keys: [], values: []))
        case .rebuildParameter, .rebuildParameterWithState:
            guard items.count == (g == .rebuildParameter ? 3 : 4), case .object(let t) = items[0], case .tensor = objects[t] else {
                throw fail("_rebuild_parameter is not given a tensor")
            }
            return items[0]
        case .rebuildTensor:
            guard items.count == 6 || items.count == 7 else { throw fail("_rebuild_tensor_v2 is given \(items.count) arguments") }
            guard case .object(let s) = items[0], case .storage(_, let key, let count) = objects[s] else {
                throw fail("_rebuild_tensor_v2 is not given a storage")
            }
            guard case .int(let offset) = items[1], let shape = ints(items[2]), let strides = ints(items[3]) else {
                throw fail("_rebuild_tensor_v2 is not given an integer offset, size and stride")
            }
            guard shape.count == strides.count, shape.count <= Unpickler.maxRank else {
                throw fail("tensor of storage \(key) has \(shape.count) sizes and \(strides.count) strides")
            }
            guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
                throw fail("tensor of storage \(key) has a negative offset, size or stride")
            }
            // The last element must lie inside the storage (the reader bounds how often views repeat elements).
            var elements = 1, last = offset
            for (size, stride) in zip(shape, strides) {
                let (e, o1) = elements.multipliedReportingOverflow(by: size)
                let (step, o2) = max(size - 1, 0).multipliedReportingOverflow(by: stride)
                let (l, o3) = last.addingReportingOverflow(step)
                guard !o1, !o2, !o3 else { throw fail("tensor of storage \(key) has sizes \(shape) and strides \(strides) out of range") }
                elements = e; last = l
            }
            guard elements == 0 || last < count else {
                throw fail("tensor of sizes \(shape), strides \(strides) and offset \(offset) does not fit its storage \(key) of \(count) elements")
            }
            return add(.tensor(PickledTensor(storage: s, offset: offset, shape: shape, strides: strides)))
        case .storageType(let t):
            throw fail("torch.\(t.rawValue) is called; storages come only from persistent ids")
        }
    }
}

/// Writes the pickle of a state dict as `torch.save` does (protocol 2): an OrderedDict of
/// `_rebuild_tensor_v2` calls on storages named by persistent ids.
struct PickleWriter {
    private(set) var bytes: [UInt8] = [0x80, 2]

    private mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)
        bytes.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
    }

    private mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        bytes.append(0x58)
        withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: utf8)
    }

    private mutating func int(_ v: Int) {
        if v >= 0 && v < 256 {
            bytes.append(0x4B); bytes.append(UInt8(v))
        } else if v >= 0 && v < 65536 {
            bytes.append(0x4D); withUnsafeBytes(of: UInt16(v).littleEndian) { bytes.append(contentsOf: $0) }
        } else if let small = Int32(exactly: v) {
            bytes.append(0x4A); withUnsafeBytes(of: small.littleEndian) { bytes.append(contentsOf: $0) }
        } else {
            var le = withUnsafeBytes(of: Int64(v).littleEndian) { Array($0) }
            while le.count > 1 && ((le[le.count - 1] == 0 && le[le.count - 2] & 0x80 == 0)
                                   || (le[le.count - 1] == 0xFF && le[le.count - 2] & 0x80 != 0)) { le.removeLast() }
            bytes.append(0x8A); bytes.append(UInt8(le.count)); bytes.append(contentsOf: le)
        }
    }

    private mutating func tuple(_ values: [Int]) {
        switch values.count {
        case 0: bytes.append(0x29)
        case 1...3:
            values.forEach { int($0) }
            bytes.append([0x85, 0x86, 0x87][values.count - 1])
        default:
            bytes.append(0x28); values.forEach { int($0) }; bytes.append(0x74)
        }
    }

    private mutating func emptyOrderedDict() {
        global("collections", "OrderedDict"); bytes.append(0x29); bytes.append(0x52)
    }

    /// The pickle of an OrderedDict of contiguous tensors, in order, each in storage `key` of `dtype`.
    static func stateDict(_ entries: [(name: String, key: String, dtype: TorchDType, shape: [Int])]) -> [UInt8] {
        var w = PickleWriter()
        w.emptyOrderedDict()
        w.bytes.append(0x28)
        for e in entries {
            w.string(e.name)
            w.global("torch._utils", "_rebuild_tensor_v2")
            w.bytes.append(0x28)
            w.bytes.append(0x28)
            w.string("storage"); w.global("torch", e.dtype.rawValue); w.string(e.key); w.string("cpu")
            w.int(e.shape.reduce(1, *))
            w.bytes.append(0x74)
            w.bytes.append(0x51)
            w.int(0)
            w.tuple(e.shape)
            w.tuple(Tensor.strides(e.shape))
            w.bytes.append(0x89)
            w.emptyOrderedDict()
            w.bytes.append(0x74)
            w.bytes.append(0x52)
        }
        w.bytes.append(0x75)
        w.bytes.append(0x2E)
        return w.bytes
    }
}
