import AlbertMoE
import ArgumentParser
import Foundation

/// `train-clm`: the successor of the Python package's train_clm script.
public struct TrainCLM: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(commandName: "train-clm",
        abstract: "Pretrain a causal AlbertMoE language model on a local text corpus.")
    public func run() throws {}
}

/// `train-mlm`: the successor of the Python package's train_mlm script.
public struct TrainMLM: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(commandName: "train-mlm",
        abstract: "Pretrain a masked AlbertMoE language model on a local text corpus.")
    public func run() throws {}
}
