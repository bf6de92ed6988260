// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* engine vs llama.cpp: teacher-forced next-token distributions on synthetic
 * tiny models (llama, qwen2, phi3 x every block format: F16, BF16, Q8_0,
 * Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K_M, Q5_K, Q6_K, MXFP4), made at
 * test time by the built `llorch gguf make --seed 1` exactly as the
 * fixture's models were (file size and FNV-1a 64 are checked first).
 * Model names are <arch>-<format>; k_formats below gives the `--type` and
 * `--pure` that make each one (Q2_K, Q3_K, Q5_K and MXFP4 are --pure so that
 * every weight is in that format; the others are llama.cpp's mixes, where
 * the named format carries all weights but at most the output matrix).
 * Fixture: tests/fixtures/engine/dist/ from tools/ref/ref_dist.mjs.
 * Asserts per model: mean KL(llama.cpp || engine) <= 0.01 nats over the 32
 * positions, and the same top-1 wherever llama.cpp's top-1/top-2 log-prob
 * gap is >= 0.1. */
#include "testutil.h"
#include "tiny_models.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/quant.h"

#define MAXPOS 64

/* name suffix -> `llorch gguf make --type`, --pure */
static const struct {
    const char *name, *type;
    int pure;
} k_formats[] = {
    {"F16", "F16", 0},    {"BF16", "BF16", 0},  {"Q8_0", "Q8_0", 0},     {"Q4_0", "Q4_0", 0},
    {"Q4_1", "Q4_1", 0},  {"Q5_0", "Q5_0", 0},  {"Q5_1", "Q5_1", 0},     {"Q2_K", "Q2_K", 1},
    {"Q3_K", "Q3_K_M", 1}, {"Q4_K_M", "Q4_K_M", 0}, {"Q5_K", "Q5_K_M", 1}, {"Q6_K", "Q6_K", 0},
    {"MXFP4", "MXFP4", 1},
};

/* Returns the number of failed checks (each printed); fails at once only on setup errors. */
static int check_model(const char *name, int n_pos, int n_vocab, long fsize, uint64_t fnv, const int32_t *toks,
                       double *kl_out) {
    char out[1200], args[128], arch[16];
    const char *dash = strchr(name, '-');
    assert_non_null(dash);
    snprintf(arch, sizeof arch, "%.*s", (int)(dash - name), name);
    int fi = -1;
    for (int i = 0; i < (int)(sizeof k_formats / sizeof k_formats[0]); i++)
        if (!strcmp(dash + 1, k_formats[i].name)) fi = i;
    if (fi < 0) fail_msg("%s: unknown format in the fixture's model name", name);
    snprintf(args, sizeof args, "--arch %s --type %s %s", arch, k_formats[fi].type, k_formats[fi].pure ? "--pure" : "");
    tm_make_tiny("dist-models", name, args, 1, out, sizeof out);
    tm_check_file(out, fsize, fnv, "tests/fixtures/engine/dist with tools/ref/ref_dist.mjs");

    /* llama.cpp's log-probs */
    char rel[256];
    snprintf(rel, sizeof rel, "engine/dist/%.63s.f16", name);
    uint16_t *ref = tm_read_f16(rel, (size_t)n_pos * n_vocab);

    char err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_threads = 2;
    o.n_ctx = 128;
    eng_model *m = NULL;
    if (eng_model_load(out, &o, &m, err, sizeof err)) fail_msg("%s: %s", name, err);
    assert_int_equal(eng_model_get_info(m)->n_vocab, n_vocab);
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    assert_int_equal(eng_eval(s, toks, n_pos, ENG_LOGITS_ALL, err, sizeof err), 0);
    double kl_sum = 0;
    int top1_checked = 0, top1_bad = 0, bad = 0;
    for (int k = 0; k < n_pos; k++) {
        const float *l = eng_logits(s, k);
        assert_non_null(l);
        const struct tm_pos r = tm_vs_ref(l, ref + (size_t)k * n_vocab, n_vocab);
        if (r.ref_gap >= 0.1) {
            top1_checked++;
            if (r.top1 != r.ref_top1) {
                print_message("FAIL %s position %d: top-1 %d, llama.cpp %d (gap %.3f; ours %.3f in favour of %d)\n",
                              name, k, r.top1, r.ref_top1, r.ref_gap, l[r.top1] - l[r.ref_top1], r.top1);
                top1_bad++;
            }
        }
        kl_sum += r.kl;
    }
    double mean_kl = kl_sum / n_pos;
    print_message("%-14s mean KL %.5f nats, top-1 checked at %d/%d positions, %d differ\n", name, mean_kl,
                  top1_checked, n_pos, top1_bad);
    if (!(mean_kl <= 0.01)) {
        print_message("FAIL %s: mean KL %.5f > 0.01\n", name, mean_kl);
        bad++;
    }
    *kl_out = mean_kl;
    free(ref);
    eng_session_free(s);
    eng_model_free(m);
    unlink(out); /* 39 models, ~110 MB: a test machine may be short of disk */
    return bad + top1_bad;
}

static void test_dist_vs_llamacpp(void **st) {
    (void)st;
    char llorch[1024];
    tm_need_llorch(llorch, sizeof llorch);
    int32_t toks[MAXPOS];
    struct tm_model_line ml[64];
    int n_tok, n_bad = 0;
    const int n_models = tm_read_index("engine/dist/index.txt", toks, MAXPOS, &n_tok, ml, 64);
    assert_true(n_tok > 0 && n_tok <= MAXPOS);
    assert_int_equal(n_models, 39); /* 3 archs x 13 formats */
    double worst = 0;
    for (int i = 0; i < n_models; i++) {
        assert_true(ml[i].n_pos <= n_tok);
        double kl;
        n_bad += check_model(ml[i].name, ml[i].n_pos, ml[i].n_vocab, ml[i].fsize, ml[i].fnv, toks, &kl);
        worst = kl > worst ? kl : worst;
    }
    print_message("worst mean KL %.5f\n", worst);
    if (n_bad) fail_msg("%d failed checks (FAIL lines above)", n_bad);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dist_vs_llamacpp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
