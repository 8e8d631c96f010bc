// CKernels: the hot loops of the package, in C.
//
// Every buffer is row-major float32 unless said otherwise. Functions that have an AVX2/FMA version pick it at
// run time (see ak_kernel_isa); the portable version is plain C and builds on any CPU.
#ifndef ALBERTMOE_CKERNELS_H
#define ALBERTMOE_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------------------
// CPU features and threads
// ---------------------------------------------------------------------------------------------------------

/// 1 when the CPU has AVX2 and FMA (and the AVX2 paths are in use), else 0.
int ak_cpu_has_avx2_fma(void);
/// "avx512" (SGEMM and GELU on AVX-512F, the other kernels on AVX2/FMA), "avx2-fma" or "portable": the instruction set
/// the kernels run with.
const char *ak_kernel_isa(void);
/// Forces the portable kernels (1) or restores run-time detection (0). For tests.
void ak_force_portable(int on);

/// Treats denormal floats as zero on the calling thread (x86 MXCSR FTZ + DAZ; elsewhere nothing). The SGEMM and
/// the thread pool call it, so every thread that runs kernels has it: denormals would slow FMA 100x or more.
void ak_flush_denormals(void);

/// Number of threads the kernels may use (>= 1). Read once from ALBERTMOE_NUM_THREADS, else a default.
int ak_get_num_threads(void);
/// Sets the number of threads (values < 1 mean 1). The persistent pool grows as needed.
void ak_set_num_threads(int n);
/// Runs fn(ctx, i) for every i in [0, n) on the persistent pool (the caller's thread takes part).
/// With one thread, or n == 1, it runs inline. Calls are not reentrant from inside fn.
typedef void (*ak_task_fn)(void *ctx, long i);
void ak_parallel_for(long n, ak_task_fn fn, void *ctx);
/// Runs fn(ctx, lo, hi) over [0, n) cut into pieces of `grain` (the last may be shorter), on the pool when there
/// is more than one piece and more than one thread; otherwise once, over all of [0, n).
typedef void (*ak_range_fn)(void *ctx, long lo, long hi);
void ak_parallel_ranges(long n, long grain, ak_range_fn fn, void *ctx);
/// Rows of n elements per piece, so that a piece holds enough work to be worth a thread.
long ak_rows_grain(long n);

// ---------------------------------------------------------------------------------------------------------
// SGEMM: C = alpha * op(A) * op(B) + beta * C, row-major. op(A) is M x K: A is stored M x K (transA = 0,
// lda >= K) or K x M (transA = 1, lda >= M). op(B) is K x N: B is stored K x N (transB = 0, ldb >= N) or
// N x K (transB = 1, ldb >= K). When beta == 0, C is written without being read (NaNs in C do not leak).
// ---------------------------------------------------------------------------------------------------------
void ak_sgemm(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
              const float *B, long ldb, float beta, float *C, long ldc);
/// `batch` independent products; matrix i starts at A + i*strideA, B + i*strideB, C + i*strideC.
/// A stride of 0 shares one matrix across the batch (not allowed for C).
void ak_sgemm_strided_batched(int transA, int transB, long M, long N, long K, float alpha,
                              const float *A, long lda, long strideA, const float *B, long ldb, long strideB,
                              float beta, float *C, long ldc, long strideC, long batch);
/// The path ak_sgemm takes for products of one row with op(A) = A (incremental decoding): B streamed once
/// without packing. Returns 0, doing nothing, for other shapes.
int ak_sgemv_small(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                   const float *B, long ldb, float beta, float *C, long ldc, int nthreads);
/// Naive triple loop with double accumulation, same contract as ak_sgemm. For tests.
void ak_sgemm_reference(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                        const float *B, long ldb, float beta, float *C, long ldc);

// ---------------------------------------------------------------------------------------------------------
// Row-wise kernels over a [rows, n] buffer
// ---------------------------------------------------------------------------------------------------------
/// y = softmax(x) per row (max-subtracted; a row of all -inf gives zeros). x and y may alias.
void ak_softmax_rows(const float *x, float *y, long rows, long n);
/// y = log_softmax(x) per row. x and y may alias.
void ak_log_softmax_rows(const float *x, float *y, long rows, long n);
/// dx = y * (dy - sum(dy * y)) per row, y the softmax output.
void ak_softmax_backward_rows(const float *y, const float *dy, float *dx, long rows, long n);
/// dx = dy - exp(y) * sum(dy) per row, y the log-softmax output.
void ak_log_softmax_backward_rows(const float *y, const float *dy, float *dx, long rows, long n);

/// Cross-entropy over rows of logits with int32 targets; rows whose target == ignore_index are skipped.
/// Writes the log-sum-exp of every row into lse (needed by the backward) and the number of kept rows into
/// *count. Returns the SUM of the per-row losses over kept rows (the caller divides by count).
/// A target outside [0, n) that is not ignore_index makes it return NAN and set *count = -1 - row.
double ak_cross_entropy_forward(const float *logits, const int32_t *targets, long rows, long n, int32_t ignore_index,
                                float *lse, long *count);
/// dlogits = scale * (softmax(logits) - onehot(target)) on kept rows, 0 on ignored rows.
void ak_cross_entropy_backward(const float *logits, const int32_t *targets, const float *lse, long rows, long n,
                               int32_t ignore_index, float scale, float *dlogits);

/// RMSNorm: y = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps) per row; rstd[rows] is saved.
void ak_rmsnorm_forward(const float *x, const float *w, float *y, float *rstd, long rows, long n, float eps);
/// dx (overwritten) and dw (ACCUMULATED, may be NULL) from dy.
void ak_rmsnorm_backward(const float *x, const float *w, const float *rstd, const float *dy, float *dx, float *dw,
                         long rows, long n);

// ---------------------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------------------
/// Exact GELU: y = x * 0.5 * (1 + erf(x / sqrt 2)).
void ak_gelu_forward(const float *x, float *y, long n);
/// dx = dy * (Phi(x) + x * phi(x)).
void ak_gelu_backward(const float *x, const float *dy, float *dx, long n);
/// The index of the first NaN or infinity among x[0..n), or -1 when all are finite.
long ak_first_nonfinite(const float *x, long n);

// ---------------------------------------------------------------------------------------------------------
// RoPE over x laid out [B, T, nH, hd] (hd even, contiguous): the pair (x[2i], x[2i+1]) at token position
// p = pos_offset + t is rotated by the angle p * base^(-2i/hd). inverse = 1 rotates by minus the angle (the
// backward). x and y may alias.
// ---------------------------------------------------------------------------------------------------------
void ak_rope(const float *x, float *y, long B, long T, long nH, long hd, float base, long pos_offset, int inverse);

// ---------------------------------------------------------------------------------------------------------
// Fused scaled dot-product attention. q: [B*nH, Tq, hd], k and v: [B*nH, Tk, hd], o: [B*nH, Tq, hd].
// In the forward, the keys and values of head bh start at k + bh*kv_stride and v + bh*kv_stride (kv_stride >= Tk*hd;
// Tk*hd when contiguous): the Tk rows of a larger buffer, such as a key/value cache.
// s = scale * q k^T; if key_mask (float [B, Tk], 1 = keep, 0 = padding) is given, s += (1 - mask) * -10000;
// if causal, key j is excluded for query i when j > i + (Tk - Tq); p = softmax(s); if dropout_p > 0, p is
// dropped with probability dropout_p and scaled by 1/(1-dropout_p), the mask a pure function of
// (seed, bh, i, j) so the backward regenerates it; o = p v. lse [B*nH, Tq] keeps each row's log-sum-exp.
// ---------------------------------------------------------------------------------------------------------
void ak_attention_forward(const float *q, const float *k, const float *v, long kv_stride, float *o, float *lse,
                          long B, long nH, long Tq, long Tk, long hd, const float *key_mask, int causal,
                          float scale, float dropout_p, uint64_t seed);
/// Gradients of the above; dq, dk, dv are overwritten.
void ak_attention_backward(const float *q, const float *k, const float *v, const float *o, const float *lse,
                           const float *dout, float *dq, float *dk, float *dv,
                           long B, long nH, long Tq, long Tk, long hd, const float *key_mask, int causal,
                           float scale, float dropout_p, uint64_t seed);
/// The keep/drop decision of the attention dropout (1 keep, 0 drop), exposed for tests.
int ak_attention_dropout_keep(uint64_t seed, long bh, long i, long j, float dropout_p);

// ---------------------------------------------------------------------------------------------------------
// Reductions and optimizer updates
// ---------------------------------------------------------------------------------------------------------
/// Sum of squares, accumulated in double.
double ak_sum_squares(const float *x, long n);
/// ChillAdam/Adam moment update and step, in one pass:
///   g' = g * gscale (+ wd * p if wd != 0); m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
///   p -= step * m / (sqrt(v) * inv_sqrt_bc2 + eps)
/// ChillAdam: gscale = 1/clamp(||g||, eps, 100), step = lr/(1-b1^t), inv_sqrt_bc2 = 1/sqrt(1-b2^t).
void ak_adam_update(float *p, const float *g, float *m, float *v, long n, float gscale, float wd, float b1, float b2,
                    float step, float inv_sqrt_bc2, float eps);
/// AdamW: p *= (1 - lr*wd) first (decoupled decay), then the Adam update above with wd = 0.
void ak_adamw_update(float *p, const float *g, float *m, float *v, long n, float lr, float wd, float b1, float b2,
                     float step, float inv_sqrt_bc2, float eps);

// ---------------------------------------------------------------------------------------------------------
// AVX-512 SGEMM
// ---------------------------------------------------------------------------------------------------------
/// 1 when the CPU has AVX-512F and that path is enabled (and the portable kernels are not forced).
int ak_cpu_has_avx512(void);
/// Turns the AVX-512 SGEMM path off (0) or back on (1), e.g. to compare or test the AVX2 path.
void ak_set_avx512_enabled(int on);
/// ak_sgemm on the AVX-512 path with up to `threads` threads; returns 0 (doing nothing) when that path is not
/// available or the product is empty, 1 when C has been computed.
int ak_sgemm_avx512(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
                    const float *B, long ldb, float beta, float *C, long ldc, int threads);

// ---------------------------------------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------------------------------------
/// y = x * mask / (1 - p), the mask a pure function of (seed, index): each element is dropped with probability
/// p. Applying it to the output gradient with the same seed gives the input gradient. x and y may alias.
void ak_dropout(const float *x, float *y, long n, float p, uint64_t seed);

// ---------------------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------------------
/// Tunes the C heap so that freed tensor memory is reused rather than returned to the system (glibc only).
void ak_keep_freed_memory(void);
/// `bytes` of 64-byte aligned memory, to be given back with free(). Every allocation of the package goes through
/// it: when the memory cannot be had, the process stops with a message naming `what` (the kernel or the caller)
/// and the byte count, so no kernel ever returns with its output unwritten.
void *ak_alloc(const char *what, size_t bytes);

// ---------------------------------------------------------------------------------------------------------
// Attention tuning (tests and benchmarks)
// ---------------------------------------------------------------------------------------------------------
/// Forces the query-tile height of ak_attention_forward/backward (0 = automatic: a ~256 KiB score tile, 32 to
/// 256 rows). Returns the previous setting. Not thread-safe against concurrent attention calls.
long ak_attention_set_tile(long bq);

#ifdef __cplusplus
}
#endif
#endif
