import AsyncHTTPClient
import Foundation

/// Progress of one file's download, reported as its bytes arrive.
public struct HubProgress: Sendable, Equatable {
    /// The repository, as named by the caller.
    public let repository: String
    /// The file's path in the repository.
    public let file: String
    /// Which of the files being fetched this is (1-based), and how many there are.
    public let fileNumber: Int, fileCount: Int
    /// Bytes of the file on disk so far (a resumed download starts above 0), and its size when the hub says it.
    public let bytes: Int64, totalBytes: Int64?
    /// Whether the file is complete.
    public let finished: Bool
}

/// The hub's HTTP API: a revision's commit and file list, and files streamed into the cache's blobs.
final class HubClient: Sendable {
    let endpoint: URL
    let token: String?
    let cache: HubCache
    private let client: HTTPClient

    init(endpoint: URL, token: String?, cache: HubCache, timeout: Double) {
        self.endpoint = endpoint
        self.token = token
        self.cache = cache
        // Redirects are followed here, to read the hub's own headers and to drop the token on other hosts.
        let configuration = HTTPClient.Configuration(redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .milliseconds(Int64(timeout * 1000)),
                                                                    read: .milliseconds(Int64(timeout * 1000))))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async { try? await client.shutdown() }

    /// The commit that `revision` names, and the paths of the files of the repository at that commit.
    func revisionInfo(_ repository: HubRepository, revision: String) async throws -> (commit: String, files: [String]) {
        let url = endpoint.absoluteString + "/api/\(repository.kind.rawValue)s/\(repository.id)/revision/" + escape(revision, keepSlash: false)
        let exchange = try await send(.GET, url, followAllRedirects: true)
        guard (200..<300).contains(exchange.status) else {
            throw await failure(exchange, repository: repository, subject: .revision(revision))
        }
        let body: Data
        do { body = try await exchange.body(limit: 64 << 20) } catch { throw networkError(error, url: url) }
        struct Info: Decodable {
            struct Sibling: Decodable { let rfilename: String }
            let sha: String?
            let siblings: [Sibling]?
        }
        guard let info = try? JSONDecoder().decode(Info.self, from: body) else {
            throw HubError.badResponse(url: url, reason: "not the JSON description of a repository")
        }
        guard let sha = info.sha, isCommitHash(sha) else {
            throw HubError.badResponse(url: url, reason: "no commit hash (sha) in the description")
        }
        return (sha, (info.siblings ?? []).map(\.rfilename).filter(isSafeRelativePath))
    }

    /// Puts `file` of `commit` into the cache, as huggingface_hub does: asks the hub for the file's ETag (HEAD,
    /// following only the hub's own redirects), streams it into `blobs/ETAG.incomplete` unless the blob is already
    /// there (resuming a broken download with a Range request), renames that to `blobs/ETAG` once complete and
    /// links `snapshots/COMMIT/FILE` to it.
    func download(_ repository: HubRepository, commit: String, file: String, number: Int, count: Int,
                  progress: @escaping @Sendable (HubProgress) -> Void) async throws {
        let url = endpoint.absoluteString + "/\(repository.urlPrefix)\(repository.id)/resolve/\(commit)/" + escape(file, keepSlash: true)
        let head = try await send(.HEAD, url, followAllRedirects: false)
        guard (200..<400).contains(head.status) else {
            throw await failure(head, repository: repository, subject: .file(file, commit: commit))
        }
        guard let etag = (head.hubHeader("X-Linked-Etag") ?? head.hubHeader("ETag")).map(normalizedETag),
              isSafeComponent(etag) else {
            throw HubError.badResponse(url: url, reason: "no usable ETag for \(file)")
        }
        if let answered = head.hubHeader("X-Repo-Commit"), answered != commit {
            throw HubError.badResponse(url: url, reason: "the file is from commit \(answered), not the \(commit) asked for")
        }
        let size = (head.hubHeader("X-Linked-Size") ?? (head.status == 200 ? head.header("Content-Length") : nil)).flatMap { Int64($0) }
        let blob = cache.blob(repository, etag: etag)
        try await withFileLock(cache.lockFile(repository, etag: etag)) {
            if !FileManager.default.fileExists(atPath: blob.path) {
                try await fetch(head.redirect ?? url, into: blob, size: size) { bytes, total, finished in
                    progress(HubProgress(repository: repository.id, file: file, fileNumber: number, fileCount: count,
                                         bytes: bytes, totalBytes: total, finished: finished))
                }
            }
        }
        try cache.link(repository, commit: commit, file: file, etag: etag)
    }

    /// Streams `url` into `blob` through `blob.incomplete`, resuming what an earlier try left there.
    private func fetch(_ url: String, into blob: URL, size: Int64?, resume: Bool = true,
                       progress: @Sendable (Int64, Int64?, Bool) -> Void) async throws {
        let incomplete = URL(fileURLWithPath: blob.path + ".incomplete")
        try cache.createDirectory(blob.deletingLastPathComponent())
        var offset = resume ? ((try? FileManager.default.attributesOfItem(atPath: incomplete.path))?[.size] as? NSNumber)?.int64Value ?? 0 : 0
        if let size, offset > size { offset = 0 }
        let exchange = try await send(.GET, url, followAllRedirects: true,
                                      headers: offset > 0 ? [("Range", "bytes=\(offset)-")] : [])
        if exchange.status == 416 && offset > 0 {
            try? await exchange.discardBody()
            return try await fetch(url, into: blob, size: size, resume: false, progress: progress)
        }
        guard exchange.status == 200 || (exchange.status == 206 && offset > 0) else {
            throw await failure(exchange, repository: nil, subject: .url(url))
        }
        if exchange.status == 200 { offset = 0 }
        else if let range = exchange.header("Content-Range"), !range.hasPrefix("bytes \(offset)-") {
            try? await exchange.discardBody()
            return try await fetch(url, into: blob, size: size, resume: false, progress: progress)
        }
        let total = exchange.header("Content-Length").flatMap { Int64($0) }.map { $0 + offset } ?? size
        if offset == 0 && !FileManager.default.createFile(atPath: incomplete.path, contents: nil) {
            throw HubError.cache(path: incomplete.path, reason: "cannot create")
        }
        guard let handle = FileHandle(forWritingAtPath: incomplete.path) else {
            throw HubError.cache(path: incomplete.path, reason: "cannot write")
        }
        var written = offset
        do {
            defer { try? handle.close() }
            try handle.truncate(atOffset: UInt64(offset))
            try handle.seek(toOffset: UInt64(offset))
            progress(written, total, false)
            do {
                for try await chunk in exchange.response.body {
                    do { try chunk.withUnsafeReadableBytes { try handle.write(contentsOf: $0) } } catch {
                        throw HubError.cache(path: incomplete.path, reason: "cannot write: \(error.localizedDescription)")
                    }
                    written += Int64(chunk.readableBytes)
                    if let total, written > total { break }
                    progress(written, total, false)
                }
            } catch let error as HubError {
                throw error
            } catch {
                throw HubError.network(endpoint: endpoint.absoluteString, reason: "the download of \(url) broke off after "
                                       + "\(written) bytes (\(error)); run again to resume it")
            }
            try handle.synchronize()
        } catch let error as HubError {
            throw error
        } catch {
            throw HubError.cache(path: incomplete.path, reason: "cannot write: \(error.localizedDescription)")
        }
        if let total, written != total {
            if written > total { try? FileManager.default.removeItem(at: incomplete) }
            throw HubError.badResponse(url: url, reason: "\(written) bytes arrived where \(total) were announced"
                                       + (written < total ? "; run again to resume the download" : ""))
        }
        try cache.rename(incomplete, to: blob)
        progress(written, total, true)
    }

    // MARK: Requests

    enum Method: String { case GET, HEAD }

    /// What an answer is about, for its error message.
    enum Subject {
        case revision(String)
        case file(String, commit: String)
        case url(String)
    }

    /// One request, with the redirects it met: the final response, and the headers of the last response that
    /// came from the endpoint itself (where the hub puts X-Linked-Etag and X-Repo-Commit).
    struct Exchange {
        let response: HTTPClientResponse
        let url: String
        let hubHeaders: [(String, String)]
        /// A redirect to another host that was not followed.
        let redirect: String?
        var status: Int { Int(response.status.code) }

        func header(_ name: String) -> String? { response.headers.first(name: name) }
        func hubHeader(_ name: String) -> String? { hubHeaders.first { $0.0.lowercased() == name.lowercased() }?.1 }

        func body(limit: Int) async throws -> Data {
            let buffer = try await response.body.collect(upTo: limit)
            return buffer.withUnsafeReadableBytes { Data($0) }
        }

        func discardBody() async throws {
            for try await _ in response.body {}
        }
    }

    /// Sends a request, following redirects (relative ones always, those to other hosts when asked); the token goes
    /// to the endpoint's host only.
    private func send(_ method: Method, _ url: String, followAllRedirects: Bool,
                      headers: [(String, String)] = []) async throws -> Exchange {
        var current = url
        var hubHeaders: [(String, String)] = []
        for _ in 0..<10 {
            guard let currentURL = URL(string: current), ["http", "https"].contains(currentURL.scheme?.lowercased() ?? "") else {
                throw HubError.badResponse(url: current, reason: "not an http(s) address")
            }
            let fromHub = sameOrigin(currentURL, endpoint)
            var request = HTTPClientRequest(url: current)
            request.method = method == .GET ? .GET : .HEAD
            request.headers.add(name: "User-Agent", value: "albertmoe-hub/1")
            // Compressed answers would not match the sizes the hub announces.
            request.headers.add(name: "Accept-Encoding", value: "identity")
            if fromHub, let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            let response: HTTPClientResponse
            do { response = try await client.execute(request, deadline: .distantFuture) } catch {
                throw networkError(error, url: current)
            }
            if fromHub { hubHeaders = response.headers.map { ($0.name, $0.value) } }
            let status = Int(response.status.code)
            guard [301, 302, 303, 307, 308].contains(status), let location = response.headers.first(name: "Location") else {
                return Exchange(response: response, url: current, hubHeaders: hubHeaders, redirect: nil)
            }
            guard let next = URL(string: location, relativeTo: currentURL)?.absoluteURL else {
                throw HubError.badResponse(url: current, reason: "a redirect to an unreadable address \(location)")
            }
            if !followAllRedirects && !sameOrigin(next, endpoint) {
                return Exchange(response: response, url: current, hubHeaders: hubHeaders, redirect: next.absoluteString)
            }
            for try await _ in response.body {}
            current = next.absoluteString
        }
        throw HubError.badResponse(url: url, reason: "more than 10 redirects")
    }

    /// The error for an answer that is not a success: 401/403 ask for a token, 404 says what does not exist.
    private func failure(_ exchange: Exchange, repository: HubRepository?, subject: Subject) async -> HubError {
        let text = (try? await exchange.body(limit: 1 << 16)).flatMap { String(data: $0, encoding: .utf8) } ?? ""
        let code = exchange.hubHeader("X-Error-Code") ?? exchange.header("X-Error-Code")
        let message = exchange.hubHeader("X-Error-Message") ?? exchange.header("X-Error-Message")
            ?? (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8)))?["error"] ?? String(text.prefix(200))
        let name = repository.map { "\($0)" } ?? exchange.url
        switch exchange.status {
        case 401, 403:
            if exchange.status == 401 && code == "RepoNotFound" && token != nil {
                return .notFound("no repository \(name) on \(endpoint.absoluteString), or the token cannot see it")
            }
            return .accessDenied(repository: name, status: exchange.status, tokenGiven: token != nil)
        case 404:
            switch subject {
            case let .revision(revision):
                if code == "RevisionNotFound" { return .notFound("\(name) has no revision '\(revision)'") }
                return .notFound("no repository \(name) on \(endpoint.absoluteString)"
                                 + (code == nil ? " (or it has no revision '\(revision)')" : ""))
            case let .file(file, commit):
                if code == "RepoNotFound" { return .notFound("no repository \(name) on \(endpoint.absoluteString)") }
                return .notFound("\(name) has no file \(file) at commit \(commit)")
            case let .url(url):
                return .notFound("\(url) does not exist" + (message.isEmpty ? "" : ": \(message)"))
            }
        default:
            return .badResponse(url: exchange.url, reason: "HTTP \(exchange.status)" + (message.isEmpty ? "" : ": \(message)"))
        }
    }

    private func networkError(_ error: Error, url: String) -> HubError {
        .network(endpoint: endpoint.absoluteString, reason: "\(error) (asking \(url))")
    }
}

/// Runs `body` holding an exclusive flock on `lock` (the lock huggingface_hub's filelock takes), so that two
/// processes do not write one blob at once.
private func withFileLock(_ lock: URL, _ body: () async throws -> Void) async throws {
    try FileManager.default.createDirectory(at: lock.deletingLastPathComponent(), withIntermediateDirectories: true)
    let fd = open(lock.path, O_CREAT | O_RDWR, 0o644)
    guard fd >= 0 else { throw HubError.cache(path: lock.path, reason: "cannot open the lock file: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard flock(fd, LOCK_EX) == 0 else { throw HubError.cache(path: lock.path, reason: "cannot lock: \(String(cString: strerror(errno)))") }
    defer { flock(fd, LOCK_UN) }
    try await body()
}

/// An ETag without `W/` and quotes.
func normalizedETag(_ etag: String) -> String {
    var value = Substring(etag.trimmingCharacters(in: .whitespaces))
    if value.hasPrefix("W/") { value = value.dropFirst(2) }
    return value.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
}

/// Percent-encodes a path for a URL (keeping `/` between parts when asked), as huggingface_hub quotes file names and
/// revisions.
func escape(_ text: String, keepSlash: Bool) -> String {
    var allowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
    if keepSlash { allowed.insert("/") }
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
}

func sameOrigin(_ a: URL, _ b: URL) -> Bool {
    func port(_ u: URL) -> Int? { u.port ?? (u.scheme?.lowercased() == "https" ? 443 : u.scheme?.lowercased() == "http" ? 80 : nil) }
    return a.scheme?.lowercased() == b.scheme?.lowercased() && a.host?.lowercased() == b.host?.lowercased() && port(a) == port(b)
}
