/* cli_gguf_par — split the rows of one tensor over a few threads (make and
 * quantize produce rows independently). Each worker gets [r0, r1) and its
 * thread index (for its own scratch row); the first non-zero return wins. */
#include <pthread.h>
#include <unistd.h>

#include "cli/cli_gguf_int.h"

struct job {
    cg_rows_fn fn;
    void *ctx;
    int tid, rc;
    int64_t r0, r1;
};

static void *worker(void *p) {
    struct job *j = p;
    j->rc = j->fn(j->ctx, j->tid, j->r0, j->r1);
    return NULL;
}

int cg_threads_default(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > CG_MAX_THREADS ? CG_MAX_THREADS : (int)n;
}

int cg_parallel_rows(int64_t rows, int nthreads, cg_rows_fn fn, void *ctx) {
    if (nthreads > CG_MAX_THREADS) nthreads = CG_MAX_THREADS;
    if (nthreads < 1 || rows < 64) nthreads = 1; /* small tensors: not worth a thread */
    if (nthreads == 1) return fn(ctx, 0, 0, rows);
    struct job jobs[CG_MAX_THREADS];
    pthread_t th[CG_MAX_THREADS];
    int started[CG_MAX_THREADS] = {0};
    for (int i = 0; i < nthreads; i++) {
        jobs[i] = (struct job){fn, ctx, i, 0, rows * i / nthreads, rows * (i + 1) / nthreads};
        if (i > 0) started[i] = pthread_create(&th[i], NULL, worker, &jobs[i]) == 0;
    }
    for (int i = 1; i < nthreads; i++)
        if (!started[i]) jobs[i].rc = fn(ctx, i, jobs[i].r0, jobs[i].r1); /* could not start: run here */
    worker(&jobs[0]);
    int rc = jobs[0].rc;
    for (int i = 1; i < nthreads; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        if (!rc) rc = jobs[i].rc;
    }
    return rc;
}
