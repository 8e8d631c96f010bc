import CKernels
import Foundation
import XCTest

/// Tests of the non-GEMM kernels against straightforward double-precision implementations, on both the
/// AVX2 path and the portable path.
final class KernelTests: XCTestCase {

    // MARK: - Helpers

    /// Runs `body` with the portable kernels forced, then with run-time detection (AVX2 where available).
    private func onBothPaths(_ body: (String) throws -> Void) rethrows {
        defer { ak_force_portable(0) }
        ak_force_portable(1)
        try body("portable")
        ak_force_portable(0)
        try body(String(cString: ak_kernel_isa()))
    }

    /// As onBothPaths, and for each path with the automatic attention tile and forced small tiles (7 and 16
    /// query rows), so that tile edges and the causal key limits of later tiles are exercised.
    private func onBothPathsAndTiles(_ body: (String) throws -> Void) rethrows {
        defer { ak_attention_set_tile(0) }
        try onBothPaths { path in
            for tile in [0, 16, 7] {
                ak_attention_set_tile(tile)
                try body("\(path) tile=\(tile)")
            }
        }
    }

    /// Deterministic generator (SplitMix64) so that failures reproduce.
    private struct Rng {
        var state: UInt64
        init(_ seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
        mutating func normal() -> Float {
            let u1 = max(uniform(), 1e-300), u2 = uniform()
            return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
        }
        mutating func normals(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in normal() * scale } }
    }

    private func assertClose(_ a: [Float], _ b: [Double], atol: Double, rtol: Double, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        var worst = 0.0, worstIndex = -1
        for i in 0..<min(a.count, b.count) {
            if Double(a[i]) == b[i] { continue }  // also equal infinities
            let err = abs(Double(a[i]) - b[i]) - (atol + rtol * abs(b[i]))
            if !(err <= 0) && (worstIndex < 0 || !(err <= worst)) { worst = err; worstIndex = i }
        }
        if worstIndex >= 0 {
            XCTFail("\(what): index \(worstIndex) got \(a[worstIndex]) want \(b[worstIndex])", file: file, line: line)
        }
    }

    private func assertClose(_ a: [Float], _ b: [Float], atol: Double, rtol: Double, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        assertClose(a, b.map(Double.init), atol: atol, rtol: rtol, what, file: file, line: line)
    }

    // MARK: - Softmax and log-softmax

    private func refSoftmax(_ x: ArraySlice<Float>) -> [Double] {
        let m = Double(x.max()!)
        if m == -.infinity { return x.map { _ in 0 } }
        let e = x.map { exp(Double($0) - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    private func refLogSoftmax(_ x: ArraySlice<Float>) -> [Double] {
        let m = Double(x.max()!)
        let lse = m + log(x.map { exp(Double($0) - m) }.reduce(0, +))
        return x.map { Double($0) - lse }
    }

    func testSoftmaxAndLogSoftmax() {
        onBothPaths { path in
            var rng = Rng(1)
            for n in [1, 3, 8, 13, 16, 37, 100] {
                let rows = 5
                var x = rng.normals(rows * n, scale: 3)
                // row 1: magnitude 1e4; row 2 (if n > 2): contains -inf entries
                for j in 0..<n { x[n + j] = rng.normal() * 1e4 }
                if n > 2 { x[2 * n] = -.infinity; x[2 * n + n - 1] = -.infinity }
                var y = [Float](repeating: 0, count: rows * n), ly = y
                ak_softmax_rows(x, &y, rows, n)
                ak_log_softmax_rows(x, &ly, rows, n)
                var refY: [Double] = [], refL: [Double] = []
                for r in 0..<rows {
                    refY += refSoftmax(x[(r * n)..<((r + 1) * n)])
                    refL += refLogSoftmax(x[(r * n)..<((r + 1) * n)])
                }
                assertClose(y, refY, atol: 1e-7, rtol: 2e-6, "\(path) softmax n=\(n)")
                // log-softmax: -inf entries stay -inf; magnitude-1e4 rows are checked relative to the row scale
                for i in 0..<(rows * n) where refL[i] == -.infinity { XCTAssertEqual(ly[i], -.infinity) }
                let finiteL = (0..<(rows * n)).filter { refL[$0] != -.infinity }
                assertClose(finiteL.map { ly[$0] }, finiteL.map { refL[$0] }, atol: 1e-5, rtol: 2e-6,
                            "\(path) log-softmax n=\(n)")

                // backward
                let dy = rng.normals(rows * n)
                var dx = [Float](repeating: 0, count: rows * n), dlx = dx
                ak_softmax_backward_rows(y, dy, &dx, rows, n)
                ak_log_softmax_backward_rows(ly, dy, &dlx, rows, n)
                var refDx: [Double] = [], refDlx: [Double] = []
                for r in 0..<rows {
                    let yr = (0..<n).map { Double(y[r * n + $0]) }, dyr = (0..<n).map { Double(dy[r * n + $0]) }
                    let s = zip(yr, dyr).map(*).reduce(0, +)
                    refDx += (0..<n).map { yr[$0] * (dyr[$0] - s) }
                    let sdy = dyr.reduce(0, +)
                    refDlx += (0..<n).map { dyr[$0] - exp(Double(ly[r * n + $0])) * sdy }
                }
                assertClose(dx, refDx, atol: 1e-6, rtol: 1e-5, "\(path) softmax backward n=\(n)")
                assertClose(dlx, refDlx, atol: 1e-6, rtol: 1e-5, "\(path) log-softmax backward n=\(n)")
            }
            // a row of all -inf gives zeros; in place (x and y alias)
            var z: [Float] = [-.infinity, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity, -.infinity,
                              -.infinity, -.infinity, 1, 2, 3, 4, 5, 6, 7, 8, 9]
            z.withUnsafeMutableBufferPointer { p in ak_softmax_rows(p.baseAddress, p.baseAddress, 2, 9) }
            XCTAssertEqual(Array(z[0..<9]), [Float](repeating: 0, count: 9), "\(path) all -inf row")
            let ref = refSoftmax([1, 2, 3, 4, 5, 6, 7, 8, 9][...])
            assertClose(Array(z[9...]), ref, atol: 1e-7, rtol: 2e-6, "\(path) in-place softmax")
        }
    }

    // MARK: - Cross-entropy

    func testCrossEntropy() {
        onBothPaths { path in
            var rng = Rng(2)
            let rows = 9, n = 37, ignore: Int32 = -100
            var logits = rng.normals(rows * n, scale: 2)
            for j in 0..<n { logits[3 * n + j] = rng.normal() * 1e4 }  // magnitude 1e4
            var targets: [Int32] = (0..<rows).map { _ in Int32(rng.next() % UInt64(n)) }
            targets[1] = ignore
            targets[6] = ignore
            var lse = [Float](repeating: 0, count: rows)
            var count = 0
            let total = ak_cross_entropy_forward(logits, targets, rows, n, ignore, &lse, &count)
            var refTotal = 0.0, refCount = 0
            var refLse: [Double] = []
            for r in 0..<rows {
                let row = logits[(r * n)..<((r + 1) * n)]
                let m = Double(row.max()!)
                let l = m + log(row.map { exp(Double($0) - m) }.reduce(0, +))
                refLse.append(l)
                if targets[r] != ignore {
                    refTotal += l - Double(row[r * n + Int(targets[r])])
                    refCount += 1
                }
            }
            XCTAssertEqual(count, refCount, "\(path) count")
            XCTAssertEqual(total, refTotal, accuracy: 1e-5 * max(1, abs(refTotal)), "\(path) loss")
            XCTAssert(total.isFinite, "\(path) loss finite with logits of magnitude 1e4")
            assertClose(lse, refLse, atol: 1e-5, rtol: 1e-6, "\(path) lse")

            let scale: Float = 1 / Float(count)
            var d = [Float](repeating: .nan, count: rows * n)
            ak_cross_entropy_backward(logits, targets, lse, rows, n, ignore, scale, &d)
            var refD = [Double](repeating: 0, count: rows * n)
            for r in 0..<rows where targets[r] != ignore {
                for j in 0..<n { refD[r * n + j] = Double(scale) * exp(Double(logits[r * n + j]) - refLse[r]) }
                refD[r * n + Int(targets[r])] -= Double(scale)
            }
            assertClose(d, refD, atol: 1e-7, rtol: 1e-5, "\(path) dlogits")

            // out-of-range targets: NaN and count = -1 - row, no out-of-bounds read
            for bad: Int32 in [Int32(n), -1, 1_000_000] {
                var t2 = targets
                t2[4] = bad
                var c2 = 0
                let r2 = ak_cross_entropy_forward(logits, t2, rows, n, ignore, &lse, &c2)
                XCTAssert(r2.isNaN, "\(path) bad target gives NaN")
                XCTAssertEqual(c2, -1 - 4, "\(path) bad target row")
            }
        }
    }

    // MARK: - RMSNorm

    func testRMSNorm() {
        onBothPaths { path in
            var rng = Rng(3)
            for n in [5, 8, 64, 100] {
                let rows = 6
                let eps: Float = 1.1920929e-07
                let x = rng.normals(rows * n, scale: 1.5), w = rng.normals(n), dy = rng.normals(rows * n)
                var y = [Float](repeating: 0, count: rows * n), rstd = [Float](repeating: 0, count: rows)
                ak_rmsnorm_forward(x, w, &y, &rstd, rows, n, eps)
                var refY: [Double] = [], refR: [Double] = []
                var refDx: [Double] = [], refDw = [Double](repeating: 1, count: n)
                for r in 0..<rows {
                    let xr = (0..<n).map { Double(x[r * n + $0]) }
                    let ms = xr.map { $0 * $0 }.reduce(0, +) / Double(n)
                    let rs = 1 / (ms + Double(eps)).squareRoot()
                    refR.append(rs)
                    refY += (0..<n).map { xr[$0] * rs * Double(w[$0]) }
                    // dx_j = rs w_j dy_j - x_j rs^3 / n * sum_k dy_k w_k x_k
                    let c = (0..<n).map { Double(dy[r * n + $0]) * Double(w[$0]) * xr[$0] }.reduce(0, +)
                    refDx += (0..<n).map { rs * Double(w[$0]) * Double(dy[r * n + $0]) - xr[$0] * rs * rs * rs * c / Double(n) }
                    for j in 0..<n { refDw[j] += Double(dy[r * n + j]) * xr[j] * rs }
                }
                assertClose(rstd, refR, atol: 0, rtol: 1e-6, "\(path) rstd n=\(n)")
                assertClose(y, refY, atol: 1e-6, rtol: 1e-5, "\(path) rmsnorm y n=\(n)")
                var dx = [Float](repeating: .nan, count: rows * n), dw = [Float](repeating: 1, count: n)
                ak_rmsnorm_backward(x, w, rstd, dy, &dx, &dw, rows, n)
                assertClose(dx, refDx, atol: 1e-5, rtol: 1e-4, "\(path) rmsnorm dx n=\(n)")
                assertClose(dw, refDw, atol: 1e-5, rtol: 1e-4, "\(path) rmsnorm dw (accumulated) n=\(n)")
                // dw may be NULL
                var dx2 = [Float](repeating: 0, count: rows * n)
                ak_rmsnorm_backward(x, w, rstd, dy, &dx2, nil, rows, n)
                XCTAssertEqual(dx, dx2)
            }
        }
    }

    // MARK: - GELU

    func testGELU() {
        onBothPaths { path in
            var x: [Float] = stride(from: -12.0, through: 12.0, by: 0.0137).map { Float($0) }
            x += [0, -0.0, 1e-8, -1e-8, 30, -30, -0.75, 0.5]
            let n = x.count
            var y = [Float](repeating: 0, count: n)
            ak_gelu_forward(x, &y, n)
            let refY = x.map { v -> Double in let d = Double(v); return d * 0.5 * erfc(-d / 2.0.squareRoot()) }
            // relative accuracy everywhere (also in the negative tail), with a tiny absolute floor
            assertClose(y, refY, atol: 1e-30, rtol: path == "portable" ? 2e-5 : 2e-6, "\(path) gelu")
            let mid = (0..<n).filter { abs(x[$0]) < 6 }
            assertClose(mid.map { y[$0] }, mid.map { refY[$0] }, atol: 1e-7, rtol: 1e-6, "\(path) gelu |x|<6")

            var rng = Rng(4)
            let dy = rng.normals(n)
            var dx = [Float](repeating: 0, count: n)
            ak_gelu_backward(x, dy, &dx, n)
            let refD = (0..<n).map { i -> Double in
                let d = Double(x[i])
                return Double(dy[i]) * (0.5 * erfc(-d / 2.0.squareRoot()) + d * exp(-d * d / 2) / (2 * Double.pi).squareRoot())
            }
            assertClose(dx, refD, atol: 1e-7, rtol: 2e-6, "\(path) gelu backward")

            // finite differences of the kernel itself
            let h: Float = 1e-2
            let xs: [Float] = stride(from: -5.0, through: 5.0, by: 0.173).map { Float($0) }
            var yp = [Float](repeating: 0, count: xs.count), ym = yp, g = yp
            ak_gelu_forward(xs.map { $0 + h }, &yp, xs.count)
            ak_gelu_forward(xs.map { $0 - h }, &ym, xs.count)
            ak_gelu_backward(xs, [Float](repeating: 1, count: xs.count), &g, xs.count)
            let fd = (0..<xs.count).map { (Double(yp[$0]) - Double(ym[$0])) / (2 * Double(h)) }
            assertClose(g, fd, atol: 2e-4, rtol: 1e-3, "\(path) gelu finite differences")
        }
    }

    /// The AVX-512 GELU repeats the AVX2 arithmetic on 16 lanes: both give the same bits, tails and specials included.
    func testGELUAVX512MatchesAVX2() throws {
        guard ak_cpu_has_avx512() != 0 else { throw XCTSkip("no AVX-512 on this CPU") }
        defer { ak_set_avx512_enabled(1) }
        var rng = Rng(11)
        var x = (0..<1000).map { _ in rng.normal() * 4 }
        x += [0, -0.0, 1e-8, -1e-8, 30, -30, 14, -14, 100, -100, .infinity, -.infinity, .nan, Float(bitPattern: 0x0001_0000), -Float(bitPattern: 0x0001_0000)]
        let dy = (0..<x.count).map { _ in rng.normal() }
        for n in [x.count, 1, 15, 16, 17] {
            var results: [[UInt32]] = []
            for avx512 in [Int32(1), 0] {
                ak_set_avx512_enabled(avx512)
                var y = [Float](repeating: 7, count: n), dx = y
                ak_gelu_forward(x, &y, n)
                ak_gelu_backward(x, dy, &dx, n)
                results.append((y + dx).map(\.bitPattern))
            }
            XCTAssertEqual(results[0], results[1], "n=\(n)")
        }
    }

    // MARK: - RoPE

    func testRoPE() {
        onBothPaths { path in
            var rng = Rng(5)
            for (B, T, nH, hd, off) in [(2, 7, 3, 8, 0), (1, 33, 2, 64, 5), (1, 4, 1, 6, 1000)] {
                let count = B * T * nH * hd
                let x = rng.normals(count)
                var y = [Float](repeating: 0, count: count)
                let base: Float = 10000
                ak_rope(x, &y, B, T, nH, hd, base, off, 0)
                // as the PyTorch reference: inv and angle in float32, then cos/sin
                let inv = stride(from: 0, to: hd, by: 2).map { i -> Float in 1 / powf(base, Float(i) / Float(hd)) }
                var ref = [Double](repeating: 0, count: count)
                for b in 0..<B {
                    for t in 0..<T {
                        for h in 0..<nH {
                            for i in 0..<(hd / 2) {
                                let ang = Double(Float(off + t) * inv[i])
                                let o = ((b * T + t) * nH + h) * hd + 2 * i
                                let a = Double(x[o]), bb = Double(x[o + 1])
                                ref[o] = a * cos(ang) - bb * sin(ang)
                                ref[o + 1] = bb * cos(ang) + a * sin(ang)
                            }
                        }
                    }
                }
                assertClose(y, ref, atol: 1e-6, rtol: 1e-6, "\(path) rope T=\(T) hd=\(hd)")
                // inverse(forward(x)) == x, in place
                var z = y
                z.withUnsafeMutableBufferPointer { p in ak_rope(p.baseAddress, p.baseAddress, B, T, nH, hd, base, off, 1) }
                assertClose(z, x, atol: 2e-6, rtol: 1e-6, "\(path) rope inverse")
            }
        }
    }

    // MARK: - Attention references (double precision, unfused)

    private struct AttnShape {
        var B: Int, nH: Int, Tq: Int, Tk: Int, hd: Int
        var masked: Bool, causal: Bool
        var dropout: Float = 0, seed: UInt64 = 0
        var BH: Int { B * nH }
        var scale: Float { 1 / Float(hd).squareRoot() }
    }

    /// Returns (o, lse, P with dropout applied, P without dropout).
    private func refAttentionForward(_ s: AttnShape, _ q: [Float], _ k: [Float], _ v: [Float], _ mask: [Float]?)
        -> (o: [Double], lse: [Double], pd: [[Double]], p: [[Double]]) {
        var o = [Double](repeating: 0, count: s.BH * s.Tq * s.hd), lse = [Double](repeating: 0, count: s.BH * s.Tq)
        var pdAll: [[Double]] = [], pAll: [[Double]] = []
        for bh in 0..<s.BH {
            let b = bh / s.nH
            for i in 0..<s.Tq {
                var row = [Double](repeating: -.infinity, count: s.Tk)
                for j in 0..<s.Tk {
                    if s.causal && j > i + (s.Tk - s.Tq) { continue }
                    var dot = 0.0
                    for d in 0..<s.hd { dot += Double(q[(bh * s.Tq + i) * s.hd + d]) * Double(k[(bh * s.Tk + j) * s.hd + d]) }
                    var sc = dot * Double(s.scale)
                    if let mask { sc += (1 - Double(mask[b * s.Tk + j])) * -10000 }
                    row[j] = sc
                }
                let m = row.max()!
                var p = [Double](repeating: 0, count: s.Tk)
                if m == -.infinity {
                    lse[bh * s.Tq + i] = -.infinity
                } else {
                    let e = row.map { exp($0 - m) }
                    let sum = e.reduce(0, +)
                    lse[bh * s.Tq + i] = m + log(sum)
                    p = e.map { $0 / sum }
                }
                var pd = p
                if s.dropout > 0 {
                    for j in 0..<s.Tk {
                        let keep = ak_attention_dropout_keep(s.seed, bh, i, j, s.dropout)
                        pd[j] = keep != 0 ? p[j] / (1 - Double(s.dropout)) : 0
                    }
                }
                for d in 0..<s.hd {
                    var acc = 0.0
                    for j in 0..<s.Tk where pd[j] != 0 { acc += pd[j] * Double(v[(bh * s.Tk + j) * s.hd + d]) }
                    o[(bh * s.Tq + i) * s.hd + d] = acc
                }
                pdAll.append(pd)
                pAll.append(p)
            }
        }
        return (o, lse, pdAll, pAll)
    }

    /// Unfused analytic backward: dV = Pd^T dO, dPd = dO V^T, dP = M * dPd, dS = P * (dP - rowsum(P * dP)),
    /// dQ = scale dS K, dK = scale dS^T Q.
    private func refAttentionBackward(_ s: AttnShape, _ q: [Float], _ k: [Float], _ v: [Float], _ dout: [Float],
                                      _ pd: [[Double]], _ p: [[Double]]) -> (dq: [Double], dk: [Double], dv: [Double]) {
        var dq = [Double](repeating: 0, count: s.BH * s.Tq * s.hd)
        var dk = [Double](repeating: 0, count: s.BH * s.Tk * s.hd), dv = dk
        for bh in 0..<s.BH {
            for i in 0..<s.Tq {
                let r = bh * s.Tq + i
                var dP = [Double](repeating: 0, count: s.Tk)
                for j in 0..<s.Tk {
                    var acc = 0.0
                    for d in 0..<s.hd {
                        acc += Double(dout[r * s.hd + d]) * Double(v[(bh * s.Tk + j) * s.hd + d])
                        dv[(bh * s.Tk + j) * s.hd + d] += pd[r][j] * Double(dout[r * s.hd + d])
                    }
                    // chain rule through the dropout: Pd = P * keep / (1 - p)
                    dP[j] = p[r][j] == 0 ? 0 : acc * pd[r][j] / p[r][j]
                }
                let dsum = (0..<s.Tk).map { p[r][$0] * dP[$0] }.reduce(0, +)
                for j in 0..<s.Tk {
                    let ds = p[r][j] * (dP[j] - dsum) * Double(s.scale)
                    if ds == 0 { continue }
                    for d in 0..<s.hd {
                        dq[r * s.hd + d] += ds * Double(k[(bh * s.Tk + j) * s.hd + d])
                        dk[(bh * s.Tk + j) * s.hd + d] += ds * Double(q[r * s.hd + d])
                    }
                }
            }
        }
        return (dq, dk, dv)
    }

    private func makeInputs(_ s: AttnShape, _ rng: inout Rng) -> (q: [Float], k: [Float], v: [Float], mask: [Float]?) {
        let q = rng.normals(s.BH * s.Tq * s.hd), k = rng.normals(s.BH * s.Tk * s.hd), v = rng.normals(s.BH * s.Tk * s.hd)
        var mask: [Float]? = nil
        if s.masked {
            // batch b keeps its first Tk - 1 - 2b keys (at least one), the rest is padding
            var m = [Float](repeating: 1, count: s.B * s.Tk)
            for b in 0..<s.B { for j in max(1, s.Tk - 1 - 2 * b)..<s.Tk { m[b * s.Tk + j] = 0 } }
            mask = m
        }
        return (q, k, v, mask)
    }

    /// k and v hold head bh's keys and values from bh * kvStride (contiguous by default).
    private func runForward(_ s: AttnShape, _ q: [Float], _ k: [Float], _ v: [Float], _ mask: [Float]?,
                            kvStride: Int? = nil) -> (o: [Float], lse: [Float]) {
        var o = [Float](repeating: .nan, count: s.BH * s.Tq * s.hd), lse = [Float](repeating: .nan, count: s.BH * s.Tq)
        ak_attention_forward(q, k, v, kvStride ?? s.Tk * s.hd, &o, &lse, s.B, s.nH, s.Tq, s.Tk, s.hd, mask, s.causal ? 1 : 0, s.scale,
                             s.dropout, s.seed)
        return (o, lse)
    }

    private func runBackward(_ s: AttnShape, _ q: [Float], _ k: [Float], _ v: [Float], _ mask: [Float]?, _ o: [Float],
                             _ lse: [Float], _ dout: [Float]) -> (dq: [Float], dk: [Float], dv: [Float]) {
        var dq = [Float](repeating: .nan, count: q.count), dk = [Float](repeating: .nan, count: k.count)
        var dv = [Float](repeating: .nan, count: v.count)
        ak_attention_backward(q, k, v, o, lse, dout, &dq, &dk, &dv, s.B, s.nH, s.Tq, s.Tk, s.hd, mask,
                              s.causal ? 1 : 0, s.scale, s.dropout, s.seed)
        return (dq, dk, dv)
    }

    private var attentionShapes: [AttnShape] {
        var shapes: [AttnShape] = []
        for (Tq, Tk) in [(13, 13), (130, 130), (5, 13), (1, 130), (64, 64), (65, 200), (9, 5)] {
            for hd in [8, 64] {
                for masked in [false, true] {
                    for causal in [false, true] {
                        // keep the double-precision references cheap for the large shapes
                        if Tq * Tk > 4000 && hd == 8 && masked != causal { continue }
                        shapes.append(AttnShape(B: 2, nH: 2, Tq: Tq, Tk: Tk, hd: hd, masked: masked, causal: causal))
                    }
                }
            }
        }
        return shapes
    }

    // MARK: - Attention tests

    func testAttentionForwardAndBackwardVsUnfused() {
        var rng = Rng(6)
        for s in attentionShapes {
            let (q, k, v, mask) = makeInputs(s, &rng)
            let dout = rng.normals(s.BH * s.Tq * s.hd)
            let ref = refAttentionForward(s, q, k, v, mask)
            let refB = refAttentionBackward(s, q, k, v, dout, ref.pd, ref.p)
            onBothPathsAndTiles { path in
                let tag = "\(path) Tq=\(s.Tq) Tk=\(s.Tk) hd=\(s.hd) mask=\(s.masked) causal=\(s.causal)"
                let (o, lse) = runForward(s, q, k, v, mask)
                assertClose(o, ref.o, atol: 2e-6, rtol: 1e-5, "\(tag) o")
                assertClose(lse, ref.lse, atol: 2e-6, rtol: 1e-6, "\(tag) lse")
                let g = runBackward(s, q, k, v, mask, o, lse, dout)
                assertClose(g.dq, refB.dq, atol: 1e-5, rtol: 1e-4, "\(tag) dq")
                assertClose(g.dk, refB.dk, atol: 1e-5, rtol: 1e-4, "\(tag) dk")
                assertClose(g.dv, refB.dv, atol: 1e-5, rtol: 1e-4, "\(tag) dv")
            }
        }
    }

    /// Gradient of loss = sum(o * r) by central finite differences (loss in double), for small sizes.
    private func checkAttentionFiniteDifferences(_ s: AttnShape, _ tag: String, _ rng: inout Rng) {
        let (q, k, v, mask) = makeInputs(s, &rng)
        let r = rng.normals(s.BH * s.Tq * s.hd)
        func loss(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
            let (o, _) = runForward(s, q, k, v, mask)
            return zip(o, r).map { Double($0) * Double($1) }.reduce(0, +)
        }
        let (o, lse) = runForward(s, q, k, v, mask)
        let g = runBackward(s, q, k, v, mask, o, lse, r)
        let h: Float = 1e-2
        func fd(_ which: Int, _ idx: Int) -> Double {
            var a = [q, k, v]
            a[which][idx] += h
            let lp = loss(a[0], a[1], a[2])
            a[which][idx] -= 2 * h
            let lm = loss(a[0], a[1], a[2])
            return (lp - lm) / (2 * Double(h))
        }
        let grads = [g.dq, g.dk, g.dv], names = ["dq", "dk", "dv"]
        for w in 0..<3 {
            let numeric = (0..<grads[w].count).map { fd(w, $0) }
            assertClose(grads[w], numeric, atol: 2e-3, rtol: 2e-3, "\(tag) \(names[w]) vs finite differences")
        }
    }

    func testAttentionBackwardFiniteDifferences() {
        var rng = Rng(7)
        onBothPathsAndTiles { path in
            for (Tq, Tk, masked, causal) in [(5, 5, false, false), (5, 7, true, true), (6, 6, false, true), (3, 9, true, false)] {
                let s = AttnShape(B: 2, nH: 1, Tq: Tq, Tk: Tk, hd: 8, masked: masked, causal: causal)
                checkAttentionFiniteDifferences(s, "\(path) Tq=\(Tq) Tk=\(Tk) mask=\(masked) causal=\(causal)", &rng)
            }
        }
    }

    func testAttentionDropout() {
        // mask statistics and determinism
        for p: Float in [0.1, 0.5] {
            var kept = 0, total = 0, same = 0, sameOther = 0
            for bh in 0..<4 {
                for i in 0..<50 {
                    for j in 0..<200 {
                        let a = ak_attention_dropout_keep(42, bh, i, j, p)
                        kept += Int(a)
                        total += 1
                        if a == ak_attention_dropout_keep(42, bh, i, j, p) { same += 1 }
                        if a == ak_attention_dropout_keep(43, bh, i, j, p) { sameOther += 1 }
                    }
                }
            }
            let frac = Double(kept) / Double(total)
            XCTAssertEqual(frac, 1 - Double(p), accuracy: 0.01, "kept fraction for p=\(p)")
            XCTAssertEqual(same, total, "same seed gives the same mask")
            XCTAssertLessThan(Double(sameOther) / Double(total), 0.95, "another seed gives another mask")
        }
        XCTAssertEqual(ak_attention_dropout_keep(1, 0, 0, 0, 0), 1)

        var rng = Rng(8)
        // forward and backward under dropout vs the unfused reference that uses the exposed mask
        for s in [AttnShape(B: 2, nH: 2, Tq: 13, Tk: 13, hd: 8, masked: true, causal: false, dropout: 0.3, seed: 99),
                  AttnShape(B: 1, nH: 2, Tq: 130, Tk: 130, hd: 64, masked: false, causal: true, dropout: 0.1, seed: 7),
                  AttnShape(B: 1, nH: 3, Tq: 20, Tk: 37, hd: 16, masked: true, causal: true, dropout: 0.5, seed: 3)] {
            let (q, k, v, mask) = makeInputs(s, &rng)
            let dout = rng.normals(s.BH * s.Tq * s.hd)
            let ref = refAttentionForward(s, q, k, v, mask)
            let refB = refAttentionBackward(s, q, k, v, dout, ref.pd, ref.p)
            onBothPathsAndTiles { path in
                let tag = "\(path) dropout=\(s.dropout) Tq=\(s.Tq)"
                let (o, lse) = runForward(s, q, k, v, mask)
                let (o2, _) = runForward(s, q, k, v, mask)
                XCTAssertEqual(o, o2, "\(tag) same seed, same output")
                assertClose(o, ref.o, atol: 2e-6, rtol: 1e-5, "\(tag) o")
                assertClose(lse, ref.lse, atol: 2e-6, rtol: 1e-6, "\(tag) lse")
                let g = runBackward(s, q, k, v, mask, o, lse, dout)
                assertClose(g.dq, refB.dq, atol: 1e-5, rtol: 1e-4, "\(tag) dq")
                assertClose(g.dk, refB.dk, atol: 1e-5, rtol: 1e-4, "\(tag) dk")
                assertClose(g.dv, refB.dv, atol: 1e-5, rtol: 1e-4, "\(tag) dv")
            }
        }
        // finite differences with a fixed seed
        onBothPathsAndTiles { path in
            let s = AttnShape(B: 1, nH: 2, Tq: 6, Tk: 9, hd: 8, masked: true, causal: true, dropout: 0.3, seed: 1234)
            checkAttentionFiniteDifferences(s, "\(path) dropout", &rng)
        }
    }

    func testAttentionStridedKeysAndValuesMatchContiguous() {
        // Each head's keys and values as the first Tk rows of a larger block (as in a key/value cache), the rows
        // after them NaN: the output is the contiguous one, bit for bit, and no unused row is read.
        var rng = Rng(12)
        let dropped = AttnShape(B: 2, nH: 3, Tq: 9, Tk: 40, hd: 16, masked: true, causal: true, dropout: 0.2, seed: 3)
        for s in attentionShapes + [dropped] {
            let (q, k, v, mask) = makeInputs(s, &rng)
            let rows = s.Tk * s.hd, stride = (s.Tk + 1 + Int(rng.next() % 9)) * s.hd
            func spread(_ x: [Float]) -> [Float] {
                var out = [Float](repeating: .nan, count: s.BH * stride)
                for bh in 0..<s.BH { out.replaceSubrange(bh * stride ..< bh * stride + rows, with: x[bh * rows ..< (bh + 1) * rows]) }
                return out
            }
            let (ks, vs) = (spread(k), spread(v))
            onBothPathsAndTiles { path in
                let tag = "\(path) Tq=\(s.Tq) Tk=\(s.Tk) hd=\(s.hd) mask=\(s.masked) causal=\(s.causal) stride=\(stride)"
                let contiguous = runForward(s, q, k, v, mask), strided = runForward(s, q, ks, vs, mask, kvStride: stride)
                XCTAssertEqual(strided.o, contiguous.o, "\(tag) o")
                XCTAssertEqual(strided.lse, contiguous.lse, "\(tag) lse")
            }
        }
    }

    func testAllocationFailureStopsWithAMessage() {
        // The kernels' one policy: memory that cannot be had stops the process with a message naming the caller
        // and the byte count (in a child process here), rather than leaving an output unwritten.
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let bytes = 1 << 62
        let pid = fork()
        if pid == 0 {
            var none = rlimit(rlim_cur: 0, rlim_max: 0)
            setrlimit(Int32(RLIMIT_CORE.rawValue), &none)
            dup2(fds[1], 2)
            _ = ak_alloc("attention", bytes)
            _exit(0)
        }
        close(fds[1])
        var message = [UInt8](), chunk = [UInt8](repeating: 0, count: 256)
        while case let n = read(fds[0], &chunk, chunk.count), n > 0 { message += chunk[..<n] }
        close(fds[0])
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        XCTAssertEqual(status & 0x7f, SIGABRT, "the process stops (status \(status))")
        let text = String(decoding: message, as: UTF8.self)   // the message, then the runtime's backtrace if any
        XCTAssertTrue(text.hasPrefix("attention: could not allocate \(bytes) bytes\n"), text)
    }

    func testAttentionThreadsAgree() {
        // Tasks run on the pool each with their own scratch slot: the result must not depend on the thread count.
        var rng = Rng(11)
        let s = AttnShape(B: 3, nH: 3, Tq: 70, Tk: 150, hd: 16, masked: true, causal: true, dropout: 0.2, seed: 5)
        let (q, k, v, mask) = makeInputs(s, &rng)
        let dout = rng.normals(s.BH * s.Tq * s.hd)
        let saved = ak_get_num_threads()
        defer { ak_set_num_threads(saved); ak_attention_set_tile(0) }
        ak_attention_set_tile(16)
        ak_set_num_threads(1)
        let (o1, l1) = runForward(s, q, k, v, mask)
        let g1 = runBackward(s, q, k, v, mask, o1, l1, dout)
        for threads: Int32 in [2, 3] {
            ak_set_num_threads(threads)
            for _ in 0..<3 {
                let (o, l) = runForward(s, q, k, v, mask)
                XCTAssertEqual(o, o1, "o with \(threads) threads")
                XCTAssertEqual(l, l1, "lse with \(threads) threads")
                let g = runBackward(s, q, k, v, mask, o1, l1, dout)
                XCTAssertEqual(g.dq, g1.dq, "dq with \(threads) threads")
                XCTAssertEqual(g.dk, g1.dk, "dk with \(threads) threads")
                XCTAssertEqual(g.dv, g1.dv, "dv with \(threads) threads")
            }
        }
    }

    /// The row-wise kernels split their rows (and dropout its elements) across the pool: every result must be the
    /// same bits with one thread or several, on inputs large enough to be split.
    func testRowKernelsThreadsAgree() {
        var rng = Rng(12)
        let rows = 301, n = 517
        let x = rng.normals(rows * n, scale: 3), dy = rng.normals(rows * n), w = rng.normals(n)
        let targets = (0..<rows).map { r -> Int32 in r % 7 == 0 ? -100 : Int32((r * 31) % n) }
        let (B, T, nH, hd) = (3, 300, 4, 32)
        let rx = rng.normals(B * T * nH * hd)
        func run() -> [[Float]] {
            var out: [[Float]] = []
            var y = [Float](repeating: 0, count: rows * n), dx = y, aux = [Float](repeating: 0, count: rows)
            ak_softmax_rows(x, &y, rows, n); out.append(y)
            ak_softmax_backward_rows(y, dy, &dx, rows, n); out.append(dx)
            ak_log_softmax_rows(x, &y, rows, n); out.append(y)
            ak_log_softmax_backward_rows(y, dy, &dx, rows, n); out.append(dx)
            var count = 0
            let total = ak_cross_entropy_forward(x, targets, rows, n, -100, &aux, &count)
            out.append(aux + [Float(total), Float(count)])
            let noLSE = ak_cross_entropy_forward(x, targets, rows, n, -100, nil, &count)
            out.append([Float(noLSE)])
            ak_cross_entropy_backward(x, targets, aux, rows, n, -100, 0.01, &dx); out.append(dx)
            ak_rmsnorm_forward(x, w, &y, &aux, rows, n, 1e-6); out.append(y + aux)
            ak_dropout(x, &y, rows * n, 0.3, 77); out.append(y)
            var ry = [Float](repeating: 0, count: rx.count)
            ak_rope(rx, &ry, B, T, nH, hd, 10000, 5, 0); out.append(ry)
            return out
        }
        let saved = ak_get_num_threads()
        defer { ak_set_num_threads(saved) }
        ak_set_num_threads(1)
        let one = run()
        for threads: Int32 in [2, 3] {
            ak_set_num_threads(threads)
            let many = run()
            for (i, (a, b)) in zip(one, many).enumerated() {
                XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "output \(i) with \(threads) threads")
            }
        }
    }

    // MARK: - Reductions and optimizer updates

    func testSumSquares() {
        onBothPaths { path in
            var rng = Rng(9)
            for n in [0, 1, 7, 16, 1001] {
                let x = rng.normals(n, scale: 3)
                let ref = x.map { Double($0) * Double($0) }.reduce(0, +)
                XCTAssertEqual(ak_sum_squares(x, n), ref, accuracy: 1e-12 * max(1, ref), "\(path) n=\(n)")
            }
        }
    }

    func testAdamUpdates() {
        onBothPaths { path in
            var rng = Rng(10)
            let n = 1003
            let g = rng.normals(n)
            let p0 = rng.normals(n), m0 = rng.normals(n, scale: 0.1), v0 = rng.normals(n).map { $0 * $0 * 0.01 }
            let (b1, b2, eps): (Float, Float, Float) = (0.9, 0.999, 1e-3)
            let t = 3.0
            let step = Float(0.05 / (1 - pow(Double(b1), t))), ibc = Float(1 / (1 - pow(Double(b2), t)).squareRoot())
            for (gscale, wd) in [(Float(0.25), Float(0)), (Float(0.5), Float(0.01))] {
                var p = p0, m = m0, v = v0
                ak_adam_update(&p, g, &m, &v, n, gscale, wd, b1, b2, step, ibc, eps)
                var rp: [Double] = [], rm: [Double] = [], rv: [Double] = []
                for i in 0..<n {
                    let gi = Double(g[i]) * Double(gscale) + Double(wd) * Double(p0[i])
                    let mi = Double(b1) * Double(m0[i]) + (1 - Double(b1)) * gi
                    let vi = Double(b2) * Double(v0[i]) + (1 - Double(b2)) * gi * gi
                    rm.append(mi)
                    rv.append(vi)
                    rp.append(Double(p0[i]) - Double(step) * mi / (vi.squareRoot() * Double(ibc) + Double(eps)))
                }
                assertClose(m, rm, atol: 1e-7, rtol: 1e-5, "\(path) adam m")
                assertClose(v, rv, atol: 1e-9, rtol: 1e-5, "\(path) adam v")
                assertClose(p, rp, atol: 1e-6, rtol: 1e-5, "\(path) adam p wd=\(wd)")
            }
            // AdamW: decoupled decay first, then Adam with wd = 0 and no gradient scaling
            let lr: Float = 0.01, wd: Float = 0.1
            var p = p0, m = m0, v = v0
            ak_adamw_update(&p, g, &m, &v, n, lr, wd, b1, b2, step, ibc, eps)
            var rp: [Double] = []
            for i in 0..<n {
                let pd = Double(p0[i]) * (1 - Double(lr) * Double(wd))
                let gi = Double(g[i])
                let mi = Double(b1) * Double(m0[i]) + (1 - Double(b1)) * gi
                let vi = Double(b2) * Double(v0[i]) + (1 - Double(b2)) * gi * gi
                rp.append(pd - Double(step) * mi / (vi.squareRoot() * Double(ibc) + Double(eps)))
            }
            assertClose(p, rp, atol: 1e-6, rtol: 1e-5, "\(path) adamw p")
        }
    }
}
