// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* decode pipelining (engine.h eng_session_set_pipeline) on the CPU: the
 * engine's state machine, without a GPU. The CPU backend has no device
 * sampler, so pipelining must change nothing there; and a test backend
 * "cpu+sampler" (the CPU ops plus a greedy sample/read_token and no-op
 * record_begin/record_end, so eng_sample may speculate) runs every op the
 * moment it is enqueued: the speculative step really overwrites the logits
 * and the K/V row at n_past before the caller's next eval, which is what
 * consumption and discard must get right. On stories260K, greedy:
 *   - pipelined ids = plain ids = the CPU backend's own (host sampler) ids;
 *   - steps run (record_begin calls) pipelined = plain + discarded steps;
 *   - after a speculating sample: eng_logits NULL, n_past unmoved, a second
 *     eng_sample ENG_E_INVAL;
 *   - discards (another token, reset, pipelining off, the sampled token
 *     evaluated twice) equal the plain run that evaluated the same tokens,
 *     and the CPU backend's run of the same script;
 *   - the context edge: speculation at n_past + 1 == n_ctx, none at n_past
 *     == n_ctx (eng_logits works there, the eval is ENG_E_CTX_FULL).
 * The same again with a test backend "cpu+head" that also has backend.h
 * head (the CPU's rmsnorm + matmul, then the greedy choice into toks_dev[0]
 * and the parity ring, and pos_dev[0] advanced) and sample_ready: the
 * engine then takes the head's choice, uploads no token and no position
 * per decode step, and its bookkeeping of what toks_dev[0] / pos_dev[0]
 * hold must survive every discard (a wrong skip evaluates the wrong token
 * or position, and the ids differ from the CPU's). */
#include <errno.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/engine.h"
#include "engine/engine_int.h"
#include "testutil.h"

#define N_GEN 40

/* ---- the test backend: CPU ops + greedy sample / read_token + record hooks ---- */
static eng_backend_ops g_ops;
static int g_pending = -1;     /* the token of the last enqueue-only sample; -1 none */
static int g_steps;            /* record_begin calls = single-token decode steps issued */
static int g_enqueue_only;     /* enqueue-only samples */

static int t_sample(void *ctx, const float *logits, int n_vocab, const eng_sample_args *a, int32_t *dev_token,
                    int32_t *host_token) {
    (void)ctx;
    assert_true(a->p.temperature <= 0.0f); /* greedy only */
    int b = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > logits[b]) b = i;
    dev_token[0] = b; /* CPU "device" memory is host memory */
    if (host_token) {
        *host_token = b;
        g_pending = -1;
    } else {
        g_pending = b;
        g_enqueue_only++;
    }
    return 0;
}
static int t_read_token(void *ctx, const int32_t *dev_token, int32_t *host_token) {
    (void)ctx;
    if (g_pending < 0) return -EINVAL;
    assert_int_equal(dev_token[0], g_pending);
    *host_token = g_pending;
    g_pending = -1;
    return 0;
}
/* the head double: the CPU's own ops, then the greedy choice (the highest
 * logit, the lowest id among equals, NaN skipped, 0 when none) */
static eng_backend_ops g_cpu;  /* the CPU backend's table, for the head's ops */
static int g_heads, g_ready, g_uploads;
static float g_xb[4096];
static int t_head(void *ctx, const float *x, const float *g, float eps, const eng_w *w, float *logits,
                  int32_t *tok_next, int32_t *ring, int32_t *pos_io, int pos_i) {
    assert_true(w->ne0 <= (int64_t)(sizeof g_xb / sizeof g_xb[0]));
    g_cpu.rmsnorm(ctx, x, g, g_xb, 1, (int)w->ne0, eps);
    g_cpu.matmul(ctx, w, g_xb, logits, 1);
    int b = -1;
    for (int i = 0; i < (int)w->ne1; i++)
        if (logits[i] == logits[i] && (b < 0 || logits[i] > logits[b])) b = i;
    const int tok = b < 0 ? 0 : b, pos = pos_io[pos_i];
    tok_next[0] = tok;
    ring[pos & 1] = tok;
    pos_io[0] = pos + 1;
    g_heads++;
    return 0;
}
static int t_sample_ready(void *ctx, const int32_t *dev_token, int32_t *host_token) {
    (void)ctx;
    g_ready++;
    if (host_token) {
        *host_token = dev_token[0];
        g_pending = -1;
    } else {
        g_pending = dev_token[0];
        g_enqueue_only++;
    }
    return 0;
}
static int t_upload(void *ctx, void *dst, const void *src, size_t bytes) {
    g_uploads++;
    return g_cpu.upload(ctx, dst, src, bytes);
}

static int t_record_begin(void *ctx, int key) {
    (void)ctx;
    (void)key;
    g_steps++;
    return 0; /* never replays: the engine issues the ops, which run at once */
}
static int t_record_end(void *ctx, int key) {
    (void)ctx;
    (void)key;
    return 0;
}

/* with_sampler: 0 the CPU backend; 1 "cpu+sampler"; 2 "cpu+head" */
static eng_model *load(int n_ctx, int with_sampler) {
    char path[1024], err[512];
    TU_MODEL(path, "stories260K.gguf");
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_threads = 1;
    o.n_ctx = n_ctx;
    eng_model *m = NULL;
    if (eng_model_load(path, &o, &m, err, sizeof err)) fail_msg("%s: %s", path, err);
    if (with_sampler) {
        g_ops = *m->be.ops;
        g_ops.name = "cpu+sampler";
        g_ops.sample = t_sample;
        g_ops.read_token = t_read_token;
        g_ops.record_begin = t_record_begin;
        g_ops.record_end = t_record_end;
        if (with_sampler == 2) {
            g_cpu = *m->be.ops;
            g_ops.name = "cpu+head";
            g_ops.head = t_head;
            g_ops.sample_ready = t_sample_ready;
            g_ops.upload = t_upload;
        }
        m->be.ops = &g_ops;
    }
    return m;
}

/* ACT_TWICE: the sampled token evaluated twice (two positions): the second
 * eval's id is the host's, not what the first eval's head left on the device */
enum act { ACT_NONE, ACT_OTHER, ACT_RESET, ACT_OFF, ACT_TWICE };
static const int32_t g_prompt[] = {1, 403, 407, 261, 365, 292};
#define N_PROMPT ((int)(sizeof g_prompt / sizeof g_prompt[0]))

/* prompt, then n_gen (sample, eval) steps, step act_at doing `act`; stops
 * at a full context (asserting ENG_E_CTX_FULL); ids into out, count returned */
static int run(eng_model *m, int pipe, int n_gen, enum act act, int act_at, int32_t *out) {
    char err[512];
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    eng_sampling_params p;
    eng_sampling_params_default(&p);
    p.temperature = 0.0f;
    const int nv = eng_model_get_info(m)->n_vocab;
    eng_sampler *sp = eng_sampler_new(&p, nv);
    assert_non_null(sp);
    eng_session_set_pipeline(s, pipe);
    const int can = m->be.ops->read_token != NULL;
    if (eng_eval(s, g_prompt, N_PROMPT, ENG_LOGITS_LAST, err, sizeof err)) fail_msg("prompt: %s", err);
    int n = 0;
    for (int i = 0; i < n_gen; i++) {
        const int past = eng_session_n_past(s), n_ctx = eng_session_n_ctx(s);
        int32_t t;
        assert_int_equal(eng_sample(s, sp, &t), 0);
        out[n++] = t;
        assert_int_equal(eng_session_n_past(s), past);
        if (pipe && can && past + 1 <= n_ctx) {
            assert_null(eng_logits(s, -1));
            int32_t t2;
            assert_int_equal(eng_sample(s, sp, &t2), ENG_E_INVAL);
        } else {
            assert_non_null(eng_logits(s, -1));
        }
        if (past == n_ctx) {
            assert_int_equal(eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err), ENG_E_CTX_FULL);
            break;
        }
        int rc;
        if (i == act_at && act == ACT_OTHER) {
            const int32_t d = (t + 1) % nv;
            rc = eng_eval(s, &d, 1, ENG_LOGITS_LAST, err, sizeof err);
        } else if (i == act_at && act == ACT_RESET) {
            eng_session_reset(s);
            rc = eng_eval(s, g_prompt, N_PROMPT, ENG_LOGITS_LAST, err, sizeof err);
        } else if (i == act_at && act == ACT_TWICE) {
            rc = eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err);
            if (!rc) rc = eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err);
        } else if (i == act_at && act == ACT_OFF) {
            eng_session_set_pipeline(s, 0);
            rc = eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err);
            eng_session_set_pipeline(s, pipe);
        } else {
            rc = eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err);
        }
        if (rc) fail_msg("step %d: %s", i, err);
        assert_int_equal(eng_session_n_past(s), i == act_at && act == ACT_RESET   ? N_PROMPT
                                                : i == act_at && act == ACT_TWICE ? past + 2
                                                                                  : past + 1);
    }
    eng_sampler_free(sp);
    eng_session_free(s);
    return n;
}

static void test_cpu_backend_unchanged(void **st) {
    (void)st;
    eng_model *m = load(256, 0);
    int32_t a[N_GEN], b[N_GEN];
    assert_int_equal(run(m, 0, N_GEN, ACT_NONE, -1, a), N_GEN);
    assert_int_equal(run(m, 1, N_GEN, ACT_NONE, -1, b), N_GEN);
    assert_memory_equal(a, b, sizeof a);
    eng_model_free(m);
}

static void pipelined_equals_plain(int kind) {
    eng_model *cpu = load(256, 0);
    int32_t ref[N_GEN];
    assert_int_equal(run(cpu, 0, N_GEN, ACT_NONE, -1, ref), N_GEN);
    eng_model_free(cpu);

    eng_model *m = load(256, kind);
    int32_t a[N_GEN], b[N_GEN];
    g_steps = g_enqueue_only = g_heads = g_ready = g_uploads = 0;
    assert_int_equal(run(m, 0, N_GEN, ACT_NONE, -1, a), N_GEN);
    const int steps_plain = g_steps;
    assert_int_equal(g_enqueue_only, 0);
    if (kind == 2) {
        /* every eval ran the head, every sample took its choice, and only
         * the prompt's ids and positions were uploaded */
        assert_int_equal(g_heads, N_GEN + 1); /* the prompt, then every eval */
        assert_int_equal(g_ready, N_GEN);
        assert_int_equal(g_uploads, 2);
    }
    g_steps = g_heads = g_ready = g_uploads = 0;
    assert_int_equal(run(m, 1, N_GEN, ACT_NONE, -1, b), N_GEN);
    print_message("%s decode steps: plain %d, pipelined %d (%d speculative)\n", m->be.ops->name, steps_plain,
                  g_steps, g_enqueue_only);
    assert_memory_equal(ref, a, sizeof a);
    assert_memory_equal(a, b, sizeof a);
    /* every sample speculated, and every eval of the sampled token consumed
     * the step already run: no step ran twice */
    assert_int_equal(g_enqueue_only, N_GEN);
    assert_int_equal(g_steps, steps_plain);
    if (kind == 2) {
        assert_int_equal(g_ready, N_GEN);
        assert_int_equal(g_uploads, 2);
    }
    eng_model_free(m);
}
static void test_pipelined_equals_plain(void **st) {
    (void)st;
    pipelined_equals_plain(1);
}
static void test_head_pipelined_equals_plain(void **st) {
    (void)st;
    pipelined_equals_plain(2);
}

/* each script pipelined and plain on the test backend, and plain on the
 * CPU backend (the reference for what the script evaluates) */
static void discards(int kind) {
    eng_model *cpu = load(256, 0);
    eng_model *m = load(256, kind);
    const enum act acts[] = {ACT_OTHER, ACT_RESET, ACT_OFF, ACT_TWICE};
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        int32_t a[N_GEN], b[N_GEN], u[N_GEN], ref[N_GEN];
        assert_int_equal(run(cpu, 0, N_GEN, acts[k], 7, ref), N_GEN);
        assert_int_equal(run(m, 0, N_GEN, acts[k], 7, a), N_GEN);
        assert_int_equal(run(m, 1, N_GEN, acts[k], 7, b), N_GEN);
        assert_memory_equal(ref, a, sizeof a);
        assert_memory_equal(a, b, sizeof a);
        if (acts[k] == ACT_OTHER) { /* the script really changed the continuation */
            assert_int_equal(run(m, 0, N_GEN, ACT_NONE, -1, u), N_GEN);
            assert_memory_not_equal(a + 8, u + 8, sizeof a - 8 * sizeof *a);
        }
    }
    eng_model_free(m);
    eng_model_free(cpu);
}
static void test_discards(void **st) {
    (void)st;
    discards(1);
}
static void test_head_discards(void **st) {
    (void)st;
    discards(2);
}

static void context_edge(int kind) {
    const int n_ctx = 24, steps = n_ctx - N_PROMPT + 1; /* the last sample is at n_past == n_ctx */
    eng_model *m = load(n_ctx, kind);
    int32_t a[32], b[32];
    g_enqueue_only = 0;
    assert_int_equal(run(m, 0, steps, ACT_NONE, -1, a), steps);
    assert_int_equal(run(m, 1, steps, ACT_NONE, -1, b), steps);
    assert_memory_equal(a, b, (size_t)steps * sizeof *a);
    assert_int_equal(g_enqueue_only, steps - 1); /* all but the one at n_past == n_ctx */
    eng_model_free(m);
}
static void test_context_edge(void **st) {
    (void)st;
    context_edge(1);
}
static void test_head_context_edge(void **st) {
    (void)st;
    context_edge(2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_backend_unchanged),
        cmocka_unit_test(test_pipelined_equals_plain),
        cmocka_unit_test(test_discards),
        cmocka_unit_test(test_context_edge),
        cmocka_unit_test(test_head_pipelined_equals_plain),
        cmocka_unit_test(test_head_discards),
        cmocka_unit_test(test_head_context_edge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
