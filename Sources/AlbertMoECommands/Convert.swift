import AlbertMoE
import ArgumentParser
import Foundation

/// `albertmoe convert`: writes a model directory's weights in the other format, beside the ones it holds.
public struct Convert: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        abstract: "Write a model directory's weights as model.safetensors or as PyTorch's pytorch_model.bin.")

    @Option(help: "A model directory (config.json with model.safetensors or pytorch_model.bin).") var model: String
    @Option(help: "The format to write: safetensors (from pytorch_model.bin) or pytorch (from model.safetensors).")
    var to: ModelDirectory.WeightsFormat

    public func run() throws {
        let written: URL
        do { written = try ModelDirectory.convertWeights(in: URL(fileURLWithPath: model), to: to) } catch {
            throw ValidationError("--model \(model): \(error)")
        }
        print("wrote \(written.path)")
    }
}

extension ModelDirectory.WeightsFormat: ExpressibleByArgument {}
