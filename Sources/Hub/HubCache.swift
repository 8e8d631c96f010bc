import Foundation

/// The Hugging Face cache, laid out as huggingface_hub lays it out, so that both share it: under the root, one
/// folder per repository (`models--NS--NAME`, `datasets--NS--NAME`) holding `refs/REVISION` (a file naming a
/// commit), `snapshots/COMMIT/PATH` (usually symlinks into `blobs/`) and `blobs/ETAG`.
public struct HubCache: Sendable {
    /// The cache's root folder.
    public let root: URL

    public init(root: URL) { self.root = root }

    /// The root huggingface_hub uses: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`
    /// (with `$XDG_CACHE_HOME` for `~/.cache`).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let cache = nonEmpty(environment["HF_HUB_CACHE"]) ?? nonEmpty(environment["HUGGINGFACE_HUB_CACHE"]) {
            root = URL(fileURLWithPath: expandingTilde(cache, environment))
        } else {
            root = huggingFaceHome(environment).appendingPathComponent("hub")
        }
    }

    /// The folder of a repository, as huggingface_hub names it (whether or not it exists).
    public func folder(of repository: HubRepository) -> URL {
        root.appendingPathComponent(repository.cacheFolderName)
    }

    /// The snapshot of `revision` (a branch, a tag or a commit) of a cached repository, or nil when it is not
    /// cached. A bare legacy name also finds the one cached repository of that name under a namespace
    /// (`albert-base-v2` finds `models--albert--albert-base-v2`); several such: an error listing them.
    public func snapshot(of repository: HubRepository, revision: String = "main") throws -> HubSnapshot? {
        try checkRevision(revision)
        guard let cached = try cachedRepository(for: repository) else { return nil }
        return try snapshot(in: folder(of: cached), of: cached, revision: revision)
    }

    /// The cached repository that a name refers to: its own folder, else (for a bare name) the single namespaced
    /// folder of that name.
    func cachedRepository(for repository: HubRepository) throws -> HubRepository? {
        if isDirectory(folder(of: repository)) { return repository }
        guard repository.isBare else { return nil }
        let prefix = "\(repository.kind.rawValue)s--", suffix = "--\(repository.id)"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        let matches = names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(suffix) && $0.count > prefix.count + suffix.count }
            .sorted()
            .compactMap { name -> HubRepository? in
                let namespace = String(name.dropFirst(prefix.count).dropLast(suffix.count))
                return try? HubRepository("\(namespace)/\(repository.id)", kind: repository.kind)
            }
            .filter { isDirectory(folder(of: $0)) }
        guard matches.count <= 1 else { throw HubError.ambiguous(name: repository.id, matches: matches.map(\.id)) }
        return matches.first
    }

    /// The snapshot of `revision` in one repository folder: `refs/REVISION` names the commit (a commit names
    /// itself), whose `snapshots/COMMIT` folder must exist.
    func snapshot(in folder: URL, of repository: HubRepository, revision: String) throws -> HubSnapshot? {
        let commit: String
        if isCommitHash(revision) && isDirectory(folder.appendingPathComponent("snapshots/\(revision)")) {
            commit = revision
        } else {
            let ref = folder.appendingPathComponent("refs").appendingPathComponent(revision)
            guard let handle = FileHandle(forReadingAtPath: ref.path) else { return nil }
            defer { try? handle.close() }
            let data = (try? handle.read(upToCount: 1025)) ?? nil ?? Data()
            guard data.count <= 1024, let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
                  isSafeComponent(text) else {
                throw HubError.cache(path: ref.path, reason: "does not name a commit")
            }
            commit = text
        }
        let directory = folder.appendingPathComponent("snapshots").appendingPathComponent(commit)
        guard isDirectory(directory) else { return nil }
        return HubSnapshot(repository: repository, commit: commit, directory: directory)
    }

    /// Where `snapshot(of:revision:)` looks for a repository, in words for messages.
    func whereLooked(for repository: HubRepository, revision: String) -> String {
        var places = folder(of: repository).path
        if repository.isBare { places += " and \(root.path)/\(repository.kind.rawValue)s--*--\(repository.id)" }
        return places + ", revision \(revision)"
    }

    // MARK: Writing (as huggingface_hub writes)

    func blob(_ repository: HubRepository, etag: String) -> URL {
        folder(of: repository).appendingPathComponent("blobs").appendingPathComponent(etag)
    }

    func pointer(_ repository: HubRepository, commit: String, file: String) -> URL {
        folder(of: repository).appendingPathComponent("snapshots").appendingPathComponent(commit).appendingPathComponent(file)
    }

    /// The lock file huggingface_hub takes (with flock) while it downloads a blob.
    func lockFile(_ repository: HubRepository, etag: String) -> URL {
        root.appendingPathComponent(".locks").appendingPathComponent(repository.cacheFolderName)
            .appendingPathComponent(etag + ".lock")
    }

    /// `snapshots/COMMIT/FILE` as a relative symlink to `blobs/ETAG`, replaced atomically.
    func link(_ repository: HubRepository, commit: String, file: String, etag: String) throws {
        let pointer = pointer(repository, commit: commit, file: file)
        let depth = file.split(separator: "/").count + 1   // the file's folders, and the commit's folder
        let target = String(repeating: "../", count: depth) + "blobs/" + etag
        try createDirectory(pointer.deletingLastPathComponent())
        let temporary = pointer.deletingLastPathComponent().appendingPathComponent(".\(pointer.lastPathComponent).\(UUID().uuidString)")
        do {
            try FileManager.default.createSymbolicLink(atPath: temporary.path, withDestinationPath: target)
        } catch {
            throw HubError.cache(path: pointer.path, reason: "cannot create a symlink: \(error.localizedDescription)")
        }
        try rename(temporary, to: pointer)
    }

    /// `refs/REVISION` naming `commit`, written atomically.
    func writeRef(_ repository: HubRepository, revision: String, commit: String) throws {
        let ref = folder(of: repository).appendingPathComponent("refs").appendingPathComponent(revision)
        try createDirectory(ref.deletingLastPathComponent())
        let temporary = ref.deletingLastPathComponent().appendingPathComponent(".\(ref.lastPathComponent).\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(commit.utf8)) else {
            throw HubError.cache(path: ref.path, reason: "cannot write")
        }
        try rename(temporary, to: ref)
    }

    func createDirectory(_ url: URL) throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw HubError.cache(path: url.path, reason: "cannot create the folder: \(error.localizedDescription)")
        }
    }

    func rename(_ from: URL, to: URL) throws {
        guard Foundation.rename(from.path, to.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: from)
            throw HubError.cache(path: to.path, reason: "cannot move \(from.lastPathComponent) into place: \(reason)")
        }
    }
}

/// One commit of a cached repository: its `snapshots/COMMIT` folder.
public struct HubSnapshot: Sendable, Equatable {
    /// The repository as cached (for a bare legacy name, possibly the namespaced repository that matched).
    public let repository: HubRepository
    public let commit: String
    /// `snapshots/COMMIT`: a folder like the repository's own, whose files are symlinks into `blobs/`.
    public let directory: URL

    /// The paths (relative, sorted) of the files present, following symlinks; a symlink whose blob is gone is not
    /// a file.
    public var files: [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory.path) else { return [] }
        var found: [String] = []
        while let path = walker.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent(path).path, isDirectory: &isDirectory),
               !isDirectory.boolValue, !path.split(separator: "/").contains(where: { $0.hasPrefix(".") }) {
                found.append(path)
            }
        }
        return found.sorted()
    }
}

/// A revision is a branch, a tag, a commit or a `refs/...` name: relative, without `.` or `..` parts.
func checkRevision(_ revision: String) throws {
    let parts = revision.split(separator: "/", omittingEmptySubsequences: false)
    guard !revision.isEmpty, revision.count <= 256, !revision.contains("\0"),
          parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
        throw HubError.invalidSetting(name: "revision", reason: "'\(revision)' is not a branch, tag or commit name")
    }
}

/// Whether `path` is a relative path that stays inside its folder (no empty, `.` or `..` parts).
func isSafeRelativePath(_ path: String) -> Bool {
    let parts = path.split(separator: "/", omittingEmptySubsequences: false)
    return !path.isEmpty && path.count <= 4096 && !path.contains("\0") && !path.contains("\\")
        && parts.allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
}

/// Whether `name` can be one file name in the cache (a commit, an ETag): letters, digits, `-`, `_`, `.`.
func isSafeComponent(_ name: String) -> Bool {
    !name.isEmpty && name.count <= 256 && name != "." && name != ".."
        && name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
}

func isCommitHash(_ text: String) -> Bool {
    text.utf8.count == 40 && text.utf8.allSatisfy { ("0"..."9").contains(Character(UnicodeScalar($0))) || ("a"..."f").contains(Character(UnicodeScalar($0))) }
}

func isDirectory(_ url: URL) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
}

func nonEmpty(_ value: String?) -> String? {
    guard let value, !value.isEmpty else { return nil }
    return value
}

func expandingTilde(_ path: String, _ environment: [String: String]) -> String {
    guard path == "~" || path.hasPrefix("~/") else { return path }
    let home = nonEmpty(environment["HOME"]) ?? FileManager.default.homeDirectoryForCurrentUser.path
    return home + path.dropFirst()
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
func huggingFaceHome(_ environment: [String: String]) -> URL {
    if let home = nonEmpty(environment["HF_HOME"]) { return URL(fileURLWithPath: expandingTilde(home, environment)) }
    let cache = nonEmpty(environment["XDG_CACHE_HOME"]).map { expandingTilde($0, environment) }
        ?? expandingTilde("~/.cache", environment)
    return URL(fileURLWithPath: cache).appendingPathComponent("huggingface")
}
