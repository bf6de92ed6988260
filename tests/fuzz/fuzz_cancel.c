// test-libs: llorch_net llorch_engine llorch_tok llorch_gguf llorch_core PkgConfig::JANSSON
/* libFuzzer target: the worker's POST /cancel handler (h_cancel in
 * src/worker/api.c, compiled into this target with the HTTP request and
 * response calls redirected to an in-memory fake) on arbitrary bodies.
 *
 * Invariants: exactly one response; a 202 is a JSON object whose job_id is
 * the body's and whose status is "not_running" (no job runs here); any other
 * answer is a 400 INVALID_REQUEST whose error body (err_json_body, as
 * http_respond_error builds it) is valid JSON naming the field. Never a
 * crash, leak or UB. (The job_id that used to reach the 202 body
 * unescaped, tests/fuzz/findings/fuzz_cancel/README.md, is refused now: a
 * 202's id passes the /execute rule, so the body check is unconditional.) */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "fuzz_worker_stub.h"

/* ---- the fake request/response ------------------------------------------------ */
struct fz_req {
    const char *body;
    size_t len;
    int responses, status;
    char out[8192];
    size_t out_len;
};

static const char *fz_req_body(const http_req *r, size_t *len) {
    const struct fz_req *q = (const struct fz_req *)r;
    *len = q->len;
    return q->body;
}
static const char *fz_req_correlation_id(http_req *r) {
    (void)r;
    return "fuzz-cid";
}
static const char *fz_req_header(const http_req *r, const char *name) {
    (void)r;
    (void)name;
    return NULL;
}
static int fz_respond(http_req *r, int status, const char *content_type, const char *body, size_t len) {
    (void)content_type;
    struct fz_req *q = (struct fz_req *)r;
    q->responses++;
    q->status = status;
    q->out_len = len < sizeof q->out ? len : sizeof q->out - 1;
    memcpy(q->out, body, q->out_len);
    q->out[q->out_len] = 0;
    return 0;
}
static int fz_respond_json(http_req *r, int status, const char *json) {
    return fz_respond(r, status, "application/json", json, strlen(json));
}
static int fz_respond_error(http_req *r, enum err_code code, const char *message, const char *details_json) {
    char body[4096]; /* http_respond_error_status's buffer */
    size_t n = err_json_body(code, message, details_json, "fuzz-cid", body, sizeof body);
    return fz_respond(r, err_http_status(code), "application/json", body, n);
}
static http_stream *fz_respond_stream(http_req *r, int status, const char *content_type, http_gone_fn on_gone,
                                      void *user) {
    (void)r, (void)status, (void)content_type, (void)on_gone, (void)user;
    return NULL;
}

#define http_req_body fz_req_body
#define http_req_correlation_id fz_req_correlation_id
#define http_req_header fz_req_header
#define http_respond fz_respond
#define http_respond_json fz_respond_json
#define http_respond_error fz_respond_error
#define http_respond_stream fz_respond_stream
/* api.c's h_shutdown calls main.c's stop request, which this target does
 * not link (h_shutdown is never called here) */
void wk_request_stop(void) {}
#include "worker/api.c"
#undef http_req_body
#undef http_req_correlation_id
#undef http_req_header
#undef http_respond
#undef http_respond_json
#undef http_respond_error
#undef http_respond_stream

#define FZ_NAME "fuzz_cancel"
#include "fuzz_check.h"

static worker W;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(LOG_ERROR); /* the handler logs every cancel at INFO */
    memset(&W, 0, sizeof W);
    pthread_mutex_init(&W.mu, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 40000) return 0;
    struct fz_req q = { .body = (const char *)data, .len = size };
    h_cancel((http_req *)&q, &W);
    CHECK(q.responses == 1);
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    json_t *id = json_object_get(in, "job_id");
    if (q.status == 202) {
        CHECK(json_is_string(id) && json_string_length(id) >= 1 && json_string_length(id) <= 64);
        CHECK(wk_valid_job_id(json_string_value(id), json_string_length(id)));
        json_t *o = json_loadb(q.out, q.out_len, JSON_REJECT_DUPLICATES, NULL);
        if (!o) fprintf(stderr, "fuzz_cancel: invalid 202 body: %s\n", q.out);
        CHECK(json_is_object(o));
        json_t *oid = json_object_get(o, "job_id");
        CHECK(json_is_string(oid) && json_string_length(oid) == json_string_length(id) &&
              !memcmp(json_string_value(oid), json_string_value(id), json_string_length(id)));
        CHECK(json_is_string(json_object_get(o, "status")) &&
              !strcmp(json_string_value(json_object_get(o, "status")), "not_running"));
        json_decref(o);
    } else {
        CHECK(q.status == 400);
        CHECK(!(json_is_string(id) && wk_valid_job_id(json_string_value(id), json_string_length(id))));
        json_t *o = json_loadb(q.out, q.out_len, JSON_REJECT_DUPLICATES, NULL);
        CHECK(json_is_object(o));
        json_t *err = json_object_get(o, "error");
        CHECK(json_is_string(json_object_get(err, "code")) &&
              !strcmp(json_string_value(json_object_get(err, "code")), "INVALID_REQUEST"));
        json_t *f = json_object_get(json_object_get(err, "details"), "field");
        CHECK(json_is_string(f) && (!strcmp(json_string_value(f), "job_id") || !strcmp(json_string_value(f), "body")));
        json_decref(o);
    }
    json_decref(in);
    return 0;
}
