import AlbertMoE
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Shows a training run's progress on standard error: a one-line bar on a terminal, plain lines otherwise.
final class TrainingProgress {
    private let totalSteps: Int?
    /// The step the run starts from (0, or the resumed checkpoint's) and when, for the ETA.
    private let startStep: Int
    private let start = Date()
    private let bar: Bool

    init(totalSteps: Int?, startStep: Int, bar: Bool = isatty(STDERR_FILENO) != 0) {
        self.totalSteps = totalSteps
        self.startStep = startStep
        self.bar = bar
    }

    /// Sets the trainer's logging and validation hooks to show them.
    func observe(_ trainer: Trainer) {
        trainer.hooks.didLog = { [self] in show($0) }
        trainer.hooks.didEvaluate = { [self] in show(step: $0, $1) }
    }

    func show(_ m: TrainingMetrics) {
        var eta = ""
        if let total = totalSteps, total > 0 {
            let perStep = Date().timeIntervalSince(start) / Double(max(m.step - startStep, 1))
            eta = " ETA " + Self.duration(perStep * Double(max(total - m.step, 0)))
        }
        let stepText = totalSteps.map { "\(m.step)/\($0)" } ?? "\(m.step)"
        let line = String(format: "step %@ epoch %d loss %.4f aux %.3f %.0f tok/s%@", stepText, m.epoch + 1,
                          m.loss, m.auxLoss, m.tokensPerSecond, eta)
        if bar {
            var drawn = ""
            if let total = totalSteps, total > 0 {
                let filled = min(30, 30 * m.step / total)
                drawn = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: 30 - filled) + "] "
            }
            write("\r\u{1B}[2K" + drawn + line)
        } else {
            write(line + "\n")
        }
    }

    func show(step: Int, _ result: EvaluationResult) {
        if bar { write("\n") }
        write(String(format: "step %d: validation loss %.4f, perplexity %.2f (%d tokens)\n",
                     step, result.loss, result.perplexity, result.tokens))
    }

    /// Ends the bar's line once the run is over.
    func finish() {
        if bar { write("\n") }
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}

/// The write end of the pipe through which the signal handler reaches the running `Interrupts.cancelling`.
nonisolated(unsafe) private var interruptPipe: Int32 = -1

/// Ctrl-C (SIGINT) and SIGTERM while a run trains: the first cancels the run (it stops after its step), a second
/// ends the process at once.
enum Interrupts {
    /// Runs `body` with the signals cancelling `token`, then puts back the handlers there were before.
    static func cancelling<T>(_ token: CancellationToken, while body: () throws -> T) rethrows -> T {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return try body() }
        let (readEnd, writeEnd) = (ends[0], ends[1])
        _ = fcntl(writeEnd, F_SETFL, O_NONBLOCK)
        let reader = DispatchSource.makeReadSource(fileDescriptor: readEnd, queue: DispatchQueue(label: "interrupts"))
        reader.setEventHandler {
            var byte: UInt8 = 0
            guard read(readEnd, &byte, 1) == 1 else { return }
            if token.isCancelled { exit(130) }
            token.cancel()
            FileHandle.standardError.write(Data("\nStopping after this step (Ctrl-C again to quit at once)...\n".utf8))
        }
        reader.setCancelHandler {
            close(readEnd)
            close(writeEnd)
        }
        reader.resume()
        let outer = interruptPipe
        interruptPipe = writeEnd
        var previous: [(Int32, sigaction)] = []
        for sig in [SIGINT, SIGTERM] {
            var old = sigaction()
            sigaction(sig, nil, &old)
            previous.append((sig, old))
            // A handler may only do async-signal-safe work: it writes one byte, which `reader` acts on.
            signal(sig) { _ in
                var byte: UInt8 = 1
                _ = write(interruptPipe, &byte, 1)
            }
        }
        defer {
            for (sig, var old) in previous { sigaction(sig, &old, nil) }
            interruptPipe = outer
            reader.cancel()
        }
        return try body()
    }
}

/// The process's limit on open file descriptors, which bounds the connections a server can hold.
public enum OpenFileLimit {
    /// Raises the soft RLIMIT_NOFILE to the hard limit and returns the soft limit now in force (nil when it cannot
    /// be read).
    @discardableResult
    public static func raiseToHardLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)   // RLIM_INFINITY (all ones) clamps to Int.max
    }
}
