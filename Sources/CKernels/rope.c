// Rotary position embedding on interleaved pairs, [B, T, nH, hd].
#include "ckernels.h"
#include "vecmath.h"

#include <math.h>
#include <stdlib.h>

// Rotates every head of one token. cs holds, per pair i, (c, c) and ss holds (-s, s), interleaved to match x
// (s already negated for the inverse): y[2i] = a c - b s, y[2i+1] = b c + a s.
static void rope_token_scalar(const float *x, float *y, long nH, long hd, const float *cs, const float *ss) {
    for (long h = 0; h < nH; h++) {
        const float *xh = x + h * hd;
        float *yh = y + h * hd;
        for (long j = 0; j + 1 < hd; j += 2) {
            float a = xh[j], b = xh[j + 1];
            yh[j] = a * cs[j] + b * ss[j];
            yh[j + 1] = b * cs[j + 1] + a * ss[j + 1];
        }
        if (hd & 1) yh[hd - 1] = xh[hd - 1];  // hd must be even; an odd last element is passed through
    }
}

#if defined(__x86_64__)
// Same as rope_token_scalar, 8 lanes at a time: y = x * cs + swap_pairs(x) * ss.
AK_AVX2 static void rope_token_avx2(const float *x, float *y, long nH, long hd, const float *cs, const float *ss) {
    for (long h = 0; h < nH; h++) {
        const float *xh = x + h * hd;
        float *yh = y + h * hd;
        long j = 0;
        for (; j + 8 <= hd; j += 8) {
            __m256 v = _mm256_loadu_ps(xh + j);
            __m256 sw = _mm256_permute_ps(v, 0xB1);  // (b, a) pairs
            _mm256_storeu_ps(yh + j, _mm256_fmadd_ps(v, _mm256_loadu_ps(cs + j), _mm256_mul_ps(sw, _mm256_loadu_ps(ss + j))));
        }
        for (; j + 1 < hd; j += 2) {
            float a = xh[j], b = xh[j + 1];
            yh[j] = a * cs[j] + b * ss[j];
            yh[j + 1] = b * cs[j + 1] + a * ss[j + 1];
        }
        if (hd & 1) yh[hd - 1] = xh[hd - 1];
    }
}
#endif

typedef struct {
    const float *x;
    float *y;
    const float *tab;
    long T, nH, hd;
} rope_job_t;

// Tokens lo..<hi of the B * T, each with the table row of its position.
static void rope_range(void *c, long lo, long hi) {
    const rope_job_t *j = c;
    for (long bt = lo; bt < hi; bt++) {
        const float *cs = j->tab + (bt % j->T) * j->hd * 2, *sn = cs + j->hd;
        long off = bt * j->nH * j->hd;
#if defined(__x86_64__)
        if (ak_cpu_has_avx2_fma()) {
            rope_token_avx2(j->x + off, j->y + off, j->nH, j->hd, cs, sn);
            continue;
        }
#endif
        rope_token_scalar(j->x + off, j->y + off, j->nH, j->hd, cs, sn);
    }
}

void ak_rope(const float *x, float *y, long B, long T, long nH, long hd, float base, long pos_offset, int inverse) {
    if (B <= 0 || T <= 0 || nH <= 0 || hd <= 0) return;
    long h2 = hd / 2;
    // Tables, as the PyTorch reference computes them in float32: inv_i = 1 / base^((2i)/hd),
    // angle = (float)p * inv_i; cos and sin are taken in double of the float angle and rounded.
    float *inv = (float *)ak_alloc("rope", (size_t)h2 * sizeof(float));
    float *tab = (float *)ak_alloc("rope", (size_t)T * (size_t)hd * 2 * sizeof(float));  // per t: [hd] cos, [hd] sin
    for (long i = 0; i < h2; i++) {
        float e = (float)(2 * i) / (float)hd;
        inv[i] = 1.0f / powf(base, e);
    }
    float sg = inverse ? -1.0f : 1.0f;
    for (long t = 0; t < T; t++) {
        float p = (float)(pos_offset + t);
        float *c = tab + t * hd * 2, *s = c + hd;
        for (long i = 0; i < h2; i++) {
            float ang = p * inv[i];
            float cv = (float)cos((double)ang), sv = sg * (float)sin((double)ang);
            c[2 * i] = cv;
            c[2 * i + 1] = cv;
            s[2 * i] = -sv;
            s[2 * i + 1] = sv;
        }
    }
    rope_job_t j = {x, y, tab, T, nH, hd};
    ak_parallel_ranges(B * T, ak_rows_grain(nH * hd), rope_range, &j);
    free(inv);
    free(tab);
}
