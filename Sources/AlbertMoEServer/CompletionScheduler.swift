import Synchronization

/// Runs the completions in flight together (continuous batching): each decoding step is one `ModelWorker` job that
/// advances every active completion, up to `maxBatchSize` of them, by one token, and hands each its new text: the
/// prompts of the completions that joined since the last step run as one batched forward, then the others' next
/// positions as another. A completion leaves when it finishes, fails or its client stops listening, without
/// holding up the others. Beyond `maxBatchSize`, the completions left out of a step go first in the next. Each step
/// queues the next itself, straight from the worker's thread, so that steps follow each other without a hop through
/// the server's tasks; other model work (embeddings, mask filling, tokenizing prompts) queued meanwhile runs between
/// them.
final class CompletionScheduler: Sendable {
    typealias Steps = AsyncThrowingStream<CompletionGenerator.Step, Error>

    private struct Entry: Sendable {
        let id: Int
        let generator: CompletionGenerator
        let continuation: Steps.Continuation
    }

    private struct State {
        /// The active completions, in the order they take their turns.
        var entries: [Entry] = []
        var nextID = 0
        /// Whether a step is queued or running.
        var running = false
        /// The most completions one step has advanced.
        var largestBatch = 0
    }

    /// The most completions one step advances.
    let maxBatchSize: Int
    private let worker: ModelWorker
    private let state = Mutex(State())

    init(worker: ModelWorker, maxBatchSize: Int) {
        precondition(maxBatchSize >= 1, "CompletionScheduler: the batch size must be positive")
        self.worker = worker
        self.maxBatchSize = maxBatchSize
    }

    /// The steps of `generator`, as they are made: the stream ends after the step that gives a finish reason, or with
    /// the error that stopped the generation. Dropping the stream (or cancelling the task iterating it) takes the
    /// completion out of the batch.
    func steps(of generator: CompletionGenerator) -> Steps {
        let (stream, continuation) = Steps.makeStream()
        let id = state.withLock { s in
            defer { s.nextID += 1 }
            return s.nextID
        }
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        let start = state.withLock { s in
            s.entries.append(Entry(id: id, generator: generator, continuation: continuation))
            defer { s.running = true }
            return !s.running
        }
        if start { queueStep() }
        return stream
    }

    /// Completions the scheduler is advancing now.
    var activeCount: Int { state.withLock { $0.entries.count } }
    /// The most completions one step has advanced so far.
    var largestBatch: Int { state.withLock { $0.largestBatch } }

    private func remove(_ id: Int) {
        state.withLock { $0.entries.removeAll { $0.id == id } }
    }

    /// The completions of the next step (those left out move to the front of the queue), or nil when none is left
    /// (steps then stop; the next completion to join starts them again).
    private func nextBatch() -> [Entry]? {
        state.withLock { s in
            guard !s.entries.isEmpty else {
                s.running = false
                return nil
            }
            let batch = Array(s.entries.prefix(maxBatchSize))
            s.largestBatch = max(s.largestBatch, batch.count)
            s.entries = Array(s.entries.dropFirst(batch.count)) + batch
            return batch
        }
    }

    private func queueStep() {
        worker.enqueue { [self] in step() }
    }

    /// Advances the completions of the next batch by one token and hands each its step, then queues the next step
    /// while a completion is left.
    private func step() {
        guard let batch = nextBatch() else { return }
        for (entry, result) in zip(batch, CompletionGenerator.step(batch.map(\.generator))) {
            switch result {
            case .success(let step):
                entry.continuation.yield(step)
                if step.finishReason != nil {
                    remove(entry.id)
                    entry.continuation.finish()
                }
            case .failure(let error):
                remove(entry.id)
                entry.continuation.finish(throwing: error)
            }
        }
        queueStep()
    }
}
