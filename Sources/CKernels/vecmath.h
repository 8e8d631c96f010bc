// Internal helpers of CKernels: vectorised exp / normal-CDF for AVX2+FMA and small reductions.
// Every AVX2 function is marked with a target attribute, so this header can be included in a file that is
// compiled without -mavx2; only call these functions after checking ak_cpu_has_avx2_fma().
#ifndef ALBERTMOE_VECMATH_H
#define ALBERTMOE_VECMATH_H

#include <math.h>
#include <stdint.h>

// Coefficients of Q(t) ~ erfc(z) * exp(z^2) / t with t = 2 / (2 + z), fitted (Chebyshev, relative weight)
// on z in [0, 10]; the fit error is 2e-8, in float the evaluation is within ~3e-7 relative.
#define AK_ERFCX_C0 2.820628881e-01f
#define AK_ERFCX_C1 2.828940153e-01f
#define AK_ERFCX_C2 2.382882237e-01f
#define AK_ERFCX_C3 2.274455130e-01f
#define AK_ERFCX_C4 -1.045284793e-01f
#define AK_ERFCX_C5 4.341518879e-01f
#define AK_ERFCX_C6 -6.870458126e-01f
#define AK_ERFCX_C7 4.428111315e-01f
#define AK_ERFCX_C8 -1.296140403e-01f
#define AK_ERFCX_C9 1.353464928e-02f

#define AK_INV_SQRT2 0.70710678118654752f
#define AK_INV_SQRT_2PI 0.39894228040143268f

// Portable (scalar) standard normal CDF and density, float.
static inline float ak_normal_cdf_scalar(float x) { return 0.5f * erfcf(-x * AK_INV_SQRT2); }
static inline float ak_normal_pdf_scalar(float x) { return AK_INV_SQRT_2PI * expf(-0.5f * x * x); }

#if defined(__x86_64__)
#include <immintrin.h>

#define AK_AVX2 __attribute__((target("avx2,fma")))
#define AK_AVX2_INLINE static inline __attribute__((target("avx2,fma"), always_inline))

/// exp(x) for 8 floats, relative error ~1-2 ulp. Results below ~1.2e-38 (x < -87.33, -inf included) are 0;
/// x is clamped to 88 above (inputs here are <= 0 in practice). NaN propagates.
AK_AVX2_INLINE __m256 ak_exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.0f), lo = _mm256_set1_ps(-87.33654475f);
    __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);     // false for NaN and below the range
    __m256 isnan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 xc = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    y = _mm256_and_ps(y, keep);
    return _mm256_or_ps(y, _mm256_and_ps(isnan, x));
}

/// Standard normal CDF Phi(x) for 8 floats; also returns exp(-x^2/2) in *g (for the density).
/// Phi is accurate to ~3e-7 relative for x < 0 (the tail) and ~2e-7 absolute for x > 0.
AK_AVX2_INLINE __m256 ak_normal_cdf256(__m256 x, __m256 *g) {
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    __m256 a = _mm256_andnot_ps(signbit, x);
    a = _mm256_min_ps(a, _mm256_set1_ps(14.0f));
    __m256 z = _mm256_mul_ps(a, _mm256_set1_ps(AK_INV_SQRT2));
    __m256 t = _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(z, _mm256_set1_ps(2.0f)));
    __m256 q = _mm256_set1_ps(AK_ERFCX_C9);
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C8));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C7));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C6));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C5));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C4));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C3));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C2));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C1));
    q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(AK_ERFCX_C0));
    q = _mm256_mul_ps(q, t);
    // exp(-a^2/2) with a^2 = hi + lo exactly (FMA), so the rounding of a^2 costs nothing in the tail.
    __m256 hi = _mm256_mul_ps(a, a);
    __m256 lo = _mm256_fmsub_ps(a, a, hi);
    __m256 e = ak_exp256(_mm256_mul_ps(hi, _mm256_set1_ps(-0.5f)));
    e = _mm256_fnmadd_ps(e, _mm256_mul_ps(lo, _mm256_set1_ps(0.5f)), e);
    __m256 halferfc = _mm256_mul_ps(_mm256_mul_ps(q, e), _mm256_set1_ps(0.5f));
    __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ);
    *g = e;
    return _mm256_blendv_ps(halferfc, _mm256_sub_ps(_mm256_set1_ps(1.0f), halferfc), pos);
}

#define AK_AVX512 __attribute__((target("avx512f")))
#define AK_AVX512_INLINE static inline __attribute__((target("avx512f"), always_inline))

/// The mask of the first n of 16 lanes (n <= 0: none, n >= 16: all), for masked AVX-512 loads and stores.
static inline __mmask16 ak_first_mask16(long n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/// ak_exp256 on 16 lanes: the same operations in the same order, so the same results bit for bit.
AK_AVX512_INLINE __m512 ak_exp512(__m512 x) {
    const __m512 hi = _mm512_set1_ps(88.0f), lo = _mm512_set1_ps(-87.33654475f);
    __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    __mmask16 isnan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __m512 xc = _mm512_max_ps(_mm512_min_ps(x, hi), lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 y = _mm512_maskz_mov_ps(keep, _mm512_mul_ps(p, _mm512_castsi512_ps(e)));
    return _mm512_mask_mov_ps(y, isnan, x);
}

/// ak_normal_cdf256 on 16 lanes, bit for bit the same.
AK_AVX512_INLINE __m512 ak_normal_cdf512(__m512 x, __m512 *g) {
    __m512 a = _mm512_min_ps(_mm512_abs_ps(x), _mm512_set1_ps(14.0f));
    __m512 z = _mm512_mul_ps(a, _mm512_set1_ps(AK_INV_SQRT2));
    __m512 t = _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(z, _mm512_set1_ps(2.0f)));
    static const float c[10] = {AK_ERFCX_C0, AK_ERFCX_C1, AK_ERFCX_C2, AK_ERFCX_C3, AK_ERFCX_C4,
                                AK_ERFCX_C5, AK_ERFCX_C6, AK_ERFCX_C7, AK_ERFCX_C8, AK_ERFCX_C9};
    __m512 q = _mm512_set1_ps(c[9]);
    for (int i = 8; i >= 0; i--) q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(c[i]));
    q = _mm512_mul_ps(q, t);
    __m512 hi = _mm512_mul_ps(a, a);
    __m512 lo = _mm512_fmsub_ps(a, a, hi);
    __m512 e = ak_exp512(_mm512_mul_ps(hi, _mm512_set1_ps(-0.5f)));
    e = _mm512_fnmadd_ps(e, _mm512_mul_ps(lo, _mm512_set1_ps(0.5f)), e);
    __m512 halferfc = _mm512_mul_ps(_mm512_mul_ps(q, e), _mm512_set1_ps(0.5f));
    __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    *g = e;
    return _mm512_mask_blend_ps(pos, halferfc, _mm512_sub_ps(_mm512_set1_ps(1.0f), halferfc));
}

/// Mask for the first r lanes (0 <= r <= 8), for _mm256_maskload_ps / _mm256_maskstore_ps.
AK_AVX2_INLINE __m256i ak_tailmask256(long r) {
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), idx);
}

AK_AVX2_INLINE float ak_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AK_AVX2_INLINE float ak_hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AK_AVX2_INLINE double ak_hsum256d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
}

/// Row maximum (NaN-free input assumed; -inf allowed).
AK_AVX2_INLINE float ak_rowmax256(const float *x, long n) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + j + 8));
    }
    for (; j + 8 <= n; j += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
    float m = ak_hmax256(_mm256_max_ps(m0, m1));
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/// y[j] = exp(x[j] - shift), returns the sum (float accumulation in 16 lanes). x and y may alias.
AK_AVX2_INLINE float ak_expsub_sum256(const float *x, float *y, long n, float shift) {
    __m256 s = _mm256_set1_ps(shift), a0 = _mm256_setzero_ps(), a1 = a0;
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 e0 = ak_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), s));
        __m256 e1 = ak_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), s));
        _mm256_storeu_ps(y + j, e0);
        _mm256_storeu_ps(y + j + 8, e1);
        a0 = _mm256_add_ps(a0, e0);
        a1 = _mm256_add_ps(a1, e1);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 e0 = ak_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), s));
        _mm256_storeu_ps(y + j, e0);
        a0 = _mm256_add_ps(a0, e0);
    }
    if (j < n) {
        __m256i m = ak_tailmask256(n - j);
        __m256 e0 = ak_exp256(_mm256_sub_ps(_mm256_maskload_ps(x + j, m), s));
        e0 = _mm256_and_ps(e0, _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(y + j, m, e0);
        a0 = _mm256_add_ps(a0, e0);
    }
    return ak_hsum256(_mm256_add_ps(a0, a1));
}

/// Sum of exp(x[j] - shift) without storing.
AK_AVX2_INLINE float ak_expsub_sumonly256(const float *x, long n, float shift) {
    __m256 s = _mm256_set1_ps(shift), a0 = _mm256_setzero_ps(), a1 = a0;
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        a0 = _mm256_add_ps(a0, ak_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), s)));
        a1 = _mm256_add_ps(a1, ak_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), s)));
    }
    for (; j + 8 <= n; j += 8) a0 = _mm256_add_ps(a0, ak_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), s)));
    if (j < n) {
        __m256i m = ak_tailmask256(n - j);
        __m256 e0 = ak_exp256(_mm256_sub_ps(_mm256_maskload_ps(x + j, m), s));
        a0 = _mm256_add_ps(a0, _mm256_and_ps(e0, _mm256_castsi256_ps(m)));
    }
    return ak_hsum256(_mm256_add_ps(a0, a1));
}

/// y[j] = x[j] * c.
AK_AVX2_INLINE void ak_scale256(const float *x, float *y, long n, float c) {
    __m256 cv = _mm256_set1_ps(c);
    long j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), cv));
    for (; j < n; j++) y[j] = x[j] * c;
}

/// sum x[j] * y[j] in float (16 lanes).
AK_AVX2_INLINE float ak_dot256(const float *x, const float *y, long n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j + 8), _mm256_loadu_ps(y + j + 8), a1);
    }
    for (; j + 8 <= n; j += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + j), _mm256_loadu_ps(y + j), a0);
    float s = ak_hsum256(_mm256_add_ps(a0, a1));
    for (; j < n; j++) s += x[j] * y[j];
    return s;
}
#endif  // __x86_64__

// Portable helpers.
static inline float ak_rowmax_scalar(const float *x, long n) {
    float m = -INFINITY;
    for (long j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static inline float ak_dot_scalar(const float *x, const float *y, long n) {
    float a[8] = {0};
    long j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) a[l] += x[j + l] * y[j + l];
    float s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; j < n; j++) s += x[j] * y[j];
    return s;
}

#endif
