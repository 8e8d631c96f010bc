import AlbertMoECommands
import ArgumentParser

/// `albertmoe`: every command under one executable. The HTTP server lives here, not in `AlbertMoECommands`, so
/// that the training executables and users of `TrainingArguments` do not build the HTTP stack.
struct AlbertMoECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "albertmoe",
        abstract: "Command-line tools for AlbertMoE: ALBERT models with Mixture-of-Experts feed-forward layers.",
        subcommands: [Train.self, Embed.self, Serve.self, Bench.self, LoadBench.self, Tokenize.self, TrainTokenizer.self, Convert.self])
}
