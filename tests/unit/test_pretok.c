// test-libs: llorch_tok llorch_core
/* pretok: Unicode categories and the four pre-tokenizer splits.
 * The splits are compared span for span with tests/fixtures/pretok/expected.txt
 * (JavaScript RegExp running the same regexes: tools/ref/ref_pretok.mjs). */
#include "testutil.h"

#include <time.h>

#include "tokenizer/pretok.h"
#include "tokenizer/unicode.h"

/* ---- helpers ------------------------------------------------------------------- */

/* asserts the spans cover text[0..len) exactly, in order, none empty; returns the count */
static int check_cover(enum tok_pre pre, const char *text, size_t len, tok_span *spans, int cap) {
    int n = tok_pretokenize(pre, text, len, spans, cap);
    assert_true(n >= 0);
    assert_true(n <= cap);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (spans[i].off != at || spans[i].len == 0) {
            fprintf(stderr, "pre %d: span %d = {%u,%u} at %zu\n", (int)pre, i, spans[i].off, spans[i].len, at);
            fail();
        }
        at += spans[i].len;
    }
    assert_int_equal(at, len);
    return n;
}

static const enum tok_pre k_all_pre[] = {TOK_PRE_DEFAULT, TOK_PRE_LLAMA3, TOK_PRE_QWEN2, TOK_PRE_O200K,
                                         TOK_PRE_O200K_LLAMACPP, TOK_PRE_LLAMA_DEFAULT};
#define N_PRE (int)(sizeof k_all_pre / sizeof k_all_pre[0])

/* byte lengths of the spans of s, as a list */
static int split_lens(enum tok_pre pre, const char *s, size_t len, uint32_t *lens, int cap) {
    tok_span sp[256];
    int n = tok_pretokenize(pre, s, len, sp, 256);
    assert_true(n >= 0 && n <= 256 && n <= cap);
    for (int i = 0; i < n; i++) lens[i] = sp[i].len;
    return n;
}

static void expect_split(enum tok_pre pre, const char *s, size_t len, const uint32_t *want, int nwant) {
    uint32_t got[256];
    int n = split_lens(pre, s, len, got, 256);
    int ok = n == nwant;
    for (int i = 0; ok && i < n; i++) ok = got[i] == want[i];
    if (!ok) {
        fprintf(stderr, "pre %d on \"%.*s\": got", (int)pre, (int)len, s);
        for (int i = 0; i < n; i++) fprintf(stderr, " %u", got[i]);
        fprintf(stderr, ", want");
        for (int i = 0; i < nwant; i++) fprintf(stderr, " %u", want[i]);
        fprintf(stderr, "\n");
        fail();
    }
}
#define EXPECT(pre, s, ...)                                                                  \
    do {                                                                                     \
        const uint32_t w_[] = {__VA_ARGS__};                                                 \
        expect_split(pre, s, sizeof(s) - 1, w_, (int)(sizeof w_ / sizeof w_[0]));            \
    } while (0)

/* ---- categories ------------------------------------------------------------------ */

static void test_ucat(void **st) {
    (void)st;
    assert_int_equal(tok_ucat('A'), TOK_UCAT_L | TOK_UCAT_LU);
    assert_int_equal(tok_ucat('z'), TOK_UCAT_L | TOK_UCAT_LL);
    assert_int_equal(tok_ucat('7'), TOK_UCAT_N);
    assert_int_equal(tok_ucat(' '), TOK_UCAT_Z | TOK_UCAT_WS);
    assert_int_equal(tok_ucat('\t'), TOK_UCAT_C | TOK_UCAT_WS);
    assert_int_equal(tok_ucat(0x1C), TOK_UCAT_C); /* not White_Space */
    assert_int_equal(tok_ucat('!'), TOK_UCAT_P);
    assert_int_equal(tok_ucat('$'), TOK_UCAT_S);
    assert_int_equal(tok_ucat(0x85), TOK_UCAT_C | TOK_UCAT_WS);
    assert_int_equal(tok_ucat(0xA0), TOK_UCAT_Z | TOK_UCAT_WS);
    assert_int_equal(tok_ucat(0xFEFF), TOK_UCAT_C); /* BOM: format, not White_Space */
    assert_int_equal(tok_ucat(0x3000), TOK_UCAT_Z | TOK_UCAT_WS);
    assert_int_equal(tok_ucat(0x2028), TOK_UCAT_Z | TOK_UCAT_WS);
    assert_int_equal(tok_ucat(0x4E00), TOK_UCAT_L | TOK_UCAT_LMO);   /* CJK, in a First/Last range */
    assert_int_equal(tok_ucat(0x9FFF), TOK_UCAT_L | TOK_UCAT_LMO);
    assert_int_equal(tok_ucat(0xAC00), TOK_UCAT_L | TOK_UCAT_LMO);   /* Hangul syllable */
    assert_int_equal(tok_ucat(0x20000), TOK_UCAT_L | TOK_UCAT_LMO);  /* CJK ext B */
    assert_int_equal(tok_ucat(0x0301), TOK_UCAT_M);
    assert_int_equal(tok_ucat(0x093F), TOK_UCAT_M);                  /* Devanagari vowel sign I (Mc) */
    assert_int_equal(tok_ucat(0x01C5), TOK_UCAT_L | TOK_UCAT_LU);    /* Lt */
    assert_int_equal(tok_ucat(0x02B0), TOK_UCAT_L | TOK_UCAT_LMO);   /* Lm */
    assert_int_equal(tok_ucat(0x00E9), TOK_UCAT_L | TOK_UCAT_LL);
    assert_int_equal(tok_ucat(0x0660), TOK_UCAT_N);                  /* Arabic-Indic zero */
    assert_int_equal(tok_ucat(0x216B), TOK_UCAT_N);                  /* Roman numeral (Nl) */
    assert_int_equal(tok_ucat(0x00BD), TOK_UCAT_N);                  /* ½ (No) */
    assert_int_equal(tok_ucat(0x1F600), TOK_UCAT_S);
    assert_int_equal(tok_ucat(0x200D), TOK_UCAT_C);                  /* ZWJ */
    assert_int_equal(tok_ucat(0xD800), TOK_UCAT_C);                  /* surrogate */
    assert_int_equal(tok_ucat(0xE000), TOK_UCAT_C);                  /* private use */
    assert_int_equal(tok_ucat(0x0378), TOK_UCAT_C);                  /* unassigned */
    assert_int_equal(tok_ucat(0x10FFFF), TOK_UCAT_C);
    assert_int_equal(tok_ucat(0x110000), TOK_UCAT_C);
    assert_int_equal(tok_ucat(0xFFFFFFFFu), TOK_UCAT_C);
    /* the range table is well formed and agrees with the Latin-1 shortcut */
    assert_int_equal(tok_ucat_start[0], 0);
    for (uint32_t i = 1; i < tok_ucat_nranges; i++) {
        assert_true(tok_ucat_start[i] > tok_ucat_start[i - 1]);
        assert_true(tok_ucat_flags[i] != tok_ucat_flags[i - 1]);
    }
    for (uint32_t cp = 0; cp < 256; cp++) {
        uint32_t i = 0;
        while (i + 1 < tok_ucat_nranges && tok_ucat_start[i + 1] <= cp) i++;
        assert_int_equal(tok_ucat_latin1[cp], tok_ucat_flags[i]);
    }
    /* the block-indexed lookup equals a plain search over all ranges, everywhere */
    for (uint32_t cp = 0, r = 0; cp < 0x110000; cp++) {
        while (r + 1 < tok_ucat_nranges && tok_ucat_start[r + 1] <= cp) r++;
        if (tok_ucat(cp) != tok_ucat_flags[r]) {
            fprintf(stderr, "U+%04X: %#x, table says %#x\n", cp, tok_ucat(cp), tok_ucat_flags[r]);
            fail();
        }
    }
    /* every assigned category has exactly one category bit */
    for (uint32_t cp = 0; cp < 0x110000; cp += 7) {
        unsigned f = tok_ucat(cp) & ~(unsigned)TOK_UCAT_WS;
        unsigned cat = f & (TOK_UCAT_L | TOK_UCAT_M | TOK_UCAT_N | TOK_UCAT_P | TOK_UCAT_S | TOK_UCAT_Z | TOK_UCAT_C);
        assert_true(cat != 0 && (cat & (cat - 1)) == 0);
        if (f & TOK_UCAT_L) {
            unsigned sub = f & (TOK_UCAT_LU | TOK_UCAT_LL | TOK_UCAT_LMO);
            assert_true(sub != 0 && (sub & (sub - 1)) == 0);
        }
    }
    /* Unicode 15.1, as llama.cpp's tables */
    assert_string_equal(tok_unicode_version, "15.1.0");
    assert_int_equal(tok_ucat(0x2EBF0), TOK_UCAT_L | TOK_UCAT_LMO); /* CJK ext I (15.1) */
    assert_int_equal(tok_ucat(0x2EE5D), TOK_UCAT_L | TOK_UCAT_LMO);
    assert_int_equal(tok_ucat(0x2EE5E), TOK_UCAT_C);
    assert_int_equal(tok_ucat(0x31EF), TOK_UCAT_S);
}

static void test_pre_parse(void **st) {
    (void)st;
#define P(s) tok_pre_parse(s, sizeof(s) - 1)
    assert_int_equal(P("gpt-2"), TOK_PRE_DEFAULT);
    assert_int_equal(P("gpt2"), TOK_PRE_DEFAULT);
    assert_int_equal(P("default"), TOK_PRE_LLAMA_DEFAULT);
    assert_int_equal(P("llama-bpe"), TOK_PRE_LLAMA3);
    assert_int_equal(P("llama3"), TOK_PRE_LLAMA3);
    assert_int_equal(P("qwen2"), TOK_PRE_QWEN2);
    assert_int_equal(P("deepseek-r1-qwen"), TOK_PRE_QWEN2);
    assert_int_equal(P("gpt-4o"), TOK_PRE_O200K);
    assert_int_equal(P("o200k"), TOK_PRE_O200K);
    assert_int_equal(P("qwen"), -1);
    assert_int_equal(P("qwen2 "), -1);
    assert_int_equal(P(""), -1);
    assert_int_equal(tok_pre_parse("qwen2", 4), -1); /* length is honoured */
    assert_int_equal(tok_pre_parse("qwen2xyz", 5), TOK_PRE_QWEN2);
    assert_int_equal(tok_pre_parse(NULL, 3), -1);
#undef P
}

/* ---- the reference splits --------------------------------------------------------- */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Checks every split in one fixture file; returns the number of strings. */
static int check_fixture(const char *name) {
    char path[1024];
    FILE *f = fopen(TU_FIXTURE(path, name), "r");
    if (!f) fprintf(stderr, "cannot open %s\n", path);
    assert_non_null(f);
    static char line[1 << 16];
    static char text[1 << 15];
    size_t tlen = 0;
    int nstrings = 0, nchecked = 0, nbad = 0;
    tok_span spans[4096];
    while (fgets(line, sizeof line, f)) {
        size_t L = strlen(line);
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = 0;
        if (!L || line[0] == '#') continue;
        if (line[0] == 'S' && line[1] == ' ') {
            tlen = 0;
            for (size_t i = 2; i + 1 < L + 1 && line[i]; i += 2) {
                assert_true(tlen < sizeof text);
                text[tlen++] = (char)(hexval(line[i]) * 16 + hexval(line[i + 1]));
            }
            nstrings++;
            continue;
        }
        char *sp = strchr(line, ' ');
        size_t nl = sp ? (size_t)(sp - line) : L;
        enum tok_pre pre = TOK_PRE_DEFAULT;
        if (nl == 4 && !memcmp(line, "gpt2", 4)) pre = TOK_PRE_DEFAULT;
        else if (nl == 6 && !memcmp(line, "llama3", 6)) pre = TOK_PRE_LLAMA3;
        else if (nl == 5 && !memcmp(line, "qwen2", 5)) pre = TOK_PRE_QWEN2;
        else if (nl == 5 && !memcmp(line, "o200k", 5)) pre = TOK_PRE_O200K;
        else if (nl == 14 && !memcmp(line, "o200k_llamacpp", 14)) pre = TOK_PRE_O200K_LLAMACPP;
        else if (nl == 13 && !memcmp(line, "llama_default", 13)) pre = TOK_PRE_LLAMA_DEFAULT;
        else {
            fprintf(stderr, "bad line: %s\n", line);
            fail();
            continue;
        }
        uint32_t want[4096];
        int nwant = 0;
        for (char *p = sp; p && *p;) {
            want[nwant++] = (uint32_t)strtoul(p, &p, 10);
            while (*p == ' ') p++;
        }
        int n = check_cover(pre, text, tlen, spans, 4096);
        int ok = n == nwant;
        for (int i = 0; ok && i < n; i++) ok = spans[i].len == want[i];
        if (!ok) {
            nbad++;
            fprintf(stderr, "MISMATCH %.*s on \"%.*s\"\n  got: ", (int)nl, line, (int)tlen, text);
            for (int i = 0; i < n; i++) fprintf(stderr, "[%.*s]", (int)spans[i].len, text + spans[i].off);
            fprintf(stderr, "\n  want:");
            size_t at = 0;
            for (int i = 0; i < nwant; i++) {
                fprintf(stderr, "[%.*s]", (int)want[i], text + at);
                at += want[i];
            }
            fprintf(stderr, "\n");
        }
        nchecked++;
    }
    fclose(f);
    fprintf(stderr, "%s: %d strings, %d splits, %d mismatches\n", name, nstrings, nchecked, nbad);
    assert_int_equal(nchecked, nstrings * N_PRE);
    assert_int_equal(nbad, 0);
    return nstrings;
}

/* hand-picked strings (strings.json) */
static void test_reference_splits(void **st) {
    (void)st;
    assert_true(check_fixture("pretok/expected.txt") >= 60);
}

/* random strings over a pool of the characters the regexes treat differently */
static void test_reference_random(void **st) {
    (void)st;
    assert_true(check_fixture("pretok/random.txt") >= 400);
}

/* ---- hand-checked cases: the regex subtleties, and invalid UTF-8 --------------------- */

static void test_subtleties(void **st) {
    (void)st;
    /* \s+(?!\S) leaves the last space to lead the next word */
    EXPECT(TOK_PRE_DEFAULT, "a   b", 1, 2, 2);
    EXPECT(TOK_PRE_QWEN2, "a   b", 1, 2, 2);
    EXPECT(TOK_PRE_DEFAULT, "a   ", 1, 3); /* at the end the run stays whole */
    /* GPT-2 takes only ' ' as the optional lead; Qwen2 any non-letter */
    EXPECT(TOK_PRE_DEFAULT, "\tab", 1, 2);
    EXPECT(TOK_PRE_QWEN2, "\tab", 3);
    EXPECT(TOK_PRE_QWEN2, "$ab!", 3, 1);
    /* contractions: case-sensitive in GPT-2, ASCII-insensitive elsewhere */
    EXPECT(TOK_PRE_DEFAULT, "I'LL", 1, 1, 2);
    EXPECT(TOK_PRE_QWEN2, "I'LL", 1, 3);
    EXPECT(TOK_PRE_O200K, "I'LL", 4);
    /* digits */
    EXPECT(TOK_PRE_DEFAULT, "12345", 5);
    EXPECT(TOK_PRE_LLAMA3, "12345", 3, 2);
    EXPECT(TOK_PRE_QWEN2, "123", 1, 1, 1);
    EXPECT(TOK_PRE_O200K, " 1234", 1, 3, 1);
    /* newline runs: \s*[\r\n]+ ends after the last newline */
    EXPECT(TOK_PRE_QWEN2, "a \n \n  b", 1, 4, 1, 2);
    EXPECT(TOK_PRE_QWEN2, "!!\n\nx", 4, 1);
    EXPECT(TOK_PRE_O200K, "!\n/x", 3, 1);
    EXPECT(TOK_PRE_QWEN2, "!\n/x", 2, 2);
    /* o200k case splits; its U* gives back a U∩L letter to L+ */
    EXPECT(TOK_PRE_O200K, "camelCase", 5, 4);
    EXPECT(TOK_PRE_O200K, "HTTPResponse", 12); /* U* = HTTPR, L+ = esponse */
    EXPECT(TOK_PRE_O200K, "getHTTPResponse", 3, 12);
    EXPECT(TOK_PRE_O200K, "ABC", 3);
    EXPECT(TOK_PRE_O200K, "A\xe4\xb8\xad" "B", 4, 1);  /* A中 then B: 中 (Lo) ends L+ */
    EXPECT(TOK_PRE_O200K_LLAMACPP, "A\xe4\xb8\xad" "B", 4, 1); /* same here: 中 is "both cases" */
    EXPECT(TOK_PRE_O200K, "\xe4\xb8\xad" "A", 3, 1);
    EXPECT(TOK_PRE_O200K_LLAMACPP, "\xe4\xb8\xad" "A", 3, 1);
    EXPECT(TOK_PRE_O200K, "a\xc3\x89", 1, 2);       /* aÉ: É is upper */
    EXPECT(TOK_PRE_O200K_LLAMACPP, "a\xc3\x89", 3);
    /* marks: word characters in o200k, "other" in llama.cpp's rewrite and in Qwen2 */
    EXPECT(TOK_PRE_O200K, "e\xcc\x81x", 4);
    EXPECT(TOK_PRE_O200K_LLAMACPP, "e\xcc\x81x", 1, 3);
    EXPECT(TOK_PRE_QWEN2, "e\xcc\x81x", 1, 3);
}

static void test_llama_default(void **st) {
    (void)st;
    EXPECT(TOK_PRE_LLAMA_DEFAULT, "12345678", 3, 3, 2);    /* ASCII digit triples from the left */
    EXPECT(TOK_PRE_DEFAULT, "12345678", 8);
    EXPECT(TOK_PRE_LLAMA_DEFAULT, " 123", 1, 3);           /* \p{N}+ takes the digits from " ?\p{N}+" */
    EXPECT(TOK_PRE_LLAMA_DEFAULT, "a+b", 1, 1, 1);         /* '+' is its own piece before GPT-2 runs */
    EXPECT(TOK_PRE_DEFAULT, "a+b", 1, 1, 1);
    EXPECT(TOK_PRE_LLAMA_DEFAULT, "x `y", 1, 2, 1);        /* '`' (Sk) is not in the punctuation class */
    EXPECT(TOK_PRE_LLAMA_DEFAULT, "x .y", 1, 1, 1, 1);     /* '.' is: the space before it stands alone */
    EXPECT(TOK_PRE_DEFAULT, "x .y", 1, 2, 1);
}

static void test_invalid_utf8(void **st) {
    (void)st;
    for (int k = 0; k < N_PRE; k++) {
        enum tok_pre p = k_all_pre[k];
        EXPECT(p, "\xff", 1);
        EXPECT(p, "a\xff", 1, 1);
        EXPECT(p, "\xe4\xbd", 2);          /* truncated: two invalid bytes, one "other" run */
        if (p == TOK_PRE_LLAMA_DEFAULT) EXPECT(p, "\xc0\xaf!", 2, 1); /* '!' is a piece of its own */
        else EXPECT(p, "\xc0\xaf!", 3);   /* overlong '/': invalid bytes, then '!' */
        EXPECT(p, "\xed\xa0\x80", 3);      /* surrogate */
        EXPECT(p, "\xf4\x90\x80\x80", 4);  /* > U+10FFFF */
        if (p == TOK_PRE_DEFAULT) EXPECT(p, "1\x80\x80 2", 1, 2, 2);
        else if (p == TOK_PRE_LLAMA_DEFAULT) EXPECT(p, "1\x80\x80 2", 1, 2, 1, 1);
        else EXPECT(p, "1\x80\x80 2", 1, 2, 1, 1); /* a space before a digit stands alone */
    }
    EXPECT(TOK_PRE_DEFAULT, "\xff" "ab", 1, 2);
    EXPECT(TOK_PRE_QWEN2, "\xff" "ab", 3); /* an invalid byte may lead a word */
    EXPECT(TOK_PRE_DEFAULT, " \xff\xfe", 3);
}

static void test_api(void **st) {
    (void)st;
    tok_span sp[4];
    memset(sp, 0xAB, sizeof sp);
    /* count beyond cap: the full count comes back, nothing past cap is written */
    assert_int_equal(tok_pretokenize(TOK_PRE_QWEN2, "a b c d e", 9, sp, 2), 5);
    assert_int_equal(sp[0].off, 0);
    assert_int_equal(sp[1].off, 1);
    assert_int_equal(sp[1].len, 2);
    assert_int_equal(sp[2].off, 0xABABABABu);
    assert_int_equal(tok_pretokenize(TOK_PRE_QWEN2, "a b", 3, NULL, 0), 2);
    assert_int_equal(tok_pretokenize(TOK_PRE_QWEN2, "", 0, sp, 4), 0);
    assert_int_equal(tok_pretokenize(TOK_PRE_QWEN2, NULL, 0, NULL, 0), 0);
    assert_true(tok_pretokenize(TOK_PRE_QWEN2, NULL, 3, sp, 4) < 0);
    assert_true(tok_pretokenize(TOK_PRE_QWEN2, "abc", 3, NULL, 4) < 0);
    assert_true(tok_pretokenize(TOK_PRE_QWEN2, "abc", 3, sp, -1) < 0);
    assert_true(tok_pretokenize((enum tok_pre)99, "abc", 3, sp, 4) < 0);
    assert_true(tok_pretokenize((enum tok_pre)-1, "abc", 3, sp, 4) < 0);
}

/* ---- properties on random input ------------------------------------------------- */

static const uint32_t k_pool[] = {
    'a', 'B', 'z', 'Q', '0', '7', ' ', ' ', ' ', '\t', '\n', '\r', '\'', 's', 'S', 'l', 'L', '/', '!', '.',
    0x0B, 0x85, 0xA0, 0x3000, 0x2003, 0xFEFF, 0x00E9, 0x00C9, 0x0301, 0x093F, 0x0928, 0x4E2D, 0x01C5,
    0x02B0, 0x0660, 0x00BD, 0x1F600, 0x200D, 0x0378, 0xE000, 0x10FFFF,
};

static size_t rand_text(uint64_t *rng, char *buf, size_t cap, int allow_invalid) {
    size_t n = 0;
    while (n + 4 < cap) {
        uint64_t r = tu_rng(rng);
        if (allow_invalid && (r & 15) == 0) {
            buf[n++] = (char)(r >> 8);
            continue;
        }
        uint32_t cp = k_pool[(r >> 8) % (sizeof k_pool / sizeof k_pool[0])];
        if (cp < 0x80) buf[n++] = (char)cp;
        else if (cp < 0x800) buf[n++] = (char)(0xC0 | (cp >> 6)), buf[n++] = (char)(0x80 | (cp & 63));
        else if (cp < 0x10000)
            buf[n++] = (char)(0xE0 | (cp >> 12)), buf[n++] = (char)(0x80 | ((cp >> 6) & 63)), buf[n++] = (char)(0x80 | (cp & 63));
        else
            buf[n++] = (char)(0xF0 | (cp >> 18)), buf[n++] = (char)(0x80 | ((cp >> 12) & 63)),
            buf[n++] = (char)(0x80 | ((cp >> 6) & 63)), buf[n++] = (char)(0x80 | (cp & 63));
        if ((r >> 40) % 13 == 0) break;
    }
    return n;
}

/* span boundaries never split a valid UTF-8 character */
static void check_boundaries(const char *t, size_t len, const tok_span *sp, int n) {
    for (int i = 0; i < n; i++) {
        size_t e = sp[i].off + sp[i].len;
        if (e < len) {
            /* a continuation byte right after a boundary must not belong to a valid sequence begun before it */
            size_t b = e;
            while (b > sp[i].off && e - b < 3 && ((unsigned char)t[b - 1] & 0xC0) == 0x80) b--;
            if (b > sp[i].off || (b == sp[i].off && b < e && ((unsigned char)t[b] & 0xC0) != 0x80)) {
                uint32_t cp;
                size_t start = b > 0 ? b - 1 : 0;
                if (b == e) continue;
                int k = tok_utf8_next((const unsigned char *)t + start, len - start, &cp);
                if (k > 0 && start + (size_t)k > e) {
                    fprintf(stderr, "span %d ends inside a character at %zu\n", i, e);
                    fail();
                }
            }
        }
    }
}

static void test_random_cover(void **st) {
    (void)st;
    uint64_t rng = 0x5eed;
    static char buf[512];
    static tok_span sp[1024];
    for (int it = 0; it < 4000; it++) {
        size_t n = rand_text(&rng, buf, sizeof buf, it & 1);
        for (int k = 0; k < N_PRE; k++) {
            int c = check_cover(k_all_pre[k], buf, n, sp, 1024);
            check_boundaries(buf, n, sp, c);
        }
        /* on text without non-ASCII letters and marks the two o200k variants agree */
        int ascii = 1;
        for (size_t i = 0; i < n; i++) ascii &= (unsigned char)buf[i] < 0x80;
        if (ascii) {
            tok_span sq[1024];
            int a = tok_pretokenize(TOK_PRE_O200K, buf, n, sp, 1024);
            int b = tok_pretokenize(TOK_PRE_O200K_LLAMACPP, buf, n, sq, 1024);
            assert_int_equal(a, b);
            assert_memory_equal(sp, sq, (size_t)a * sizeof *sp);
        }
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 1 MB of random bytes, and 1 MB inputs built to provoke re-scanning (long
 * space runs, case runs, mark runs), each split in well under a second: the
 * matchers are linear. */
#if defined(__SANITIZE_ADDRESS__)
#define PRETOK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PRETOK_SANITIZED 1
#endif
#endif
#ifdef PRETOK_SANITIZED
static const double k_limit_s = 5.0; /* ASan/UBSan builds run ~5x slower; quadratic would take minutes */
#else
static const double k_limit_s = 1.0;
#endif

static void test_linear_time(void **st) {
    (void)st;
    const size_t N = 1 << 20;
    char *buf = malloc(N);
    tok_span *sp = malloc(N * sizeof *sp);
    assert_non_null(buf);
    assert_non_null(sp);
    uint64_t rng = 42;
    static const char *const unit[] = {
        NULL, " ", "\n ", "A", "aB", "\xcc\x81" "A", "\xe4\xb8\xad" "A", "1", "!", "'", " \t",
    };
    for (size_t u = 0; u < sizeof unit / sizeof unit[0]; u++) {
        if (!unit[u]) {
            for (size_t i = 0; i < N; i++) buf[i] = (char)tu_rng(&rng);
        } else {
            size_t ul = strlen(unit[u]);
            for (size_t i = 0; i < N; i++) buf[i] = unit[u][i % ul];
        }
        for (int k = 0; k < N_PRE; k++) {
            double t0 = now_s();
            int n = check_cover(k_all_pre[k], buf, N, sp, (int)N);
            double dt = now_s() - t0;
            if (getenv("PRETOK_TIMES")) fprintf(stderr, "unit %zu pre %d: %.3f s\n", u, (int)k_all_pre[k], dt);
            if (dt > k_limit_s) {
                fprintf(stderr, "unit %zu pre %d: %d spans in %.3f s\n", u, (int)k_all_pre[k], n, dt);
                fail();
            }
        }
    }
    free(buf);
    free(sp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ucat),
        cmocka_unit_test(test_pre_parse),
        cmocka_unit_test(test_reference_splits),
        cmocka_unit_test(test_reference_random),
        cmocka_unit_test(test_subtleties),
        cmocka_unit_test(test_llama_default),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_random_cover),
        cmocka_unit_test(test_linear_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
