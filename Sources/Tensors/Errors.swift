import Foundation

/// The package's error vocabulary for what a caller gives it: every failure names the field or the file at fault.
/// (`TensorError` is for misuse of a tensor operation; the Tokenizers library and the HTTP server have their own.)
public enum AlbertMoEError: LocalizedError, CustomStringConvertible, Equatable, Sendable {
    /// A value given under a name is wrong: a command-line flag, a config.json key, a request field, an argument.
    case invalidValue(field: String, reason: String)
    /// A file or directory cannot be read, written or used; `line` (1-based) when the problem is on one line of it.
    case badFile(path: String, line: Int? = nil, reason: String)
    /// Work that cannot go on, saying why (a loss that diverged, data that gave no batch).
    case cannotContinue(String)

    public var description: String {
        switch self {
        case let .invalidValue(field, reason): return "\(field): \(reason)"
        case let .badFile(path, line?, reason): return "\(path):\(line): \(reason)"
        case let .badFile(path, nil, reason): return "\(path): \(reason)"
        case let .cannotContinue(reason): return reason
        }
    }

    /// The field at fault, for an `invalidValue`.
    public var field: String? {
        if case let .invalidValue(field, _) = self { return field }
        return nil
    }

    /// The description, so that `localizedDescription` reads the same.
    public var errorDescription: String? { description }
}
