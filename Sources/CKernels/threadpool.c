// A persistent pthread pool for ak_parallel_for.
//
// Workers are created lazily, the first time a parallel loop wants them, and then live for the rest of the
// process. A loop is published as a new "generation"; workers spin briefly, then sleep on a condition variable,
// waiting for one. Indices are handed out one at a time through an atomic counter, so uneven tasks balance
// themselves. Only one loop runs on the pool at a time: a caller that finds the pool busy (another application
// thread, or a nested call from inside a task) runs its loop inline on its own thread instead of waiting.
#include "ckernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <unistd.h>

#define AK_MAX_THREADS 256
// Default thread count when ALBERTMOE_NUM_THREADS is not set: the online CPUs, at most AK_DEFAULT_MAX_THREADS.
// Measured on the 2-vCPU development machine, two threads ran the large SGEMM shapes 1.0x-2.1x as fast as one
// (about 1.0x when the two vCPUs share one core), so both vCPUs are used; small calls stay on one thread
// (see AK_PARALLEL_MIN_WORK in sgemm.c).
#ifndef AK_DEFAULT_MAX_THREADS
#define AK_DEFAULT_MAX_THREADS 16
#endif

static pthread_once_t ak_threads_once = PTHREAD_ONCE_INIT;
static atomic_int ak_num_threads = 1;

static void ak_threads_init(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus < 1 ? 1 : cpus > AK_DEFAULT_MAX_THREADS ? AK_DEFAULT_MAX_THREADS : (int)cpus;
    const char *s = getenv("ALBERTMOE_NUM_THREADS");
    if (s && *s) {
        long v = strtol(s, NULL, 10);
        if (v >= 1) n = v > AK_MAX_THREADS ? AK_MAX_THREADS : (int)v;
    }
    atomic_store(&ak_num_threads, n);
}

int ak_get_num_threads(void) {
    pthread_once(&ak_threads_once, ak_threads_init);
    return atomic_load_explicit(&ak_num_threads, memory_order_relaxed);
}

void ak_set_num_threads(int n) {
    pthread_once(&ak_threads_once, ak_threads_init);
    if (n < 1) n = 1;
    if (n > AK_MAX_THREADS) n = AK_MAX_THREADS;
    atomic_store(&ak_num_threads, n);
}

// ---------------------------------------------------------------------------------------------------------

typedef struct {
    pthread_mutex_t busy;        // held by the one caller that owns the pool during a loop
    pthread_mutex_t lock;        // protects the condition variables
    pthread_cond_t wake;         // workers wait here for a new generation
    pthread_cond_t done;         // the caller waits here for the workers to finish
    atomic_long generation;
    atomic_long next;            // next index to hand out
    atomic_int pending;          // workers still inside the current loop
    atomic_int participants;     // workers with id < participants take part in the current loop
    long n;
    ak_task_fn fn;
    void *ctx;
    int nworkers;                // workers created so far
    pthread_t threads[AK_MAX_THREADS];
    long start_gen[AK_MAX_THREADS];  // the generation current when each worker was created
} ak_pool_t;

static ak_pool_t ak_pool = {
    .busy = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
};

static _Thread_local int ak_in_task = 0;

static inline void ak_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// Short spin before sleeping: on machines whose vCPUs share a core, spinning steals from the working thread.
#define AK_SPIN_ITERS 2000

// Elements of work below which splitting a loop across threads costs more than it saves.
#define AK_RANGE_WORK (1L << 15)

static void ak_run_indices(ak_pool_t *p) {
    long n = p->n;
    ak_task_fn fn = p->fn;
    void *ctx = p->ctx;
    for (;;) {
        long i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (i >= n) break;
        fn(ctx, i);
    }
}

static void *ak_worker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    ak_pool_t *p = &ak_pool;
    ak_in_task = 1;
    ak_flush_denormals();
    // Not the generation current now: the loop that created this worker may already have been published.
    long seen = p->start_gen[id];
    for (;;) {
        long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen) {
            if (++spins < AK_SPIN_ITERS) { ak_cpu_relax(); continue; }
            pthread_mutex_lock(&p->lock);
            while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->wake, &p->lock);
            pthread_mutex_unlock(&p->lock);
            break;
        }
        seen = g;
        if (id >= atomic_load_explicit(&p->participants, memory_order_acquire)) continue;
        ak_run_indices(p);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

void ak_parallel_for(long n, ak_task_fn fn, void *ctx) {
    if (n <= 0) return;
    ak_flush_denormals();
    int nt = ak_get_num_threads();
    if (nt <= 1 || n == 1 || ak_in_task || pthread_mutex_trylock(&ak_pool.busy) != 0) {
        for (long i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    ak_pool_t *p = &ak_pool;
    int want = nt - 1;
    if ((long)want > n - 1) want = (int)(n - 1);
    while (p->nworkers < want) {
        p->start_gen[p->nworkers] = atomic_load(&p->generation);
        if (pthread_create(&p->threads[p->nworkers], NULL, ak_worker_main, (void *)(intptr_t)p->nworkers) != 0) break;
        pthread_detach(p->threads[p->nworkers]);
        p->nworkers++;
    }
    if (want > p->nworkers) want = p->nworkers;
    if (want == 0) {
        pthread_mutex_unlock(&p->busy);
        for (long i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    p->n = n;
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, want, memory_order_relaxed);
    atomic_store_explicit(&p->participants, want, memory_order_relaxed);
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    ak_in_task = 1;
    ak_run_indices(p);
    ak_in_task = 0;

    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
        if (++spins < AK_SPIN_ITERS) { ak_cpu_relax(); continue; }
        pthread_mutex_lock(&p->lock);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) pthread_cond_wait(&p->done, &p->lock);
        pthread_mutex_unlock(&p->lock);
        break;
    }
    pthread_mutex_unlock(&p->busy);
}

typedef struct {
    long n, grain;
    ak_range_fn fn;
    void *ctx;
} ak_ranges_t;

static void ak_ranges_task(void *c, long i) {
    const ak_ranges_t *r = c;
    long lo = i * r->grain, hi = r->n - lo < r->grain ? r->n : lo + r->grain;
    r->fn(r->ctx, lo, hi);
}

void ak_parallel_ranges(long n, long grain, ak_range_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    long pieces = (n + grain - 1) / grain;
    if (pieces == 1 || ak_get_num_threads() == 1) {
        fn(ctx, 0, n);
        return;
    }
    ak_ranges_t r = {n, grain, fn, ctx};
    ak_parallel_for(pieces, ak_ranges_task, &r);
}

long ak_rows_grain(long n) {
    long g = AK_RANGE_WORK / (n < 1 ? 1 : n);
    return g < 1 ? 1 : g;
}
