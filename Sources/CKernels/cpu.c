// CPU feature detection and the switch that forces the portable kernels.
#include "ckernels.h"
#include <stdatomic.h>

static atomic_int ak_forced_portable = 0;
static atomic_int ak_hw_avx2_fma = -1;  // -1: not detected yet

static int ak_detect_avx2_fma(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
#else
    return 0;
#endif
}

int ak_cpu_has_avx2_fma(void) {
    if (atomic_load_explicit(&ak_forced_portable, memory_order_relaxed)) return 0;
    int hw = atomic_load_explicit(&ak_hw_avx2_fma, memory_order_relaxed);
    if (hw < 0) {
        hw = ak_detect_avx2_fma();
        atomic_store_explicit(&ak_hw_avx2_fma, hw, memory_order_relaxed);
    }
    return hw;
}

// "avx512" when the SGEMM runs its AVX-512 path (the other kernels then use AVX2/FMA).
const char *ak_kernel_isa(void) {
    return ak_cpu_has_avx512() ? "avx512" : ak_cpu_has_avx2_fma() ? "avx2-fma" : "portable";
}

void ak_flush_denormals(void) {
#if defined(__x86_64__)
    // MXCSR: FTZ (bit 15) writes tiny results as zero, DAZ (bit 6) reads tiny inputs as zero. Without them a
    // single tensor of denormal values (which training can produce) slows the FMA kernels down 100-200x.
    unsigned int csr;
    __asm__ volatile("stmxcsr %0" : "=m"(csr));
    if ((csr & 0x8040u) != 0x8040u) {
        csr |= 0x8040u;
        __asm__ volatile("ldmxcsr %0" : : "m"(csr));
    }
#endif
}

void ak_force_portable(int on) { atomic_store(&ak_forced_portable, on ? 1 : 0); }
