// OpenBLAS SGEMM timings on the same shapes as `kernel-bench --only sgemm`, for side-by-side comparison.
// Build: gcc -O2 sgemm_openblas.c -lopenblas -o sgemm_openblas   (see ../compare_sgemm.sh)
// Usage: sgemm_openblas [--reps N]     (thread count from OPENBLAS_NUM_THREADS)
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);
extern char *openblas_get_config(void);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float *filled(long n, unsigned *seed) {
    float *p = aligned_alloc(64, (size_t)((n * 4 + 63) / 64 * 64));
    for (long i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
    return p;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int reps = 7;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    if (reps < 1) reps = 1;
    struct { const char *name; int ta, tb; long M, N, K, batch; } shapes[] = {
        {"4096x768x768", 0, 0, 4096, 768, 768, 1},
        {"4096x3072x768", 0, 0, 4096, 3072, 768, 1},
        {"4096x768x3072", 0, 0, 4096, 768, 3072, 1},
        {"768x3072x4096 (transA)", 1, 0, 768, 3072, 4096, 1},
        {"96x 512x512x64 (QK^T, transB)", 0, 1, 512, 512, 64, 96},
        {"96x 512x64x512 (PV)", 0, 0, 512, 64, 512, 96},
        {"4096x30000x128", 0, 0, 4096, 30000, 128, 1},
    };
    printf("OpenBLAS %s core=%s threads=%d\n", openblas_get_config(), openblas_get_corename(),
           openblas_get_num_threads());
    printf("%-32s %10s %10s %8s\n", "shape (M x N x K)", "GFLOP/s", "ms", "threads");
    unsigned seed = 12345;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        long M = shapes[s].M, N = shapes[s].N, K = shapes[s].K, bt = shapes[s].batch;
        int ta = shapes[s].ta, tb = shapes[s].tb;
        long lda = ta ? M : K, ldb = tb ? K : N;
        float *A = filled(M * K * bt, &seed), *B = filled(K * N * bt, &seed), *C = filled(M * N * bt, &seed);
        double *t = malloc(sizeof(double) * (size_t)reps);
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            for (long b = 0; b < bt; b++)
                cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
                            (int)N, (int)K, 1.0f, A + b * M * K, (int)lda, B + b * K * N, (int)ldb, 0.0f,
                            C + b * M * N, (int)N);
            if (r >= 0) t[r] = now() - t0;
        }
        qsort(t, (size_t)reps, sizeof(double), cmp);
        double med = t[reps / 2];
        printf("%-32s %10.1f %10.3f %8d\n", shapes[s].name, 2.0 * M * N * K * bt / med / 1e9, med * 1e3,
               openblas_get_num_threads());
        free(A); free(B); free(C); free(t);
    }
    return 0;
}
