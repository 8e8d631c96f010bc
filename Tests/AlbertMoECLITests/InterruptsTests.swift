import AlbertMoE
@testable import AlbertMoECommands
import Foundation
import XCTest

/// The training commands' signal handling: while training, SIGINT or SIGTERM cancels the run; afterwards the
/// handlers that were there before are back.
final class InterruptsTests: XCTestCase {
    /// The address of the handler installed for `sig`.
    func handler(_ sig: Int32) -> UnsafeRawPointer? {
        let current = signal(sig, SIG_IGN)
        signal(sig, current)
        return unsafeBitCast(current, to: UnsafeRawPointer?.self)
    }

    func testASignalCancelsAndThePreviousHandlersComeBack() {
        let mine: @convention(c) (Int32) -> Void = { _ in }
        for sig in [SIGINT, SIGTERM] {
            let before = signal(sig, mine)
            defer { signal(sig, before) }
            let other = sig == SIGINT ? SIGTERM : SIGINT
            let otherBefore = handler(other)
            let token = CancellationToken()
            let cancelled = Interrupts.cancelling(token) { () -> Bool in
                XCTAssertNotEqual(handler(sig), unsafeBitCast(mine, to: UnsafeRawPointer?.self))
                kill(getpid(), sig)
                let deadline = Date().addingTimeInterval(10)
                while !token.isCancelled && Date() < deadline { usleep(10_000) }
                return token.isCancelled
            }
            XCTAssertTrue(cancelled, "signal \(sig) did not cancel")
            XCTAssertEqual(handler(sig), unsafeBitCast(mine, to: UnsafeRawPointer?.self), "signal \(sig)")
            XCTAssertEqual(handler(other), otherBefore, "signal \(other)")
        }
    }
}
