// Tokenizer benchmark, Swift side: single-threaded batch encoding throughput and tokenizer.json load time.
//
//   tokenizer-bench DIR [--runs N] [--families wordpiece,bpe,unigram] [--only load|encode]
//   tokenizer-bench --generate FILE [--mb 4]
//
// DIR is what `python3 Benchmarks/tokenizer_bench.py prepare DIR` writes: corpus.txt and wordpiece.json,
// bpe.json, unigram.json (30k vocabularies trained on the corpus with the Hugging Face library). For each
// family it prints one JSON line with the median (over --runs runs, after one warm-up) of the time to encode
// every line of the corpus with `encodeBatch(lines, parallel: false)` and of `Tokenizer.load`. `cpu_per_wall`
// (process CPU time over wall time while encoding) shows that one core did the work; `mb_per_cpu_s` and
// `load_cpu_ms` are the same medians in thread CPU time (steadier on a busy machine); `ids_checksum` hashes
// all ids in order, to check that both libraries agree. `--generate` writes the corpus (the same bytes as the
// Python generator). Benchmarks/compare_tokenizers.sh runs both sides.

import Foundation
import Tokenizers

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// CPU time of the calling thread (less sensitive than wall time to other programs on a busy machine).
func threadCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// CPU time of the whole process (all threads).
func cpuSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func round(_ x: Double, _ digits: Int) -> Double {
    let p = pow(10, Double(digits))
    return (x * p).rounded() / p
}

var args = Array(CommandLine.arguments.dropFirst())
@MainActor func option(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name) else { return nil }
    guard i + 1 < args.count else { fail("\(name) needs a value") }
    let v = args[i + 1]
    args.removeSubrange(i...(i + 1))
    return v
}

let mb = Double(option("--mb") ?? "4") ?? 4
if let out = option("--generate") {
    let lines = generateCorpus(targetBytes: Int(mb * 1_000_000))
    let text = lines.joined(separator: "\n") + "\n"
    do { try Data(text.utf8).write(to: URL(fileURLWithPath: out)) } catch { fail("cannot write \(out): \(error)") }
    print("{\"corpus\": \"\(out)\", \"bytes\": \(text.utf8.count), \"lines\": \(lines.count)}")
    exit(0)
}
let runs = max(1, Int(option("--runs") ?? "5") ?? 5)
let families = (option("--families") ?? "wordpiece,bpe,unigram").split(separator: ",").map(String.init)
let only = option("--only")  // "load" or "encode" (for profiling one part)
guard args.count == 1 else { fail("usage: tokenizer-bench DIR [--runs N] [--families a,b] [--only load|encode] | --generate FILE [--mb 4]") }
let dir = URL(fileURLWithPath: args[0])

guard let corpus = try? String(contentsOf: dir.appendingPathComponent("corpus.txt"), encoding: .utf8) else {
    fail("cannot read \(dir.path)/corpus.txt (run: python3 Benchmarks/tokenizer_bench.py prepare \(dir.path))")
}
var lines = corpus.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { String($0)! }
if lines.last == "" { lines.removeLast() }
let nbytes = lines.reduce(0) { $0 + $1.utf8.count }

/// A number for the JSON output (null when there was nothing to measure).
func num(_ x: Double, _ digits: Int) -> String { x.isFinite ? "\(round(x, digits))" : "null" }

for family in families {
    let url = dir.appendingPathComponent(family + ".json")
    var loads: [Double] = [], loadsCPU: [Double] = []
    var tok: Tokenizer! = nil
    for _ in 0...(only == "encode" ? 0 : runs) {
        tok = nil
        let t0 = now(), c0 = threadCPUSeconds()
        do { tok = try Tokenizer.load(from: url) } catch { fail("cannot load \(url.path): \(error)") }
        loads.append(now() - t0)
        loadsCPU.append(threadCPUSeconds() - c0)
    }
    var times: [Double] = [], timesCPU: [Double] = []
    var ntok = 0
    var checksum: UInt64 = 0  // of all ids in order, to check that both libraries agree
    var encs: [Encoding] = []
    let c0 = cpuSeconds(), w0 = now()
    for _ in 0...runs where only != "load" {
        encs = []
        let t0 = now(), tc0 = threadCPUSeconds()
        do { encs = try tok.encodeBatch(lines, parallel: false) } catch { fail("encoding failed: \(error)") }
        times.append(now() - t0)
        timesCPU.append(threadCPUSeconds() - tc0)
    }
    let cpu = times.isEmpty ? .nan : (cpuSeconds() - c0) / (now() - w0)
    for e in encs {
        ntok += e.count
        for id in e.ids { checksum = checksum &* 1_000_003 &+ UInt64(id + 1) }
    }
    encs = []
    func med(_ xs: [Double]) -> Double { xs.count > 1 ? median(Array(xs.dropFirst())) : .nan }
    let enc = med(times), load = med(loads)
    print("{\"impl\": \"swift\", \"family\": \"\(family)\", \"lines\": \(lines.count), \"bytes\": \(nbytes), \"tokens\": \(ntok), "
        + "\"ids_checksum\": \(checksum), \"encode_s\": \(num(enc, 4)), \"mb_per_s\": \(num(Double(nbytes) / enc / 1e6, 3)), "
        + "\"load_ms\": \(num(load * 1e3, 2)), \"cpu_per_wall\": \(num(cpu, 2)), "
        + "\"mb_per_cpu_s\": \(num(Double(nbytes) / med(timesCPU) / 1e6, 3)), \"load_cpu_ms\": \(num(med(loadsCPU) * 1e3, 2))}")
    fflush(nil)
}
