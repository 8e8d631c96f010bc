// kernel-bench: throughput of the CKernels hot loops.
//
//   swift run -c release kernel-bench [--threads N] [--reps N] [--only sgemm|attention]
//
// Every figure is the median of --reps timed calls (default 7, at least 5 recommended) after one untimed
// warm-up call. SGEMM counts 2*M*N*K flops per product. Attention counts 4*B*H*T*T*hd flops for the forward
// (QK^T and PV, 2*T*T*hd each) and 2.5x that for the backward (recomputed QK^T, dV = P^T dO, dP = dO V^T,
// dQ = dS K, dK = dS^T Q: 5 products); causal runs count half of those (the useful lower triangle).
import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Options

var threads: Int? = nil
var reps = 7
var only: String? = nil
do {
    var args = CommandLine.arguments.dropFirst().makeIterator()
    while let a = args.next() {
        switch a {
        case "--threads":
            guard let v = args.next(), let n = Int(v), n >= 1 else { fatalError("--threads needs a positive integer") }
            threads = n
        case "--reps":
            guard let v = args.next(), let n = Int(v), n >= 1 else { fatalError("--reps needs a positive integer") }
            reps = n
        case "--only":
            guard let v = args.next(), v == "sgemm" || v == "attention" else { fatalError("--only sgemm|attention") }
            only = v
        case "-h", "--help":
            print("usage: kernel-bench [--threads N] [--reps N] [--only sgemm|attention]")
            exit(0)
        default:
            fatalError("unknown argument \(a) (try --help)")
        }
    }
}
if let t = threads { ak_set_num_threads(Int32(t)) }
let nthreads = Int(ak_get_num_threads())
let isa = String(cString: ak_kernel_isa())

// MARK: - Helpers

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Median seconds of `reps` calls after one warm-up call.
@MainActor func timeMedian(_ body: () -> Void) -> Double {
    body()
    var ts: [Double] = []
    for _ in 0..<reps {
        let t0 = now()
        body()
        ts.append(now() - t0)
    }
    ts.sort()
    return ts[ts.count / 2]
}

struct Buffer {
    let p: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, seed: UInt64) {
        self.count = count
        p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        for i in 0..<count {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            p[i] = Float(Int((s >> 40) & 0xFFFF)) / 32768.0 - 1.0
        }
    }
    func free() { p.deallocate() }
}

func row(_ cols: [String], _ widths: [Int]) -> String {
    var s = ""
    for (c, w) in zip(cols, widths) {
        let pad = max(0, w - c.count)
        s += (s.isEmpty ? c + String(repeating: " ", count: pad) : String(repeating: " ", count: pad) + c) + " "
    }
    return s
}

func fmt(_ x: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", x) }

print("kernel-bench: isa=\(isa) threads=\(nthreads) reps=\(reps) (median after one warm-up)")

// MARK: - SGEMM

if only == nil || only == "sgemm" {
    struct Shape { let name: String; let ta: Int32; let tb: Int32; let m: Int; let n: Int; let k: Int; let batch: Int }
    let shapes = [
        Shape(name: "4096x768x768", ta: 0, tb: 0, m: 4096, n: 768, k: 768, batch: 1),
        Shape(name: "4096x3072x768", ta: 0, tb: 0, m: 4096, n: 3072, k: 768, batch: 1),
        Shape(name: "4096x768x3072", ta: 0, tb: 0, m: 4096, n: 768, k: 3072, batch: 1),
        Shape(name: "768x3072x4096 (transA)", ta: 1, tb: 0, m: 768, n: 3072, k: 4096, batch: 1),
        Shape(name: "96x 512x512x64 (QK^T, transB)", ta: 0, tb: 1, m: 512, n: 512, k: 64, batch: 96),
        Shape(name: "96x 512x64x512 (PV)", ta: 0, tb: 0, m: 512, n: 64, k: 512, batch: 96),
        Shape(name: "4096x30000x128", ta: 0, tb: 0, m: 4096, n: 30000, k: 128, batch: 1),
    ]
    let w = [32, 10, 10, 8, 10]
    print("")
    print(row(["SGEMM (M x N x K)", "GFLOP/s", "ms", "threads", "isa"], w))
    for s in shapes {
        let a = Buffer(s.m * s.k * s.batch, seed: 1), b = Buffer(s.k * s.n * s.batch, seed: 2)
        let c = Buffer(s.m * s.n * s.batch, seed: 3)
        let lda = s.ta != 0 ? s.m : s.k, ldb = s.tb != 0 ? s.k : s.n
        let t = timeMedian {
            if s.batch > 1 {
                ak_sgemm_strided_batched(s.ta, s.tb, s.m, s.n, s.k, 1, a.p, lda, s.m * s.k, b.p, ldb, s.k * s.n,
                                         0, c.p, s.n, s.m * s.n, s.batch)
            } else {
                ak_sgemm(s.ta, s.tb, s.m, s.n, s.k, 1, a.p, lda, b.p, ldb, 0, c.p, s.n)
            }
        }
        let flops = 2.0 * Double(s.m) * Double(s.n) * Double(s.k) * Double(s.batch)
        print(row([s.name, fmt(flops / t / 1e9, 1), fmt(t * 1e3, 3), "\(nthreads)", isa], w))
        a.free(); b.free(); c.free()
    }
}

// MARK: - Fused attention

if only == nil || only == "attention" {
    let B = 8, H = 12, T = 512, hd = 64
    let n = B * H * T * hd
    let q = Buffer(n, seed: 11), k = Buffer(n, seed: 12), v = Buffer(n, seed: 13), dout = Buffer(n, seed: 14)
    let o = Buffer(n, seed: 15), dq = Buffer(n, seed: 16), dk = Buffer(n, seed: 17), dv = Buffer(n, seed: 18)
    let lse = Buffer(B * H * T, seed: 19)
    let scale = Float(1.0 / Double(hd).squareRoot())
    let w = [40, 10, 10, 8, 10]
    print("")
    print(row(["attention B=\(B) H=\(H) T=\(T) hd=\(hd)", "GFLOP/s", "ms", "threads", "isa"], w))
    for causal in [Int32(0), Int32(1)] {
        let fwdFlops = 4.0 * Double(B * H) * Double(T) * Double(T) * Double(hd) * (causal != 0 ? 0.5 : 1.0)
        let fwd = {
            ak_attention_forward(q.p, k.p, v.p, T * hd, o.p, lse.p, B, H, T, T, hd, nil, causal, scale, 0, 0)
        }
        let tf = timeMedian(fwd)
        let tag = causal != 0 ? "causal" : "non-causal"
        print(row(["forward, \(tag)", fmt(fwdFlops / tf / 1e9, 1), fmt(tf * 1e3, 2), "\(nthreads)", isa], w))
        let tfb = timeMedian {
            fwd()
            ak_attention_backward(q.p, k.p, v.p, o.p, lse.p, dout.p, dq.p, dk.p, dv.p, B, H, T, T, hd, nil, causal,
                                  scale, 0, 0)
        }
        let fbFlops = fwdFlops * 3.5
        print(row(["forward+backward, \(tag)", fmt(fbFlops / tfb / 1e9, 1), fmt(tfb * 1e3, 2), "\(nthreads)", isa], w))
    }
    for b in [q, k, v, dout, o, dq, dk, dv, lse] { b.free() }
}
