import AlbertMoE
import ArgumentParser


public struct AlbertMoECommand: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        commandName: "albertmoe",
        abstract: "Command-line tools for AlbertMoE: ALBERT models with Mixture-of-Experts feed-forward layers.",
        subcommands: [Train.self, Embed.self, Bench.self, Tokenize.self, TrainTokenizer.self])
}
