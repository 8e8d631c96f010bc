/// Turns the decoded text of the tokens generated so far into the pieces to send. It holds back what may still
/// change: an incomplete character at the end (decoded as U+FFFD) and an ending that could be the start of a stop
/// string. The completion's text is always the concatenation of the pieces, streamed or not. Pieces are cut between
/// Unicode scalars, not characters, so that a combining mark that follows is not lost.
public struct CompletionText {
    public let stops: [String]

    public init(stops: [String] = []) { self.stops = stops }
    /// The text sent so far.
    public private(set) var sent = ""

    /// The new piece for `decoded` (the decoded text of all tokens so far), and whether a stop string was found
    /// (the text then ends before it).
    public mutating func update(_ decoded: String) -> (piece: String, stopped: Bool) {
        let cuts = stops.compactMap { decoded.firstRange(of: $0)?.lowerBound }
        if let cut = cuts.min() {
            return (advance(to: String(decoded[..<cut])), true)
        }
        return (advance(to: String(String.UnicodeScalarView(decoded.unicodeScalars.dropLast(heldBack(decoded))))), false)
    }

    /// The rest of `decoded`, at the end of the generation.
    public mutating func finish(_ decoded: String) -> String { advance(to: decoded) }

    /// The scalars of `target` beyond as many as were already sent.
    private mutating func advance(to target: String) -> String {
        let done = sent.unicodeScalars.count
        guard target.unicodeScalars.count > done else { return "" }
        let piece = String(String.UnicodeScalarView(target.unicodeScalars.dropFirst(done)))
        sent += piece
        return piece
    }

    /// How many scalars at the end of `decoded` to keep back for now.
    private func heldBack(_ decoded: String) -> Int {
        let scalars = Array(decoded.unicodeScalars)
        let incomplete = scalars.reversed().prefix { $0 == "\u{FFFD}" }.count
        let stopStart = stops.map { stop in
            let start = Array(stop.unicodeScalars)
            return stride(from: min(start.count - 1, scalars.count), to: 0, by: -1)
                .first { scalars.suffix($0).elementsEqual(start.prefix($0)) } ?? 0
        }.max() ?? 0
        return max(incomplete, stopStart)
    }
}
