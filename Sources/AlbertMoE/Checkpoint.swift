import Foundation
import Layers
import Tokenizers

/// A model directory in the Hugging Face layout: `config.json` (the config keys plus "architectures" and
/// "model_type") and `model.safetensors` or PyTorch's `pytorch_model.bin` (keys = state-dict names).
public enum ModelDirectory {
    public static let configFile = "config.json"
    public static let weightsFile = "model.safetensors"
    public static let pytorchWeightsFile = "pytorch_model.bin"

    /// The two files a directory's weights may be in.
    public enum WeightsFormat: String, CaseIterable, Sendable {
        case safetensors, pytorch

        /// The file name of the format in a model directory.
        public var fileName: String { self == .safetensors ? ModelDirectory.weightsFile : ModelDirectory.pytorchWeightsFile }
    }

    /// Writes the config and the weights. Each file is written atomically (a temporary file, then a rename), so
    /// an interrupted save never leaves a damaged model behind.
    public static func save(_ model: Module, config: AlbertMoEConfig, architecture: String, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let tensors = Dictionary(model.namedParameters(), uniquingKeysWith: { a, _ in a })
        try Safetensors.write(tensors, metadata: ["format": "pt"], to: directory.appendingPathComponent(weightsFile))
        try config.jsonData(architecture: architecture).write(to: directory.appendingPathComponent(configFile), options: .atomic)
    }

    /// The config and the architecture named in config.json.
    public static func readConfig(_ directory: URL) throws -> (AlbertMoEConfig, architecture: String?) {
        let url = directory.appendingPathComponent(configFile)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw AlbertMoEError.badFile(path: directory.path, reason: "holds no \(configFile): not a model directory")
        }
        let config = try AlbertMoEConfig.load(from: url)
        let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        return (config, (object?["architectures"] as? [String])?.first)
    }

    /// The weights file of a directory: model.safetensors, else pytorch_model.bin.
    public static func weightsURL(in directory: URL) throws -> URL {
        for format in WeightsFormat.allCases {
            let url = directory.appendingPathComponent(format.fileName)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        throw AlbertMoEError.badFile(path: directory.path, reason: "holds no \(weightsFile) or \(pytorchWeightsFile)")
    }

    /// The weights as Float32 tensors by name (F16 and BF16 are upcast), from the file `weightsURL(in:)` names.
    public static func readWeights(_ directory: URL) throws -> [String: Tensor] {
        try readWeightsFile(try weightsURL(in: directory))
    }

    /// The float tensors of a weights file of either format; integer tensors are an error naming them.
    static func readWeightsFile(_ url: URL) throws -> [String: Tensor] {
        if url.lastPathComponent == pytorchWeightsFile { return try PyTorchFile.read(url) }
        let file = try SafetensorsFile.read(url)
        let ints = file.tensors.filter { if case .int = $0.value { return true } else { return false } }.keys.sorted()
        guard ints.isEmpty else {
            throw AlbertMoEError.badFile(path: url.path, reason: "tensors \(ints.joined(separator: ", ")) are not floating point")
        }
        return file.floatTensors
    }

    /// Writes the weights of a model directory (one with config.json) in `format`, from the file of the other
    /// format, atomically; returns the file written. Every tensor is kept: floats as float32, integers as int64.
    @discardableResult
    public static func convertWeights(in directory: URL, to format: WeightsFormat) throws -> URL {
        _ = try readConfig(directory)
        let source = directory.appendingPathComponent(format == .safetensors ? pytorchWeightsFile : weightsFile)
        guard FileManager.default.fileExists(atPath: source.path) else {
            throw AlbertMoEError.badFile(path: directory.path, reason: "holds no \(source.lastPathComponent) to convert to \(format.fileName)")
        }
        let target = directory.appendingPathComponent(format.fileName)
        let values = format == .safetensors ? try PyTorchFile.readAll(source) : try SafetensorsFile.read(source).tensors
        var floats: [String: Tensor] = [:], ints: [String: IntTensor] = [:]
        for (name, value) in values {
            switch value {
            case .float(let t): floats[name] = t
            case .int(let t): ints[name] = t
            }
        }
        switch format {
        case .safetensors: try Safetensors.write(floats, ints: ints, metadata: ["format": "pt"], to: target)
        case .pytorch: try PyTorchFile.write(floats, ints: ints, to: target)
        }
        return target
    }

    /// Loads weights into a model, strictly, adapting the encoder prefix: a checkpoint may hold the encoder
    /// with or without "albert.", whichever the model does not use. A mismatch names `file`, where they were read.
    /// A tensor holding NaN or infinity is an error naming it (such a model computes no numbers).
    static func load(_ weights: [String: Tensor], into model: Module, encoderPrefixed: Bool, file: URL) throws {
        for name in weights.keys.sorted() {
            guard let i = weights[name]!.firstNonFiniteIndex else { continue }
            let t = weights[name]!
            throw AlbertMoEError.badFile(path: file.path, reason: "tensor \(name) \(t.shape) holds \(t.pointer[i]) at element \(i): "
                                         + "the weights must be finite numbers")
        }
        let encoderNames = ["embeddings.", "shared_layer."]
        var adapted: [String: Tensor] = [:]
        for (name, t) in weights {
            var key = name
            if encoderPrefixed && encoderNames.contains(where: { name.hasPrefix($0) }) { key = "albert." + name }
            if !encoderPrefixed && name.hasPrefix("albert.") { key = String(name.dropFirst("albert.".count)) }
            adapted[key] = t
        }
        do { try model.loadStateDict(adapted) } catch let error as AlbertMoEError {
            guard case let .invalidValue(field, reason) = error else { throw error }
            throw AlbertMoEError.badFile(path: file.path, reason: "\(field) \(reason)")
        }
    }
}

extension AlbertLMModel {
    /// The architecture name written to config.json.
    public var architecture: String { objective == .causal ? "AlbertForCausalLM" : "AlbertForMaskedLM" }

    /// Saves config.json and model.safetensors into `directory` (created if needed).
    public func save(to directory: URL) throws {
        try ModelDirectory.save(self, config: config, architecture: architecture, to: directory)
    }
}

extension ModelDirectory {
    /// A language model of the directory's config (or, without config.json, of the config its weights and
    /// `options.sizes` give), with its weights; `notice` receives what the caller should tell the user.
    static func loadLM<Model: AlbertLMModel>(_ contents: ModelContents, directory: URL, options: ModelLoadOptions,
                                            notice: (String) -> Void, _ make: (AlbertMoEConfig) -> Model) throws -> Model {
        contents.notices.forEach(notice)
        let model = make(contents.config)
        if contents.fromReference, let architecture = contents.architecture, architecture != model.architecture {
            throw AlbertMoEError.badFile(path: contents.weightsFile.path, reason: "holds the weights of \(architecture), not of "
                                         + "\(model.architecture)")
        }
        if model.objective == .causal && (contents.fromReference || options.bidirectional) {
            notice(causalNotice(directory, bidirectional: options.bidirectional))
        }
        try load(contents.weights, into: model, encoderPrefixed: true, file: contents.weightsFile)
        return model
    }

    /// The notice for a causal model the Python package trained (it attends to future tokens there).
    static func causalNotice(_ directory: URL, bidirectional: Bool) -> String {
        bidirectional
            ? "\(directory.path): a causal model run without its causal mask, as the Python package runs it; generation "
              + "recomputes the whole sequence for each token"
            : "\(directory.path) holds a causal model trained by the Python package, whose causal model attends to future tokens; "
              + "it runs here with the future masked, as this package's causal models do, and will not answer as it did "
              + "there: --attention bidirectional runs it as it was trained"
    }

    /// A model directory's model, whichever it holds.
    public enum LoadedModel {
        case causal(AlbertForCausalLM)
        case masked(AlbertForMaskedLM)
        case encoder(SentenceAlbert)
    }

    /// Loads the model a directory holds (the architecture its config.json names or, without one, its weights' head),
    /// reading its weights once.
    public static func loadModel(from directory: URL, options: ModelLoadOptions = ModelLoadOptions(),
                                 notice: (String) -> Void = { _ in }) throws -> LoadedModel {
        let contents = try contents(of: directory, options: options)
        switch contents.architecture {
        case "AlbertForCausalLM":
            return .causal(try loadLM(contents, directory: directory, options: options, notice: notice) {
                AlbertForCausalLM($0, bidirectional: options.bidirectional)
            })
        case "AlbertForMaskedLM":
            return .masked(try loadLM(contents, directory: directory, options: options, notice: notice) { AlbertForMaskedLM($0) })
        case "SentenceAlbert":
            return .encoder(try SentenceAlbert.load(contents, directory: directory, options: options, notice: notice))
        case let other:
            throw AlbertMoEError.badFile(path: directory.appendingPathComponent(configFile).path,
                                         reason: "names the architecture \(other ?? "(none)"); "
                                             + "expected AlbertForCausalLM, AlbertForMaskedLM or SentenceAlbert")
        }
    }
}

extension AlbertForCausalLM {
    /// Loads a causal model saved by this package, or by the Python package (pytorch_model.bin without config.json;
    /// `options.sizes` gives what its weights do not); `options.bidirectional` runs it without the causal mask.
    public static func load(from directory: URL, options: ModelLoadOptions = ModelLoadOptions(),
                            notice: (String) -> Void = { _ in }) throws -> AlbertForCausalLM {
        let contents = try ModelDirectory.contents(of: directory, options: options)
        return try ModelDirectory.loadLM(contents, directory: directory, options: options, notice: notice) {
            AlbertForCausalLM($0, bidirectional: options.bidirectional)
        }
    }
}

extension AlbertForMaskedLM {
    /// Loads a masked model saved by this package, or by the Python package (pytorch_model.bin without config.json;
    /// `options.sizes` gives what its weights do not).
    public static func load(from directory: URL, options: ModelLoadOptions = ModelLoadOptions(),
                            notice: (String) -> Void = { _ in }) throws -> AlbertForMaskedLM {
        let contents = try ModelDirectory.contents(of: directory, options: options)
        return try ModelDirectory.loadLM(contents, directory: directory, options: options, notice: notice) { AlbertForMaskedLM($0) }
    }
}

extension SentenceAlbert {
    /// The head weights of a language-model checkpoint, which a sentence encoder leaves aside.
    static let headNames: Set<String> = ["lm_head_transform.weight", "lm_head_decoder.weight",
                                         "mlm_head_transform.weight", "mlm_head_decoder.weight", "norm.weight"]

    /// Loads the encoder of any model directory (a bare encoder, or a causal or masked LM whose head is
    /// left aside), this package's or the Python package's (see `AlbertForCausalLM.load(from:options:notice:)`).
    /// The tokenizer in the directory (tokenizer.json or a SentencePiece model), if any, is loaded with it; a causal
    /// model's encoder keeps its causal attention unless `options.bidirectional`.
    public static func load(from directory: URL, options: ModelLoadOptions = ModelLoadOptions(),
                            notice: (String) -> Void = { _ in }) throws -> SentenceAlbert {
        try load(try ModelDirectory.contents(of: directory, options: options), directory: directory, options: options,
                 notice: notice)
    }

    static func load(_ contents: ModelContents, directory: URL, options: ModelLoadOptions,
                     notice: (String) -> Void) throws -> SentenceAlbert {
        contents.notices.forEach(notice)
        let causal = contents.architecture == "AlbertForCausalLM"
        if causal && (contents.fromReference || options.bidirectional) {
            notice(ModelDirectory.causalNotice(directory, bidirectional: options.bidirectional))
        }
        let model = SentenceAlbert(contents.config, causal: causal && !options.bidirectional)
        let fm = FileManager.default
        if fm.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path)
            || ((try? fm.contentsOfDirectory(atPath: directory.path)) ?? []).contains(where: { $0.hasSuffix(".model") }) {
            do { model.tokenizer = try Tokenizer.load(from: directory) } catch {
                throw AlbertMoEError.badFile(path: directory.path, reason: "the tokenizer cannot be loaded: \(error)")
            }
        }
        let encoder = contents.weights.filter { !headNames.contains($0.key) }
        try ModelDirectory.load(encoder, into: model, encoderPrefixed: false, file: contents.weightsFile)
        return model
    }

    /// Saves the bare encoder (names without "albert.").
    public func save(to directory: URL) throws {
        try ModelDirectory.save(self, config: config, architecture: "SentenceAlbert", to: directory)
    }
}

extension Optimizer {
    /// Writes the optimizer's state (moments, step counts, hyper-parameters) as a safetensors file, atomically.
    public func saveState(to url: URL) throws {
        let state = stateDict()
        try Safetensors.write(state.tensors, metadata: state.metadata, to: url)
    }

    /// Restores a state written by `saveState(to:)`, so training resumes exactly where it stopped.
    public func loadState(from url: URL) throws {
        let file = try SafetensorsFile.read(url)
        try loadStateDict(OptimizerState(tensors: file.floatTensors, metadata: file.metadata))
    }
}
