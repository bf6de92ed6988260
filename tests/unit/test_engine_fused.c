// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* Fused ops (backend.h, optional) vs their primitives on the CPU backend:
 * the CPU runs each fused op as exactly its composition, so whole forwards
 * with fused ops on and forced off (LLORCH_NO_FUSED=1, read by the forward
 * pass at every eval) must give bitwise-equal logits. Models: stories260K
 * (F32 llama, no biases) and `llorch gguf make --preset tiny` qwen2 Q4_K_M
 * (q/k/v biases, Q4_K/Q6_K/Q5_0 mix) and llama Q4_0. Each run: a 7-token
 * prefill with every row's logits (every layer takes the fused path), a
 * 3-token prefill with last-row logits (the last layer's row-subset path),
 * then 5 single-token decode steps (each layer of those one decode_block op
 * when fused). */
#include "testutil.h"
#include "tiny_models.h"

#include <sys/stat.h>
#include <unistd.h>

#include "engine/cpu/cpu_int.h"
#include "engine/engine.h"

#define N_PRE 7
#define N_PRE2 3
#define N_DEC 5
#define N_ROWS (N_PRE + 1 + N_DEC)


/* logits of every evaluated row of the fixed sequence; out [N_ROWS][n_vocab] */
static void run(eng_model *m, int fused, float *out, int nv) {
    char err[512];
    if (fused) unsetenv("LLORCH_NO_FUSED");
    else setenv("LLORCH_NO_FUSED", "1", 1);
    unsetenv("LLORCH_DUMP_TENSORS"); /* a dump forces the primitives */
    const uint64_t calls0 = cpu_fused_calls(), blocks0 = cpu_decode_block_calls();
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    int32_t toks[N_PRE + N_PRE2];
    for (int i = 0; i < N_PRE + N_PRE2; i++) toks[i] = (int32_t)((37 * i + 11) % nv);
    int row = 0;
    if (eng_eval(s, toks, N_PRE, ENG_LOGITS_ALL, err, sizeof err)) fail_msg("eval: %s", err);
    for (int i = 0; i < N_PRE; i++, row++) {
        const float *l = eng_logits(s, i);
        assert_non_null(l);
        memcpy(out + (size_t)row * nv, l, (size_t)nv * sizeof *l);
    }
    if (eng_eval(s, toks + N_PRE, N_PRE2, ENG_LOGITS_LAST, err, sizeof err)) fail_msg("eval: %s", err);
    memcpy(out + (size_t)row++ * nv, eng_logits(s, -1), (size_t)nv * sizeof(float));
    for (int i = 0; i < N_DEC; i++, row++) {
        const float *prev = out + (size_t)(row - 1) * nv;
        int32_t t = 0; /* greedy on the previous row, so the sequence is the model's own */
        for (int v = 1; v < nv; v++)
            if (prev[v] > prev[t]) t = v;
        if (eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err)) fail_msg("eval: %s", err);
        memcpy(out + (size_t)row * nv, eng_logits(s, -1), (size_t)nv * sizeof(float));
    }
    assert_int_equal(row, N_ROWS);
    /* the fused run really took the fused ops, the other none of them */
    if (fused) assert_true(cpu_fused_calls() > calls0);
    else assert_true(cpu_fused_calls() == calls0);
    /* ... and the decode steps ran whole layers as decode_block (fused only) */
    if (fused) assert_true(cpu_decode_block_calls() >= blocks0 + N_DEC);
    else assert_true(cpu_decode_block_calls() == blocks0);
    eng_session_free(s);
    unsetenv("LLORCH_NO_FUSED");
}

static void check(const char *path, const char *name) {
    char err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_threads = 2;
    eng_model *m = NULL;
    if (eng_model_load(path, &o, &m, err, sizeof err)) fail_msg("load %s: %s", path, err);
    const int nv = eng_model_get_info(m)->n_vocab;
    float *a = malloc((size_t)N_ROWS * nv * sizeof *a), *b = malloc((size_t)N_ROWS * nv * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    run(m, 1, a, nv);
    run(m, 0, b, nv);
    for (int r = 0; r < N_ROWS; r++)
        for (int v = 0; v < nv; v++)
            if (memcmp(&a[(size_t)r * nv + v], &b[(size_t)r * nv + v], sizeof(float)))
                fail_msg("%s: row %d logit %d: fused %a, primitives %a", name, r, v, (double)a[(size_t)r * nv + v],
                         (double)b[(size_t)r * nv + v]);
    /* the check can fail: the logits are not all equal (a dead forward would pass) */
    int varied = 0;
    for (int v = 1; v < nv && !varied; v++) varied = a[v] != a[0];
    assert_true(varied);
    print_message("%s: %d rows x %d logits bitwise equal fused / primitives\n", name, N_ROWS, nv);
    free(a);
    free(b);
    eng_model_free(m);
}

static void test_stories260K(void **st) {
    (void)st;
    char path[1024];
    TU_MODEL(path, "stories260K.gguf");
    check(path, "stories260K");
}

static void synthetic(const char *arch, const char *type) {
    char llorch[1024], file[1400], args[128], name[64];
    tm_need_llorch(llorch, sizeof llorch);
    snprintf(name, sizeof name, "%s-%s", arch, type);
    snprintf(args, sizeof args, "--arch %s --type %s", arch, type);
    tm_make_tiny("fused-models", name, args, 5, file, sizeof file);
    check(file, name);
    unlink(file);
}

static void test_qwen2_q4km(void **st) {
    (void)st;
    synthetic("qwen2", "Q4_K_M");
}

static void test_llama_q4_0(void **st) {
    (void)st;
    synthetic("llama", "Q4_0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260K),
        cmocka_unit_test(test_qwen2_q4km),
        cmocka_unit_test(test_llama_q4_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
