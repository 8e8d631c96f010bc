import Foundation
import Tensors

/// What a job does with a model, for estimating the memory it needs (`AlbertMoEConfig.memoryEstimate(for:)`).
public struct ModelWorkload: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// Reading a model's weights: the file's tensors and the model's, side by side while they are copied.
        case load
        /// Loading, then forward passes without gradients.
        case inference
        /// Loading, then forward passes that keep a key/value cache of every pass through the shared layer.
        case generation
        /// A new model, with a gradient and `optimizerStates` tensors (2 for Adam's moments) per weight, and the
        /// activations every pass keeps for the backward.
        case training(optimizerStates: Int)
    }

    public var kind: Kind
    /// Sequences in a batch (decoded side by side, for generation).
    public var batchSize: Int
    /// Tokens in a sequence (the prompt and the new tokens together, for generation); never more than the model's
    /// max_position_embeddings.
    public var sequenceLength: Int
    /// Whether the language-model head computes the vocabulary's logits for every position.
    public var logits: Bool
    /// How messages name the batch size and the sequence length (the flags or the fields that set them).
    public var batchField: String
    public var lengthField: String

    public init(kind: Kind, batchSize: Int, sequenceLength: Int, logits: Bool = true, batchField: String = "batch_size",
                lengthField: String = "max_length") {
        self.kind = kind
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.logits = logits
        self.batchField = batchField
        self.lengthField = lengthField
    }

    /// Loading the weights only (converting, or before the job is known).
    public static let load = ModelWorkload(kind: .load, batchSize: 0, sequenceLength: 0, logits: false)

    /// Forward passes over `batchSize` sequences of `sequenceLength` tokens.
    public static func inference(batchSize: Int, sequenceLength: Int, logits: Bool = true,
                                 batchField: String = "batch_size", lengthField: String = "max_length") -> ModelWorkload {
        ModelWorkload(kind: .inference, batchSize: batchSize, sequenceLength: sequenceLength, logits: logits,
                      batchField: batchField, lengthField: lengthField)
    }

    /// Generating for `sequences` sequences of `tokens` tokens each (prompt and new tokens).
    public static func generation(sequences: Int = 1, tokens: Int, tokensField: String = "max_length") -> ModelWorkload {
        ModelWorkload(kind: .generation, batchSize: sequences, sequenceLength: tokens, batchField: "sequences",
                      lengthField: tokensField)
    }

    /// Training on batches of `batchSize` sequences of `sequenceLength` tokens.
    public static func training(batchSize: Int, sequenceLength: Int, optimizerStates: Int) -> ModelWorkload {
        ModelWorkload(kind: .training(optimizerStates: optimizerStates), batchSize: batchSize, sequenceLength: sequenceLength)
    }
}

/// An estimate of the memory a job needs, by part, each with the sizes it is the product of.
public struct MemoryEstimate: Equatable, Sendable {
    public struct Part: Equatable, Sendable {
        /// What the memory holds ("word embeddings", "key/value caches").
        public var name: String
        /// The sizes whose product (with `multiplier`) is the part's number of floats, by field name.
        public var factors: [Factor]
        public var multiplier: Int
        public var bytes: Int
    }
    public struct Factor: Equatable, Sendable {
        public var field: String
        public var value: Int
        /// The value of a typical model (the defaults), which says which factor is out of the ordinary.
        var typical: Int
    }

    public var parts: [Part]
    /// The peak, in bytes.
    public var bytes: Int

    /// The part that needs the most memory.
    public var largest: Part { parts.max { $0.bytes < $1.bytes }! }

    /// The field to blame for the largest part: its factor furthest above a typical model's.
    public var field: String {
        largest.factors.max { Double($0.value) / Double($0.typical) < Double($1.value) / Double($1.typical) }?.field ?? "hidden_size"
    }
}

/// The memory this process can take: the kernel's MemAvailable, or what the cgroup's limit leaves when that is lower.
public struct AvailableMemory: Equatable, Sendable {
    public var bytes: Int
    /// Where the figure comes from, for messages.
    public var source: String

    public init(bytes: Int, source: String) {
        self.bytes = bytes
        self.source = source
    }

    /// Read from /proc/meminfo and /sys/fs/cgroup (memory.max, memory.current and memory.stat); nil when neither can
    /// be read.
    public static func current() -> AvailableMemory? {
        func read(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }
        return parse(meminfo: read("/proc/meminfo"), cgroupMax: read("/sys/fs/cgroup/memory.max"),
                     cgroupCurrent: read("/sys/fs/cgroup/memory.current"), cgroupStat: read("/sys/fs/cgroup/memory.stat"))
    }

    /// The lower of MemAvailable (`meminfo`, in kB) and what the cgroup's limit leaves (`cgroupMax` is "max" when there
    /// is no limit): the limit less the usage, not counting the page cache (the `file` line of `cgroupStat`), which the
    /// kernel reclaims when memory is needed.
    public static func parse(meminfo: String?, cgroupMax: String?, cgroupCurrent: String?,
                             cgroupStat: String? = nil) -> AvailableMemory? {
        func value(_ text: String?, key: String) -> Int? {
            text?.split(separator: "\n").first { $0.hasPrefix(key) }.flatMap { line in
                line.dropFirst(key.count).split(separator: " ").first.flatMap { Int($0) }
            }
        }
        func number(_ text: String?) -> Int? { text.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
        var best = value(meminfo, key: "MemAvailable:").map {
            AvailableMemory(bytes: $0 * 1024, source: "MemAvailable in /proc/meminfo")
        }
        if let limit = number(cgroupMax) {
            let used = max((number(cgroupCurrent) ?? 0) - (value(cgroupStat, key: "file ") ?? 0), 0)
            let left = max(limit - used, 0)
            if best.map({ left < $0.bytes }) ?? true {
                best = AvailableMemory(bytes: left, source: "the cgroup limit /sys/fs/cgroup/memory.max, \(limit) bytes with "
                                       + "\(used) in use")
            }
        }
        return best
    }
}

extension AlbertMoEConfig {
    /// The memory `workload` needs with this config, estimated from the sizes of the weights (and their gradients
    /// and optimizer state when training), the activations of a batch, the logits, and the key/value caches of
    /// generation. Validate the config first: the arithmetic throws, naming a field, when a product overflows.
    public func memoryEstimate(for workload: ModelWorkload) throws -> MemoryEstimate {
        let d = AlbertMoEConfig()
        let V = MemoryEstimate.Factor(field: "vocab_size", value: vocabSize, typical: d.vocabSize)
        let E = MemoryEstimate.Factor(field: "embedding_size", value: embeddingSize, typical: d.embeddingSize)
        let H = MemoryEstimate.Factor(field: "hidden_size", value: hiddenSize, typical: d.hiddenSize)
        let I = MemoryEstimate.Factor(field: "intermediate_size", value: intermediateSize, typical: d.intermediateSize)
        let X = MemoryEstimate.Factor(field: "num_experts", value: numExperts, typical: d.numExperts)
        let K = MemoryEstimate.Factor(field: "top_k_experts", value: topKExperts, typical: d.topKExperts)
        let L = MemoryEstimate.Factor(field: "num_hidden_layers", value: numHiddenLayers, typical: d.numHiddenLayers)
        let P = MemoryEstimate.Factor(field: "max_position_embeddings", value: maxPositionEmbeddings,
                                      typical: d.maxPositionEmbeddings)
        let T2 = MemoryEstimate.Factor(field: "type_vocab_size", value: typeVocabSize, typical: d.typeVocabSize)
        let B = MemoryEstimate.Factor(field: workload.batchField, value: max(workload.batchSize, 0), typical: 8)
        let T = MemoryEstimate.Factor(field: workload.lengthField, value: min(max(workload.sequenceLength, 0), maxPositionEmbeddings),
                                      typical: 512)

        func part(_ name: String, _ factors: [MemoryEstimate.Factor], times multiplier: Int = 1) throws -> MemoryEstimate.Part {
            do {
                let floats = try Shape.elementCount(factors.map(\.value) + [multiplier, MemoryLayout<Float>.stride])
                return MemoryEstimate.Part(name: name, factors: factors, multiplier: multiplier, bytes: floats)
            } catch {
                let largest = factors.max { $0.value < $1.value }!
                throw AlbertMoEError.invalidValue(field: largest.field, reason: "\(largest.value) makes the \(name) ("
                    + factors.map { "\($0.field) \($0.value)" }.joined(separator: " × ") + ") too large to count")
            }
        }
        // The weights, each held `copies` times.
        func weights(_ suffix: String, copies: Int) throws -> [MemoryEstimate.Part] {
            var specs: [(String, [MemoryEstimate.Factor], Int)] = [
                ("word embeddings", [V, E], 1), ("experts", [X, I, H], 2), ("attention", [H, H], 4),
                ("token type embeddings", [T2, E], 1), ("other weights", [H, E], 3),
            ]
            if positionEmbeddingType == "absolute" { specs.append(("position embeddings", [P, H], 1)) }
            if workload.logits { specs.append(("language-model head", [E, V], 1)) }
            return try specs.map { try part($0.0 + suffix, $0.1, times: $0.2 * copies) }
        }
        var parts: [MemoryEstimate.Part]
        let peak: Int
        switch workload.kind {
        case .load:
            parts = try weights(" (read, and copied into the model)", copies: 2)
            peak = try sum(parts.map(\.bytes))
        case .inference, .generation:
            let model = try weights("", copies: 1)
            // One pass at a time: the residual stream, q, k, v and the attention's output, and the experts' hidden layer.
            var run = [try part("activations", [B, T, H], times: 8), try part("expert activations", [B, T, K, I], times: 2)]
            if workload.logits { run.append(try part("logits", [B, T, V], times: 2)) }
            if workload.kind == .generation { run.append(try part("key/value caches", [L, B, T, H], times: 2)) }
            parts = model + run
            // The file's weights are read while the model's own are there; the job runs after they are freed.
            let weightBytes = try sum(model.map(\.bytes))
            peak = try sum([weightBytes, max(weightBytes, try sum(run.map(\.bytes)))])
        case .training(let states):
            parts = try weights(" with gradients and optimizer state", copies: 2 + max(states, 0))
            // Every pass through the shared layer keeps what its backward needs (the fused attention keeps no scores).
            parts += [try part("activations kept for the backward", [L, B, T, H], times: 12),
                      try part("expert activations kept for the backward", [L, B, T, K, I], times: 2),
                      try part("logits and their gradient", [B, T, V], times: 3)]
            peak = try sum(parts.map(\.bytes))
        }
        return MemoryEstimate(parts: parts, bytes: peak)
    }

    /// Throws an `AlbertMoEError.invalidValue` naming the field that makes `workload` need more memory than is
    /// `available` (by default what the machine has now; no check when that cannot be read), with the estimate.
    public func checkMemory(for workload: ModelWorkload, available: AvailableMemory? = .current()) throws {
        let estimate = try memoryEstimate(for: workload)
        guard let available, estimate.bytes > available.bytes else { return }
        let largest = estimate.largest
        let formula = largest.factors.map { "\($0.field) \($0.value)" } + (largest.multiplier > 1 ? ["\(largest.multiplier)"] : [])
        throw AlbertMoEError.invalidValue(field: estimate.field, reason: "the model and its job need an estimated "
            + "\(Self.bytesText(estimate.bytes)) of memory, most of it for the \(largest.name) (\(formula.joined(separator: " × ")) "
            + "× 4 bytes = \(Self.bytesText(largest.bytes))), but \(Self.bytesText(available.bytes)) is available "
            + "(\(available.source))")
    }

    /// A byte count for people: 1.5 GiB, 12.0 MiB, 512 bytes.
    static func bytesText(_ bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit + 1 < units.count { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f", value) + " " + units[unit]
    }
}

/// The sum of byte counts, throwing instead of trapping when it overflows.
private func sum(_ values: [Int]) throws -> Int {
    try values.reduce(0) { total, value in
        let (s, overflow) = total.addingReportingOverflow(value)
        guard !overflow else { throw AlbertMoEError.cannotContinue("the memory estimate is larger than an Int can count") }
        return s
    }
}
