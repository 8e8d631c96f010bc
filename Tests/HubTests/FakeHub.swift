import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import XCTest

/// A repository the fake hub serves.
struct FakeRepository: Sendable {
    var kind: String   // "models" or "datasets"
    var id: String
    /// Revision name → commit.
    var revisions: [String: String]
    /// Commit → path → contents.
    var files: [String: [String: Data]]
    /// Paths stored with Git LFS: answered with a redirect to the CDN and X-Linked-Etag, as the hub does.
    var lfs: Set<String> = []
    var isPrivate = false
    var isGated = false
    /// Another id that redirects here (a renamed or legacy-named repository).
    var alias: String? = nil
    /// ETags to send instead of the made-up ones (path → ETag).
    var etags: [String: String] = [:]
}

/// A Hugging Face hub on two local ports: the hub's API and resolve URLs on one, and a "CDN" on the other that
/// serves LFS files (another origin, so the token must not reach it). It records every request.
final class FakeHub: Sendable {
    static let token = "hf_test_secret"
    private let repositories: Mutex<[FakeRepository]>
    private let log = Mutex<[String]>([])
    private let cdnAuthorizations = Mutex<[String]>([])
    /// Files whose next download breaks off after this many bytes (the server closes the connection).
    let breakOff = Mutex<[String: Int]>([:])
    /// Whether Range requests are honoured.
    let honoursRange = Mutex(true)
    /// Sent instead of the API's JSON description of a revision (for fuzzing).
    let apiBody = Mutex<Data?>(nil)
    /// Header values that replace the hub's on resolve answers (for fuzzing).
    let resolveHeaders = Mutex<[String: String]>([:])
    private let apps = Mutex<[Task<Void, Error>]>([])
    private let ports = Mutex<(hub: Int, cdn: Int)>((0, 0))

    init(_ repositories: [FakeRepository]) { self.repositories = Mutex(repositories) }

    var endpoint: URL { URL(string: "http://127.0.0.1:\(ports.withLock { $0.hub })")! }
    var requests: [String] { log.withLock { $0 } }
    /// Authorization headers that reached the CDN (there should be none).
    var leakedTokens: [String] { cdnAuthorizations.withLock { $0 } }

    func start() throws {
        let hubPort = try startApp { request in try await self.hub(request) }
        let cdnPort = try startApp { request in try await self.cdn(request) }
        ports.withLock { $0 = (hubPort, cdnPort) }
    }

    /// Stops both servers and waits until they no longer listen (a connection accepted while a server winds down
    /// would be dropped unanswered).
    func stop() async {
        for app in apps.withLock({ apps in defer { apps = [] }; return apps }) {
            app.cancel()
            _ = await app.result
        }
    }

    private func startApp(_ handler: @escaping @Sendable (Request) async throws -> Response) throws -> Int {
        let listening = Mutex<Result<Int, Error>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let app = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in try await handler(request) },
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                listening.withLock { $0 = .success(channel.localAddress?.port ?? 0) }
                ready.signal()
            },
            logger: { var logger = Logger(label: "fake-hub"); logger.logLevel = .critical; return logger }())
        let task = Task {
            do { try await app.run() } catch {
                listening.withLock { $0 = $0 ?? .failure(error) }
                ready.signal()
                throw error
            }
        }
        apps.withLock { $0.append(task) }
        guard ready.wait(timeout: .now() + 20) == .success else { throw FakeHubError.didNotStart }
        return try listening.withLock { $0! }.get()
    }

    func update(_ body: (inout [FakeRepository]) -> Void) { repositories.withLock { body(&$0) } }

    // MARK: The hub

    private func hub(_ request: Request) async throws -> Response {
        let path = request.uri.path.removingPercentEncoding ?? request.uri.path
        log.withLock { $0.append("\(request.method) \(path)") }
        let authorized = request.headers[.authorization] == "Bearer \(Self.token)"
        let repos = repositories.withLock { $0 }

        // /api/{models|datasets}/{id}/revision/{revision}
        if path.hasPrefix("/api/"), let marker = path.range(of: "/revision/") {
            let head = path[path.index(path.startIndex, offsetBy: 5)..<marker.lowerBound]
            guard let slash = head.firstIndex(of: "/") else { return error(404, "RepoNotFound") }
            let (kind, id) = (String(head[..<slash]), String(head[head.index(after: slash)...]))
            let revision = String(path[marker.upperBound...])
            guard let repo = repos.first(where: { $0.kind == kind && ($0.id == id || $0.alias == id) }) else {
                return error(404, "RepoNotFound")
            }
            if repo.alias == id {
                return Response(status: .temporaryRedirect,
                                headers: [.location: "/api/\(kind)/\(repo.id)/revision/\(revision)"])
            }
            if let refused = refusal(repo, authorized) { return refused }
            guard let commit = repo.revisions[revision] ?? (repo.files[revision] != nil ? revision : nil) else {
                return error(404, "RevisionNotFound")
            }
            let siblings = repo.files[commit]!.keys.sorted().map { ["rfilename": $0] }
            let body = try apiBody.withLock { $0 } ?? JSONSerialization.data(withJSONObject: ["id": repo.id, "sha": commit, "siblings": siblings])
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }

        // /{id}/resolve/{commit}/{file} and /datasets/{id}/resolve/{commit}/{file}
        guard let marker = path.range(of: "/resolve/") else { return error(404, nil) }
        var head = String(path[path.index(after: path.startIndex)..<marker.lowerBound])
        var kind = "models"
        if head.hasPrefix("datasets/") { kind = "datasets"; head = String(head.dropFirst("datasets/".count)) }
        let rest = path[marker.upperBound...]
        guard let slash = rest.firstIndex(of: "/") else { return error(404, "EntryNotFound") }
        let (commitOrRevision, file) = (String(rest[..<slash]), String(rest[rest.index(after: slash)...]))
        guard let repo = repos.first(where: { $0.kind == kind && ($0.id == head || $0.alias == head) }) else {
            return error(404, "RepoNotFound")
        }
        if repo.alias == head {
            let prefix = kind == "datasets" ? "/datasets" : ""
            return Response(status: .temporaryRedirect, headers: [.location: "\(prefix)/\(repo.id)/resolve/\(commitOrRevision)/\(file)"])
        }
        if let refused = refusal(repo, authorized) { return refused }
        guard let commit = repo.revisions[commitOrRevision] ?? (repo.files[commitOrRevision] != nil ? commitOrRevision : nil) else {
            return error(404, "RevisionNotFound")
        }
        guard let data = repo.files[commit]?[file] else { return error(404, "EntryNotFound") }
        let gitETag = repo.etags[file] ?? Self.etag(data, length: 40, salt: "git")
        var headers: HTTPFields = [HTTPField.Name("X-Repo-Commit")!: commit]
        for (name, value) in resolveHeaders.withLock({ $0 }) { headers[HTTPField.Name(name)!] = value }
        if repo.lfs.contains(file) {
            let sha = repo.etags[file] ?? Self.etag(data, length: 64, salt: "lfs")
            headers[HTTPField.Name("X-Linked-Etag")!] = headers[HTTPField.Name("X-Linked-Etag")!] ?? "\"\(sha)\""
            headers[HTTPField.Name("X-Linked-Size")!] = "\(data.count)"
            headers[.eTag] = "\"\(gitETag)\""
            headers[.location] = "http://127.0.0.1:\(ports.withLock { $0.cdn })/cdn/\(kind)/\(repo.id)/\(commit)/\(file)?signature=x"
            headers[.contentLength] = "0"
            return Response(status: .found, headers: headers)
        }
        headers[.eTag] = headers[.eTag] ?? "W/\"\(gitETag)\""
        return send(data, file: file, request: request, headers: headers)
    }

    private func refusal(_ repo: FakeRepository, _ authorized: Bool) -> Response? {
        if repo.isPrivate && !authorized { return error(401, "RepoNotFound") }
        if repo.isGated { return error(authorized ? 403 : 401, "GatedRepo") }
        return nil
    }

    // MARK: The CDN

    private func cdn(_ request: Request) async throws -> Response {
        let path = request.uri.path.removingPercentEncoding ?? request.uri.path
        log.withLock { $0.append("\(request.method) cdn \(path) \(request.headers[.range] ?? "")") }
        if let authorization = request.headers[.authorization] { cdnAuthorizations.withLock { $0.append(authorization) } }
        let parts = path.split(separator: "/", maxSplits: 4).map(String.init)   // cdn, kind, namespace/name..., commit, file
        let repos = repositories.withLock { $0 }
        for repo in repos where parts.count >= 3 && parts[1] == repo.kind {
            let prefix = "/cdn/\(repo.kind)/\(repo.id)/"
            guard path.hasPrefix(prefix) else { continue }
            let rest = path.dropFirst(prefix.count)
            guard let slash = rest.firstIndex(of: "/") else { continue }
            let (commit, file) = (String(rest[..<slash]), String(rest[rest.index(after: slash)...]))
            if let data = repo.files[commit]?[file] { return send(data, file: file, request: request, headers: [:]) }
        }
        return error(404, nil)
    }

    /// The file's bytes (a HEAD gets the headers only), from the Range's start when asked and honoured; a file
    /// marked in `breakOff` stops after that many bytes and the connection is dropped.
    private func send(_ data: Data, file: String, request: Request, headers: HTTPFields) -> Response {
        var headers = headers
        var start = 0
        if let range = request.headers[.range], honoursRange.withLock({ $0 }), range.hasPrefix("bytes="),
           let from = Int(range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)[0]) {
            guard from < data.count else { return Response(status: .rangeNotSatisfiable) }
            start = from
            headers[.contentRange] = "bytes \(from)-\(data.count - 1)/\(data.count)"
        }
        let body = Data(data[start...])
        headers[.contentLength] = "\(body.count)"
        let status: HTTPResponse.Status = start > 0 ? .partialContent : .ok
        if request.method == .head { return Response(status: status, headers: headers) }
        let cut = request.method == .get ? breakOff.withLock { $0.removeValue(forKey: file) } : nil
        return Response(status: status, headers: headers, body: ResponseBody { writer in
            if let cut {
                try await writer.write(ByteBuffer(bytes: body.prefix(cut)))
                throw FakeHubError.brokeOff
            }
            try await writer.write(ByteBuffer(bytes: body))
            try await writer.finish(nil)
        })
    }

    private func error(_ status: Int, _ code: String?) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let code { headers[HTTPField.Name("X-Error-Code")!] = code }
        let body = ByteBuffer(string: "{\"error\": \"\(code ?? "not found")\"}")
        return Response(status: HTTPResponse.Status(code: status), headers: headers, body: ResponseBody(byteBuffer: body))
    }

    /// A deterministic hex string standing for a file's hash.
    static func etag(_ data: Data, length: Int, salt: String) -> String {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in Array(salt.utf8) + Array(data) { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        var out = ""
        while out.count < length {
            hash = (hash ^ (hash >> 29)) &* 0xbf58476d1ce4e5b9
            out += String(format: "%016llx", hash)
        }
        return String(out.prefix(length))
    }
}

enum FakeHubError: Error { case didNotStart, brokeOff }
