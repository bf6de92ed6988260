// test-libs: llorch_engine_cuda llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* test_cuda_gptoss — gpt-oss on the CUDA backend against the CPU backend
 * (which equals llama.cpp on these models: tests/unit/test_engine_gptoss.c),
 * on the tiny synthetic gpt-oss models made at test time by the built
 * `llorch gguf make --preset tiny --arch gpt-oss --swa 16 --seed 1` (4
 * layers, width 256, 4 experts of width 256, 2 used, sliding window 16 on
 * layers 0 and 2, sinks, YaRN; stories260K's vocabulary), MXFP4 and F16:
 *   - teacher-forced distributions over the first 64 tokens of the fixture
 *     text (so the window of 16 slides), in one batch (the prefill path:
 *     tiled attention with sinks/window, chunked matmul_id) and one token at
 *     a time (the decode path: CUDA graph record/replay): mean KL(cpu ||
 *     cuda) <= 0.01 nats;
 *   - the decode path through the CUDA graph equals eager launches
 *     (LLORCH_CUDA_NO_GRAPH=1) to 1e-5 in every logit (the same kernels in
 *     the same order: a graph that replayed stale inputs would not);
 *   - greedy continuations of the fixture's 3 prompts (40 tokens each): the
 *     same ids on both backends. The two are not bitwise equal (fp32
 *     summation order, fp16 tensor-core prefill matmuls, and above all the
 *     CPU's fp16 attention accumulator, llama.cpp's, against the GPU's fp32:
 *     ~1e-3 relative), so a first divergence is accepted (and printed) only
 *     where the CPU's own top-1/top-2 logit gap is a near-tie: below 0.01 on
 *     the F16 model; below 0.1 on the MXFP4 one (the threshold
 *     test_engine_gptoss.c uses against llama.cpp). That random MXFP4 model
 *     amplifies small differences: every activation is rounded to Q8_0
 *     (where one int8 moves, its matmul moves), and a router near-tie swaps
 *     an expert; the CPU's own prefill and decode, with bit-identical
 *     attention, differ by KL ~1e-3 there (test_engine_gptoss.c). First H100
 *     run (before the GPU's Q8_0 activation rounding was made the CPU's):
 *     MXFP4 mean KL 0.0095 prefill / 0.0076 decode (max 0.25), greedy
 *     divergence at a gap of 0.052; F16 mean KL 6e-6, all 120 ids equal.
 * Exits 77 where no CUDA device exists; skips where llorch is not built. */
#include <errno.h>
#include <math.h>
#include <sys/stat.h>

#include "engine/backend.h"
#include "engine/engine.h"
#include "gpu/cuda_probe.h"
#include "testutil.h"
#include "tiny_models.h"


#define N_POS 64
#define N_GEN 40

static void need_llorch(void) {
    char llorch[1024];
    tm_need_llorch(llorch, sizeof llorch);
}

static eng_model *load(const char *path, int backend) { return tm_load(path, backend, 2, 128); }

/* the fixture's token line (index.txt "tokens N ids...") */
static int fixture_tokens(int32_t *toks, int cap) {
    char path[1024], line[8192];
    FILE *f = fopen(TU_FIXTURE(path, "engine/gptoss/index.txt"), "r");
    assert_non_null(f);
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "tokens ", 7)) n = tm_parse_ids(line, "tokens", toks, cap);
    fclose(f);
    return n;
}

/* all N_POS rows' logits of the teacher-forced tokens: one batch or one token per eval */
static float *dist(eng_model *m, const int32_t *toks, int one_by_one) {
    char err[512];
    const int nv = eng_model_get_info(m)->n_vocab;
    float *all = malloc((size_t)N_POS * nv * sizeof *all);
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    if (!one_by_one && eng_eval(s, toks, N_POS, ENG_LOGITS_ALL, err, sizeof err)) fail_msg("eval: %s", err);
    for (int k = 0; k < N_POS; k++) {
        if (one_by_one && eng_eval(s, &toks[k], 1, ENG_LOGITS_LAST, err, sizeof err)) fail_msg("eval: %s", err);
        const float *l = eng_logits(s, one_by_one ? -1 : k);
        assert_non_null(l);
        memcpy(all + (size_t)k * nv, l, (size_t)nv * sizeof *l);
    }
    eng_session_free(s);
    return all;
}


/* greedy ids of `prompt` + N_GEN, with the CPU gap at each generated step */
static void greedy(eng_model *m, const int32_t *prompt, int np, int32_t *gen, double *gap) {
    char err[512];
    const int nv = eng_model_get_info(m)->n_vocab;
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    if (eng_eval(s, prompt, np, ENG_LOGITS_LAST, err, sizeof err)) fail_msg("eval: %s", err);
    for (int i = 0; i < N_GEN; i++) {
        const float *l = eng_logits(s, -1);
        gen[i] = tm_argmax(l, nv);
        if (gap) gap[i] = tm_top_gap(l, nv);
        if (eng_eval(s, &gen[i], 1, ENG_LOGITS_LAST, err, sizeof err)) fail_msg("eval: %s", err);
    }
    eng_session_free(s);
}

static void check_type(const char *type, double near_tie) {
    char path[1200];
    tm_make_gptoss(type, path, sizeof path);
    eng_model *mc = load(path, ENG_BACKEND_CPU), *mg = load(path, ENG_BACKEND_CUDA);
    const eng_model_info *ig = eng_model_get_info(mg);
    assert_string_equal(ig->arch, "gpt-oss");
    assert_string_equal(ig->memory_architecture, "vram-only");
    char why[256];
    assert_int_equal(eng_model_check_residency(mg, why, sizeof why), 1);
    const int nv = ig->n_vocab;
    assert_int_equal(eng_model_get_info(mc)->n_vocab, nv);

    int32_t toks[128];
    assert_true(fixture_tokens(toks, 128) >= N_POS);
    for (int one = 0; one < 2; one++) {
        float *lc = dist(mc, toks, one), *lg = dist(mg, toks, one);
        double sum = 0, mx = 0;
        for (int k = 0; k < N_POS; k++) {
            const double kl = tm_kl_logits(lc + (size_t)k * nv, lg + (size_t)k * nv, nv);
            sum += kl;
            mx = kl > mx ? kl : mx;
        }
        print_message("gpt-oss-%s %-7s: mean KL(cpu || cuda) %.3g nats (max %.3g) over %d positions\n", type,
                      one ? "decode" : "prefill", sum / N_POS, mx, N_POS);
        if (!(sum / N_POS <= 0.01)) fail_msg("gpt-oss-%s %s: mean KL %.4g > 0.01", type, one ? "decode" : "prefill",
                                             sum / N_POS);
        free(lc);
        free(lg);
    }

    /* the decode graph against eager launches of the same kernels
     * (LLORCH_CUDA_NO_GRAPH is read when a backend is created): the same
     * ops in the same order, so equal up to nothing */
    {
        setenv("LLORCH_CUDA_NO_GRAPH", "1", 1);
        eng_model *me = load(path, ENG_BACKEND_CUDA);
        unsetenv("LLORCH_CUDA_NO_GRAPH");
        float *lg = dist(mg, toks, 1), *le = dist(me, toks, 1);
        double mx = 0;
        for (size_t i = 0; i < (size_t)N_POS * nv; i++) {
            const double d = fabs((double)lg[i] - le[i]);
            mx = d > mx ? d : mx;
        }
        print_message("gpt-oss-%s decode: graph vs eager launches, max |logit difference| %.3g\n", type, mx);
        if (!(mx <= 1e-5)) fail_msg("gpt-oss-%s: the decode graph differs from eager launches by %.3g", type, mx);
        free(lg);
        free(le);
        eng_model_free(me);
    }

    const int32_t prompts[3][5] = {{1, 403, 407, 261, 378}, {1, 291, 376, 400, 428}, {1, 317, 391, 266, 267}};
    for (int p = 0; p < 3; p++) {
        int32_t gc[N_GEN], gg[N_GEN];
        double gap[N_GEN];
        greedy(mc, prompts[p], 5, gc, gap);
        greedy(mg, prompts[p], 5, gg, NULL);
        int i = 0;
        while (i < N_GEN && gc[i] == gg[i]) i++;
        if (i == N_GEN) {
            print_message("gpt-oss-%s greedy prompt %d: %d/%d ids equal\n", type, p, N_GEN, N_GEN);
            continue;
        }
        print_message("gpt-oss-%s greedy prompt %d: first difference at token %d (cpu %d, cuda %d, cpu top-2 gap %.4g)\n",
                      type, p, i, gc[i], gg[i], gap[i]);
        if (!(gap[i] < near_tie)) fail_msg("gpt-oss-%s: greedy ids differ at token %d where the gap is %.4g", type, i,
                                           gap[i]);
    }
    eng_model_free(mg);
    eng_model_free(mc);
}

static void test_gptoss_mxfp4(void **st) {
    (void)st;
    need_llorch();
    check_type("MXFP4", 0.1);
}

static void test_gptoss_f16(void **st) {
    (void)st;
    need_llorch();
    check_type("F16", 0.01);
}

int main(void) {
    const int probe = tc_cuda_probe("test_cuda_gptoss");
    if (probe) return probe;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gptoss_mxfp4), cmocka_unit_test(test_gptoss_f16)};
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
