import Foundation
import XCTest
@testable import AlbertMoE

func tinyConfig(_ position: String = "rope", dropout: Float = 0) -> AlbertMoEConfig {
    AlbertMoEConfig(vocabSize: 50, embeddingSize: 8, hiddenSize: 16, numHiddenLayers: 2, numAttentionHeads: 2,
                    intermediateSize: 24, hiddenDropoutProb: dropout, attentionProbsDropoutProb: dropout,
                    maxPositionEmbeddings: 32, positionEmbeddingType: position, numExperts: 4, topKExperts: 2)
}

func ids(_ rows: [[Int32]]) -> IntTensor { IntTensor(rows.flatMap { $0 }, shape: [rows.count, rows[0].count]) }

func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
}

/// What the math promises, checked on small models.
final class BehaviourTests: XCTestCase {
    /// The models' entry points take user data: over random models and batches, ids, labels, masks, token types and
    /// lengths that do not fit the config are refused with an error naming the field (and a refused decoding step
    /// leaves the cache as it was), while the same batch without the fault runs.
    func testEntryPointsRefuseInputsThatDoNotFit() throws {
        var g = SeededGenerator(seed: 12)
        let faults = ["none", "id", "negative id", "label", "label shape", "mask shape", "token type", "token type shape",
                      "too long", "cache batch", "cache mask", "cache overflow"]
        for trial in 0..<72 {
            let fault = faults[trial % faults.count]
            let position = g.nextInt(below: 2) == 0 ? "rope" : "absolute"
            let v = 30 + g.nextInt(below: 170), context = 8 + g.nextInt(below: 56)
            var config = tinyConfig(position)
            (config.vocabSize, config.maxPositionEmbeddings) = (v, context)
            let b = 1 + g.nextInt(below: 4), t = 1 + g.nextInt(below: context)
            var tokens = (0..<(b * t)).map { _ in Int32(g.nextInt(below: v)) }
            var labels = tokens.map { g.nextInt(below: 3) == 0 ? -100 : $0 }
            var maskShape = [b, t], typeShape = [b, t], types = [Int32](repeating: 0, count: b * t)
            let at = g.nextInt(below: b * t)
            var expected: String? = nil
            switch fault {
            case "id": (tokens[at], expected) = (Int32(v + g.nextInt(below: 1000)), "input_ids")
            case "negative id": (tokens[at], expected) = (-1 - Int32(g.nextInt(below: 5)), "input_ids")
            case "label": (labels[at], expected) = (g.nextInt(below: 2) == 0 ? Int32(v) : -1, "labels")
            case "label shape": (labels, expected) = (labels + [0], "labels")
            case "mask shape": (maskShape, expected) = ([b, t + 1], "attention_mask")
            case "token type": (types[at], expected) = (2, "token_type_ids")
            case "token type shape": (typeShape, expected) = ([b * t, 1], "token_type_ids")
            default: break
            }
            let tag = "trial \(trial) (\(fault), \(position), V \(v), [\(b), \(t)] of \(context))"
            let model: AlbertLMModel = trial % 2 == 0 ? AlbertForCausalLM(config, seed: UInt64(trial)) : AlbertForMaskedLM(config, seed: UInt64(trial))
            func refused(_ field: String, _ body: () throws -> Void) {
                XCTAssertThrowsError(try body(), tag) { error in
                    XCTAssertEqual((error as? AlbertMoEError)?.field, field, "\(tag): \(error)")
                }
            }
            if fault.hasPrefix("cache") || fault == "too long" {
                let cache = KVCache(config: config, batch: b)
                let first = IntTensor(tokens, shape: [b, t])
                try withNoGrad { _ = try model.albert(first, cache: cache) }
                XCTAssertEqual(cache.count, t, tag)
                let extra = context - t + 1 + g.nextInt(below: 4)
                let next = IntTensor((0..<(b * extra)).map { _ in Int32(g.nextInt(below: v)) }, shape: [b, extra])
                withNoGrad {
                    switch fault {
                    case "cache batch":
                        refused("input_ids") { _ = try model.albert(IntTensor([Int32](repeating: 1, count: b + 1), shape: [b + 1, 1]), cache: cache) }
                    case "cache mask":
                        refused("input_ids") { _ = try model.albert(IntTensor(tokens, shape: [b, t]), attentionMask: IntTensor.full([b, t], 1), cache: cache) }
                    default:
                        refused("input_ids") { _ = try model.albert(next, cache: cache) }
                    }
                }
                XCTAssertEqual(cache.count, t, "\(tag): a refused step leaves the cache as it was")
                if fault == "too long" && position == "absolute" {
                    let long = IntTensor((0..<(b * (context + extra))).map { _ in Int32(g.nextInt(below: v)) }, shape: [b, context + extra])
                    refused("input_ids") { _ = try model(long) }
                }
                continue
            }
            let run = {
                try model(IntTensor(tokens, shape: [b, t]), attentionMask: IntTensor.full(maskShape, 1),
                          tokenTypeIDs: IntTensor(types, shape: typeShape),
                          labels: IntTensor(labels, shape: labels.count == b * t ? [b, t] : [b * t + 1]))
            }
            if let expected {
                refused(expected) { _ = try run() }
            } else {
                let out = try run()
                XCTAssertEqual(out.logits.shape, [b, t, v], tag)
                XCTAssertTrue(out.loss.item.isFinite || model.predictedTokenCount(IntTensor(labels, shape: [b, t])) == 0, tag)
            }
        }
    }

    func testCausalModelNeverSeesTheFuture() throws {
        for position in ["rope", "absolute"] {
            let model = AlbertForCausalLM(tinyConfig(position), seed: 3)
            model.eval()
            let a = ids([[5, 9, 12, 7, 30, 2, 44, 8]])
            let base = try withNoGrad { try model(a).logits }
            let v = base.shape[2]
            for t in [3, 6] {
                var changed = a.scalars
                changed[t] = (changed[t] + 11) % 50
                let other = try withNoGrad { try model(IntTensor(changed, shape: a.shape)).logits }
                let before = maxAbsDiff(base.slice(axis: 1, 0..<t), other.slice(axis: 1, 0..<t))
                XCTAssertEqual(before, 0, "\(position): changing token \(t) moved logits before it")
                let at = maxAbsDiff(base.slice(axis: 1, t..<(t + 1)), other.slice(axis: 1, t..<(t + 1)))
                XCTAssertGreaterThan(at, 1e-4, "\(position): changing token \(t) must change its own logits")
                _ = v
            }
        }
    }

    func testMaskedModelIsBidirectional() throws {
        let model = AlbertForMaskedLM(tinyConfig(), seed: 4)
        model.eval()
        let a = ids([[5, 9, 12, 7, 30, 2]])
        var changed = a.scalars
        changed[5] = 40
        let x = try withNoGrad { try model(a).logits }, y = try withNoGrad { try model(IntTensor(changed, shape: a.shape)).logits }
        XCTAssertGreaterThan(maxAbsDiff(x.slice(axis: 1, 0..<1), y.slice(axis: 1, 0..<1)), 1e-5)
    }

    func testPositionsAreUsed() throws {
        // Without positions, attention is permutation-equivariant; with RoPE or absolute positions it is not.
        for position in ["rope", "absolute"] {
            let model = AlbertForMaskedLM(tinyConfig(position), seed: 5)
            model.eval()
            let a: [Int32] = [5, 9, 12, 7, 30, 2]
            let perm = [3, 0, 5, 1, 4, 2]
            let b = perm.map { a[$0] }
            let ha = try withNoGrad { try model(IntTensor(a, shape: [1, 6])).hiddenStates }
            let hb = try withNoGrad { try model(IntTensor(b, shape: [1, 6])).hiddenStates }
            // Row i of hb against row perm[i] of ha.
            let gathered = ha.indexSelect(axis: 1, IntTensor(perm.map { Int32($0) }))
            XCTAssertGreaterThan(maxAbsDiff(gathered, hb), 1e-4, "\(position): outputs ignore token order")
        }
    }

    func testBalancedRoutingGivesAuxLossK() {
        var config = tinyConfig()
        config.hiddenSize = 4
        config.numAttentionHeads = 2
        config.numExperts = 4
        config.topKExperts = 2
        let moe = makeMoE(config)
        // Gate = identity: token (e_p + e_q) * 3 prefers experts p and q equally.
        let gate = moe.gate.weight
        for i in 0..<16 { gate.pointer[i] = i % 5 == 0 ? 1 : 0 }
        func tokens(_ pairs: [(Int, Int)]) -> Tensor {
            var v = [Float](repeating: 0, count: pairs.count * 4)
            for (j, (p, q)) in pairs.enumerated() { v[j * 4 + p] = 3; v[j * 4 + q] = 3 }
            return Tensor(v, shape: [1, pairs.count, 4])
        }
        let balanced = withNoGrad { moe(tokens([(0, 1), (2, 3), (0, 2), (1, 3)])) }
        XCTAssertEqual(balanced.auxLoss.item, 2, accuracy: 1e-5)
        XCTAssertEqual(balanced.expertLoad, [0.25, 0.25, 0.25, 0.25])
        let skewed = withNoGrad { moe(tokens([(0, 1), (0, 1), (0, 1), (0, 1)])) }
        XCTAssertGreaterThan(skewed.auxLoss.item, 2.5)
        XCTAssertEqual(skewed.expertLoad, [0.5, 0.5, 0, 0])
    }

    /// The grouped dispatch equals the plain definition: for each token, the weighted sum of its k experts.
    func testMoEMatchesPerTokenDefinition() {
        for k in [1, 2, 4] {
            var config = tinyConfig()
            config.topKExperts = k
            let moe = makeMoE(config)
            var g = SeededGenerator(seed: 8)
            let x = Tensor.normal([2, 5, 16], generator: &g)
            let out = withNoGrad { moe(x).output }
            withNoGrad {
                for n in 0..<10 {
                    let token = x.reshaped([10, 16]).slice(axis: 0, n..<(n + 1))              // [1, H]
                    let probs = moe.gate(token).softmax()
                    let (w, sel) = probs.topk(k)
                    let weights = w / w.sum()
                    var expected = Tensor.zeros([1, 16])
                    for s in 0..<k {
                        expected = expected + moe.experts[Int(sel.scalars[s])](token) * weights.scalars[s]
                    }
                    let got = out.reshaped([10, 16]).slice(axis: 0, n..<(n + 1))
                    XCTAssertLessThan(maxAbsDiff(got, expected), 1e-5, "k \(k) token \(n)")
                }
            }
        }
    }

    func testExpertCapacityDropsOverflow() {
        var config = tinyConfig()
        config.dropless = false
        config.expertCapacity = 1
        config.topKExperts = 1
        let moe = makeMoE(config)
        let x = Tensor.ones([1, 3, 16])          // three identical tokens: all pick the same expert
        let out = withNoGrad { moe(x) }
        XCTAssertEqual(out.droppedSlots, 2)
        let rows = out.output.reshaped([3, 16])
        XCTAssertGreaterThan(rows.slice(axis: 0, 0..<1).norm().item, 0)
        XCTAssertEqual(rows.slice(axis: 0, 1..<3).norm().item, 0, "overflow tokens skip the expert")
        config.capacityFactor = 2    // ceil(2 * 3 * 1 / 4) = 2 slots per expert
        let moe2 = makeMoE(config)
        XCTAssertEqual(withNoGrad { moe2(x) }.droppedSlots, 1)
    }

    func testRouterZLoss() throws {
        var config = tinyConfig()
        config.routerZLossCoefficient = 0.1
        let model = AlbertForMaskedLM(config, seed: 1)
        let a = ids([[5, 9, 12, 7]])
        let labels = ids([[-100, 9, -100, 7]])
        let o = try model(a, labels: labels)
        let z = try! XCTUnwrap(o.routerZLoss)
        XCTAssertGreaterThan(z.item, 0)
        XCTAssertEqual(o.loss.item, o.ceLoss.item + 0.01 * o.auxLoss.item + 0.1 * z.item, accuracy: 1e-5)
        XCTAssertNil(try AlbertForMaskedLM(tinyConfig(), seed: 1)(a).routerZLoss)
    }

    func testDropoutOnlyInTraining() throws {
        let model = AlbertForMaskedLM(tinyConfig(dropout: 0.3), seed: 6)
        let a = ids([[5, 9, 12, 7, 30, 2]])
        model.eval()
        let e1 = try withNoGrad { try model(a).logits }, e2 = try withNoGrad { try model(a).logits }
        XCTAssertEqual(e1.scalars, e2.scalars)
        model.train()
        let t1 = try withNoGrad { try model(a).logits }, t2 = try withNoGrad { try model(a).logits }
        XCTAssertGreaterThan(maxAbsDiff(t1, t2), 1e-4)
    }

    /// Every module a model holds (found by reflection) is reached by eval(): none is left in training mode.
    func testEvalReachesEveryModule() {
        func modules(_ m: Module) -> [Module] {
            var out: [Module] = [m]
            var mirror: Mirror? = Mirror(reflecting: m)
            while let current = mirror {
                for child in current.children {
                    if let c = child.value as? Module { out += modules(c) }
                    if let cs = child.value as? [Module] { out += cs.flatMap(modules) }
                }
                mirror = current.superclassMirror
            }
            return out
        }
        for model: Module in [AlbertForCausalLM(tinyConfig("absolute")), AlbertForMaskedLM(tinyConfig()), SentenceAlbert(tinyConfig())] {
            model.eval()
            let all = modules(model)
            XCTAssertGreaterThan(all.count, 20)
            for m in all { XCTAssertFalse(m.isTraining, "\(type(of: m)) still in training mode") }
        }
    }

    /// Every module a module stores (found by reflection, here only) is one of its `children`, so that the one
    /// traversal reaches them all: parameters, modes and generators. Over seeded random model shapes.
    func testChildrenListEveryStoredModule() {
        func stored(_ m: Module) -> [Module] {
            var out: [Module] = [], mirror: Mirror? = Mirror(reflecting: m)
            while let current = mirror {
                for child in current.children {
                    if let c = child.value as? Module { out.append(c) }
                    if let cs = child.value as? [Module] { out += cs }
                }
                mirror = current.superclassMirror
            }
            return out
        }
        var g = SeededGenerator(seed: 21)
        for _ in 0..<8 {
            var config = tinyConfig(g.nextInt(below: 2) == 0 ? "rope" : "absolute", dropout: 0.1)
            config.numExperts = 1 + g.nextInt(below: 8)
            config.topKExperts = 1 + g.nextInt(below: config.numExperts)
            let models: [Module] = [AlbertForCausalLM(config), AlbertForMaskedLM(config), SentenceAlbert(config)]
            let model = models[g.nextInt(below: models.count)]
            let modules = model.namedModules()
            XCTAssertEqual(Set(modules.map { ObjectIdentifier($0.1) }).count, modules.count, "each module once")
            for (name, m) in modules {
                XCTAssertEqual(Set(stored(m).map(ObjectIdentifier.init)), Set(m.children.map { ObjectIdentifier($0.1) }),
                               "\(type(of: model)) \(name.isEmpty ? "itself" : name) (\(type(of: m)))")
            }
        }
    }

    func testStateDictNames() {
        let model = AlbertForCausalLM(tinyConfig("absolute"))
        let names = Set(model.namedParameters().map(\.0))
        var expected: Set<String> = [
            "albert.embeddings.word_embeddings.weight", "albert.embeddings.token_type_embeddings.weight",
            "albert.embeddings.embedding_hidden_mapping_in.weight", "albert.embeddings.embedding_hidden_mapping_in.bias",
            "albert.embeddings.norm.weight", "albert.embeddings.position_embeddings.weight",
            "albert.shared_layer.attention.qkv_layer.weight", "albert.shared_layer.attention.output_proj.weight",
            "albert.shared_layer.ffn.gate.weight", "albert.shared_layer.norm1.weight", "albert.shared_layer.norm2.weight",
            "lm_head_transform.weight", "norm.weight", "lm_head_decoder.weight"]
        for i in 0..<4 {
            expected.insert("albert.shared_layer.ffn.experts.\(i).linear1.weight")
            expected.insert("albert.shared_layer.ffn.experts.\(i).linear2.weight")
        }
        XCTAssertEqual(names, expected)
        XCTAssertEqual(model.stateDict()["albert.shared_layer.ffn.experts.3.linear1.weight"]!.shape, [24, 16])
        let mlm = Set(AlbertForMaskedLM(tinyConfig()).namedParameters().map(\.0))
        XCTAssertTrue(mlm.contains("mlm_head_decoder.weight") && mlm.contains("mlm_head_transform.weight"))
        XCTAssertEqual(Set(SentenceAlbert(tinyConfig()).namedParameters().map(\.0)).filter { $0.hasPrefix("albert.") }, [])
    }

    func testInitialisationFollowsTheSpec() {
        let model = AlbertForMaskedLM(tinyConfig(), seed: 11)
        let emb = model.albert.embeddings.wordEmbeddings.weight
        XCTAssertEqual(Array(emb.scalars[0..<8]), [Float](repeating: 0, count: 8), "the padding row starts at zero")
        let lin = model.albert.sharedLayer.ffn.experts[0].linear1.weight    // in = 16: U(-0.25, 0.25)
        XCTAssertLessThanOrEqual(lin.scalars.map(abs).max()!, 0.25)
        XCTAssertGreaterThan(lin.scalars.map(abs).max()!, 0.2)
        XCTAssertEqual(model.albert.sharedLayer.norm1.weight.scalars, [Float](repeating: 1, count: 16))
        let again = AlbertForMaskedLM(tinyConfig(), seed: 11)
        XCTAssertEqual(again.albert.sharedLayer.ffn.gate.weight.scalars, model.albert.sharedLayer.ffn.gate.weight.scalars)
        XCTAssertNotEqual(AlbertForMaskedLM(tinyConfig(), seed: 12).albert.sharedLayer.ffn.gate.weight.scalars,
                          model.albert.sharedLayer.ffn.gate.weight.scalars)
    }

    func testStrictStateDictLoading() {
        let model = AlbertForMaskedLM(tinyConfig())
        var sd = model.stateDict().mapValues { $0.copy() }
        sd["albert.shared_layer.norm1.weight"] = nil
        sd["extra.weight"] = Tensor.zeros([1])
        sd["norm.weight"] = Tensor.zeros([3])
        XCTAssertThrowsError(try model.loadStateDict(sd)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("albert.shared_layer.norm1.weight") && m.contains("extra.weight") && m.contains("norm.weight"), m)
        }
    }

    func testCausalLossShiftsLabels() throws {
        // The causal loss equals cross-entropy of logits[:, :-1] against labels[:, 1:].
        let model = AlbertForCausalLM(tinyConfig(), seed: 2)
        let a = ids([[5, 9, 12, 7], [3, 4, 0, 0]])
        let labels = ids([[5, 9, 12, 7], [3, 4, -100, -100]])
        let o = try withNoGrad { try model(a, attentionMask: ids([[1, 1, 1, 1], [1, 1, 0, 0]]), labels: labels) }
        let sliced = o.logits.slice(axis: 1, 0..<3).reshaped([6, 50])
        let targets = IntTensor([9, 12, 7, 4, -100, -100].map { Int32($0) })
        XCTAssertEqual(o.clmLoss.item, crossEntropy(sliced, targets).item, accuracy: 1e-6)
    }

    /// A RoPE model with the largest context a config may have (2^20 positions) decodes: its cache grows as tokens
    /// come (past its first allocation), with the logits, bit for bit, of the same weights with a small context.
    func testCacheGrowsUpToAHugeContext() throws {
        var small = tinyConfig("rope")
        small.maxPositionEmbeddings = 200
        var huge = small
        huge.maxPositionEmbeddings = AlbertMoEConfig.sizeLimits.first { $0.field == "max_position_embeddings" }!.limit
        let (a, b) = (AlbertForCausalLM(small, seed: 8), AlbertForCausalLM(huge, seed: 8))
        a.eval()
        b.eval()
        let (cacheA, cacheB) = (KVCache(config: small), KVCache(config: huge))
        var token: [Int32] = [4, 9, 13]
        for step in 0..<150 {
            let (la, lb) = (try a.nextTokenLogits(token, cache: cacheA), try b.nextTokenLogits(token, cache: cacheB))
            XCTAssertEqual(la, lb, "step \(step)")
            token = [Int32(la.indices.max { la[$0] < la[$1] }!)]
        }
        XCTAssertEqual(cacheB.count, 152)
        XCTAssertEqual(cacheB.buffers[0].allocated, 256)
        XCTAssertEqual(try b.generate([1, 2, 3], options: .greedy(maxNewTokens: 80)), try a.generate([1, 2, 3], options: .greedy(maxNewTokens: 80)))
    }

    /// Decoding with the key/value cache gives the logits of running the whole sequence, position by position,
    /// and the same greedy tokens.
    func testCachedDecodingMatchesFullForward() throws {
        for position in ["rope", "absolute"] {
            let model = AlbertForCausalLM(tinyConfig(position, dropout: 0.2), seed: 5)
            model.eval()
            let tokens: [Int32] = [3, 17, 9, 41, 2, 30, 11, 5]
            let full = try withNoGrad { try model(ids([tokens])).logits }.scalars            // [1, 8, 50]
            let cache = KVCache(config: model.config)
            var cached = try model.nextTokenLogits(Array(tokens[..<3]), cache: cache)   // a 3-token prompt
            for t in 2..<tokens.count {
                let expected = Array(full[t * 50 ..< (t + 1) * 50])
                XCTAssertLessThan(zip(cached, expected).map { abs($0 - $1) }.max()!, 1e-4, "\(position) position \(t)")
                if t + 1 < tokens.count { cached = try model.nextTokenLogits([tokens[t + 1]], cache: cache) }
            }
            XCTAssertEqual(cache.count, tokens.count)

            var context: [Int32] = [7, 8, 9], uncached: [Int32] = []
            for _ in 0..<10 {
                let logits = try withNoGrad { try model(ids([context])).logits }.scalars.suffix(50)
                let next = Int32(logits.indices.max { logits[$0] < logits[$1] }! - logits.startIndex)
                uncached.append(next)
                context.append(next)
            }
            XCTAssertEqual(try model.generate([7, 8, 9], options: .greedy(maxNewTokens: 10)), uncached, position)
            XCTAssertTrue(model.isTraining == false)
        }
    }

    /// Incremental decoding gives the full forward's logits at every position, over seeded random models (RoPE and
    /// absolute positions, several head counts and passes) and prompts of up to the whole context, the tokens after
    /// the prompt fed one or a few at a time.
    func testCachedDecodingMatchesFullForwardOnRandomModels() throws {
        var g = SeededGenerator(seed: 33)
        for trial in 0..<8 {
            let heads = [1, 2, 3, 4, 8][g.nextInt(below: 5)], headDim = [4, 8, 16][g.nextInt(below: 3)]
            let context = 8 + g.nextInt(below: 57)
            let config = AlbertMoEConfig(vocabSize: 30 + g.nextInt(below: 70), embeddingSize: 16, hiddenSize: heads * headDim,
                                         numHiddenLayers: 1 + g.nextInt(below: 3), numAttentionHeads: heads,
                                         intermediateSize: 32, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1,
                                         maxPositionEmbeddings: context, positionEmbeddingType: trial % 2 == 0 ? "rope" : "absolute",
                                         numExperts: 4, topKExperts: 2)
            let model = AlbertForCausalLM(config, seed: g.next())
            model.eval()
            let v = config.vocabSize
            let tokens = (0..<context).map { _ in Int32(g.nextInt(below: v)) }
            let full = try withNoGrad { try model(ids([tokens])).logits }.scalars                       // [1, context, V]
            let cache = KVCache(config: config)
            let tag = "trial \(trial) (\(config.positionEmbeddingType), \(heads) heads of \(headDim), context \(context))"
            var start = 0, end = 1 + g.nextInt(below: context)                                  // the prompt
            while start < context {
                let chunk = try withNoGrad {
                    model.logits(try model.albert(ids([Array(tokens[start..<end])]), cache: cache).hiddenStates)
                }.scalars                                                                       // [1, end - start, V]
                XCTAssertEqual(cache.count, end, tag)
                for t in start..<end {
                    let diff = zip(chunk[(t - start) * v ..< (t - start + 1) * v], full[t * v ..< (t + 1) * v])
                        .map { abs($0 - $1) }.max()!
                    XCTAssertLessThan(diff, 1e-4, "\(tag) position \(t)")
                }
                (start, end) = (end, min(context, end + 1 + (g.nextInt(below: 3) == 0 ? g.nextInt(below: 4) : 0)))
            }
        }
    }

    /// Restoring the dropout generators' states replays the same masks: what exact resumption relies on.
    func testRandomStateRestoresDropoutMasks() throws {
        let model = AlbertForCausalLM(tinyConfig(dropout: 0.3), seed: 1)
        model.train()
        let x = ids([[3, 4, 5, 6, 7, 8]])
        _ = try withNoGrad { try model(x).logits }                     // advance the generators
        let saved = model.randomState
        XCTAssertEqual(Set(saved.keys), ["albert.embeddings.dropout", "albert.shared_layer.attention",
                                         "albert.shared_layer.ffn.expert_dropout", "albert.shared_layer.dropout1",
                                         "albert.shared_layer.dropout2"])
        let first = try withNoGrad { try model(x).logits }.scalars
        let second = try withNoGrad { try model(x).logits }.scalars
        XCTAssertNotEqual(first, second)                       // fresh masks each call
        let other = AlbertForCausalLM(tinyConfig(dropout: 0.3), seed: 1)
        other.train()
        other.randomState = saved
        XCTAssertEqual(try withNoGrad { try other(x).logits }.scalars, first)
        var g = SeededGenerator(seed: 9)
        _ = g.nextNormal()                                      // leaves a spare normal variate pending
        var h = SeededGenerator(seed: 0)
        h.state = g.state
        XCTAssertEqual((0..<5).map { _ in g.nextNormal() }, (0..<5).map { _ in h.nextNormal() })
    }
}

func makeMoE(_ config: AlbertMoEConfig) -> MoE {
    var g = SeededGenerator(seed: 42)
    return MoE(config, generator: &g)
}
