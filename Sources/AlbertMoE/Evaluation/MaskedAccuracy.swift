import Foundation
import Tensors

/// How well a masked model recovers masked tokens.
public struct MaskedAccuracyResult: Equatable {
    /// Share of masked positions whose original token is the model's first choice, and among its first five.
    public let top1: Double, top5: Double
    /// Mean cross-entropy at the masked positions.
    public let loss: Double
    /// Masked positions scored.
    public let tokens: Int
}

extension AlbertForMaskedLM {
    /// Top-1 and top-5 accuracy at the masked positions of the loader's batches (one pass over epoch 0; the masks
    /// come from the loader's seed, so the figure is reproducible). Dropout off, no graph.
    public func maskedTokenAccuracy(on data: BatchLoader) throws -> MaskedAccuracyResult {
        let wasTraining = isTraining
        eval()
        defer { train(wasTraining) }
        var hits1 = 0, hits5 = 0, count = 0, lossSum = 0.0
        let v = config.vocabSize
        let stream = data.batches(epoch: 0)
        defer { stream.cancel() }
        while let batch = try stream.next() {
            let labels = batch.labels.scalars
            let masked = labels.indices.filter { labels[$0] != -100 }
            guard !masked.isEmpty else { continue }
            let out = try withNoGrad { try self(batch.inputIDs, attentionMask: batch.attentionMask, labels: batch.labels) }
            let logits = out.logits.scalars
            for position in masked {
                let row = logits[position * v ..< (position + 1) * v]
                let target = row[row.startIndex + Int(labels[position])]
                let better = row.reduce(0) { $0 + ($1 > target ? 1 : 0) }
                if better == 0 { hits1 += 1 }
                if better < 5 { hits5 += 1 }
            }
            lossSum += Double(out.ceLoss.item) * Double(masked.count)
            count += masked.count
        }
        guard count > 0 else { throw AlbertMoEError.cannotContinue("the held-out data gave no masked token to score") }
        return MaskedAccuracyResult(top1: Double(hits1) / Double(count), top5: Double(hits5) / Double(count),
                                    loss: lossSum / Double(count), tokens: count)
    }
}
