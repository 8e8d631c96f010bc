import Foundation

/// JSON text that cannot be parsed: the byte offset where reading stopped and why.
public struct JSONError: Error, CustomStringConvertible, Equatable, Sendable {
    public let offset: Int
    public let reason: String
    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }
    public var description: String { "malformed JSON at byte \(offset): \(reason)" }
}

/// A NaN or an infinity where JSON text was to be written: JSON numbers are finite.
public struct JSONNonFiniteNumber: Error, CustomStringConvertible, Equatable, Sendable {
    /// Where the number is: `$` for the value itself, then `.key` and `[index]` steps.
    public var path: String
    public let value: Double
    public init(path: String, value: Double) {
        self.path = path
        self.value = value
    }
    public var description: String { "\(path): \(value) is not a number JSON can hold" }
}

/// A parsed JSON value. Object key order is kept (`keys`), which matters for vocabularies.
public enum JSONValue: Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public static func parse(_ data: Data) throws -> JSONValue {
        try data.withUnsafeBytes { raw -> JSONValue in
            var p = JSONParser(bytes: raw.bindMemory(to: UInt8.self))
            if p.bytes.count >= 3, p.bytes[0] == 0xEF, p.bytes[1] == 0xBB, p.bytes[2] == 0xBF { p.pos = 3 }  // BOM
            p.skipWS()
            let v = try p.parseValue(depth: 0)
            p.skipWS()
            if p.pos != p.bytes.count { throw JSONError(offset: p.pos, reason: "trailing characters") }
            return v
        }
    }

    public static func parse(_ text: String) throws -> JSONValue { try parse(Data(text.utf8)) }

    /// "null", "bool", "number", "string", "array" or "object".
    public var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "bool"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// The value as JSON text: indented by `indent` spaces per level, or on one line when nil. A NaN or an infinity,
    /// which JSON cannot hold, is an error naming where it is: it is never written.
    public func serialized(indent: Int? = 2) throws -> String {
        var out = ""
        do { try write(into: &out, level: 0, indent: indent) } catch var error as JSONNonFiniteNumber {
            error.path = "$" + error.path
            throw error
        }
        return out
    }

    private func write(into out: inout String, level: Int, indent: Int?) throws {
        let nl = indent == nil ? "" : "\n"
        func pad(_ l: Int) -> String { indent.map { String(repeating: " ", count: $0 * l) } ?? "" }
        func inside<T>(_ step: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch var error as JSONNonFiniteNumber {
                error.path = step + error.path
                throw error
            }
        }
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .number(d):
            guard d.isFinite else { throw JSONNonFiniteNumber(path: "", value: d) }
            if d == d.rounded(), abs(d) < 1e15 { out += String(Int64(d)) } else { out += "\(d)" }
        case let .string(s): JSONValue.writeString(s, into: &out)
        case let .array(a):
            if a.isEmpty { out += "[]"; return }
            out += "[" + nl
            for (i, v) in a.enumerated() {
                out += pad(level + 1)
                try inside("[\(i)]") { try v.write(into: &out, level: level + 1, indent: indent) }
                if i + 1 < a.count { out += "," }
                out += nl
            }
            out += pad(level) + "]"
        case let .object(o):
            if o.pairs.isEmpty { out += "{}"; return }
            out += "{" + nl
            for (i, (k, v)) in o.pairs.enumerated() {
                out += pad(level + 1)
                JSONValue.writeString(k, into: &out)
                out += indent == nil ? ":" : ": "
                try inside(".\(k)") { try v.write(into: &out, level: level + 1, indent: indent) }
                if i + 1 < o.pairs.count { out += "," }
                out += nl
            }
            out += pad(level) + "}"
        }
    }

    /// `s` as a JSON string literal: quotes, backslashes and control characters escaped.
    public static func quoted(_ s: String) -> String {
        var out = ""
        writeString(s, into: &out)
        return out
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        out += "\""
    }

    /// Builds an object keeping the given key order.
    public static func obj(_ pairs: [(String, JSONValue)]) -> JSONValue { .object(JSONObject(pairs)) }
}

/// A JSON object keeping its key order. Keys compare by exact UTF-8 bytes (Swift's String
/// equality would merge canonically equivalent keys such as "é" and "e\u{301}").
public struct JSONObject: Equatable {
    public var pairs: [(String, JSONValue)]
    public init(_ pairs: [(String, JSONValue)]) { self.pairs = pairs }
    public subscript(key: String) -> JSONValue? {
        for (k, v) in pairs.reversed() where k.utf8.elementsEqual(key.utf8) { return v }
        return nil
    }
    /// Replaces the value of `key` in place, or appends the pair.
    public mutating func set(_ key: String, _ value: JSONValue) {
        if let i = pairs.lastIndex(where: { $0.0.utf8.elementsEqual(key.utf8) }) { pairs[i].1 = value } else { pairs.append((key, value)) }
    }
    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.pairs.count == b.pairs.count && zip(a.pairs, b.pairs).allSatisfy { $0.0.utf8.elementsEqual($1.0.utf8) && $0.1 == $1.1 }
    }
}

struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var pos = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func fail(_ reason: String) -> JSONError { JSONError(offset: pos, reason: reason) }

    mutating func skipWS() {
        while pos < bytes.count {
            let c = bytes[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { break }
        }
    }

    mutating func parseValue(depth: Int) throws -> JSONValue {
        if depth > 512 { throw fail("nesting too deep") }
        guard pos < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[pos] {
        case UInt8(ascii: "{"):
            pos += 1
            var pairs: [(String, JSONValue)] = []
            skipWS()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(JSONObject(pairs)) }
            while true {
                skipWS()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected object key") }
                let k = try parseString()
                skipWS()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                pos += 1
                skipWS()
                let v = try parseValue(depth: depth + 1)
                pairs.append((k, v))
                skipWS()
                guard pos < bytes.count else { throw fail("unterminated object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object(JSONObject(pairs)) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            pos += 1
            var arr: [JSONValue] = []
            skipWS()
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(arr) }
            while true {
                skipWS()
                arr.append(try parseValue(depth: depth + 1))
                skipWS()
                guard pos < bytes.count else { throw fail("unterminated array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(arr) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null"); return .null
        default:
            return .number(try parseNumber())
        }
    }

    mutating func expectLiteral(_ s: StaticString) throws {
        let n = s.utf8CodeUnitCount
        guard pos + n <= bytes.count else { throw fail("unexpected end of input") }
        let p = s.utf8Start
        for i in 0..<n where bytes[pos + i] != p[i] { throw fail("invalid literal") }
        pos += n
    }

    mutating func parseNumber() throws -> Double {
        let start = pos
        var plainInteger = true  // digits with an optional leading '-'
        while pos < bytes.count {
            let c = bytes[pos]
            if c >= 0x30 && c <= 0x39 {
                pos += 1
            } else if c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
                if !(c == UInt8(ascii: "-") && pos == start) { plainInteger = false }
                pos += 1
            } else { break }
        }
        if start == pos { throw fail("unexpected character") }
        let negative = bytes[start] == UInt8(ascii: "-")
        let digits = pos - start - (negative ? 1 : 0)
        // Integers of up to 15 digits are exact in a Double: no need for strtod.
        if plainInteger && digits > 0 && digits <= 15 {
            var v = 0
            for i in (pos - digits)..<pos { v = v * 10 + Int(bytes[i] &- 0x30) }
            return negative ? -Double(v) : Double(v)
        }
        if let d = JSONParser.rustNumber(UnsafeBufferPointer(rebasing: bytes[start..<pos])) { return d }
        let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
        guard let d = Double(s) else { pos = start; throw fail("invalid number '\(s)'") }
        // Past Double's range (1e400): serde_json refuses it, and no JSON output could hold it.
        guard d.isFinite else { pos = start; throw fail("number out of range '\(s)'") }
        return d
    }

    /// 1e0 ... 1e308, each the nearest double.
    static let powersOfTen: [Double] = (0...308).map { Double("1e\($0)")! }

    /// The value serde_json gives a JSON number with its default parser (the one the Rust library reads
    /// tokenizer.json with): the decimal digits are gathered into a 64-bit integer (digits past its range are
    /// dropped, integer ones counted in the exponent), that integer is rounded to a double, then multiplied or
    /// divided by one power of ten. Two roundings, so the result can be one unit in the last place away from the
    /// nearest double (e.g. "-7.2240214347839355"), and Unigram paths that tie, or not, depend on that bit.
    /// Nil when the text is not a JSON number or is out of range (the caller reads it leniently then).
    static func rustNumber(_ b: UnsafeBufferPointer<UInt8>) -> Double? {
        let n = b.count
        var i = 0
        let positive = !(n > 0 && b[0] == UInt8(ascii: "-"))
        if !positive { i = 1 }
        @inline(__always) func digit(_ k: Int) -> UInt64? {
            k < n && b[k] >= 0x30 && b[k] <= 0x39 ? UInt64(b[k] - 0x30) : nil
        }
        // serde_json's overflow check for `x * 10 + d` against `limit`.
        @inline(__always) func overflows(_ x: UInt64, _ d: UInt64, _ limit: UInt64) -> Bool {
            x >= limit / 10 && (x > limit / 10 || d > limit % 10)
        }
        guard let first = digit(i) else { return nil }
        i += 1
        var significand = first
        var exponent: Int32 = 0
        if first == 0 {
            if digit(i) != nil { return nil }  // one leading zero only
        } else {
            while let d = digit(i) {
                if overflows(significand, d, UInt64.max) {
                    // The remaining integer digits are dropped, each one a power of ten.
                    while digit(i) != nil { i += 1; exponent += 1 }
                    break
                }
                significand = significand * 10 + d
                i += 1
            }
        }
        var isFloat = exponent != 0
        if i < n, b[i] == UInt8(ascii: ".") {
            isFloat = true
            i += 1
            var fractionDigits = 0
            while let d = digit(i) {
                if overflows(significand, d, UInt64.max) {
                    while digit(i) != nil { i += 1 }  // dropped
                    fractionDigits = -1
                    break
                }
                significand = significand * 10 + d
                exponent -= 1
                i += 1
                fractionDigits += 1
            }
            if fractionDigits == 0 { return nil }  // at least one digit after the point
        }
        if i < n, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            isFloat = true
            i += 1
            var positiveExp = true
            if i < n, b[i] == UInt8(ascii: "+") { i += 1 } else if i < n, b[i] == UInt8(ascii: "-") { positiveExp = false; i += 1 }
            guard let e0 = digit(i) else { return nil }
            i += 1
            var e = Int32(e0)
            while let d = digit(i) {
                if overflows(UInt64(e), d, UInt64(Int32.max)) {
                    if significand != 0 && positiveExp { return nil }  // out of range
                    while digit(i) != nil { i += 1 }
                    guard i == n else { return nil }
                    return positive ? 0.0 : -0.0
                }
                e = e * 10 + Int32(d)
                i += 1
            }
            let x = positiveExp ? Int64(exponent) + Int64(e) : Int64(exponent) - Int64(e)  // saturating, like serde_json
            exponent = Int32(clamping: x)
        }
        guard i == n else { return nil }
        if !isFloat {
            // An integer: u64 / i64, then `as f64` (one rounding).
            return positive ? Double(significand) : -Double(significand)
        }
        var f = Double(significand)
        var ex = exponent
        while true {
            let mag = ex == Int32.min ? Int(Int32.max) + 1 : Int(abs(ex))
            if mag < powersOfTen.count {
                if ex >= 0 {
                    f *= powersOfTen[mag]
                    if f.isInfinite { return nil }
                } else {
                    f /= powersOfTen[mag]
                }
                break
            }
            if f == 0 { break }
            if ex >= 0 { return nil }
            f /= 1e308
            ex += 308
        }
        return positive ? f : -f
    }

    mutating func hex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count else { throw fail("bad \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[pos]
            var d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("bad \\u escape")
            }
            v = v * 16 + d
            pos += 1
        }
        return v
    }

    mutating func parseString() throws -> String {
        pos += 1 // opening quote
        let start = pos
        // Fast path: no escapes.
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
                pos += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            pos += 1
        }
        var buf = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<pos]))
        while pos < bytes.count {
            let c = bytes[pos]
            if c == UInt8(ascii: "\"") { pos += 1; return String(decoding: buf, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                pos += 1
                guard pos < bytes.count else { break }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): buf.append(0x22)
                case UInt8(ascii: "\\"): buf.append(0x5C)
                case UInt8(ascii: "/"): buf.append(0x2F)
                case UInt8(ascii: "b"): buf.append(0x08)
                case UInt8(ascii: "f"): buf.append(0x0C)
                case UInt8(ascii: "n"): buf.append(0x0A)
                case UInt8(ascii: "r"): buf.append(0x0D)
                case UInt8(ascii: "t"): buf.append(0x09)
                case UInt8(ascii: "u"):
                    var v = try hex4()
                    if v >= 0xD800 && v < 0xDC00, pos + 6 <= bytes.count, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                        let save = pos
                        pos += 2
                        let lo = try hex4()
                        if lo >= 0xDC00 && lo < 0xE000 { v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00) } else { pos = save }
                    }
                    let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                    buf.append(contentsOf: Array(String(scalar).utf8))
                default: throw fail("bad escape")
                }
            } else {
                buf.append(c)
                pos += 1
            }
        }
        throw fail("unterminated string")
    }
}
