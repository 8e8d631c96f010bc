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

void ak_dropout(const float *x, float *y, long n, float p, uint64_t seed) {
    const uint32_t k1 = (uint32_t)seed, k2 = (uint32_t)(seed >> 32);
    // Dropped when the hash falls below p * 2^32.
    const uint32_t threshold = p >= 1.0f ? UINT32_MAX : (uint32_t)((double)p * 4294967296.0);
    const float scale = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    for (long i = 0; i < n; i++) {
        uint32_t h = keep_hash((uint32_t)i, k1, k2);
        y[i] = h >= threshold ? x[i] * scale : 0.0f;
    }
}
