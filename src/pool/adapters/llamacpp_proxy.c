/* llamacpp_proxy — the standard worker contract (SPEC §3.4) in front of a
 * llama-server, served by the pool process on 127.0.0.1:<ephemeral>.
 *
 *   POST /execute  validated as a worker validates it, then
 *                  POST {upstream}/tokenize {"content"}          → tokens_in
 *                  POST {upstream}/completion {"prompt","n_predict","temperature","top_p","top_k",
 *                       "min_p","repeat_penalty","repeat_last_n":64,"stop","seed","stream":true}
 *                  its SSE `data: {"content","stop",...}` lines become our events:
 *                    started {job_id, model, started_at, seed, correlation_id, tokens_in}
 *                    token   {t, i}                  one per non-empty content
 *                    end     {tokens_in, tokens_out, decode_time_ms, first_token_ms, stop_reason}
 *                            (llama.cpp's tokens_evaluated/predicted, timings, stop_type
 *                             eos|limit|word → eos|max_tokens|stop)
 *                    error   {code, message, retriable}: CANCELLED, WORKER_FAILED
 *  POST /cancel    {"job_id"} → 202; the upstream connection is closed (llama-server stops)
 *  GET  /health    upstream /health → {"status","worker_id","worker_type":"llamacpp",...}
 *
 * One job at a time (batch = 1): a second /execute gets 503 WORKER_BUSY.
 * Each job runs on its own thread; the proxy's stop waits for them.
 */
#include "pool/adapters/llamacpp.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_client.h"
#include "common/json_util.h"
#include "common/log.h"

struct lcpp_job {
    struct lcpp *L;
    http_stream *st;
    char job_id[65];
    char cid[65];
    char *upstream_body;            /* owned */
    char *prompt;                   /* owned (for /tokenize) */
    uint64_t seed;
    int64_t seq;                    /* SSE id */
    int64_t idx;                    /* token index */
    json_t *final;                  /* the upstream's last (stop:true) object */
};

static int job_id_ok(const char *s, size_t n) {
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static void emit(struct lcpp_job *j, const char *event, json_t *data) {
    char *s = json_dumps(data, JSON_COMPACT);
    if (s) http_stream_sse(j->st, j->seq++, event, s);
    free(s);
    json_decref(data);
}

static void emit_error(struct lcpp_job *j, const char *code, const char *msg, int retriable) {
    emit(j, "error", json_pack("{s:s,s:s,s:b}", "code", code, "message", msg, "retriable", retriable));
}

/* upstream SSE: one JSON object per data line */
static int on_upstream(void *user, const sse_event *ev) {
    struct lcpp_job *j = user;
    if (atomic_load(&j->L->cancel) || atomic_load(&j->L->stop)) return 1;
    json_t *o = json_loadb(ev->data, ev->data_len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return 0;
    }
    const char *c = json_string_value(json_object_get(o, "content"));
    if (c && *c) emit(j, "token", json_pack("{s:s,s:I}", "t", c, "i", (json_int_t)j->idx++));
    if (json_is_true(json_object_get(o, "stop"))) {
        json_decref(j->final);
        j->final = o;
        return 0;
    }
    json_decref(o);
    return 0;
}

static int64_t tokenize_count(struct lcpp_job *j) {
    char url[128];
    snprintf(url, sizeof url, "%s/tokenize", j->L->upstream);
    json_t *b = json_pack("{s:s}", "content", j->prompt);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    http_client_req rq = { .method = "POST", .url = url, .body = body, .timeout_ms = 10000 };
    http_resp r;
    char e[128];
    int64_t n = 0;
    if (http_client_do(&rq, &r, e, sizeof e) == 0 && r.status == 200) {
        json_t *o = json_loadb(r.body, r.len, 0, NULL);
        n = (int64_t)json_array_size(json_object_get(o, "tokens"));
        json_decref(o);
    }
    http_resp_free(&r);
    free(body);
    return n;
}

static void *job_main(void *arg) {
    struct lcpp_job *j = arg;
    struct lcpp *L = j->L;
    int64_t tin = tokenize_count(j);
    char ts[40];
    util_time_rfc3339_ms(ts, sizeof ts);
    emit(j, "started", json_pack("{s:s,s:s,s:s,s:I,s:s,s:I}", "job_id", j->job_id, "model", L->model_ref, "started_at",
                                 ts, "seed", (json_int_t)j->seed, "correlation_id", j->cid, "tokens_in", (json_int_t)tin));
    char url[128];
    snprintf(url, sizeof url, "%s/completion", L->upstream);
    http_client_req rq = { .method = "POST", .url = url, .body = j->upstream_body, .idle_timeout_ms = 120000 };
    http_resp r;
    char e[256] = "";
    int rc = http_client_sse(&rq, on_upstream, j, &r, e, sizeof e);
    if (atomic_load(&L->cancel)) {
        emit_error(j, "CANCELLED", "cancelled", 0);
    } else if (rc < 0 || r.status != 200 || !j->final) {
        char m[300];
        snprintf(m, sizeof m, "llama-server: %s (status %ld)", rc < 0 ? e : "stream ended without a stop", r.status);
        emit_error(j, "WORKER_FAILED", m, 1);
    } else {
        json_t *f = j->final, *tim = json_object_get(f, "timings");
        const char *stype = json_string_value(json_object_get(f, "stop_type"));
        const char *reason = "eos";
        if (stype && !strcmp(stype, "limit")) reason = "max_tokens";
        else if (stype && !strcmp(stype, "word")) reason = "stop";
        else if (!stype && json_is_true(json_object_get(f, "stopped_limit"))) reason = "max_tokens";
        else if (!stype && json_is_true(json_object_get(f, "stopped_word"))) reason = "stop";
        json_int_t te = json_integer_value(json_object_get(f, "tokens_evaluated"));
        json_int_t tp = json_integer_value(json_object_get(f, "tokens_predicted"));
        emit(j, "end", json_pack("{s:I,s:I,s:I,s:I,s:s}", "tokens_in", te ? te : (json_int_t)tin, "tokens_out",
                                 tp ? tp : (json_int_t)j->idx, "decode_time_ms",
                                 (json_int_t)json_number_value(json_object_get(tim, "predicted_ms")), "first_token_ms",
                                 (json_int_t)json_number_value(json_object_get(tim, "prompt_ms")), "stop_reason",
                                 reason));
    }
    http_resp_free(&r);
    http_stream_close(j->st);
    json_decref(j->final);
    free(j->upstream_body);
    free(j->prompt);
    free(j);
    pthread_mutex_lock(&L->mu);
    L->busy = 0;
    L->cur_job[0] = 0;
    L->jobs_running--;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void on_gone(void *user) {
    struct lcpp *L = user;
    atomic_store(&L->cancel, 1);
}

static void h_execute(http_req *r, void *user) {
    struct lcpp *L = user;
    ju_err e = { 0 };
    json_t *in = ju_parse_body(r, &e);
    const char *job_id = NULL, *prompt = NULL;
    size_t jl = 0, pl = 0;
    int64_t max_tokens = 2048, top_k = 0;
    double temp = 1.0, top_p = 1.0, min_p = 0.0, rep = 1.0;
    uint64_t seed = 0;
    json_t *stop = NULL;
    int has_seed = 0;
    int bad = !in || ju_string(in, "job_id", 1, 64, &job_id, &jl, &e) < 0 ||
              (!job_id_ok(job_id, jl) && ju_fail(&e, "job_id", "job_id must be 1-64 of [A-Za-z0-9_-]") < 0) ||
              ju_string(in, "prompt", 1, 32768, &prompt, &pl, &e) < 0 ||
              (pl == 0 && ju_fail(&e, "prompt", "prompt must not be empty") < 0) ||
              ju_int(in, "max_tokens", 0, 1, 1 << 24, &max_tokens, &e) < 0 ||
              ju_number(in, "temperature", 0, 0.0, 2.0, 0, &temp, &e) < 0 ||
              ju_number(in, "top_p", 0, 0.0, 1.0, 0, &top_p, &e) < 0 ||
              ju_int(in, "top_k", 0, 0, 1 << 24, &top_k, &e) < 0 ||
              ju_number(in, "min_p", 0, 0.0, 1.0, 0, &min_p, &e) < 0 ||
              ju_number(in, "repetition_penalty", 0, 0.0, 2.0, 1, &rep, &e) < 0 ||
              ju_array(in, "stop", 0, 4, &stop, &e) < 0 || (has_seed = ju_uint64(in, "seed", 0, &seed, &e)) < 0;
    for (size_t i = 0; !bad && stop && i < json_array_size(stop); i++)
        if (!json_is_string(json_array_get(stop, i))) bad = ju_fail(&e, "stop", "stop must be strings") < 0;
    if (bad) {
        char det[160];
        ju_err_details(&e, det, sizeof det);
        http_respond_error(r, ERR_INVALID_REQUEST, e.message, det);
        json_decref(in);
        return;
    }
    if (!has_seed) {
        char hx[9];
        pool_random_hex(hx, 4);
        seed = strtoull(hx, NULL, 16);
    }
    pthread_mutex_lock(&L->mu);
    if (L->busy) {
        pthread_mutex_unlock(&L->mu);
        http_respond_error(r, ERR_WORKER_BUSY, "a job is running (batch = 1)", NULL);
        json_decref(in);
        return;
    }
    L->busy = 1;
    L->jobs_running++;
    snprintf(L->cur_job, sizeof L->cur_job, "%s", job_id);
    atomic_store(&L->cancel, 0);
    pthread_mutex_unlock(&L->mu);

    struct lcpp_job *j = calloc(1, sizeof *j);
    json_t *stops = stop ? json_incref(stop) : json_array(); /* stolen by "o" below */
    json_t *up = json_pack("{s:s,s:I,s:f,s:f,s:I,s:f,s:f,s:i,s:o,s:I,s:b}", "prompt", prompt, "n_predict",
                           (json_int_t)max_tokens, "temperature", temp, "top_p", top_p, "top_k", (json_int_t)top_k,
                           "min_p", min_p, "repeat_penalty", rep, "repeat_last_n", 64, "stop",
                           stops, "seed", (json_int_t)seed, "stream", 1);
    if (j) {
        j->L = L;
        snprintf(j->job_id, sizeof j->job_id, "%s", job_id);
        snprintf(j->cid, sizeof j->cid, "%s", http_req_correlation_id(r));
        j->upstream_body = up ? json_dumps(up, JSON_COMPACT) : NULL;
        j->prompt = strdup(prompt);
        j->seed = seed;
    }
    json_decref(up);
    json_decref(in);
    pthread_t t;
    if (!j || !j->upstream_body || !j->prompt ||
        !(j->st = http_respond_stream(r, 200, "text/event-stream", on_gone, L)) ||
        pthread_create(&t, NULL, job_main, j) != 0) {
        if (j && j->st) {
            emit_error(j, "INTERNAL", "cannot start the job", 1);
            http_stream_close(j->st);
        } else {
            http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
        }
        if (j) {
            free(j->upstream_body);
            free(j->prompt);
            free(j);
        }
        pthread_mutex_lock(&L->mu);
        L->busy = 0;
        L->jobs_running--;
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
        return;
    }
    pthread_detach(t);
}

static void h_cancel(http_req *r, void *user) {
    struct lcpp *L = user;
    ju_err e = { 0 };
    json_t *in = ju_parse_body(r, &e);
    const char *id = NULL;
    if (!in || ju_string(in, "job_id", 1, 64, &id, NULL, &e) < 0) {
        http_respond_error(r, ERR_INVALID_REQUEST, e.message, NULL);
        json_decref(in);
        return;
    }
    pthread_mutex_lock(&L->mu);
    if (L->busy && !strcmp(L->cur_job, id)) atomic_store(&L->cancel, 1);
    pthread_mutex_unlock(&L->mu);
    json_decref(in);
    http_respond_json(r, 202, "{\"status\":\"cancelling\"}");
}

static void h_health(http_req *r, void *user) {
    struct lcpp *L = user;
    char url[128];
    snprintf(url, sizeof url, "%s/health", L->upstream);
    http_client_req rq = { .url = url, .timeout_ms = 2000 };
    http_resp up;
    char e[128];
    int ok = http_client_do(&rq, &up, e, sizeof e) == 0 && up.status == 200;
    http_resp_free(&up);
    pthread_mutex_lock(&L->mu);
    int busy = L->busy;
    pthread_mutex_unlock(&L->mu);
    json_t *o = json_pack("{s:s,s:b,s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:s}", "status", ok ? "healthy" : "unhealthy",
                          "resident", ok, "worker_id", L->worker_id, "worker_type", "llamacpp", "memory_architecture",
                          L->memarch, "model_ref", L->model_ref, "model", L->model_ref, "busy", busy, "uptime_seconds",
                          (json_int_t)((util_now_ns() - L->start_ns) / 1000000000ull), "upstream", L->upstream);
    char *s = json_dumps(o, JSON_COMPACT);
    http_respond_json(r, ok ? 200 : 503, s ? s : "{}");
    free(s);
    json_decref(o);
}

int lcpp_proxy_start(struct lcpp *L, char *uri, size_t cap, char *err, size_t errlen) {
    http_server_opts o = { .bind = "127.0.0.1", .port = 0, .threads = 1, .component = "llamacpp-proxy",
                           .max_body_bytes = 256 * 1024 };
    int rc = http_server_new(&o, &L->proxy, err, errlen);
    if (rc < 0) return rc;
    http_server_route(L->proxy, "POST", "/execute", h_execute, L);
    http_server_route(L->proxy, "POST", "/cancel", h_cancel, L);
    http_server_route(L->proxy, "GET", "/health", h_health, L);
    rc = http_server_start(L->proxy, err, errlen);
    if (rc < 0) {
        http_server_free(L->proxy);
        L->proxy = NULL;
        return rc;
    }
    snprintf(uri, cap, "http://127.0.0.1:%d", http_server_port(L->proxy));
    return 0;
}

void lcpp_proxy_stop(struct lcpp *L) {
    atomic_store(&L->cancel, 1);
    http_server_free(L->proxy); /* streams stay valid for their job threads */
    L->proxy = NULL;
    pthread_mutex_lock(&L->mu);
    while (L->jobs_running > 0) pthread_cond_wait(&L->cv, &L->mu);
    pthread_mutex_unlock(&L->mu);
}
