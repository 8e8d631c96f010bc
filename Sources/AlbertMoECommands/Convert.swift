import AlbertMoE
import ArgumentParser
import Foundation

/// `albertmoe convert`: writes a model directory's weights in the other format, beside the ones it holds; a directory
/// without config.json (the Python package's) gets one too, made from its weights and the size flags.
public struct Convert: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        abstract: "Write a model directory's weights as model.safetensors or as PyTorch's pytorch_model.bin.")

    @Option(help: ArgumentHelp("A model directory: config.json with model.safetensors or pytorch_model.bin, or the Python "
                               + "package's pytorch_model.bin without config.json (then config.json is written too)."))
    var model: String
    @Option(help: "The format to write: safetensors (from pytorch_model.bin) or pytorch (from model.safetensors).")
    var to: ModelDirectory.WeightsFormat
    @OptionGroup(title: "Model") var sizes: ModelArguments

    public func run() throws {
        let directory = URL(fileURLWithPath: model)
        let written: URL
        do {
            if !ModelDirectory.hasConfig(directory) {
                let notices = try ModelDirectory.writeReferenceConfig(in: directory, sizes: sizes.loadOptions.sizes)
                notices.forEach { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
                print("wrote \(directory.appendingPathComponent(ModelDirectory.configFile).path)")
            }
            written = try ModelDirectory.convertWeights(in: directory, to: to)
        } catch {
            throw ValidationError("--model \(model): \(error)")
        }
        print("wrote \(written.path)")
    }
}

extension ModelDirectory.WeightsFormat: ExpressibleByArgument {}
