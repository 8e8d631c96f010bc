import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The connections a server has open, against its limit.
final class ConnectionCounter: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    /// Counts a new connection; false when it is past the limit (it is counted all the same until it closes).
    func opened() -> Bool { open.add(1, ordering: .relaxed).newValue <= limit }

    func closed() { open.subtract(1, ordering: .relaxed) }
}

/// What each connection of a server may take: how long a request's head and body may take to arrive, how long a
/// connection may sit without a request, and how many connections may be open at once.
struct ConnectionLimits: Sendable {
    let headerTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let counter: ConnectionCounter

    init(_ configuration: ServerConfiguration) {
        func amount(_ d: Duration) -> TimeAmount {
            let (seconds, attoseconds) = d.components
            return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        }
        headerTimeout = amount(configuration.headerTimeout)
        bodyTimeout = amount(configuration.bodyTimeout)
        idleTimeout = amount(configuration.idleTimeout)
        counter = ConnectionCounter(limit: configuration.maxConnections)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with each connection held to `limits`.
    static func guardedHTTP1(_ limits: ConnectionLimits) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in GuardedHTTP1Channel(responder: responder, limits: limits) }
    }
}

/// Hummingbird's HTTP/1.1 child channel with a `ConnectionGuard` at the front of each connection's pipeline, where
/// it sees the bytes before they are decoded, and a `RequestProgress` after the decoding, where it sees the requests.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let http1: HTTP1Channel
    let limits: ConnectionLimits

    init(responder: @escaping HTTPChannelHandler.Responder, limits: ConnectionLimits) {
        http1 = HTTP1Channel(responder: responder, configuration: .init(additionalChannelHandlers: [RequestProgress()]))
        self.limits = limits
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(ConnectionGuard(limits), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return http1.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await http1.handle(value: value, logger: logger)
    }
}

/// Holds a connection to its limits. A connection past the server's limit is answered 503 at once and closed. One
/// without a request in progress is closed after the idle timeout; once the first bytes of a request arrive, its
/// head must be complete within the header timeout, and then its body within the body timeout, or it is answered
/// 408 and closed. While the server computes and writes an answer (a stream of tokens may take long), no timeout runs.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum Phase { case idle, head, body, answering, closing }

    private let limits: ConnectionLimits
    private var phase = Phase.idle
    private var counted = false
    private var timer: Scheduled<Void>?
    /// Requests whose answer has not been written to its end (HTTP/1.1 pipelining may queue several).
    private var unanswered = 0
    /// Whether an answer has begun since the last request head (then a timeout closes without a 408 of its own).
    private var answerStarted = false
    /// This handler's place at the front of the pipeline, where its own answers are written.
    private var context: ChannelHandlerContext?

    init(_ limits: ConnectionLimits) { self.limits = limits }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard phase != .closing else { return }   // a refused or timed-out connection reads nothing more
        if phase == .idle {
            phase = .head
            arm(context, after: limits.headerTimeout)
        }
        context.fireChannelRead(data)
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !counted else { return }
        counted = true
        guard limits.counter.opened() else {
            answer(context, status: 503, "Service Unavailable",
                   "the server has \(limits.counter.limit) connections open, its limit: try again later", type: "server_error")
            return
        }
        arm(context, after: limits.idleTimeout)
    }

    private func finish() {
        timer?.cancel()
        timer = nil
        if counted { limits.counter.closed() }
        counted = false
    }

    // MARK: The requests, as `RequestProgress` sees them

    func requestHeadReceived() {
        guard phase != .closing, let context else { return }
        unanswered += 1
        answerStarted = false
        phase = .body
        arm(context, after: limits.bodyTimeout)
    }

    func requestEnded() {
        guard phase == .body else { return }
        phase = .answering
        timer?.cancel()
        timer = nil
    }

    func answerBegan() { answerStarted = true }

    func answerEnded() {
        unanswered = max(unanswered - 1, 0)
        guard phase == .answering, unanswered == 0, let context else { return }
        phase = .idle
        arm(context, after: limits.idleTimeout)
    }

    // MARK: Timeouts

    private func arm(_ context: ChannelHandlerContext, after amount: TimeAmount) {
        timer?.cancel()
        let armed = phase
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: amount) { [self] in
            timer = nil
            guard phase == armed else { return }
            switch armed {
            case .idle:
                phase = .closing
                context.close(promise: nil)
            case .head:
                answer(context, status: 408, "Request Timeout", "the request's head did not arrive within \(Self.seconds(limits.headerTimeout))")
            case .body where !answerStarted:
                answer(context, status: 408, "Request Timeout", "the request's body did not arrive within \(Self.seconds(limits.bodyTimeout))")
            case .body, .answering, .closing:
                phase = .closing
                context.close(promise: nil)
            }
        }
    }

    /// Writes a whole JSON error answer straight to the socket, then closes the connection.
    private func answer(_ context: ChannelHandlerContext, status: Int, _ reason: String, _ message: String,
                        type: String = "invalid_request_error") {
        phase = .closing
        timer?.cancel()
        timer = nil
        let body = (try? JSONBody.encode(ErrorBody(APIError(status: status, message: message, type: type)))) ?? Data()
        let head = "HTTP/1.1 \(status) \(reason)\r\ncontent-type: application/json\r\ncontent-length: \(body.count)\r\n"
            + "connection: close\r\n\r\n"
        let bytes = ByteBuffer(bytes: Data(head.utf8) + body)
        // Only the sending side is shut at once: closing a socket whose client is still sending would reset the
        // connection, and the client could lose the answer. What it sends is read and dropped until it hangs up, or
        // for a second at most.
        context.writeAndFlush(NIOAny(bytes)).assumeIsolated().whenComplete { _ in context.close(mode: .output, promise: nil) }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) { context.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if phase == .closing, let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)   // the client hung up after its answer
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    static func seconds(_ amount: TimeAmount) -> String {
        let s = Double(amount.nanoseconds) / 1e9
        return s == s.rounded() ? "\(Int(s)) s" : "\(s) s"
    }
}

/// Tells the connection's `ConnectionGuard` where its requests and answers are.
final class RequestProgress: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var connection: ConnectionGuard?

    func handlerAdded(context: ChannelHandlerContext) {
        connection = try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) { connection = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: connection?.requestHeadReceived()
        case .body: break
        case .end: connection?.requestEnded()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: connection?.answerBegan()
        case .body: break
        case .end: connection?.answerEnded()
        }
        context.write(data, promise: promise)
    }
}
