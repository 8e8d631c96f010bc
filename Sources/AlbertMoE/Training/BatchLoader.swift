import Foundation
import Tokenizers

// From a corpus to training batches:
//
//   TextCorpus --(split rule, side)--> texts --(tokenizer, with special tokens)--> ids
//     --(truncate to maxLength | pack into blocks of maxLength, up to maxSamples)--> sequences
//     --(epoch order: permutation or shuffle buffer)--> groups of batchSize --(collator)--> Batch
//
// Everything random is seeded from the configuration's seed only: the epoch order from (seed, epoch), the
// collator's generator for batch b from (seed, epoch, b). So the batches of an epoch are always the same, and
// `batches(epoch:startingAt:)` resumes an interrupted epoch exactly.

/// Tokenizes a corpus and serves it as batches, prepared ahead on a background thread.
///
/// Non-streaming (the default), the whole corpus is read and tokenized once by `init` (on all cores), and each
/// epoch visits the sequences in a permutation seeded by (seed, epoch). Streaming, nothing is read before
/// `batches` is called: each epoch reads the corpus again, tokenizes on the fly and shuffles through a bounded
/// buffer, so memory stays bounded whatever the corpus size.
///
/// The tokenizer's own truncation and padding (a tokenizer.json may declare them) are never applied: sequences
/// are cut to `maxLength` here and padded by the collator with attention mask 0. The tokenizer is copied (from
/// its tokenizer.json), so the caller's tokenizer can be used and changed meanwhile.
public final class BatchLoader {
    /// How sequences are made and batched.
    public struct Configuration {
        /// Sequences per batch (the last batch of an epoch may hold fewer).
        public var batchSize: Int
        /// The longest sequence, special tokens included; with packing, the length of every block.
        public var maxLength: Int
        /// Concatenate the documents and cut the stream into blocks of exactly `maxLength` (the final partial
        /// block is dropped), instead of one truncated sequence per document.
        public var packing: Bool
        /// Visit the sequences in a different random order each epoch (else in corpus order).
        public var shuffle: Bool
        /// Seeds the epoch orders and the collator's randomness.
        public var seed: UInt64
        /// Read the corpus lazily each epoch instead of tokenizing it all up front.
        public var streaming: Bool
        /// Use only the first this many sequences (blocks when packing), like HF's `max_train_samples`.
        public var maxSamples: Int?
        /// Keep only one side of this split (nil: the whole corpus).
        public var split: SplitRule?
        /// Which side of `split` to keep.
        public var side: SplitSide
        /// How many batches the background thread prepares ahead.
        public var prefetchDepth: Int
        /// Streaming only: how many sequences the shuffle buffer holds.
        public var shuffleBufferSize: Int

        public init(batchSize: Int, maxLength: Int, packing: Bool = false, shuffle: Bool = true, seed: UInt64 = 42,
                    streaming: Bool = false, maxSamples: Int? = nil, split: SplitRule? = nil, side: SplitSide = .train,
                    prefetchDepth: Int = 8, shuffleBufferSize: Int = 10_000) {
            self.batchSize = batchSize
            self.maxLength = maxLength
            self.packing = packing
            self.shuffle = shuffle
            self.seed = seed
            self.streaming = streaming
            self.maxSamples = maxSamples
            self.split = split
            self.side = side
            self.prefetchDepth = prefetchDepth
            self.shuffleBufferSize = shuffleBufferSize
        }

        /// Throws an `AlbertMoEError.invalidValue` naming the first setting out of range.
        public func validate() throws {
            func fail(_ field: String, _ why: String) -> AlbertMoEError { .invalidValue(field: field, reason: why) }
            if batchSize < 1 { throw fail("batchSize", "the batch size must be at least 1, got \(batchSize)") }
            if maxLength < 2 { throw fail("maxLength", "the max length must be at least 2, got \(maxLength)") }
            if let maxSamples, maxSamples < 1 { throw fail("maxSamples", "the sample limit must be at least 1, got \(maxSamples)") }
            if let split, !(0...100).contains(split.percentage) {
                throw fail("split", "the validation split percentage must be in 0...100, got \(split.percentage)")
            }
            if prefetchDepth < 1 { throw fail("prefetchDepth", "the prefetch depth must be at least 1, got \(prefetchDepth)") }
            if shuffleBufferSize < 1 {
                throw fail("shuffleBufferSize", "the shuffle buffer size must be at least 1, got \(shuffleBufferSize)")
            }
        }
    }

    public let corpus: TextCorpus
    /// Called on the loader's background thread: it must not share mutable state with other threads.
    public let collator: any Collator
    public let configuration: Configuration
    private let sequencer: Sequencer
    /// Non-streaming: every sequence, in corpus order.
    private let sequences: [[Int32]]?

    /// Prepares a loader. Non-streaming, this reads and tokenizes the whole corpus, so data errors are thrown
    /// here; streaming, they are thrown by `BatchStream.next()`.
    public init(corpus: TextCorpus, tokenizer: Tokenizer, collator: any Collator, configuration: Configuration) throws {
        try configuration.validate()
        self.corpus = corpus
        self.collator = collator
        self.configuration = configuration
        sequencer = try Sequencer(corpus: corpus, tokenizer: tokenizer, configuration: configuration)
        if configuration.streaming {
            sequences = nil
        } else {
            var all: [[Int32]] = []
            try sequencer.forEachSequence(workers: ProcessInfo.processInfo.activeProcessorCount) { all.append($0); return true }
            guard !all.isEmpty else { throw AlbertMoEError.badFile(path: corpus.path.path, reason: sequencer.noSequencesReason) }
            sequences = all
        }
    }

    /// Streaming: reads and tokenizes the whole corpus once, keeping nothing, so that its data errors (and a corpus
    /// that gives no sequence) are thrown now rather than by `BatchStream.next()` in the middle of a run, as for a
    /// validation set that is read only at the first validation. Non-streaming, `init` has done this.
    public func check() throws {
        guard configuration.streaming else { return }
        var sawSequence = false
        try sequencer.forEachSequence(workers: ProcessInfo.processInfo.activeProcessorCount) { _ in
            sawSequence = true
            return true
        }
        guard sawSequence else { throw AlbertMoEError.badFile(path: corpus.path.path, reason: sequencer.noSequencesReason) }
    }

    /// Non-streaming: how many sequences (blocks when packing) an epoch visits; nil when streaming.
    public var sequenceCount: Int? { sequences?.count }

    /// Non-streaming: how many batches an epoch has (the last one may be partial); nil when streaming.
    public var batchesPerEpoch: Int? {
        sequences.map { ($0.count + configuration.batchSize - 1) / configuration.batchSize }
    }

    /// The batches of `epoch` from number `batchIndex` on: exactly the batches `batchIndex`, `batchIndex + 1`, ...
    /// of a full pass over that epoch, masks included. They are prepared on a background thread.
    public func batches(epoch: Int, startingAt batchIndex: Int = 0) -> BatchStream {
        BatchStream(depth: configuration.prefetchDepth) { emit in
            if self.configuration.streaming {
                try self.produceStreaming(epoch: epoch, from: max(0, batchIndex), emit: emit)
            } else {
                self.produceFromMemory(epoch: epoch, from: max(0, batchIndex), emit: emit)
            }
        }
    }

    /// The order in which a non-streaming epoch visits the sequences: a permutation seeded by (seed, epoch)
    /// (Fisher-Yates), or the corpus order without shuffling.
    func epochOrder(_ epoch: Int, count: Int) -> [Int] {
        var order = Array(0..<count)
        guard configuration.shuffle else { return order }
        var generator = SeededGenerator(seed: mixSeeds(configuration.seed, SeedPurpose.epochOrder.rawValue, UInt64(bitPattern: Int64(epoch))))
        shuffleInPlace(&order, using: &generator)
        return order
    }

    /// Collates batch `index` of `epoch` with its own generator, seeded by (seed, epoch, index) only.
    private func collate(_ group: [[Int32]], epoch: Int, index: Int) -> Batch {
        var generator = SeededGenerator(seed: mixSeeds(configuration.seed, SeedPurpose.collator.rawValue,
                                                       UInt64(bitPattern: Int64(epoch)), UInt64(index)))
        return collator.collate(group, generator: &generator)
    }

    private func produceFromMemory(epoch: Int, from start: Int, emit: (Batch) -> Bool) {
        guard let sequences, let count = batchesPerEpoch, start < count else { return }
        let order = epochOrder(epoch, count: sequences.count)
        let size = configuration.batchSize
        for index in start..<count {
            let group = order[(index * size)..<min((index + 1) * size, order.count)].map { sequences[$0] }
            if !emit(collate(group, epoch: epoch, index: index)) { return }
        }
    }

    private func produceStreaming(epoch: Int, from start: Int, emit: (Batch) -> Bool) throws {
        let size = configuration.batchSize
        var shuffler = configuration.shuffle
            ? ShuffleBuffer<[Int32]>(capacity: configuration.shuffleBufferSize,
                                     seed: mixSeeds(configuration.seed, SeedPurpose.shuffleBuffer.rawValue, UInt64(bitPattern: Int64(epoch))))
            : nil
        var group: [[Int32]] = []
        var index = 0
        var sawSequence = false
        // Adds a sequence to the batch being filled; false once the consumer has cancelled.
        func add(_ sequence: [Int32]) -> Bool {
            group.append(sequence)
            return group.count < size || flush()
        }
        // Sends the batch being filled (batches before `start` are not collated, only counted).
        func flush() -> Bool {
            defer { group.removeAll(keepingCapacity: true); index += 1 }
            return index < start || emit(collate(group, epoch: epoch, index: index))
        }
        var going = true
        try sequencer.forEachSequence(workers: 1) { sequence in
            sawSequence = true
            if shuffler == nil {
                going = add(sequence)
            } else if let out = shuffler!.add(sequence) {
                going = add(out)
            }
            return going
        }
        guard going else { return }
        guard sawSequence else { throw AlbertMoEError.badFile(path: corpus.path.path, reason: sequencer.noSequencesReason) }
        for sequence in shuffler?.drain() ?? [] {
            if !add(sequence) { return }
        }
        if !group.isEmpty { _ = flush() }
    }
}

/// Turns the corpus into token-id sequences: truncated documents, or fixed-length blocks when packing.
struct Sequencer {
    let corpus: TextCorpus
    let configuration: BatchLoader.Configuration
    /// The tokenizer used (a private copy when the tokenizer has a tokenizer.json).
    let encoder: Tokenizer
    /// Packing only: the token added after each document when the tokenizer adds no special token itself.
    let separator: Int32?
    /// How many examples are tokenized at a time.
    var chunkSize = 2048

    init(corpus: TextCorpus, tokenizer: Tokenizer, configuration: BatchLoader.Configuration) throws {
        self.corpus = corpus
        self.configuration = configuration
        encoder = try Sequencer.privateCopy(of: tokenizer)
        let addsSpecialTokens = try encoder.encode("", addSpecialTokens: true).specialTokensMask.contains(1)
        separator = configuration.packing && !addsSpecialTokens ? tokenizer.specialTokens.eos.map { Int32($0.id) } : nil
    }

    /// A copy of `tokenizer` that no one else touches (safe to use from the loader's threads). A SentencePiece
    /// tokenizer, which has no tokenizer.json to copy, is shared (its encoding reads nothing a caller can change
    /// but its added tokens).
    static func privateCopy(of tokenizer: Tokenizer) throws -> Tokenizer {
        guard let json = tokenizer.json else { return tokenizer }
        return try Tokenizer(jsonValue: json)
    }

    /// Why there is nothing to train on.
    var noSequencesReason: String {
        let side = configuration.split == nil ? "" : " on the \(configuration.side) side of the split"
        if configuration.packing {
            return "no training sequences\(side): the texts hold fewer tokens than one block of \(configuration.maxLength)"
        }
        return "no training sequences\(side): no text gives at least 2 tokens"
    }

    /// Calls `body` with each sequence in corpus order, until it returns false or `maxSamples` sequences were
    /// given. Texts are tokenized `chunkSize` at a time, on `workers` threads. When the corpus has an error, the
    /// sequences of the examples before it are given first, then the error is thrown.
    func forEachSequence(workers: Int, _ body: ([Int32]) throws -> Bool) throws {
        var packer = BlockPacker(length: configuration.maxLength)
        var chunk: [TextExample] = []
        var given = 0
        var stopped = false
        func process() throws {
            for ids in try encode(chunk, workers: workers) {
                let produced = configuration.packing ? packer.add(ids) : (ids.count >= 2 ? [ids] : [])
                for sequence in produced {
                    given += 1
                    if try !body(sequence) || given == configuration.maxSamples { stopped = true; return }
                }
            }
            chunk.removeAll(keepingCapacity: true)
        }
        do {
            try corpus.forEachExample { example in
                if let split = configuration.split, !split.includes(index: example.index, side: configuration.side) { return true }
                chunk.append(example)
                if chunk.count >= chunkSize { try process() }
                return !stopped
            }
        } catch let error as AlbertMoEError {
            // A reading error: the examples read before it still give their sequences first.
            if !stopped && !chunk.isEmpty { try process() }
            throw error
        }
        if !stopped && !chunk.isEmpty { try process() }
    }

    /// The ids of each example, in order (truncated unless packing), tokenized on up to `workers` threads.
    func encode(_ examples: [TextExample], workers: Int) throws -> [[Int32]] {
        var results = [Result<[Int32], Error>](repeating: .success([]), count: examples.count)
        let parts = max(1, min(workers, examples.count / 64))
        results.withUnsafeMutableBufferPointer { buffer in
            // Unchecked: each part writes its own contiguous range of `out`, and encoding only reads the sequencer.
            nonisolated(unsafe) let out = buffer, sequencer = self
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let range = (examples.count * part / parts)..<(examples.count * (part + 1) / parts)
                for i in range { out[i] = Result { try sequencer.encode(examples[i]) } }
            }
        }
        return try results.map { try $0.get() }
    }

    /// The ids of one example: with the tokenizer's special tokens, without its own padding, then cut to
    /// `maxLength` keeping the special tokens at both ends (or followed by the separator when packing).
    func encode(_ example: TextExample) throws -> [Int32] {
        let encoding: Encoding
        do {
            encoding = try encoder.encodeUnpadded(example.text, maxLength: configuration.packing ? nil : configuration.maxLength)
        } catch {
            throw AlbertMoEError.badFile(path: example.file.path, line: example.line,
                                         reason: "cannot tokenize the text (\(error))")
        }
        var ids = encoding.ids.map { Int32(truncatingIfNeeded: $0) }
        if configuration.packing, let separator { ids.append(separator) }
        return ids
    }
}

/// Concatenates documents and cuts the stream into blocks of exactly `length` tokens.
struct BlockPacker {
    let length: Int
    private var pending: [Int32] = []

    init(length: Int) { self.length = length }

    /// Appends a document; returns the blocks completed by it (the rest waits for the next documents).
    mutating func add(_ ids: [Int32]) -> [[Int32]] {
        pending += ids
        let complete = pending.count / length
        guard complete > 0 else { return [] }
        let blocks = (0..<complete).map { Array(pending[($0 * length)..<(($0 + 1) * length)]) }
        pending.removeFirst(complete * length)
        return blocks
    }
}

/// A shuffle buffer (as in Hugging Face `IterableDataset.shuffle`): once full, each new item takes the place
/// of a random item, which is given out; at the end the rest comes out in random order.
struct ShuffleBuffer<Element> {
    let capacity: Int
    private var items: [Element] = []
    private var generator: SeededGenerator

    init(capacity: Int, seed: UInt64) {
        self.capacity = capacity
        generator = SeededGenerator(seed: seed)
        items.reserveCapacity(min(capacity, 1 << 16))
    }

    /// Adds an item; when the buffer is full, returns the random item it replaced.
    mutating func add(_ item: Element) -> Element? {
        guard items.count == capacity else { items.append(item); return nil }
        let i = generator.nextInt(below: capacity)
        defer { items[i] = item }
        return items[i]
    }

    /// The remaining items, in random order; the buffer is left empty.
    mutating func drain() -> [Element] {
        shuffleInPlace(&items, using: &generator)
        defer { items.removeAll() }
        return items
    }
}

/// Fisher-Yates shuffle with the project's generator (Swift's `shuffle(using:)` may change between releases).
func shuffleInPlace<T>(_ items: inout [T], using generator: inout SeededGenerator) {
    guard items.count > 1 else { return }
    for i in stride(from: items.count - 1, to: 0, by: -1) {
        items.swapAt(i, generator.nextInt(below: i + 1))
    }
}

/// The batches of one epoch, prepared ahead by a background thread into a bounded queue.
///
/// Call `next()` until it returns nil (the end of the epoch); an error met while reading or tokenizing is
/// thrown by `next()` after the batches made before it. `cancel()` (or dropping the stream) stops the thread.
public final class BatchStream {
    private let queue: PrefetchQueue

    /// Starts a thread that runs `produce`, which hands each batch to `emit` (waiting while `depth` batches are
    /// queued) and should stop when `emit` returns false.
    init(depth: Int, produce: @escaping (_ emit: (Batch) -> Bool) throws -> Void) {
        let queue = PrefetchQueue(capacity: depth)
        self.queue = queue
        // Unchecked: from here on only the loader thread uses `produce` and what it captures.
        nonisolated(unsafe) let produce = produce
        let thread = Thread {
            do {
                try produce(queue.push)
                queue.finish(throwing: nil)
            } catch {
                queue.finish(throwing: error)
            }
        }
        thread.name = "BatchLoader"
        thread.stackSize = 8 << 20
        thread.start()
    }

    deinit { queue.cancel() }

    /// The next batch, waiting for it if needed; nil at the end of the epoch or after `cancel()`.
    public func next() throws -> Batch? { try queue.pop() }

    /// Stops the background thread; `next()` then returns nil.
    public func cancel() { queue.cancel() }
}

/// A bounded first-in first-out queue of batches between one producer and one consumer thread.
/// Unchecked Sendable: every stored property is read and written with `condition` locked.
final class PrefetchQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    private var items: [Batch] = []
    private var finished = false
    private var failure: Error?
    private var cancelled = false

    init(capacity: Int) { self.capacity = capacity }

    /// Adds a batch, waiting while the queue is full. Returns false once the consumer has cancelled.
    func push(_ batch: Batch) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count >= capacity && !cancelled { condition.wait() }
        if cancelled { return false }
        items.append(batch)
        condition.broadcast()
        return true
    }

    /// Marks the end of the batches (with the error that ended them, if any).
    func finish(throwing error: Error?) {
        condition.lock()
        finished = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    /// The next batch, waiting for one; nil at the end or once cancelled; throws the producer's error.
    func pop() throws -> Batch? {
        condition.lock()
        defer { condition.unlock() }
        while items.isEmpty && !finished && !cancelled { condition.wait() }
        if cancelled { return nil }
        if !items.isEmpty {
            condition.broadcast()
            return items.removeFirst()
        }
        if let failure { throw failure }
        return nil
    }

    /// Drops the queued batches and wakes both sides; the producer stops at its next batch.
    func cancel() {
        condition.lock()
        cancelled = true
        items.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}
