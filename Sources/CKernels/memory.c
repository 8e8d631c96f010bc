// Heap settings for tensor memory, and the one allocator of the package.
#include "ckernels.h"
#include <stdio.h>
#include <stdlib.h>
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

void *ak_alloc(const char *what, size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes > 0 ? bytes : 1) != 0 || !p) {
        fprintf(stderr, "%s: could not allocate %zu bytes\n", what, bytes);
        abort();
    }
    return p;
}
