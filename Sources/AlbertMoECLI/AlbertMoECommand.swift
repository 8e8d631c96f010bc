import AlbertMoE
import ArgumentParser

@main
struct AlbertMoECommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "albertmoe",
        abstract: "Train, evaluate and serve ALBERT models with Mixture-of-Experts feed-forward layers.",
        subcommands: [Bench.self])
}
