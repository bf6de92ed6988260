/* cpu_pool — see cpu_pool.h.
 *
 * Protocol: the caller publishes (fn, arg, nth), sets `pending` to the number
 * of helper threads, then bumps `gen` (release). A helper that sees a new
 * generation runs its share if its index < nth and then decrements `pending`
 * (every helper acknowledges every job). Sleeping: a worker increments `n_sleeping` and re-checks `gen`
 * under the mutex before waiting; the caller bumps `gen` and then reads
 * `n_sleeping` (both sequentially consistent), so one of them always sees the
 * other and no wake-up is lost.
 */
#include "engine/cpu/cpu_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_NS 200000ull /* spin this long after a job before sleeping */

typedef struct {
    cpu_pool *pool;
    int ith;
    pthread_t tid;
} worker_t;

struct cpu_pool {
    int n;                       /* total threads incl. the caller */
    worker_t *w;                 /* [n - 1] helpers, index ith = 1.. */
    cpu_task_fn fn;
    void *arg;
    int nth;
    atomic_uint gen;             /* job generation */
    atomic_int pending;          /* helpers still running the current job */
    atomic_int n_sleeping;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *argp) {
    worker_t *me = argp;
    cpu_pool *p = me->pool;
    unsigned seen = 0; /* gen starts at 0; a job may be published before this thread runs */
    for (;;) {
        /* wait for a new generation: spin, then sleep */
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g == seen) {
            uint64_t t0 = now_ns();
            for (int i = 0;; i++) {
                g = atomic_load_explicit(&p->gen, memory_order_acquire);
                if (g != seen || atomic_load(&p->stop)) break;
                CPU_RELAX();
                if ((i & 255) == 255) sched_yield(); /* a loaded machine: let the thread we wait for run */
                if ((i & 1023) == 1023 && now_ns() - t0 > SPIN_NS) {
                    pthread_mutex_lock(&p->mu);
                    atomic_fetch_add(&p->n_sleeping, 1);
                    while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop))
                        pthread_cond_wait(&p->cv, &p->mu);
                    atomic_fetch_sub(&p->n_sleeping, 1);
                    pthread_mutex_unlock(&p->mu);
                    break;
                }
            }
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        /* every helper acknowledges every generation (even when not taking
         * part), so the caller never republishes a job a helper has not seen */
        if (me->ith < p->nth) p->fn(p->arg, me->ith, p->nth);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

cpu_pool *cpu_pool_new(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->w = calloc((size_t)n_threads - 1, sizeof *p->w);
        if (!p->w) {
            cpu_pool_free(p);
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->w[i].pool = p;
            p->w[i].ith = i + 1;
            if (pthread_create(&p->w[i].tid, NULL, worker_main, &p->w[i]) != 0) {
                p->n = i + 1; /* the ones started so far */
                cpu_pool_free(p);
                return NULL;
            }
        }
    }
    return p;
}

void cpu_pool_free(cpu_pool *p) {
    if (!p) return;
    if (p->w) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->stop, 1);
        atomic_fetch_add(&p->gen, 1);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->n - 1; i++) pthread_join(p->w[i].tid, NULL);
        free(p->w);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

int cpu_pool_size(const cpu_pool *p) { return p->n; }

void cpu_pool_run(cpu_pool *p, cpu_task_fn fn, void *arg, int nth) {
    if (nth > p->n) nth = p->n;
    if (nth <= 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->nth = nth;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/arg/nth */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, nth);
    for (int i = 1; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; i++) {
        CPU_RELAX();
        if ((i & 255) == 0) sched_yield(); /* a helper not scheduled yet: give it the core */
    }
}
