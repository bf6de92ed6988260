// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* engine API: load facts and validation (unsupported architecture, wrong
 * shapes, missing tensors, bad keys — each refused with a message naming the
 * culprit), progress callbacks, memory limit, sessions (context full, reset,
 * chunked prompts equal one batch, ALL logits equal LAST logits), sampling
 * through eng_sample, residency. */
#include "testutil.h"

#include <math.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/engine.h"

static const char *stories(char *buf, size_t cap) {
    return tu_path(buf, cap, "LLORCH_MODELS_DIR", "../shared/models", "stories260K.gguf");
}

static eng_model *load_opts(const char *path, eng_load_opts *o) {
    char err[512];
    eng_model *m = NULL;
    int rc = eng_model_load(path, o, &m, err, sizeof err);
    if (rc) fail_msg("load: %s", err);
    return m;
}

/* ---- copies of stories260K with one thing changed --------------------------- */
typedef struct {
    const char *arch;        /* override general.architecture */
    const char *drop_tensor; /* leave this tensor out */
    const char *bad_tensor;  /* give this tensor a wrong shape (one more row) */
    const char *drop_key;    /* leave this key out */
} mutation;

static void write_mutant(const char *out, const mutation *mu) {
    char p[1024], err[256];
    gguf_ctx *g = NULL;
    assert_int_equal(gguf_open(stories(p, sizeof p), &g, err, sizeof err), 0);
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        char key[128];
        gguf_str_copy(gguf_kv_key(g, i), key, sizeof key);
        if (mu->drop_key && !strcmp(key, mu->drop_key)) continue;
        assert_int_equal(gguf_w_copy_kv(w, g, i), 0);
    }
    if (mu->arch) {
        assert_int_equal(gguf_w_set_str(w, "general.architecture", mu->arch), 0);
        /* keep the hyperparameters findable under the new prefix */
        for (int64_t i = 0; i < gguf_n_kv(g); i++) {
            char key[128], nk[160];
            gguf_str_copy(gguf_kv_key(g, i), key, sizeof key);
            if (strncmp(key, "llama.", 6)) continue;
            snprintf(nk, sizeof nk, "%s.%s", mu->arch, key + 6);
            const void *sc = gguf_kv_scalar(g, i);
            if (!sc) continue;
            uint32_t u;
            float f;
            if (gguf_kv_type(g, i) == GGUF_T_U32) gguf_w_set_u32(w, nk, (memcpy(&u, sc, 4), u));
            else if (gguf_kv_type(g, i) == GGUF_T_F32) gguf_w_set_f32(w, nk, (memcpy(&f, sc, 4), f));
        }
    }
    static char pad[1 << 16];
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (mu->drop_tensor && !strcmp(t->name, mu->drop_tensor)) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        const void *data = t->data;
        if (mu->bad_tensor && !strcmp(t->name, mu->bad_tensor)) {
            ne[t->n_dims - 1] += 1; /* one more row (or element): data padded with zeros */
            assert_true(t->nbytes * 2 <= sizeof pad);
            memset(pad, 0, sizeof pad);
            memcpy(pad, t->data, t->nbytes);
            data = pad;
        }
        assert_true(gguf_w_add_tensor(w, t->name, t->type, t->n_dims, ne, data, NULL, NULL) >= 0);
    }
    assert_int_equal(gguf_w_write(w, out, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_close(g);
}

static void expect_refused(const mutation *mu, int code, const char *needle) {
    char out[1024], err[512];
    snprintf(out, sizeof out, "%s/engine_mutant_%d.gguf", tu_env("LLORCH_BUILD_DIR", "/tmp"), (int)getpid());
    write_mutant(out, mu);
    eng_model *m = NULL;
    int rc = eng_model_load(out, NULL, &m, err, sizeof err);
    unlink(out);
    assert_null(m);
    if (rc != code) fail_msg("expected %s, got %s: %s", eng_err_name(code), eng_err_name(rc), err);
    if (!strstr(err, needle)) fail_msg("message '%s' does not name '%s'", err, needle);
}

static void test_refusals(void **st) {
    (void)st;
    mutation a = {.arch = "gpt2"};
    expect_refused(&a, ENG_E_UNSUPPORTED, "gpt2");
    mutation b = {.bad_tensor = "blk.2.attn_k.weight"};
    expect_refused(&b, ENG_E_INVAL, "blk.2.attn_k.weight");
    mutation c = {.drop_tensor = "blk.4.ffn_down.weight"};
    expect_refused(&c, ENG_E_INVAL, "blk.4.ffn_down.weight");
    mutation d = {.drop_key = "llama.attention.head_count"};
    expect_refused(&d, ENG_E_INVAL, "llama.attention.head_count");
    mutation e = {.bad_tensor = "output_norm.weight"};
    expect_refused(&e, ENG_E_INVAL, "output_norm.weight");
    /* qwen2 requires Q/K/V biases */
    mutation f = {.arch = "qwen2"};
    expect_refused(&f, ENG_E_INVAL, "blk.0.attn_q.bias");
    /* not a file / not a GGUF */
    char err[256];
    eng_model *m = NULL;
    assert_int_equal(eng_model_load("/nonexistent/model.gguf", NULL, &m, err, sizeof err), ENG_E_IO);
    assert_null(m);
    char self[1024];
    snprintf(self, sizeof self, "%s/tests/unit/test_engine.c", tu_env("LLORCH_SRC_DIR", "."));
    assert_int_equal(eng_model_load(self, NULL, &m, err, sizeof err), ENG_E_INVAL);
    assert_string_equal(eng_err_name(ENG_E_CTX_FULL), "CTX_FULL");
}

/* ---- load facts and progress ------------------------------------------------------- */
static int prog[8], n_prog;
static void on_progress(void *u, int pct, uint64_t done, uint64_t total) {
    (void)u;
    assert_true(done <= total);
    if (n_prog < 8) prog[n_prog] = pct;
    n_prog++;
}

static void test_info_and_progress(void **st) {
    (void)st;
    char p[1024];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.progress = on_progress;
    o.n_threads = 2;
    n_prog = 0;
    eng_model *m = load_opts(stories(p, sizeof p), &o);
    assert_int_equal(n_prog, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(prog[i], 25 * i);
    const eng_model_info *in = eng_model_get_info(m);
    assert_string_equal(in->arch, "llama");
    assert_string_equal(in->quant_kind, "F32");
    assert_string_equal(in->backend, "cpu");
    assert_string_equal(in->memory_architecture, "host");
    assert_int_equal(in->n_vocab, 512);
    assert_int_equal(in->n_embd, 64);
    assert_int_equal(in->n_layer, 5);
    assert_int_equal(in->n_head, 8);
    assert_int_equal(in->n_head_kv, 4);
    assert_int_equal(in->head_dim, 8);
    assert_int_equal(in->n_ff, 172);
    assert_int_equal(in->n_ctx, in->n_ctx_train < 4096 ? in->n_ctx_train : 4096);
    /* the file is 1185376 bytes; weights are nearly all of it */
    assert_true(in->weight_bytes > 1000000 && in->weight_bytes < 1185376);
    assert_int_equal(in->kv_bytes, 2ull * 5 * in->n_ctx * 32 * 2);
    uint64_t before = in->memory_bytes;
    eng_session *s = NULL;
    char err[256];
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    in = eng_model_get_info(m);
    assert_int_equal(in->memory_bytes, before + in->kv_bytes + in->scratch_bytes);
    assert_int_equal(eng_model_check_residency(m, err, sizeof err), 1);
    eng_session_free(s);
    assert_int_equal(eng_model_get_info(m)->memory_bytes, before);
    assert_non_null(eng_model_vocab(m));
    eng_model_free(m);
    eng_model_free(NULL);
    eng_session_free(NULL);
}

static void test_mem_limit(void **st) {
    (void)st;
    char p[1024], err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.mem_limit_bytes = 1000; /* far below one session */
    eng_model *m = NULL;
    assert_int_equal(eng_model_load(stories(p, sizeof p), &o, &m, err, sizeof err), ENG_E_OOM);
    assert_null(m);
    assert_non_null(strstr(err, "bytes"));
    /* enough for exactly one session: the second fails cleanly, the first still works */
    o.mem_limit_bytes = 0;
    o.n_ctx = 64;
    m = load_opts(stories(p, sizeof p), &o);
    uint64_t one = eng_model_get_info(m)->kv_bytes + eng_model_get_info(m)->scratch_bytes;
    eng_model_free(m);
    o.mem_limit_bytes = one + one / 2;
    m = load_opts(stories(p, sizeof p), &o);
    eng_session *a = NULL, *b = NULL;
    assert_int_equal(eng_session_new(m, &a, err, sizeof err), 0);
    assert_int_equal(eng_session_new(m, &b, err, sizeof err), ENG_E_OOM);
    assert_null(b);
    int32_t t[2] = {1, 403};
    assert_int_equal(eng_eval(a, t, 2, ENG_LOGITS_LAST, err, sizeof err), 0);
    eng_session_free(a);
    assert_int_equal(eng_session_new(m, &b, err, sizeof err), 0); /* memory came back */
    eng_session_free(b);
    eng_model_free(m);
}

/* ---- sessions ------------------------------------------------------------------------ */
static const int32_t SEQ[20] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267};

static void test_ctx_full_and_bad_input(void **st) {
    (void)st;
    char p[1024], err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_ctx = 16;
    eng_model *m = load_opts(stories(p, sizeof p), &o);
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    assert_int_equal(eng_session_n_ctx(s), 16);
    assert_null(eng_logits(s, -1));
    assert_int_equal(eng_eval(s, SEQ, 17, ENG_LOGITS_LAST, err, sizeof err), ENG_E_CTX_FULL);
    assert_int_equal(eng_session_n_past(s), 0);
    assert_int_equal(eng_eval(s, SEQ, 10, ENG_LOGITS_LAST, err, sizeof err), 0);
    assert_int_equal(eng_eval(s, SEQ, 7, ENG_LOGITS_LAST, err, sizeof err), ENG_E_CTX_FULL);
    assert_int_equal(eng_eval(s, SEQ, 6, ENG_LOGITS_LAST, err, sizeof err), 0);
    assert_int_equal(eng_session_n_past(s), 16);
    assert_int_equal(eng_eval(s, SEQ, 1, ENG_LOGITS_LAST, err, sizeof err), ENG_E_CTX_FULL);
    eng_session_reset(s);
    assert_int_equal(eng_session_n_past(s), 0);
    int32_t bad[2] = {1, 512};
    assert_int_equal(eng_eval(s, bad, 2, ENG_LOGITS_LAST, err, sizeof err), ENG_E_INVAL);
    bad[1] = -1;
    assert_int_equal(eng_eval(s, bad, 2, ENG_LOGITS_LAST, err, sizeof err), ENG_E_INVAL);
    assert_int_equal(eng_eval(s, SEQ, 0, ENG_LOGITS_LAST, err, sizeof err), ENG_E_INVAL);
    assert_int_equal(eng_eval(s, SEQ, 2, 7, err, sizeof err), ENG_E_INVAL);
    assert_int_equal(eng_session_n_past(s), 0);
    eng_session_free(s);
    eng_model_free(m);
}

/* logits of the same tokens: one batch, small chunks, one by one, ALL rows.
 * They agree to BATCH_TOL, not bitwise: as in llama.cpp, F32 matmuls of
 * several rows sum in another order than single-row ones (tinyBLAS vs
 * vec_dot), and attention rounds q and its accumulator to fp16, which turns
 * those last-bit differences into fp16-sized ones (up to ~1.5e-3 relative
 * on stories260K F32; 3e-3 passes, 5e-3 leaves room). */
#define BATCH_TOL 5e-3f
static void test_batching_consistency(void **st) {
    (void)st;
    char p[1024], err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_threads = 2;
    eng_model *m = load_opts(stories(p, sizeof p), &o);
    eng_load_opts o2 = o;
    o2.n_batch = 3; /* 20 tokens = 7 chunks */
    eng_model *m3 = load_opts(stories(p, sizeof p), &o2);
    eng_session *a, *b, *c, *d;
    assert_int_equal(eng_session_new(m, &a, err, sizeof err), 0);
    assert_int_equal(eng_session_new(m3, &b, err, sizeof err), 0);
    assert_int_equal(eng_session_new(m, &c, err, sizeof err), 0);
    assert_int_equal(eng_session_new(m, &d, err, sizeof err), 0);
    assert_int_equal(eng_eval(a, SEQ, 20, ENG_LOGITS_LAST, err, sizeof err), 0);
    assert_int_equal(eng_eval(b, SEQ, 20, ENG_LOGITS_LAST, err, sizeof err), 0);
    float lb[512];
    memcpy(lb, eng_logits(b, -1), sizeof lb);
    assert_int_equal(eng_eval(b, SEQ, 4, ENG_LOGITS_ALL, err, sizeof err), ENG_E_INVAL); /* ALL needs n <= n_batch (3) */
    assert_null(eng_logits(b, -1)); /* a refused eval leaves no logits */
    assert_int_equal(eng_eval(d, SEQ, 20, ENG_LOGITS_ALL, err, sizeof err), 0);
    const float *la = eng_logits(a, -1);
    assert_null(eng_logits(a, 0)); /* LAST keeps only the last row */
    assert_null(eng_logits(a, 20));
    for (int i = 0; i < 20; i++) {
        assert_int_equal(eng_eval(c, &SEQ[i], 1, ENG_LOGITS_LAST, err, sizeof err), 0);
        const float *lc = eng_logits(c, -1), *ld = eng_logits(d, i);
        assert_non_null(lc);
        assert_non_null(ld);
        for (int t = 0; t < 512; t++)
            if (fabsf(lc[t] - ld[t]) > BATCH_TOL * (1 + fabsf(lc[t])))
                fail_msg("position %d token %d: one-by-one %g vs ALL %g", i, t, lc[t], ld[t]);
    }
    const float *lc = eng_logits(c, -1);
    for (int t = 0; t < 512; t++) {
        assert_float_equal(la[t], lb[t], BATCH_TOL * (1 + fabs(la[t])));
        assert_float_equal(la[t], lc[t], BATCH_TOL * (1 + fabs(la[t])));
        assert_true(la[t] == eng_logits(d, 19)[t] || fabsf(la[t] - eng_logits(d, 19)[t]) < BATCH_TOL * (1 + fabsf(la[t])));
    }
    assert_ptr_equal(eng_logits(d, -1), eng_logits(d, 19));
    eng_session_free(a);
    eng_session_free(b);
    eng_session_free(c);
    eng_session_free(d);
    eng_model_free(m3);
    eng_model_free(m);
}

/* eng_sample: greedy equals the argmax of eng_logits; sampling is seeded and
 * the history gets the sampled token */
static void test_sample(void **st) {
    (void)st;
    char p[1024], err[512];
    eng_model *m = load_opts(stories(p, sizeof p), NULL);
    eng_session *s;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    eng_sampling_params sp;
    eng_sampling_params_default(&sp);
    sp.temperature = 0;
    eng_sampler *g = eng_sampler_new(&sp, 512);
    int32_t t;
    assert_int_equal(eng_sample(s, g, &t), ENG_E_INVAL); /* nothing evaluated yet */
    assert_int_equal(eng_eval(s, SEQ, 5, ENG_LOGITS_LAST, err, sizeof err), 0);
    const float *l = eng_logits(s, -1);
    int best = 0;
    for (int i = 1; i < 512; i++)
        if (l[i] > l[best]) best = i;
    assert_int_equal(eng_sample(s, g, &t), 0);
    assert_int_equal(t, best);
    int32_t h[64];
    assert_int_equal(eng_sampler_history(g, h), 1);
    assert_int_equal(h[0], best);
    /* seeded sampling: two runs agree */
    int32_t runs[2][16];
    for (int r = 0; r < 2; r++) {
        eng_session_reset(s);
        sp.temperature = 1.0f;
        sp.seed = 99;
        eng_sampler *x = eng_sampler_new(&sp, 512);
        assert_int_equal(eng_eval(s, SEQ, 5, ENG_LOGITS_LAST, err, sizeof err), 0);
        for (int i = 0; i < 16; i++) {
            assert_int_equal(eng_sample(s, x, &runs[r][i]), 0);
            assert_int_equal(eng_eval(s, &runs[r][i], 1, ENG_LOGITS_LAST, err, sizeof err), 0);
        }
        eng_sampler_free(x);
    }
    assert_memory_equal(runs[0], runs[1], sizeof runs[0]);
    eng_sampler_free(g);
    eng_session_free(s);
    eng_model_free(m);
}

static void test_cuda_absent_or_present(void **st) {
    (void)st;
    char p[1024], err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.backend = ENG_BACKEND_CUDA;
    eng_model *m = NULL;
    int rc = eng_model_load(stories(p, sizeof p), &o, &m, err, sizeof err);
    if (!eng_backend_cuda_new) {
        assert_int_equal(rc, ENG_E_NO_DEVICE);
        assert_null(m);
    } else if (rc == 0) {
        eng_model_free(m); /* a GPU machine */
    } else {
        assert_true(rc == ENG_E_NO_DEVICE || rc == ENG_E_BACKEND);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_info_and_progress),
        cmocka_unit_test(test_mem_limit),
        cmocka_unit_test(test_ctx_full_and_bad_input),
        cmocka_unit_test(test_batching_consistency),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_cuda_absent_or_present),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
