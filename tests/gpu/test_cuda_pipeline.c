// test-libs: llorch_engine_cuda llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* test_cuda_pipeline — decode pipelining (engine.h eng_session_set_pipeline)
 * on the CUDA backend: a pipelined eng_sample enqueues the sampled token's
 * decode step before reading the token back, so results must be exactly
 * those of the same calls without pipelining (same ops, same data, same
 * order). On each model, for the same script run with pipelining off and on
 * (fresh sampler, same seed), the ids must be identical:
 *   - greedy, 64 tokens;
 *   - temperature 0.8, top-k/top-p/min-p defaults, repeat penalty 1.1, a
 *     fixed seed (device sampler with the host's uniforms and history);
 *   - discards: after a pipelined sample, eval a DIFFERENT token / two
 *     tokens / the sampled token with ENG_LOGITS_ALL / the sampled token
 *     after turning pipelining off / a session reset and a new prompt, then
 *     continue;
 *   - the context edge: decoding until the context is full (n_ctx 96): the
 *     sample at n_past + 1 == n_ctx still speculates (its step writes the
 *     last slot), the one at n_past == n_ctx does not (eng_logits works, the
 *     eval fails with ENG_E_CTX_FULL).
 * While pipelined, after every speculating sample eng_logits(s, -1) is NULL,
 * n_past has not moved and a second eng_sample is ENG_E_INVAL; without
 * speculation eng_logits is not NULL.
 * Models: stories260K (F32), tiny synthetic llama Q4_0 and gpt-oss MXFP4
 * (made with the built llorch; skipped when it is not built), and the
 * real-shape synthetic Qwen2.5-0.5B Q4_K_M when LLORCH_GPU_QWEN_MODEL names
 * it (as for test_cuda_decode_kl).
 * Exits 77 where no CUDA device exists. */
#include <errno.h>
#include <math.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/engine.h"
#include "gpu/cuda_probe.h"
#include "testutil.h"
#include "tiny_models.h"

#define N_GEN 64
#define N_CTX_EDGE 96

enum act {
    ACT_NONE = 0,  /* eval the sampled token every step */
    ACT_OTHER,     /* at step k: eval (t + 1) % n_vocab instead */
    ACT_TWO,       /* at step k: eval {t, (t + 7) % n_vocab} */
    ACT_ALL,       /* at step k: eval t with ENG_LOGITS_ALL */
    ACT_OFF,       /* at step k: pipelining off, eval t, pipelining back on */
    ACT_RESET,     /* at step k: reset, eval the prompt again */
};

static const int32_t g_prompt[] = {1, 403, 407, 261, 1919 % 512, 365, 292};
#define N_PROMPT ((int)(sizeof g_prompt / sizeof g_prompt[0]))

/* Runs the script on s from a reset: the prompt, then n_gen (sample, eval)
 * steps, the step act_at doing `act` instead of the plain eval; stops once
 * the context is full (the eval's ENG_E_CTX_FULL is asserted). The sampled
 * ids into out; returns their count. */
static int run(eng_session *s, int nv, int pipe, const eng_sampling_params *p, int n_gen, enum act act, int act_at,
               int32_t *out) {
    char err[512];
    eng_sampler *sp = eng_sampler_new(p, nv);
    assert_non_null(sp);
    eng_session_reset(s);
    eng_session_set_pipeline(s, pipe);
    for (int i = 0; i < N_PROMPT; i++) eng_sampler_accept(sp, g_prompt[i]);
    if (eng_eval(s, g_prompt, N_PROMPT, ENG_LOGITS_LAST, err, sizeof err)) fail_msg("prompt: %s", err);
    const int n_ctx = eng_session_n_ctx(s);
    int n = 0, prev_all = 0; /* prev_all: the last eval kept all rows' logits (no speculation after it) */
    for (int i = 0; i < n_gen; i++) {
        const int past = eng_session_n_past(s);
        int32_t t = -1;
        assert_int_equal(eng_sample(s, sp, &t), 0);
        assert_true(t >= 0 && t < nv);
        out[n++] = t;
        assert_int_equal(eng_session_n_past(s), past);
        const int spec = pipe && past + 1 <= n_ctx && !prev_all;
        prev_all = 0;
        if (spec) {
            /* the logits are being overwritten by the speculative step */
            assert_null(eng_logits(s, -1));
            if (i == 1) {
                int32_t t2;
                assert_int_equal(eng_sample(s, sp, &t2), ENG_E_INVAL);
            }
        } else if (pipe) {
            assert_non_null(eng_logits(s, -1)); /* no speculation: the logits are still there */
        }
        if (past == n_ctx) {
            assert_int_equal(eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err), ENG_E_CTX_FULL);
            break;
        }
        int rc = 0;
        if (i != act_at || act == ACT_NONE) {
            rc = eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err);
        } else if (act == ACT_OTHER) {
            const int32_t d = (t + 1) % nv;
            rc = eng_eval(s, &d, 1, ENG_LOGITS_LAST, err, sizeof err);
        } else if (act == ACT_TWO) {
            const int32_t d[2] = {t, (t + 7) % nv};
            rc = eng_eval(s, d, 2, ENG_LOGITS_LAST, err, sizeof err);
        } else if (act == ACT_ALL) {
            rc = eng_eval(s, &t, 1, ENG_LOGITS_ALL, err, sizeof err);
            if (!rc) assert_non_null(eng_logits(s, 0));
            prev_all = 1; /* the next sample reads the host rows: no speculation (engine.h) */
        } else if (act == ACT_OFF) {
            eng_session_set_pipeline(s, 0);
            rc = eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err);
            eng_session_set_pipeline(s, pipe);
        } else if (act == ACT_RESET) {
            eng_session_reset(s);
            rc = eng_eval(s, g_prompt, N_PROMPT, ENG_LOGITS_LAST, err, sizeof err);
        }
        if (rc) fail_msg("step %d (act %d): %s", i, (int)act, err);
    }
    eng_sampler_free(sp);
    return n;
}

static void print_ids(const char *label, const char *what, const int32_t *ids, int n) {
    char line[N_CTX_EDGE * 8 + 1];
    int k = 0;
    for (int i = 0; i < n && k < (int)sizeof line - 8; i++) k += snprintf(line + k, sizeof line - k, " %d", ids[i]);
    print_message("%s %s:%s\n", label, what, line);
}

/* the script with pipelining off and on: the same ids */
static void same(eng_session *s, int nv, const char *label, const char *what, const eng_sampling_params *p, int n_gen,
                 enum act act, int act_at) {
    int32_t a[N_CTX_EDGE + 1], b[N_CTX_EDGE + 1];
    assert_true(n_gen <= N_CTX_EDGE + 1);
    const int na = run(s, nv, 0, p, n_gen, act, act_at, a);
    const int nb = run(s, nv, 1, p, n_gen, act, act_at, b);
    assert_int_equal(na, nb);
    if (memcmp(a, b, (size_t)na * sizeof *a) != 0) {
        print_ids(label, "off", a, na);
        print_ids(label, "on ", b, nb);
        fail_msg("%s: %s: pipelined ids differ", label, what);
    }
    print_message("%s: %s: %d ids identical\n", label, what, na);
}

static void check_model(const char *path, const char *label) {
    char err[512];
    eng_model *m = tm_load(path, ENG_BACKEND_CUDA, 0, 256);
    const int nv = eng_model_get_info(m)->n_vocab;
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    eng_sampling_params g, t;
    eng_sampling_params_default(&g);
    g.temperature = 0.0f;
    eng_sampling_params_default(&t);
    t.temperature = 0.8f;
    t.repeat_penalty = 1.1f;
    t.seed = 42;
    same(s, nv, label, "greedy", &g, N_GEN, ACT_NONE, -1);
    same(s, nv, label, "temperature 0.8 seed 42", &t, N_GEN, ACT_NONE, -1);
    /* discards: the pipelined run must equal the plain run that evaluated
     * the same tokens (a speculation wrongly kept would continue from the
     * sampled token instead) */
    same(s, nv, label, "discard: another token", &g, 24, ACT_OTHER, 5);
    same(s, nv, label, "discard: two tokens", &g, 24, ACT_TWO, 5);
    same(s, nv, label, "discard: ENG_LOGITS_ALL", &g, 24, ACT_ALL, 5);
    same(s, nv, label, "discard: pipelining off", &t, 24, ACT_OFF, 5);
    same(s, nv, label, "discard: reset", &t, 24, ACT_RESET, 5);
    eng_session_free(s);
    eng_model_free(m);

    /* the context edge */
    m = tm_load(path, ENG_BACKEND_CUDA, 0, N_CTX_EDGE);
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    int32_t ids[N_CTX_EDGE + 1];
    /* N_PROMPT + k tokens evaluated after k steps: the sample with n_past ==
     * n_ctx is step N_CTX_EDGE - N_PROMPT, the last one */
    const int steps = N_CTX_EDGE - N_PROMPT + 1;
    same(s, nv, label, "context edge", &g, steps, ACT_NONE, -1);
    assert_int_equal(run(s, nv, 1, &g, steps, ACT_NONE, -1, ids), steps);
    assert_int_equal(eng_session_n_past(s), N_CTX_EDGE);
    eng_session_free(s);
    eng_model_free(m);
}

static void test_stories(void **st) {
    (void)st;
    char path[1024];
    TU_MODEL(path, "stories260K.gguf");
    check_model(path, "stories260K");
}

static void test_tiny_q4_0(void **st) {
    (void)st;
    char llorch[1024], file[1400];
    tm_need_llorch(llorch, sizeof llorch);
    tm_make_tiny("pipeline-models", "llama-Q4_0", "--arch llama --type Q4_0", 3, file, sizeof file);
    check_model(file, "tiny llama Q4_0");
    unlink(file);
}

static void test_tiny_gptoss(void **st) {
    (void)st;
    char llorch[1024], file[1400];
    tm_need_llorch(llorch, sizeof llorch);
    tm_make_gptoss("MXFP4", file, sizeof file);
    check_model(file, "tiny gpt-oss MXFP4");
}

static void test_qwen_shape(void **st) {
    (void)st;
    const char *path = getenv("LLORCH_GPU_QWEN_MODEL");
    if (!path || !path[0]) {
        print_message("skipped: LLORCH_GPU_QWEN_MODEL names no model\n");
        skip();
    }
    check_model(path, "qwen2.5-0.5b shape");
}

int main(void) {
    const int probe = tc_cuda_probe("test_cuda_pipeline");
    if (probe) return probe;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stories), cmocka_unit_test(test_tiny_q4_0),
                                       cmocka_unit_test(test_tiny_gptoss), cmocka_unit_test(test_qwen_shape)};
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
