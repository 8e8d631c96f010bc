import Foundation
import JSON

/// Errors thrown while loading or running a tokenizer.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The JSON text could not be parsed (byte offset and reason).
    case malformedJSON(offset: Int, reason: String)
    /// A component `type` that is not supported, at a JSON path.
    case unknownType(path: String, type: String)
    /// A required field is missing, at a JSON path (`component` names the component type).
    case missingField(path: String, component: String)
    /// A field has the wrong JSON kind or an invalid value.
    case invalidField(path: String, component: String, reason: String)
    /// A file could not be read or has an unknown format.
    case io(String)
    /// A protobuf (SentencePiece `.model`) file is malformed.
    case malformedModel(String)
    /// Truncation could not be applied (mirrors the Python library's errors).
    case truncation(String)
    /// Training failed.
    case training(String)

    public var description: String {
        switch self {
        case let .malformedJSON(offset, reason): return "malformed JSON at byte \(offset): \(reason)"
        case let .unknownType(path, type): return "unknown component type '\(type)' at \(path)"
        case let .missingField(path, component): return "missing field \(path) (in \(component))"
        case let .invalidField(path, component, reason): return "invalid field \(path) (in \(component)): \(reason)"
        case let .io(s): return "I/O error: \(s)"
        case let .malformedModel(s): return "malformed SentencePiece model: \(s)"
        case let .truncation(s): return "truncation error: \(s)"
        case let .training(s): return "training error: \(s)"
        }
    }
}

/// A string key that compares by exact UTF-8 bytes, like Rust's `String` (Swift's `String`
/// equality uses canonical equivalence, which would make "e\u{301}" find "é" in a vocabulary).
public struct VocabKey: Hashable, CustomStringConvertible {
    public let string: String
    @inline(__always) public init(_ s: String) { string = s }
    @inline(__always) public static func == (a: VocabKey, b: VocabKey) -> Bool {
        var x = a.string, y = b.string
        return x.withUTF8 { xa in y.withUTF8 { ya in xa.count == ya.count && (xa.count == 0 || memcmp(xa.baseAddress!, ya.baseAddress!, xa.count) == 0) } }
    }
    @inline(__always) public func hash(into h: inout Hasher) {
        var x = string
        x.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
    public var description: String { string }
}

/// A JSON value together with its path, for error messages naming the location and component.
struct JNode {
    let value: JSONValue
    let path: String
    let component: String

    init(_ value: JSONValue, path: String = "$", component: String = "tokenizer") {
        self.value = value
        self.path = path
        self.component = component
    }

    func withComponent(_ c: String) -> JNode { JNode(value, path: path, component: c) }

    var isNull: Bool { if case .null = value { return true }; return false }

    func optional(_ key: String) -> JNode? {
        guard case let .object(o) = value, let v = o[key] else { return nil }
        if case .null = v { return nil }
        return JNode(v, path: path + "." + key, component: component)
    }

    func has(_ key: String) -> Bool { optional(key) != nil }

    func field(_ key: String) throws -> JNode {
        guard case .object = value else { throw invalid("expected an object, found \(value.kindName)") }
        guard let v = optional(key) else { throw TokenizerError.missingField(path: path + "." + key, component: component) }
        return v
    }

    func invalid(_ reason: String) -> TokenizerError { .invalidField(path: path, component: component, reason: reason) }

    func string() throws -> String {
        guard case let .string(s) = value else { throw invalid("expected a string, found \(value.kindName)") }
        return s
    }
    func bool() throws -> Bool {
        guard case let .bool(b) = value else { throw invalid("expected a bool, found \(value.kindName)") }
        return b
    }
    func double() throws -> Double {
        guard case let .number(d) = value else { throw invalid("expected a number, found \(value.kindName)") }
        return d
    }
    func int() throws -> Int {
        guard case let .number(d) = value, d == d.rounded(), abs(d) < 9e15 else { throw invalid("expected an integer, found \(value.kindName)") }
        return Int(d)
    }
    func array() throws -> [JNode] {
        guard case let .array(a) = value else { throw invalid("expected an array, found \(value.kindName)") }
        return a.enumerated().map { JNode($0.element, path: "\(path)[\($0.offset)]", component: component) }
    }
    /// The elements of an array without a JNode each (for large arrays; see `element` for errors).
    func rawArray() throws -> [JSONValue] {
        guard case let .array(a) = value else { throw invalid("expected an array, found \(value.kindName)") }
        return a
    }
    /// Element `i` of an array as a JNode.
    func element(_ i: Int) -> JNode {
        guard case let .array(a) = value, i >= 0, i < a.count else { return JNode(.null, path: "\(path)[\(i)]", component: component) }
        return JNode(a[i], path: "\(path)[\(i)]", component: component)
    }
    func object() throws -> [(String, JNode)] {
        guard case let .object(o) = value else { throw invalid("expected an object, found \(value.kindName)") }
        return o.pairs.map { ($0.0, JNode($0.1, path: path + "." + $0.0, component: component)) }
    }

    func string(_ key: String) throws -> String { try field(key).string() }
    func bool(_ key: String) throws -> Bool { try field(key).bool() }
    func int(_ key: String) throws -> Int { try field(key).int() }
    func double(_ key: String) throws -> Double { try field(key).double() }
    func bool(_ key: String, default d: Bool) throws -> Bool { try optional(key)?.bool() ?? d }
    func int(_ key: String, default d: Int) throws -> Int { try optional(key)?.int() ?? d }
    func string(_ key: String, default d: String) throws -> String { try optional(key)?.string() ?? d }

    /// The component's "type" field.
    func typeName() throws -> String {
        guard case .object = value else { throw invalid("expected an object, found \(value.kindName)") }
        guard let t = optional("type") else { throw TokenizerError.missingField(path: path + ".type", component: component) }
        return try t.string()
    }
}
