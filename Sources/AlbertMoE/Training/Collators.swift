import Foundation
import Tokenizers

// Collators turn a list of token-id sequences into one padded batch, as the Hugging Face
// `DataCollatorForLanguageModeling` does (right padding to the longest sequence of the batch).

/// A padded batch of sequences. All tensors are [B, T], T being the longest sequence of the batch.
public struct Batch: Equatable {
    /// Token ids, padded on the right.
    public let inputIDs: IntTensor
    /// 1 on real tokens, 0 on padding.
    public let attentionMask: IntTensor
    /// The targets: a token id where a loss is taken, -100 where none is.
    public let labels: IntTensor
    /// How many positions have attention 1 (real tokens).
    public var tokenCount: Int
    /// How many sequences the batch holds (B).
    public var sequenceCount: Int

    /// The label of positions where no loss is taken (PyTorch's `ignore_index`).
    public static let ignoredLabel: Int32 = -100

    /// A batch from its tensors (all of the same [B, T] shape); the counts are computed.
    public init(inputIDs: IntTensor, attentionMask: IntTensor, labels: IntTensor) {
        precondition(inputIDs.rank == 2 && inputIDs.shape == attentionMask.shape && inputIDs.shape == labels.shape,
                     "Batch: input ids \(inputIDs.shape), attention mask \(attentionMask.shape) and labels \(labels.shape) must have one [B, T] shape")
        self.inputIDs = inputIDs
        self.attentionMask = attentionMask
        self.labels = labels
        tokenCount = attentionMask.scalars.reduce(0) { $0 + Int($1) }
        sequenceCount = inputIDs.shape[0]
    }
}

/// Turns token-id sequences into a batch. `generator` is the only source of randomness, so a batch is a
/// function of its sequences and the generator's seed.
public protocol Collator {
    func collate(_ sequences: [[Int32]], generator: inout SeededGenerator) -> Batch
}

/// Right-pads `sequences` to the longest one: the ids [B*T] (padded with `padID`), the attention mask, and T.
func padRight(_ sequences: [[Int32]], padID: Int32) -> (ids: [Int32], mask: [Int32], length: Int) {
    precondition(!sequences.isEmpty, "a batch needs at least one sequence")
    let length = sequences.map(\.count).max()!
    var ids = [Int32](repeating: padID, count: sequences.count * length)
    var mask = [Int32](repeating: 0, count: sequences.count * length)
    for (row, sequence) in sequences.enumerated() {
        for (column, id) in sequence.enumerated() {
            ids[row * length + column] = id
            mask[row * length + column] = 1
        }
    }
    return (ids, mask, length)
}

/// Causal language modelling (`DataCollatorForLanguageModeling(mlm=False)`): labels are the input ids,
/// not shifted (the model shifts them), with -100 on padding positions.
///
/// Unlike the Hugging Face collator, which sets -100 wherever the id equals the pad id, only padding
/// positions are ignored: when the pad token is the eos token, real eos tokens are still learned.
public struct CausalLMCollator: Collator {
    /// The id used for padding.
    public var padID: Int32

    public init(padID: Int32) { self.padID = padID }

    public func collate(_ sequences: [[Int32]], generator: inout SeededGenerator) -> Batch {
        let (ids, mask, length) = padRight(sequences, padID: padID)
        let labels = zip(ids, mask).map { $1 == 1 ? $0 : Batch.ignoredLabel }
        let shape = [sequences.count, length]
        return Batch(inputIDs: IntTensor(ids, shape: shape), attentionMask: IntTensor(mask, shape: shape),
                     labels: IntTensor(labels, shape: shape))
    }
}

/// Masked language modelling (`DataCollatorForLanguageModeling(mlm=True)`): each token that is neither
/// special nor padding is selected with `probability`; a selected token becomes the mask token 80% of the time,
/// a uniformly random token of the vocabulary 10% of the time, and stays as it is 10% of the time. Labels hold
/// the original id at selected positions and -100 everywhere else.
public struct MaskedLMCollator: Collator {
    /// The id used for padding.
    public var padID: Int32
    /// The mask token's id.
    public var maskID: Int32
    /// Random replacements are drawn from [0, vocabSize).
    public var vocabSize: Int
    /// Ids never selected ([CLS], [SEP], [PAD], ...).
    public var specialIDs: Set<Int32>
    /// The chance that a token is selected.
    public var probability: Double

    public init(padID: Int32, maskID: Int32, vocabSize: Int, specialIDs: Set<Int32>, probability: Double = 0.15) {
        precondition(vocabSize > 0, "MaskedLMCollator: vocabSize must be positive")
        precondition((0...1).contains(probability), "MaskedLMCollator: probability must be in [0, 1], got \(probability)")
        self.padID = padID
        self.maskID = maskID
        self.vocabSize = vocabSize
        self.specialIDs = specialIDs
        self.probability = probability
    }

    /// The collator for a tokenizer: its mask token, its special tokens (and the pad token) as `specialIDs`, its
    /// whole vocabulary (added tokens included) for random replacements. Throws when it has no mask token.
    public init(tokenizer: Tokenizer, probability: Double = 0.15) throws {
        guard let mask = SpecialTokenIDs.maskID(for: tokenizer) else {
            throw AlbertMoEError.invalidValue(field: "tokenizer",
                                              reason: "no mask token ([MASK] or <mask>): masked language modelling needs one")
        }
        let pad = SpecialTokenIDs.padID(for: tokenizer)
        self.init(padID: pad, maskID: mask, vocabSize: tokenizer.vocabSize,
                  specialIDs: SpecialTokenIDs.specialIDs(for: tokenizer).union([pad, mask]), probability: probability)
    }

    public func collate(_ sequences: [[Int32]], generator: inout SeededGenerator) -> Batch {
        var (ids, mask, length) = padRight(sequences, padID: padID)
        var labels = [Int32](repeating: Batch.ignoredLabel, count: ids.count)
        for i in ids.indices where mask[i] == 1 && !specialIDs.contains(ids[i]) {
            guard uniform(&generator) < probability else { continue }
            labels[i] = ids[i]
            let action = uniform(&generator)
            if action < 0.8 {
                ids[i] = maskID
            } else if action < 0.9 {
                ids[i] = Int32(generator.nextInt(below: vocabSize))
            }  // else: kept as it is
        }
        let shape = [sequences.count, length]
        return Batch(inputIDs: IntTensor(ids, shape: shape), attentionMask: IntTensor(mask, shape: shape),
                     labels: IntTensor(labels, shape: shape))
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    private func uniform(_ generator: inout SeededGenerator) -> Double {
        Double(generator.next() >> 11) * 0x1p-53
    }
}

/// Finds a tokenizer's special tokens by their usual names, as the Hugging Face tokenizers name them.
public enum SpecialTokenIDs {
    /// The pad token: [PAD] or <pad>; else the eos token (like `tokenizer.pad_token = tokenizer.eos_token`);
    /// else [SEP]; else 0.
    public static func padID(for tokenizer: Tokenizer) -> Int32 {
        if let pad = firstID(of: ["[PAD]", "<pad>"], in: tokenizer) { return pad }
        return eosID(for: tokenizer) ?? firstID(of: ["[SEP]"], in: tokenizer) ?? 0
    }

    /// The end-of-text token: </s>, <|endoftext|>, <eos>, <|eos|> or <|end_of_text|>, if the tokenizer has one.
    public static func eosID(for tokenizer: Tokenizer) -> Int32? {
        firstID(of: ["</s>", "<|endoftext|>", "<eos>", "<|eos|>", "<|end_of_text|>"], in: tokenizer)
    }

    /// The mask token: the special added token `AlbertForMaskedLM.maskToken(of:)` finds, else a vocabulary
    /// entry [MASK] or <mask> (SentencePiece models have no added tokens).
    public static func maskID(for tokenizer: Tokenizer) -> Int32? {
        if let token = AlbertForMaskedLM.maskToken(of: tokenizer) { return Int32(token.id) }
        return firstID(of: ["[MASK]", "<mask>"], in: tokenizer)
    }

    /// The ids never masked (HF's `all_special_ids`): the special added tokens, plus whichever of the usual
    /// special names ([CLS], [SEP], [PAD], [UNK], [MASK], <s>, </s>, <pad>, <unk>, <mask>, <|endoftext|>) the
    /// vocabulary holds.
    public static func specialIDs(for tokenizer: Tokenizer) -> Set<Int32> {
        var ids = Set(tokenizer.addedTokens.filter(\.special).map { Int32($0.id) })
        let usual = ["[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "<s>", "</s>", "<pad>", "<unk>", "<mask>", "<|endoftext|>"]
        for name in usual { if let id = tokenizer.tokenToId(name) { ids.insert(Int32(id)) } }
        return ids
    }

    private static func firstID(of names: [String], in tokenizer: Tokenizer) -> Int32? {
        for name in names { if let id = tokenizer.tokenToId(name) { return Int32(id) } }
        return nil
    }
}
