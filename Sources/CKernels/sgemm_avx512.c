// SGEMM with an AVX-512 register microkernel, for CPUs that have AVX-512F (chosen at run time).
//
// A 12 x 32 register tile (24 zmm accumulators, two zmm of B and a broadcast of A per step). The loops keep
// the operand that is read 32 wide (B) streaming from L2 and the one that is broadcast (one 12-row panel of A,
// 18 KB) resident in L1:
//
//   for jc in N step NC (NC sized so that a KC x NC block of B is 1 MB, half of L2):
//     for pc in K step KC:
//       pack op(B)[pc:pc+KC, jc:jc+NC] into 32-wide panels          (split across threads)
//       for ic in M step MC:                                        (split across threads)
//         pack op(A)[ic:ic+MC, pc:pc+KC] into 12-row panels          (in L2 beside the B block)
//         for ir in MC step 12, jr in NC step 32: microkernel
//
// When M is too small to split across threads, the A block is packed whole and the columns are split instead.
// Panels are zero-padded to whole tiles; the microkernel writes edge tiles with masked stores and skips the
// rows beyond M. beta is applied with the first KC block only (later blocks accumulate), and beta == 0 never
// reads C.
#include "ckernels.h"
#include "vecmath.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define MR 12
#define NR 32
#define KC 384
#define MC 384    // multiple of MR
#define B_BLOCK (256 * 1024)   // floats of packed B kept in L2 (at least KC * NR)

static int avx512_allowed = 1;

void ak_set_avx512_enabled(int on) { avx512_allowed = on ? 1 : 0; }

int ak_cpu_has_avx512(void) {
    static int hw = -1;
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    // Forcing the portable kernels (ak_force_portable) turns this path off too.
    return hw && avx512_allowed && ak_cpu_has_avx2_fma();
}

// Packing buffers, one set per calling thread, grown on demand and kept.
static _Thread_local float *a_buf = NULL, *b_buf = NULL;

static float *buffer(float **slot, size_t floats) {
    if (!*slot) *slot = ak_alloc("sgemm", floats * sizeof(float));
    return *slot;
}

typedef struct {
    int transA, transB;
    const float *A, *B;
    long lda, ldb;
    float *C;
    long ldc;
    float alpha, beta;
    long i0, p0, j0, mc, kc, nc;   // the current blocks
    float *pa, *pb;                // packed A block, packed B block
    int first;                     // first KC block: apply beta
    long tasks;                    // how the work of a loop is split
} job_t;

// Transposes a 16 x 16 block held in 16 registers (row i in r[i]) in place.
AK_AVX512 static inline void transpose16(__m512 r[16]) {
    __m512 a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // b[4i + c], 128-bit lane L: column 4L + c of rows 4i .. 4i+3.
    for (int i = 0; i < 4; i++) {
        __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
        __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
        b[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int c = 0; c < 4; c++) {
        __m512 d0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88), d1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xdd);
        __m512 e0 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88), e1 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(d0, e0, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(d1, e1, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(d0, e0, 0xdd);
        r[12 + c] = _mm512_shuffle_f32x4(d1, e1, 0xdd);
    }
}

// rows[i][k0 : k0+16] for i < n (zeros for the other rows and past kc), transposed: out[kk] holds the 16 rows'
// values at k0 + kk.
AK_AVX512 static inline void load_transposed(const float *const rows[16], long n, long k0, long kc, __m512 out[16]) {
    long left = kc - k0;
    __mmask16 m = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
    for (int i = 0; i < 16; i++) out[i] = i < n ? _mm512_maskz_loadu_ps(m, rows[i] + k0) : _mm512_setzero_ps();
    transpose16(out);
}

// op(B)[p0:p0+kc, j0+jr : j0+jr+32] -> one panel: kc rows of 32 floats, zero-padded columns.
AK_AVX512 static void pack_b_panel(const job_t *j, long jr, float *d) {
    long nr = j->nc - jr < NR ? j->nc - jr : NR;
    if (!j->transB) {
        const float *s = j->B + j->p0 * j->ldb + j->j0 + jr;
        __mmask16 m0 = ak_first_mask16(nr), m1 = ak_first_mask16(nr - 16);
        for (long k = 0; k < j->kc; k++, s += j->ldb) {
            _mm512_store_ps(d + k * NR, _mm512_maskz_loadu_ps(m0, s));
            _mm512_store_ps(d + k * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
        }
    } else {
        // B stored N x K: column c of op(B) is row c of B, contiguous in k. Transpose 16 x 16 blocks.
        for (int half = 0; half < 2; half++) {
            const float *rows[16];
            long n = nr - 16 * half;
            for (int c = 0; c < 16; c++) rows[c] = j->B + (j->j0 + jr + 16 * half + c) * j->ldb + j->p0;
            for (long k0 = 0; k0 < j->kc; k0 += 16) {
                __m512 t[16];
                load_transposed(rows, n, k0, j->kc, t);
                long steps = j->kc - k0 < 16 ? j->kc - k0 : 16;
                for (long kk = 0; kk < steps; kk++) _mm512_store_ps(d + (k0 + kk) * NR + 16 * half, t[kk]);
            }
        }
    }
}

// op(A)[i0+ir : i0+ir+12*np, p0:p0+kc] -> np consecutive panels of kc groups of 12 floats, zero-padded rows.
AK_AVX512 static void pack_a_panels(const job_t *j, long ir, long np, float *d) {
    long kc = j->kc;
    if (j->transA) {
        // A stored K x M: row k holds the panels' values side by side. Up to 4 panels (48 floats) per pass over
        // the rows, so each row's cache lines are read once, with the rows a few steps ahead prefetched.
        for (long q0 = 0; q0 < np; q0 += 4) {
            long nq = np - q0 < 4 ? np - q0 : 4;
            __mmask16 m[4];
            for (long q = 0; q < nq; q++) m[q] = ak_first_mask16(j->mc - (ir + (q0 + q) * MR));
            const float *s = j->A + j->p0 * j->lda + j->i0 + ir + q0 * MR;
            float *dq = d + q0 * MR * kc;
            for (long k = 0; k < kc; k++, s += j->lda) {
                if (k + 8 < kc) {
                    _mm_prefetch((const char *)(s + 8 * j->lda), _MM_HINT_T0);
                    _mm_prefetch((const char *)(s + 8 * j->lda + 32), _MM_HINT_T0);
                }
                for (long q = 0; q < nq; q++)
                    _mm512_mask_storeu_ps(dq + q * MR * kc + k * MR, 0x0FFF, _mm512_maskz_loadu_ps(m[q], s + q * MR));
            }
        }
        return;
    }
    for (long q = 0; q < np; q++, d += MR * kc) {
        // Row-major A: transpose 12 (of 16) rows x 16 k at a time.
        long r0 = ir + q * MR, mr = j->mc - r0 < MR ? j->mc - r0 : MR;
        const float *rows[16];
        for (long r = 0; r < 16; r++) rows[r] = j->A + (j->i0 + r0 + (r < mr ? r : 0)) * j->lda + j->p0;
        for (long k0 = 0; k0 < kc; k0 += 16) {
            __m512 t[16];
            load_transposed(rows, mr, k0, kc, t);
            long steps = kc - k0 < 16 ? kc - k0 : 16;
            for (long kk = 0; kk < steps; kk++) _mm512_mask_storeu_ps(d + (k0 + kk) * MR, 0x0FFF, t[kk]);
        }
    }
}

// C[0:mr, 0:nr] (=|+=) alpha * (a panel x b panel).
AK_AVX512 static void ukr(long kc, const float *restrict a, const float *restrict b, float *restrict c, long ldc,
                          long mr, long nr, float alpha, float beta, int first) {
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (long i = 0; i < mr; i++) {  // the C tile, read or written at the end
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
    }
    for (long k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
        _mm_prefetch((const char *)(b + 8 * NR), _MM_HINT_T0);  // both cache lines of B's row 8 steps ahead
        _mm_prefetch((const char *)(b + 8 * NR + 16), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR;
        b += NR;
    }
    __mmask16 m0 = ak_first_mask16(nr), m1 = ak_first_mask16(nr - 16);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (long i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (!first) {
            r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, ci));
            r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, ci + 16));
        } else if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}

static long div_up(long a, long b) { return (a + b - 1) / b; }

// Tasks: a contiguous range of panels for each of j->tasks workers.
static void range(const job_t *j, long i, long n, long *lo, long *hi) {
    *lo = n * i / j->tasks;
    *hi = n * (i + 1) / j->tasks;
}

static void pack_b_task(void *ctx, long i) {
    const job_t *j = ctx;
    long lo, hi;
    range(j, i, div_up(j->nc, NR), &lo, &hi);
    for (long p = lo; p < hi; p++) pack_b_panel(j, p * NR, j->pb + p * NR * j->kc);
}

// Worker i takes a range of the 32-wide column panels and runs every 12-row tile of the packed A block
// against them (used when M is too small to split).
static void columns_task(void *ctx, long i) {
    const job_t *j = ctx;
    long lo, hi;
    range(j, i, div_up(j->nc, NR), &lo, &hi);
    for (long p = lo; p < hi; p++) {
        long jr = p * NR, nr = j->nc - jr < NR ? j->nc - jr : NR;
        for (long ir = 0; ir < j->mc; ir += MR) {
            long mr = j->mc - ir < MR ? j->mc - ir : MR;
            ukr(j->kc, j->pa + ir * j->kc, j->pb + jr * j->kc, j->C + (j->i0 + ir) * j->ldc + j->j0 + jr, j->ldc,
                mr, nr, j->alpha, j->beta, j->first);
        }
    }
}

static void pack_a_task(void *ctx, long i) {
    const job_t *j = ctx;
    long lo, hi;
    range(j, i, div_up(j->mc, MR), &lo, &hi);
    pack_a_panels(j, lo * MR, hi - lo, j->pa + lo * MR * j->kc);
}

// Worker i takes a range of the 12-row panels of all of M. It packs them MC rows at a time into its own
// buffer (in L2 beside the B block), then runs each panel (in L1 while it is used) against every packed B
// panel, which stream from L2.
static void rows_task(void *ctx, long i) {
    const job_t *j = ctx;
    long lo, hi;
    range(j, i, div_up(j->mc, MR), &lo, &hi);
    float *pa = buffer(&a_buf, (size_t)MC * KC);
    for (long p0 = lo; p0 < hi; p0 += MC / MR) {
        long p1 = hi - p0 < MC / MR ? hi : p0 + MC / MR;
        pack_a_panels(j, p0 * MR, p1 - p0, pa);
        for (long p = p0; p < p1; p++) {
            long ir = p * MR, mr = j->mc - ir < MR ? j->mc - ir : MR;
            for (long jr = 0; jr < j->nc; jr += NR) {
                long nr = j->nc - jr < NR ? j->nc - jr : NR;
                ukr(j->kc, pa + (p - p0) * MR * j->kc, j->pb + jr * j->kc, j->C + ir * j->ldc + j->j0 + jr, j->ldc,
                    mr, nr, j->alpha, j->beta, j->first);
            }
        }
    }
}

static void run(job_t *j, void (*fn)(void *, long), long panels, long threads) {
    j->tasks = panels < threads ? panels : threads;
    if (j->tasks <= 1) {
        j->tasks = 1;
        fn(j, 0);
    } else {
        ak_parallel_for(j->tasks, fn, j);
    }
}

int ak_sgemm_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                    const float *B, long ldb, float beta, float *C, long ldc, int threads) {
    if (M <= 0 || N <= 0 || K <= 0 || !ak_cpu_has_avx512()) return 0;
    float *pa = buffer(&a_buf, (size_t)MC * KC), *pb = buffer(&b_buf, (size_t)B_BLOCK);
    long t = threads < 1 ? 1 : threads;
    // Split the rows across threads when there are enough of them (one synchronisation per B block);
    // otherwise split the columns of each A block.
    int by_rows = t == 1 || M >= 4 * MR * t;
    job_t j = {transA, transB, A, B, lda, ldb, C, ldc, alpha, beta, 0, 0, 0, 0, 0, 0, pa, pb, 0, 1};
    // Column blocks as even as possible, each small enough for its packed B block to stay in L2.
    long kc0 = K < KC ? K : KC, ncmax = B_BLOCK / kc0 / NR * NR, blocks = div_up(N, ncmax);
    long nc = div_up(div_up(N, blocks), NR) * NR;
    for (j.j0 = 0; j.j0 < N; j.j0 += nc) {
        j.nc = N - j.j0 < nc ? N - j.j0 : nc;
        for (j.p0 = 0; j.p0 < K; j.p0 += KC) {
            j.kc = K - j.p0 < KC ? K - j.p0 : KC;
            j.first = j.p0 == 0;
            run(&j, pack_b_task, div_up(j.nc, NR), t);
            if (by_rows) {
                j.i0 = 0;
                j.mc = M;
                run(&j, rows_task, div_up(M, MR), t);
                continue;
            }
            for (j.i0 = 0; j.i0 < M; j.i0 += MC) {
                j.mc = M - j.i0 < MC ? M - j.i0 : MC;
                run(&j, pack_a_task, div_up(j.mc, MR), t);
                run(&j, columns_task, div_up(j.nc, NR), t);
            }
        }
    }
    return 1;
}

#else

void ak_set_avx512_enabled(int on) { (void)on; }
int ak_cpu_has_avx512(void) { return 0; }

int ak_sgemm_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                    const float *B, long ldb, float beta, float *C, long ldc, int threads) {
    (void)transA; (void)transB; (void)M; (void)N; (void)K; (void)alpha; (void)A; (void)lda; (void)B; (void)ldb;
    (void)beta; (void)C; (void)ldc; (void)threads;
    return 0;
}

#endif
