import XCTest
@testable import AlbertMoE
@testable import Tensors

/// A weak reference, to see whether something was freed.
final class Weak {
    weak var object: AnyObject?
    init(_ object: AnyObject) { self.object = object }
}

/// Every recorded node of the graph that made `t`.
func graphNodes(_ t: Tensor) -> [Node] {
    var seen = Set<ObjectIdentifier>(), stack = t.node.map { [$0] } ?? [], nodes: [Node] = []
    while let n = stack.popLast() {
        guard seen.insert(ObjectIdentifier(n)).inserted else { continue }
        nodes.append(n)
        for case .node(let input, _)? in n.edges { stack.append(input) }
    }
    return nodes
}

/// What a training step leaves behind.
final class MemoryTests: XCTestCase {
    /// Once a step's backward has run, nothing of its graph is left, though the loss is still held: every
    /// recorded node and every intermediate tensor is freed (over seeded random models, causal and masked).
    func testStepFreesItsIntermediatesAfterBackward() throws {
        var g = SeededGenerator(seed: 21)
        for trial in 0..<6 {
            let heads = [1, 2, 4][g.nextInt(below: 3)], headDim = [4, 8, 16][g.nextInt(below: 3)]
            let config = AlbertMoEConfig(vocabSize: 40 + g.nextInt(below: 60), embeddingSize: 16, hiddenSize: heads * headDim,
                                         numHiddenLayers: 1 + g.nextInt(below: 3), numAttentionHeads: heads,
                                         intermediateSize: 48, hiddenDropoutProb: 0.1, attentionProbsDropoutProb: 0.1,
                                         maxPositionEmbeddings: 32, positionEmbeddingType: trial % 2 == 0 ? "rope" : "absolute",
                                         numExperts: 4, topKExperts: 1 + g.nextInt(below: 2))
            let model: AlbertLMModel = trial % 3 == 2 ? AlbertForMaskedLM(config, seed: g.next()) : AlbertForCausalLM(config, seed: g.next())
            model.train()
            let (b, t) = (1 + g.nextInt(below: 3), 4 + g.nextInt(below: 28))
            let ids = IntTensor((0..<(b * t)).map { _ in Int32(1 + g.nextInt(below: config.vocabSize - 1)) }, shape: [b, t])
            let mask = IntTensor((0..<(b * t)).map { i in Int32(i % t < t - i / t ? 1 : 0) }, shape: [b, t])
            let tag = "trial \(trial): \(config.numHiddenLayers) passes, \(heads) heads of \(headDim), [\(b), \(t)]"

            weak var heldLoss: Tensor?
            do {
                var intermediates: [Weak] = []
                let loss: Tensor = try {
                    let out = try model(ids, attentionMask: mask, labels: ids)
                    for x in [out.logits, out.hiddenStates, out.auxLoss, out.ceLoss!] {
                        intermediates += [Weak(x), Weak(x.storage)]
                    }
                    return out.loss
                }()
                heldLoss = loss
                let nodes = graphNodes(loss).filter { $0 !== loss.node }.map(Weak.init)
                XCTAssertGreaterThan(nodes.count, 20 * config.numHiddenLayers, tag)
                loss.backward()
                XCTAssertTrue(loss.node!.isReleased, tag)
                XCTAssertEqual(nodes.filter { $0.object != nil }.count, 0, "\(tag): graph nodes outlive the backward")
                XCTAssertEqual(intermediates.filter { $0.object != nil }.count, 0, "\(tag): intermediates outlive the backward")
                XCTAssertTrue(model.parameters().contains { $0.grad != nil }, tag)
            }
            XCTAssertNil(heldLoss, "\(tag): the loss outlives its step")
        }
    }
}
