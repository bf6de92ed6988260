// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* gpt-oss on the CPU engine vs llama.cpp, on synthetic tiny gpt-oss models
 * made at test time by the built `llorch gguf make --preset tiny --arch
 * gpt-oss --swa 16 --seed 1` (4 layers, width 256, 4 experts of width 256,
 * 2 used, sliding window 16 on layers 0 and 2, YaRN, stories260K's
 * vocabulary) exactly as the fixtures' models were (size and FNV-1a 64 are
 * checked first). Fixtures: tests/fixtures/engine/gptoss/ from
 * tools/ref/ref_gptoss.sh (node-llama-cpp's llama.cpp CPU build).
 *   - teacher-forced distributions over 80 positions (so the window of 16
 *     slides), evaluated in one batch and one token at a time: mean
 *     KL(llama.cpp || engine) <= 0.01 nats, and the same top-1 wherever
 *     llama.cpp's top-1/top-2 gap is >= 0.1;
 *   - greedy continuations: the same ids as llama.cpp;
 *   - prefill and one-token decode agree (the window in both paths);
 *   - malformed gpt-oss files (wrong expert count, too many experts used,
 *     missing sinks, missing sliding window key) are refused with messages
 *     that name the problem;
 *   - the CPU backend's op scratch (quantized activation rows, matmul_id's
 *     gathered rows) is allocated when the model loads, sized for n_batch
 *     rows of k experts, and an eval of n_batch rows and then of one row
 *     keeps the very same buffers (it would assert if an op needed more);
 *   - a backend without the gpt-oss ops (as the CUDA one was before it
 *     had them) makes the load fail with ENG_E_UNSUPPORTED (checked with the CPU backend's vtable
 *     minus those ops, through the engine's private model.c entry points). */
#include "testutil.h"
#include "tiny_models.h"

#include <math.h>
#include <sys/stat.h>

#include "engine/cpu/cpu_int.h"
#include "engine/engine.h"
#include "engine/engine_int.h"
#include "engine/quant.h"

#define MAXPOS 128

static void need_llorch(void) {
    char llorch[1024];
    tm_need_llorch(llorch, sizeof llorch);
}

#define REGEN "tests/fixtures/engine/gptoss with tools/ref/ref_gptoss.sh"

static eng_model *load(const char *path, int n_threads, int n_batch) {
    char err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_threads = n_threads;
    o.n_ctx = 128;
    o.n_batch = n_batch;
    eng_model *m = NULL;
    if (eng_model_load(path, &o, &m, err, sizeof err)) fail_msg("%s: %s", path, err);
    assert_string_equal(eng_model_get_info(m)->arch, "gpt-oss");
    return m;
}

/* ---- teacher-forced distributions ---------------------------------------------- */
/* one_by_one 0: one eval of all positions (ALL rows); 1: one token per eval
 * (the decode path, as llama.cpp made the fixture) */
static int check_dist(const char *name, int n_pos, int n_vocab, long fsize, uint64_t fnv, const int32_t *toks,
                      int one_by_one) {
    const char *type = name + strlen("gpt-oss-");
    char path[1200];
    tm_make_gptoss(type, path, sizeof path);
    tm_check_file(path, fsize, fnv, REGEN);

    char rel[256];
    snprintf(rel, sizeof rel, "engine/gptoss/%.63s.f16", name);
    uint16_t *ref = tm_read_f16(rel, (size_t)n_pos * n_vocab);

    char err[512];
    eng_model *m = load(path, 2, 0);
    assert_int_equal(eng_model_get_info(m)->n_vocab, n_vocab);
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    if (!one_by_one && eng_eval(s, toks, n_pos, ENG_LOGITS_ALL, err, sizeof err)) fail_msg("%s: %s", name, err);
    double kl_sum = 0, kl_max = 0;
    int top1_checked = 0, top1_bad = 0, bad = 0;
    for (int k = 0; k < n_pos; k++) {
        if (one_by_one) assert_int_equal(eng_eval(s, &toks[k], 1, ENG_LOGITS_LAST, err, sizeof err), 0);
        const float *l = eng_logits(s, one_by_one ? -1 : k);
        assert_non_null(l);
        const struct tm_pos r = tm_vs_ref(l, ref + (size_t)k * n_vocab, n_vocab);
        if (r.ref_gap >= 0.1) {
            top1_checked++;
            if (r.top1 != r.ref_top1) {
                print_message("FAIL %s position %d: top-1 %d, llama.cpp %d (gap %.3f)\n", name, k, r.top1, r.ref_top1,
                              r.ref_gap);
                top1_bad++;
            }
        }
        kl_sum += r.kl;
        kl_max = r.kl > kl_max ? r.kl : kl_max;
    }
    const double mean_kl = kl_sum / n_pos;
    print_message("%-14s %-7s mean KL %.6f nats (max %.6f), top-1 checked at %d/%d positions, %d differ\n", name,
                  one_by_one ? "decode" : "prefill", mean_kl, kl_max, top1_checked, n_pos, top1_bad);
    if (!(mean_kl <= 0.01)) {
        print_message("FAIL %s: mean KL %.6f > 0.01\n", name, mean_kl);
        bad++;
    }
    free(ref);
    eng_session_free(s);
    eng_model_free(m);
    return bad + top1_bad;
}

static void test_dist_vs_llamacpp(void **st) {
    (void)st;
    need_llorch();
    int32_t toks[MAXPOS];
    struct tm_model_line ml[8];
    int n_tok, n_bad = 0;
    const int n_models = tm_read_index("engine/gptoss/index.txt", toks, MAXPOS, &n_tok, ml, 8);
    assert_true(n_tok >= 64 && n_tok <= MAXPOS);
    assert_int_equal(n_models, 2); /* MXFP4 (llama.cpp's MXFP4_MOE mix), F16 */
    for (int i = 0; i < n_models; i++) {
        assert_true(ml[i].n_pos <= n_tok && ml[i].n_pos >= 64);
        assert_true(!strncmp(ml[i].name, "gpt-oss-", 8));
        for (int one_by_one = 0; one_by_one < 2; one_by_one++)
            n_bad += check_dist(ml[i].name, ml[i].n_pos, ml[i].n_vocab, ml[i].fsize, ml[i].fnv, toks, one_by_one);
    }
    if (n_bad) fail_msg("%d failed checks (FAIL lines above)", n_bad);
}

/* ---- greedy continuations --------------------------------------------------------- */
static void check_greedy(const char *type, int n_threads) {
    char fx[1024], rel[256], line[8192], path[1200], err[512];
    snprintf(rel, sizeof rel, "engine/gptoss/greedy-%s.txt", type);
    FILE *f = fopen(TU_FIXTURE(fx, rel), "r");
    assert_non_null(f);
    tm_make_gptoss(type, path, sizeof path);
    eng_model *m = load(path, n_threads, 0);
    const int nv = eng_model_get_info(m)->n_vocab;
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    int32_t prompt[64], gen[128];
    int np = -1, n_cases = 0, n_bad = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "file ", 5)) {
            long sz;
            char hex[32];
            assert_int_equal(sscanf(line + 5, "%ld %31s", &sz, hex), 2);
            tm_check_file(path, sz, strtoull(hex, NULL, 16), REGEN);
        } else if (!strncmp(line, "prompt ", 7)) {
            np = tm_parse_ids(line, "prompt", prompt, 64);
            assert_true(np > 0);
        } else if (!strncmp(line, "gen ", 4)) {
            int ng = tm_parse_ids(line, "gen", gen, 128);
            assert_true(ng > 0 && np > 0);
            eng_session_reset(s);
            assert_int_equal(eng_eval(s, prompt, np, ENG_LOGITS_LAST, err, sizeof err), 0);
            int i = 0;
            for (; i < ng; i++) {
                int32_t t = tm_argmax(eng_logits(s, -1), nv);
                if (t != gen[i]) break;
                if (i + 1 < ng) assert_int_equal(eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err), 0);
            }
            if (i < ng) {
                print_message("FAIL %s case %d (%d threads): token %d is %d, llama.cpp %d\n", type, n_cases, n_threads,
                              i, tm_argmax(eng_logits(s, -1), nv), gen[i]);
                n_bad++;
            }
            n_cases++;
            np = -1;
        }
    }
    fclose(f);
    eng_session_free(s);
    eng_model_free(m);
    assert_int_equal(n_cases, 3);
    print_message("gpt-oss-%s greedy (%d threads): %d/%d cases equal llama.cpp's ids\n", type, n_threads,
                  n_cases - n_bad, n_cases);
    if (n_bad) fail_msg("%d greedy cases differ from llama.cpp", n_bad);
}

static void test_greedy_mxfp4(void **st) {
    (void)st;
    need_llorch();
    check_greedy("MXFP4", 1);
    check_greedy("MXFP4", 2);
}

static void test_greedy_f16(void **st) {
    (void)st;
    need_llorch();
    check_greedy("F16", 2);
}

/* ---- prefill vs decode -------------------------------------------------------------- */
/* One batch of 40 tokens (ALL rows) vs the same tokens one at a time, so
 * the sliding window is crossed in both paths. Not bitwise: the F32 router
 * sums several rows in another order than one (as llama.cpp's tinyBLAS vs
 * vec_dot), and a last-bit difference can move one int8 of a Q8_0-quantized
 * activation row, which this random model amplifies to ~1e-2 in logits
 * (seen with LLORCH_DUMP_TENSORS: layers 0-2 agree to 5e-7, layer 3's
 * q/k/v by 3e-3). So the distributions are compared. */
static void test_prefill_equals_decode(void **st) {
    (void)st;
    need_llorch();
    char path[1200], err[512];
    tm_make_gptoss("MXFP4", path, sizeof path);
    eng_model *m = load(path, 2, 0);
    const int nv = eng_model_get_info(m)->n_vocab, n = 40;
    int32_t toks[40];
    uint64_t seed = 7;
    for (int i = 0; i < n; i++) toks[i] = (int32_t)(tu_rng(&seed) % (uint64_t)nv);
    eng_session *a = NULL, *b = NULL;
    assert_int_equal(eng_session_new(m, &a, err, sizeof err), 0);
    assert_int_equal(eng_session_new(m, &b, err, sizeof err), 0);
    assert_int_equal(eng_eval(a, toks, n, ENG_LOGITS_ALL, err, sizeof err), 0);
    double worst = 0, sum = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(eng_eval(b, &toks[i], 1, ENG_LOGITS_LAST, err, sizeof err), 0);
        const double kl = tm_kl_logits(eng_logits(a, i), eng_logits(b, -1), nv);
        worst = kl > worst ? kl : worst;
        sum += kl;
    }
    print_message("prefill vs decode: KL mean %.3g, max %.3g nats over %d positions\n", sum / n, worst, n);
    assert_true(sum / n <= 1e-3 && worst <= 1e-2);
    eng_session_free(a);
    eng_session_free(b);
    eng_model_free(m);
}

/* ---- op scratch: allocated at load, never during an eval ------------------------------ */
static void test_scratch_reserved_at_load(void **st) {
    (void)st;
    need_llorch();
    char path[1200], err[512];
    tm_make_gptoss("MXFP4", path, sizeof path);
    const int nb = 32;
    eng_model *m = load(path, 2, nb);
    cpu_ctx *c = m->be.ctx; /* white box: the CPU backend's scratch */
    const int K = m->hp.n_expert_used;
    assert_true(c->reserved);
    assert_non_null(c->mbuf);
    assert_non_null(c->qbuf);
    const eng_layer *L = &m->layers[0];
    assert_true(c->mbuf_cap >= cpu_matmul_id_scratch_bytes(&L->w_up_exps, nb * K));
    assert_true(c->mbuf_cap >= cpu_matmul_id_scratch_bytes(&L->w_down_exps, nb * K));
    assert_true(c->qbuf_cap >= cpu_matmul_scratch_bytes(&L->w_down_exps, nb * K));
    assert_true(c->qbuf_cap >= cpu_matmul_scratch_bytes(&m->output, nb));
    void *mbuf = c->mbuf, *qbuf = c->qbuf;
    const size_t mcap = c->mbuf_cap, qcap = c->qbuf_cap;
    const int nv = eng_model_get_info(m)->n_vocab;
    int32_t toks[32];
    uint64_t seed = 11;
    for (int i = 0; i < nb; i++) toks[i] = (int32_t)(tu_rng(&seed) % (uint64_t)nv);
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    assert_int_equal(eng_eval(s, toks, nb, ENG_LOGITS_ALL, err, sizeof err), 0); /* n_batch rows, every expert */
    assert_int_equal(eng_eval(s, toks, 1, ENG_LOGITS_LAST, err, sizeof err), 0);
    assert_ptr_equal(c->mbuf, mbuf);
    assert_ptr_equal(c->qbuf, qbuf);
    assert_int_equal(c->mbuf_cap, mcap);
    assert_int_equal(c->qbuf_cap, qcap);
    eng_session_free(s);
    eng_model_free(m);
}

/* ---- malformed files ---------------------------------------------------------------- */
static unsigned char *slurp(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n);
    assert_int_equal(fread(b, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
    return b;
}

static long find(const unsigned char *b, long n, const char *s) {
    long sl = (long)strlen(s);
    for (long i = 0; i + sl <= n; i++)
        if (!memcmp(b + i, s, (size_t)sl)) return i;
    return -1;
}

/* Copies the model with the bytes of `what` replaced by `with` (same length)
 * at its first occurrence, or, with value >= 0, the u32 value of the
 * metadata key `what` set to value; loads it and checks the refusal. */
static void expect_refusal(const char *src, const char *what, const char *with, long value, int want_rc,
                           const char *want_msg) {
    long n;
    unsigned char *b = slurp(src, &n);
    long at = find(b, n, what);
    assert_true(at > 0);
    if (value >= 0) {
        /* key string, then the value type (u32 = 4) and the value */
        long v = at + (long)strlen(what);
        uint32_t ty;
        memcpy(&ty, b + v, 4);
        assert_int_equal(ty, 4);
        uint32_t u = (uint32_t)value;
        memcpy(b + v + 4, &u, 4);
    } else {
        assert_int_equal(strlen(with), strlen(what));
        memcpy(b + at, with, strlen(with));
    }
    char out[1200];
    snprintf(out, sizeof out, "%s.bad.gguf", src);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    free(b);
    char err[512] = "";
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_threads = 1;
    o.n_ctx = 64;
    eng_model *m = NULL;
    int rc = eng_model_load(out, &o, &m, err, sizeof err);
    print_message("%s -> %s: %s\n", what, eng_err_name(rc), err);
    assert_null(m);
    assert_int_equal(rc, want_rc);
    if (!strstr(err, want_msg)) fail_msg("message '%s' does not name '%s'", err, want_msg);
    remove(out);
}

static void test_malformed(void **st) {
    (void)st;
    need_llorch();
    char path[1200];
    tm_make_gptoss("MXFP4", path, sizeof path);
    /* the metadata says 8 experts, the tensors hold 4 */
    expect_refusal(path, "gpt-oss.expert_count", NULL, 8, ENG_E_INVAL, "blk.0.ffn_gate_inp.weight");
    /* more experts used than exist */
    expect_refusal(path, "gpt-oss.expert_used_count", NULL, 5, ENG_E_INVAL, "expert_used_count");
    expect_refusal(path, "gpt-oss.expert_count", NULL, 0, ENG_E_INVAL, "expert_count");
    /* no sinks tensor in layer 0 (its name spoiled) */
    expect_refusal(path, "blk.0.attn_sinks.weight", "blk.0.attn_sinkX.weight", -1, ENG_E_INVAL,
                   "missing tensor 'blk.0.attn_sinks.weight'");
    /* no sliding-window key (its name spoiled) */
    expect_refusal(path, "gpt-oss.attention.sliding_window", "gpt-oss.attention.sliding_windoX", -1, ENG_E_INVAL,
                   "gpt-oss.attention.sliding_window");
    /* an unknown MoE architecture is still refused by name */
    expect_refusal(path, "gpt-oss", "gpt-osX", -1, ENG_E_UNSUPPORTED, "not supported");
}

/* ---- a backend without the gpt-oss ops --------------------------------------------- */
static void test_backend_without_moe_ops_refused(void **st) {
    (void)st;
    need_llorch();
    char path[1200], err[512] = "";
    tm_make_gptoss("MXFP4", path, sizeof path);
    eng_model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    assert_int_equal(gguf_open(path, &m->g, err, sizeof err), 0);
    m->n_ctx = 64;
    m->n_batch = 64;
    assert_int_equal(eng_model_parse(m, err, sizeof err), 0);
    assert_int_equal(m->hp.arch, ENG_ARCH_GPT_OSS);
    assert_int_equal(m->hp.n_expert, 4);
    assert_int_equal(m->hp.n_expert_used, 2);
    assert_int_equal(m->hp.n_swa, 16);
    assert_int_equal(m->layers[0].swa, 16); /* even layers slide, odd ones do not */
    assert_int_equal(m->layers[1].swa, 0);
    assert_int_equal(m->layers[0].w_up_exps.ne2, 4);
    eng_backend cpu;
    assert_int_equal(eng_backend_cpu_new(1, 0, &cpu, err, sizeof err), 0);
    eng_backend_ops ops = *cpu.ops; /* as a backend that has the dense ops only */
    ops.name = "dense-only";
    ops.moe_route = NULL;
    ops.matmul_id = NULL;
    ops.swiglu_oai = NULL;
    ops.moe_sum = NULL;
    ops.attention_ext = NULL;
    m->be.ops = &ops;
    m->be.ctx = cpu.ctx;
    int rc = eng_model_bind(m, NULL, err, sizeof err);
    print_message("dense-only backend: %s: %s\n", eng_err_name(rc), err);
    assert_int_equal(rc, ENG_E_UNSUPPORTED);
    assert_non_null(strstr(err, "gpt-oss"));
    assert_non_null(strstr(err, "dense-only"));
    ops.attention_ext = cpu.ops->attention_ext; /* one op missing is enough */
    assert_int_equal(eng_model_bind(m, NULL, err, sizeof err), ENG_E_UNSUPPORTED);
    cpu.ops->destroy(cpu.ctx);
    free(m->layers);
    free(m->refs);
    gguf_close(m->g);
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_backend_without_moe_ops_refused),
        cmocka_unit_test(test_prefill_equals_decode),
        cmocka_unit_test(test_scratch_reserved_at_load),
        cmocka_unit_test(test_dist_vs_llamacpp),
        cmocka_unit_test(test_greedy_mxfp4),
        cmocka_unit_test(test_greedy_f16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
