import Foundation

/// What can go wrong finding or fetching a Hugging Face repository; each case names the repository, file,
/// endpoint or cache path at fault and says what to do.
public enum HubError: LocalizedError, CustomStringConvertible, Equatable, Sendable {
    /// An environment setting (HF_ENDPOINT, ...) is unusable.
    case invalidSetting(name: String, reason: String)
    /// The name is not a valid repository id.
    case invalidName(String, reason: String)
    /// Offline (`HF_HUB_OFFLINE`), and the cache does not hold what is needed: what was looked for, and where.
    case notCached(what: String, lookedIn: String)
    /// A bare name matches several cached repositories (their ids).
    case ambiguous(name: String, matches: [String])
    /// The hub refused without a token, or with one that has no access (401, 403).
    case accessDenied(repository: String, status: Int, tokenGiven: Bool)
    /// The hub has no such repository, revision or file (404).
    case notFound(String)
    /// The repository exists but lacks what was asked for (no tokenizer file, no weights, no such split).
    case missing(repository: String, reason: String)
    /// The endpoint could not be reached, or the connection broke.
    case network(endpoint: String, reason: String)
    /// The hub answered something unusable.
    case badResponse(url: String, reason: String)
    /// The cache cannot be read or written.
    case cache(path: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidSetting(name, reason):
            return "\(name): \(reason)"
        case let .invalidName(name, reason):
            return "'\(name)' is not a Hugging Face repository id (\(reason))"
        case let .notCached(what, lookedIn):
            return "\(what) is not in the Hugging Face cache (looked in \(lookedIn)), and HF_HUB_OFFLINE forbids "
                + "downloading it: unset HF_HUB_OFFLINE to download it, or pass a local path"
        case let .ambiguous(name, matches):
            return "'\(name)' matches \(matches.count) cached repositories (\(matches.joined(separator: ", "))): "
                + "name one of them in full"
        case let .accessDenied(repository, status, tokenGiven):
            return tokenGiven
                ? "\(repository): the hub refused the token (HTTP \(status)): the repository is private or gated and this "
                    + "token has no access to it (for a gated repository, accept its conditions on its hub page)"
                : "\(repository): the hub refused access without a token (HTTP \(status)): the repository is private or "
                    + "gated, or does not exist; set HF_TOKEN (or the command's --hub_token) to a token that can read it"
        case let .notFound(what):
            return "\(what) (HTTP 404)"
        case let .missing(repository, reason):
            return "\(repository): \(reason)"
        case let .network(endpoint, reason):
            return "cannot reach the Hugging Face hub at \(endpoint): \(reason) (set HF_HUB_OFFLINE=1 to use only the "
                + "cache, or HF_ENDPOINT for another endpoint)"
        case let .badResponse(url, reason):
            return "\(url): unexpected answer from the hub: \(reason)"
        case let .cache(path, reason):
            return "Hugging Face cache \(path): \(reason)"
        }
    }

    /// Whether the error says that something is not there (not cached, no such file, split or revision), rather
    /// than that it could not be reached or read.
    public var isAbsence: Bool {
        switch self {
        case .notCached, .notFound, .missing: return true
        default: return false
        }
    }

    /// The description, so that `localizedDescription` reads the same.
    public var errorDescription: String? { description }
}
