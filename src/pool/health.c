/* health — pool-managerd polls its workers' GET /health (SPEC §5: the pool
 * reports facts; a worker that stops answering is one).
 *
 * One thread, plus short-lived probe threads. Every
 * worker_health.interval_ms it takes the ready (and busy) workers from the
 * table, then, with no lock held, GETs <uri>/health of each with
 * worker_health.timeout_ms (connect included), up to HEALTH_PAR probes at
 * once (threads of this round, which take the next worker until none is
 * left): N hung workers cost one timeout per HEALTH_PAR of them, not N
 * timeouts. When every probe of the round is back, the results are applied
 * together (one lock hold) and the next round waits its interval. A 200 is
 * healthy; anything else (no answer in time, refused, non-200) is a miss. After
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/http_client.h"
#include "common/log.h"
#include "pool/pool.h"

/* probes in flight at once; more workers than this share the threads */
#define HEALTH_PAR 16

struct probe {
    char id[40];
    char url[300];
    int done, ok;   /* set by the probe thread that took it */
    char why[200];  /* the reason of a miss */
};

/* one round: probe threads take list[next++] until n (or stop) */
struct round {
    struct pool *p;
    struct probe *list;
    int n, next;
    pthread_mutex_t mu;
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

/* applies one poll's result (caller holds mu); returns 1 when the reported status changed */
static int apply_locked(struct pool *p, const char *id, int ok, const char *why) {
    int changed = 0;
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

static void *prober(void *arg) {
    struct round *r = arg;
    for (;;) {
        if (health_stopping(r->p)) return NULL; /* shutdown waits only for the probes in flight */
        pthread_mutex_lock(&r->mu);
        int i = r->next < r->n ? r->next++ : -1;
        pthread_mutex_unlock(&r->mu);
        if (i < 0) return NULL;
        struct probe *q = &r->list[i];
        q->ok = probe_one(r->p, q->url, q->why, sizeof q->why);
        q->done = 1; /* read after pthread_join */
    }
}

/* probes list[0..n) concurrently (at most HEALTH_PAR threads), then applies
 * the results under one hold of mu; returns 1 when a reported status changed */
static int probe_round(struct pool *p, struct probe *list, int n) {
    struct round r = { .p = p, .list = list, .n = n };
    pthread_mutex_init(&r.mu, NULL);
    /* while a round is in flight this thread, and the probe threads it
     * starts (they inherit the name), are "health-probe" (ps -L, gdb; a test
     * freezes the pool between rounds by it) */
    pthread_setname_np(pthread_self(), "health-probe");
    pthread_t th[HEALTH_PAR];
    int nth = 0;
    while (nth < n && nth < HEALTH_PAR && pthread_create(&th[nth], NULL, prober, &r) == 0) nth++;
    if (nth == 0) prober(&r); /* no thread to be had: probe here, one after another */
    for (int t = 0; t < nth; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&r.mu);
    int changed = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < n; i++)
        if (list[i].done) changed |= apply_locked(p, list[i].id, list[i].ok, list[i].why);
    pthread_mutex_unlock(&p->mu);
    pthread_setname_np(pthread_self(), "health");
    return changed;
}

static void *health_main(void *arg) {
    struct pool *p = arg;
    pthread_setname_np(pthread_self(), "health");
    struct probe *list = calloc(POOL_MAX_WORKERS, sizeof *list);
    if (!list) return NULL;
    while (!health_wait(p, p->health_interval_ms)) {
        int n = 0;
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < p->nworkers; i++) {
            const struct pool_worker *w = p->workers[i];
            int watch = w->status == PW_READY || w->status == PW_BUSY || (w->status == PW_FAILED && w->unhealthy);
            if (!watch || w->reaped || w->stop_requested || !w->uri[0]) continue;
            memset(&list[n], 0, sizeof list[n]);
            snprintf(list[n].id, sizeof list[n].id, "%s", w->id);
            snprintf(list[n].url, sizeof list[n].url, "%s/health", w->uri);
            n++;
        }
        pthread_mutex_unlock(&p->mu);
        if (n && probe_round(p, list, n)) pool_heartbeat_kick(p);
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

void pool_health_request_stop(struct pool *p) {
    if (!p->health_started) return;
    pthread_mutex_lock(&p->health_mu);
    p->health_stop = 1;
    pthread_cond_broadcast(&p->health_cv);
    pthread_mutex_unlock(&p->health_mu);
}

void pool_health_stop(struct pool *p) {
    if (!p->health_started) return;
    pool_health_request_stop(p);
    pthread_join(p->health_thread, NULL);
    p->health_started = 0;
}
