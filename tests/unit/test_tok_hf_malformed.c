// test-libs: llorch_tok llorch_gguf llorch_core
/* tokenizer (hf-json): a tiny hand-written tokenizer.json loads and
 * tokenizes; every malformed variant (truncated at every byte, wrong types,
 * huge numbers, deep nesting, invalid UTF-8 and escapes, duplicate keys,
 * merges naming unknown tokens, unsupported components) is refused with its
 * own stable message and no vocab; n_pad and the GGUF cross-check work;
 * the JSON reader decodes every escape form.
 * Also the NFC normalizer on a few known strings (Hangul, reordering,
 * exclusions). Needs no outside files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "tokenizer/json.h"
#include "tokenizer/tok_internal.h" /* tok_nfc */
#include "tokenizer/tokenizer.h"
#include "testutil.h"

#define HF_MAX_LEVELS 64 /* json.h TOK_JSON_MAX_DEPTH: the document may nest this many containers */

/* slots: vocab, merges, added_tokens, normalizer, pre_tokenizer, post_processor, decoder, model extras */
#define DOC_FMT                                                                                                 \
    "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null,\n"                                        \
    " \"added_tokens\": %s,\n \"normalizer\": %s,\n \"pre_tokenizer\": %s,\n \"post_processor\": %s,\n"        \
    " \"decoder\": %s,\n \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null%s,\n"          \
    "   \"vocab\": %s,\n   \"merges\": %s}}\n"

struct parts {
    const char *vocab, *merges, *added, *norm, *pre, *post, *dec, *model_extra;
};

static const struct parts k_ok = {
    "{\"a\": 0, \"b\": 1, \"ab\": 2, \"\xc4\xa0\": 3, \"\xc4\xa0" "ab\": 4, \"c\": 5}",
    "[\"a b\", [\"\xc4\xa0\", \"ab\"]]",
    "[{\"id\": 6, \"content\": \"<|end|>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false,"
    " \"normalized\": false, \"special\": true},"
    " {\"id\": 7, \"content\": \"<tool>\", \"special\": false}]",
    "null",
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}",
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true}",
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true}",
    "",
};

static char *make(struct parts p) {
    size_t cap = 4096 + strlen(p.vocab) + strlen(p.merges) + strlen(p.added) + strlen(p.pre) + strlen(p.post);
    char *s = malloc(cap);
    snprintf(s, cap, DOC_FMT, p.added, p.norm, p.pre, p.post, p.dec, p.model_extra, p.vocab, p.merges);
    return s;
}

static tok_vocab *load_ok(const char *doc, const struct tok_hf_opts *o) {
    char err[256] = "";
    tok_vocab *v = NULL;
    int rc = tok_load_hf_json_mem(doc, strlen(doc), o, &v, err, sizeof err);
    if (rc) fail_msg("load: %s\n%s", err, doc);
    return v;
}

/* the load fails, returns no vocab and a message containing want */
static void refused(const char *doc, size_t len, const char *want) {
    char err[256] = "";
    tok_vocab *v = (tok_vocab *)&err; /* must be reset to NULL */
    int rc = tok_load_hf_json_mem(doc, len, NULL, &v, err, sizeof err);
    if (rc >= 0 || v != NULL) fail_msg("accepted (want '%s'):\n%.*s", want, (int)(len < 600 ? len : 600), doc);
    if (!strstr(err, want)) fail_msg("error '%s' does not say '%s'", err, want);
    assert_true(strncmp(err, "tokenizer.json: ", 16) == 0);
}

static void test_tiny_ok(void **st) {
    (void)st;
    char *doc = make(k_ok);
    tok_vocab *v = load_ok(doc, NULL);
    assert_string_equal(tok_kind_name(v), "hf-json");
    assert_int_equal(tok_n_vocab(v), 8);
    assert_int_equal(tok_pre_kind(v), TOK_PRE_DEFAULT);
    assert_false(tok_add_bos(v));
    int32_t ids[16];
    int n = tok_encode(v, "ab ab", 5, 1, 1, ids, 16);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 4);
    /* special only with parse_special; the non-special added token always */
    n = tok_encode(v, "ab<|end|><tool>", 15, 0, 1, ids, 16);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 6);
    assert_int_equal(ids[2], 7);
    n = tok_encode(v, "<tool>", 6, 0, 0, ids, 16);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 7);
    char out[64];
    int32_t seq[] = {2, 4, 6, 7};
    n = tok_decode(v, seq, 4, 1, out, sizeof out);
    assert_int_equal(n, 18);
    assert_memory_equal(out, "ab ab<|end|><tool>", 18);
    n = tok_decode(v, seq, 4, 0, out, sizeof out);
    assert_int_equal(n, 11);
    assert_memory_equal(out, "ab ab<tool>", 11);
    tok_free(v);

    /* TemplateProcessing: BOS/EOS */
    struct parts p = k_ok;
    p.post = "{\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"}, {\"type\": \"TemplateProcessing\","
             " \"single\": [{\"SpecialToken\": {\"id\": \"<|end|>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\","
             " \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"<tool>\", \"type_id\": 0}}], \"pair\": [],"
             " \"special_tokens\": {\"<|end|>\": {\"id\": \"<|end|>\", \"ids\": [6], \"tokens\": [\"<|end|>\"]},"
             " \"<tool>\": {\"id\": \"<tool>\", \"ids\": [7], \"tokens\": [\"<tool>\"]}}}]}";
    p.norm = "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}]}";
    free(doc);
    doc = make(p);
    v = load_ok(doc, NULL);
    assert_true(tok_add_bos(v));
    assert_true(tok_add_eos(v));
    assert_int_equal(tok_bos(v), 6);
    assert_int_equal(tok_eos(v), 7);
    n = tok_encode(v, "ab", 2, 1, 0, ids, 16);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 6);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], 7);
    tok_free(v);

    /* n_pad: unused [PAD<id>] tokens up to the model's rows */
    struct tok_hf_opts o = {12, NULL};
    v = load_ok(doc, &o);
    assert_int_equal(tok_n_vocab(v), 12);
    assert_string_equal(tok_text(v, 11), "[PAD11]");
    assert_int_equal(tok_token_attr(v, 11), TOK_ATTR_UNUSED);
    assert_int_equal(tok_piece(v, 11, 1, out, sizeof out), 0);
    n = tok_encode(v, "[PAD11]", 7, 0, 1, ids, 16);
    assert_true(n >= 0 && n <= 16);
    for (int i = 0; i < n; i++) assert_int_not_equal(ids[i], 11); /* never matched whole */
    tok_free(v);
    free(doc);
}

/* the JSON reader decodes every escape form to its UTF-8: \u of 1, 2 and 3
 * bytes, a surrogate pair (4 bytes), the simple escapes; raw UTF-8 and an
 * escaped NUL are kept; keys decode the same way */
static void test_json_escapes(void **st) {
    (void)st;
    static const char src[] = "{\"k\\u00e9y\": [\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\\n\\\"\\\\\\/\\b\\f\\r\\t\","
                              " \"\xc3\xa9\\u0000z\", 12]}";
    tok_json_doc d;
    char err[160];
    assert_int_equal(tok_json_parse(src, sizeof src - 1, &d, err, sizeof err), 0);
    assert_int_equal(tok_json_type(&d, 0), TOK_JSON_OBJ);
    int32_t arr = tok_json_get(&d, 0, "k\xc3\xa9y");
    assert_int_equal(tok_json_type(&d, arr), TOK_JSON_ARR);
    assert_int_equal(d.nodes[arr].n, 3);
    size_t n = 0;
    const char *s = tok_json_str(&d, d.nodes[arr].first, &n);
    static const char want[] = "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n\"\\/\b\f\r\t";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(s, want, n);
    s = tok_json_str(&d, d.nodes[d.nodes[arr].first].next, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(s, "\xc3\xa9\0z", 4);
    int64_t x = 0;
    assert_int_equal(tok_json_int(&d, d.nodes[d.nodes[d.nodes[arr].first].next].next, 0, 100, &x), 0);
    assert_int_equal(x, 12);
    tok_json_free(&d);
}

/* a vocab token with a character outside the 256 byte-level ones decodes to
 * its own UTF-8 (HF's ByteLevel decoder), not llama.cpp's [UNK_BYTE_...] */
static void test_non_byte_level_token(void **st) {
    (void)st;
    struct parts p = k_ok;
    p.vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"\xc4\xa0\": 3, \"\xc4\xa0"
              "ab\": 4, \"c\": 5, \"x\xe2\x82\xac\": 8}";
    char *doc = make(p);
    tok_vocab *v = load_ok(doc, NULL);
    char out[32];
    int n = tok_piece(v, 8, 0, out, sizeof out);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "x\xe2\x82\xac", 4);
    int32_t seq[] = {2, 8};
    n = tok_decode(v, seq, 2, 0, out, sizeof out);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "abx\xe2\x82\xac", 6);
    tok_free(v);
    free(doc);
}

static void test_gguf_check(void **st) {
    (void)st;
    char *doc = make(k_ok);
    char path[] = "/tmp/test_tok_hf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    for (int same = 0; same < 2; same++) {
        gguf_writer *w = gguf_writer_new();
        const char *toks[] = {"a",
                              "b",
                              "ab",
                              "\xc4\xa0",
                              same ? "\xc4\xa0"
                                     "ab"
                                   : "zz",
                              "c",
                              "<|end|>",
                              "<tool>",
                              "[PAD8]"};
        assert_int_equal(gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 9), 0);
        assert_int_equal(gguf_w_set_u32(w, "tokenizer.ggml.eos_token_id", 6), 0);
        char err[256];
        assert_int_equal(gguf_w_write(w, path, err, sizeof err), 0);
        gguf_writer_free(w);
        gguf_ctx *g = NULL;
        assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
        struct tok_hf_opts o = {9, g};
        tok_vocab *v = NULL;
        int rc = tok_load_hf_json_mem(doc, strlen(doc), &o, &v, err, sizeof err);
        if (same) {
            assert_int_equal(rc, 0);
            assert_int_equal(tok_eos(v), 6);
            assert_true(tok_is_eog(v, 6));
            tok_free(v);
        } else {
            assert_true(rc < 0);
            assert_null(v);
            assert_non_null(strstr(err, "token 4 is"));
            assert_non_null(strstr(err, "another vocabulary"));
        }
        gguf_close(g);
    }
    unlink(path);
    free(doc);
}

static void test_truncated(void **st) {
    (void)st;
    char *doc = make(k_ok);
    size_t n = strlen(doc);
    /* every strict prefix is malformed JSON (the document ends with "}\n": the
     * prefix without the newline is complete) */
    for (size_t i = 0; i + 1 < n; i++) {
        char err[256] = "";
        tok_vocab *v = NULL;
        char *cut = malloc(i + 1);
        memcpy(cut, doc, i);
        int rc = tok_load_hf_json_mem(cut, i, NULL, &v, err, sizeof err);
        free(cut);
        if (rc >= 0 || v) fail_msg("prefix of %zu bytes accepted", i);
        assert_non_null(strstr(err, "tokenizer.json: json: "));
    }
    free(doc);
}

static void test_json_errors(void **st) {
    (void)st;
    static const struct {
        const char *doc, *want;
    } cases[] = {
        {"", "unexpected end of input"},
        {"   ", "unexpected end of input"},
        {"[1,]", "invalid number"},
        {"{\"a\": 1,}", "expected a string key"},
        {"{\"a\" 1}", "expected ':'"},
        {"{\"a\": 1 \"b\": 2}", "expected ',' or '}'"},
        {"[1 2]", "expected ',' or ']'"},
        {"[01]", "leading zero"},
        {"[1.]", "invalid number fraction"},
        {"[1e]", "invalid number exponent"},
        {"[-]", "invalid number"},
        {"[NaN]", "invalid number"},
        {"[tru]", "invalid literal"},
        {"{} x", "trailing characters"},
        {"{\"a\": 1, \"a\": 2}", "duplicate key"},
        {"[\"a\x01\"]", "unescaped control character"},
        {"[\"\\x\"]", "invalid escape"},
        {"[\"\\u12G4\"]", "invalid \\u escape"},
        {"[\"\\ud800\"]", "lone high surrogate"},
        {"[\"\\ud800\\u0041\"]", "lone high surrogate"},
        {"[\"\\udc00\"]", "lone low surrogate"},
        {"[\"\xff\"]", "invalid UTF-8"},
        {"[\"\xc0\xaf\"]", "invalid UTF-8"},          /* overlong '/' */
        {"[\"\xed\xa0\x80\"]", "invalid UTF-8"},      /* raw surrogate */
        {"[\"\xf4\x90\x80\x80\"]", "invalid UTF-8"},  /* above U+10FFFF */
        {"[\"abc", "unterminated string"},
        {"[1, 2", "unterminated array"},
        {"[]", "the top level is not an object"},
        {"{}", "model is missing or not an object"},
        {"{\"model\": 5}", "model is missing or not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(cases[i].doc, strlen(cases[i].doc), cases[i].want);
    /* NUL inside the input is not JSON whitespace */
    refused("{}\0", 3, "trailing characters");
    /* 17 keys: the hashed duplicate check */
    static const char keys17[] =
        "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,\"g\":0,\"h\":0,\"i\":0,\"j\":0,\"k\":0,\"l\":0,\"m\":0,"
        "\"n\":0,\"o\":0,\"p\":0,\"h\":1}";
    refused(keys17, strlen(keys17), "duplicate key");
    /* deep nesting: 64 levels (the object and 63 arrays) parse, 65 do not; a million does not crash */
    for (int depth = 63; depth <= 64; depth++) {
        char buf[256];
        int k = 0;
        for (int i = 0; i < depth; i++) buf[k++] = '[';
        for (int i = 0; i < depth; i++) buf[k++] = ']';
        char doc[300];
        snprintf(doc, sizeof doc, "{\"x\": %.*s}", k, buf);
        /* the object is one level */
        refused(doc, strlen(doc), depth + 1 > HF_MAX_LEVELS ? "nesting too deep" : "model is missing");
    }
    size_t big = 1000000;
    char *deep = malloc(big);
    memset(deep, '[', big);
    refused(deep, big, "nesting too deep");
    memset(deep, '{', big);
    refused(deep, big, "expected a string key");
    free(deep);
}

static void test_semantic_errors(void **st) {
    (void)st;
    static const struct {
        int slot; /* index into struct parts as an array of strings */
        const char *value, *want;
    } cases[] = {
        {0, "[1, 2]", "model.vocab is not an object"},
        {0, "{}", "model.vocab is empty"},
        {0, "{\"a\": \"x\"}", "model.vocab id is not an integer"},
        {0, "{\"a\": 1.5}", "model.vocab id is not an integer"},
        {0, "{\"a\": 1e3}", "model.vocab id is not an integer"},
        {0, "{\"a\": 99999999999999999999}", "model.vocab id out of range"},
        {0, "{\"a\": -1}", "model.vocab id out of range"},
        {0, "{\"a\": 16777216}", "model.vocab id out of range"},
        {0, "{\"a\": 0, \"b\": 0}", "model.vocab gives id 0 to both 'a' and 'b'"},
        {0,
         "{\"a\": 0, \"b\": 1, \"ab\": 2, \"\xc4\xa0\": 3, \"\xc4\xa0"
         "ab\": 4, \"c\": 5000}",
         "ids are unused"},
        {1, "{}", "model.merges is not an array"},
        {1, "[\"a z\"]", "merges[0] names 'z', which is not a token"},
        {1, "[\"a c\"]", "merges[0]: the merged token 'ac' is not in the vocabulary"},
        {1, "[\"a b\", \"a x\"]", "merges[1] names 'x', which is not a token"},
        {1, "[\"b a\"]", "merges[0]: the merged token 'ba' is not in the vocabulary"},
        {1, "[\"ab\"]", "merges[0] 'ab' is not two tokens separated by one space"},
        {1, "[\"a  b\"]", "is not two tokens separated by one space"},
        {1, "[\"a b c\"]", "is not two tokens separated by one space"},
        {1, "[[\"a\"]]", "merges[0] is neither"},
        {1, "[[\"a\", 1]]", "merges[0] is neither"},
        {1, "[5]", "merges[0] is neither"},
        {1, "[\"a b\", [\"a\", \"b\"]]", "model.merges lists 1 pair(s) twice"},
        {2, "{}", "added_tokens is not an array"},
        {2, "[5]", "added_tokens[0] is not an object"},
        {2, "[{\"id\": 6}]", "added_tokens[0].content is not a string"},
        {2, "[{\"id\": 6, \"content\": \"\"}]", "added_tokens[0].content is empty"},
        {2, "[{\"id\": \"6\", \"content\": \"x\"}]", "added_tokens[0] id is not an integer"},
        {2, "[{\"id\": 1e99, \"content\": \"x\"}]", "added_tokens[0] id is not an integer"},
        {2, "[{\"id\": 0, \"content\": \"x\"}]", "added_tokens[0] gives id 0 to 'x', which is 'a' already"},
        {2, "[{\"id\": 6, \"content\": \"a\"}]", "tokens 0 and 6 have the same text"},
        {2, "[{\"id\": 6, \"content\": \"x\", \"single_word\": true}]", "single_word is not supported"},
        {3, "{\"type\": \"NFKC\"}", "normalizer 'NFKC' is not supported (none or NFC)"},
        {3, "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Lowercase\"}]}",
         "normalizer 'Lowercase' in a Sequence"},
        {3, "7", "normalizer is not an object"},
        {4, "null", "pre_tokenizer is missing"},
        {4, "{\"type\": \"Metaspace\"}", "pre_tokenizer 'Metaspace' is not supported"},
        {4, "{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", "add_prefix_space is not supported"},
        {4, "{\"type\": \"ByteLevel\", \"use_regex\": false}", "needs a Split before it"},
        {4,
         "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+\"},"
         " \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
         "regex '\\s+' is not one we implement"},
        {4,
         "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"String\": \" \"},"
         " \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
         "String patterns are not supported"},
        {4,
         "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+\"},"
         " \"behavior\": \"Removed\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
         "behavior Isolated and invert false"},
        {4, "{\"type\": \"Sequence\", \"pretokenizers\": []}", "must be [Split, ByteLevel]"},
        {5, "{\"type\": \"RobertaProcessing\"}", "post_processor 'RobertaProcessing' is not supported"},
        {5,
         "{\"type\": \"TemplateProcessing\", \"single\": [{\"Sequence\": {\"id\": \"A\"}}, {\"Sequence\": {\"id\": "
         "\"A\"}}]}",
         "not $A or one special token"},
        {5,
         "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<|end|>\"}}, {\"Sequence\": "
         "{\"id\":"
         " \"A\"}}], \"special_tokens\": {}}",
         "needs exactly one id"},
        {5,
         "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<|end|>\"}}, {\"Sequence\": "
         "{\"id\":"
         " \"A\"}}], \"special_tokens\": {\"<|end|>\": {\"ids\": [99]}}}",
         "special token id 99 is not a token"},
        {5, "{\"type\": \"TemplateProcessing\", \"single\": []}", "must be [BOS] $A [EOS]"},
        {6, "null", "decoder is missing"},
        {6, "{\"type\": \"Metaspace\"}", "decoder 'Metaspace' is not supported (ByteLevel only)"},
        {7, ", \"byte_fallback\": true", "byte_fallback (SentencePiece-style BPE) is not supported"},
        {7, ", \"dropout\": 0.1, \"x\": 1", "duplicate key"},
        {7, ", \"continuing_subword_prefix\": \"##\"", "continuing_subword_prefix is not supported"},
        {7, ", \"end_of_word_suffix\": \"</w>\"", "end_of_word_suffix is not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct parts p = k_ok;
        const char **slots = (const char **)&p;
        slots[cases[i].slot] = cases[i].value;
        char *doc = make(p);
        refused(doc, strlen(doc), cases[i].want);
        free(doc);
    }
    /* model.type */
    char *doc = make(k_ok);
    char *t = strstr(doc, "\"BPE\"");
    assert_non_null(t);
    char *u = malloc(strlen(doc) + 16);
    snprintf(u, strlen(doc) + 16, "%.*s\"Unigram\"%s", (int)(t - doc), doc, t + 5);
    refused(u, strlen(u), "model.type 'Unigram' is not supported (BPE only)");
    free(u);
    free(doc);
}

/* NFC on known cases (the whole of Unicode 15.0's NormalizationTest.txt was
 * checked once by hand: 95370 of 95370 relations hold, see docs/ARCHITECTURE.md) */
static void test_nfc(void **st) {
    (void)st;
    static const struct {
        const char *in, *out; /* out NULL: already NFC */
    } cases[] = {
        {"plain ascii", NULL},
        {"caf\xc3\xa9", NULL},
        {"caf\x65\xcc\x81", "caf\xc3\xa9"},                          /* e + acute -> U+00E9 */
        {"\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", "\xea\xb0\x81"},  /* Hangul L V T -> U+AC01 */
        {"a\xcc\x9b\xcc\xa3", "\xe1\xba\xa1\xcc\x9b"},               /* a + horn(216) + dot below(220): not blocked */
        {"a\xcc\xa3\xcc\x81", "\xe1\xba\xa1\xcc\x81"},               /* a + dot below + acute -> U+1EA1 + acute */
        {"a\xcc\x81\xcc\xa3", "\xe1\xba\xa1\xcc\x81"},               /* reordered first */
        {"\xe2\x84\xa6", "\xce\xa9"},                                /* U+2126 OHM SIGN -> U+03A9 (singleton) */
        {"\xe0\xa5\x98", "\xe0\xa4\x95\xe0\xa4\xbc"},                /* U+0958: composition exclusion */
        {"\xcc\x81x", NULL},                                         /* leading combining mark */
        {"e\xff\xcc\x81", NULL},                                     /* invalid byte blocks: passes as is */
        {"\xff e\xcc\x81 \xfe", "\xff \xc3\xa9 \xfe"},                 /* invalid bytes kept around a change */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *o = NULL;
        size_t ol = 0;
        int rc = tok_nfc(cases[i].in, strlen(cases[i].in), &o, &ol);
        if (!cases[i].out) {
            if (rc == 0) { /* the slow path may run; then the text must be unchanged */
                assert_int_equal(ol, strlen(cases[i].in));
                assert_memory_equal(o, cases[i].in, ol);
            } else {
                assert_int_equal(rc, 1);
                assert_null(o);
            }
        } else {
            assert_int_equal(rc, 0);
            if (ol != strlen(cases[i].out) || memcmp(o, cases[i].out, ol) != 0) fail_msg("nfc case %zu", i);
        }
        free(o);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_ok),     cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_non_byte_level_token),
        cmocka_unit_test(test_gguf_check),  cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_json_errors), cmocka_unit_test(test_semantic_errors),
        cmocka_unit_test(test_nfc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
