// test-libs: llorch_tok llorch_gguf llorch_core
/* tokenizer: loading hostile/malformed vocabularies (refused with a message
 * naming the problem) and hand-built SPM/BPE vocabularies whose ids are worked
 * out by hand: merge order, byte fallback, ignore_merges, special tokens,
 * text-detected EOG, clean-up spaces. */
#include "testutil.h"

#include <errno.h>

#include "common/util.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#define ARR(...) ((const char *const[]){__VA_ARGS__})
#define NARR(...) (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* writes w to the build dir, opens it, loads the vocab; returns rc */
static int load_w(gguf_writer *w, const char *name, tok_vocab **v, char *err, size_t errlen) {
    char path[1024], f[256];
    snprintf(f, sizeof f, "tok_vocab_test_%s.gguf", name);
    TU_BUILD(path, f);
    char e2[256];
    assert_int_equal(gguf_w_write(w, path, e2, sizeof e2), 0);
    gguf_writer_free(w);
    gguf_ctx *g = NULL;
    if (gguf_open(path, &g, e2, sizeof e2) != 0) fail_msg("gguf_open %s: %s", path, e2);
    *v = NULL;
    err[0] = 0;
    int rc = tok_load_gguf(g, v, err, errlen);
    gguf_close(g);
    remove(path);
    return rc;
}

static void set_tokens(gguf_writer *w, const char *const *t, size_t n) {
    assert_int_equal(gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, n), 0);
}
static void set_types(gguf_writer *w, const int32_t *t, size_t n) {
    assert_int_equal(gguf_w_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_I32, t, n), 0);
}
static void set_scores(gguf_writer *w, const float *s, size_t n) {
    assert_int_equal(gguf_w_set_arr(w, "tokenizer.ggml.scores", GGUF_T_F32, s, n), 0);
}

/* ---- refusals ------------------------------------------------------------------ */

static void expect_refused(gguf_writer *w, const char *name, const char *needle) {
    tok_vocab *v;
    char err[256];
    int rc = load_w(w, name, &v, err, sizeof err);
    if (rc >= 0 || v) fail_msg("%s: loaded, expected a refusal mentioning '%s'", name, needle);
    if (!strstr(err, needle)) fail_msg("%s: message '%s' does not mention '%s'", name, err, needle);
}

static void test_refusals(void **st) {
    (void)st;
    gguf_writer *w;

    w = gguf_writer_new();
    set_tokens(w, ARR("a", "b"), 2);
    expect_refused(w, "nomodel", "tokenizer.ggml.model");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "bert");
    set_tokens(w, ARR("a", "b"), 2);
    expect_refused(w, "bert", "unsupported tokenizer.ggml.model 'bert'");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    expect_refused(w, "notokens", "missing key tokenizer.ggml.tokens");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    uint32_t nums[3] = {1, 2, 3};
    gguf_w_set_arr(w, "tokenizer.ggml.tokens", GGUF_T_U32, nums, 3);
    expect_refused(w, "numtokens", "not an array of strings");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    set_tokens(w, ARR("a"), 0);
    expect_refused(w, "emptytokens", "has 0 entries");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    set_tokens(w, ARR("a", "b", "c"), 3);
    set_scores(w, (const float[]){0, 0}, 2);
    expect_refused(w, "shortscores", "tokenizer.ggml.scores has 2 entries for 3 tokens");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    set_tokens(w, ARR("a", "b"), 2);
    gguf_w_set_arr_str(w, "tokenizer.ggml.scores", ARR("x", "y"), NULL, 2);
    expect_refused(w, "strscores", "scores must be f32 or i32");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    set_tokens(w, ARR("a", "b"), 2);
    set_scores(w, (const float[]){0, 0}, 2);
    gguf_w_set_u32(w, "tokenizer.ggml.token_type", 1);
    expect_refused(w, "scalartypes", "token_type is not an array");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    set_tokens(w, ARR("a", "b"), 2);
    gguf_w_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_F32, (const float[]){1, 1}, 2);
    expect_refused(w, "f32types", "token_type must be i32");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    set_tokens(w, ARR("a", "b", "a"), 3);
    expect_refused(w, "dup", "tokens 0 and 2 have the same text");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    set_tokens(w, ARR("a", "b"), 2);
    expect_refused(w, "nomerges", "without tokenizer.ggml.merges");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
    set_tokens(w, ARR("a", "b"), 2);
    gguf_w_set_arr_str(w, "tokenizer.ggml.merges", ARR("a b"), NULL, 1);
    expect_refused(w, "badpre", "unsupported pre-tokenizer 'no-such-pre'");

    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "gpt2");
    set_tokens(w, ARR("a", "b"), 2);
    gguf_w_set_arr(w, "tokenizer.ggml.merges", GGUF_T_U32, nums, 3);
    expect_refused(w, "nummerges", "merges is not an array of strings");

    /* tolerated as llama.cpp tolerates them: an out-of-range special id keeps
     * the default, an empty token text is renamed, merges without a space are ignored */
    w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    set_tokens(w, ARR("<unk>", "<s>", "</s>", ""), 4);
    gguf_w_set_u32(w, "tokenizer.ggml.bos_token_id", 99);
    gguf_w_set_u32(w, "tokenizer.ggml.eos_token_id", 3);
    tok_vocab *v;
    char err[256];
    assert_int_equal(load_w(w, "tolerated", &v, err, sizeof err), 0);
    assert_int_equal(tok_bos(v), 1);
    assert_int_equal(tok_eos(v), 3);
    assert_string_equal(tok_text(v, 3), "[EMPTY_3]");
    assert_true(tok_is_eog(v, 3));
    tok_free(v);
}

/* ---- SPM by hand --------------------------------------------------------------- */

#define SP "\xe2\x96\x81" /* U+2581 */

static tok_vocab *spm_vocab(int add_space_prefix) {
    gguf_writer *w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    const char *const t[] = {"<unk>", "<s>", "</s>", SP, "a", "b", "ab", SP "ab", "<0x63>", "<|im_end|>", "<tool>", SP SP};
    const float sc[] = {0, 0, 0, -1, -2, -2, -3, -1.5f, 0, 0, 0, -4};
    const int32_t ty[] = {2, 3, 3, 1, 1, 1, 1, 1, 6, 1, 4, 1};
    set_tokens(w, t, 12);
    set_scores(w, sc, 12);
    set_types(w, ty, 12);
    if (!add_space_prefix) gguf_w_set_bool(w, "tokenizer.ggml.add_space_prefix", 0);
    tok_vocab *v;
    char err[256];
    if (load_w(w, add_space_prefix ? "spm1" : "spm0", &v, err, sizeof err)) fail_msg("%s", err);
    return v;
}

static int enc(tok_vocab *v, const char *s, int add, int parse, int32_t *ids) {
    return tok_encode(v, s, strlen(s), add, parse, ids, 64);
}

static void test_spm_by_hand(void **st) {
    (void)st;
    tok_vocab *v = spm_vocab(1);
    int32_t ids[64];
    /* "▁ab▁ab": "ab" (-3) and "▁ab" (-1.5): "ab" merges first at both places
     * (leftmost first), then "▁"+"ab" -> "▁ab" twice */
    assert_int_equal(enc(v, "ab ab", 0, 0, ids), 2);
    assert_int_equal(ids[0], 7);
    assert_int_equal(ids[1], 7);
    /* "c" has only the byte token <0x63>; "d" has none -> <unk> */
    assert_int_equal(enc(v, "abcd", 1, 0, ids), 4);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 7);
    assert_int_equal(ids[2], 8);
    assert_int_equal(ids[3], 0);
    /* two spaces: "▁▁▁ab" -> "▁▁" (-4) loses to "▁ab" (-1.5): ▁, ▁ merge only after */
    assert_int_equal(enc(v, "  ab", 0, 0, ids), 2);
    assert_int_equal(ids[0], 11);
    assert_int_equal(ids[1], 7);
    /* user-defined tokens are matched even without parse_special; the raw text
     * after a special token gets the space prefix again */
    assert_int_equal(enc(v, "<tool>ab", 0, 0, ids), 2);
    assert_int_equal(ids[0], 10);
    assert_int_equal(ids[1], 7);
    /* control tokens only with parse_special */
    assert_int_equal(enc(v, "<s>", 0, 1, ids), 1);
    assert_int_equal(ids[0], 1);
    assert_true(enc(v, "<s>", 0, 0, ids) > 1);
    tok_free(v);
}

static void test_spm_no_prefix_and_eog(void **st) {
    (void)st;
    tok_vocab *v = spm_vocab(0);
    int32_t ids[64];
    assert_int_equal(enc(v, "ab", 0, 0, ids), 1);
    assert_int_equal(ids[0], 6);
    /* "<|im_end|>" was typed NORMAL: llama.cpp's text detection makes it
     * control and end-of-generation */
    assert_true(tok_is_eog(v, 9));
    assert_true(tok_is_control(v, 9));
    assert_true(tok_is_eog(v, 2));
    assert_false(tok_is_eog(v, 1));
    assert_int_equal(tok_eot(v), 9);
    char buf[32];
    assert_int_equal(tok_piece(v, 9, 0, buf, sizeof buf), 0);
    assert_int_equal(tok_piece(v, 10, 0, buf, sizeof buf), 6); /* user-defined renders */
    assert_int_equal(tok_piece(v, 8, 0, buf, sizeof buf), 1);
    assert_int_equal(buf[0], 'c');
    /* with parse_special the control token is one id */
    assert_int_equal(enc(v, "ab<|im_end|>", 0, 1, ids), 2);
    assert_int_equal(ids[1], 9);
    assert_true(enc(v, "ab<|im_end|>", 0, 0, ids) > 2);
    tok_free(v);
}

/* Phi-3 (general.name): special tokens swallow the whitespace after them,
 * except <s>, <unk>, <|endoftext|> (llama.cpp sets RSTRIP by model name) */
static void test_phi3_rstrip(void **st) {
    (void)st;
    gguf_writer *w = gguf_writer_new();
    gguf_w_set_str(w, "general.name", "Phi-3-mini-4k-instruct");
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    const char *const t[] = {"<unk>", "<s>", "</s>", SP, "a", "b", "ab", SP "ab", "<|end|>", "<|user|>", SP SP};
    const float sc[] = {0, 0, 0, -1, -2, -2, -3, -1.5f, 0, 0, -4};
    const int32_t ty[] = {2, 3, 3, 1, 1, 1, 1, 1, 3, 3, 1};
    set_tokens(w, t, 11);
    set_scores(w, sc, 11);
    set_types(w, ty, 11);
    tok_vocab *v;
    char err[256];
    if (load_w(w, "phi3", &v, err, sizeof err)) fail_msg("%s", err);
    assert_true(tok_token_attr(v, 9) & TOK_ATTR_RSTRIP);
    assert_false(tok_token_attr(v, 1) & TOK_ATTR_RSTRIP);
    int32_t ids[64];
    /* "<|user|>\n  ab<|end|>" -> <|user|>, "▁ab" (whitespace eaten, prefix re-added), <|end|> */
    assert_int_equal(enc(v, "<|user|>\n  ab<|end|>", 0, 1, ids), 3);
    assert_int_equal(ids[0], 9);
    assert_int_equal(ids[1], 7);
    assert_int_equal(ids[2], 8);
    /* <s> keeps the spaces after it: "▁▁▁ab" -> "▁▁", "▁ab" */
    assert_int_equal(enc(v, "<s>  ab", 0, 1, ids), 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 10);
    assert_int_equal(ids[2], 7);
    tok_free(v);
}

/* ---- BPE by hand --------------------------------------------------------------- */

#define G "\xc4\xa0" /* "Ġ" = byte-level space */

static tok_vocab *bpe_vocab(const char *pre) {
    gguf_writer *w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_set_str(w, "tokenizer.ggml.pre", pre);
    const char *const t[] = {"a", "b", "c", G, "ab", "abc", G "abc", ".", "<|endoftext|>", "x" G, "'", "s", "t"};
    const int32_t ty[] = {1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, 1};
    set_tokens(w, t, 13);
    set_types(w, ty, 13);
    gguf_w_set_arr_str(w, "tokenizer.ggml.merges", ARR("a b", "ab c", "nospace", "a b"), NULL, 4);
    gguf_w_set_u32(w, "tokenizer.ggml.eos_token_id", 8);
    gguf_w_set_u32(w, "tokenizer.ggml.bos_token_id", 8);
    tok_vocab *v;
    char err[256];
    if (load_w(w, pre, &v, err, sizeof err)) fail_msg("%s", err);
    return v;
}

static void test_bpe_by_hand(void **st) {
    (void)st;
    int32_t ids[64];
    char buf[64];
    /* gpt-2: words "abc", " abc" -> "abc" | "Ġ"+"abc" (no "Ġ abc" merge) */
    tok_vocab *v = bpe_vocab("gpt-2");
    assert_int_equal(tok_kind(v), TOK_KIND_BPE);
    assert_string_equal(tok_kind_name(v), "gguf-bpe");
    assert_false(tok_add_bos(v));
    assert_int_equal(enc(v, "abc abc", 1, 0, ids), 3);
    assert_int_equal(ids[0], 5);
    assert_int_equal(ids[1], 3);
    assert_int_equal(ids[2], 5);
    /* a symbol that is no token falls back to its one-byte tokens; others vanish */
    assert_int_equal(enc(v, "xa", 0, 0, ids), 1);
    assert_int_equal(ids[0], 0);
    /* pieces map byte-level code points back */
    assert_int_equal(tok_piece(v, 6, 0, buf, sizeof buf), 4);
    assert_memory_equal(buf, " abc", 4);
    /* gpt-2 cleans " ." on decode; the control token is hidden unless rendered */
    int32_t seq[] = {5, 3, 7, 8};
    int n = tok_decode(v, seq, 4, 0, buf, sizeof buf);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "abc.", 4);
    n = tok_decode(v, seq, 4, 1, buf, sizeof buf);
    assert_int_equal(n, 17);
    assert_memory_equal(buf, "abc.<|endoftext|>", 17);
    assert_true(tok_is_eog(v, 8));
    /* the other clean-up passes: " 's" -> "'s", " ' " -> "'", " 't" stays */
    int32_t s1[] = {0, 3, 10, 11}, s2[] = {0, 3, 10, 3, 1}, s3[] = {0, 3, 10, 12};
    n = tok_decode(v, s1, 4, 0, buf, sizeof buf);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "a's", 3);
    n = tok_decode(v, s2, 5, 0, buf, sizeof buf);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "a'b", 3);
    n = tok_decode(v, s3, 4, 0, buf, sizeof buf);
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "a 't", 4);
    /* the needed size is returned when cap is short, and only cap bytes are written */
    buf[2] = '#';
    assert_int_equal(tok_decode(v, s1, 4, 0, buf, 2), 3);
    assert_int_equal(buf[2], '#');
    tok_free(v);

    /* llama-bpe: ignore_merges takes "Ġabc" whole; BOS added by default */
    v = bpe_vocab("llama-bpe");
    assert_true(tok_add_bos(v));
    assert_int_equal(enc(v, "abc abc", 1, 0, ids), 3);
    assert_int_equal(ids[0], 8);
    assert_int_equal(ids[1], 5);
    assert_int_equal(ids[2], 6);
    tok_free(v);

    /* qwen2: no clean-up, so " ." stays */
    v = bpe_vocab("qwen2");
    n = tok_decode(v, seq, 4, 0, buf, sizeof buf);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "abc .", 5);
    assert_int_equal(tok_pre_kind(v), TOK_PRE_QWEN2);
    /* special tokens whole with parse_special */
    assert_int_equal(enc(v, "ab<|endoftext|>c", 0, 1, ids), 3);
    assert_int_equal(ids[0], 4);
    assert_int_equal(ids[1], 8);
    assert_int_equal(ids[2], 2);
    tok_free(v);
}

/* argument checks of the API (tier 1, never an abort) */
static void test_api_edges(void **st) {
    (void)st;
    tok_vocab *v = bpe_vocab("gpt-2");
    int32_t ids[4];
    assert_int_equal(tok_encode(v, NULL, 3, 0, 0, ids, 4), -EINVAL);
    assert_int_equal(tok_encode(v, "a", 1, 0, 0, NULL, 4), -EINVAL);
    assert_int_equal(tok_encode(v, "a", 1, 0, 0, NULL, 0), 1); /* counting only */
    assert_int_equal(tok_encode(v, "a", 1, 0, 0, ids, -1), -EINVAL);
    assert_true(tok_piece(v, -1, 0, NULL, 0) < 0);
    assert_int_equal(tok_piece(v, 6, 0, NULL, 0), 4);
    assert_int_equal(tok_decode(v, ids, 0, 0, NULL, 0), 0);
    assert_int_equal(tok_token_attr(v, 8), TOK_ATTR_CONTROL);
    assert_int_equal(tok_token_attr(v, 99), 0);
    tok_free(v);
    tok_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),    cmocka_unit_test(test_spm_by_hand), cmocka_unit_test(test_spm_no_prefix_and_eog),
        cmocka_unit_test(test_phi3_rstrip), cmocka_unit_test(test_bpe_by_hand), cmocka_unit_test(test_api_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
