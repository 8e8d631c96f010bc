import Foundation

/// An error answered to the client as `{"error": {"message", "type", "param"}}` with an HTTP status.
public struct APIError: Error, CustomStringConvertible, Sendable {
    /// The HTTP status code (400, 404, 405, 413, 500...).
    public let status: Int
    /// What went wrong, for a person.
    public let message: String
    /// The OpenAI-style error type: "invalid_request_error", "not_found_error", "server_error"...
    public let type: String
    /// The request field at fault, if one is.
    public let param: String?

    /// An error answered with `status`, naming the request field `param` when one is at fault.
    public init(status: Int, message: String, type: String = "invalid_request_error", param: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
    }

    /// A 400 Bad Request about `param`.
    static func invalid(_ message: String, param: String? = nil) -> APIError {
        APIError(status: 400, message: message, param: param)
    }

    public var description: String { "\(status): \(message)" }
}

/// A JSON value as parsed from a request body, keeping booleans, integers and other numbers apart so that a field
/// of the wrong type can be named.
indirect enum JSONNode: Decodable, Equatable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONNode])
    case object([String: JSONNode])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONNode].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONNode].self))
        }
    }

    /// The JSON type's name, for error messages.
    var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer, .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }
}

/// The fields of a JSON object request body, read with their expected types. Each accessor returns nil for a field
/// that is absent or null, and throws a 400 `APIError` naming the field when it holds a value of another type.
struct RequestFields {
    let fields: [String: JSONNode]

    /// Parses `body`, which must be a JSON object.
    init(body: Data) throws {
        let node: JSONNode
        do { node = try JSONDecoder().decode(JSONNode.self, from: body) } catch {
            throw APIError.invalid("the request body is not valid JSON")
        }
        guard case .object(let fields) = node else {
            throw APIError.invalid("the request body must be a JSON object, not \(node.typeName)")
        }
        self.fields = fields
    }

    private func value(_ key: String) -> JSONNode? {
        guard let value = fields[key], value != .null else { return nil }
        return value
    }

    private func wrongType(_ key: String, _ expected: String, _ got: JSONNode) -> APIError {
        .invalid("\(key) must be \(expected), not \(got.typeName)", param: key)
    }

    func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let s) = value else { throw wrongType(key, "a string", value) }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard case .bool(let b) = value else { throw wrongType(key, "a boolean", value) }
        return b
    }

    /// A number (an integer is accepted too).
    func double(_ key: String) throws -> Double? {
        guard let value = value(key) else { return nil }
        switch value {
        case .integer(let i): return Double(i)
        case .number(let d): return d
        default: throw wrongType(key, "a number", value)
        }
    }

    /// An integer (a number with no fractional part, such as 5.0, is accepted too).
    func int(_ key: String) throws -> Int? {
        guard let value = value(key) else { return nil }
        switch value {
        case .integer(let i) where i >= Int64(Int.min) && i <= Int64(Int.max):
            return Int(i)
        case .number(let d) where d.rounded() == d && abs(d) < 0x1p53:
            return Int(d)
        default:
            throw wrongType(key, "an integer", value)
        }
    }

    /// A string or an array of strings, as the array; an empty array is an error.
    func strings(_ key: String) throws -> [String]? {
        guard let value = value(key) else { return nil }
        switch value {
        case .string(let s):
            return [s]
        case .array(let items):
            guard !items.isEmpty else { throw APIError.invalid("\(key) must not be an empty array", param: key) }
            return try items.enumerated().map { index, item in
                guard case .string(let s) = item else {
                    throw APIError.invalid("\(key)[\(index)] must be a string, not \(item.typeName)", param: key)
                }
                return s
            }
        default:
            throw wrongType(key, "a string or an array of strings", value)
        }
    }

    /// Whether the field is present with a value other than null.
    func has(_ key: String) -> Bool { value(key) != nil }
}

/// The settings of a `/v1/embeddings` request, read and checked.
struct EmbeddingsRequest {
    /// The texts to embed (`input`: a string or an array of strings).
    var inputs: [String]
    /// How the vectors are written (`encoding_format`: "float", the default, or "base64").
    var encoding: EmbeddingsBody.Encoding

    init(_ fields: RequestFields) throws {
        guard let inputs = try fields.strings("input") else { throw APIError.invalid("input is required", param: "input") }
        self.inputs = inputs
        let format = try fields.string("encoding_format") ?? "float"
        guard let encoding = EmbeddingsBody.Encoding(rawValue: format) else {
            throw APIError.invalid("encoding_format must be \"float\" or \"base64\", got \"\(format)\"", param: "encoding_format")
        }
        self.encoding = encoding
    }
}

/// The settings of a `/v1/fill-mask` request, read and checked.
struct FillMaskRequest {
    /// The text with one or more mask tokens.
    var text: String
    /// The field the text came from (`text`, else `inputs`), named in errors.
    var param: String
    /// How many predictions to give per mask token (`top_k`, default 5).
    var topK: Int

    init(_ fields: RequestFields) throws {
        param = fields.has("text") ? "text" : "inputs"
        guard let text = try fields.string(param) else {
            throw APIError.invalid("text is required (a string with one or more mask tokens)", param: "text")
        }
        guard !text.isEmpty else { throw APIError.invalid("\(param) must not be empty", param: param) }
        self.text = text
        topK = try fields.int("top_k") ?? 5
        guard topK >= 1 else { throw APIError.invalid("top_k must be at least 1, got \(topK)", param: "top_k") }
    }
}
