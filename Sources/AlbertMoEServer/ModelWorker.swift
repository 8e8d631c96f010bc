import Dispatch

/// Runs model and tokenizer work one job at a time on a serial queue of its own, so that it never blocks the
/// server's event loops and the models (which are not made for concurrent forwards) see one caller at a time.
///
/// Jobs are small: one prompt, one decoding step of the completions in flight (`CompletionScheduler`), one batch
/// of embeddings, one fill-mask. Requests take turns job by job in arrival order, so a long generation does not
/// hold up the others.
final class ModelWorker: Sendable {
    private let queue = DispatchQueue(label: "albertmoe.server.model", qos: .userInitiated)

    /// Queues `job` to run on the worker's queue, after the jobs queued before it.
    func enqueue(_ job: @escaping @Sendable () -> Void) {
        queue.async(execute: job)
    }

    /// Runs `job` on the worker's queue and returns its result (or rethrows its error).
    func run<T: Sendable>(_ job: @escaping () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            // Unchecked: what a job captures (the model, its tokenizer, a generation) is used by jobs only, and
            // the serial queue runs them one at a time.
            nonisolated(unsafe) let job = job
            queue.async {
                continuation.resume(with: Result { try job() })
            }
        }
    }
}
