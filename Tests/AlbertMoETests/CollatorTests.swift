import Foundation
import XCTest
import Tokenizers
@testable import AlbertMoE

final class CollatorTests: XCTestCase {
    func testCausalCollatorPadsRightAndIgnoresOnlyPadding() {
        var generator = SeededGenerator(seed: 1)
        // The pad id (0) also occurs as a real token (pad = eos): it keeps its label.
        let batch = CausalLMCollator(padID: 0).collate([[5, 6, 0], [8], [9, 10]], generator: &generator)
        XCTAssertEqual(batch.inputIDs, IntTensor([5, 6, 0, 8, 0, 0, 9, 10, 0] as [Int32], shape: [3, 3]))
        XCTAssertEqual(batch.attentionMask, IntTensor([1, 1, 1, 1, 0, 0, 1, 1, 0] as [Int32], shape: [3, 3]))
        XCTAssertEqual(batch.labels, IntTensor([5, 6, 0, 8, -100, -100, 9, 10, -100] as [Int32], shape: [3, 3]))
        XCTAssertEqual(batch.tokenCount, 6)
        XCTAssertEqual(batch.sequenceCount, 3)
    }

    func testCausalCollatorWithEqualLengthsHasNoPadding() {
        var generator = SeededGenerator(seed: 1)
        let batch = CausalLMCollator(padID: 7).collate([[1, 2], [3, 4]], generator: &generator)
        XCTAssertEqual(batch.inputIDs.shape, [2, 2])
        XCTAssertEqual(batch.labels.scalars, [1, 2, 3, 4])
        XCTAssertEqual(batch.attentionMask.scalars, [1, 1, 1, 1])
    }

    /// 1000 sequences [CLS] w ... w [SEP] of 20 to 119 tokens, over a vocabulary of 1000 (ids 10 ... 999 for words).
    private func mlmSequences() -> [[Int32]] {
        var generator = SeededGenerator(seed: 99)
        return (0..<1000).map { _ in
            let length = 18 + generator.nextInt(below: 100)
            return [2] + (0..<length).map { _ in Int32(10 + generator.nextInt(below: 990)) } + [3]
        }
    }

    func testMaskedCollatorStatistics() {
        // The pad id is left out of the specials: padding must be skipped by position.
        let collator = MaskedLMCollator(padID: 0, maskID: 4, vocabSize: 1000, specialIDs: [1, 2, 3, 4])
        let sequences = mlmSequences()
        var generator = SeededGenerator(seed: 2024)
        let batch = collator.collate(sequences, generator: &generator)
        let length = batch.inputIDs.shape[1]
        XCTAssertEqual(batch.inputIDs.shape, [sequences.count, length])
        XCTAssertEqual(batch.tokenCount, sequences.reduce(0) { $0 + $1.count })

        var candidates = 0, selected = 0, masked = 0, random = 0, kept = 0
        for (row, sequence) in sequences.enumerated() {
            for column in 0..<length {
                let i = row * length + column
                let input = batch.inputIDs.scalars[i], label = batch.labels.scalars[i]
                guard column < sequence.count else {
                    // Padding: never selected, left as the pad id.
                    XCTAssertEqual(input, 0); XCTAssertEqual(label, -100); XCTAssertEqual(batch.attentionMask.scalars[i], 0)
                    continue
                }
                let original = sequence[column]
                XCTAssertEqual(batch.attentionMask.scalars[i], 1)
                if original == 2 || original == 3 {
                    // Special tokens: never selected, never changed.
                    XCTAssertEqual(input, original); XCTAssertEqual(label, -100)
                    continue
                }
                candidates += 1
                if label == -100 {
                    XCTAssertEqual(input, original, "a token that is not selected must not change")
                    continue
                }
                XCTAssertEqual(label, original, "the label of a selected token is its original id")
                selected += 1
                if input == 4 { masked += 1 } else if input == original { kept += 1 } else { random += 1 }
            }
        }
        XCTAssertGreaterThan(candidates, 60_000)
        XCTAssertEqual(Double(selected) / Double(candidates), 0.15, accuracy: 0.01)
        XCTAssertEqual(Double(masked) / Double(selected), 0.8, accuracy: 0.02)
        XCTAssertEqual(Double(random) / Double(selected), 0.1, accuracy: 0.015)
        XCTAssertEqual(Double(kept) / Double(selected), 0.1, accuracy: 0.015)
    }

    func testMaskedCollatorIsAFunctionOfTheGeneratorSeed() {
        let collator = MaskedLMCollator(padID: 0, maskID: 4, vocabSize: 1000, specialIDs: [0, 2, 3, 4])
        let sequences = Array(mlmSequences().prefix(20))
        var a = SeededGenerator(seed: 5), b = SeededGenerator(seed: 5), c = SeededGenerator(seed: 6)
        let first = collator.collate(sequences, generator: &a)
        XCTAssertEqual(first, collator.collate(sequences, generator: &b))
        XCTAssertNotEqual(first.inputIDs, collator.collate(sequences, generator: &c).inputIDs)
    }

    func testMaskedCollatorProbabilityOneSelectsEveryOrdinaryToken() {
        let collator = MaskedLMCollator(padID: 0, maskID: 4, vocabSize: 50, specialIDs: [0, 2, 3, 4], probability: 1)
        var generator = SeededGenerator(seed: 3)
        let batch = collator.collate([[2, 10, 11, 12, 3], [2, 13, 3]], generator: &generator)
        XCTAssertEqual(batch.labels.scalars, [-100, 10, 11, 12, -100, -100, 13, -100, -100, -100])
    }

    func testMaskedCollatorFromTokenizer() throws {
        let tokenizer = try DataTestSupport.wordTokenizer()
        let collator = try MaskedLMCollator(tokenizer: tokenizer)
        XCTAssertEqual(collator.maskID, 4)
        XCTAssertEqual(collator.padID, 0)
        XCTAssertEqual(collator.vocabSize, 205)
        XCTAssertEqual(collator.specialIDs, [0, 1, 2, 3, 4])
        XCTAssertEqual(collator.probability, 0.15)

        let noMask = try DataTestSupport.wordTokenizer(template: false)
        XCTAssertThrowsError(try MaskedLMCollator(tokenizer: noMask)) { error in
            XCTAssertTrue("\(error)".contains("no mask token"), "\(error)")
        }
    }

    /// The collators take the tokenizer's roles: the pad token (else the eos token) and the mask token.
    func testSpecialTokenLookups() throws {
        let bert = try DataTestSupport.wordTokenizer()
        XCTAssertEqual(try paddingID(of: bert), 0)
        XCTAssertNil(bert.specialTokens.eos)
        XCTAssertEqual(bert.specialTokens.mask?.id, 4)

        let plain = try DataTestSupport.wordTokenizer(template: false)
        XCTAssertEqual(try paddingID(of: plain), 0)  // <pad>
        XCTAssertEqual(plain.specialTokens.eos?.id, 1)  // </s>
        XCTAssertEqual(plain.specialTokenIDs, [0, 1, 2])

        // No pad token: the eos token pads, as with `pad_token = eos_token`; with neither, no id is made up.
        let json = """
            {"added_tokens": [{"id": 2, "content": "<|endoftext|>", "special": true}],
             "pre_tokenizer": {"type": "WhitespaceSplit"},
             "model": {"type": "WordLevel", "unk_token": "a", "vocab": {"a": 0, "b": 1, "<|endoftext|>": 2}}}
            """
        let gpt = try Tokenizer(jsonString: json)
        XCTAssertThrowsError(try paddingID(of: gpt)) { error in
            XCTAssertTrue("\(error)".contains("pad_token"), "\(error)")
        }
        try gpt.declareSpecialTokens([.eos: "<|endoftext|>"])
        XCTAssertEqual(try paddingID(of: gpt), 2)
        XCTAssertNil(gpt.specialTokens.mask)
    }
}
