// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* engine vs llama.cpp: greedy continuations of stories260K (F32) must be the
 * same token ids llama.cpp produced (tests/fixtures/engine/greedy_stories260K.txt,
 * made by tools/ref/ref_greedy.mjs; the command is in the file). Run at 1 and
 * 2 threads, and once feeding the prompt token by token (decode path only).
 * Then the same for stories260K requantized by the built `llorch gguf
 * quantize` to Q8_0, Q5_0, Q5_1, Q4_0, Q4_1 (48 tokens, three prompts; the
 * fixture records the quantized file's size and FNV-1a 64, checked first),
 * at 2 threads and at 1 thread one by one.
 * Every id must match, for every type: the CPU backend reproduces llama.cpp's
 * CPU numerics op by op (bitwise on these models: flash attention with fp16
 * Q and fp16 accumulation, its SIMD exp in SwiGLU, its f16 dot order, FMA
 * in RoPE; tools/ref/ref_dump_tensors.c + tools/ref/cmp_dump.py compare the
 * two tensor by tensor), so even near-ties resolve the same way. */
#include "testutil.h"
#include "tiny_models.h"

#include <sys/stat.h>

#include "engine/engine.h"

#define MAX_CASES 8
#define MAX_IDS 128

static long want_size;
static uint64_t want_fnv;

typedef struct {
    char text[128];
    int n_prompt, n_gen;
    int32_t prompt[MAX_IDS], gen[MAX_IDS];
} gcase;

static int read_ids(const char *line, const char *tag, int32_t *out) {
    size_t tl = strlen(tag);
    if (strncmp(line, tag, tl) != 0 || line[tl] != ' ') return -1;
    const char *p = line + tl + 1;
    char *end;
    long n = strtol(p, &end, 10);
    if (n < 0 || n > MAX_IDS) return -1;
    p = end;
    for (long i = 0; i < n; i++) {
        out[i] = (int32_t)strtol(p, &end, 10);
        if (end == p) return -1;
        p = end;
    }
    return (int)n;
}

static int load_cases(const char *name, gcase *cs) {
    char path[1024], line[4096];
    FILE *f = fopen(TU_FIXTURE(path, name), "r");
    assert_non_null(f);
    int n = -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0] == '#' || !line[0]) continue;
        if (!strncmp(line, "file ", 5)) {
            char hex[32];
            assert_int_equal(sscanf(line + 5, "%ld %31s", &want_size, hex), 2);
            want_fnv = strtoull(hex, NULL, 16);
            continue;
        }
        if (!strncmp(line, "case ", 5)) {
            assert_true(++n < MAX_CASES);
            size_t tl = strlen(line + 5);
            assert_true(tl < sizeof cs[n].text);
            memcpy(cs[n].text, line + 5, tl + 1);
        } else if (!strncmp(line, "prompt ", 7)) {
            cs[n].n_prompt = read_ids(line, "prompt", cs[n].prompt);
        } else if (!strncmp(line, "gen ", 4)) {
            cs[n].n_gen = read_ids(line, "gen", cs[n].gen);
        }
    }
    fclose(f);
    return n + 1;
}

static eng_model *load(const char *path, int threads) {
    char err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_threads = threads;
    eng_model *m = NULL;
    int rc = eng_model_load(path, &o, &m, err, sizeof err);
    if (rc) fail_msg("load %s: %s", path, err);
    return m;
}

/* generates n greedy ids after the prompt; one_by_one feeds the prompt in single steps */
/* gap[i] = our logit of out[i] minus our logit of llama.cpp's token at step i */
static float gaps[MAX_IDS];

static void greedy(eng_model *m, const gcase *c, int one_by_one, int32_t *out) {
    char err[512];
    eng_session *s = NULL;
    assert_int_equal(eng_session_new(m, &s, err, sizeof err), 0);
    eng_sampling_params sp;
    eng_sampling_params_default(&sp);
    sp.temperature = 0;
    eng_sampler *smp = eng_sampler_new(&sp, eng_model_get_info(m)->n_vocab);
    if (one_by_one) {
        for (int i = 0; i < c->n_prompt; i++) assert_int_equal(eng_eval(s, &c->prompt[i], 1, ENG_LOGITS_LAST, err, sizeof err), 0);
    } else {
        assert_int_equal(eng_eval(s, c->prompt, c->n_prompt, ENG_LOGITS_LAST, err, sizeof err), 0);
    }
    for (int i = 0; i < c->n_gen; i++) {
        const float *l = eng_logits(s, -1);
        assert_non_null(l);
        assert_int_equal(eng_sample(s, smp, &out[i]), 0);
        gaps[i] = l[out[i]] - l[c->gen[i]];
        if (i + 1 < c->n_gen) {
            int rc = eng_eval(s, &out[i], 1, ENG_LOGITS_LAST, err, sizeof err);
            if (rc) fail_msg("eval: %s", err);
        }
    }
    assert_int_equal(eng_session_n_past(s), c->n_prompt + c->n_gen - 1);
    eng_sampler_free(smp);
    eng_session_free(s);
}

static void check_model(const char *model, const char *fixture, int threads, int one_by_one) {
    gcase cs[MAX_CASES];
    memset(cs, 0, sizeof cs);
    int n = load_cases(fixture, cs);
    assert_true(n >= 3);
    eng_model *m = load(model, threads);
    const char *base = strrchr(model, '/');
    model = base ? base + 1 : model;
    /* our tokenizer must agree with llama.cpp's prompt ids */
    const tok_vocab *v = eng_model_vocab(m);
    for (int c = 0; c < n; c++) {
        int32_t ids[MAX_IDS];
        int k = tok_encode(v, cs[c].text, strlen(cs[c].text), 1, 0, ids, MAX_IDS);
        if (k != cs[c].n_prompt || memcmp(ids, cs[c].prompt, (size_t)k * sizeof *ids))
            print_message("note: tokenizer differs from llama.cpp on \"%s\" (test uses llama.cpp's ids)\n", cs[c].text);
    }
    for (int c = 0; c < n; c++) {
        int32_t out[MAX_IDS];
        greedy(m, &cs[c], one_by_one, out);
        for (int i = 0; i < cs[c].n_gen; i++) {
            if (out[i] == cs[c].gen[i]) continue;
            fail_msg("%s \"%s\" (threads %d%s): token %d is %d, llama.cpp has %d (our logit gap %.4f)", model,
                     cs[c].text, threads, one_by_one ? ", one by one" : "", i, out[i], cs[c].gen[i], (double)gaps[i]);
        }
    }
    eng_model_free(m);
}

static void test_stories_greedy_1t(void **st) {
    (void)st;
    char p[1024];
    check_model(TU_MODEL(p, "stories260K.gguf"), "engine/greedy_stories260K.txt", 1, 0);
}

static void test_stories_greedy_2t(void **st) {
    (void)st;
    char p[1024];
    check_model(TU_MODEL(p, "stories260K.gguf"), "engine/greedy_stories260K.txt", 2, 0);
}

static void test_stories_greedy_decode_only(void **st) {
    (void)st;
    char p[1024];
    check_model(TU_MODEL(p, "stories260K.gguf"), "engine/greedy_stories260K.txt", 2, 1);
}

static void quantized(const char *type) {
    char llorch[1024], src[1024], dir[1024], out[1200], fx[128], cmd[4096], regen[256];
    tm_need_llorch(llorch, sizeof llorch);
    TU_BUILD(dir, "greedy-models");
    mkdir(dir, 0755);
    snprintf(out, sizeof out, "%s/stories260K-%s.gguf", dir, type);
    snprintf(cmd, sizeof cmd, "'%s' gguf quantize '%s' '%s' %s >/dev/null 2>&1", llorch,
             TU_MODEL(src, "stories260K.gguf"), out, type);
    if (system(cmd) != 0) fail_msg("cannot quantize: %s", cmd);
    snprintf(fx, sizeof fx, "engine/greedy_stories260K-%s.txt", type);
    gcase cs[MAX_CASES];
    want_size = -1;
    load_cases(fx, cs);
    snprintf(regen, sizeof regen, "tests/fixtures/%s with tools/ref/ref_greedy.mjs", fx);
    tm_check_file(out, want_size, want_fnv, regen);
    check_model(out, fx, 2, 0);
    check_model(out, fx, 1, 1);
}

static void test_q8_0(void **st) { (void)st; quantized("Q8_0"); }
static void test_q5_0(void **st) { (void)st; quantized("Q5_0"); }
static void test_q5_1(void **st) { (void)st; quantized("Q5_1"); }
static void test_q4_0(void **st) { (void)st; quantized("Q4_0"); }
static void test_q4_1(void **st) { (void)st; quantized("Q4_1"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_greedy_1t),
        cmocka_unit_test(test_stories_greedy_2t),
        cmocka_unit_test(test_stories_greedy_decode_only),
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_q5_0),
        cmocka_unit_test(test_q5_1),
        cmocka_unit_test(test_q4_0),
        cmocka_unit_test(test_q4_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
