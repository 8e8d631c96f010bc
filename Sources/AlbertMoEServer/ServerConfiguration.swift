import AlbertMoE

/// How an `InferenceServer` listens and what it accepts.
public struct ServerConfiguration: Sendable {
    /// The address to listen on.
    public var host: String
    /// The TCP port; 0 picks a free one (read `InferenceServer.port` once started).
    public var port: Int
    /// Larger request bodies are refused with 413.
    public var maxBodyBytes: Int
    /// The largest max_tokens a completion request may ask for.
    public var maxTokensLimit: Int
    /// The most completions decoded together in one batched forward (more wait their turn).
    public var maxBatchSize: Int
    /// The model's name in the answers and in /v1/models; nil: the model directory's name.
    public var modelName: String?
    /// How the model directory is loaded: the sizes of one without config.json (the Python package's), and the
    /// attention of a causal model.
    public var loadOptions: ModelLoadOptions
    /// How long a request's head may take to arrive once its first bytes have: past it, 408 and the connection closes.
    public var headerTimeout: Duration
    /// How long a request's body may take to arrive once its head has (a slow or unterminated chunked body): past
    /// it, 408 and the connection closes.
    public var bodyTimeout: Duration
    /// How long a connection may stay open without a request in progress (before its first, between two).
    public var idleTimeout: Duration
    /// Connections open at once; one more is answered 503 at once and closed.
    public var maxConnections: Int

    /// The defaults: 127.0.0.1:8080, bodies up to 1 MiB, at most 2048 new tokens per completion, up to 64
    /// completions per batched step, 10 s for a request's head, 30 s for its body, idle connections closed after
    /// 60 s, at most 10,000 connections.
    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, maxTokensLimit: Int = 2048,
                maxBatchSize: Int = 64, modelName: String? = nil, loadOptions: ModelLoadOptions = ModelLoadOptions(),
                headerTimeout: Duration = .seconds(10), bodyTimeout: Duration = .seconds(30), idleTimeout: Duration = .seconds(60),
                maxConnections: Int = 10_000) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.maxTokensLimit = maxTokensLimit
        self.maxBatchSize = maxBatchSize
        self.modelName = modelName
        self.loadOptions = loadOptions
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }

    /// The longest timeout a setting may have.
    public static let longestTimeout = Duration.seconds(86_400)

    /// Throws an `AlbertMoEError.invalidValue` naming the first setting out of range.
    public func validate() throws {
        guard maxBodyBytes >= 1 else {
            throw AlbertMoEError.invalidValue(field: "maxBodyBytes", reason: "must be at least 1, got \(maxBodyBytes)")
        }
        guard maxTokensLimit >= 1 else {
            throw AlbertMoEError.invalidValue(field: "maxTokensLimit", reason: "must be at least 1, got \(maxTokensLimit)")
        }
        guard maxBatchSize >= 1 else {
            throw AlbertMoEError.invalidValue(field: "maxBatchSize", reason: "must be at least 1, got \(maxBatchSize)")
        }
        for (value, field) in [(headerTimeout, "headerTimeout"), (bodyTimeout, "bodyTimeout"), (idleTimeout, "idleTimeout")] {
            guard value > .zero && value <= Self.longestTimeout else {
                throw AlbertMoEError.invalidValue(field: field, reason: "must be more than 0 and at most 86400 seconds, got \(value)")
            }
        }
        guard maxConnections >= 1 else {
            throw AlbertMoEError.invalidValue(field: "maxConnections", reason: "must be at least 1, got \(maxConnections)")
        }
    }
}
