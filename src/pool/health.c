/* health — pool-managerd polls its workers' GET /health (SPEC §5: the pool
 * reports facts; a worker that stops answering is one).
 *
 * One thread. Every worker_health.interval_ms it takes the ready (and busy)
 * workers from the table, then, with no lock held, GETs <uri>/health of each
 * with worker_health.timeout_ms (connect included). A 200 is healthy; anything
 * else (no answer in time, refused, non-200) is a miss. After
 * worker_health.failures consecutive misses a ready/busy worker is marked
 * `failed` (SPEC's pool status for a worker that cannot serve) and the
 * orchestrator hears it at once through an early heartbeat, so it schedules
 * nothing there; a later healthy answer makes it `ready` again (a worker
 * frozen by SIGSTOP and resumed, a long stall). The pool decides nothing
 * else: stopping such a worker is the orchestrator's call.
 *
 * A worker that dies is not this module's: its watcher thread sees the exit
 * (EOF on its stderr pipe, then waitpid) within milliseconds, removes it and
 * POSTs /v2/internal/workers/failed (lifecycle.c). A poll of a worker that
 * has just gone finds it absent from the table and changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/http_client.h"
#include "common/log.h"
#include "pool/pool.h"

struct probe {
    char id[40];
    char url[300];
};

/* caller holds mu */
static struct pool_worker *find_locked(struct pool *p, const char *id) {
    for (int i = 0; i < p->nworkers; i++)
        if (strcmp(p->workers[i]->id, id) == 0) return p->workers[i];
    return NULL;
}

/* 1 when the worker answered 200 within the timeout; why gets the reason of a miss */
static int probe_one(const struct pool *p, const char *url, char *why, size_t cap) {
    http_client_req rq = { .method = "GET", .url = url, .timeout_ms = p->health_timeout_ms,
                           .connect_timeout_ms = p->health_timeout_ms };
    http_resp r = { 0 };
    char err[160] = "";
    int rc = http_client_do(&rq, &r, err, sizeof err);
    int ok = rc == 0 && r.status == 200;
    if (!ok) {
        if (rc != 0) snprintf(why, cap, "%s", err);
        else snprintf(why, cap, "status %ld", r.status);
    }
    http_resp_free(&r);
    return ok;
}

/* applies one poll's result; returns 1 when the reported status changed */
static int apply(struct pool *p, const char *id, int ok, const char *why) {
    int changed = 0;
    pthread_mutex_lock(&p->mu);
    struct pool_worker *w = find_locked(p, id);
    if (w && !w->reaped && !w->stop_requested) {
        if (ok) {
            w->health_misses = 0;
            if (w->unhealthy && w->status == PW_FAILED) {
                w->unhealthy = 0;
                w->status = PW_READY;
                changed = 1;
                LOG_KV(LOG_INFO, POOL_COMPONENT, "worker_healthy", NULL, "\"worker_id\":\"%s\",\"status\":\"ready\"", id);
            }
        } else if (++w->health_misses >= p->health_failures && !w->unhealthy &&
                   (w->status == PW_READY || w->status == PW_BUSY)) {
            w->unhealthy = 1;
            w->status = PW_FAILED;
            changed = 1;
            LOG_KV(LOG_WARN, POOL_COMPONENT, "worker_unhealthy", NULL,
                   "\"worker_id\":\"%s\",\"status\":\"failed\",\"misses\":%d,\"reason\":\"%s\"", id, w->health_misses,
                   why);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return changed;
}

/* 1 once pool_health_stop has been called */
static int health_stopping(struct pool *p) {
    pthread_mutex_lock(&p->health_mu);
    int stop = p->health_stop;
    pthread_mutex_unlock(&p->health_mu);
    return stop;
}

/* waits up to ms or until stop; returns 1 when stopping */
static int health_wait(struct pool *p, int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&p->health_mu);
    while (!p->health_stop)
        if (pthread_cond_timedwait(&p->health_cv, &p->health_mu, &ts) == ETIMEDOUT) break;
    int stop = p->health_stop;
    pthread_mutex_unlock(&p->health_mu);
    return stop;
}

static void *health_main(void *arg) {
    struct pool *p = arg;
    struct probe *list = calloc(POOL_MAX_WORKERS, sizeof *list);
    if (!list) return NULL;
    while (!health_wait(p, p->health_interval_ms)) {
        int n = 0;
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < p->nworkers; i++) {
            const struct pool_worker *w = p->workers[i];
            int watch = w->status == PW_READY || w->status == PW_BUSY || (w->status == PW_FAILED && w->unhealthy);
            if (!watch || w->reaped || w->stop_requested || !w->uri[0]) continue;
            snprintf(list[n].id, sizeof list[n].id, "%s", w->id);
            snprintf(list[n].url, sizeof list[n].url, "%s/health", w->uri);
            n++;
        }
        pthread_mutex_unlock(&p->mu);
        int changed = 0;
        /* probes run one after another, each up to timeout_ms: stop between
         * them, so shutdown waits for one probe, not for every hung worker's */
        for (int i = 0; i < n && !health_stopping(p); i++) {
            char why[200] = "";
            int ok = probe_one(p, list[i].url, why, sizeof why);
            changed |= apply(p, list[i].id, ok, why);
        }
        if (changed) pool_heartbeat_kick(p);
    }
    free(list);
    return NULL;
}

int pool_health_start(struct pool *p) {
    pthread_mutex_init(&p->health_mu, NULL);
    pthread_cond_init(&p->health_cv, NULL);
    if (p->health_interval_ms <= 0) {
        LOG_INFO(POOL_COMPONENT, "health", NULL, "worker_health.interval_ms is 0: workers are not polled");
        return 0;
    }
    if (pthread_create(&p->health_thread, NULL, health_main, p) != 0) return -EAGAIN;
    p->health_started = 1;
    return 0;
}

void pool_health_stop(struct pool *p) {
    if (!p->health_started) return;
    pthread_mutex_lock(&p->health_mu);
    p->health_stop = 1;
    pthread_cond_broadcast(&p->health_cv);
    pthread_mutex_unlock(&p->health_mu);
    pthread_join(p->health_thread, NULL);
    p->health_started = 0;
}
