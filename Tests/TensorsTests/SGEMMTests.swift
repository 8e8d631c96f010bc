import CKernels
import Foundation
import Synchronization
import XCTest

/// ak_sgemm / ak_sgemm_strided_batched against the naive double-accumulating reference.
final class SGEMMTests: XCTestCase {
    private var savedThreads: Int32 = 1

    override func setUp() {
        super.setUp()
        savedThreads = ak_get_num_threads()
    }

    override func tearDown() {
        ak_force_portable(0)
        ak_set_num_threads(savedThreads)
        super.tearDown()
    }

    // MARK: helpers

    private struct Rng {
        var s: UInt64
        mutating func next() -> Float {
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int((s >> 40) & 0xFFFFFF)) / Float(1 << 23) - 1.0
        }
        mutating func fill(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
    }

    /// Checks one product; returns a failure description or nil.
    /// `pad` is added to every leading dimension; C is NaN-filled when beta == 0.
    private func check(_ ta: Int32, _ tb: Int32, _ m: Int, _ n: Int, _ k: Int, alpha: Float, beta: Float,
                       pad: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var rng = Rng(s: seed)
        let lda = (ta != 0 ? m : k) + pad, ldb = (tb != 0 ? k : n) + pad, ldc = n + pad
        let a = rng.fill((ta != 0 ? k : m) * lda), b = rng.fill((tb != 0 ? n : k) * ldb)
        var c = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : rng.fill(m * ldc)
        var r = c
        ak_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, &c, ldc)
        ak_sgemm_reference(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, &r, ldc)
        // tolerance relative to sum_p |a_ip||b_pj|, computed by the (C, optimised) reference on |A| and |B|
        var mags = [Float](repeating: 0, count: m * ldc)
        ak_sgemm_reference(ta, tb, m, n, k, 1, a.map { abs($0) }, lda, b.map { abs($0) }, ldb, 0, &mags, ldc)
        for i in 0..<m {
            for j in 0..<ldc {
                let got = c[i * ldc + j], want = r[i * ldc + j]
                if j >= n {  // padding columns must be untouched
                    if got.bitPattern != want.bitPattern {
                        XCTFail("\(ta)\(tb) \(m)x\(n)x\(k): padding C[\(i),\(j)] changed", file: file, line: line)
                        return
                    }
                    continue
                }
                let mag = mags[i * ldc + j]
                let tol = 1e-5 * (abs(alpha) * mag + 1) + abs(want) * 1e-6
                if !(abs(got - want) <= tol) {
                    XCTFail("trans \(ta)\(tb) M\(m) N\(n) K\(k) alpha \(alpha) beta \(beta) pad \(pad) isa "
                            + "\(String(cString: ak_kernel_isa())) threads \(ak_get_num_threads()): C[\(i),\(j)] = "
                            + "\(got), want \(want)", file: file, line: line)
                    return
                }
            }
        }
    }

    private let small = [1, 7, 17, 255]

    /// Every (M, N, K) from `small`, every transpose, alpha/beta/pad varying with the case.
    private func sweep(seed: UInt64) {
        var n = 0
        for ta: Int32 in [0, 1] {
            for tb: Int32 in [0, 1] {
                for m in small {
                    for nn in small {
                        for k in small {
                            let beta: Float = [0, 1, 0.5][n % 3]
                            let alpha: Float = n % 2 == 0 ? 1 : -0.75
                            check(ta, tb, m, nn, k, alpha: alpha, beta: beta, pad: n % 4 == 0 ? 0 : 3,
                                  seed: seed &+ UInt64(n))
                            n += 1
                        }
                    }
                }
            }
        }
    }

    // MARK: tests

    func testOddShapesAVX2() {
        ak_force_portable(0)
        ak_set_avx512_enabled(0)
        defer { ak_set_avx512_enabled(1) }
        XCTAssertNotEqual(String(cString: ak_kernel_isa()), "avx512")
        ak_set_num_threads(1)
        sweep(seed: 1)
    }

    /// The AVX-512 path where the CPU has it (elsewhere this repeats the AVX2 sweep).
    func testOddShapesAVX512() {
        ak_force_portable(0)
        ak_set_avx512_enabled(1)
        XCTAssertEqual(String(cString: ak_kernel_isa()) == "avx512", ak_cpu_has_avx512() == 1)
        for threads: Int32 in [1, 2] {
            ak_set_num_threads(threads)
            sweep(seed: 4 + UInt64(threads))
        }
    }

    func testOddShapesPortable() {
        ak_force_portable(1)
        XCTAssertEqual(String(cString: ak_kernel_isa()), "portable")
        XCTAssertEqual(ak_cpu_has_avx2_fma(), 0)
        ak_set_num_threads(1)
        sweep(seed: 2)
    }

    func testOddShapesTwoThreads() {
        ak_set_num_threads(2)
        XCTAssertEqual(ak_get_num_threads(), 2)
        sweep(seed: 3)
    }

    /// Products of 1 to 5 rows (the unpacked path for one row, the packed kernel past it), with columns split
    /// across threads, on every instruction set.
    func testFewRowsProducts() {
        var n = 0
        defer { ak_set_avx512_enabled(1) }
        for (portable, avx512): (Int32, Int32) in [(0, 1), (0, 0), (1, 0)] {
            ak_force_portable(portable)
            ak_set_avx512_enabled(avx512)
            for threads: Int32 in [1, 2] {
                ak_set_num_threads(threads)
                for tb: Int32 in [0, 1] {
                    for m in 1...5 {
                        for (cols, k) in [(1000, 300), (63, 129), (8000, 128)] {
                            check(0, tb, m, cols, k, alpha: n % 2 == 0 ? 1 : 0.5, beta: [0, 1, 0.25][n % 3],
                                  pad: n % 3, seed: 100 + UInt64(n))
                            n += 1
                        }
                    }
                }
            }
        }
    }

    func testISAReport() {
        ak_force_portable(0)
        let isa = String(cString: ak_kernel_isa())
        XCTAssertTrue(["avx512", "avx2-fma", "portable"].contains(isa))
        XCTAssertEqual(isa == "avx512", ak_cpu_has_avx512() == 1)
        XCTAssertEqual(isa == "portable", ak_cpu_has_avx2_fma() == 0)
    }

    /// Shapes with a 1000 (several cache blocks in every direction), both ISAs, 1 and 2 threads.
    func testLargeShapes() {
        for (portable, avx512): (Int32, Int32) in [(0, 1), (0, 0), (1, 0)] {
            ak_force_portable(portable)
            ak_set_avx512_enabled(avx512)
            defer { ak_set_avx512_enabled(1) }
            for threads: Int32 in [1, 2] {
                ak_set_num_threads(threads)
                check(0, 0, 1000, 300, 600, alpha: 1, beta: 0, pad: 0, seed: 10)
                check(1, 1, 300, 1000, 290, alpha: 0.5, beta: 0.5, pad: 5, seed: 11)
                check(0, 1, 17, 1000, 1000, alpha: -1, beta: 1, pad: 1, seed: 12)
                check(1, 0, 1000, 7, 1000, alpha: 2, beta: 0, pad: 2, seed: 13)
            }
        }
    }

    func testDegenerateSizes() {
        // K == 0: C = beta * C
        var c: [Float] = [1, 2, 3, 4, 5, 6]
        let a: [Float] = [9], b: [Float] = [9]
        ak_sgemm(0, 0, 2, 3, 0, 1, a, 1, b, 3, 0.5, &c, 3)
        XCTAssertEqual(c, [0.5, 1, 1.5, 2, 2.5, 3])
        c = [Float](repeating: .nan, count: 6)
        ak_sgemm(0, 0, 2, 3, 0, 1, a, 1, b, 3, 0, &c, 3)
        XCTAssertEqual(c, [0, 0, 0, 0, 0, 0])
        // M == 0 or N == 0: nothing is touched
        c = [7, 7, 7]
        ak_sgemm(0, 0, 0, 3, 4, 1, a, 4, b, 3, 0, &c, 3)
        ak_sgemm(0, 0, 1, 0, 4, 1, a, 4, b, 0, 0, &c, 3)
        ak_sgemm_strided_batched(0, 0, 1, 3, 1, 1, a, 1, 0, b, 3, 0, 0, &c, 3, 3, 0)
        XCTAssertEqual(c, [7, 7, 7])
        // alpha == 0 with beta == 0 must not leak NaN from C (nor from A or B)
        c = [Float](repeating: .nan, count: 4)
        let a2: [Float] = [1, 2, 3, 4], b2: [Float] = [1, 0, 0, 1]
        ak_sgemm(0, 0, 2, 2, 2, 0, a2, 2, b2, 2, 0, &c, 2)
        XCTAssertEqual(c, [0, 0, 0, 0])
    }

    func testBetaZeroDoesNotReadNaN() {
        for portable: Int32 in [0, 1] {
            ak_force_portable(portable)
            for ta: Int32 in [0, 1] {
                for tb: Int32 in [0, 1] {
                    check(ta, tb, 37, 45, 300, alpha: 1.5, beta: 0, pad: 4, seed: 20)
                }
            }
        }
    }

    private func checkBatched(_ ta: Int32, _ tb: Int32, _ m: Int, _ n: Int, _ k: Int, batch: Int,
                              shareA: Bool, shareB: Bool, beta: Float, seed: UInt64) {
        var rng = Rng(s: seed)
        let lda = ta != 0 ? m : k, ldb = tb != 0 ? k : n, ldc = n + 1
        let sA = shareA ? 0 : m * k + 3, sB = shareB ? 0 : k * n + 5, sC = m * ldc + 2
        let a = rng.fill(m * k + 3 * batch), b = rng.fill(k * n + 5 * batch)
        let aAll = shareA ? Array(a.prefix(m * k)) : rng.fill(sA * batch)
        let bAll = shareB ? Array(b.prefix(k * n)) : rng.fill(sB * batch)
        var c = beta == 0 ? [Float](repeating: .nan, count: sC * batch) : rng.fill(sC * batch)
        var r = c
        ak_sgemm_strided_batched(ta, tb, m, n, k, 0.5, aAll, lda, sA, bAll, ldb, sB, beta, &c, ldc, sC, batch)
        aAll.withUnsafeBufferPointer { ap in
            bAll.withUnsafeBufferPointer { bp in
                r.withUnsafeMutableBufferPointer { rp in
                    for i in 0..<batch {
                        ak_sgemm_reference(ta, tb, m, n, k, 0.5, ap.baseAddress! + i * sA, lda,
                                           bp.baseAddress! + i * sB, ldb, beta, rp.baseAddress! + i * sC, ldc)
                    }
                }
            }
        }
        for idx in 0..<(sC * batch) {
            let within = idx % sC
            let inside = within < m * ldc && within % ldc < n
            if !inside {
                XCTAssertEqual(c[idx].bitPattern, r[idx].bitPattern, "batched: padding changed at \(idx)")
                if c[idx].bitPattern != r[idx].bitPattern { return }
                continue
            }
            let tol: Float = 1e-5 * Float(k + 1) + 1e-6 * abs(r[idx])
            if !(abs(c[idx] - r[idx]) <= tol) {
                XCTFail("batched \(ta)\(tb) \(m)x\(n)x\(k) x\(batch) shareA \(shareA) shareB \(shareB) beta \(beta): "
                        + "\(c[idx]) vs \(r[idx]) at \(idx)")
                return
            }
        }
    }

    func testStridedBatched() {
        for threads: Int32 in [1, 2] {
            ak_set_num_threads(threads)
            checkBatched(0, 1, 33, 40, 16, batch: 12, shareA: false, shareB: false, beta: 0, seed: 30)
            checkBatched(0, 0, 40, 16, 33, batch: 12, shareA: false, shareB: true, beta: 1, seed: 31)
            checkBatched(1, 1, 7, 9, 5, batch: 5, shareA: true, shareB: false, beta: 0.5, seed: 32)
            checkBatched(1, 0, 130, 70, 90, batch: 3, shareA: false, shareB: true, beta: 0, seed: 33)
            checkBatched(0, 1, 128, 128, 64, batch: 8, shareA: false, shareB: false, beta: 0, seed: 34)
        }
    }

    /// Several application threads calling SGEMM at once (the pool is shared; each caller has its own buffers).
    func testConcurrentCalls() {
        ak_set_num_threads(2)
        let m = 200, n = 150, k = 170
        var rng = Rng(s: 40)
        let a = rng.fill(m * k), b = rng.fill(k * n)
        var reference = [Float](repeating: 0, count: m * n)
        ak_sgemm_reference(0, 0, m, n, k, 1, a, k, b, n, 0, &reference, n)
        let want = reference
        let worst = Mutex<Float>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { it in
            var c = [Float](repeating: .nan, count: m * n)
            for _ in 0..<3 {
                if it % 2 == 0 {
                    ak_sgemm(0, 0, m, n, k, 1, a, k, b, n, 0, &c, n)
                } else {
                    ak_sgemm_strided_batched(0, 0, m, n, k, 1, a, k, 0, b, n, 0, 0, &c, n, 0, 1)
                }
            }
            var e: Float = 0
            for i in 0..<(m * n) { e = max(e, abs(c[i] - want[i])) }
            if e.isNaN { e = .infinity }
            worst.withLock { $0 = max($0, e) }
        }
        XCTAssertLessThan(worst.withLock { $0 }, 1e-3)
    }

    func testParallelForCoversEveryIndex() {
        for threads: Int32 in [1, 2, 3] {
            ak_set_num_threads(threads)
            let n = 1000
            let hits = UnsafeMutablePointer<Int32>.allocate(capacity: n)
            hits.initialize(repeating: 0, count: n)
            ak_parallel_for(n, { ctx, i in
                let h = ctx!.assumingMemoryBound(to: Int32.self)
                h[i] += 1
            }, hits)
            XCTAssertEqual((0..<n).filter { hits[$0] != 1 }.count, 0, "threads \(threads)")
            hits.deallocate()
        }
    }

    /// Denormal inputs are read as zero (and the kernels stay fast on them).
    func testDenormalsAreFlushed() {
        let (m, n, k) = (24, 40, 16)
        let a = [Float](repeating: 1e-39, count: m * k), b = [Float](repeating: 0.5, count: k * n)
        var c = [Float](repeating: 7, count: m * n)
        ak_sgemm(0, 0, m, n, k, 1, a, k, b, n, 0, &c, n)
        XCTAssertEqual(c, [Float](repeating: 0, count: m * n))
    }
}
