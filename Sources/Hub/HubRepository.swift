/// A repository on the Hugging Face hub: a model or a dataset, named `NAMESPACE/NAME` or, for the hub's
/// oldest repositories, by a bare legacy `NAME`.
public struct HubRepository: Hashable, Sendable, CustomStringConvertible {
    /// The two kinds of repository this package reads.
    public enum Kind: String, Sendable {
        case model, dataset
    }

    public let kind: Kind
    /// The id as given: `NAMESPACE/NAME` or a bare `NAME`.
    public let id: String

    /// Checks `id` as huggingface_hub does: one optional namespace, ASCII letters, digits, `-`, `_` and `.`, a name
    /// of at most 96 characters, no `--` or `..`, no `.` or `-` at either end of a part, no `.git` at the end.
    public init(_ id: String, kind: Kind) throws {
        let parts = id.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw HubError.invalidName(id, reason: "more than one '/'") }
        guard parts.last!.count <= 96 else { throw HubError.invalidName(id, reason: "the name is over 96 characters") }
        for part in parts {
            guard !part.isEmpty else { throw HubError.invalidName(id, reason: "an empty part") }
            guard part.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)
                                                                  || "-_.".unicodeScalars.contains($0)) }) else {
                throw HubError.invalidName(id, reason: "only letters, digits, '-', '_' and '.' are allowed")
            }
            guard !part.contains("--"), !part.contains("..") else {
                throw HubError.invalidName(id, reason: "'--' and '..' are not allowed")
            }
            guard let first = part.first, let last = part.last, !"-.".contains(first), !"-.".contains(last) else {
                throw HubError.invalidName(id, reason: "a part cannot start or end with '-' or '.'")
            }
        }
        guard !id.hasSuffix(".git") else { throw HubError.invalidName(id, reason: "it cannot end with .git") }
        self.kind = kind
        self.id = id
    }

    /// Whether `id` is a valid repository id.
    public static func isValidID(_ id: String) -> Bool { (try? HubRepository(id, kind: .model)) != nil }

    /// Whether the id is a bare legacy name (no namespace).
    public var isBare: Bool { !id.contains("/") }

    /// The repository's folder in the cache: `models--NS--NAME`, `datasets--NS--NAME`.
    public var cacheFolderName: String { "\(kind.rawValue)s--" + id.replacingOccurrences(of: "/", with: "--") }

    /// The path prefix of the repository's files on the hub: empty for models, `datasets/` for datasets.
    var urlPrefix: String { kind == .model ? "" : "datasets/" }

    public var description: String { kind == .model ? id : "dataset \(id)" }
}
