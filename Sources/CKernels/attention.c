// Fused scaled dot-product attention (forward and backward), tiled over query rows.
//
// For each (batch*head) and each tile of up to BQ query rows (automatic: a ~256 KiB score tile, e.g. 128 rows
// for 512 keys), the score tile S = scale * Q_t K^T ([BQ, nk], nk = the keys any row of the tile may see) is
// made with ak_sgemm and stays in L2; the mask terms, exp(s - rowmax) (lse = max + log sum kept per row) and the
// dropout are applied in place, then O_t = (E V) / sum, the normalisation applied to the [BQ, hd] output.
// Forward tasks are (bh, query tile) pairs; backward tasks are bh (dK and dV accumulate over its tiles). Each
// running task takes one scratch slot of a per-call buffer (no allocation inside the loops).
// The backward recomputes S and P from Q, K and lse tile by tile (P is never stored for the whole sequence):
//   dPd = dO_t V^T, D_i = dO_i . O_i, dS = P * (M * dPd - D)   (M = keep / (1 - p), or 1 without dropout)
//   dV += (P * M)^T dO_t, dQ_t = scale * dS K, dK += scale * dS^T Q_t.
// With dropout, O = (P * M) V, so D_i = sum_j P_ij M_ij dPd_ij = dO_i . O_i still holds.
// Causal: key j is visible to query i iff j <= i + (Tk - Tq); the products of a tile run over a rectangle and a
// staircase of row groups on the diagonal (tile_blocks), so masked scores are mostly not computed at all
// (about half the work for Tq == Tk).
#include "ckernels.h"
#include "vecmath.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// Forward calls of fewer multiply-adds than this (2*B*nH*Tq*Tk*hd for QK^T and PV; SGEMM's threshold) run on the
// calling thread.
#define AK_ATTN_PARALLEL_MIN_WORK (1L << 21)

// Query tile height: 0 = automatic (a score tile of about 256 KiB, so that it stays in L2 next to K and V).
static long attn_bq_override = 0;

/// For benchmarks: forces the query tile height (0 restores the automatic choice). Returns the previous value.
long ak_attention_set_tile(long bq) {
    long old = attn_bq_override;
    attn_bq_override = bq > 0 ? bq : 0;
    return old;
}

static long tile_rows(long Tq, long Tk) {
    long bq = attn_bq_override;
    if (bq <= 0) {
        bq = (65536 / (Tk > 0 ? Tk : 1)) & ~15L;
        if (bq < 32) bq = 32;
        if (bq > 256) bq = 256;
    }
    return bq < Tq ? bq : Tq;
}

// ---------------------------------------------------------------------------------------------------------
// Dropout mask: a counter-based hash of (seed, bh, i, j). A 64-bit key per (seed, bh, i) row, then a 32-bit
// mix per column j (vectorisable with 32-bit multiplies). Keep iff (h >> 8) >= threshold (24-bit).
// ---------------------------------------------------------------------------------------------------------
static inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t dropout_row_key(uint64_t seed, long bh, long i) {
    return mix64(seed ^ mix64(((uint64_t)bh << 32) ^ (uint64_t)(uint32_t)i ^ ((uint64_t)i >> 32) * 0xD6E8FEB86659FD93ull));
}

static inline uint32_t dropout_hash(uint64_t rowkey, long j) {
    uint32_t h = ((uint32_t)rowkey + (uint32_t)j * 0x9E3779B9u) ^ (uint32_t)(rowkey >> 32);
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

static inline uint32_t dropout_threshold(float p) {
    if (!(p > 0.0f)) return 0;
    if (p >= 1.0f) return 1u << 24;
    double t = (double)p * 16777216.0;
    return (uint32_t)(t + 0.5);
}

int ak_attention_dropout_keep(uint64_t seed, long bh, long i, long j, float dropout_p) {
    uint32_t thr = dropout_threshold(dropout_p);
    if (thr == 0) return 1;
    return (dropout_hash(dropout_row_key(seed, bh, i), j) >> 8) >= thr;
}

// ---------------------------------------------------------------------------------------------------------
// Shared call state and scratch slots
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    const float *q, *k, *v, *o, *lse_in, *dout, *key_mask;
    float *o_out, *lse_out, *dq, *dk, *dv;
    long nH, Tq, Tk, hd, bq, ntiles, kv_stride;
    int causal, avx, has_dropout;
    float scale, dscale;  // dscale = 1 / (1 - p)
    uint32_t thr;
    uint64_t seed;
    float *scratch;
    size_t slot_floats;
    int nslots;
    atomic_int *busy;
} attn_ctx;

static float *acquire_slot(attn_ctx *c, int *slot) {
    for (int s = 0; s < c->nslots; s++)
        if (!atomic_exchange_explicit(&c->busy[s], 1, memory_order_acquire)) {
            *slot = s;
            return c->scratch + (size_t)s * c->slot_floats;
        }
    // More concurrent tasks than slots (should not happen): a private buffer, once per task.
    *slot = -1;
    return (float *)ak_alloc("attention", c->slot_floats * sizeof(float));
}

static void release_slot(attn_ctx *c, int slot, float *buf) {
    if (slot >= 0) atomic_store_explicit(&c->busy[slot], 0, memory_order_release);
    else free(buf);
}

// Additive key terms for batch b: (1 - mask) * -10000, or NULL without a mask.
static const float *make_madd(const attn_ctx *c, long b, float *buf) {
    if (!c->key_mask) return NULL;
    const float *m = c->key_mask + b * c->Tk;
    for (long j = 0; j < c->Tk; j++) buf[j] = (1.0f - m[j]) * -10000.0f;
    return buf;
}

// Number of keys visible to query row i (all of [0, result)).
static inline long visible_keys(const attn_ctx *c, long i) {
    if (!c->causal) return c->Tk;
    long lim = i + (c->Tk - c->Tq) + 1;
    return lim < 0 ? 0 : (lim > c->Tk ? c->Tk : lim);
}

// ---------------------------------------------------------------------------------------------------------
// Row kernels. Forward: s (len nk, lim visible) -> dropped probabilities in place; returns lse.
// Backward: from s (scores) and dpd (dO . v_j) -> p (dropped probabilities) and ds in place.
// ---------------------------------------------------------------------------------------------------------
static float fwd_row_scalar(const attn_ctx *c, float *s, const float *madd, long lim, long nk, uint64_t rowkey,
                            float *rowscale) {
    if (madd)
        for (long j = 0; j < lim; j++) s[j] += madd[j];
    float mx = ak_rowmax_scalar(s, lim);
    float sum = 0;
    for (long j = 0; j < lim; j++) {
        float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    *rowscale = 1.0f / sum;
    if (c->has_dropout)
        for (long j = 0; j < lim; j++) s[j] *= (dropout_hash(rowkey, j) >> 8) >= c->thr ? c->dscale : 0.0f;
    for (long j = lim; j < nk; j++) s[j] = 0.0f;
    return mx + logf(sum);
}

static void bwd_row_scalar(const attn_ctx *c, float *s, float *dp, const float *madd, long lim, long nk, float lse,
                           const float *dorow, const float *orow, uint64_t rowkey) {
    float D = ak_dot_scalar(dorow, orow, c->hd);
    for (long j = 0; j < lim; j++) {
        float x = madd ? s[j] + madd[j] : s[j];
        float p = expf(x - lse);
        float g = dp[j];
        if (c->has_dropout) {
            float mk = (dropout_hash(rowkey, j) >> 8) >= c->thr ? c->dscale : 0.0f;
            s[j] = p * mk;
            dp[j] = p * (g * mk - D);
        } else {
            s[j] = p;
            dp[j] = p * (g - D);
        }
    }
    for (long j = lim; j < nk; j++) s[j] = dp[j] = 0.0f;
}

#if defined(__x86_64__)
// Keep mask (all-ones lanes where kept) for columns j0 .. j0+7 of a row.
AK_AVX2_INLINE __m256 dropout_keep256(__m256i lo, __m256i hi, __m256i thr, long j0) {
    __m256i j = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)j0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256i h = _mm256_xor_si256(_mm256_add_epi32(lo, _mm256_mullo_epi32(j, _mm256_set1_epi32((int)0x9E3779B9u))), hi);
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
    h = _mm256_mullo_epi32(h, _mm256_set1_epi32((int)0x85EBCA6Bu));
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 13));
    h = _mm256_mullo_epi32(h, _mm256_set1_epi32((int)0xC2B2AE35u));
    h = _mm256_xor_si256(h, _mm256_srli_epi32(h, 16));
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_srli_epi32(h, 8), thr));  // (h>>8) > thr-1
}

AK_AVX2 static float fwd_row_avx2(const attn_ctx *c, float *s, const float *madd, long lim, long nk, uint64_t rowkey,
                                  float *rowscale) {
    long j;
    __m256 mx8 = _mm256_set1_ps(-INFINITY);
    long lim8 = lim & ~7L;
    if (madd) {
        for (j = 0; j < lim8; j += 8) {
            __m256 x = _mm256_add_ps(_mm256_loadu_ps(s + j), _mm256_loadu_ps(madd + j));
            _mm256_storeu_ps(s + j, x);
            mx8 = _mm256_max_ps(mx8, x);
        }
        for (; j < lim; j++) s[j] += madd[j];
    } else {
        for (j = 0; j < lim8; j += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(s + j));
    }
    float mx = ak_hmax256(mx8);
    for (j = lim8; j < lim; j++) mx = s[j] > mx ? s[j] : mx;
    float sum = ak_expsub_sum256(s, s, lim, mx);
    *rowscale = 1.0f / sum;
    if (c->has_dropout) {
        __m256 kv = _mm256_set1_ps(c->dscale);
        __m256i lo = _mm256_set1_epi32((int)(uint32_t)rowkey), hi = _mm256_set1_epi32((int)(uint32_t)(rowkey >> 32));
        __m256i thr = _mm256_set1_epi32((int)c->thr - 1);
        for (j = 0; j < lim8; j += 8) {
            __m256 keep = dropout_keep256(lo, hi, thr, j);
            _mm256_storeu_ps(s + j, _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(s + j), kv), keep));
        }
        for (; j < lim; j++) s[j] *= (dropout_hash(rowkey, j) >> 8) >= c->thr ? c->dscale : 0.0f;
    }
    for (j = lim; j < nk; j++) s[j] = 0.0f;
    return mx + logf(sum);
}

AK_AVX2 static void bwd_row_avx2(const attn_ctx *c, float *s, float *dp, const float *madd, long lim, long nk,
                                 float lse, const float *dorow, const float *orow, uint64_t rowkey) {
    float D = ak_dot256(dorow, orow, c->hd);
    __m256 l8 = _mm256_set1_ps(lse), d8 = _mm256_set1_ps(D);
    long j = 0;
    if (c->has_dropout) {
        __m256 ds = _mm256_set1_ps(c->dscale);
        __m256i lo = _mm256_set1_epi32((int)(uint32_t)rowkey), hi = _mm256_set1_epi32((int)(uint32_t)(rowkey >> 32));
        __m256i thr = _mm256_set1_epi32((int)c->thr - 1);
        for (; j + 8 <= lim; j += 8) {
            __m256 x = _mm256_loadu_ps(s + j);
            if (madd) x = _mm256_add_ps(x, _mm256_loadu_ps(madd + j));
            __m256 p = ak_exp256(_mm256_sub_ps(x, l8));
            __m256 mk = _mm256_and_ps(ds, dropout_keep256(lo, hi, thr, j));
            _mm256_storeu_ps(s + j, _mm256_mul_ps(p, mk));
            _mm256_storeu_ps(dp + j, _mm256_mul_ps(p, _mm256_fmsub_ps(_mm256_loadu_ps(dp + j), mk, d8)));
        }
    } else {
        for (; j + 8 <= lim; j += 8) {
            __m256 x = _mm256_loadu_ps(s + j);
            if (madd) x = _mm256_add_ps(x, _mm256_loadu_ps(madd + j));
            __m256 p = ak_exp256(_mm256_sub_ps(x, l8));
            _mm256_storeu_ps(s + j, p);
            _mm256_storeu_ps(dp + j, _mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(dp + j), d8)));
        }
    }
    if (j < lim) {
        __m256i m = ak_tailmask256(lim - j);
        __m256 x = _mm256_maskload_ps(s + j, m);
        if (madd) x = _mm256_add_ps(x, _mm256_maskload_ps(madd + j, m));
        __m256 p = ak_exp256(_mm256_sub_ps(x, l8));
        __m256 g = _mm256_maskload_ps(dp + j, m);
        if (c->has_dropout) {
            __m256i lo = _mm256_set1_epi32((int)(uint32_t)rowkey), hi = _mm256_set1_epi32((int)(uint32_t)(rowkey >> 32));
            __m256 mk = _mm256_and_ps(_mm256_set1_ps(c->dscale),
                                      dropout_keep256(lo, hi, _mm256_set1_epi32((int)c->thr - 1), j));
            _mm256_maskstore_ps(s + j, m, _mm256_mul_ps(p, mk));
            _mm256_maskstore_ps(dp + j, m, _mm256_mul_ps(p, _mm256_fmsub_ps(g, mk, d8)));
        } else {
            _mm256_maskstore_ps(s + j, m, p);
            _mm256_maskstore_ps(dp + j, m, _mm256_mul_ps(p, _mm256_sub_ps(g, d8)));
        }
    }
    for (j = lim; j < nk; j++) s[j] = dp[j] = 0.0f;
}
#endif

// ---------------------------------------------------------------------------------------------------------
// Causal tiles: the visible part of a tile's [m, nk] score block is a rectangle (keys every row sees) plus a
// staircase on the diagonal. The products run over blocks: the rectangle [m, c0], then the diagonal band in row
// groups of h rows, each over the keys [c0, last visible key of the group]. Only about m*h/2 masked scores per
// tile are computed instead of m*m/2. Without a causal mask there is one block, the whole tile.
// ---------------------------------------------------------------------------------------------------------
typedef struct {
    long r0, rn, c0, cn;
} attn_block;

#define AK_ATTN_MAX_BLOCKS 12

// Fills blk; returns the number of blocks. *full = 1 when the first block covers every row of the tile (it can
// then be written with beta = 0; otherwise the outputs of the tile are cleared first and every block adds).
static int tile_blocks(const attn_ctx *c, long i0, long m, long nk, attn_block *blk, int *full) {
    if (!c->causal) {
        blk[0] = (attn_block){0, m, 0, nk};
        *full = 1;
        return 1;
    }
    long c0 = visible_keys(c, i0);
    if (c0 > nk) c0 = nk;
    int n = 0;
    if (c0 > 0) blk[n++] = (attn_block){0, m, 0, c0};
    *full = c0 > 0;
    long h = (m + AK_ATTN_MAX_BLOCKS - 3) / (AK_ATTN_MAX_BLOCKS - 2);
    if (h < 32) h = 32;
    for (long r0 = 0; r0 < m; r0 += h) {
        long rn = m - r0 < h ? m - r0 : h;
        long e = visible_keys(c, i0 + r0 + rn - 1);
        if (e > nk) e = nk;
        if (e > c0) blk[n++] = (attn_block){r0, rn, c0, e - c0};
    }
    return n;
}

// ---------------------------------------------------------------------------------------------------------
// Tiles of very few query rows (KV-cached generation, Tq = 1): dot products and axpys instead of ak_sgemm, whose
// packing of K and V would cost as much as the product itself.
// ---------------------------------------------------------------------------------------------------------
#define AK_ATTN_SMALL_M 4

static void small_scores_scalar(const float *q, const float *k, float *S, long m, long nk, long hd, float scale) {
    for (long r = 0; r < m; r++)
        for (long j = 0; j < nk; j++) S[r * nk + j] = scale * ak_dot_scalar(q + r * hd, k + j * hd, hd);
}

static void small_pv_scalar(const float *S, const float *v, float *o, long m, long nk, long hd) {
    for (long r = 0; r < m; r++) {
        float *orow = o + r * hd;
        for (long d = 0; d < hd; d++) orow[d] = 0.0f;
        for (long j = 0; j < nk; j++) {
            float p = S[r * nk + j];
            if (p == 0.0f) continue;
            const float *vj = v + j * hd;
            for (long d = 0; d < hd; d++) orow[d] += p * vj[d];
        }
    }
}

#if defined(__x86_64__)
AK_AVX2 static void small_scores_avx2(const float *q, const float *k, float *S, long m, long nk, long hd, float scale) {
    for (long r = 0; r < m; r++)
        for (long j = 0; j < nk; j++) S[r * nk + j] = scale * ak_dot256(q + r * hd, k + j * hd, hd);
}

AK_AVX2 static void small_pv_avx2(const float *S, const float *v, float *o, long m, long nk, long hd) {
    for (long r = 0; r < m; r++) {
        float *orow = o + r * hd;
        long d = 0;
        for (; d + 32 <= hd; d += 32) {  // 4 accumulators of 8 over the keys
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (long j = 0; j < nk; j++) {
                __m256 p = _mm256_set1_ps(S[r * nk + j]);
                const float *vj = v + j * hd + d;
                a0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj), a0);
                a1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8), a1);
                a2 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 16), a2);
                a3 = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 24), a3);
            }
            _mm256_storeu_ps(orow + d, a0);
            _mm256_storeu_ps(orow + d + 8, a1);
            _mm256_storeu_ps(orow + d + 16, a2);
            _mm256_storeu_ps(orow + d + 24, a3);
        }
        for (; d + 8 <= hd; d += 8) {
            __m256 a0 = _mm256_setzero_ps();
            for (long j = 0; j < nk; j++)
                a0 = _mm256_fmadd_ps(_mm256_set1_ps(S[r * nk + j]), _mm256_loadu_ps(v + j * hd + d), a0);
            _mm256_storeu_ps(orow + d, a0);
        }
        for (; d < hd; d++) {
            float a = 0.0f;
            for (long j = 0; j < nk; j++) a += S[r * nk + j] * v[j * hd + d];
            orow[d] = a;
        }
    }
}
#endif

// ---------------------------------------------------------------------------------------------------------
// Forward: one task per (bh, query tile).
// ---------------------------------------------------------------------------------------------------------
static void fwd_task(void *vctx, long task) {
    attn_ctx *c = (attn_ctx *)vctx;
    long bh = task / c->ntiles, tile = task % c->ntiles;
    long hd = c->hd, Tq = c->Tq, Tk = c->Tk;
    long i0 = tile * c->bq, m = Tq - i0 < c->bq ? Tq - i0 : c->bq;
    const float *q = c->q + (bh * Tq + i0) * hd, *k = c->k + bh * c->kv_stride, *v = c->v + bh * c->kv_stride;
    float *o = c->o_out + (bh * Tq + i0) * hd, *lse = c->lse_out + bh * Tq + i0;
    long nk = visible_keys(c, i0 + m - 1);
    if (nk <= 0) {  // every row of the tile is fully masked
        memset(o, 0, (size_t)(m * hd) * sizeof(float));
        for (long r = 0; r < m; r++) lse[r] = -INFINITY;
        return;
    }
    int slot;
    float *buf = acquire_slot(c, &slot);
    float *S = buf, *maddb = buf + (size_t)c->bq * Tk, *rowscale = maddb + Tk;
    const float *madd = make_madd(c, bh / c->nH, maddb);
    attn_block blk[AK_ATTN_MAX_BLOCKS];
    int full = 1, nb = 0, small = m <= AK_ATTN_SMALL_M;
    if (small) {
#if defined(__x86_64__)
        if (c->avx) small_scores_avx2(q, k, S, m, nk, hd, c->scale);
        else
#endif
            small_scores_scalar(q, k, S, m, nk, hd, c->scale);
    } else {
        nb = tile_blocks(c, i0, m, nk, blk, &full);
        for (int b = 0; b < nb; b++)
            ak_sgemm(0, 1, blk[b].rn, blk[b].cn, hd, c->scale, q + blk[b].r0 * hd, hd, k + blk[b].c0 * hd, hd, 0.0f,
                     S + blk[b].r0 * nk + blk[b].c0, nk);
    }
    for (long r = 0; r < m; r++) {
        long i = i0 + r, lim = visible_keys(c, i);
        float *s = S + r * nk;
        if (lim <= 0) {
            memset(s, 0, (size_t)nk * sizeof(float));
            lse[r] = -INFINITY;
            rowscale[r] = 0.0f;
            continue;
        }
        uint64_t rk = c->has_dropout ? dropout_row_key(c->seed, bh, i) : 0;
#if defined(__x86_64__)
        if (c->avx) lse[r] = fwd_row_avx2(c, s, madd, lim, nk, rk, rowscale + r);
        else
#endif
            lse[r] = fwd_row_scalar(c, s, madd, lim, nk, rk, rowscale + r);
    }
    // O = (E V) / sum: the normalisation is applied to the [m, hd] output rather than the [m, nk] tile.
    if (small) {
#if defined(__x86_64__)
        if (c->avx) small_pv_avx2(S, v, o, m, nk, hd);
        else
#endif
            small_pv_scalar(S, v, o, m, nk, hd);
    } else {
        if (!full) memset(o, 0, (size_t)(m * hd) * sizeof(float));
        for (int b = 0; b < nb; b++)
            ak_sgemm(0, 0, blk[b].rn, hd, blk[b].cn, 1.0f, S + blk[b].r0 * nk + blk[b].c0, nk, v + blk[b].c0 * hd, hd,
                     (full && b == 0) ? 0.0f : 1.0f, o + blk[b].r0 * hd, hd);
    }
    for (long r = 0; r < m; r++) {
        float f = rowscale[r], *orow = o + r * hd;
        for (long d = 0; d < hd; d++) orow[d] *= f;
    }
    release_slot(c, slot, buf);
}

// ---------------------------------------------------------------------------------------------------------
// Backward: one task per bh (dK and dV accumulate over the query tiles of that bh).
// ---------------------------------------------------------------------------------------------------------
static void bwd_task(void *vctx, long bh) {
    attn_ctx *c = (attn_ctx *)vctx;
    long hd = c->hd, Tq = c->Tq, Tk = c->Tk;
    const float *q = c->q + bh * Tq * hd, *k = c->k + bh * c->kv_stride, *v = c->v + bh * c->kv_stride;
    const float *o = c->o + bh * Tq * hd, *dout = c->dout + bh * Tq * hd, *lse = c->lse_in + bh * Tq;
    float *dq = c->dq + bh * Tq * hd, *dk = c->dk + bh * Tk * hd, *dv = c->dv + bh * Tk * hd;
    memset(dk, 0, (size_t)(Tk * hd) * sizeof(float));
    memset(dv, 0, (size_t)(Tk * hd) * sizeof(float));
    int slot;
    float *buf = acquire_slot(c, &slot);
    float *S = buf, *dP = buf + (size_t)c->bq * Tk, *maddb = dP + (size_t)c->bq * Tk;
    const float *madd = make_madd(c, bh / c->nH, maddb);
    for (long i0 = 0; i0 < Tq; i0 += c->bq) {
        long m = Tq - i0 < c->bq ? Tq - i0 : c->bq;
        long nk = visible_keys(c, i0 + m - 1);
        if (nk <= 0) {
            memset(dq + i0 * hd, 0, (size_t)(m * hd) * sizeof(float));
            continue;
        }
        const float *qt = q + i0 * hd, *dot = dout + i0 * hd;
        attn_block blk[AK_ATTN_MAX_BLOCKS];
        int full, nb = tile_blocks(c, i0, m, nk, blk, &full);
        for (int b = 0; b < nb; b++) {
            long r0 = blk[b].r0, c0 = blk[b].c0;
            ak_sgemm(0, 1, blk[b].rn, blk[b].cn, hd, c->scale, qt + r0 * hd, hd, k + c0 * hd, hd, 0.0f,
                     S + r0 * nk + c0, nk);
            ak_sgemm(0, 1, blk[b].rn, blk[b].cn, hd, 1.0f, dot + r0 * hd, hd, v + c0 * hd, hd, 0.0f,
                     dP + r0 * nk + c0, nk);
        }
        for (long r = 0; r < m; r++) {
            long i = i0 + r, lim = visible_keys(c, i);
            float *s = S + r * nk, *dp = dP + r * nk;
            float l = lse[i0 + r];
            if (lim <= 0 || l == -INFINITY) {
                memset(s, 0, (size_t)nk * sizeof(float));
                memset(dp, 0, (size_t)nk * sizeof(float));
                continue;
            }
            uint64_t rk = c->has_dropout ? dropout_row_key(c->seed, bh, i) : 0;
#if defined(__x86_64__)
            if (c->avx) bwd_row_avx2(c, s, dp, madd, lim, nk, l, dot + r * hd, o + (i0 + r) * hd, rk);
            else
#endif
                bwd_row_scalar(c, s, dp, madd, lim, nk, l, dot + r * hd, o + (i0 + r) * hd, rk);
        }
        if (!full) memset(dq + i0 * hd, 0, (size_t)(m * hd) * sizeof(float));
        for (int b = 0; b < nb; b++) {
            long r0 = blk[b].r0, c0 = blk[b].c0, rn = blk[b].rn, cn = blk[b].cn;
            ak_sgemm(1, 0, cn, hd, rn, 1.0f, S + r0 * nk + c0, nk, dot + r0 * hd, hd, 1.0f, dv + c0 * hd, hd);
            ak_sgemm(0, 0, rn, hd, cn, c->scale, dP + r0 * nk + c0, nk, k + c0 * hd, hd, (full && b == 0) ? 0.0f : 1.0f,
                     dq + (i0 + r0) * hd, hd);
            ak_sgemm(1, 0, cn, hd, rn, c->scale, dP + r0 * nk + c0, nk, qt + r0 * hd, hd, 1.0f, dk + c0 * hd, hd);
        }
    }
    release_slot(c, slot, buf);
}

// ---------------------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------------------
static void setup(attn_ctx *c, long B, long nH, long Tq, long Tk, long hd, const float *key_mask, int causal,
                 float scale, float dropout_p, uint64_t seed, int backward, long ntasks_hint) {
    c->nH = nH;
    c->Tq = Tq;
    c->Tk = Tk;
    c->hd = hd;
    c->kv_stride = Tk * hd;
    c->key_mask = key_mask;
    c->causal = causal;
    c->scale = scale;
    c->seed = seed;
    c->thr = dropout_threshold(dropout_p);
    c->has_dropout = c->thr > 0;
    c->dscale = dropout_p < 1.0f ? 1.0f / (1.0f - dropout_p) : 0.0f;
#if defined(__x86_64__)
    c->avx = ak_cpu_has_avx2_fma();
#else
    c->avx = 0;
#endif
    long bq = tile_rows(Tq, Tk);
    c->bq = bq;
    c->ntiles = (Tq + bq - 1) / bq;
    (void)B;
    c->slot_floats = (size_t)bq * Tk * (backward ? 2 : 1) + (size_t)Tk + (size_t)bq + 16;
    long nt = ak_get_num_threads();
    long ns = nt < ntasks_hint ? nt : ntasks_hint;
    if (ns < 1) ns = 1;
    c->nslots = (int)ns;
    c->scratch = (float *)ak_alloc("attention", c->slot_floats * (size_t)ns * sizeof(float));
    c->busy = (atomic_int *)ak_alloc("attention", (size_t)ns * sizeof(atomic_int));
    for (long s = 0; s < ns; s++) atomic_init(&c->busy[s], 0);
}

void ak_attention_forward(const float *q, const float *k, const float *v, long kv_stride, float *o, float *lse,
                          long B, long nH, long Tq, long Tk, long hd, const float *key_mask, int causal,
                          float scale, float dropout_p, uint64_t seed) {
    long BH = B * nH;
    if (BH <= 0 || Tq <= 0 || hd <= 0) return;
    if (Tk <= 0) {
        memset(o, 0, (size_t)(BH * Tq * hd) * sizeof(float));
        for (long i = 0; i < BH * Tq; i++) lse[i] = -INFINITY;
        return;
    }
    attn_ctx c;
    memset(&c, 0, sizeof c);
    long bq = tile_rows(Tq, Tk);
    long ntasks = BH * ((Tq + bq - 1) / bq);
    // A small call (a decoding step) runs on the calling thread: waking the pool would cost more than the work.
    int inline_tasks = 2.0 * BH * Tq * Tk * hd < (double)AK_ATTN_PARALLEL_MIN_WORK;
    setup(&c, B, nH, Tq, Tk, hd, key_mask, causal, scale, dropout_p, seed, 0, inline_tasks ? 1 : ntasks);
    c.kv_stride = kv_stride;
    c.q = q;
    c.k = k;
    c.v = v;
    c.o_out = o;
    c.lse_out = lse;
    if (inline_tasks)
        for (long t = 0; t < ntasks; t++) fwd_task(&c, t);
    else
        ak_parallel_for(ntasks, fwd_task, &c);
    free(c.scratch);
    free(c.busy);
}

void ak_attention_backward(const float *q, const float *k, const float *v, const float *o, const float *lse,
                           const float *dout, float *dq, float *dk, float *dv,
                           long B, long nH, long Tq, long Tk, long hd, const float *key_mask, int causal,
                           float scale, float dropout_p, uint64_t seed) {
    long BH = B * nH;
    if (BH <= 0 || hd <= 0) return;
    if (Tq <= 0 || Tk <= 0) {
        if (Tq > 0) memset(dq, 0, (size_t)(BH * Tq * hd) * sizeof(float));
        if (Tk > 0) {
            memset(dk, 0, (size_t)(BH * Tk * hd) * sizeof(float));
            memset(dv, 0, (size_t)(BH * Tk * hd) * sizeof(float));
        }
        return;
    }
    attn_ctx c;
    memset(&c, 0, sizeof c);
    setup(&c, B, nH, Tq, Tk, hd, key_mask, causal, scale, dropout_p, seed, 1, BH);
    c.q = q;
    c.k = k;
    c.v = v;
    c.o = o;
    c.lse_in = lse;
    c.dout = dout;
    c.dq = dq;
    c.dk = dk;
    c.dv = dv;
    ak_parallel_for(BH, bwd_task, &c);
    free(c.scratch);
    free(c.busy);
}
