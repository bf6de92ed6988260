/* api — the worker's HTTP endpoints (SPEC §3.4). Handlers run on MHD's
 * polling threads: they validate, hand work to the job thread and answer;
 * they never wait for the decode loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json_util.h"
#include "common/log.h"
#include "worker/worker.h"

static void count_outcome(worker *w, const char *outcome) {
    const char *v[] = {outcome};
    metrics_add(w->m_requests, v, 1);
}

/* ---- POST /execute ---------------------------------------------------------------- */

static void on_client_gone(void *user) {
    wk_job *j = user;
    int expect = WK_RUN;
    atomic_compare_exchange_strong(&j->cancel, &expect, WK_CANCEL_GONE);
}

static void h_execute(http_req *r, void *user) {
    worker *w = user;
    const char *cid = http_req_correlation_id(r);
    if (!atomic_load(&w->accepting)) {
        http_respond_error(r, ERR_WORKER_FAILED, "the worker is shutting down", NULL);
        return;
    }
    wk_job *j = calloc(1, sizeof *j);
    if (!j) {
        http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    j->accept_ns = util_now_ns();
    snprintf(j->cid, sizeof j->cid, "%s", cid);
    const char *dl = http_req_header(r, "X-Deadline");
    if (dl && http_parse_time_ms(dl, &j->deadline_ms) != 0) {
        http_respond_error(r, ERR_INVALID_REQUEST, "X-Deadline must be RFC 3339 or epoch milliseconds",
                           "{\"field\":\"X-Deadline\"}");
        count_outcome(w, "invalid");
        wk_job_free(j);
        return;
    }
    size_t len;
    const char *body = http_req_body(r, &len);
    enum err_code code;
    char field[64], msg[256], details[256];
    if (wk_validate_execute(w, body, len, j, &code, field, sizeof field, msg, sizeof msg, details, sizeof details)) {
        LOG_KV(LOG_INFO, WK_COMPONENT, "execute_rejected", cid, "\"field\":\"%s\",\"code\":\"%s\"", field, err_name(code));
        http_respond_error(r, code, msg, details);
        count_outcome(w, "invalid");
        wk_job_free(j);
        return;
    }
    if (j->deadline_ms && util_wall_ms() >= j->deadline_ms) {
        http_respond_error(r, ERR_DEADLINE_EXCEEDED, "X-Deadline has already passed", NULL);
        count_outcome(w, "deadline_exceeded");
        wk_job_free(j);
        return;
    }
    int expect = 0;
    if (!atomic_compare_exchange_strong(&w->busy, &expect, 1)) {
        char d[128];
        snprintf(d, sizeof d, "{\"retry_after_ms\":100}");
        http_respond_error(r, ERR_WORKER_BUSY, "a job is already running (batch size 1)", d);
        count_outcome(w, "busy");
        LOG_INFO(WK_COMPONENT, "execute_busy", cid, "job %s refused: busy", j->job_id);
        wk_job_free(j);
        return;
    }
    j->st = http_respond_stream(r, 200, "text/event-stream", on_client_gone, j);
    if (!j->st) {
        atomic_store(&w->busy, 0);
        wk_job_free(j);
        return; /* the server answers 500 */
    }
    pthread_mutex_lock(&w->mu);
    w->pending = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- POST /cancel ------------------------------------------------------------------- */

static void h_cancel(http_req *r, void *user) {
    worker *w = user;
    const char *cid = http_req_correlation_id(r);
    size_t len;
    const char *body = http_req_body(r, &len);
    ju_err e;
    json_t *o = ju_parse_object(body, len, &e);
    const char *id = NULL;
    size_t idl = 0;
    /* the same job_id rule as /execute: the id is echoed into JSON and logs */
    if (o && ju_string(o, "job_id", 1, 64, &id, &idl, &e) == 1 && !wk_valid_job_id(id, idl))
        ju_fail(&e, "job_id", "'job_id' must be 1-64 characters of [A-Za-z0-9_-]"), id = NULL;
    if (!id) {
        char d[128];
        ju_err_details(&e, d, sizeof d);
        http_respond_error(r, ERR_INVALID_REQUEST, e.message, d);
        json_decref(o);
        return;
    }
    int found = 0;
    pthread_mutex_lock(&w->mu);
    wk_job *js[2] = {w->current, w->pending};
    for (int i = 0; i < 2; i++) {
        if (js[i] && strcmp(js[i]->job_id, id) == 0) {
            int expect = WK_RUN;
            atomic_compare_exchange_strong(&js[i]->cancel, &expect, WK_CANCEL_REQUEST);
            found = 1;
        }
    }
    pthread_mutex_unlock(&w->mu);
    LOG_KV(LOG_INFO, WK_COMPONENT, "cancel", cid, "\"job_id\":\"%s\",\"running\":%s", id, found ? "true" : "false");
    char out[160];
    snprintf(out, sizeof out, "{\"job_id\":\"%s\",\"status\":\"%s\"}", id, found ? "cancelling" : "not_running");
    http_respond_json(r, 202, out);
    json_decref(o);
}

/* ---- GET /health --------------------------------------------------------------------- */

static void h_health(http_req *r, void *user) {
    worker *w = user;
    int resident;
    uint64_t mem;
    pthread_mutex_lock(&w->health_mu);
    resident = w->resident;
    mem = w->memory_bytes;
    pthread_mutex_unlock(&w->health_mu);
    const eng_model_info *in = &w->info;
    int vram_only = strcmp(WK_MEMORY_ARCH, "vram-only") == 0;
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_printf(&sb, "{\"status\":\"%s\",\"resident\":%s,\"worker_id\":", resident ? "healthy" : "unhealthy",
                   resident ? "true" : "false");
    util_sb_json_str(&sb, w->a.worker_id);
    util_sb_puts(&sb, ",\"worker_type\":\"" WK_WORKER_TYPE "\",\"memory_architecture\":\"" WK_MEMORY_ARCH "\",\"model\":");
    util_sb_json_str(&sb, w->model_name);
    util_sb_puts(&sb, ",\"model_ref\":");
    if (w->a.model_ref) util_sb_json_str(&sb, w->a.model_ref);
    else util_sb_puts(&sb, "null");
    util_sb_puts(&sb, ",\"quant_kind\":");
    util_sb_json_str(&sb, in->quant_kind ? in->quant_kind : "unknown");
    util_sb_puts(&sb, ",\"tokenizer_kind\":");
    util_sb_json_str(&sb, tok_kind_name(w->vocab));
    util_sb_printf(&sb, ",\"vocab_size\":%d,\"context_length\":%d,\"vram_bytes_used\":%llu,\"memory_bytes\":%llu",
                   tok_n_vocab(w->vocab), eng_session_n_ctx(w->sess), (unsigned long long)(vram_only ? mem : 0),
                   (unsigned long long)mem);
    util_sb_printf(&sb, ",\"busy\":%s,\"uptime_seconds\":%llu", atomic_load(&w->busy) ? "true" : "false",
                   (unsigned long long)((util_now_ns() - w->start_ns) / 1000000000ull));
    if (in->sm > 0) util_sb_printf(&sb, ",\"sm\":%d,\"cuda_runtime_version\":%d", in->sm, in->cuda_runtime_version);
    else util_sb_puts(&sb, ",\"sm\":null,\"cuda_runtime_version\":null");
    if (in->device_name[0]) {
        util_sb_puts(&sb, ",\"device_name\":");
        util_sb_json_str(&sb, in->device_name);
    }
    if (!resident) {
        util_sb_puts(&sb, ",\"reason\":");
        pthread_mutex_lock(&w->health_mu);
        util_sb_json_str(&sb, w->resident_msg);
        pthread_mutex_unlock(&w->health_mu);
    }
    util_sb_putc(&sb, '}');
    if (sb.oom) http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
    else http_respond_json(r, resident ? 200 : 503, sb.buf);
    util_sb_free(&sb);
}

/* ---- GET /metrics --------------------------------------------------------------------- */

static void h_metrics(http_req *r, void *user) {
    worker *w = user;
    uint64_t mem;
    pthread_mutex_lock(&w->health_mu);
    mem = w->memory_bytes;
    pthread_mutex_unlock(&w->health_mu);
    metrics_set(w->m_vram, NULL, strcmp(WK_MEMORY_ARCH, "vram-only") == 0 ? (double)mem : 0.0);
    metrics_set(w->m_uptime, NULL, (double)(util_now_ns() - w->start_ns) / 1e9);
    struct util_sb sb;
    util_sb_init(&sb);
    metrics_render(w->metrics, &sb);
    if (sb.oom) http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
    else http_respond(r, 200, METRICS_CONTENT_TYPE, sb.buf, sb.len);
    util_sb_free(&sb);
}

/* ---- POST /shutdown -------------------------------------------------------------------- */

static void h_shutdown(http_req *r, void *user) {
    (void)user;
    LOG_INFO(WK_COMPONENT, "shutdown_requested", http_req_correlation_id(r), "POST /shutdown");
    http_respond_json(r, 202, "{\"status\":\"shutting_down\"}");
    /* not kill(SIGTERM): between listening and the end of the ready
     * callback a signal still takes the during-startup _exit, which lost
     * this answer (CI: test_shutdown_endpoint, "Server returned nothing") */
    wk_request_stop();
}

int wk_api_start(worker *w, char *err, size_t errlen) {
    http_server_opts o = {
        .bind = w->a.bind, .port = w->a.port, .threads = 2, .component = WK_COMPONENT,
        .max_body_bytes = 1u << 20, .max_connections = 256,
    };
    int rc = http_server_new(&o, &w->http, err, errlen);
    if (rc) return rc;
    http_server_route(w->http, "POST", "/execute", h_execute, w);
    http_server_route(w->http, "POST", "/cancel", h_cancel, w);
    http_server_route(w->http, "GET", "/health", h_health, w);
    http_server_route(w->http, "GET", "/metrics", h_metrics, w);
    http_server_route(w->http, "POST", "/shutdown", h_shutdown, w);
    return http_server_start(w->http, err, errlen);
}
