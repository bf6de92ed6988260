// test-libs: llorch_net llorch_engine llorch_tok llorch_gguf llorch_core PkgConfig::JANSSON
/* libFuzzer target: the worker's POST /execute body validation
 * (src/worker/validate.c, SPEC §3.4) on arbitrary bytes. The worker is a
 * program, not a library, so validate.c is compiled into this target with
 * eng_session_n_ctx redirected to a fixed context (no model is loaded); the
 * tokenizer is real: stories260K (LLORCH_MODELS_DIR or ../shared/models),
 * else a small synthetic SPM vocabulary with all 256 byte tokens.
 *
 * Invariants, checked against an independent jansson parse of the body:
 *   accepted: job_id is 1-64 chars of [A-Za-z0-9_-] and equals the body's;
 *     the body's prompt is a non-empty valid UTF-8 string <= 32768 bytes with
 *     no NUL; 1 <= n_prompt, every id < n_vocab, n_prompt + max_tokens <=
 *     n_ctx, max_tokens >= 1 (and equals the body's when given); every
 *     sampling value is in range and equals the body's when given; stops are
 *     the body's (<= 4, non-empty); a given seed is kept, a generated one is
 *     < 2^53.
 *   refused: the field is one of the body's known fields (or "body"), the
 *     message is non-empty, the code is INVALID_REQUEST or INTERNAL, the
 *     details are a JSON object naming the field, and the whole error body
 *     the worker would send (err_json_body, as http_respond_error builds it)
 *     is valid JSON.
 *   stop filter (stop.c): an accepted job's stop strings applied to its
 *     prompt text fed in pieces never release a stop string (see
 *     check_stop_filter).
 *   always: no crash, leak or UB (ASan/UBSan/LSan). */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json_util.h"
#include "fuzz_worker_stub.h"
#include "worker/stop.c" /* the stop-string filter, also part of the worker program */

#define FZ_N_CTX 96

/* ---- checks ------------------------------------------------------------------ */
#define FZ_NAME "fuzz_execute"
#include "fuzz_check.h"

static json_t *member(json_t *o, const char *k) {
    json_t *v = o ? json_object_get(o, k) : NULL;
    return json_is_null(v) ? NULL : v;
}

/* the body's number k, when given; the check then compares with what was kept */
static int given_number(json_t *o, const char *k, double *out) {
    json_t *v = member(o, k);
    if (!v) return 0;
    CHECK(json_is_number(v)); /* a known field of another type is refused */
    *out = json_number_value(v);
    return 1;
}

static void check_accepted(json_t *o, const wk_job *j, int n_vocab) {
    CHECK(o && json_is_object(o));
    size_t jl = strlen(j->job_id);
    CHECK(jl >= 1 && jl <= 64);
    for (size_t i = 0; i < jl; i++) {
        unsigned char c = (unsigned char)j->job_id[i];
        CHECK((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '-');
    }
    json_t *id = member(o, "job_id");
    CHECK(json_is_string(id) && json_string_length(id) == jl && !memcmp(json_string_value(id), j->job_id, jl));

    json_t *p = member(o, "prompt");
    CHECK(json_is_string(p));
    size_t pl = json_string_length(p);
    CHECK(pl >= 1 && pl <= WK_MAX_PROMPT_BYTES);
    CHECK(util_utf8_valid(json_string_value(p), pl) && !memchr(json_string_value(p), 0, pl));

    CHECK(j->prompt && j->n_prompt >= 1);
    for (int i = 0; i < j->n_prompt; i++) CHECK(j->prompt[i] >= 0 && j->prompt[i] < n_vocab);
    CHECK(j->max_tokens >= 1);
    CHECK((int64_t)j->n_prompt + j->max_tokens <= FZ_N_CTX);
    double d;
    if (given_number(o, "max_tokens", &d)) CHECK(d == (double)j->max_tokens);
    else CHECK(j->max_tokens <= WK_DEFAULT_MAX_TOKENS);

    const eng_sampling_params *sp = &j->sp;
    CHECK(isfinite(sp->temperature) && sp->temperature >= 0.0f && sp->temperature <= 2.0f);
    CHECK(isfinite(sp->top_p) && sp->top_p >= 0.0f && sp->top_p <= 1.0f);
    CHECK(sp->top_k >= 0 && sp->top_k <= n_vocab);
    CHECK(isfinite(sp->min_p) && sp->min_p >= 0.0f && sp->min_p <= 1.0f);
    CHECK(isfinite(sp->repeat_penalty) && sp->repeat_penalty > 0.0f && sp->repeat_penalty <= 2.0f);
    if (given_number(o, "temperature", &d)) CHECK(sp->temperature == (float)d);
    if (given_number(o, "top_p", &d)) CHECK(sp->top_p == (float)d);
    if (given_number(o, "top_k", &d)) CHECK(d == (double)sp->top_k);
    if (given_number(o, "min_p", &d)) CHECK(sp->min_p == (float)d);
    if (given_number(o, "repetition_penalty", &d)) CHECK(sp->repeat_penalty == (float)d);

    json_t *seed = member(o, "seed");
    if (!seed) CHECK(sp->seed < (1ull << 53));
    else if (json_is_integer(seed)) CHECK(json_integer_value(seed) >= 0 && sp->seed == (uint64_t)json_integer_value(seed));
    else CHECK(json_is_string(seed) && json_string_length(seed) >= 1 && json_string_length(seed) <= 20);

    json_t *st = member(o, "stop");
    CHECK(j->n_stops >= 0 && j->n_stops <= WK_MAX_STOPS);
    if (!st) {
        CHECK(j->n_stops == 0);
    } else {
        CHECK(json_is_array(st) && json_array_size(st) == (size_t)j->n_stops);
        for (int i = 0; i < j->n_stops; i++) {
            json_t *s = json_array_get(st, (size_t)i);
            CHECK(json_is_string(s) && j->stops[i] && strlen(j->stops[i]) == json_string_length(s) &&
                  strlen(j->stops[i]) >= 1 && !memcmp(j->stops[i], json_string_value(s), json_string_length(s)));
        }
    }
}

/* The stop filter (stop.c) with the accepted stop strings, fed the prompt
 * text as if it were generated, in pieces of 1..8 UTF-8 characters (the
 * job thread pushes complete UTF-8 text). Whatever the split: the released
 * text is a prefix of the input holding no stop string; on a hit the input
 * continues with a stop string right there; without one everything comes
 * out and no stop string occurs in the input. */
static void check_stop_filter(const wk_job *j, const char *text, size_t n) {
    wk_stop st;
    wk_stop_init(&st, (const char *const *)j->stops, j->n_stops);
    struct util_sb out;
    util_sb_init(&out);
    size_t step = 1 + (size_t)(j->sp.seed % 8), i = 0;
    int hit = 0;
    while (i < n && !hit) {
        size_t e = i;
        for (size_t c = 0; c < step && e < n; c++) {
            e++;
            while (e < n && ((unsigned char)text[e] & 0xC0) == 0x80) e++;
        }
        hit = wk_stop_push(&st, text + i, e - i, &out);
        i = e;
    }
    if (!hit) wk_stop_flush(&st, &out);
    wk_stop_free(&st);
    CHECK(!out.oom);
    CHECK(out.len <= n && (out.len == 0 || !memcmp(out.buf, text, out.len)));
    CHECK(util_utf8_valid(out.buf ? out.buf : "", out.len));
    for (int k = 0; k < j->n_stops; k++) {
        size_t sl = strlen(j->stops[k]);
        CHECK(out.len == 0 || !memmem(out.buf, out.len, j->stops[k], sl));
        if (!hit) CHECK(!memmem(text, n, j->stops[k], sl));
    }
    if (hit) {
        int at = 0;
        for (int k = 0; k < j->n_stops; k++) {
            size_t sl = strlen(j->stops[k]);
            at |= out.len + sl <= n && !memcmp(text + out.len, j->stops[k], sl);
        }
        CHECK(at);
    } else {
        CHECK(out.len == n);
    }
    util_sb_free(&out);
}

static void check_refused(json_t *o, enum err_code code, const char *field, const char *msg, const char *details) {
    static const char *const known[] = { "body",  "job_id", "prompt",  "max_tokens",         "temperature",
                                         "top_p", "top_k",  "min_p",   "repetition_penalty", "seed",
                                         "stop",  NULL };
    int ok = 0;
    for (int i = 0; known[i]; i++) ok |= !strcmp(field, known[i]);
    CHECK(ok);
    CHECK(!strcmp(field, "body") || (o && json_is_object(o))); /* only a non-object body is refused as "body" */
    CHECK(msg[0]);
    CHECK(code == ERR_INVALID_REQUEST || code == ERR_INTERNAL);
    json_t *d = json_loads(details, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(d));
    json_t *df = json_object_get(d, "field");
    CHECK(json_is_string(df) && !strcmp(json_string_value(df), field));
    json_decref(d);
    char body[4096]; /* http_respond_error's buffer */
    size_t n = err_json_body(code, msg, details, "fuzz-cid", body, sizeof body);
    CHECK(n < sizeof body);
    json_t *b = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(b));
    json_decref(b);
}

static worker W;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fz_ctx = FZ_N_CTX;
    fz_worker_init(&W, "fuzz_execute");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 40000) return 0; /* the largest valid body is a 32 KiB prompt plus fields */
    wk_job *j = calloc(1, sizeof *j);
    if (!j) return 0;
    enum err_code code = ERR_OK;
    char field[64], msg[256], details[256]; /* api.c's buffers */
    field[0] = msg[0] = 0;
    int rc = wk_validate_execute(&W, (const char *)data, size, j, &code, field, sizeof field, msg, sizeof msg, details,
                                 sizeof details);
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (rc == 0) {
        check_accepted(o, j, tok_n_vocab(W.vocab));
        json_t *p = json_object_get(o, "prompt");
        check_stop_filter(j, json_string_value(p), json_string_length(p));
    }
    else check_refused(o, code, field, msg, details);
    json_decref(o);
    wk_job_free(j);
    return 0;
}
