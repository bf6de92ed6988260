/* threads — the count of detached threads that use the pool (watchers,
 * provisioning waits, model pulls), so shutdown can wait until the last of
 * them has let go of the pool before main frees it (docs/OPERATIONS.md).
 * Its own file so that tests which compile provision.c alone (test_pool_units)
 * link the same code. */
#include <pthread.h>
#include <time.h>

#include "common/util.h"
#include "pool/pool.h"

void pool_thread_begin_locked(struct pool *p) { p->nthreads++; }

void pool_thread_cancel_locked(struct pool *p) {
    LLORCH_ASSERT(p->nthreads > 0);
    p->nthreads--;
}

/* After the unlock the thread touches nothing of the pool: main may free it
 * as soon as it sees the count drop. */
void pool_thread_end(struct pool *p) {
    pthread_mutex_lock(&p->mu);
    LLORCH_ASSERT(p->nthreads > 0);
    p->nthreads--;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int pool_wait_zero_locked(struct pool *p, const int *count, uint64_t deadline_ns) {
    while (*count > 0 && util_now_ns() < deadline_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    return *count;
}

int pool_threads_wait(struct pool *p, int64_t ms) {
    pthread_mutex_lock(&p->mu);
    int left = pool_wait_zero_locked(p, &p->nthreads, util_now_ns() + (uint64_t)ms * 1000000ull);
    pthread_mutex_unlock(&p->mu);
    return left;
}

