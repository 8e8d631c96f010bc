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

    /// The defaults: 127.0.0.1:8080, bodies up to 1 MiB, at most 2048 new tokens per completion, up to 64
    /// completions per batched step.
    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, maxTokensLimit: Int = 2048,
                maxBatchSize: Int = 64, modelName: String? = nil, loadOptions: ModelLoadOptions = ModelLoadOptions()) {
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.maxTokensLimit = maxTokensLimit
        self.maxBatchSize = maxBatchSize
        self.modelName = modelName
        self.loadOptions = loadOptions
    }

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
    }
}
