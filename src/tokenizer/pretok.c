/* pretok — regex-free pre-tokenizers: split text into the words byte-level BPE
 * merges within. Each mode is a hand-written matcher for one pre-tokenizer
 * regex (see pretok.h), reproducing its leftmost-first alternation and greedy
 * backtracking exactly, in linear time.
 *
 * Shapes: positions are byte offsets into text; a "character" is one strict
 * UTF-8 sequence, or one invalid byte with flags TOK_UCAT_C (never dropped).
 * The past-the-end position reads as a character with flags 0, which matches
 * no class — that is how "end of input" enters the lookaheads.
 */
#include "tokenizer/pretok.h"

#include <limits.h>
#include <string.h>

#include "common/err.h"
#include "tokenizer/unicode.h"

enum { NOCP = 0xFFFFFFFFu }; /* cp of an invalid byte or of end of input */

typedef struct {
    uint32_t cp;
    unsigned f; /* enum tok_ucat bits; 0 at end of input */
    uint32_t n; /* bytes */
} pt_ch;

typedef struct {
    const unsigned char *s;
    size_t len;
    tok_span *spans;
    int cap;
    size_t count;
    size_t prev; /* end of the last span */
} pt_ctx;

static inline pt_ch pt_at(const pt_ctx *c, size_t off) {
    pt_ch r;
    if (off >= c->len) {
        r.cp = NOCP, r.f = 0, r.n = 0;
        return r;
    }
    unsigned char b = c->s[off];
    if (b < 0x80) {
        r.cp = b, r.f = tok_ucat_latin1[b], r.n = 1;
        return r;
    }
    int k = tok_utf8_next(c->s + off, c->len - off, &r.cp);
    if (k == 0) {
        r.cp = NOCP, r.f = TOK_UCAT_C, r.n = 1;
    } else {
        r.f = tok_ucat(r.cp), r.n = (uint32_t)k;
    }
    return r;
}

static inline void pt_emit(pt_ctx *c, size_t end) {
    if (end <= c->prev) return;
    if (c->count < (size_t)c->cap) {
        c->spans[c->count].off = (uint32_t)c->prev;
        c->spans[c->count].len = (uint32_t)(end - c->prev);
    }
    c->count++;
    c->prev = end;
}

/* ---- classes ----------------------------------------------------------------- */
#define F_L TOK_UCAT_L
#define F_N TOK_UCAT_N
#define F_WS TOK_UCAT_WS

static inline int is_L(pt_ch c) { return (c.f & F_L) != 0; }
static inline int is_N(pt_ch c) { return (c.f & F_N) != 0; }
static inline int is_WS(pt_ch c) { return (c.f & F_WS) != 0; }
static inline int is_nl(pt_ch c) { return c.cp == '\r' || c.cp == '\n'; }
/* [^\s\p{L}\p{N}] */
static inline int is_other(pt_ch c) { return c.f != 0 && !(c.f & (F_L | F_N | F_WS)); }
/* [^\r\n\p{L}\p{N}] */
static inline int is_lead(pt_ch c) { return c.f != 0 && !(c.f & (F_L | F_N)) && !is_nl(c); }
static inline uint32_t ascii_lower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

/* ---- shared rules: each returns the match end, or 0 for no match at s ---- */

/* 's|'t|'re|'ve|'m|'ll|'d, by fold:
 *   FOLD_NONE   case-sensitive (GPT-2)
 *   FOLD_ASCII  [sS] etc.: llama.cpp's rewrite of (?i:...), and also what its
 *               hand-written splitters do (unicode_tolower: the only non-ASCII
 *               letters with an ASCII lower case are U+0130 and U+212A, neither
 *               one of these letters)
 *   FOLD_UNI    (?i:...) with Unicode simple case folding, as Oniguruma, Rust
 *               regex and JS /iu run the o200k pattern: also U+017F (long s)
 *               folds to 's' (CaseFolding.txt; no other code point folds to
 *               s t r e v m l d) */
enum { FOLD_NONE, FOLD_ASCII, FOLD_UNI };
static size_t r_contraction(const pt_ctx *c, size_t s, int fold) {
    if (s >= c->len || c->s[s] != '\'') return 0;
    pt_ch a = pt_at(c, s + 1);
    uint32_t x = fold ? ascii_lower(a.cp) : a.cp;
    if (fold == FOLD_UNI && x == 0x17F) x = 's';
    if (x == 's' || x == 't' || x == 'm' || x == 'd') return s + 1 + a.n;
    pt_ch b = pt_at(c, s + 1 + a.n);
    uint32_t y = fold ? ascii_lower(b.cp) : b.cp;
    if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l')) return s + 3;
    return 0;
}

/* " ?X+" with X the characters having flag (\p{L} or \p{N}): GPT-2 */
static size_t r_space_run(const pt_ctx *c, size_t s, unsigned flag) {
    pt_ch a = pt_at(c, s);
    size_t p = s;
    if (a.cp == ' ') {
        pt_ch b = pt_at(c, s + 1);
        if (!(b.f & flag)) return 0;
        p = s + 1, a = b;
    }
    if (!(a.f & flag)) return 0;
    while (a.f & flag) p += a.n, a = pt_at(c, p);
    return p;
}

/* " ?[^\s\p{L}\p{N}]+" then, per tail: nothing (GPT-2), [\r\n]* (Llama-3,
 * Qwen2) or [\r\n/]* (o200k) */
enum { TAIL_NONE, TAIL_NL, TAIL_NL_SLASH };
static size_t r_other_run(const pt_ctx *c, size_t s, int tail) {
    pt_ch a = pt_at(c, s);
    size_t p = s;
    if (a.cp == ' ') {
        pt_ch b = pt_at(c, s + 1);
        if (!is_other(b)) return 0;
        p = s + 1, a = b;
    }
    if (!is_other(a)) return 0;
    while (is_other(a)) p += a.n, a = pt_at(c, p);
    if (tail != TAIL_NONE)
        while (is_nl(a) || (tail == TAIL_NL_SLASH && a.cp == '/')) p += a.n, a = pt_at(c, p);
    return p;
}

/* Whitespace at s. nl: first \s*[\r\n]+ (ends after the run's last \r or \n).
 * Then \s+(?!\S): a run followed by a non-space gives back its last character
 * (which then leads the next word); at the end of input it takes the whole
 * run. Then \s+ (a single space before a non-space). */
static size_t r_space(const pt_ctx *c, size_t s, int nl) {
    size_t p = s, last = s, nl_end = 0, cnt = 0;
    pt_ch a = pt_at(c, p);
    while (is_WS(a)) {
        if (nl && is_nl(a)) nl_end = p + a.n;
        last = p, p += a.n, cnt++;
        a = pt_at(c, p);
    }
    if (nl_end) return nl_end;
    if (cnt > 1 && p < c->len) return last;
    return cnt ? p : 0;
}

/* ---- GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t step_gpt2(const pt_ctx *c, size_t s) {
    size_t e;
    if ((e = r_contraction(c, s, FOLD_NONE))) return e;
    if ((e = r_space_run(c, s, F_L))) return e;
    if ((e = r_space_run(c, s, F_N))) return e;
    if ((e = r_other_run(c, s, TAIL_NONE))) return e;
    return r_space(c, s, 0);
}

/* ---- Llama-3 / Qwen2:
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxn}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t step_llama3(const pt_ctx *c, size_t s, int maxn) {
    size_t e;
    if ((e = r_contraction(c, s, FOLD_ASCII))) return e;
    pt_ch a = pt_at(c, s);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ : the optional lead is taken whenever a letter follows it */
    size_t p = s;
    if (is_lead(a)) {
        pt_ch b = pt_at(c, s + a.n);
        if (is_L(b)) p = s + a.n, a = b;
    }
    if (is_L(a)) {
        while (is_L(a)) p += a.n, a = pt_at(c, p);
        return p;
    }
    a = pt_at(c, s);
    if (is_N(a)) {
        p = s;
        for (int i = 0; i < maxn && is_N(a); i++) p += a.n, a = pt_at(c, p);
        return p;
    }
    if ((e = r_other_run(c, s, TAIL_NL))) return e;
    return r_space(c, s, 1);
}

/* ---- o200k (GPT-4o, GPT-OSS):
 *   [^\r\n\p{L}\p{N}]?U*L+C?|[^\r\n\p{L}\p{N}]?U+L*C?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with C = (?i:'s|'t|'re|'ve|'m|'ll|'d) and the letter classes
 *   exact:    U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]   L = [\p{Ll}\p{Lm}\p{Lo}\p{M}]
 *   llama.cpp: U = (?=\p{L})[^a-z]                   L = (?=\p{L})[^A-Z]
 * (llama.cpp's rewrite for std::regex: case is told apart for ASCII only and
 * marks are not word characters). U and L overlap, so U* may have to give
 * characters back to L+; see o_word_a. */
static inline int o_up(pt_ch a, int lc) {
    if (lc) return is_L(a) && !(a.cp >= 'a' && a.cp <= 'z');
    return (a.f & (TOK_UCAT_LU | TOK_UCAT_LMO | TOK_UCAT_M)) != 0;
}
static inline int o_lo(pt_ch a, int lc) {
    if (lc) return is_L(a) && !(a.cp >= 'A' && a.cp <= 'Z');
    return (a.f & (TOK_UCAT_LL | TOK_UCAT_LMO | TOK_UCAT_M)) != 0;
}

/* U*L+ at s, as a backtracking engine finds it: U* first takes the whole
 * U-run [s, K); if the character at K is in L, L+ runs on from K. Otherwise
 * U* gives back characters until the last one in U∩L, which alone is the L+
 * (the characters after it are U-only). Returns the end, 0 when no match. */
static size_t o_word_a(const pt_ctx *c, size_t s, int lc) {
    size_t p = s, last_lo_end = 0;
    pt_ch a = pt_at(c, p);
    while (o_up(a, lc)) {
        if (o_lo(a, lc)) last_lo_end = p + a.n;
        p += a.n, a = pt_at(c, p);
    }
    if (o_lo(a, lc)) {
        while (o_lo(a, lc)) p += a.n, a = pt_at(c, p);
        return p;
    }
    return last_lo_end;
}

/* U+L* at s */
static size_t o_word_b(const pt_ctx *c, size_t s, int lc) {
    size_t p = s;
    pt_ch a = pt_at(c, p);
    if (!o_up(a, lc)) return 0;
    while (o_up(a, lc)) p += a.n, a = pt_at(c, p);
    while (o_lo(a, lc)) p += a.n, a = pt_at(c, p);
    return p;
}

static size_t step_o200k(const pt_ctx *c, size_t s, int lc) {
    pt_ch a = pt_at(c, s);
    size_t e = 0;
    /* alternative 1 with the lead, then without; then alternative 2 likewise */
    int lead = is_lead(a);
    if (lead) e = o_word_a(c, s + a.n, lc);
    if (!e) e = o_word_a(c, s, lc);
    if (!e && lead) e = o_word_b(c, s + a.n, lc);
    if (!e) e = o_word_b(c, s, lc);
    if (e) {
        size_t k = r_contraction(c, e, lc ? FOLD_ASCII : FOLD_UNI);
        return k ? k : e;
    }
    if (is_N(a)) {
        size_t p = s;
        for (int i = 0; i < 3 && is_N(a); i++) p += a.n, a = pt_at(c, p);
        return p;
    }
    if ((e = r_other_run(c, s, TAIL_NL_SLASH))) return e;
    return r_space(c, s, 1);
}

/* ---- llama.cpp's "default" (no or "default" tokenizer.ggml.pre): four regexes
 * in a chain, each splitting every piece the previous one left (its matches
 * and the stretches between them alike), a piece's end acting as end of input:
 *   1. [\p{P}\$\+<=>\^~\|]+       runs of punctuation (and those ASCII symbols) vs the rest
 *   2. the GPT-2 regex
 *   3. \p{N}+                       number runs vs the rest
 *   4. [0-9][0-9][0-9]              leftmost ASCII digit triples vs the rest */
static inline int is_def_punct(pt_ch a) {
    return (a.f & TOK_UCAT_P) || (a.cp < 0x80 && a.cp && strchr("$+<=>^~|", (int)a.cp));
}

static void def_triples(pt_ctx *c, size_t a, size_t b) {
    size_t i = a;
    while (i + 3 <= b) {
        const unsigned char *t = c->s + i;
        if ((unsigned)(t[0] - '0') < 10u && (unsigned)(t[1] - '0') < 10u && (unsigned)(t[2] - '0') < 10u) {
            pt_emit(c, i);
            pt_emit(c, i + 3);
            i += 3;
        } else {
            i++;
        }
    }
    pt_emit(c, b);
}

static void def_numbers(pt_ctx *c, size_t a, size_t b) {
    size_t p = a;
    while (p < b) {
        pt_ch ch = pt_at(c, p);
        int num = is_N(ch);
        size_t q = p;
        while (q < b && is_N(ch) == num) q += ch.n, ch = pt_at(c, q);
        def_triples(c, p, q);
        p = q;
    }
}

static void split_llama_default(pt_ctx *c) {
    size_t len = c->len, a = 0;
    while (a < len) {
        pt_ch ch = pt_at(c, a);
        int punct = is_def_punct(ch);
        size_t b = a;
        while (b < len && is_def_punct(ch) == punct) b += ch.n, ch = pt_at(c, b);
        c->len = b; /* the piece's end is the end of input for the GPT-2 step */
        for (size_t s = a; s < b;) {
            size_t e = step_gpt2(c, s);
            if (e <= s) e = s + pt_at(c, s).n;
            def_numbers(c, s, e);
            s = e;
        }
        c->len = len;
        a = b;
    }
}

/* ---- entry points -------------------------------------------------------------- */
int tok_pretokenize(enum tok_pre pre, const char *text, size_t len, tok_span *spans, int cap) {
    if (cap < 0 || (cap > 0 && !spans) || (len > 0 && !text) || len > (size_t)INT_MAX)
        return -ERR_INVALID_REQUEST;
    int mode = (int)pre;
    if (mode != TOK_PRE_DEFAULT && mode != TOK_PRE_LLAMA3 && mode != TOK_PRE_QWEN2 && mode != TOK_PRE_O200K &&
        mode != (int)TOK_PRE_O200K_LLAMACPP && mode != (int)TOK_PRE_LLAMA_DEFAULT)
        return -ERR_INVALID_REQUEST;
    pt_ctx c = {(const unsigned char *)text, len, spans, cap, 0, 0};
    if (mode == (int)TOK_PRE_LLAMA_DEFAULT) {
        split_llama_default(&c);
        return (int)c.count;
    }
    size_t s = 0;
    while (s < len) {
        size_t e;
        switch (mode) {
        case TOK_PRE_DEFAULT: e = step_gpt2(&c, s); break;
        case TOK_PRE_LLAMA3: e = step_llama3(&c, s, 3); break;
        case TOK_PRE_QWEN2: e = step_llama3(&c, s, 1); break;
        case TOK_PRE_O200K: e = step_o200k(&c, s, 0); break;
        default: e = step_o200k(&c, s, 1); break;
        }
        if (e <= s) e = s + pt_at(&c, s).n; /* no rule matched: one character on its own */
        pt_emit(&c, e);
        s = e;
    }
    return (int)c.count;
}

/* tokenizer.ggml.pre names, by the split llama.cpp applies for them. Only the
 * split is decided here: llama.cpp also sets per-name flags (add_bos and
 * ignore_merges for the llama-bpe family, clean_spaces, add_sep) which are the
 * tokenizer's business. */
static const struct {
    const char *name;
    int pre;
} k_pre_names[] = {
    /* GPT-2 regex (llama.cpp LLAMA_VOCAB_PRE_TYPE_GPT2 and the types sharing its regex) */
    {"gpt-2", TOK_PRE_DEFAULT}, {"gpt2", TOK_PRE_DEFAULT},
    {"phi-2", TOK_PRE_DEFAULT}, {"jina-es", TOK_PRE_DEFAULT}, {"jina-de", TOK_PRE_DEFAULT},
    {"jina-v2-es", TOK_PRE_DEFAULT}, {"jina-v2-de", TOK_PRE_DEFAULT}, {"gigachat", TOK_PRE_DEFAULT},
    {"a.x-4.0", TOK_PRE_DEFAULT}, {"mellum", TOK_PRE_DEFAULT}, {"modern-bert", TOK_PRE_DEFAULT},
    {"exaone4", TOK_PRE_DEFAULT}, {"mpt", TOK_PRE_DEFAULT}, {"olmo", TOK_PRE_DEFAULT},
    {"jais", TOK_PRE_DEFAULT}, {"trillion", TOK_PRE_DEFAULT}, {"granite-docling", TOK_PRE_DEFAULT},
    /* Llama-3 regex */
    {"llama-bpe", TOK_PRE_LLAMA3}, {"llama3", TOK_PRE_LLAMA3}, {"llama-v3", TOK_PRE_LLAMA3},
    {"falcon3", TOK_PRE_LLAMA3}, {"falcon-h1", TOK_PRE_LLAMA3}, {"pixtral", TOK_PRE_LLAMA3},
    {"midm-2.0", TOK_PRE_LLAMA3}, {"lfm2", TOK_PRE_LLAMA3}, {"jina-v5-nano", TOK_PRE_LLAMA3},
    {"dbrx", TOK_PRE_LLAMA3}, {"smaug-bpe", TOK_PRE_LLAMA3}, {"glm4", TOK_PRE_LLAMA3},
    {"chatglm-bpe", TOK_PRE_LLAMA3},
    /* Qwen2 regex */
    {"qwen2", TOK_PRE_QWEN2}, {"deepseek-r1-qwen", TOK_PRE_QWEN2}, {"kormo", TOK_PRE_QWEN2},
    {"f2llmv2", TOK_PRE_QWEN2}, {"megrez", TOK_PRE_QWEN2}, {"stablelm2", TOK_PRE_QWEN2},
    {"hunyuan", TOK_PRE_QWEN2}, {"solar-open", TOK_PRE_QWEN2}, {"grok-2", TOK_PRE_QWEN2},
    /* llama.cpp's own chain of four regexes */
    {"default", (int)TOK_PRE_LLAMA_DEFAULT},
    /* o200k */
    {"gpt-4o", TOK_PRE_O200K}, {"o200k", TOK_PRE_O200K}, {"llama4", TOK_PRE_O200K},
    {"kanana2", TOK_PRE_O200K}, {"talkie", TOK_PRE_O200K}, {"minimax-m2", TOK_PRE_O200K},
};

int tok_pre_parse(const char *name, size_t len) {
    if (!name) return -1;
    for (size_t i = 0; i < sizeof k_pre_names / sizeof k_pre_names[0]; i++) {
        const char *n = k_pre_names[i].name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) return k_pre_names[i].pre;
    }
    return -1;
}
