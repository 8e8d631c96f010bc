// The benchmark corpus: deterministic English-like text with punctuation, digits, accented words, CJK and
// emoji. This is the generator of Benchmarks/tokenizer_bench.py, call for call (splitmix64, integer only),
// so that both write the same bytes; keep the two in sync.

let common = """
    the of and to in a is that for it as was with be by on not he this are or his from at which but have an \
    they you were her she there been one all we their has would when if so no will more can out up who them \
    some about into than its time only could new these two may first then do any like my now over such our man \
    me even most made after also did many before must through back years where much your way well down should \
    because each just those people how too little state good very make world still own see men work long get \
    here between both life being under never day same another know while last might us great old year off come \
    since against go came right used take three small large system water number house part government during \
    without place around however school every within information development while public report research
    """.split(separator: " ").map(String.init)
let syllables = """
    ka ri to ne mu sa lo be di fa ge hi jo ku la me no pe qua re si tu ve wa xi yo ze an en in on un ar er ir or \
    ur al el il ol ul ment tion ing ed er ly est ness able ful less ous ive ize ship hood ward wise pre pro con \
    dis re un sub super inter trans ex co de th st tr pl gr bl cr fl sh ch
    """.split(separator: " ").map(String.init)
let accented = """
    café naïve résumé Zürich São Paulo fiancée déjà vu Ångström Málaga Kraków façade crème brûlée piñata \
    jalapeño Öresund über Mädchen coöperate élan señor Dvořák Łódź Ærø
    """.split(separator: " ").map(String.init)
let cjk = ["日本語", "東京", "中文", "北京大学", "漢字", "こんにちは", "ありがとう", "한국어", "서울", "台北", "学生", "电脑"]
let emoji = ["😀", "🚀", "👍", "👍🏽", "🎉", "❤️", "🔥", "🤖", "🌍", "✨", "👩‍💻", "🇫🇷"]
let sentenceEnds = [".", ".", ".", ".", "!", "?", ";", "..."]
let contractions = ["'s", "'t", "'re", "'ll", "'ve", "'d"]

struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// An index in [0, n) that favours small ones (roughly Zipf-like).
    mutating func skewed(_ n: Int) -> Int { below(below(n) + 1) }
}

private func word(_ r: inout SplitMix64) -> String {
    let k = r.below(1000)
    if k < 560 { return common[r.skewed(common.count)] }
    if k < 820 {
        var w = ""
        for _ in 0..<(1 + r.below(4)) { w += syllables[r.skewed(syllables.count)] }
        return w
    }
    if k < 880 {
        switch r.below(5) {
        case 0: return String(r.below(100))
        case 1: return String(1900 + r.below(130))
        case 2:
            let a = r.below(1000), b = r.below(100)
            return "\(a).\(b)"
        case 3: return "\(r.below(100))%"
        default:
            let a = r.below(1000), b = r.below(900) + 100
            return "\(a),\(b)"
        }
    }
    if k < 915 { return accented[r.below(accented.count)] }
    if k < 935 { return cjk[r.below(cjk.count)] }
    if k < 950 { return emoji[r.below(emoji.count)] }
    let f = r.below(4)
    let a = common[r.skewed(common.count)]
    switch f {
    case 0: return a + contractions[r.below(contractions.count)]
    case 1: return a + "-" + common[r.skewed(common.count)]
    case 2: return "\"" + a + "\""
    default: return "(" + a + ")"
    }
}

private func sentence(_ r: inout SplitMix64) -> String {
    var words: [String] = []
    for i in 0..<(5 + r.below(21)) {
        var w = word(&r)
        if i == 0, let c = w.utf8.first, c >= UInt8(ascii: "a"), c <= UInt8(ascii: "z") {
            w = w.prefix(1).uppercased() + w.dropFirst()
        }
        if r.below(100) < 7 { w += r.below(3) != 0 ? "," : ":" }
        words.append(w)
    }
    return words.joined(separator: " ") + sentenceEnds[r.below(sentenceEnds.count)]
}

/// Lines of text until `targetBytes` UTF-8 bytes (newlines included) are reached; the file form is
/// `lines.joined(separator: "\n") + "\n"`.
func generateCorpus(targetBytes: Int, seed: UInt64 = 20_240_611) -> [String] {
    var r = SplitMix64(state: seed)
    var lines: [String] = []
    var size = 0
    while size < targetBytes {
        var parts: [String] = []
        for _ in 0..<(1 + r.below(4)) { parts.append(sentence(&r)) }
        let line = parts.joined(separator: " ")
        lines.append(line)
        size += line.utf8.count + 1
    }
    return lines
}
