// Row-wise kernels: softmax, log-softmax and their backwards, cross-entropy, RMSNorm.
#include "ckernels.h"
#include "vecmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------------------
// Portable rows
// ---------------------------------------------------------------------------------------------------------

static float expsub_sum_scalar(const float *x, float *y, long n, float shift) {
    float a[4] = {0, 0, 0, 0};
    long j = 0;
    for (; j + 4 <= n; j += 4)
        for (int l = 0; l < 4; l++) {
            float e = expf(x[j + l] - shift);
            if (y) y[j + l] = e;
            a[l] += e;
        }
    float s = (a[0] + a[1]) + (a[2] + a[3]);
    for (; j < n; j++) {
        float e = expf(x[j] - shift);
        if (y) y[j] = e;
        s += e;
    }
    return s;
}

static void softmax_row_scalar(const float *x, float *y, long n) {
    float m = ak_rowmax_scalar(x, n);
    if (m == -INFINITY) {
        memset(y, 0, (size_t)n * sizeof(float));
        return;
    }
    float s = expsub_sum_scalar(x, y, n, m);
    float inv = 1.0f / s;
    for (long j = 0; j < n; j++) y[j] *= inv;
}

static void log_softmax_row_scalar(const float *x, float *y, long n) {
    float m = ak_rowmax_scalar(x, n);
    if (m == -INFINITY) {  // log of 0/0: every entry is undefined, as in PyTorch
        for (long j = 0; j < n; j++) y[j] = NAN;
        return;
    }
    float lse = m + logf(expsub_sum_scalar(x, NULL, n, m));
    for (long j = 0; j < n; j++) y[j] = x[j] - lse;
}

static float row_lse_scalar(const float *x, long n) {
    float m = ak_rowmax_scalar(x, n);
    if (m == -INFINITY) return -INFINITY;
    return m + logf(expsub_sum_scalar(x, NULL, n, m));
}

// ---------------------------------------------------------------------------------------------------------
// AVX2 rows
// ---------------------------------------------------------------------------------------------------------
#if defined(__x86_64__)
AK_AVX2 static void softmax_rows_avx2(const float *x, float *y, long rows, long n) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float m = ak_rowmax256(xr, n);
        if (m == -INFINITY) {
            memset(yr, 0, (size_t)n * sizeof(float));
            continue;
        }
        float s = ak_expsub_sum256(xr, yr, n, m);
        ak_scale256(yr, yr, n, 1.0f / s);
    }
}

AK_AVX2 static void log_softmax_rows_avx2(const float *x, float *y, long rows, long n) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        float m = ak_rowmax256(xr, n);
        if (m == -INFINITY) {
            for (long j = 0; j < n; j++) yr[j] = NAN;
            continue;
        }
        float lse = m + logf(ak_expsub_sumonly256(xr, n, m));
        __m256 l = _mm256_set1_ps(lse);
        long j = 0;
        for (; j + 8 <= n; j += 8) _mm256_storeu_ps(yr + j, _mm256_sub_ps(_mm256_loadu_ps(xr + j), l));
        for (; j < n; j++) yr[j] = xr[j] - lse;
    }
}

AK_AVX2 static void softmax_backward_rows_avx2(const float *y, const float *dy, float *dx, long rows, long n) {
    for (long r = 0; r < rows; r++) {
        const float *yr = y + r * n, *dyr = dy + r * n;
        float *dxr = dx + r * n;
        __m256 s = _mm256_set1_ps(ak_dot256(yr, dyr, n));
        float ss = _mm256_cvtss_f32(s);
        long j = 0;
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(dxr + j, _mm256_mul_ps(_mm256_loadu_ps(yr + j),
                                                    _mm256_sub_ps(_mm256_loadu_ps(dyr + j), s)));
        for (; j < n; j++) dxr[j] = yr[j] * (dyr[j] - ss);
    }
}

AK_AVX2 static void log_softmax_backward_rows_avx2(const float *y, const float *dy, float *dx, long rows, long n) {
    for (long r = 0; r < rows; r++) {
        const float *yr = y + r * n, *dyr = dy + r * n;
        float *dxr = dx + r * n;
        __m256 a0 = _mm256_setzero_ps();
        long j = 0;
        for (; j + 8 <= n; j += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(dyr + j));
        float sdy = ak_hsum256(a0);
        for (; j < n; j++) sdy += dyr[j];
        __m256 s = _mm256_set1_ps(sdy);
        j = 0;
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(dxr + j, _mm256_fnmadd_ps(ak_exp256(_mm256_loadu_ps(yr + j)), s,
                                                       _mm256_loadu_ps(dyr + j)));
        if (j < n) {
            __m256i m = ak_tailmask256(n - j);
            __m256 e = ak_exp256(_mm256_maskload_ps(yr + j, m));
            _mm256_maskstore_ps(dxr + j, m, _mm256_fnmadd_ps(e, s, _mm256_maskload_ps(dyr + j, m)));
        }
    }
}

AK_AVX2 static float row_lse_avx2(const float *x, long n) {
    float m = ak_rowmax256(x, n);
    if (m == -INFINITY) return -INFINITY;
    return m + logf(ak_expsub_sumonly256(x, n, m));
}

// dlogits row = scale * exp(x - lse)  (the one-hot term is subtracted by the caller)
AK_AVX2 static void scaled_exp_row_avx2(const float *x, float *d, long n, float lse, float scale) {
    __m256 l = _mm256_set1_ps(lse), s = _mm256_set1_ps(scale);
    long j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(d + j, _mm256_mul_ps(s, ak_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), l))));
    if (j < n) {
        __m256i m = ak_tailmask256(n - j);
        __m256 e = ak_exp256(_mm256_sub_ps(_mm256_maskload_ps(x + j, m), l));
        _mm256_maskstore_ps(d + j, m, _mm256_mul_ps(s, e));
    }
}

AK_AVX2 static void rmsnorm_forward_avx2(const float *x, const float *w, float *y, float *rstd, long rows, long n,
                                         float eps) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        __m256d a0 = _mm256_setzero_pd(), a1 = a0;
        long j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 v = _mm256_loadu_ps(xr + j);
            __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
            a0 = _mm256_fmadd_pd(lo, lo, a0);
            a1 = _mm256_fmadd_pd(hi, hi, a1);
        }
        double ss = ak_hsum256d(_mm256_add_pd(a0, a1));
        for (; j < n; j++) ss += (double)xr[j] * xr[j];
        float rs = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        rstd[r] = rs;
        __m256 rv = _mm256_set1_ps(rs);
        j = 0;
        for (; j + 8 <= n; j += 8)
            _mm256_storeu_ps(yr + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + j), rv), _mm256_loadu_ps(w + j)));
        for (; j < n; j++) yr[j] = xr[j] * rs * w[j];
    }
}

AK_AVX2 static void rmsnorm_backward_avx2(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                                          float *dw, long rows, long n) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *dyr = dy + r * n;
        float *dxr = dx + r * n;
        float rs = rstd[r];
        // c = sum(dy * w * x)
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        long j = 0;
        for (; j + 16 <= n; j += 16) {
            a0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(dyr + j), _mm256_loadu_ps(w + j)), _mm256_loadu_ps(xr + j), a0);
            a1 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(dyr + j + 8), _mm256_loadu_ps(w + j + 8)),
                                 _mm256_loadu_ps(xr + j + 8), a1);
        }
        float c = ak_hsum256(_mm256_add_ps(a0, a1));
        for (; j < n; j++) c += dyr[j] * w[j] * xr[j];
        float k = c * rs * rs * rs / (float)n;
        __m256 rv = _mm256_set1_ps(rs), kv = _mm256_set1_ps(k);
        j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 xv = _mm256_loadu_ps(xr + j), dv = _mm256_loadu_ps(dyr + j);
            __m256 t = _mm256_mul_ps(_mm256_mul_ps(dv, _mm256_loadu_ps(w + j)), rv);
            _mm256_storeu_ps(dxr + j, _mm256_fnmadd_ps(xv, kv, t));
            if (dw) _mm256_storeu_ps(dw + j, _mm256_fmadd_ps(_mm256_mul_ps(dv, xv), rv, _mm256_loadu_ps(dw + j)));
        }
        for (; j < n; j++) {
            dxr[j] = dyr[j] * w[j] * rs - xr[j] * k;
            if (dw) dw[j] += dyr[j] * xr[j] * rs;
        }
    }
}
#define AK_USE_AVX2() ak_cpu_has_avx2_fma()
#else
#define AK_USE_AVX2() 0
#endif

// ---------------------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------------------
// Each splits its rows across the kernel threads in pieces of ak_rows_grain(n) rows; a row's result never
// depends on the split.

typedef struct {
    const float *x, *y, *w;
    float *out, *aux;
    long n;
    const int32_t *targets;
    int32_t ignore_index;
    float scale;
} rows_job_t;

static void lse_range(void *c, long lo, long hi);

static void softmax_rows_serial(const float *x, float *y, long rows, long n) {
    if (rows <= 0 || n <= 0) return;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) {
        softmax_rows_avx2(x, y, rows, n);
        return;
    }
#endif
    for (long r = 0; r < rows; r++) softmax_row_scalar(x + r * n, y + r * n, n);
}

static void log_softmax_rows_serial(const float *x, float *y, long rows, long n) {
    if (rows <= 0 || n <= 0) return;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) {
        log_softmax_rows_avx2(x, y, rows, n);
        return;
    }
#endif
    for (long r = 0; r < rows; r++) log_softmax_row_scalar(x + r * n, y + r * n, n);
}

static void softmax_backward_rows_serial(const float *y, const float *dy, float *dx, long rows, long n) {
    if (rows <= 0 || n <= 0) return;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) {
        softmax_backward_rows_avx2(y, dy, dx, rows, n);
        return;
    }
#endif
    for (long r = 0; r < rows; r++) {
        const float *yr = y + r * n, *dyr = dy + r * n;
        float *dxr = dx + r * n;
        float s = ak_dot_scalar(yr, dyr, n);
        for (long j = 0; j < n; j++) dxr[j] = yr[j] * (dyr[j] - s);
    }
}

static void log_softmax_backward_rows_serial(const float *y, const float *dy, float *dx, long rows, long n) {
    if (rows <= 0 || n <= 0) return;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) {
        log_softmax_backward_rows_avx2(y, dy, dx, rows, n);
        return;
    }
#endif
    for (long r = 0; r < rows; r++) {
        const float *yr = y + r * n, *dyr = dy + r * n;
        float *dxr = dx + r * n;
        float s = 0;
        for (long j = 0; j < n; j++) s += dyr[j];
        for (long j = 0; j < n; j++) dxr[j] = dyr[j] - expf(yr[j]) * s;
    }
}

static void lse_rows(const float *logits, float *lse, long rows, long n) {
    for (long r = 0; r < rows; r++) {
#if defined(__x86_64__)
        if (AK_USE_AVX2()) {
            lse[r] = row_lse_avx2(logits + r * n, n);
            continue;
        }
#endif
        lse[r] = row_lse_scalar(logits + r * n, n);
    }
}

double ak_cross_entropy_forward(const float *logits, const int32_t *targets, long rows, long n, int32_t ignore_index,
                                float *lse, long *count) {
    // Validate every target first, so that nothing is read out of bounds.
    for (long r = 0; r < rows; r++) {
        int32_t t = targets[r];
        if (t != ignore_index && (t < 0 || (long)t >= n)) {
            if (count) *count = -1 - r;
            return NAN;
        }
    }
    float *own = lse ? NULL : (float *)ak_alloc("cross entropy", (size_t)rows * sizeof(float));
    float *l = lse ? lse : own;
    rows_job_t j = {logits, NULL, NULL, l, NULL, n};
    ak_parallel_ranges(rows, ak_rows_grain(n), lse_range, &j);
    double total = 0;
    long kept = 0;
    for (long r = 0; r < rows; r++) {
        int32_t t = targets[r];
        if (t == ignore_index) continue;
        total += (double)l[r] - (double)logits[r * n + t];
        kept++;
    }
    free(own);
    if (count) *count = kept;
    return total;
}

static void cross_entropy_backward_serial(const float *logits, const int32_t *targets, const float *lse, long rows,
                                         long n, int32_t ignore_index, float scale, float *dlogits) {
    int avx = AK_USE_AVX2();
    (void)avx;
    for (long r = 0; r < rows; r++) {
        const float *xr = logits + r * n;
        float *dr = dlogits + r * n;
        int32_t t = targets[r];
        if (t == ignore_index || t < 0 || (long)t >= n) {  // ignored (or invalid: never read out of bounds)
            memset(dr, 0, (size_t)n * sizeof(float));
            continue;
        }
        float l = lse[r];
#if defined(__x86_64__)
        if (avx) scaled_exp_row_avx2(xr, dr, n, l, scale);
        else
#endif
            for (long j = 0; j < n; j++) dr[j] = scale * expf(xr[j] - l);
        dr[t] -= scale;
    }
}

static void rmsnorm_forward_serial(const float *x, const float *w, float *y, float *rstd, long rows, long n, float eps) {
    if (rows <= 0 || n <= 0) return;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) {
        rmsnorm_forward_avx2(x, w, y, rstd, rows, n, eps);
        return;
    }
#endif
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double a[4] = {0, 0, 0, 0};
        long j = 0;
        for (; j + 4 <= n; j += 4)
            for (int l = 0; l < 4; l++) a[l] += (double)xr[j + l] * xr[j + l];
        double ss = (a[0] + a[1]) + (a[2] + a[3]);
        for (; j < n; j++) ss += (double)xr[j] * xr[j];
        float rs = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        rstd[r] = rs;
        for (j = 0; j < n; j++) yr[j] = xr[j] * rs * w[j];
    }
}

void ak_rmsnorm_backward(const float *x, const float *w, const float *rstd, const float *dy, float *dx, float *dw,
                         long rows, long n) {
    if (rows <= 0 || n <= 0) return;
#if defined(__x86_64__)
    if (AK_USE_AVX2()) {
        rmsnorm_backward_avx2(x, w, rstd, dy, dx, dw, rows, n);
        return;
    }
#endif
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *dyr = dy + r * n;
        float *dxr = dx + r * n;
        float rs = rstd[r];
        float a[8] = {0};
        long j = 0;
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++) a[l] += dyr[j + l] * w[j + l] * xr[j + l];
        float c = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
        for (; j < n; j++) c += dyr[j] * w[j] * xr[j];
        float k = c * rs * rs * rs / (float)n;
        for (j = 0; j < n; j++) dxr[j] = dyr[j] * w[j] * rs - xr[j] * k;
        if (dw)
            for (j = 0; j < n; j++) dw[j] += dyr[j] * xr[j] * rs;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Row-parallel wrappers
// ---------------------------------------------------------------------------------------------------------

// A row-wise function of one input (x -> y) or of a forward output and its gradient ((y, dy) -> dx), split.
typedef void (*rows1_fn)(const float *x, float *y, long rows, long n);
typedef void (*rows2_fn)(const float *y, const float *dy, float *dx, long rows, long n);

typedef struct {
    rows1_fn f1;
    rows2_fn f2;
    const float *a, *b;
    float *out;
    long n;
} rows_call_t;

static void rows_call_range(void *c, long lo, long hi) {
    const rows_call_t *j = c;
    long o = lo * j->n;
    if (j->f1) j->f1(j->a + o, j->out + o, hi - lo, j->n);
    else j->f2(j->a + o, j->b + o, j->out + o, hi - lo, j->n);
}

static void split_rows(rows1_fn f1, rows2_fn f2, const float *a, const float *b, float *out, long rows, long n) {
    rows_call_t j = {f1, f2, a, b, out, n};
    if (n > 0) ak_parallel_ranges(rows, ak_rows_grain(n), rows_call_range, &j);
}

void ak_softmax_rows(const float *x, float *y, long rows, long n) {
    split_rows(softmax_rows_serial, NULL, x, NULL, y, rows, n);
}

void ak_log_softmax_rows(const float *x, float *y, long rows, long n) {
    split_rows(log_softmax_rows_serial, NULL, x, NULL, y, rows, n);
}

void ak_softmax_backward_rows(const float *y, const float *dy, float *dx, long rows, long n) {
    split_rows(NULL, softmax_backward_rows_serial, y, dy, dx, rows, n);
}

void ak_log_softmax_backward_rows(const float *y, const float *dy, float *dx, long rows, long n) {
    split_rows(NULL, log_softmax_backward_rows_serial, y, dy, dx, rows, n);
}

static void lse_range(void *c, long lo, long hi) {
    const rows_job_t *j = c;
    lse_rows(j->x + lo * j->n, j->out + lo, hi - lo, j->n);
}

static void cross_entropy_backward_range(void *c, long lo, long hi) {
    const rows_job_t *j = c;
    cross_entropy_backward_serial(j->x + lo * j->n, j->targets + lo, j->y + lo, hi - lo, j->n, j->ignore_index,
                                  j->scale, j->out + lo * j->n);
}

void ak_cross_entropy_backward(const float *logits, const int32_t *targets, const float *lse, long rows, long n,
                               int32_t ignore_index, float scale, float *dlogits) {
    rows_job_t j = {logits, lse, NULL, dlogits, NULL, n, targets, ignore_index, scale};
    if (n > 0) ak_parallel_ranges(rows, ak_rows_grain(n), cross_entropy_backward_range, &j);
}

static void rmsnorm_forward_range(void *c, long lo, long hi) {
    const rows_job_t *j = c;
    rmsnorm_forward_serial(j->x + lo * j->n, j->w, j->out + lo * j->n, j->aux + lo, hi - lo, j->n, j->scale);
}

void ak_rmsnorm_forward(const float *x, const float *w, float *y, float *rstd, long rows, long n, float eps) {
    rows_job_t j = {x, NULL, w, y, rstd, n, NULL, 0, eps};
    if (n > 0) ak_parallel_ranges(rows, ak_rows_grain(n), rmsnorm_forward_range, &j);
}
