/// Which files of a repository one use needs: what to fetch from the hub's file list, and when a cached
/// snapshot is enough.
struct FileSelection: Sendable {
    /// What is wanted, in words for messages ("the tokenizer of albert-base-v2").
    let what: String
    /// The files to fetch among the repository's; throws `HubError.missing` when it lacks what is needed.
    let choose: @Sendable (_ repository: String, _ files: [String]) throws -> [String]
    /// Whether a cached snapshot holding `files` serves without asking the hub.
    let isComplete: @Sendable ([String]) -> Bool
    /// Whether a cached snapshot holding `files` can serve at all (offline, with nothing better to be had).
    let isUsable: @Sendable ([String]) -> Bool

    static let tokenizerNames: Set<String> = [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
        "vocab.txt", "merges.txt", "vocab.json",
    ]
    static let weightNames = ["model.safetensors", "pytorch_model.bin"]

    /// The tokenizer files at the top of a repository (a SentencePiece model is any `*.model`).
    static func tokenizerFiles(_ files: [String]) -> [String] {
        files.filter { !$0.contains("/") && (tokenizerNames.contains($0) || $0.hasSuffix(".model")) }
    }

    /// Whether the files hold a tokenizer this package reads: tokenizer.json or a SentencePiece model.
    static func hasReadableTokenizer(_ files: [String]) -> Bool {
        files.contains { $0 == "tokenizer.json" || (!$0.contains("/") && $0.hasSuffix(".model")) }
    }

    /// tokenizer.json, its companion files and SentencePiece models, those that exist.
    static func tokenizer(of name: String) -> FileSelection {
        FileSelection(
            what: "the tokenizer of \(name)",
            choose: { repository, files in
                guard hasReadableTokenizer(files) else {
                    throw HubError.missing(repository: repository, reason: "no tokenizer.json or SentencePiece .model file "
                                           + "(tokenizer files there: \(list(tokenizerFiles(files))))")
                }
                return tokenizerFiles(files)
            },
            isComplete: hasReadableTokenizer, isUsable: hasReadableTokenizer)
    }

    /// config.json, the weights (model.safetensors, else pytorch_model.bin) and the tokenizer files.
    static func model(_ name: String) -> FileSelection {
        @Sendable func usable(_ files: [String]) -> Bool {
            files.contains("config.json") && weightNames.contains(where: files.contains)
        }
        return FileSelection(
            what: "the model \(name)",
            choose: { repository, files in
                guard files.contains("config.json") else {
                    throw HubError.missing(repository: repository, reason: "no config.json: not a model repository")
                }
                guard let weights = weightNames.first(where: files.contains) else {
                    let sharded = files.contains { $0.hasSuffix(".index.json") }
                    throw HubError.missing(repository: repository, reason: "no model.safetensors or pytorch_model.bin"
                                           + (sharded ? " (weights sharded into several files are not read by this package)" : ""))
                }
                return ["config.json", weights] + tokenizerFiles(files)
            },
            isComplete: { usable($0) && hasReadableTokenizer($0) }, isUsable: usable)
    }

    /// The parquet shards of one split of one configuration of a dataset.
    static func dataset(_ name: String, config: String, split: String) -> FileSelection {
        @Sendable func shards(_ files: [String]) -> [String] { parquetShards(files, config: config, split: split) }
        return FileSelection(
            what: "split '\(split)' of configuration '\(config)' of dataset \(name)",
            choose: { repository, files in
                let chosen = shards(files)
                guard chosen.isEmpty else { return chosen }
                let layout = parquetLayout(files)
                guard !layout.isEmpty else {
                    throw HubError.missing(repository: repository, reason: "no parquet files (this package reads datasets "
                                           + "stored as parquet, as the hub's parquet converter and push_to_hub write them)")
                }
                let configs = Dictionary(grouping: layout, by: \.config).sorted { $0.key < $1.key }.map { config, entries in
                    "\(config): " + Set(entries.map(\.split)).sorted().joined(separator: ", ")
                }
                throw HubError.missing(repository: repository, reason: "no split '\(split)' in configuration '\(config)' "
                                       + "(configurations and their splits: \(configs.joined(separator: "; ")))")
            },
            isComplete: { !shards($0).isEmpty }, isUsable: { !shards($0).isEmpty })
    }
}

/// Where a parquet file belongs: `CONFIG/SPLIT-*.parquet` (and `CONFIG/SPLIT.parquet`), `CONFIG/SPLIT/*.parquet`
/// (the hub's parquet converter; `partial-SPLIT` too), and `data/SPLIT-*.parquet` or top-level files for the
/// `default` configuration (push_to_hub).
func parquetLayout(_ files: [String]) -> [(config: String, split: String, file: String)] {
    files.compactMap { file in
        guard file.hasSuffix(".parquet") else { return nil }
        let parts = file.split(separator: "/").map(String.init)
        func splitName(_ name: String) -> String {
            String(name.dropLast(".parquet".count).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)[0])
        }
        switch parts.count {
        case 1: return ("default", splitName(parts[0]), file)
        case 2: return (parts[0] == "data" ? "default" : parts[0], splitName(parts[1]), file)
        case 3:
            let split = parts[1].hasPrefix("partial-") ? String(parts[1].dropFirst("partial-".count)) : parts[1]
            return (parts[0] == "data" ? "default" : parts[0], split, file)
        default: return nil
        }
    }
}

/// The shards of one split, sorted by path.
func parquetShards(_ files: [String], config: String, split: String) -> [String] {
    parquetLayout(files).filter { $0.config == config && $0.split == split }.map(\.file).sorted()
}

private func list(_ files: [String]) -> String { files.isEmpty ? "none" : files.joined(separator: ", ") }
