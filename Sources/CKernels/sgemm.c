// Temporary: the packed SGEMM replaces this file.
#include "ckernels.h"

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

void ak_sgemm(int transA, int transB, long M, long N, long K, float alpha, const float *A, long lda,
              const float *B, long ldb, float beta, float *C, long ldc) {
    ak_sgemm_reference(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ak_sgemm_strided_batched(int transA, int transB, long M, long N, long K, float alpha,
                              const float *A, long lda, long strideA, const float *B, long ldb, long strideB,
                              float beta, float *C, long ldc, long strideC, long batch) {
    for (long i = 0; i < batch; i++)
        ak_sgemm(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta, C + i * strideC, ldc);
}
int ak_cpu_has_avx2_fma(void) { return 0; }
const char *ak_kernel_isa(void) { return "portable"; }
void ak_force_portable(int on) { (void)on; }
int ak_get_num_threads(void) { return 1; }
void ak_set_num_threads(int n) { (void)n; }
void ak_parallel_for(long n, ak_task_fn fn, void *ctx) { for (long i = 0; i < n; i++) fn(ctx, i); }
