// Elementwise kernels: exact GELU and its backward, the finiteness check, sum of squares, Adam/AdamW updates.
#include "ckernels.h"
#include "vecmath.h"

#include <math.h>

#if defined(__x86_64__)
#define AK_USE_AVX2() ak_cpu_has_avx2_fma()
#else
#define AK_USE_AVX2() 0
#endif

// ---------------------------------------------------------------------------------------------------------
// GELU
// ---------------------------------------------------------------------------------------------------------
#if defined(__x86_64__)
AK_AVX2 static void gelu_forward_avx2(const float *x, float *y, long n) {
    long i = 0;
    __m256 g;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(v, ak_normal_cdf256(v, &g)));
    }
    if (i < n) {
        __m256i m = ak_tailmask256(n - i);
        __m256 v = _mm256_maskload_ps(x + i, m);
        _mm256_maskstore_ps(y + i, m, _mm256_mul_ps(v, ak_normal_cdf256(v, &g)));
    }
}

AK_AVX2 static void gelu_backward_avx2(const float *x, const float *dy, float *dx, long n) {
    long i = 0;
    const __m256 c = _mm256_set1_ps(AK_INV_SQRT_2PI);
    __m256 g;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 cdf = ak_normal_cdf256(v, &g);
        __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(v, c), g, cdf);
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), d));
    }
    if (i < n) {
        __m256i m = ak_tailmask256(n - i);
        __m256 v = _mm256_maskload_ps(x + i, m);
        __m256 cdf = ak_normal_cdf256(v, &g);
        __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(v, c), g, cdf);
        _mm256_maskstore_ps(dx + i, m, _mm256_mul_ps(_mm256_maskload_ps(dy + i, m), d));
    }
}

// The AVX2 kernels' arithmetic on 16 lanes (the same results); a tail shorter than 16 uses a mask.
AK_AVX512 static void gelu_forward_avx512(const float *x, float *y, long n) {
    __m512 g;
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = ak_first_mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, ak_normal_cdf512(v, &g)));
    }
}

AK_AVX512 static void gelu_backward_avx512(const float *x, const float *dy, float *dx, long n) {
    const __m512 c = _mm512_set1_ps(AK_INV_SQRT_2PI);
    __m512 g;
    for (long i = 0; i < n; i += 16) {
        __mmask16 m = ak_first_mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        __m512 cdf = ak_normal_cdf512(v, &g);
        __m512 d = _mm512_fmadd_ps(_mm512_mul_ps(v, c), g, cdf);
        _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), d));
    }
}
#endif

static void gelu_forward_range(const float *x, float *y, long n) {
    if (n <= 0) return;
#if defined(__x86_64__)
    if (ak_cpu_has_avx512()) {
        gelu_forward_avx512(x, y, n);
        return;
    }
    if (AK_USE_AVX2()) {
        gelu_forward_avx2(x, y, n);
        return;
    }
#endif
    for (long i = 0; i < n; i++) y[i] = x[i] * ak_normal_cdf_scalar(x[i]);
}

static void gelu_backward_range(const float *x, const float *dy, float *dx, long n) {
    if (n <= 0) return;
#if defined(__x86_64__)
    if (ak_cpu_has_avx512()) {
        gelu_backward_avx512(x, dy, dx, n);
        return;
    }
    if (AK_USE_AVX2()) {
        gelu_backward_avx2(x, dy, dx, n);
        return;
    }
#endif
    for (long i = 0; i < n; i++) {
        float v = x[i];
        dx[i] = dy[i] * (ak_normal_cdf_scalar(v) + v * ak_normal_pdf_scalar(v));
    }
}

// Large GELUs are split across the kernel threads (ak_parallel_ranges).
typedef struct { const float *x, *dy; float *out; } gelu_job_t;

static void gelu_forward_task(void *ctx, long lo, long hi) {
    const gelu_job_t *j = ctx;
    gelu_forward_range(j->x + lo, j->out + lo, hi - lo);
}

static void gelu_backward_task(void *ctx, long lo, long hi) {
    const gelu_job_t *j = ctx;
    gelu_backward_range(j->x + lo, j->dy + lo, j->out + lo, hi - lo);
}

void ak_gelu_forward(const float *x, float *y, long n) {
    gelu_job_t j = {x, NULL, y};
    ak_parallel_ranges(n, ak_rows_grain(1), gelu_forward_task, &j);
}

void ak_gelu_backward(const float *x, const float *dy, float *dx, long n) {
    gelu_job_t j = {x, dy, dx};
    ak_parallel_ranges(n, ak_rows_grain(1), gelu_backward_task, &j);
}

// ---------------------------------------------------------------------------------------------------------
// Finiteness, a block at a time so that the test of each element vectorises.
// ---------------------------------------------------------------------------------------------------------
long ak_first_nonfinite(const float *x, long n) {
    for (long start = 0; start < n; start += 4096) {
        long end = start + 4096 < n ? start + 4096 : n;
        int any = 0;
        for (long i = start; i < end; i++) any |= !isfinite(x[i]);
        if (any) {
            for (long i = start; i < end; i++) if (!isfinite(x[i])) return i;
        }
    }
    return -1;
}

// ---------------------------------------------------------------------------------------------------------
// Sum of squares (double accumulation)
// ---------------------------------------------------------------------------------------------------------
#if defined(__x86_64__)
AK_AVX2 static double sum_squares_avx2(const float *x, long n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v0)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1));
        __m256d d2 = _mm256_cvtps_pd(_mm256_castps256_ps128(v1)), d3 = _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1));
        a0 = _mm256_fmadd_pd(d0, d0, a0);
        a1 = _mm256_fmadd_pd(d1, d1, a1);
        a2 = _mm256_fmadd_pd(d2, d2, a2);
        a3 = _mm256_fmadd_pd(d3, d3, a3);
    }
    double s = ak_hsum256d(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3)));
    for (; i < n; i++) s += (double)x[i] * x[i];
    return s;
}
#endif

double ak_sum_squares(const float *x, long n) {
    if (n <= 0) return 0;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) return sum_squares_avx2(x, n);
#endif
    double a[4] = {0, 0, 0, 0};
    long i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) a[l] += (double)x[i + l] * x[i + l];
    double s = (a[0] + a[1]) + (a[2] + a[3]);
    for (; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

// ---------------------------------------------------------------------------------------------------------
// Adam / AdamW. One pass; the loop body is plain C that the compiler vectorises (SSE in the portable
// build, AVX2 in the clone compiled for avx2+fma).
// ---------------------------------------------------------------------------------------------------------
static inline __attribute__((always_inline)) void adam_body(float *restrict p, const float *restrict g,
                                                            float *restrict m, float *restrict v, long n, float gscale,
                                                            float wd, float b1, float b2, float step,
                                                            float inv_sqrt_bc2, float eps, float pmul) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    if (wd != 0.0f) {
        for (long i = 0; i < n; i++) {
            float pi = p[i] * pmul;
            float gi = g[i] * gscale + wd * pi;
            float mi = b1 * m[i] + c1 * gi;
            float vi = b2 * v[i] + c2 * (gi * gi);
            m[i] = mi;
            v[i] = vi;
            p[i] = pi - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
        }
    } else {
        for (long i = 0; i < n; i++) {
            float pi = p[i] * pmul;
            float gi = g[i] * gscale;
            float mi = b1 * m[i] + c1 * gi;
            float vi = b2 * v[i] + c2 * (gi * gi);
            m[i] = mi;
            v[i] = vi;
            p[i] = pi - step * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
        }
    }
}

static void adam_portable(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long n,
                          float gscale, float wd, float b1, float b2, float step, float inv_sqrt_bc2, float eps,
                          float pmul) {
    adam_body(p, g, m, v, n, gscale, wd, b1, b2, step, inv_sqrt_bc2, eps, pmul);
}

#if defined(__x86_64__)
AK_AVX2 static void adam_avx2(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long n,
                              float gscale, float wd, float b1, float b2, float step, float inv_sqrt_bc2, float eps,
                              float pmul) {
    adam_body(p, g, m, v, n, gscale, wd, b1, b2, step, inv_sqrt_bc2, eps, pmul);
}
#endif

void ak_adam_update(float *p, const float *g, float *m, float *v, long n, float gscale, float wd, float b1, float b2,
                    float step, float inv_sqrt_bc2, float eps) {
    if (n <= 0) return;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) {
        adam_avx2(p, g, m, v, n, gscale, wd, b1, b2, step, inv_sqrt_bc2, eps, 1.0f);
        return;
    }
#endif
    adam_portable(p, g, m, v, n, gscale, wd, b1, b2, step, inv_sqrt_bc2, eps, 1.0f);
}

void ak_adamw_update(float *p, const float *g, float *m, float *v, long n, float lr, float wd, float b1, float b2,
                     float step, float inv_sqrt_bc2, float eps) {
    if (n <= 0) return;
    float pmul = 1.0f - lr * wd;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) {
        adam_avx2(p, g, m, v, n, 1.0f, 0.0f, b1, b2, step, inv_sqrt_bc2, eps, pmul);
        return;
    }
#endif
    adam_portable(p, g, m, v, n, 1.0f, 0.0f, b1, b2, step, inv_sqrt_bc2, eps, pmul);
}
