import AlbertMoE
import Foundation
import Tokenizers

/// What kind of model a server holds, which decides the endpoints it can answer.
public enum ModelKind: String, Sendable {
    /// A causal language model (AlbertForCausalLM): completions and embeddings.
    case causal
    /// A masked language model (AlbertForMaskedLM): mask filling and embeddings.
    case masked
    /// A bare sentence encoder (SentenceAlbert): embeddings only.
    case encoder

    /// "causal language model", "masked language model" or "sentence encoder".
    public var summary: String {
        switch self {
        case .causal: return "causal language model"
        case .masked: return "masked language model"
        case .encoder: return "sentence encoder"
        }
    }
}

/// A model directory loaded for serving: the model, its tokenizer and a sentence encoder sharing the model's
/// encoder weights.
/// Unchecked Sendable: the models and the tokenizer are used by `ModelWorker` jobs only, which run one at a time.
final class ServedModel: @unchecked Sendable {
    let kind: ModelKind
    let config: AlbertMoEConfig
    let tokenizer: Tokenizer
    let causal: AlbertForCausalLM?
    let masked: AlbertForMaskedLM?
    let encoder: SentenceAlbert

    /// Loads `directory` (config.json and model.safetensors, or the Python package's pytorch_model.bin without
    /// config.json; tokenizer.json or a SentencePiece model), in evaluation mode.
    init(directory: URL, options: ModelLoadOptions, notice: (String) -> Void) throws {
        tokenizer = try Tokenizer.load(from: directory)
        switch try ModelDirectory.loadModel(from: directory, options: options, notice: notice) {
        case .causal(let model):
            (kind, causal, masked) = (.causal, model, nil)
            encoder = SentenceAlbert(encoder: model.albert)
        case .masked(let model):
            (kind, causal, masked) = (.masked, nil, model)
            encoder = SentenceAlbert(encoder: model.albert)
        case .encoder(let model):
            (kind, causal, masked) = (.encoder, nil, nil)
            encoder = model
        }
        config = encoder.config
        encoder.tokenizer = tokenizer
        // Dropout off once and for all: the encoder shares its modules with the language model.
        causal?.eval()
        masked?.eval()
        encoder.eval()
    }
}
