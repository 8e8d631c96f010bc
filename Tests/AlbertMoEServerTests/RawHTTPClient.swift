import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP answer as read off the socket.
struct HTTPAnswer {
    let status: Int
    /// Header names lowercased.
    let headers: [String: String]
    let body: Data

    var text: String { String(decoding: body, as: UTF8.self) }

    /// The body as a JSON object (fails the caller's expectation with an error when it is not one).
    func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw ClientError("the body is not a JSON object: \(text)")
        }
        return object
    }

    /// The `data:` payloads of a server-sent event stream, in order.
    var events: [String] {
        text.components(separatedBy: "\n\n").compactMap { event in
            event.hasPrefix("data: ") ? String(event.dropFirst("data: ".count)) : nil
        }
    }
}

struct ClientError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A minimal HTTP/1.1 client over a plain socket, so that tests can send any bytes at all (invalid JSON, cut bodies,
/// broken request lines) and see exactly what comes back. Each call is one connection, closed by the server after
/// its answer (`Connection: close`); calls block, so make them from threads, never from Swift concurrency tasks.
enum RawHTTPClient {
    /// Sends a request with a JSON (or any) body.
    static func request(port: Int, _ method: String, _ path: String, body: Data? = nil,
                        headers: [String: String] = [:]) throws -> HTTPAnswer {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        let raw = Data((head + "\r\n").utf8) + (body ?? Data())
        guard let answer = try exchange(port: port, raw) else { throw ClientError("the server closed without answering") }
        return answer
    }

    /// POSTs `json` (a JSON text) to `path`.
    static func post(port: Int, _ path: String, _ json: String) throws -> HTTPAnswer {
        try request(port: port, "POST", path, body: Data(json.utf8))
    }

    /// Sends `raw`, waits for the first bytes of the answer and hangs up without reading the rest.
    static func hangUpEarly(port: Int, _ raw: Data) throws {
        let fd = try connected(port: port, timeout: 10)
        defer { close(fd) }
        try send(raw, to: fd)
        var byte: UInt8 = 0
        _ = recv(fd, &byte, 1, 0)
    }

    /// Writes `raw` as is, then (with `closeWriting`) shuts the sending side, and reads until the server closes.
    /// Returns nil when the server closed without sending anything.
    static func exchange(port: Int, _ raw: Data, closeWriting: Bool = false, timeout: Int = 30) throws -> HTTPAnswer? {
        let fd = try connected(port: port, timeout: timeout)
        defer { close(fd) }
        try send(raw, to: fd)
        if closeWriting { shutdown(fd, Int32(SHUT_WR)) }
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { break }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError("no answer within \(timeout) s") }
                if errno == ECONNRESET { break }
                throw ClientError("recv() failed: errno \(errno)")
            }
            received.append(contentsOf: buffer[0 ..< n])
        }
        return received.isEmpty ? nil : try parse(received)
    }

    /// A socket connected to 127.0.0.1:`port`, whose reads give up after `timeout` seconds.
    static func connected(port: Int, timeout: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClientError("socket() failed: errno \(errno)") }
        var time = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(fd)
            throw ClientError("connect() to port \(port) failed: errno \(errno)")
        }
        return fd
    }

    private static func send(_ raw: Data, to fd: Int32) throws {
        try raw.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw ClientError("send() failed: errno \(errno)") }
                offset += n
            }
        }
    }

    /// Splits a full HTTP/1.1 response into status, headers and (de-chunked) body.
    static func parse(_ data: Data) throws -> HTTPAnswer {
        let bytes = [UInt8](data)
        guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { throw ClientError("no end of the head") }
        let lines = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw ClientError("bad status line \(lines[0])") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var rest = Array(bytes[end.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" {
            var body: [UInt8] = []
            while let lineEnd = rest.firstRange(of: Array("\r\n".utf8)) {
                let sizeText = String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";")[0], radix: 16) else {
                    throw ClientError("bad chunk size \(sizeText)")
                }
                if size == 0 { break }
                let start = lineEnd.upperBound
                guard rest.count >= start + size + 2 else { throw ClientError("cut chunk") }
                body += rest[start ..< start + size]
                rest = Array(rest[(start + size + 2)...])
            }
            return HTTPAnswer(status: status, headers: headers, body: Data(body))
        }
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            guard rest.count >= length else { throw ClientError("the body is shorter than its Content-Length") }
            rest = Array(rest[..<length])
        }
        return HTTPAnswer(status: status, headers: headers, body: Data(rest))
    }
}
