import Foundation

/// Where the hub is and how to reach it, read from the environment as huggingface_hub reads it.
public struct HubSettings: Sendable {
    /// `$HF_ENDPOINT`, default https://huggingface.co.
    public var endpoint: URL
    /// Sent as `Authorization: Bearer` to the endpoint: `$HF_TOKEN`, else the token file huggingface_hub's login
    /// writes (`$HF_TOKEN_PATH`, else `$HF_HOME/token`).
    public var token: String?
    /// `$HF_HUB_OFFLINE` (1, true, yes, on): never touch the network.
    public var offline: Bool
    public var cache: HubCache
    /// Seconds to wait for a connection, and for the next bytes of an answer: `$HF_HUB_DOWNLOAD_TIMEOUT`, default 10.
    public var timeout: Double

    /// The settings of `environment`; a `token` given here (a command's --hub_token) wins over the environment's.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, token: String? = nil) throws {
        let endpointText = nonEmpty(environment["HF_ENDPOINT"]).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
            ?? "https://huggingface.co"
        guard let endpoint = URL(string: endpointText), ["http", "https"].contains(endpoint.scheme?.lowercased() ?? ""),
              endpoint.host != nil else {
            throw HubError.invalidSetting(name: "HF_ENDPOINT", reason: "'\(endpointText)' is not an http(s) address")
        }
        self.endpoint = endpoint
        self.token = nonEmpty(token) ?? nonEmpty(environment["HF_TOKEN"]) ?? nonEmpty(environment["HUGGING_FACE_HUB_TOKEN"])
            ?? Self.tokenFile(environment)
        offline = ["1", "true", "yes", "on"].contains(environment["HF_HUB_OFFLINE"]?.lowercased() ?? "")
        cache = HubCache(environment: environment)
        let timeoutText = environment["HF_HUB_DOWNLOAD_TIMEOUT"] ?? "10"
        guard let timeout = Double(timeoutText), timeout > 0, timeout <= 86400 else {
            throw HubError.invalidSetting(name: "HF_HUB_DOWNLOAD_TIMEOUT", reason: "'\(timeoutText)' is not a number of seconds")
        }
        self.timeout = timeout
    }

    private static func tokenFile(_ environment: [String: String]) -> String? {
        let path = nonEmpty(environment["HF_TOKEN_PATH"]).map { expandingTilde($0, environment) }
            ?? huggingFaceHome(environment).appendingPathComponent("token").path
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              ((attributes[.size] as? NSNumber)?.intValue ?? Int.max) <= 4096,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        return nonEmpty(String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// Finds tokenizers, models and dataset splits named by their hub id: in the cache when it holds them (then the
/// network is not touched), else downloaded into the cache (unless offline).
public struct Hub: Sendable {
    public let settings: HubSettings

    public init(settings: HubSettings) { self.settings = settings }

    /// The snapshot holding the tokenizer files of model repository `name` (tokenizer.json, tokenizer_config.json,
    /// special_tokens_map.json, added_tokens.json, SentencePiece models, vocab and merges files, those that exist).
    public func tokenizer(_ name: String, revision: String = "main",
                          progress: @escaping @Sendable (HubProgress) -> Void = { _ in }) async throws -> HubSnapshot {
        try await resolve(HubRepository(name, kind: .model), revision: revision, selection: .tokenizer(of: name), progress: progress)
    }

    /// The snapshot holding model repository `name`'s config.json, its weights (model.safetensors, else
    /// pytorch_model.bin) and its tokenizer files.
    public func model(_ name: String, revision: String = "main",
                      progress: @escaping @Sendable (HubProgress) -> Void = { _ in }) async throws -> HubSnapshot {
        try await resolve(HubRepository(name, kind: .model), revision: revision, selection: .model(name), progress: progress)
    }

    /// The parquet shards of `split` of configuration `config` of dataset `name`, in order. A dataset whose `main`
    /// has no such shards (one made by a loading script) is read from the hub's parquet conversion,
    /// `refs/convert/parquet`, as the datasets library reads it.
    public func datasetSplit(_ name: String, config: String, split: String, revision: String = "main",
                             progress: @escaping @Sendable (HubProgress) -> Void = { _ in }) async throws -> [URL] {
        let repository = try HubRepository(name, kind: .dataset)
        let selection = FileSelection.dataset(name, config: config, split: split)
        let snapshot: HubSnapshot
        do {
            snapshot = try await resolve(repository, revision: revision, selection: selection, progress: progress)
        } catch let error as HubError where revision == "main" && error.isAbsence {
            do {
                snapshot = try await resolve(repository, revision: Self.parquetConversion, selection: selection, progress: progress)
            } catch let conversionError as HubError where conversionError.isAbsence {
                throw error
            }
        }
        return parquetShards(snapshot.files, config: config, split: split).map { snapshot.directory.appendingPathComponent($0) }
    }

    /// The revision where the hub keeps its parquet conversion of a dataset.
    public static let parquetConversion = "refs/convert/parquet"

    /// The cached snapshot when it serves; else (online) the revision's files fetched into the cache under the
    /// name as given, as huggingface_hub would store them; when the hub cannot be reached, a cached snapshot that
    /// can serve at all.
    func resolve(_ repository: HubRepository, revision: String, selection: FileSelection,
                 progress: @escaping @Sendable (HubProgress) -> Void) async throws -> HubSnapshot {
        try checkRevision(revision)
        let cache = settings.cache
        let cached = try cache.snapshot(of: repository, revision: revision)
        if let cached, selection.isComplete(cached.files) { return cached }
        if settings.offline {
            if let cached, selection.isUsable(cached.files) { return cached }
            throw HubError.notCached(what: selection.what.prefix(1).uppercased() + selection.what.dropFirst(),
                                     lookedIn: cache.whereLooked(for: repository, revision: revision))
        }
        let client = HubClient(endpoint: settings.endpoint, token: settings.token, cache: cache, timeout: settings.timeout)
        do {
            let (commit, files) = try await client.revisionInfo(repository, revision: revision)
            let present = Set(HubSnapshot(repository: repository, commit: commit,
                                          directory: cache.folder(of: repository).appendingPathComponent("snapshots/\(commit)")).files)
            let wanted = try selection.choose("\(repository)", files)
            for (number, file) in wanted.enumerated() where !present.contains(file) {
                try await client.download(repository, commit: commit, file: file, number: number + 1, count: wanted.count,
                                          progress: progress)
            }
            if revision != commit { try cache.writeRef(repository, revision: revision, commit: commit) }
            await client.shutdown()
            return HubSnapshot(repository: repository, commit: commit,
                               directory: cache.folder(of: repository).appendingPathComponent("snapshots").appendingPathComponent(commit))
        } catch {
            await client.shutdown()
            // Without the network, what the cache holds serves when it can (as huggingface_hub falls back to it).
            if case .network? = error as? HubError, let cached, selection.isUsable(cached.files) { return cached }
            throw error
        }
    }
}
