/* api — pool-managerd's HTTP control API (SPEC §5). Handlers validate,
 * act and answer; nothing here blocks for long (a spawn is a posix_spawn, a
 * pull runs on its own thread). Error bodies are SPEC §7's.
 *
 *   POST /v2/workers/start           preflight, spawn → 202 {"worker_id","status":"starting"}
 *   POST /v2/workers/{id}/stop       → 202 {"worker_id","status":"draining"}
 *   POST /v2/workers/stop            same, {"worker_id"} in the body (the orchestrator's form)
 *   GET  /v2/state                   {"pool_id","ts","inventory","devices","workers"}
 *   POST /v2/internal/workers/ready  the worker's ready callback (spawn token, id, model ref)
 *   POST /v2/models/pull             {"model_ref"} → 202 and the pull's record
 *   GET  /v2/models/pull?model_ref=  the pull's record (progress)
 *   POST /v2/models/preload          {"model_ref"} → 202: hot-load into the page cache
 *   GET  /health, GET /metrics
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_util.h"
#include "common/log.h"
#include "pool/adapters/adapter.h"
#include "pool/pool.h"

static void bad_request(http_req *r, const ju_err *e) {
    char det[160];
    ju_err_details(e, det, sizeof det);
    http_respond_error(r, ERR_INVALID_REQUEST, e->message[0] ? e->message : "invalid request", det);
}

static int ref_ok(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == '"' || *s == '\\') return 0;
    return 1;
}

static void h_start(http_req *r, void *user) {
    struct pool *p = user;
    ju_err e = { 0 };
    json_t *j = ju_parse_body(r, &e);
    const char *ref = NULL, *wt = NULL, *cap = NULL;
    int64_t gpu = -1, ctx = 0;
    json_t *gpus = NULL;
    int gids[POOL_MAX_GPUS_PER_WORKER], ng = 0;
    int rc = j ? 0 : -1;
    if (rc == 0 && (ju_string(j, "model_ref", 1, POOL_REF_MAX - 1, &ref, NULL, &e) < 0 ||
                    ju_int(j, "gpu_id", 0, 0, 1023, &gpu, &e) < 0 ||
                    ju_array(j, "gpu_ids", 0, POOL_MAX_GPUS_PER_WORKER, &gpus, &e) < 0 ||
                    ju_string(j, "worker_type", 0, 63, &wt, NULL, &e) < 0 ||
                    ju_string(j, "capability", 0, 23, &cap, NULL, &e) < 0 ||
                    ju_int(j, "ctx_size", 0, 16, 1 << 20, &ctx, &e) < 0))
        rc = -1;
    if (rc == 0 && !ref_ok(ref)) rc = ju_fail(&e, "model_ref", "model_ref has control or quote characters");
    if (rc == 0 && json_object_get(j, "gpu_id") && gpus && json_array_size(gpus))
        rc = ju_fail(&e, "gpu_ids", "give gpu_id or gpu_ids, not both");
    if (rc == 0 && gpu >= 0 && json_object_get(j, "gpu_id")) gids[ng++] = (int)gpu;
    for (size_t i = 0; rc == 0 && gpus && i < json_array_size(gpus); i++) {
        json_t *g = json_array_get(gpus, i);
        if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 1023)
            rc = ju_fail(&e, "gpu_ids", "gpu_ids must be integers 0..1023");
        else gids[ng++] = (int)json_integer_value(g);
    }
    if (rc < 0) {
        bad_request(r, &e);
        json_decref(j);
        return;
    }
    struct pool_start_req rq = { .model_ref = ref, .gpu_ids = gids, .ngpu = ng, .worker_type = wt, .capability = cap,
                                 .ctx = ctx, .allow_pull = 1 };
    struct pool_preflight pf;
    char msg[512], det[512];
    pthread_mutex_lock(&p->start_mu);
    uint64_t t0 = util_now_ns();
    enum err_code code = pool_preflight_run(p, &rq, &pf, msg, sizeof msg, det, sizeof det);
    double pf_ms = (double)(util_now_ns() - t0) / 1e6;
    char id[40] = "";
    int pulling = 0;
    if (code == ERR_OK && pf.needs_pull) { /* provisionable: pull, then start (lifecycle.c) */
        code = pool_model_pull(p, ref, msg, sizeof msg);
        char e2[256];
        if (code == ERR_OK &&
            pool_worker_start_provisioning(p, pf.ad, ref, gids, ng, ctx, cap, id, e2, sizeof e2) < 0) {
            code = ERR_INTERNAL;
            snprintf(msg, sizeof msg, "start failed: %s", e2);
        }
        det[0] = 0;
        pulling = code == ERR_OK;
    } else if (code == ERR_OK) {
        char e2[256];
        if (pool_worker_spawn(p, pf.ad, ref, pf.model_path, gids, ng, pf.ctx, cap, pf.estimate, pf.arch, id, e2,
                              sizeof e2) < 0) {
            code = ERR_INTERNAL;
            snprintf(msg, sizeof msg, "spawn failed: %s", e2);
            det[0] = 0;
        }
    }
    pthread_mutex_unlock(&p->start_mu);
    /* a provisioning start counts its outcome when it launches (lifecycle.c) */
    if (!pulling) metrics_add(p->m_starts, (const char *[]){ code == ERR_OK ? "ok" : err_name(code) }, 1);
    LOG_KV(code == ERR_OK ? LOG_INFO : LOG_WARN, POOL_COMPONENT, "worker_start", http_req_correlation_id(r),
           "\"outcome\":\"%s\",\"worker_id\":\"%s\",\"preflight_ms\":%.2f,\"estimate_bytes\":%llu", err_name(code), id,
           pf_ms, (unsigned long long)pf.estimate);
    json_decref(j);
    if (code != ERR_OK) {
        http_respond_error(r, code, msg, det[0] ? det : NULL);
        return;
    }
    char out[256];
    snprintf(out, sizeof out, "{\"worker_id\":\"%s\",\"status\":\"starting\",\"estimate_bytes\":%llu,\"provisioning\":%s}",
             id, (unsigned long long)pf.estimate, pulling ? "true" : "false");
    http_respond_json(r, 202, out);
}

static void do_stop(http_req *r, struct pool *p, const char *id) {
    char msg[128];
    enum err_code c = pool_worker_stop(p, id, msg, sizeof msg);
    if (c != ERR_OK) {
        http_respond_error(r, c, msg, NULL);
        return;
    }
    struct util_sb sb;
    char buf[256];
    util_sb_init_fixed(&sb, buf, sizeof buf);
    util_sb_puts(&sb, "{\"worker_id\":");
    util_sb_json_str(&sb, id);
    util_sb_puts(&sb, ",\"status\":\"draining\"}");
    http_respond_json(r, 202, buf);
}

static void h_stop_id(http_req *r, void *user) {
    do_stop(r, user, http_req_param(r, "id"));
}

static void h_stop_body(http_req *r, void *user) {
    ju_err e = { 0 };
    json_t *j = ju_parse_body(r, &e);
    const char *id = NULL;
    if (!j || ju_string(j, "worker_id", 1, 39, &id, NULL, &e) < 0) bad_request(r, &e);
    else do_stop(r, user, id);
    json_decref(j);
}

static void h_state(http_req *r, void *user) {
    struct util_sb sb;
    util_sb_init(&sb);
    pool_state_json(user, &sb);
    if (sb.oom) http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
    else http_respond_json(r, 200, sb.buf);
    util_sb_free(&sb);
}

/* The ready callback. Everything is checked before anything changes: an
 * unknown id, a wrong token or a wrong model ref is refused and the worker
 * stays as it was. */
static void h_ready(http_req *r, void *user) {
    struct pool *p = user;
    ju_err e = { 0 };
    json_t *j = ju_parse_body(r, &e);
    struct pool_ready rd = { 0 };
    int64_t ctx = 0;
    size_t ulen = 0;
    if (!j || ju_string(j, "worker_id", 1, 39, &rd.worker_id, NULL, &e) < 0 ||
        ju_string(j, "spawn_token", 1, 64, &rd.spawn_token, NULL, &e) < 0 ||
        ju_string(j, "model_ref", 1, POOL_REF_MAX - 1, &rd.model_ref, NULL, &e) < 0 ||
        ju_string(j, "uri", 1, 255, &rd.uri, &ulen, &e) < 0 ||
        ju_string(j, "worker_type", 0, 31, &rd.worker_type, NULL, &e) < 0 ||
        ju_string(j, "memory_architecture", 0, 15, &rd.memory_architecture, NULL, &e) < 0 ||
        ju_string(j, "quant_kind", 0, 23, &rd.quant_kind, NULL, &e) < 0 ||
        ju_uint64(j, "memory_bytes", 1, &rd.memory_bytes, &e) < 0 ||
        ju_int(j, "context_length", 0, 0, 100000000, &ctx, &e) < 0) {
        bad_request(r, &e);
        json_decref(j);
        return;
    }
    if (strncmp(rd.uri, "http://", 7) || !ref_ok(rd.uri)) {
        ju_fail(&e, "uri", "uri must be an http:// URL");
        bad_request(r, &e);
        json_decref(j);
        return;
    }
    rd.context_length = ctx;
    char msg[256];
    enum err_code c = pool_worker_ready(p, &rd, msg, sizeof msg);
    json_decref(j);
    if (c != ERR_OK) http_respond_error(r, c, msg, NULL);
    else http_respond_json(r, 200, "{\"status\":\"ready\"}");
}

static void h_pull(http_req *r, void *user) {
    struct pool *p = user;
    ju_err e = { 0 };
    json_t *j = ju_parse_body(r, &e);
    const char *ref = NULL;
    if (!j || ju_string(j, "model_ref", 1, POOL_REF_MAX - 1, &ref, NULL, &e) < 0 ||
        (!ref_ok(ref) && ju_fail(&e, "model_ref", "control or quote characters") < 0)) {
        bad_request(r, &e);
        json_decref(j);
        return;
    }
    char msg[256];
    enum err_code c = pool_model_pull(p, ref, msg, sizeof msg);
    if (c != ERR_OK) {
        http_respond_error(r, c, msg, NULL);
        json_decref(j);
        return;
    }
    struct util_sb sb;
    util_sb_init(&sb);
    pthread_mutex_lock(&p->mu);
    pool_download_json_locked(p, ref, &sb);
    pthread_mutex_unlock(&p->mu);
    json_decref(j);
    http_respond_json(r, 202, sb.buf ? sb.buf : "{}");
    util_sb_free(&sb);
}

static void h_pull_get(http_req *r, void *user) {
    struct pool *p = user;
    const char *ref = http_req_query(r, "model_ref");
    if (!ref) {
        http_respond_error(r, ERR_INVALID_REQUEST, "model_ref query parameter required", "{\"field\":\"model_ref\"}");
        return;
    }
    struct util_sb sb;
    util_sb_init(&sb);
    pthread_mutex_lock(&p->mu);
    int rc = pool_download_json_locked(p, ref, &sb);
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) http_respond_error(r, ERR_NOT_FOUND, "no pull for that model_ref", NULL);
    else http_respond_json(r, 200, sb.buf);
    util_sb_free(&sb);
}

static void h_preload(http_req *r, void *user) {
    struct pool *p = user;
    ju_err e = { 0 };
    json_t *j = ju_parse_body(r, &e);
    const char *ref = NULL;
    if (!j || ju_string(j, "model_ref", 1, POOL_REF_MAX - 1, &ref, NULL, &e) < 0) {
        bad_request(r, &e);
        json_decref(j);
        return;
    }
    char msg[256];
    enum err_code c = pool_model_preload(p, ref, msg, sizeof msg);
    json_decref(j);
    if (c != ERR_OK) http_respond_error(r, c, msg, NULL);
    else http_respond_json(r, 202, "{\"status\":\"preloading\"}");
}

static void h_health(http_req *r, void *user) {
    struct pool *p = user;
    char buf[512];
    pthread_mutex_lock(&p->mu);
    int n = p->nworkers;
    pthread_mutex_unlock(&p->mu);
    snprintf(buf, sizeof buf,
             "{\"status\":\"healthy\",\"pool_id\":\"%s\",\"inventory\":\"%s\",\"workers\":%d,\"adapters\":%d,"
             "\"registered\":%s}",
             p->pool_id, pool_inv_source(p->inv), n, p->nadapters, __atomic_load_n(&p->registered, __ATOMIC_ACQUIRE) ? "true" : "false");
    http_respond_json(r, 200, buf);
}

static void h_metrics(http_req *r, void *user) {
    struct pool *p = user;
    struct pool_device d[POOL_MAX_DEVICES];
    int n = pool_inv_snapshot(p->inv, d, POOL_MAX_DEVICES);
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < n; i++) {
        char g[16];
        snprintf(g, sizeof g, "%d", d[i].gpu_id);
        metrics_set(p->m_vram_total, (const char *[]){ g }, (double)d[i].total_bytes);
        metrics_set(p->m_vram_alloc, (const char *[]){ g },
                    (double)pool_accounted_locked(p, d[i].gpu_id, POOL_ACC_ALL));
    }
    int cnt[5] = { 0 };
    for (int i = 0; i < p->nworkers; i++) cnt[p->workers[i]->status]++;
    pthread_mutex_unlock(&p->mu);
    for (int s = 0; s < 5; s++)
        metrics_set(p->m_workers, (const char *[]){ pool_wstatus_name((enum pool_wstatus)s) }, cnt[s]);
    struct util_sb sb;
    util_sb_init(&sb);
    metrics_render(p->metrics, &sb);
    http_respond(r, 200, METRICS_CONTENT_TYPE, sb.buf ? sb.buf : "", sb.len);
    util_sb_free(&sb);
}

int pool_api_start(struct pool *p, const char *host, int port, char *err, size_t errlen) {
    http_server_opts o = { .bind = host, .port = port, .threads = 2, .component = POOL_COMPONENT,
                           .max_body_bytes = 64 * 1024 };
    int rc = http_server_new(&o, &p->http, err, errlen);
    if (rc < 0) return rc;
    struct { const char *m, *path; http_handler_fn fn; } routes[] = {
        { "POST", "/v2/workers/start", h_start },
        { "POST", "/v2/workers/stop", h_stop_body },
        { "POST", "/v2/workers/{id}/stop", h_stop_id },
        { "GET", "/v2/state", h_state },
        { "POST", "/v2/internal/workers/ready", h_ready },
        { "POST", "/v2/models/pull", h_pull },
        { "GET", "/v2/models/pull", h_pull_get },
        { "POST", "/v2/models/preload", h_preload },
        { "GET", "/health", h_health },
        { "GET", "/metrics", h_metrics },
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(routes); i++) {
        rc = http_server_route(p->http, routes[i].m, routes[i].path, routes[i].fn, p);
        if (rc < 0) return util_fail(err, errlen, rc, "route %s", routes[i].path);
    }
    return http_server_start(p->http, err, errlen);
}
