// Heap settings for tensor memory.
#include "ckernels.h"
#if defined(__GLIBC__)
#include <malloc.h>
#endif

void ak_keep_freed_memory(void) {
#if defined(__GLIBC__)
    // Blocks up to 32 MB come from the heap, and freed memory stays there (up to 256 MB at the top) instead of
    // going back to the system: a training step frees and allocates the same sizes again and again, and every
    // fresh page costs a fault and a clear.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}
