import ArgumentParser
import Dispatch
import Foundation
import Hub
import Synchronization

/// Hugging Face names on the command line: a name that is no local path is looked up in the Hugging Face cache
/// and, when it is not there (and `HF_HUB_OFFLINE` is not set), downloaded into it, with a progress display on
/// standard error. A flag's errors name the flag.
public struct HubNames: Sendable {
    /// The command's --hub_token (else `HF_TOKEN` or the saved login token).
    public let token: String?

    public init(token: String?) { self.token = token }

    /// Whether `name` should be looked up on the hub: it is no local path, it is a repository id, and it does not
    /// end like a file this package reads (`corpus.txt`, `tokenizer.json`: a mistyped path, not a repository).
    public static func isHubName(_ name: String) -> Bool {
        let fileExtensions = ["txt", "json", "jsonl", "csv", "tsv", "parquet", "model", "safetensors", "bin"]
        return !FileManager.default.fileExists(atPath: name) && HubRepository.isValidID(name)
            && !fileExtensions.contains(URL(fileURLWithPath: name).pathExtension.lowercased())
    }

    /// A local model directory, or the cached snapshot of hub model `name` (config, weights, tokenizer).
    public func modelDirectory(_ name: String, flag: String) throws -> URL {
        guard Self.isHubName(name) else { return URL(fileURLWithPath: name) }
        return try run(flag, name) { hub, progress in try await hub.model(name, progress: progress).directory }
    }

    /// The cached snapshot holding the tokenizer files of hub model `name`.
    public func tokenizerDirectory(_ name: String, flag: String) throws -> URL {
        try run(flag, name) { hub, progress in try await hub.tokenizer(name, progress: progress).directory }
    }

    /// The parquet shards of a hub dataset's split, in order.
    public func datasetFiles(_ name: String, config: String, split: String) throws -> [URL] {
        try run("dataset", name) { hub, progress in
            try await hub.datasetSplit(name, config: config, split: split, progress: progress)
        }
    }

    /// The parquet shards of a hub dataset's split when the cache holds them (nothing is downloaded), else nil.
    public func cachedDatasetFiles(_ name: String, config: String, split: String) throws -> [URL]? {
        try run("dataset", name, offline: true) { hub, progress in
            do { return try await hub.datasetSplit(name, config: config, split: split, progress: progress) } catch HubError.notCached {
                return nil
            }
        }
    }

    private func run<T: Sendable>(_ flag: String, _ name: String, offline: Bool = false,
                                  _ body: @escaping @Sendable (Hub, @escaping @Sendable (HubProgress) -> Void) async throws -> T) throws -> T {
        let token = token
        let display = DownloadDisplay()
        let outcome = Mutex<Result<T, Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                var settings = try HubSettings(token: token)
                settings.offline = settings.offline || offline
                let hub = Hub(settings: settings)
                let value = try await body(hub) { display.show($0) }
                outcome.withLock { $0 = .success(value) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        display.end()
        do { return try outcome.withLock { $0! }.get() } catch {
            throw ValidationError("--\(flag) \(name): \(error)")
        }
    }
}

/// One line per file on standard error: rewritten in place as the bytes arrive on a terminal, written once when
/// the file is complete elsewhere.
private final class DownloadDisplay: Sendable {
    private let state = Mutex<(file: String, shown: Double)>(("", -1))
    private let terminal = isatty(2) == 1

    func show(_ p: HubProgress) {
        let fraction = p.totalBytes.map { $0 > 0 ? Double(p.bytes) / Double($0) : 1 } ?? 0
        let total = p.totalBytes.map { " of \(size($0))" } ?? ""
        let line = "Downloading \(p.repository) \(p.file) [\(p.fileNumber)/\(p.fileCount)]: \(size(p.bytes))\(total)"
        state.withLock { state in
            if state.file != p.file { state = (p.file, -1) }
            if terminal {
                // Redrawn at most every tenth of a percent.
                guard p.finished || fraction - state.shown >= 0.001 else { return }
                state.shown = fraction
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (p.finished ? " done\n" : "")).utf8))
            } else if p.finished {
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
            if p.finished { state = ("", -1) }
        }
    }

    /// Ends a line left open by a download that failed.
    func end() {
        state.withLock { state in
            if terminal && state.shown >= 0 && !state.file.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) }
            state = ("", -1)
        }
    }
}

private func size(_ bytes: Int64) -> String {
    let value = Double(bytes)
    return value >= 1e9 ? String(format: "%.2f GB", value / 1e9) : value >= 1e6 ? String(format: "%.1f MB", value / 1e6)
        : value >= 1e3 ? String(format: "%.1f kB", value / 1e3) : "\(bytes) B"
}
