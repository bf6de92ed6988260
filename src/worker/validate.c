/* validate — POST /execute body → wk_job (SPEC §3.4 table). Everything is
 * checked before any inference; the first invalid field is reported by
 * name. Unknown fields are ignored; a known field of the wrong type is an
 * error; JSON null means "absent". */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_util.h"
#include "worker/worker.h"

void wk_job_free(wk_job *j) {
    if (!j) return;
    free(j->prompt);
    for (int i = 0; i < j->n_stops; i++) free(j->stops[i]);
    free(j);
}

int wk_valid_job_id(const char *s, size_t n) {
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-')) return 0;
    return 1;
}

static uint64_t gen_seed(void) {
    char u[37];
    http_uuid4(u); /* getrandom-backed; 53 bits so JavaScript clients can echo it exactly */
    uint64_t x = 0;
    for (int i = 0; u[i]; i++)
        if (u[i] != '-') x = x * 16 + (uint64_t)(isdigit((unsigned char)u[i]) ? u[i] - '0' : u[i] - 'a' + 10);
    return x & ((1ull << 53) - 1);
}

int wk_validate_execute(worker *w, const char *body, size_t len, wk_job *j, enum err_code *code, char *field,
                        size_t fieldcap, char *msg, size_t msgcap, char *details, size_t dcap) {
    ju_err e = {{0}, {0}};
    int rc = -1;
    *code = ERR_INVALID_REQUEST;
    details[0] = 0;
    json_t *o = ju_parse_object(body, len, &e);
    if (!o) goto out;
    const int n_ctx = eng_session_n_ctx(w->sess);
    const int n_vocab = tok_n_vocab(w->vocab);

    const char *s;
    size_t sl;
    if (ju_string(o, "job_id", 1, 0, &s, &sl, &e) < 0) goto out;
    if (!wk_valid_job_id(s, sl)) {
        ju_fail(&e, "job_id", "'job_id' must be 1-64 chars of [A-Za-z0-9_-]");
        goto out;
    }
    memcpy(j->job_id, s, sl + 1);

    const char *prompt;
    size_t plen;
    if (ju_string(o, "prompt", 1, 0, &prompt, &plen, &e) < 0) goto out;
    if (plen == 0) {
        ju_fail(&e, "prompt", "'prompt' must not be empty");
        goto out;
    }
    if (plen > WK_MAX_PROMPT_BYTES) {
        ju_fail(&e, "prompt", "'prompt' is longer than %d bytes", WK_MAX_PROMPT_BYTES);
        goto out;
    }
    if (memchr(prompt, 0, plen) || !util_utf8_valid(prompt, plen)) { /* jansson checks UTF-8; NUL is ours */
        ju_fail(&e, "prompt", "'prompt' must be valid UTF-8 without NUL");
        goto out;
    }

    int64_t iv;
    double dv;
    int have_max = ju_int(o, "max_tokens", 0, 1, INT32_MAX, &iv, &e);
    if (have_max < 0) goto out;
    int max_tokens = have_max ? (int)iv : 0;

    eng_sampling_params_default(&j->sp);
    int r;
    if ((r = ju_number(o, "temperature", 0, 0.0, 2.0, 0, &dv, &e)) < 0) goto out;
    if (r) j->sp.temperature = (float)dv;
    if ((r = ju_number(o, "top_p", 0, 0.0, 1.0, 0, &dv, &e)) < 0) goto out;
    if (r) j->sp.top_p = (float)dv;
    if ((r = ju_int(o, "top_k", 0, 0, n_vocab, &iv, &e)) < 0) goto out;
    if (r) j->sp.top_k = (int)iv;
    if ((r = ju_number(o, "min_p", 0, 0.0, 1.0, 0, &dv, &e)) < 0) goto out;
    if (r) j->sp.min_p = (float)dv;
    if ((r = ju_number(o, "repetition_penalty", 0, 0.0, 2.0, 1, &dv, &e)) < 0) goto out;
    if (r) j->sp.repeat_penalty = (float)dv;
    uint64_t seed;
    if ((r = ju_uint64(o, "seed", 0, &seed, &e)) < 0) goto out;
    j->sp.seed = r ? seed : gen_seed();

    json_t *stops;
    if ((r = ju_array(o, "stop", 0, WK_MAX_STOPS, &stops, &e)) < 0) goto out;
    if (r) {
        for (size_t i = 0; i < json_array_size(stops); i++) {
            json_t *v = json_array_get(stops, i);
            if (!json_is_string(v) || json_string_length(v) == 0 || memchr(json_string_value(v), 0, json_string_length(v))) {
                ju_fail(&e, "stop", "'stop' must be an array of non-empty strings");
                goto out;
            }
            int nt = tok_encode(w->vocab, json_string_value(v), json_string_length(v), 0, 0, NULL, 0);
            if (nt < 0 || nt > WK_MAX_STOP_TOKENS) {
                ju_fail(&e, "stop", "'stop' strings must be at most %d tokens", WK_MAX_STOP_TOKENS);
                goto out;
            }
            j->stops[j->n_stops] = strdup(json_string_value(v));
            if (!j->stops[j->n_stops]) {
                ju_fail(&e, "stop", "out of memory");
                *code = ERR_INTERNAL;
                goto out;
            }
            j->n_stops++;
        }
    }

    /* tokenize the prompt (BOS per the vocab's flags, special tokens parsed
     * like llama.cpp's completion endpoint does) and check it fits */
    int n = tok_encode(w->vocab, prompt, plen, 1, 1, NULL, 0);
    if (n <= 0) {
        ju_fail(&e, "prompt", "'prompt' could not be tokenized");
        goto out;
    }
    j->prompt = malloc(sizeof(int32_t) * (size_t)n);
    if (!j->prompt) {
        ju_fail(&e, "prompt", "out of memory");
        *code = ERR_INTERNAL;
        goto out;
    }
    j->n_prompt = tok_encode(w->vocab, prompt, plen, 1, 1, j->prompt, n);
    if (j->n_prompt != n) {
        ju_fail(&e, "prompt", "'prompt' could not be tokenized");
        goto out;
    }
    if (n + 1 > n_ctx) {
        ju_fail(&e, "prompt", "'prompt' is %d tokens; the context holds %d including at least one generated token", n,
                n_ctx);
        snprintf(details, dcap, "{\"field\":\"prompt\",\"tokens_in\":%d,\"context_length\":%d}", n, n_ctx);
        goto out;
    }
    if (!have_max) {
        max_tokens = UTIL_MIN(WK_DEFAULT_MAX_TOKENS, n_ctx - n);
    } else if ((int64_t)n + max_tokens > n_ctx) {
        ju_fail(&e, "max_tokens", "'max_tokens' %d + %d prompt tokens exceed the context of %d", max_tokens, n, n_ctx);
        snprintf(details, dcap, "{\"field\":\"max_tokens\",\"tokens_in\":%d,\"context_length\":%d}", n, n_ctx);
        goto out;
    }
    j->max_tokens = max_tokens;
    rc = 0;
out:
    if (rc) {
        snprintf(field, fieldcap, "%s", e.field);
        snprintf(msg, msgcap, "%s", e.message);
        if (!details[0]) ju_err_details(&e, details, dcap);
    }
    json_decref(o);
    return rc;
}
