// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* engine vs llama.cpp: greedy continuations of stories260K (F32) must be the
 * same token ids llama.cpp produced (tests/fixtures/engine/greedy_stories260K.txt,
 * made by tools/ref/ref_greedy.mjs; the command is in the file). Run at 1 and
 * 2 threads, and once feeding the prompt token by token (decode path only). */
#include "testutil.h"

#include "engine/engine.h"

#define MAX_CASES 8
#define MAX_IDS 128

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

static eng_model *load(const char *model, int threads) {
    char path[1024], err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_threads = threads;
    eng_model *m = NULL;
    int rc = eng_model_load(TU_MODEL(path, model), &o, &m, err, sizeof err);
    if (rc) fail_msg("load %s: %s", model, err);
    return m;
}

/* generates n greedy ids after the prompt; one_by_one feeds the prompt in single steps */
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
        assert_int_equal(eng_sample(s, smp, &out[i]), 0);
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
            if (out[i] != cs[c].gen[i])
                fail_msg("%s \"%s\" (threads %d%s): token %d is %d, llama.cpp has %d", model, cs[c].text, threads,
                         one_by_one ? ", one by one" : "", i, out[i], cs[c].gen[i]);
        }
    }
    eng_model_free(m);
}

static void test_stories_greedy_1t(void **st) {
    (void)st;
    check_model("stories260K.gguf", "engine/greedy_stories260K.txt", 1, 0);
}

static void test_stories_greedy_2t(void **st) {
    (void)st;
    check_model("stories260K.gguf", "engine/greedy_stories260K.txt", 2, 0);
}

static void test_stories_greedy_decode_only(void **st) {
    (void)st;
    check_model("stories260K.gguf", "engine/greedy_stories260K.txt", 2, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories_greedy_1t),
        cmocka_unit_test(test_stories_greedy_2t),
        cmocka_unit_test(test_stories_greedy_decode_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
