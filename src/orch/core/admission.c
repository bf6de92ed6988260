/* admission — see admission.h. jansson parses with JSON_REJECT_DUPLICATES
 * (a duplicated key is ambiguous: refused) and rejects invalid UTF-8 and
 * \u0000 by default. */
#include "orch/core/admission.h"

#include "common/err.h"
#include "common/util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ADM_DEFAULT_MAX_TOKENS 2048

static int fail(struct adm_error *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct adm_error *e, int code, const char *field, const char *fmt, ...) {
    e->code = code;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static uint64_t default_seed(void) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = util_now_ns() ^ 0x9e3779b97f4a7c15ull;
    /* 53 bits, as the worker generates them: a generated seed survives every
     * JSON parser, JavaScript's doubles included, so clients can echo it */
    return s & ((1ull << 53) - 1);
}

static int get_number(json_t *v, double *out) {
    if (json_is_integer(v)) *out = (double)json_integer_value(v);
    else if (json_is_real(v)) *out = json_real_value(v);
    else return -1;
    return isfinite(*out) ? 0 : -1;
}

static int opt_float(json_t *o, const char *k, double def, double lo, double hi, int lo_open, double *out,
                     struct adm_error *e) {
    json_t *v = json_object_get(o, k);
    *out = def;
    if (!v) return 0;
    if (get_number(v, out) < 0) return fail(e, ERR_INVALID_REQUEST, k, "%s must be a number", k);
    if ((lo_open ? *out <= lo : *out < lo) || *out > hi)
        return fail(e, ERR_INVALID_REQUEST, k, "%s must be in %s%g, %g]", k, lo_open ? "(" : "[", lo, hi);
    return 0;
}

static int opt_int(json_t *o, const char *k, int64_t def, int64_t lo, int64_t hi, int64_t *out, struct adm_error *e) {
    json_t *v = json_object_get(o, k);
    *out = def;
    if (!v) return 0;
    if (!json_is_integer(v)) return fail(e, ERR_INVALID_REQUEST, k, "%s must be an integer", k);
    *out = json_integer_value(v);
    if (*out < lo || *out > hi)
        return fail(e, ERR_INVALID_REQUEST, k, "%s must be in [%lld, %lld]", k, (long long)lo, (long long)hi);
    return 0;
}

static int parse_seed(json_t *v, uint64_t *out, struct adm_error *e) {
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0) return fail(e, ERR_INVALID_REQUEST, "seed", "seed must be 0..2^64-1");
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_string(v)) { /* JSON integers above 2^63-1 travel as strings */
        const char *s = json_string_value(v);
        char *end;
        if (!*s || *s == '-' || *s == '+' || strlen(s) > 20) return fail(e, ERR_INVALID_REQUEST, "seed", "seed must be 0..2^64-1");
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (errno || *end) return fail(e, ERR_INVALID_REQUEST, "seed", "seed must be 0..2^64-1");
        *out = u;
        return 0;
    }
    return fail(e, ERR_INVALID_REQUEST, "seed", "seed must be an integer");
}

void adm_task_free(struct adm_task *t) {
    if (!t) return;
    free(t->prompt);
    for (size_t i = 0; i < t->nstop; i++) free(t->stop[i]);
    memset(t, 0, sizeof *t);
}

static int parse(json_t *o, const struct catalog *cat, const struct adm_limits *lim, uint64_t (*seed_fn)(void),
                 struct adm_task *t, struct adm_error *e) {
    static const char *known[] = { "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p",
                                   "repetition_penalty", "stop", "seed", "priority", "session_id", "timeout_ms",
                                   "capability", NULL };
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val) {
        int ok = 0;
        for (int i = 0; known[i] && !ok; i++) ok = strcmp(key, known[i]) == 0;
        if (!ok) return fail(e, ERR_INVALID_REQUEST, key, "unknown field '%.64s'", key);
    }
    /* model */
    json_t *m = json_object_get(o, "model");
    if (!json_is_string(m) || !json_string_length(m))
        return fail(e, ERR_INVALID_REQUEST, "model", "model is required (a catalog alias or an hf:/file: ref)");
    const char *name = json_string_value(m);
    t->model = cat_find(cat, name);
    if (t->model) {
        snprintf(t->model_ref, sizeof t->model_ref, "%s", t->model->model_ref);
        t->context_length = t->model->context_length;
    } else if (cat_ref_valid(name)) {
        snprintf(t->model_ref, sizeof t->model_ref, "%s", name);
        t->context_length = lim->default_context_length > 0 ? lim->default_context_length : 4096;
    } else {
        return fail(e, ERR_MODEL_NOT_FOUND, "model", "model '%.128s' is not in the catalog and is not an hf:/file: ref",
                    name);
    }
    /* capability */
    json_t *c = json_object_get(o, "capability");
    t->capability = CAP_TEXT_GEN;
    if (c) {
        if (!json_is_string(c) || !(t->capability = job_cap_parse(json_string_value(c))))
            return fail(e, ERR_INVALID_REQUEST, "capability",
                        "capability must be one of text-gen, image-gen, audio-gen, embedding, multimodal");
    }
    unsigned model_caps = t->model ? t->model->caps : CAP_TEXT_GEN;
    if (!(model_caps & t->capability))
        return fail(e, ERR_INVALID_REQUEST, "capability", "model '%.128s' does not offer %s", name,
                    job_cap_name(t->capability));
    /* prompt */
    json_t *p = json_object_get(o, "prompt");
    if (!json_is_string(p) || json_string_length(p) == 0)
        return fail(e, ERR_INVALID_REQUEST, "prompt", "prompt must be a non-empty string");
    size_t plen = json_string_length(p);
    const char *ps = json_string_value(p);
    size_t maxp = lim->max_prompt_bytes ? lim->max_prompt_bytes : 32768;
    if (plen > maxp) return fail(e, ERR_INVALID_REQUEST, "prompt", "prompt is %zu bytes; the limit is %zu", plen, maxp);
    if (memchr(ps, 0, plen) || !util_utf8_valid(ps, plen))
        return fail(e, ERR_INVALID_REQUEST, "prompt", "prompt must be valid UTF-8 without NUL");
    t->prompt = malloc(plen + 1);
    if (!t->prompt) return fail(e, ERR_INTERNAL, NULL, "out of memory");
    memcpy(t->prompt, ps, plen + 1);
    t->prompt_len = plen;
    t->prompt_tokens_est = (int64_t)plen + 2;
    /* max_tokens vs context */
    int64_t room = t->context_length - t->prompt_tokens_est;
    if (room < 1)
        return fail(e, ERR_CONTEXT_LENGTH_EXCEEDED, "prompt",
                    "prompt (estimated %lld tokens) does not fit the context of %lld tokens",
                    (long long)t->prompt_tokens_est, (long long)t->context_length);
    if (opt_int(o, "max_tokens", UTIL_MIN((int64_t)ADM_DEFAULT_MAX_TOKENS, room), 1, INT32_MAX, &t->max_tokens, e) < 0)
        return -EINVAL;
    if (t->prompt_tokens_est + t->max_tokens > t->context_length)
        return fail(e, ERR_CONTEXT_LENGTH_EXCEEDED, "max_tokens",
                    "prompt (estimated %lld tokens) + max_tokens %lld exceeds the context of %lld tokens",
                    (long long)t->prompt_tokens_est, (long long)t->max_tokens, (long long)t->context_length);
    /* sampling */
    if (opt_float(o, "temperature", 1.0, 0.0, 2.0, 0, &t->temperature, e) < 0 ||
        opt_float(o, "top_p", 1.0, 0.0, 1.0, 0, &t->top_p, e) < 0 ||
        opt_float(o, "min_p", 0.0, 0.0, 1.0, 0, &t->min_p, e) < 0 ||
        opt_float(o, "repetition_penalty", 1.0, 0.0, 2.0, 1, &t->repetition_penalty, e) < 0 ||
        opt_int(o, "top_k", 0, 0, 1000000, &t->top_k, e) < 0)
        return -EINVAL;
    json_t *st = json_object_get(o, "stop");
    if (st) {
        if (!json_is_array(st) || json_array_size(st) > ADM_MAX_STOP)
            return fail(e, ERR_INVALID_REQUEST, "stop", "stop must be a list of at most %d strings", ADM_MAX_STOP);
        for (size_t i = 0; i < json_array_size(st); i++) {
            json_t *s = json_array_get(st, i);
            if (!json_is_string(s) || json_string_length(s) == 0 || json_string_length(s) > ADM_STOP_MAX_BYTES ||
                memchr(json_string_value(s), 0, json_string_length(s)))
                return fail(e, ERR_INVALID_REQUEST, "stop", "stop[%zu] must be a non-empty string of at most %d bytes",
                            i, ADM_STOP_MAX_BYTES);
            if (!(t->stop[t->nstop] = strdup(json_string_value(s)))) return fail(e, ERR_INTERNAL, NULL, "out of memory");
            t->nstop++;
        }
    }
    /* seed */
    json_t *sd = json_object_get(o, "seed");
    if (sd) {
        if (parse_seed(sd, &t->seed, e) < 0) return -EINVAL;
        t->seed_given = 1;
    } else {
        t->seed = (seed_fn ? seed_fn : default_seed)();
    }
    /* priority, session, timeout */
    json_t *pr = json_object_get(o, "priority");
    t->prio = JOB_PRIO_INTERACTIVE;
    if (pr) {
        int v = json_is_string(pr) ? job_prio_parse(json_string_value(pr)) : -1;
        if (v < 0) return fail(e, ERR_INVALID_REQUEST, "priority", "priority must be interactive or batch");
        t->prio = (enum job_prio)v;
    }
    json_t *ss = json_object_get(o, "session_id");
    if (ss) {
        if (!json_is_string(ss) || !job_id_valid(json_string_value(ss), JOB_SESSION_MAX))
            return fail(e, ERR_INVALID_REQUEST, "session_id", "session_id must be 1..%d chars of [A-Za-z0-9_.:-]",
                        JOB_SESSION_MAX);
        snprintf(t->session_id, sizeof t->session_id, "%s", json_string_value(ss));
    }
    int64_t maxt = lim->max_timeout_ms > 0 ? lim->max_timeout_ms : 1800000;
    int64_t deft = lim->default_timeout_ms > 0 ? UTIL_MIN(lim->default_timeout_ms, maxt) : UTIL_MIN(300000, maxt);
    if (opt_int(o, "timeout_ms", deft, 1, maxt, &t->timeout_ms, e) < 0) return -EINVAL;
    return 0;
}

int adm_parse_task(const char *body, size_t len, const struct catalog *cat, const struct adm_limits *lim,
                   uint64_t (*seed_fn)(void), struct adm_task *out, struct adm_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    json_error_t je;
    json_t *o = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!o) return fail(e, ERR_INVALID_REQUEST, NULL, "body is not valid JSON: %s", body ? je.text : "empty");
    int rc;
    if (!json_is_object(o)) rc = fail(e, ERR_INVALID_REQUEST, NULL, "body must be a JSON object");
    else rc = parse(o, cat, lim, seed_fn, out, e);
    json_decref(o);
    if (rc < 0) adm_task_free(out);
    return rc;
}

/* ---- serialisation --------------------------------------------------------- */
static json_t *sampling_object(const struct adm_task *t) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "max_tokens", json_integer(t->max_tokens));
    json_object_set_new(o, "temperature", json_real(t->temperature));
    json_object_set_new(o, "top_p", json_real(t->top_p));
    json_object_set_new(o, "top_k", json_integer(t->top_k));
    json_object_set_new(o, "min_p", json_real(t->min_p));
    json_object_set_new(o, "repetition_penalty", json_real(t->repetition_penalty));
    json_t *st = json_array();
    for (size_t i = 0; st && i < t->nstop; i++) json_array_append_new(st, json_string(t->stop[i]));
    json_object_set_new(o, "stop", st ? st : json_array());
    return o;
}

int adm_params_json(const struct adm_task *t, char *out, size_t cap) {
    json_t *o = sampling_object(t);
    if (!o) return -ENOMEM;
    json_object_set_new(o, "priority", json_string(job_prio_name(t->prio)));
    json_object_set_new(o, "timeout_ms", json_integer(t->timeout_ms));
    json_object_set_new(o, "capability", json_string(job_cap_name(t->capability)));
    size_t n = json_dumpb(o, out, cap, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (n == 0 || n >= cap) return -ENOSPC;
    out[n] = 0;
    return (int)n;
}

char *adm_execute_body(const struct adm_task *t, const char *job_id) {
    json_t *o = sampling_object(t);
    if (!o) return NULL;
    json_object_set_new(o, "job_id", json_string(job_id));
    json_object_set_new(o, "prompt", json_stringn(t->prompt, t->prompt_len));
    /* jansson integers are int64: a seed above 2^63-1 travels as its exact
     * decimal digits in a string, which the worker's /execute accepts (a bare
     * number that large is refused by jansson-based readers) */
    if (t->seed > (uint64_t)INT64_MAX) {
        char digits[24];
        snprintf(digits, sizeof digits, "%llu", (unsigned long long)t->seed);
        json_object_set_new(o, "seed", json_string(digits));
    } else {
        json_object_set_new(o, "seed", json_integer((json_int_t)t->seed));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}
