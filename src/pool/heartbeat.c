/* heartbeat — facts up to the orchestrator (SPEC §5):
 *   POST {orch}/v2/pools/register   {"pool_id","endpoint","devices","workers","adapters","inventory","ts"}
 *       at start, retried with exponential backoff (250 ms doubling to the
 *       heartbeat interval, capped at 30 s) until accepted;
 *   POST {orch}/v2/pools/{id}/heartbeat   the full state with "ts" (epoch ms),
 *       every heartbeat_interval_ms even when nothing changed; a 404 (the
 *       orchestrator forgot us, e.g. it restarted) sends us back to register;
 *   POST {orch}/v2/internal/workers/failed (pool_report_failed).
 * Every call carries "Authorization: Bearer <token>" when a token is
 * configured (never logged). Failures are logged, never fatal.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/http_client.h"
#include "common/log.h"
#include "pool/adapters/adapter.h"
#include "pool/pool.h"

void pool_orch_headers(struct pool *p, char auth[600], const char *hdrs[3]) {
    int k = 0;
    if (p->orch_token) {
        snprintf(auth, 600, "Authorization: Bearer %s", p->orch_token);
        hdrs[k++] = auth;
    }
    hdrs[k] = NULL;
}

static int post(struct pool *p, const char *path, const char *body, long *status) {
    char url[600], auth[600], err[256];
    const char *hdrs[3];
    snprintf(url, sizeof url, "%s%s", p->orch_url, path);
    pool_orch_headers(p, auth, hdrs);
    http_client_req rq = { .method = "POST", .url = url, .body = body, .headers = hdrs, .timeout_ms = 5000,
                           .connect_timeout_ms = 2000, .max_response_bytes = 64 * 1024 };
    http_resp r;
    int rc = http_client_do(&rq, &r, err, sizeof err);
    *status = rc == 0 ? r.status : 0;
    if (rc < 0) LOG_KV(LOG_DEBUG, POOL_COMPONENT, "orch_call", NULL, "\"path\":\"%s\",\"error\":\"transport\"", path);
    http_resp_free(&r);
    return rc;
}

/* state + adapters; register adds nothing else the heartbeat lacks */
static void state_body(struct pool *p, struct util_sb *sb) {
    pool_state_json(p, sb);
    if (sb->len && sb->buf[sb->len - 1] == '}') {
        sb->len--;
        util_sb_puts(sb, ",\"adapters\":[");
        for (int i = 0; i < p->nadapters; i++) {
            if (i) util_sb_putc(sb, ',');
            p->adapters[i].ops->metadata(&p->adapters[i], sb);
        }
        util_sb_puts(sb, "]}");
    }
}

/* waits up to ms or until stop; returns 1 when stopping */
static int hb_wait(struct pool *p, int64_t ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&p->hb_mu);
    while (!p->hb_stop && !p->hb_kick)
        if (pthread_cond_timedwait(&p->hb_cv, &p->hb_mu, &ts) == ETIMEDOUT) break;
    p->hb_kick = 0;
    int stop = p->hb_stop;
    pthread_mutex_unlock(&p->hb_mu);
    return stop;
}

void pool_heartbeat_kick(struct pool *p) {
    if (!p->hb_started) return;
    pthread_mutex_lock(&p->hb_mu);
    p->hb_kick = 1;
    pthread_cond_broadcast(&p->hb_cv);
    pthread_mutex_unlock(&p->hb_mu);
}

static void *hb_main(void *arg) {
    struct pool *p = arg;
    int64_t backoff = 250;
    int64_t cap = p->hb_interval_ms < 30000 ? p->hb_interval_ms : 30000;
    if (cap < 250) cap = 250;
    char path[200];
    snprintf(path, sizeof path, "/v2/pools/%s/heartbeat", p->pool_id);
    for (;;) {
        struct util_sb sb;
        util_sb_init(&sb);
        state_body(p, &sb);
        long st = 0;
        if (!__atomic_load_n(&p->registered, __ATOMIC_ACQUIRE)) {
            int rc = sb.oom ? -ENOMEM : post(p, "/v2/pools/register", sb.buf, &st);
            if (rc == 0 && st / 100 == 2) {
                __atomic_store_n(&p->registered, 1, __ATOMIC_RELEASE);
                backoff = 250;
                LOG_KV(LOG_INFO, POOL_COMPONENT, "register", NULL, "\"pool_id\":\"%s\",\"orchestrator\":\"%s\"",
                       p->pool_id, p->orch_url);
                util_sb_free(&sb);
                if (hb_wait(p, p->hb_interval_ms)) break;
                continue;
            }
            LOG_KV(LOG_WARN, POOL_COMPONENT, "register_failed", NULL, "\"status\":%ld,\"retry_in_ms\":%lld", st,
                   (long long)backoff);
            util_sb_free(&sb);
            if (hb_wait(p, backoff)) break;
            backoff = backoff * 2 > cap ? cap : backoff * 2;
            continue;
        }
        int rc = sb.oom ? -ENOMEM : post(p, path, sb.buf, &st);
        util_sb_free(&sb);
        if (rc == 0 && st == 404) {
            LOG_WARN(POOL_COMPONENT, "heartbeat", NULL, "orchestrator does not know this pool: registering again");
            __atomic_store_n(&p->registered, 0, __ATOMIC_RELEASE);
            continue;
        }
        if (rc < 0 || st / 100 != 2)
            LOG_KV(LOG_WARN, POOL_COMPONENT, "heartbeat_failed", NULL, "\"status\":%ld", st);
        else
            LOG_KV(LOG_DEBUG, POOL_COMPONENT, "heartbeat", NULL, "\"status\":%ld", st);
        if (hb_wait(p, p->hb_interval_ms)) break;
    }
    return NULL;
}

int pool_heartbeat_start(struct pool *p) {
    pthread_mutex_init(&p->hb_mu, NULL);
    pthread_cond_init(&p->hb_cv, NULL);
    if (!p->orch_url) {
        LOG_INFO(POOL_COMPONENT, "register", NULL, "no orchestrator.url: standalone (no registration, no heartbeats)");
        return 0;
    }
    if (pthread_create(&p->hb_thread, NULL, hb_main, p) != 0) return -EAGAIN;
    p->hb_started = 1;
    return 0;
}

void pool_heartbeat_stop(struct pool *p) {
    if (!p->hb_started) return;
    pthread_mutex_lock(&p->hb_mu);
    p->hb_stop = 1;
    pthread_cond_broadcast(&p->hb_cv);
    pthread_mutex_unlock(&p->hb_mu);
    pthread_join(p->hb_thread, NULL);
    p->hb_started = 0;
}

void pool_report_failed(struct pool *p, const char *worker_id, int exit_code, int sig, uint64_t released,
                        const char *tail) {
    if (!p->orch_url) return;
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_puts(&sb, "{\"worker_id\":");
    util_sb_json_str(&sb, worker_id);
    util_sb_puts(&sb, ",\"pool_id\":");
    util_sb_json_str(&sb, p->pool_id);
    util_sb_printf(&sb, ",\"exit_code\":%d,\"signal\":%d,\"vram_released\":%llu,\"stderr_tail\":", exit_code, sig,
                   (unsigned long long)released);
    util_sb_json_str(&sb, tail);
    util_sb_puts(&sb, "}");
    long st = 0;
    for (int attempt = 0; attempt < 3 && !sb.oom; attempt++) {
        int rc = post(p, "/v2/internal/workers/failed", sb.buf, &st);
        if (rc == 0 && (st / 100 == 2 || st / 100 == 4)) break; /* 4xx: the orchestrator does not want it */
        struct timespec ts = { 0, 200000000L * (attempt + 1) };
        nanosleep(&ts, NULL);
    }
    LOG_KV(LOG_INFO, POOL_COMPONENT, "failure_report", NULL, "\"worker_id\":\"%s\",\"status\":%ld", worker_id, st);
    util_sb_free(&sb);
}
