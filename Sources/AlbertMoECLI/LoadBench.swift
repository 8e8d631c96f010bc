import AlbertMoE
import AsyncHTTPClient
import ArgumentParser
import Dispatch
import Foundation

/// `albertmoe load-bench`: a load test of a running server's /v1/completions: `--clients` clients each send one
/// request after another for `--duration` seconds, and one JSON line gives what the server sustained.
struct LoadBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load-bench",
        abstract: "Load-test a server's /v1/completions with concurrent clients; print requests/s, generated tokens/s, "
            + "latency percentiles and errors as one JSON line.")

    @Option(help: "The server's address.") var url: String = "http://127.0.0.1:8080"
    @Option(help: "Clients sending requests at the same time, each one after another.") var clients: Int = 64
    @Option(help: "Seconds during which clients start requests (those started finish).") var duration: Double = 20
    @Option(help: "The prompt of every request.") var prompt: String = "after monday comes"
    @Option(name: .customLong("max_tokens"), help: "max_tokens of every request.") var maxTokens: Int = 16
    @Option(help: "temperature of every request (0: greedy).") var temperature: Double = 0
    @Option(help: "Seconds of requests before the measurement, not counted.") var warmup: Double = 2
    @Option(help: "Seconds a request may take before it counts as an error.") var timeout: Double = 60

    func validate() throws {
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw ValidationError("--url must be an http:// or https:// address, got \(url)")
        }
        guard clients >= 1 else { throw ValidationError("--clients must be at least 1, got \(clients)") }
        guard duration > 0 else { throw ValidationError("--duration must be positive, got \(duration)") }
        guard maxTokens >= 1 else { throw ValidationError("--max_tokens must be at least 1, got \(maxTokens)") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be >= 0, got \(temperature)") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be >= 0, got \(warmup)") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive, got \(timeout)") }
    }

    func run() throws {
        let body = try JSONSerialization.data(withJSONObject: [
            "prompt": prompt, "max_tokens": maxTokens, "temperature": temperature,
        ] as [String: Any])
        let endpoint = url.hasSuffix("/") ? url + "v1/completions" : url + "/v1/completions"
        let (clients, duration, warmup, timeout) = (clients, duration, warmup, timeout)
        let summary = try waitFor { () async throws -> LoadSummary in
            let pool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60),
                                                               concurrentHTTP1ConnectionsPerHostSoftLimit: clients)
            // A connection refused is retried until the connect timeout: 2 s, so that a server that is not there
            // is reported soon.
            let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                    configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(2)),
                                                                            connectionPool: pool))
            let load = Load(client: client, endpoint: endpoint, body: body, timeout: timeout)
            if warmup > 0 { _ = await load.run(clients: clients, duration: warmup) }
            let summary = await load.run(clients: clients, duration: duration)
            try await client.shutdown()
            return summary
        }
        let fields: [(String, Any)] = [
            ("clients", clients), ("duration_s", round1(summary.elapsed)), ("requests", summary.latencies.count),
            ("errors", summary.errors), ("requests_per_s", round1(Double(summary.latencies.count) / summary.elapsed)),
            ("generated_tokens_per_s", round1(Double(summary.tokens) / summary.elapsed)),
            ("latency_p50_ms", round1(summary.percentile(50) * 1000)), ("latency_p90_ms", round1(summary.percentile(90) * 1000)),
            ("latency_p99_ms", round1(summary.percentile(99) * 1000)),
        ]
        print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        guard !summary.latencies.isEmpty else {
            throw AlbertMoEError.cannotContinue("no request to \(endpoint) was answered: \(summary.firstError ?? "none was sent")")
        }
        if let error = summary.firstError { FileHandle.standardError.write(Data("first error: \(error)\n".utf8)) }
    }

    private func round1(_ x: Double) -> Double { x.isFinite ? (x * 10).rounded() / 10 : 0 }
}

/// What one load run measured.
struct LoadSummary: Sendable {
    /// Seconds from the start to the end of the last request.
    var elapsed: Double = 0
    /// Seconds each answered request took.
    var latencies: [Double] = []
    /// The completion tokens of the answered requests.
    var tokens = 0
    /// Requests that failed: no answer, a status other than 200, or an answer without usage.
    var errors = 0
    var firstError: String?

    /// The p-th percentile of the latencies (nearest rank), in seconds; 0 without any.
    func percentile(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return 0 }
        let sorted = latencies.sorted()
        return sorted[min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))]
    }

    mutating func add(_ other: LoadSummary) {
        latencies += other.latencies
        tokens += other.tokens
        errors += other.errors
        firstError = firstError ?? other.firstError
    }
}

/// Clients sending one completion request after another to one endpoint.
private struct Load: Sendable {
    let client: HTTPClient
    let endpoint: String
    let body: Data
    let timeout: Double

    func run(clients: Int, duration: Double) async -> LoadSummary {
        let start = DispatchTime.now().uptimeNanoseconds
        let deadline = start + UInt64(duration * 1e9)
        var total = LoadSummary()
        await withTaskGroup(of: LoadSummary.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    var own = LoadSummary()
                    while DispatchTime.now().uptimeNanoseconds < deadline { await request(into: &own) }
                    return own
                }
            }
            for await part in group { total.add(part) }
        }
        total.elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return total
    }

    /// Sends one request and notes its latency and tokens, or its failure.
    private func request(into summary: inout LoadSummary) async {
        func fail(_ why: String) {
            summary.errors += 1
            summary.firstError = summary.firstError ?? why
        }
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(body)
        let t0 = DispatchTime.now().uptimeNanoseconds
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            let bytes = try await response.body.collect(upTo: 16 << 20)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            let answer = Data(bytes.readableBytesView)
            guard response.status.code == 200 else {
                return fail("status \(response.status.code): \(String(decoding: answer, as: UTF8.self))")
            }
            guard let json = try JSONSerialization.jsonObject(with: answer) as? [String: Any],
                  let tokens = (json["usage"] as? [String: Any])?["completion_tokens"] as? Int else {
                return fail("an answer without usage.completion_tokens: \(String(decoding: answer, as: UTF8.self))")
            }
            summary.latencies.append(seconds)
            summary.tokens += tokens
        } catch {
            fail("\(error)")
        }
    }
}
