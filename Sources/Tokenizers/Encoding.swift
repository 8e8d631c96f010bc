import JSON
import Foundation

/// The result of encoding a text (or a pair of texts).
public struct Encoding: Equatable {
    public var ids: [Int] = []
    public var tokens: [String] = []
    public var typeIds: [Int] = []
    public var attentionMask: [Int] = []
    public var specialTokensMask: [Int] = []
    /// Character (unicode code point) offsets into the input text, as Python reports them.
    public var offsets: [(Int, Int)] = []
    /// Index of the word (pre-tokenizer split) each token comes from; nil for special tokens.
    public var wordIds: [Int?] = []
    /// Encodings of the parts removed by truncation.
    public var overflowing: [Encoding] = []

    public init() {}

    public var count: Int { ids.count }

    public static func == (a: Encoding, b: Encoding) -> Bool {
        a.ids == b.ids && a.tokens == b.tokens && a.typeIds == b.typeIds && a.attentionMask == b.attentionMask
            && a.specialTokensMask == b.specialTokensMask && a.offsets.map { [$0.0, $0.1] } == b.offsets.map { [$0.0, $0.1] }
    }

    mutating func append(id: Int, token: String, typeId: Int, offset: (Int, Int), special: Bool, word: Int?) {
        ids.append(id); tokens.append(token); typeIds.append(typeId); attentionMask.append(1)
        specialTokensMask.append(special ? 1 : 0); offsets.append(offset); wordIds.append(word)
    }

    mutating func reserve(_ n: Int) {
        ids.reserveCapacity(n); tokens.reserveCapacity(n); typeIds.reserveCapacity(n); attentionMask.reserveCapacity(n)
        specialTokensMask.reserveCapacity(n); offsets.reserveCapacity(n); wordIds.reserveCapacity(n)
    }

    /// Appends `o` with every type id replaced by `typeId` (when given).
    mutating func append(_ o: Encoding, typeId: Int?) {
        ids += o.ids; tokens += o.tokens
        if let t = typeId { typeIds.append(contentsOf: repeatElement(t, count: o.count)) } else { typeIds += o.typeIds }
        attentionMask += o.attentionMask
        specialTokensMask += o.specialTokensMask; offsets += o.offsets; wordIds += o.wordIds
    }

    mutating func append(_ o: Encoding) {
        ids += o.ids; tokens += o.tokens; typeIds += o.typeIds; attentionMask += o.attentionMask
        specialTokensMask += o.specialTokensMask; offsets += o.offsets; wordIds += o.wordIds
    }

    func slice(_ r: Range<Int>) -> Encoding {
        var e = Encoding()
        e.ids = Array(ids[r]); e.tokens = Array(tokens[r]); e.typeIds = Array(typeIds[r])
        e.attentionMask = Array(attentionMask[r]); e.specialTokensMask = Array(specialTokensMask[r])
        e.offsets = Array(offsets[r]); e.wordIds = Array(wordIds[r])
        return e
    }

    /// Truncates to `maxLength`, keeping the removed parts (with `stride` overlap) as overflowing.
    mutating func truncate(maxLength: Int, stride: Int, direction: TruncationDirection) {
        let n = ids.count
        if maxLength >= n { return }
        if maxLength == 0 {
            let o = self
            self = Encoding()
            overflowing.append(o)
            return
        }
        let step = max(1, maxLength - min(stride, maxLength - 1))
        var parts: [Range<Int>] = []
        switch direction {
        case .right:
            var start = 0
            while true {
                let stop = min(start + maxLength, n)
                parts.append(start..<stop)
                if stop == n { break }
                start += step
            }
        case .left:
            var stop = n
            while true {
                let start = max(0, stop - maxLength)
                parts.append(start..<stop)
                if start == 0 { break }
                stop -= step
            }
        }
        let old = self
        self = old.slice(parts[0])
        overflowing = parts.dropFirst().map { old.slice($0) }
    }

    mutating func pad(to length: Int, padId: Int, padTypeId: Int, padToken: String, direction: PaddingDirection) {
        for i in overflowing.indices { overflowing[i].pad(to: length, padId: padId, padTypeId: padTypeId, padToken: padToken, direction: direction) }
        let n = length - ids.count
        if n <= 0 { return }
        let ins: (inout Encoding) -> Void = { e in
            switch direction {
            case .right:
                e.ids += Array(repeating: padId, count: n); e.typeIds += Array(repeating: padTypeId, count: n)
                e.tokens += Array(repeating: padToken, count: n); e.attentionMask += Array(repeating: 0, count: n)
                e.specialTokensMask += Array(repeating: 1, count: n); e.offsets += Array(repeating: (0, 0), count: n)
                e.wordIds += Array(repeating: nil, count: n)
            case .left:
                e.ids = Array(repeating: padId, count: n) + e.ids; e.typeIds = Array(repeating: padTypeId, count: n) + e.typeIds
                e.tokens = Array(repeating: padToken, count: n) + e.tokens; e.attentionMask = Array(repeating: 0, count: n) + e.attentionMask
                e.specialTokensMask = Array(repeating: 1, count: n) + e.specialTokensMask
                e.offsets = Array(repeating: (0, 0), count: n) + e.offsets
                e.wordIds = Array(repeating: nil, count: n) + e.wordIds
            }
        }
        ins(&self)
    }
}

public enum TruncationDirection: String { case left = "Left", right = "Right" }
public enum TruncationStrategy: String { case longestFirst = "LongestFirst", onlyFirst = "OnlyFirst", onlySecond = "OnlySecond" }
public enum PaddingDirection: String { case left = "Left", right = "Right" }

public struct TruncationParams: Equatable {
    public var maxLength: Int
    public var stride: Int = 0
    public var strategy: TruncationStrategy = .longestFirst
    public var direction: TruncationDirection = .right
    public init(maxLength: Int, stride: Int = 0, strategy: TruncationStrategy = .longestFirst, direction: TruncationDirection = .right) {
        self.maxLength = maxLength; self.stride = stride; self.strategy = strategy; self.direction = direction
    }

    static func parse(_ n: JNode) throws -> TruncationParams {
        let n = n.withComponent("truncation")
        var p = TruncationParams(maxLength: try n.int("max_length"))
        p.stride = try n.int("stride", default: 0)
        if let s = n.optional("strategy") {
            guard let v = TruncationStrategy(rawValue: try s.string()) else { throw s.invalid("unknown truncation strategy") }
            p.strategy = v
        }
        if let d = n.optional("direction") {
            guard let v = TruncationDirection(rawValue: try d.string()) else { throw d.invalid("unknown truncation direction") }
            p.direction = v
        }
        return p
    }

    /// The tokenizer.json form, as the Rust library writes it.
    func toJSON() -> JSONValue {
        .obj([("direction", .string(direction.rawValue)), ("max_length", .number(Double(maxLength))),
              ("strategy", .string(strategy.rawValue)), ("stride", .number(Double(stride)))])
    }
}

public struct PaddingParams: Equatable {
    /// nil = pad to the longest encoding of the batch.
    public var fixedLength: Int?
    public var direction: PaddingDirection = .right
    public var padToMultipleOf: Int?
    public var padId: Int = 0
    public var padTypeId: Int = 0
    public var padToken: String = "[PAD]"
    public init(fixedLength: Int? = nil, direction: PaddingDirection = .right, padToMultipleOf: Int? = nil,
                padId: Int = 0, padTypeId: Int = 0, padToken: String = "[PAD]") {
        self.fixedLength = fixedLength; self.direction = direction; self.padToMultipleOf = padToMultipleOf
        self.padId = padId; self.padTypeId = padTypeId; self.padToken = padToken
    }

    static func parse(_ n: JNode) throws -> PaddingParams {
        let n = n.withComponent("padding")
        var p = PaddingParams()
        if let s = n.optional("strategy") {
            switch s.value {
            case .string("BatchLongest"): p.fixedLength = nil
            case .object:
                p.fixedLength = try s.int("Fixed")
            default: throw s.invalid("unknown padding strategy")
            }
        }
        if let d = n.optional("direction") {
            guard let v = PaddingDirection(rawValue: try d.string()) else { throw d.invalid("unknown padding direction") }
            p.direction = v
        }
        if let m = n.optional("pad_to_multiple_of") { p.padToMultipleOf = try m.int() }
        p.padId = try n.int("pad_id", default: 0)
        p.padTypeId = try n.int("pad_type_id", default: 0)
        p.padToken = try n.string("pad_token", default: "[PAD]")
        return p
    }

    /// The tokenizer.json form, as the Rust library writes it.
    func toJSON() -> JSONValue {
        .obj([("strategy", fixedLength.map { .obj([("Fixed", .number(Double($0)))]) } ?? .string("BatchLongest")),
              ("direction", .string(direction.rawValue)),
              ("pad_to_multiple_of", padToMultipleOf.map { .number(Double($0)) } ?? .null),
              ("pad_id", .number(Double(padId))), ("pad_type_id", .number(Double(padTypeId))), ("pad_token", .string(padToken))])
    }
}

func truncateEncodings(_ a: inout Encoding, _ b: inout Encoding?, _ p: TruncationParams) throws {
    if p.maxLength == 0 {
        a.truncate(maxLength: 0, stride: p.stride, direction: p.direction)
        b?.truncate(maxLength: 0, stride: p.stride, direction: p.direction)
        return
    }
    let total = a.count + (b?.count ?? 0)
    if total <= p.maxLength { return }
    let toRemove = total - p.maxLength
    switch p.strategy {
    case .longestFirst:
        if var other = b {
            var n1 = a.count, n2 = other.count
            let swap = n1 > n2
            if swap { (n1, n2) = (n2, n1) }
            if n1 > p.maxLength { n2 = n1 } else { n2 = max(n1, p.maxLength - n1) }
            if n1 + n2 > p.maxLength {
                n1 = p.maxLength / 2
                n2 = n1 + p.maxLength % 2
            }
            if swap { (n1, n2) = (n2, n1) }
            a.truncate(maxLength: n1, stride: p.stride, direction: p.direction)
            other.truncate(maxLength: n2, stride: p.stride, direction: p.direction)
            b = other
        } else {
            a.truncate(maxLength: total - toRemove, stride: p.stride, direction: p.direction)
        }
    case .onlyFirst:
        if a.count > toRemove { a.truncate(maxLength: a.count - toRemove, stride: p.stride, direction: p.direction) } else {
            throw TokenizerError.truncation("Truncation error: Sequence to truncate too short to respect the provided max_length")
        }
    case .onlySecond:
        guard var other = b else { throw TokenizerError.truncation("Truncation error: Second sequence not provided") }
        if other.count > toRemove { other.truncate(maxLength: other.count - toRemove, stride: p.stride, direction: p.direction); b = other } else {
            throw TokenizerError.truncation("Truncation error: Sequence to truncate too short to respect the provided max_length")
        }
    }
}

func padEncodings(_ encs: inout [Encoding], _ p: PaddingParams) {
    guard !encs.isEmpty else { return }
    var len = p.fixedLength ?? encs.map { $0.count }.max()!
    if let m = p.padToMultipleOf, m > 0, len % m > 0 { len += m - len % m }
    for i in encs.indices { encs[i].pad(to: len, padId: p.padId, padTypeId: p.padTypeId, padToken: p.padToken, direction: p.direction) }
}
