import Foundation

/// A harness: feeds one input's bytes to a parser and exercises what it parsed. Errors of the parser's own
/// type are its answer to bad bytes; a crash, a trap, a leak, a hang or an error of another type is a finding.
typealias Harness = @Sendable (Data) -> Void

/// Every harness, by the name that FUZZ_HARNESS gives.
let harnesses: [String: Harness] = [
    "safetensors": fuzzSafetensors,
    "pytorch": fuzzPyTorch,
    "config": fuzzConfig,
    "json": fuzzJSON,
    "tokenizer": fuzzTokenizerJSON,
    "tokenizer-files": fuzzTokenizerFiles,
    "sentencepiece": fuzzSentencePiece,
    "text-corpus": fuzzTextCorpus,
    "parquet": fuzzParquet,
    "arrow": fuzzArrow,
    "save-to-disk": fuzzSaveToDisk,
    "server-request": fuzzServerRequest,
]

/// Runs `body`: an error of type `E` is the parser's answer, an error of any other type stops the run.
func expecting<E: Error>(_ expected: E.Type, _ body: () throws -> Void) {
    do { try body() } catch is E {} catch {
        fatalError("an error of type \(String(reflecting: type(of: error))) where \(E.self) was expected: \(error)")
    }
}

/// A folder of this process's own, under the temporary directory, for harnesses that read files; emptied before
/// each input.
var scratchFolder: URL { FileManager.default.temporaryDirectory.appendingPathComponent("albertmoe-fuzz-\(getpid())") }

/// Empties the scratch folder and writes `files` (relative path, contents) into it; returns the folder.
func writeScratch(_ files: [(String, Data)]) -> URL {
    let manager = FileManager.default
    try? manager.createDirectory(at: scratchFolder, withIntermediateDirectories: true)
    for item in (try? manager.contentsOfDirectory(atPath: scratchFolder.path)) ?? [] {
        try? manager.removeItem(at: scratchFolder.appendingPathComponent(item))
    }
    for (name, contents) in files {
        let url = scratchFolder.appendingPathComponent(name)
        try? manager.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        guard (try? contents.write(to: url)) != nil else { fatalError("cannot write \(url.path)") }
    }
    return scratchFolder
}

/// Splits an input into its first byte (a harness's choices) and the rest.
func choice(_ data: Data) -> (UInt8, Data) {
    guard let first = data.first else { return (0, Data()) }
    return (first, data.dropFirst())
}
