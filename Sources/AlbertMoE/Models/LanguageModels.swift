import Foundation
import Layers
import Tokenizers

/// What a language model produced.
public struct LMOutput {
    /// The training loss, ce + aux_loss_coefficient * aux (+ router z-loss coefficient * z); nil without labels.
    public let loss: Tensor!
    /// The cross-entropy part of the loss; nil without labels. (`clmLoss` / `mlmLoss` name it per model.)
    public let ceLoss: Tensor!
    /// [B, T, V].
    public let logits: Tensor
    /// [B, T, H].
    public let hiddenStates: Tensor
    public let auxLoss: Tensor
    public let routerZLoss: Tensor?
    public let expertLoad: [Float]
    public let droppedSlots: Int

    public var clmLoss: Tensor! { ceLoss }
    public var mlmLoss: Tensor! { ceLoss }
}

/// What a language model learns to predict.
public enum LanguageModelingObjective: String {
    /// Each position predicts the next token.
    case causal = "clm"
    /// Masked positions predict their own tokens.
    case masked = "mlm"
}

/// A language model as a training run sees it: its objective and config, its loss on labelled batches, the
/// positions that loss is taken over, and how it is saved.
public protocol LanguageModel: Module {
    var config: AlbertMoEConfig { get }
    var objective: LanguageModelingObjective { get }
    /// The architecture named in config.json.
    var architecture: String { get }
    /// The cross-entropy targets for each position, flattened [B*T]; -100 where nothing is predicted.
    func targets(_ labels: IntTensor) -> IntTensor
    /// ids [B, T] -> logits and, with labels [B, T], the loss over `targets(labels)`. Throws, naming the field,
    /// on ids, masks or labels that do not fit the config.
    func callAsFunction(_ ids: IntTensor, attentionMask: IntTensor?, tokenTypeIDs: IntTensor?, labels: IntTensor?) throws -> LMOutput
    /// Writes config.json and model.safetensors into `directory` (created if needed).
    func save(to directory: URL) throws
}

extension LanguageModel {
    /// The number of positions the loss is taken over: the targets that are not -100.
    public func predictedTokenCount(_ labels: IntTensor) -> Int {
        targets(labels).scalars.reduce(0) { $0 + ($1 != -100 ? 1 : 0) }
    }
}

/// The encoder with a language-model head: Linear H -> E (no bias), GELU, RMSNorm(E), Linear E -> V (no bias).
/// The head is not tied to the word embeddings.
public class AlbertLMModel: Module, LanguageModel {
    public let config: AlbertMoEConfig
    public let objective: LanguageModelingObjective
    public let albert: ALBERT
    public let headTransform: Linear
    public let norm: RMSNorm
    public let headDecoder: Linear
    /// "lm" (causal) or "mlm" (masked): the head's state-dict prefix.
    let headPrefix: String

    init(_ config: AlbertMoEConfig, objective: LanguageModelingObjective, headPrefix: String, causal: Bool, seed: UInt64) {
        self.config = config
        self.objective = objective
        self.headPrefix = headPrefix
        albert = ALBERT(config, causal: causal, seed: seed)
        var generator = SeededGenerator(seed: seed ^ 0x5EED_0F_4EAD)
        headTransform = Linear(config.hiddenSize, config.embeddingSize, bias: false, generator: &generator)
        norm = RMSNorm(config.embeddingSize)
        headDecoder = Linear(config.embeddingSize, config.vocabSize, bias: false, generator: &generator)
    }

    public override var children: [(String, Module)] {
        [("albert", albert), ("\(headPrefix)_head_transform", headTransform), ("norm", norm),
         ("\(headPrefix)_head_decoder", headDecoder)]
    }

    /// Hidden states [..., H] -> logits [..., V].
    public func logits(_ hidden: Tensor) -> Tensor { headDecoder(norm(headTransform(hidden).gelu())) }

    /// The cross-entropy targets for each position, flattened [B*T]; -100 where nothing is predicted.
    public func targets(_ labels: IntTensor) -> IntTensor { labels.reshaped([-1]) }

    public func callAsFunction(_ ids: IntTensor, attentionMask: IntTensor? = nil, tokenTypeIDs: IntTensor? = nil,
                               labels: IntTensor? = nil) throws -> LMOutput {
        let v = config.vocabSize
        if let labels {
            guard labels.shape == ids.shape else {
                throw AlbertMoEError.invalidValue(field: "labels", reason: "labels of shape \(labels.shape) for input ids of shape \(ids.shape)")
            }
            if let bad = labels.scalars.first(where: { $0 != -100 && ($0 < 0 || Int($0) >= v) }) {
                throw AlbertMoEError.invalidValue(field: "labels", reason: "label \(bad) is outside the vocabulary [0, \(v)) and is not -100")
            }
        }
        let enc = try albert(ids, attentionMask: attentionMask, tokenTypeIDs: tokenTypeIDs)
        let logits = self.logits(enc.hiddenStates)                        // [B, T, V]
        var loss: Tensor? = nil, ce: Tensor? = nil
        if let labels {
            ce = crossEntropy(logits.reshaped([-1, v]), targets(labels))
            var total = ce! + enc.auxLoss * config.auxLossCoefficient
            if let z = enc.routerZLoss { total = total + z * config.routerZLossCoefficient }
            loss = total
        }
        return LMOutput(loss: loss, ceLoss: ce, logits: logits, hiddenStates: enc.hiddenStates, auxLoss: enc.auxLoss,
                        routerZLoss: enc.routerZLoss, expertLoad: enc.expertLoad, droppedSlots: enc.droppedSlots)
    }
}

/// Causal language model: future keys are masked and position t predicts label t + 1.
public final class AlbertForCausalLM: AlbertLMModel {
    /// `bidirectional`: no causal mask, as the Python package's causal model runs (it sees the token it predicts);
    /// for models it trained. Generation then recomputes the whole sequence per token (no key/value cache).
    public init(_ config: AlbertMoEConfig, seed: UInt64 = 0, bidirectional: Bool = false) {
        super.init(config, objective: .causal, headPrefix: "lm", causal: !bidirectional, seed: seed)
    }

    /// Shifted targets: position t is scored against label t + 1; the last position predicts nothing.
    /// Equivalent to slicing logits[:, :-1] and labels[:, 1:], without copying the logits.
    public override func targets(_ labels: IntTensor) -> IntTensor {
        let (b, t) = (labels.shape[0], labels.shape[1])
        var shifted = [Int32](repeating: -100, count: b * t)
        for i in 0..<b {
            for j in 0..<(t - 1) { shifted[i * t + j] = labels.scalars[i * t + j + 1] }
        }
        return IntTensor(shifted, shape: [b * t])
    }
}

/// Masked language model: bidirectional attention; labels are -100 except at masked positions.
public final class AlbertForMaskedLM: AlbertLMModel {
    public init(_ config: AlbertMoEConfig, seed: UInt64 = 0) {
        super.init(config, objective: .masked, headPrefix: "mlm", causal: false, seed: seed)
    }
}

/// Sentence embeddings: the encoder's final hidden states averaged over the attention mask, L2-normalised.
/// Its state dict is the bare encoder's (no `albert.` prefix).
public final class SentenceAlbert: Module {
    public let albert: ALBERT
    /// The tokenizer `encode(_:batchSize:)` uses (loaded with the model when its directory has one).
    public var tokenizer: Tokenizer?
    /// Longer texts are cut to this many tokens.
    public var maxSequenceLength = 128

    /// `causal`: the encoder of a causal language model keeps seeing only the past, as it was trained.
    public init(_ config: AlbertMoEConfig, causal: Bool = false, seed: UInt64 = 0) {
        albert = ALBERT(config, causal: causal, seed: seed)
    }
    public init(encoder: ALBERT) { albert = encoder }

    public override var children: [(String, Module)] { [("", albert)] }   // the bare encoder's names
    public var config: AlbertMoEConfig { albert.config }

    /// ids [B, T], attentionMask [B, T] -> [B, H], each row of unit length. Throws on ids or a mask that do not fit.
    public func callAsFunction(_ ids: IntTensor, attentionMask: IntTensor) throws -> Tensor {
        let h = try albert(ids, attentionMask: attentionMask).hiddenStates   // [B, T, H]
        return SentenceAlbert.meanPool(h, attentionMask: attentionMask)
    }

    /// The embeddings of `sentences`, in their order: texts of similar length are batched together and each batch
    /// is padded to its longest text, with attention mask 0 on the padding (dropout off, no graph). A text that
    /// gives no token at all embeds as the zero vector. Throws when the model has no tokenizer or a text cannot be
    /// encoded, or `batchSize` is below 1.
    public func encode(_ sentences: [String], batchSize: Int = 32) throws -> [[Float]] {
        guard batchSize >= 1 else {
            throw AlbertMoEError.invalidValue(field: "batch_size", reason: "the batch size must be at least 1, got \(batchSize)")
        }
        let encoded = try sentences.map(inputIDs)
        let order = encoded.indices.sorted { encoded[$0].count < encoded[$1].count }
        let pad = Int32(config.padTokenID)
        var out = [[Float]](repeating: [], count: sentences.count)
        let wasTraining = isTraining
        eval()
        defer { train(wasTraining) }
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let rows = Array(order[start..<min(start + batchSize, order.count)])
            let t = max(1, rows.map { encoded[$0].count }.max()!)
            var ids = [Int32](repeating: pad, count: rows.count * t), mask = [Int32](repeating: 0, count: rows.count * t)
            for (r, i) in rows.enumerated() {
                for (j, id) in encoded[i].enumerated() {
                    ids[r * t + j] = id
                    mask[r * t + j] = 1
                }
            }
            let embeddings = try withNoGrad {
                try self(IntTensor(ids, shape: [rows.count, t]), attentionMask: IntTensor(mask, shape: [rows.count, t]))
            }.scalars                                                                           // [rows, H]
            let h = config.hiddenSize
            for (r, i) in rows.enumerated() { out[i] = Array(embeddings[r * h ..< (r + 1) * h]) }
        }
        return out
    }

    /// The token ids `encode` runs for `text`: the tokenizer's encoding with its special tokens and without the
    /// padding its file may declare, cut to `maxSequenceLength` (and, with an absolute position table,
    /// max_position_embeddings) as Python's `truncation=True, max_length=N` cuts it.
    public func inputIDs(_ text: String) throws -> [Int32] {
        guard let tokenizer else {
            throw AlbertMoEError.invalidValue(field: "tokenizer", reason: "this SentenceAlbert has none: load it from a model "
                                              + "directory holding tokenizer.json, or set `tokenizer`")
        }
        let limit = config.positionEmbeddingType == "absolute" ? min(maxSequenceLength, config.maxPositionEmbeddings) : maxSequenceLength
        return try tokenizer.encodeUnpadded(text, maxLength: limit).ids.map(Int32.init)
    }

    /// Mean over the tokens where the mask is 1, then L2-normalised.
    public static func meanPool(_ hidden: Tensor, attentionMask: IntTensor) -> Tensor {
        let m = attentionMask.toFloat().unsqueezed(-1)                   // [B, T, 1]
        let pooled = (hidden * m).sum(axis: 1) / m.sum(axis: 1).clamp(min: 1e-9)   // [B, H]
        return pooled.normalized(axis: -1)
    }
}
