// Dropout whose mask is a pure function of (seed, element index), so the backward regenerates it instead of
// keeping it: y[i] = x[i] * scale where the element is kept, 0 where it is dropped.
#include "ckernels.h"

static inline uint32_t keep_hash(uint32_t i, uint32_t k1, uint32_t k2) {
    uint32_t h = i * 0x9E3779B1u ^ k1;
    h ^= h >> 16; h *= 0x85EBCA6Bu;
    h ^= h >> 13; h *= 0xC2B2AE35u;
    h ^= h >> 16; h ^= k2;
    h *= 0x27D4EB2Du; h ^= h >> 15;
    return h;
}

// The same loop body for both paths; written branch-free so that it vectorises.
#define DROPOUT_LOOP                                                      \
    for (long i = lo; i < hi; i++) {                                      \
        uint32_t h = keep_hash((uint32_t)i, k1, k2);                      \
        y[i] = x[i] * (h >= threshold ? scale : 0.0f);                    \
    }

static void dropout_portable(const float *x, float *y, long lo, long hi, uint32_t threshold, float scale, uint32_t k1,
                             uint32_t k2) {
    DROPOUT_LOOP
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma")))
static void dropout_avx2(const float *x, float *y, long lo, long hi, uint32_t threshold, float scale, uint32_t k1,
                         uint32_t k2) {
    DROPOUT_LOOP
}
#endif

typedef struct {
    const float *x;
    float *y;
    uint32_t threshold, k1, k2;
    float scale;
} dropout_job_t;

// Elements lo..<hi (the mask depends on the absolute index, not on the split).
static void dropout_range(void *c, long lo, long hi) {
    const dropout_job_t *j = c;
#if defined(__x86_64__)
    if (ak_cpu_has_avx2_fma()) {
        dropout_avx2(j->x, j->y, lo, hi, j->threshold, j->scale, j->k1, j->k2);
        return;
    }
#endif
    dropout_portable(j->x, j->y, lo, hi, j->threshold, j->scale, j->k1, j->k2);
}

void ak_dropout(const float *x, float *y, long n, float p, uint64_t seed) {
    dropout_job_t j = {x, y, 0, (uint32_t)seed, (uint32_t)(seed >> 32), 0};
    // Dropped when the hash falls below p * 2^32.
    j.threshold = p >= 1.0f ? UINT32_MAX : (uint32_t)((double)p * 4294967296.0);
    j.scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    ak_parallel_ranges(n, ak_rows_grain(1), dropout_range, &j);
}
