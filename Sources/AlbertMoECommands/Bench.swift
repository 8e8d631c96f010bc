import AlbertMoE
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Training, forward and generation throughput with the protocol of the reference's bench_ref.py, so the two
/// can be run side by side: one JSON line.
public struct Bench: ParsableCommand {
    public init() {}
    public static let configuration = CommandConfiguration(
        abstract: "Measure training, forward and generation throughput (the reference benchmark's protocol).")

    @Option(help: "small or base.") var config: String = "small"
    @Option(help: "Timed steps per measurement (the median is reported).") var steps: Int = 5
    @Option(help: "Kernel threads (default: ALBERTMOE_NUM_THREADS or the library's default).") var threads: Int?
    @Option(help: "New tokens in the generation measurement.") var generateTokens: Int = 256
    @Option(help: "Measure only this: train, forward, generate (full recomputation) or generate-cached.")
    var only: String?

    public func validate() throws {
        guard ["small", "base"].contains(config) else { throw ValidationError("--config must be small or base, got \(config)") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard generateTokens >= 1 else { throw ValidationError("--generate-tokens must be at least 1") }
        if let only, !Self.parts.contains(only) {
            throw ValidationError("--only must be one of \(Self.parts.joined(separator: ", ")), got \(only)")
        }
    }

    static let parts = ["train", "forward", "generate", "generate-cached"]

    public func run() throws {
        if let threads { Kernels.threads = threads }
        let (c, batch, seq): (AlbertMoEConfig, Int, Int) = config == "small"
            ? (AlbertMoEConfig(vocabSize: 8000, embeddingSize: 128, hiddenSize: 256, numHiddenLayers: 4, numAttentionHeads: 4,
                               intermediateSize: 1024, maxPositionEmbeddings: 512, numExperts: 8, topKExperts: 2), 16, 128)
            : (AlbertMoEConfig(vocabSize: 30000, embeddingSize: 128, hiddenSize: 768, numHiddenLayers: 12, numAttentionHeads: 12,
                               intermediateSize: 3072, maxPositionEmbeddings: 512, numExperts: 8, topKExperts: 2), 8, 512)
        let model = AlbertForCausalLM(c, seed: 0)
        let optimizer = ChillAdam(model.parameters())
        var gen = SeededGenerator(seed: 0)
        let ids = IntTensor((0..<(batch * seq)).map { _ in Int32(gen.nextInt(below: c.vocabSize)) }, shape: [batch, seq])
        let mask = IntTensor.full([batch, seq], 1)

        func median(_ f: () throws -> Void) rethrows -> Double {
            for _ in 0..<2 { try f() }
            var times: [Double] = []
            for _ in 0..<steps {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try f()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            return times.sorted()[times.count / 2]
        }
        func wanted(_ part: String) -> Bool { only == nil || only == part }
        var result: [(String, Any)] = [
            ("engine", "albertmoe-swift (\(Kernels.isa))"), ("config", config), ("threads", Kernels.threads),
            ("batch", batch), ("seq", seq), ("params", model.parameterCount),
        ]
        if wanted("train") {
            model.train()
            let train = try median {
                optimizer.zeroGrad()
                try model(ids, attentionMask: mask, labels: ids).loss.backward()
                optimizer.step()
            }
            result += [("train_tokens_per_s", round1(Double(batch * seq) / train)), ("train_peak_rss_mb", round1(peakResidentMB()))]
        }
        model.eval()
        if wanted("forward") {
            let forward = try median { _ = try withNoGrad { try model(ids, attentionMask: mask) } }
            result.append(("forward_tokens_per_s", round1(Double(batch * seq) / forward)))
        }

        // Greedy decoding the way the reference generates: the whole sequence again for every new token.
        let prompt = Array(ids.scalars[0..<32])
        var uncached: [Int32]? = nil
        if wanted("generate") {
            var sequence = prompt
            let t0 = DispatchTime.now().uptimeNanoseconds
            try withNoGrad {
                for _ in 0..<generateTokens {
                    let logits = try model(IntTensor(sequence, shape: [1, sequence.count])).logits     // [1, T, V]
                    let last = logits.slice(axis: 1, (sequence.count - 1)..<sequence.count).reshaped([c.vocabSize])
                    sequence.append(last.topk(1).indices.scalars[0])
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            result.append(("generate_tokens_per_s", round1(Double(generateTokens) / seconds)))
            uncached = Array(sequence[32...])
        }
        // The same greedy decoding with the key/value cache: the prompt once, then one position per token.
        if wanted("generate-cached") {
            let t1 = DispatchTime.now().uptimeNanoseconds
            let cachedTokens = try model.generate(prompt, options: .greedy(maxNewTokens: generateTokens), truncateFromLeft: true)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t1) / 1e9
            if let uncached, cachedTokens != uncached {
                throw ValidationError("cached decoding produced other tokens than full recomputation")
            }
            result.append(("generate_cached_tokens_per_s", round1(Double(cachedTokens.count) / seconds)))
        }
        result.append(("peak_rss_mb", round1(peakResidentMB())))
        if let bad = result.first(where: { ($0.1 as? Double).map { !$0.isFinite } ?? false }) {
            throw ValidationError("\(bad.0) is \(bad.1), which JSON cannot hold: the timer measured no time")
        }
        print("{" + result.map { "\"\($0.0)\": \(jsonValue($0.1))" }.joined(separator: ", ") + "}")
    }

    private func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }
    private func jsonValue(_ v: Any) -> String { v is String ? "\"\(v)\"" : "\(v)" }
}

/// The process's peak resident memory so far, in MB.
func peakResidentMB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024   // kilobytes on Linux
}
