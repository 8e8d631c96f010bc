// Products of one row (op(A) not transposed): incremental decoding runs one token at a time, and there packing B
// (a whole weight matrix) for the blocked SGEMM would cost as much as the product itself. (The code handles up to
// AK_GEMV_MAX_M rows; it is used for one only, so that batched training keeps the packed kernel's summation
// order, which the parity fixtures are checked against.) Here B is streamed once, straight from where it lies: with B stored N x K (a Linear weight) each
// output is a dot product of two contiguous rows; with B stored K x N each output row is a sum of B's rows.
// Columns are split across threads when the product is large enough.
#include "ckernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define AK_X86 1
#define AK_AVX2 __attribute__((target("avx2,fma")))
#else
#define AK_X86 0
#endif

#define AK_GEMV_MAX_M 1
// Below this many multiply-adds the product stays on one thread.
#define AK_GEMV_PARALLEL_MIN_WORK (1L << 17)

typedef struct {
    int transB;
    long M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    long lda, ldb, ldc;
    long chunk;  // columns per task
    int avx2, avx512;
} ak_gemv_ctx_t;

static inline void ak_store(float *c, float value, float alpha, float beta) {
    *c = beta == 0.0f ? alpha * value : alpha * value + beta * *c;
}

// ---- B stored N x K: C[i, n] = dot(A[i, :], B[n, :]) ----

static void dots_portable(const ak_gemv_ctx_t *g, long n0, long n1) {
    for (long n = n0; n < n1; n++) {
        const float *b = g->B + n * g->ldb;
        for (long i = 0; i < g->M; i++) {
            const float *a = g->A + i * g->lda;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            long k = 0;
            for (; k + 4 <= g->K; k += 4) {
                s0 += a[k] * b[k]; s1 += a[k + 1] * b[k + 1]; s2 += a[k + 2] * b[k + 2]; s3 += a[k + 3] * b[k + 3];
            }
            for (; k < g->K; k++) s0 += a[k] * b[k];
            ak_store(g->C + i * g->ldc + n, (s0 + s1) + (s2 + s3), g->alpha, g->beta);
        }
    }
}

#if AK_X86
AK_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Four rows of B at a time, so that each load of A serves four dot products.
AK_AVX2 static void dots_avx2(const ak_gemv_ctx_t *g, long n0, long n1) {
    const long K = g->K, K8 = K & ~7L;
    for (long i = 0; i < g->M; i++) {
        const float *a = g->A + i * g->lda;
        long n = n0;
        for (; n + 4 <= n1; n += 4) {
            const float *b0 = g->B + n * g->ldb, *b1 = b0 + g->ldb, *b2 = b1 + g->ldb, *b3 = b2 + g->ldb;
            __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
            long k = 0;
            for (; k < K8; k += 8) {
                __m256 x = _mm256_loadu_ps(a + k);
                s0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + k), s0);
                s1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + k), s1);
                s2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + k), s2);
                s3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + k), s3);
            }
            float d[4] = {hsum256(s0), hsum256(s1), hsum256(s2), hsum256(s3)};
            for (; k < K; k++) {
                d[0] += a[k] * b0[k]; d[1] += a[k] * b1[k]; d[2] += a[k] * b2[k]; d[3] += a[k] * b3[k];
            }
            for (int r = 0; r < 4; r++) ak_store(g->C + i * g->ldc + n + r, d[r], g->alpha, g->beta);
        }
        for (; n < n1; n++) {
            const float *b = g->B + n * g->ldb;
            __m256 s0 = _mm256_setzero_ps();
            long k = 0;
            for (; k < K8; k += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
            float d = hsum256(s0);
            for (; k < K; k++) d += a[k] * b[k];
            ak_store(g->C + i * g->ldc + n, d, g->alpha, g->beta);
        }
    }
}
#endif

#if AK_X86
// The same with 16-wide AVX-512 vectors (a masked load finishes each row).
__attribute__((target("avx512f"))) static void dots_avx512(const ak_gemv_ctx_t *g, long n0, long n1) {
    const long K = g->K, K16 = K & ~15L;
    const __mmask16 tail = (__mmask16)((1u << (K - K16)) - 1);
    for (long i = 0; i < g->M; i++) {
        const float *a = g->A + i * g->lda;
        const __m512 at = _mm512_maskz_loadu_ps(tail, a + K16);
        long n = n0;
        for (; n + 4 <= n1; n += 4) {
            const float *b0 = g->B + n * g->ldb, *b1 = b0 + g->ldb, *b2 = b1 + g->ldb, *b3 = b2 + g->ldb;
            __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
            for (long k = 0; k < K16; k += 16) {
                __m512 x = _mm512_loadu_ps(a + k);
                s0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(b0 + k), s0);
                s1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(b1 + k), s1);
                s2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(b2 + k), s2);
                s3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(b3 + k), s3);
            }
            if (tail) {
                s0 = _mm512_fmadd_ps(at, _mm512_maskz_loadu_ps(tail, b0 + K16), s0);
                s1 = _mm512_fmadd_ps(at, _mm512_maskz_loadu_ps(tail, b1 + K16), s1);
                s2 = _mm512_fmadd_ps(at, _mm512_maskz_loadu_ps(tail, b2 + K16), s2);
                s3 = _mm512_fmadd_ps(at, _mm512_maskz_loadu_ps(tail, b3 + K16), s3);
            }
            float *c = g->C + i * g->ldc + n;
            ak_store(c, _mm512_reduce_add_ps(s0), g->alpha, g->beta);
            ak_store(c + 1, _mm512_reduce_add_ps(s1), g->alpha, g->beta);
            ak_store(c + 2, _mm512_reduce_add_ps(s2), g->alpha, g->beta);
            ak_store(c + 3, _mm512_reduce_add_ps(s3), g->alpha, g->beta);
        }
        for (; n < n1; n++) {
            const float *b = g->B + n * g->ldb;
            __m512 s0 = _mm512_setzero_ps();
            for (long k = 0; k < K16; k += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), s0);
            if (tail) s0 = _mm512_fmadd_ps(at, _mm512_maskz_loadu_ps(tail, b + K16), s0);
            ak_store(g->C + i * g->ldc + n, _mm512_reduce_add_ps(s0), g->alpha, g->beta);
        }
    }
}
#endif

// ---- B stored K x N: C[i, :] = sum_k A[i, k] B[k, :] ----

static void rows_portable(const ak_gemv_ctx_t *g, long n0, long n1) {
    float acc[256];
    for (long i = 0; i < g->M; i++) {
        const float *a = g->A + i * g->lda;
        for (long j0 = n0; j0 < n1; j0 += 256) {
            long w = n1 - j0 < 256 ? n1 - j0 : 256;
            for (long j = 0; j < w; j++) acc[j] = 0;
            for (long k = 0; k < g->K; k++) {
                const float *b = g->B + k * g->ldb + j0;
                float x = a[k];
                for (long j = 0; j < w; j++) acc[j] += x * b[j];
            }
            for (long j = 0; j < w; j++) ak_store(g->C + i * g->ldc + j0 + j, acc[j], g->alpha, g->beta);
        }
    }
}

#if AK_X86
AK_AVX2 static void rows_avx2(const ak_gemv_ctx_t *g, long n0, long n1) {
    for (long i = 0; i < g->M; i++) {
        const float *a = g->A + i * g->lda;
        long j = n0;
        for (; j + 64 <= n1; j += 64) {   // 8 accumulators of 8 columns
            __m256 c[8];
            for (int r = 0; r < 8; r++) c[r] = _mm256_setzero_ps();
            for (long k = 0; k < g->K; k++) {
                const float *b = g->B + k * g->ldb + j;
                __m256 x = _mm256_broadcast_ss(a + k);
                for (int r = 0; r < 8; r++) c[r] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8 * r), c[r]);
            }
            float out[64];
            for (int r = 0; r < 8; r++) _mm256_storeu_ps(out + 8 * r, c[r]);
            for (int q = 0; q < 64; q++) ak_store(g->C + i * g->ldc + j + q, out[q], g->alpha, g->beta);
        }
        if (j < n1) {
            ak_gemv_ctx_t rest = *g;
            rest.M = 1;
            rest.A = a;
            rest.C = g->C + i * g->ldc;
            rows_portable(&rest, j, n1);
        }
    }
}
#endif

static void ak_gemv_range(const ak_gemv_ctx_t *g, long n0, long n1) {
#if AK_X86
    if (g->avx512 && g->transB) {
        dots_avx512(g, n0, n1);
        return;
    }
    if (g->avx2) {
        if (g->transB) dots_avx2(g, n0, n1); else rows_avx2(g, n0, n1);
        return;
    }
#endif
    if (g->transB) dots_portable(g, n0, n1); else rows_portable(g, n0, n1);
}

static void ak_gemv_task(void *ctx, long t) {
    const ak_gemv_ctx_t *g = (const ak_gemv_ctx_t *)ctx;
    long n0 = t * g->chunk, n1 = n0 + g->chunk < g->N ? n0 + g->chunk : g->N;
    if (n0 < n1) ak_gemv_range(g, n0, n1);
}

int ak_sgemv_small(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                   const float *B, long ldb, float beta, float *C, long ldc, int nthreads) {
    if (transA || M > AK_GEMV_MAX_M || M <= 0 || N <= 0 || K <= 0) return 0;
    ak_gemv_ctx_t g = {transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc, N, ak_cpu_has_avx2_fma(),
                       ak_cpu_has_avx512() && ak_cpu_has_avx2_fma()};
    int tasks = (double)M * N * K < (double)AK_GEMV_PARALLEL_MIN_WORK ? 1 : nthreads;
    if (tasks > 1) {
        g.chunk = ((N + tasks - 1) / tasks + 63) & ~63L;   // whole 64-column blocks per thread
        ak_parallel_for((N + g.chunk - 1) / g.chunk, ak_gemv_task, &g);
    } else {
        ak_gemv_range(&g, 0, N);
    }
    return 1;
}
