// test-libs: llorch_orchcore llorch_config llorch_net llorch_engine llorch_tok llorch_gguf llorch_core PkgConfig::JANSSON
/* libFuzzer target: POST /v2/tasks bodies through the orchestrator's
 * admission (src/orch/core/admission.c) with a small fixed catalog, checked
 * field by field against an independent jansson parse of the body, and then
 * the contract with the worker: the /execute body that admission builds for
 * an admitted task goes through the worker's own validation
 * (src/worker/validate.c, see fuzz_worker_stub.h) with the task's context.
 * fuzz_orch_admission is the lighter sibling (codes, valid JSON).
 *
 * Invariants:
 *   admitted: the model is the catalog entry the body names (alias or ref) or
 *     a valid hf:/file: ref copied whole; the prompt is the body's (non-empty,
 *     valid UTF-8, no NUL, <= max_prompt_bytes); estimate = bytes + 2;
 *     1 <= max_tokens, estimate + max_tokens <= context; every sampling value
 *     in range and equal to the body's when given; stops are the body's (<= 4,
 *     1..256 bytes); seed kept when given; priority, session_id, timeout_ms
 *     and capability valid and offered by the model. adm_params_json is valid
 *     JSON with the same values. The worker accepts the /execute body, except
 *     for the two bounds only it can check: stop strings over 32 tokens and
 *     top_k over its vocabulary (admission's prompt estimate is an upper
 *     bound, so the worker never refuses for context).
 *   refused: a known code with a message; a field, when named, is a body key
 *     (or a prefix of one); the error body the orchestrator sends
 *     (orch_respond_adm_error's details, then err_json_body) is valid JSON.
 *
 * Its findings (tests/fuzz/findings/fuzz_admission/README.md) are fixed and
 * their inputs are in the corpus: every check applies to every input. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/err.h"
#include "common/util.h"
#include "fuzz_catalog.h"
#include "fuzz_worker_stub.h"
#include "orch/core/admission.h"

#define FZ_NAME "fuzz_admission"
#include "fuzz_check.h"

static struct catalog *CAT;
static worker W;
static const struct adm_limits LIM = { .default_timeout_ms = 1000, .max_timeout_ms = 5000,
                                       .default_context_length = 256, .max_prompt_bytes = 4096 };
#define FIXED_SEED 4242u
static uint64_t fixed_seed(void) { return FIXED_SEED; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    CAT = fz_catalog("fuzz_admission",
                     "models:\n"
                     "  qwen: {model_ref: 'hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF::file=q.gguf', context_length: 128}\n"
                     "  big: {model_ref: 'file:/m/llama-3.gguf', context_length: 8192, capabilities: [text-gen, "
                     "multimodal]}\n"
                     "  emb: {model_ref: 'file:/m/e.gguf', context_length: 64, capabilities: [embedding]}\n");
    fz_worker_init(&W, "fuzz_admission");
    return 0;
}

static json_t *member(json_t *o, const char *k) { return o ? json_object_get(o, k) : NULL; }

static int given_number(json_t *o, const char *k, double *out) {
    json_t *v = member(o, k);
    if (!v) return 0;
    CHECK(json_is_number(v));
    *out = json_number_value(v);
    return 1;
}

static void check_admitted(json_t *o, const struct adm_task *t) {
    CHECK(json_is_object(o));
    json_t *m = member(o, "model");
    CHECK(json_is_string(m));
    const struct cat_model *cm = cat_find(CAT, json_string_value(m));
    CHECK(t->model == cm);
    if (cm) {
        CHECK(!strcmp(t->model_ref, cm->model_ref) && t->context_length == cm->context_length);
    } else {
        CHECK(cat_ref_valid(json_string_value(m)) && !strcmp(t->model_ref, json_string_value(m)));
        CHECK(t->context_length == LIM.default_context_length);
    }
    json_t *p = member(o, "prompt");
    CHECK(json_is_string(p) && t->prompt && t->prompt_len == json_string_length(p));
    CHECK(!memcmp(t->prompt, json_string_value(p), t->prompt_len) && t->prompt[t->prompt_len] == 0);
    CHECK(t->prompt_len >= 1 && t->prompt_len <= LIM.max_prompt_bytes);
    CHECK(util_utf8_valid(t->prompt, t->prompt_len) && !memchr(t->prompt, 0, t->prompt_len));
    CHECK(t->prompt_tokens_est == (int64_t)t->prompt_len + 2);
    CHECK(t->max_tokens >= 1 && t->prompt_tokens_est + t->max_tokens <= t->context_length);
    double d;
    if (given_number(o, "max_tokens", &d)) CHECK(d == (double)t->max_tokens);
    CHECK(t->temperature >= 0 && t->temperature <= 2);
    CHECK(t->top_p >= 0 && t->top_p <= 1);
    CHECK(t->min_p >= 0 && t->min_p <= 1);
    CHECK(t->repetition_penalty > 0 && t->repetition_penalty <= 2);
    CHECK(t->top_k >= 0 && t->top_k <= 1000000);
    if (given_number(o, "temperature", &d)) CHECK(d == t->temperature);
    if (given_number(o, "top_p", &d)) CHECK(d == t->top_p);
    if (given_number(o, "min_p", &d)) CHECK(d == t->min_p);
    if (given_number(o, "repetition_penalty", &d)) CHECK(d == t->repetition_penalty);
    if (given_number(o, "top_k", &d)) CHECK(d == (double)t->top_k);
    json_t *st = member(o, "stop");
    CHECK(t->nstop <= ADM_MAX_STOP);
    CHECK(st ? json_array_size(st) == t->nstop : t->nstop == 0);
    for (size_t i = 0; i < t->nstop; i++) {
        json_t *s = json_array_get(st, i);
        size_t l = strlen(t->stop[i]);
        CHECK(l >= 1 && l <= ADM_STOP_MAX_BYTES && l == json_string_length(s) && !memcmp(t->stop[i], json_string_value(s), l));
    }
    json_t *sd = member(o, "seed");
    CHECK(t->seed_given == (sd != NULL));
    if (!sd) CHECK(t->seed == FIXED_SEED);
    else if (json_is_integer(sd)) CHECK(t->seed == (uint64_t)json_integer_value(sd));
    CHECK(t->prio == JOB_PRIO_INTERACTIVE || t->prio == JOB_PRIO_BATCH);
    json_t *ss = member(o, "session_id");
    if (ss) CHECK(json_is_string(ss) && !strcmp(t->session_id, json_string_value(ss)));
    else CHECK(t->session_id[0] == 0);
    CHECK(t->timeout_ms >= 1 && t->timeout_ms <= LIM.max_timeout_ms);
    if (!member(o, "timeout_ms")) CHECK(t->timeout_ms == LIM.default_timeout_ms);
    CHECK(t->capability && !(t->capability & (t->capability - 1)));
    CHECK(t->capability & (t->model ? t->model->caps : CAP_TEXT_GEN));

    /* jobs.params */
    char params[4096];
    int pn = adm_params_json(t, params, sizeof params);
    CHECK(pn > 0);
    json_t *pj = json_loadb(params, (size_t)pn, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(pj));
    CHECK(json_integer_value(json_object_get(pj, "max_tokens")) == t->max_tokens);
    CHECK(json_number_value(json_object_get(pj, "temperature")) == t->temperature);
    CHECK(json_array_size(json_object_get(pj, "stop")) == t->nstop);
    json_decref(pj);

    /* the worker's side of the contract */
    char *body = adm_execute_body(t, "job-1");
    CHECK(body != NULL);
    int big_seed = t->seed > (uint64_t)INT64_MAX;
    (void)big_seed; /* fixed: big seeds travel as decimal strings */
    {
        wk_job *j = calloc(1, sizeof *j);
        CHECK(j != NULL);
        enum err_code code = ERR_OK;
        char field[64] = "", msg[256] = "", details[256];
        fz_ctx = (int)t->context_length;
        int rc = wk_validate_execute(&W, body, strlen(body), j, &code, field, sizeof field, msg, sizeof msg, details,
                                     sizeof details);
        if (rc != 0) {
            int allowed = (!strcmp(field, "stop") && t->nstop > 0) ||
                          (!strcmp(field, "top_k") && t->top_k > tok_n_vocab(W.vocab));
            if (!allowed) fprintf(stderr, "fuzz_admission: worker refused the execute body (%s: %s): %s\n", field, msg, body);
            CHECK(allowed);
        } else {
            CHECK(j->max_tokens == t->max_tokens && j->n_prompt <= t->prompt_tokens_est);
            CHECK(j->sp.seed == t->seed && j->n_stops == (int)t->nstop);
            CHECK(!strcmp(j->job_id, "job-1"));
        }
        wk_job_free(j);
    }
    free(body);
}

/* orch_respond_adm_error (src/orch/api.c) as it builds the details */
#define ORCH_DET_CAP 256 /* as in src/orch/api.c */

static void check_refused(json_t *o, const struct adm_error *e) {
    CHECK(e->code > ERR_OK && e->code < ERR__COUNT);
    CHECK(e->code == ERR_INVALID_REQUEST || e->code == ERR_MODEL_NOT_FOUND || e->code == ERR_CONTEXT_LENGTH_EXCEEDED ||
          e->code == ERR_INTERNAL);
    CHECK(e->message[0]);
    if (e->field[0]) {
        CHECK(json_is_object(o));
        /* the field is a body key or the start of one (it is cut at 31 bytes) */
        int found = 0;
        const char *k;
        json_t *v;
        size_t fl = strlen(e->field);
        json_object_foreach(o, k, v) found |= !strncmp(k, e->field, fl) && (fl == strlen(k) || fl == sizeof e->field - 1);
        CHECK(found || !strcmp(e->field, "model") || !strcmp(e->field, "prompt") || !strcmp(e->field, "capability"));
    }
    char det[ORCH_DET_CAP] = "";
    if (e->field[0]) {
        struct util_sb sb;
        util_sb_init_fixed(&sb, det, sizeof det);
        util_sb_puts(&sb, "{\"field\":");
        util_sb_json_str(&sb, e->field);
        util_sb_putc(&sb, '}');
        CHECK(!sb.trunc);
    }
    char body[4096];
    size_t n = err_json_body((enum err_code)e->code, e->message, det[0] ? det : NULL, "cid", body, sizeof body);
    CHECK(n < sizeof body);
    json_t *b = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
    if (!b) fprintf(stderr, "fuzz_admission: invalid error body: %s\n", body);
    CHECK(json_is_object(b));
    json_decref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 40000) return 0;
    struct adm_task t;
    struct adm_error e;
    int rc = adm_parse_task((const char *)data, size, CAT, &LIM, fixed_seed, &t, &e);
    json_t *o = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (rc == 0) {
        check_admitted(o, &t);
        adm_task_free(&t);
    } else {
        CHECK(rc < 0);
        CHECK(t.prompt == NULL && t.nstop == 0); /* freed on failure */
        check_refused(o, &e);
    }
    json_decref(o);
    return 0;
}
