// Packed SGEMM in the BLIS/GotoBLAS style.
//
//   for jc in N step NC:                      (B block: KC x NC, packed once, shared by all threads)
//     for pc in K step KC:
//       pack op(B)[pc:pc+KC, jc:jc+NC] into NR-wide panels
//       parallel for ic in M step MC:         (each thread packs its own A block: MC x KC, MR-tall panels)
//         pack op(A)[ic:ic+MC, pc:pc+KC]
//         for jr in NC step NR: for ir in MC step MR: microkernel (MR x NR tile of C, KC-long dot products)
//
// The transposes are absorbed by the packing routines, so the microkernel always sees the same layout:
// an A panel is KC groups of MR floats (column k of the MR rows), a B panel KC groups of NR floats. Panels are
// zero-padded to full MR / NR, so the microkernel always computes a whole tile; tiles that stick out of C
// go through a small buffer. beta is applied with the first KC block only (later blocks accumulate), and
// beta == 0 never reads C.
//
// The AVX2/FMA code is compiled per function (target attribute) and picked at run time; the portable path
// shares the blocking and the packing, with a plain-C microkernel the compiler vectorises for the baseline ISA.
#include "ckernels.h"

#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define AK_X86 1
#else
#define AK_X86 0
#endif

#define MR 6
#define NR 16
#ifndef AK_MC
#define AK_MC 144   // multiple of MR
#endif
#ifndef AK_KC
#define AK_KC 256
#endif
#ifndef AK_NC
#define AK_NC 3072  // multiple of NR
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AK_INLINE static inline __attribute__((always_inline))
#else
#define AK_INLINE static inline
#endif

// ---------------------------------------------------------------------------------------------------------
// Reference
// ---------------------------------------------------------------------------------------------------------

void ak_sgemm_reference(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                        const float *B, long ldb, float beta, float *C, long ldc) {
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double acc = 0;
            for (long p = 0; p < K; p++) {
                float a = transA ? A[p * lda + i] : A[i * lda + p];
                float b = transB ? B[j * ldb + p] : B[p * ldb + j];
                acc += (double)a * (double)b;
            }
            float r = alpha * (float)acc;
            C[i * ldc + j] = beta == 0.0f ? r : r + beta * C[i * ldc + j];
        }
}

// ---------------------------------------------------------------------------------------------------------
// Per-thread packing buffers (allocated once per thread, grown if ever needed, never freed)
// ---------------------------------------------------------------------------------------------------------

static _Thread_local float *tl_abuf = NULL;
static _Thread_local float *tl_bbuf = NULL;
static _Thread_local size_t tl_bcap = 0;

static float *ak_abuf(void) {
    if (!tl_abuf) tl_abuf = (float *)ak_alloc("sgemm", ((size_t)AK_MC * AK_KC + 64) * sizeof(float));
    return tl_abuf;
}

static float *ak_bbuf(size_t n) {
    if (tl_bcap < n) {
        free(tl_bbuf);
        size_t cap = n < (size_t)AK_KC * AK_NC ? (size_t)AK_KC * AK_NC : n;
        tl_bbuf = (float *)ak_alloc("sgemm", (cap + 64) * sizeof(float));
        tl_bcap = cap;
    }
    return tl_bbuf;
}

// ---------------------------------------------------------------------------------------------------------
// Packing (generic C, inlined into both ISA variants)
// ---------------------------------------------------------------------------------------------------------

// op(A)[i0:i0+mc, p0:p0+kc] -> MR-tall panels, each kc * MR floats, zero-padded rows.
AK_INLINE void pack_a_generic(int transA, const float *A, long lda, long i0, long p0, long mc, long kc, float *dst) {
    for (long ir = 0; ir < mc; ir += MR) {
        long mr = mc - ir < MR ? mc - ir : MR;
        float *d = dst + ir * kc;
        if (transA) {
            // A stored K x M: row k holds MR consecutive values
            const float *s = A + p0 * lda + i0 + ir;
            if (mr == MR) {
                for (long k = 0; k < kc; k++) {
                    const float *sk = s + k * lda;
                    float *dk = d + k * MR;
                    for (int r = 0; r < MR; r++) dk[r] = sk[r];
                }
            } else {
                for (long k = 0; k < kc; k++) {
                    const float *sk = s + k * lda;
                    float *dk = d + k * MR;
                    int r = 0;
                    for (; r < mr; r++) dk[r] = sk[r];
                    for (; r < MR; r++) dk[r] = 0.0f;
                }
            }
        } else {
            // A stored M x K: each of the MR rows is contiguous in k
            const float *s = A + (i0 + ir) * lda + p0;
            if (mr == MR) {
                const float *s0 = s, *s1 = s + lda, *s2 = s + 2 * lda, *s3 = s + 3 * lda, *s4 = s + 4 * lda,
                            *s5 = s + 5 * lda;
                for (long k = 0; k < kc; k++) {
                    float *dk = d + k * MR;
                    dk[0] = s0[k]; dk[1] = s1[k]; dk[2] = s2[k]; dk[3] = s3[k]; dk[4] = s4[k]; dk[5] = s5[k];
                }
            } else {
                for (long k = 0; k < kc; k++) {
                    float *dk = d + k * MR;
                    int r = 0;
                    for (; r < mr; r++) dk[r] = s[r * lda + k];
                    for (; r < MR; r++) dk[r] = 0.0f;
                }
            }
        }
    }
}

// op(B)[p0:p0+kc, j0:j0+nc] -> NR-wide panels, each kc * NR floats, zero-padded columns.
AK_INLINE void pack_b_panel_generic(int transB, const float *B, long ldb, long j0, long p0, long nr, long kc,
                                    float *d) {
    if (!transB) {
        // B stored K x N: row k holds NR consecutive values
        const float *s = B + p0 * ldb + j0;
        if (nr == NR) {
            for (long k = 0; k < kc; k++) memcpy(d + k * NR, s + k * ldb, NR * sizeof(float));
        } else {
            for (long k = 0; k < kc; k++) {
                const float *sk = s + k * ldb;
                float *dk = d + k * NR;
                int j = 0;
                for (; j < nr; j++) dk[j] = sk[j];
                for (; j < NR; j++) dk[j] = 0.0f;
            }
        }
    } else {
        // B stored N x K: column j of op(B) is row j of B, contiguous in k
        const float *s = B + j0 * ldb + p0;
        long j = 0;
        for (; j < nr; j++) {
            const float *sj = s + j * ldb;
            for (long k = 0; k < kc; k++) d[k * NR + j] = sj[k];
        }
        for (; j < NR; j++)
            for (long k = 0; k < kc; k++) d[k * NR + j] = 0.0f;
    }
}

// Merges an MR x NR tile computed into buf (already scaled by alpha) into C.
AK_INLINE void merge_tile(const float *buf, float *C, long ldc, long mr, long nr, float beta) {
    for (long i = 0; i < mr; i++) {
        float *c = C + i * ldc;
        const float *b = buf + i * NR;
        if (beta == 0.0f)
            for (long j = 0; j < nr; j++) c[j] = b[j];
        else if (beta == 1.0f)
            for (long j = 0; j < nr; j++) c[j] += b[j];
        else
            for (long j = 0; j < nr; j++) c[j] = b[j] + beta * c[j];
    }
}

// ---------------------------------------------------------------------------------------------------------
// Portable microkernel: the 6x16 tile as two 6x8 halves (12 accumulators of 8 floats each fit in 16 SSE
// registers once the compiler vectorises the inner loop).
// ---------------------------------------------------------------------------------------------------------

static void ukr_portable(long kc, const float *restrict a, const float *restrict b, float *restrict c, long ldc,
                         long mr, long nr, float alpha, float beta) {
    float tile[MR * NR];
    for (int h = 0; h < 2; h++) {
        float acc[MR][8];
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < 8; j++) acc[i][j] = 0.0f;
        const float *bp = b + 8 * h;
        const float *ap = a;
        for (long k = 0; k < kc; k++) {
            for (int i = 0; i < MR; i++) {
                float av = ap[i];
                for (int j = 0; j < 8; j++) acc[i][j] += av * bp[j];
            }
            ap += MR;
            bp += NR;
        }
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < 8; j++) tile[i * NR + 8 * h + j] = alpha * acc[i][j];
    }
    merge_tile(tile, c, ldc, mr, nr, beta);
}

static void pack_a_portable(int transA, const float *A, long lda, long i0, long p0, long mc, long kc, float *dst) {
    pack_a_generic(transA, A, lda, i0, p0, mc, kc, dst);
}
static void pack_b_portable(int transB, const float *B, long ldb, long j0, long p0, long nr, long kc, float *d) {
    pack_b_panel_generic(transB, B, ldb, j0, p0, nr, kc, d);
}

// ---------------------------------------------------------------------------------------------------------
// AVX2/FMA microkernel: 6x16 tile in 12 ymm accumulators; per k, two B loads and six A broadcasts feed 12 FMAs.
// ---------------------------------------------------------------------------------------------------------
#if AK_X86
#define AK_AVX2 __attribute__((target("avx2,fma")))

AK_AVX2 static void ukr_avx2(long kc, const float *restrict a, const float *restrict b, float *restrict c,
                             long ldc, long mr, long nr, float alpha, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    if (mr == MR && nr == NR && beta != 0.0f) {
        for (int i = 0; i < MR; i++) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
        }
    }
#define AK_STEP(o)                                                                                 \
    {                                                                                              \
        __m256 b0 = _mm256_load_ps(b + (o) * NR), b1 = _mm256_load_ps(b + (o) * NR + 8);           \
        __m256 av;                                                                                 \
        av = _mm256_broadcast_ss(a + (o) * MR + 0); c00 = _mm256_fmadd_ps(av, b0, c00); c01 = _mm256_fmadd_ps(av, b1, c01); \
        av = _mm256_broadcast_ss(a + (o) * MR + 1); c10 = _mm256_fmadd_ps(av, b0, c10); c11 = _mm256_fmadd_ps(av, b1, c11); \
        av = _mm256_broadcast_ss(a + (o) * MR + 2); c20 = _mm256_fmadd_ps(av, b0, c20); c21 = _mm256_fmadd_ps(av, b1, c21); \
        av = _mm256_broadcast_ss(a + (o) * MR + 3); c30 = _mm256_fmadd_ps(av, b0, c30); c31 = _mm256_fmadd_ps(av, b1, c31); \
        av = _mm256_broadcast_ss(a + (o) * MR + 4); c40 = _mm256_fmadd_ps(av, b0, c40); c41 = _mm256_fmadd_ps(av, b1, c41); \
        av = _mm256_broadcast_ss(a + (o) * MR + 5); c50 = _mm256_fmadd_ps(av, b0, c50); c51 = _mm256_fmadd_ps(av, b1, c51); \
    }
    long k = 0;
    for (; k + 4 <= kc; k += 4) {
        _mm_prefetch((const char *)(b + 8 * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 9 * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 10 * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 11 * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(a + 16 * MR), _MM_HINT_T0);
        AK_STEP(0) AK_STEP(1) AK_STEP(2) AK_STEP(3)
        a += 4 * MR;
        b += 4 * NR;
    }
    for (; k < kc; k++) {
        AK_STEP(0)
        a += MR;
        b += NR;
    }
#undef AK_STEP
    __m256 va = _mm256_set1_ps(alpha);
    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (mr == MR && nr == NR) {
        if (beta == 0.0f) {
            for (int i = 0; i < MR; i++) {
                _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[2 * i]));
                _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[2 * i + 1]));
            }
        } else if (beta == 1.0f) {
            for (int i = 0; i < MR; i++) {
                _mm256_storeu_ps(c + i * ldc, _mm256_fmadd_ps(va, acc[2 * i], _mm256_loadu_ps(c + i * ldc)));
                _mm256_storeu_ps(c + i * ldc + 8,
                                 _mm256_fmadd_ps(va, acc[2 * i + 1], _mm256_loadu_ps(c + i * ldc + 8)));
            }
        } else {
            __m256 vb = _mm256_set1_ps(beta);
            for (int i = 0; i < MR; i++) {
                _mm256_storeu_ps(c + i * ldc, _mm256_fmadd_ps(va, acc[2 * i],
                                                              _mm256_mul_ps(vb, _mm256_loadu_ps(c + i * ldc))));
                _mm256_storeu_ps(c + i * ldc + 8, _mm256_fmadd_ps(va, acc[2 * i + 1],
                                                                  _mm256_mul_ps(vb, _mm256_loadu_ps(c + i * ldc + 8))));
            }
        }
    } else {
        float tile[MR * NR] __attribute__((aligned(32)));
        for (int i = 0; i < MR; i++) {
            _mm256_store_ps(tile + i * NR, _mm256_mul_ps(va, acc[2 * i]));
            _mm256_store_ps(tile + i * NR + 8, _mm256_mul_ps(va, acc[2 * i + 1]));
        }
        merge_tile(tile, c, ldc, mr, nr, beta);
    }
}

// In-register transpose of an 8x8 block held in r[0..7].
AK_AVX2 AK_INLINE void transpose8_avx2(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// A not transposed: the MR rows are read 8 k at a time and transposed in registers. Each k column (6 floats)
// is written with an 8-wide store whose last 2 lanes are overwritten by the next column; the buffers keep
// slack past their end for the very last one.
AK_AVX2 static void pack_a_avx2(int transA, const float *A, long lda, long i0, long p0, long mc, long kc,
                                float *dst) {
    if (transA) {
        pack_a_generic(transA, A, lda, i0, p0, mc, kc, dst);
        return;
    }
    long ir = 0;
    for (; ir + MR <= mc; ir += MR) {
        const float *s = A + (i0 + ir) * lda + p0;
        float *d = dst + ir * kc;
        long k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r[8];
            if ((k & 15) == 0)  // the rows of the next panel, one cache line per row (prefetches do not fault)
                for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(s + (MR + i) * lda + k), _MM_HINT_T0);
            for (int i = 0; i < MR; i++) r[i] = _mm256_loadu_ps(s + i * lda + k);
            r[6] = _mm256_setzero_ps();
            r[7] = _mm256_setzero_ps();
            transpose8_avx2(r);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(d + (k + j) * MR, r[j]);
        }
        for (; k < kc; k++)
            for (int i = 0; i < MR; i++) d[k * MR + i] = s[i * lda + k];
    }
    if (ir < mc) pack_a_generic(transA, A, lda, i0 + ir, p0, mc - ir, kc, dst + ir * kc);
}

// B transposed (stored N x K): 16 rows of B become one panel through two 8x8 transposes per 8 k.
AK_AVX2 static void pack_b_avx2(int transB, const float *B, long ldb, long j0, long p0, long nr, long kc, float *d) {
    if (!transB || nr != NR) {
        pack_b_panel_generic(transB, B, ldb, j0, p0, nr, kc, d);
        return;
    }
    const float *s = B + j0 * ldb + p0;
    long k = 0;
    for (; k + 8 <= kc; k += 8) {
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
            if ((k & 15) == 0)
                for (int i = 0; i < 8; i++)
                    _mm_prefetch((const char *)(s + (NR + 8 * h + i) * ldb + k), _MM_HINT_T0);
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(s + (8 * h + i) * ldb + k);
            transpose8_avx2(r);
            for (int j = 0; j < 8; j++) _mm256_store_ps(d + (k + j) * NR + 8 * h, r[j]);
        }
    }
    for (; k < kc; k++)
        for (int j = 0; j < NR; j++) d[k * NR + j] = s[j * ldb + k];
}
#endif

// ---------------------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------------------

typedef void (*ukr_fn)(long, const float *, const float *, float *, long, long, long, float, float);
typedef void (*pack_a_fn)(int, const float *, long, long, long, long, long, float *);
typedef void (*pack_b_fn)(int, const float *, long, long, long, long, long, float *);

typedef struct {
    ukr_fn ukr;
    pack_a_fn pack_a;
    pack_b_fn pack_b;
} ak_gemm_isa_t;

static ak_gemm_isa_t ak_select_isa(void) {
    ak_gemm_isa_t isa = {ukr_portable, pack_a_portable, pack_b_portable};
#if AK_X86
    if (ak_cpu_has_avx2_fma()) {
        isa.ukr = ukr_avx2;
        isa.pack_a = pack_a_avx2;
        isa.pack_b = pack_b_avx2;
    }
#endif
    return isa;
}

typedef struct {
    ak_gemm_isa_t isa;
    int transA, transB;
    const float *A, *B;
    long lda, ldb, ldc;
    float *C;
    long M, N, K;
    float alpha;
    // current block
    long jc, nc, pc, kc;
    float beta;            // beta for this KC block (user beta for the first, 1 afterwards)
    const float *bpack;
    long mblocks;          // number of MC blocks
    long nsplit;           // number of NR-panel ranges each MC block is split into (for small M)
    long panels;           // NR panels in this NC block
} ak_gemm_ctx_t;

// One MC x (part of NC) block of C: pack the A block into this thread's buffer, then run the microkernels.
static void ak_gemm_macro(ak_gemm_ctx_t *g, long ib, long split) {
    long ic = ib * AK_MC;
    long mc = g->M - ic < AK_MC ? g->M - ic : AK_MC;
    long kc = g->kc;
    float *apack = ak_abuf();
    g->isa.pack_a(g->transA, g->A, g->lda, ic, g->pc, mc, kc, apack);
    long p_lo = g->panels * split / g->nsplit, p_hi = g->panels * (split + 1) / g->nsplit;
    ukr_fn ukr = g->isa.ukr;
    for (long jp = p_lo; jp < p_hi; jp++) {
        long jr = jp * NR;
        long nr = g->nc - jr < NR ? g->nc - jr : NR;
        const float *bp = g->bpack + jr * kc;
        for (long ir = 0; ir < mc; ir += MR) {
            long mr = mc - ir < MR ? mc - ir : MR;
            ukr(kc, apack + ir * kc, bp, g->C + (ic + ir) * g->ldc + g->jc + jr, g->ldc, mr, nr, g->alpha, g->beta);
        }
    }
}

static void ak_gemm_task(void *ctx, long i) {
    ak_gemm_ctx_t *g = (ak_gemm_ctx_t *)ctx;
    ak_gemm_macro(g, i / g->nsplit, i % g->nsplit);
}

typedef struct {
    ak_gemm_ctx_t *g;
    float *bpack;
    long chunks;
} ak_packb_ctx_t;

static void ak_packb_task(void *ctx, long i) {
    ak_packb_ctx_t *pc = (ak_packb_ctx_t *)ctx;
    ak_gemm_ctx_t *g = pc->g;
    long lo = g->panels * i / pc->chunks, hi = g->panels * (i + 1) / pc->chunks;
    for (long jp = lo; jp < hi; jp++) {
        long jr = jp * NR;
        long nr = g->nc - jr < NR ? g->nc - jr : NR;
        g->isa.pack_b(g->transB, g->B, g->ldb, g->jc + jr, g->pc, nr, g->kc, pc->bpack + jr * g->kc);
    }
}

// Below this many multiply-adds a call stays on one thread (waking a worker costs more than it saves).
#define AK_PARALLEL_MIN_WORK (1L << 21)

static void ak_scale_c(long M, long N, float beta, float *C, long ldc) {
    for (long i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f)
            for (long j = 0; j < N; j++) c[j] = 0.0f;
        else if (beta != 1.0f)
            for (long j = 0; j < N; j++) c[j] *= beta;
    }
}

static void ak_sgemm_impl(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc, int nthreads) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        ak_scale_c(M, N, beta, C, ldc);
        return;
    }
    ak_flush_denormals();
    if (ak_sgemv_small(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nthreads)) return;
    if (ak_sgemm_avx512(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                        (double)M * N * K < (double)AK_PARALLEL_MIN_WORK ? 1 : nthreads))
        return;
    ak_gemm_ctx_t g;
    g.isa = ak_select_isa();
    g.transA = transA; g.transB = transB;
    g.A = A; g.B = B; g.C = C;
    g.lda = lda; g.ldb = ldb; g.ldc = ldc;
    g.M = M; g.N = N; g.K = K;
    g.alpha = alpha;
    if ((double)M * N * K < (double)AK_PARALLEL_MIN_WORK) nthreads = 1;
    g.mblocks = (M + AK_MC - 1) / AK_MC;

    long ncmax = N < AK_NC ? N : AK_NC;
    long kcmax = K < AK_KC ? K : AK_KC;
    float *bpack = ak_bbuf((size_t)kcmax * ((ncmax + NR - 1) / NR * NR));
    g.bpack = bpack;
    for (long jc = 0; jc < N; jc += AK_NC) {
        g.jc = jc;
        g.nc = N - jc < AK_NC ? N - jc : AK_NC;
        g.panels = (g.nc + NR - 1) / NR;
        g.nsplit = 1;
        if (nthreads > 1 && g.mblocks < nthreads) {
            g.nsplit = (nthreads + g.mblocks - 1) / g.mblocks;
            if (g.nsplit > g.panels) g.nsplit = g.panels;
        }
        long kc;
        for (long pc = 0; pc < K; pc += kc) {
            kc = K - pc;
            if (kc > AK_KC) kc = kc < AK_KC + AK_KC / 4 ? (kc + 1) / 2 : AK_KC;  // avoid a tiny last block
            g.pc = pc;
            g.kc = kc;
            g.beta = pc == 0 ? beta : 1.0f;
            ak_packb_ctx_t pb = {&g, bpack, 1};
            if (nthreads > 1 && g.panels >= 2 * nthreads) {
                pb.chunks = nthreads;
                ak_parallel_for(pb.chunks, ak_packb_task, &pb);
            } else {
                ak_packb_task(&pb, 0);
            }
            long tasks = g.mblocks * g.nsplit;
            if (nthreads > 1)
                ak_parallel_for(tasks, ak_gemm_task, &g);
            else
                for (long t = 0; t < tasks; t++) ak_gemm_task(&g, t);
        }
    }
}

void ak_sgemm(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
              const float *B, long ldb, float beta, float *C, long ldc) {
    ak_sgemm_impl(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ak_get_num_threads());
}

typedef struct {
    int transA, transB;
    long M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    long lda, ldb, ldc, strideA, strideB, strideC;
} ak_batch_ctx_t;

static void ak_batch_task(void *ctx, long i) {
    ak_batch_ctx_t *b = (ak_batch_ctx_t *)ctx;
    ak_sgemm_impl(b->transA, b->transB, b->M, b->N, b->K, b->alpha, b->A + i * b->strideA, b->lda,
                  b->B + i * b->strideB, b->ldb, b->beta, b->C + i * b->strideC, b->ldc, 1);
}

void ak_sgemm_strided_batched(int transA, int transB, long M, long N, long K, float alpha,
                              const float *A, long lda, long strideA, const float *B, long ldb, long strideB,
                              float beta, float *C, long ldc, long strideC, long batch) {
    if (batch <= 0 || M <= 0 || N <= 0) return;
    int nt = ak_get_num_threads();
    ak_batch_ctx_t b = {transA, transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, strideA, strideB, strideC};
    double work = (double)M * N * (K > 0 ? K : 1);
    // Small products: one thread per matrix. Large ones: each product uses all threads itself.
    if (nt > 1 && batch >= 2 && work * batch >= (double)AK_PARALLEL_MIN_WORK && work < 64.0 * AK_PARALLEL_MIN_WORK) {
        ak_parallel_for(batch, ak_batch_task, &b);
    } else {
        for (long i = 0; i < batch; i++)
            ak_sgemm_impl(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
                          C + i * strideC, ldc, nt);
    }
}
