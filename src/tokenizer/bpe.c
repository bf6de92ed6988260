/* bpe — byte-level BPE as llama.cpp's llm_tokenizer_bpe_session:
 *   1. invalid UTF-8 in the input becomes U+FFFD (llama.cpp decodes leniently
 *      and replaces what it cannot decode);
 *   2. tok_pretokenize splits the text into words (tokenizer.ggml.pre);
 *   3. each word's bytes map to the GPT-2 byte-level code points;
 *   4. with ignore_merges (llama-bpe) a word that is itself a token is emitted
 *      whole; otherwise adjacent symbols merge lowest merge-rank first (ties:
 *      leftmost) until no pair is in tokenizer.ggml.merges;
 *   5. each final symbol is its token; a symbol missing from the vocab falls
 *      back to its single bytes that are tokens (others are dropped, as there).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tokenizer/pretok.h"
#include "tokenizer/heap.h"
#include "tokenizer/tok_internal.h"

struct sym {
    int32_t prev, next;
    uint32_t off, n; /* into the mapped word; n == 0 once merged away */
};

/* scratch reused across the words of one fragment */
struct work {
    char *word;     /* mapped word, <= 2 bytes per input byte */
    struct sym *s;  /* one per input byte */
    struct tok_heap h;
};

static int add_bigram(const tok_vocab *v, struct work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    size_t n = (size_t)w->s[l].n + w->s[r].n;
    int32_t rank = tok_merge_rank(v, w->word + w->s[l].off, n, w->s[l].n);
    if (rank < 0) return 0;
    return tok_heap_push(&w->h, (struct tok_bigram){(double)rank, l, r, (uint32_t)n}); /* lowest rank first */
}

static void emit_symbol(const tok_vocab *v, const char *p, size_t n, struct tok_out *out) {
    int32_t id = tok_lookup(v, p, n);
    if (id >= 0) {
        tok_out_push(out, id);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        id = tok_lookup(v, p + j, 1);
        if (id >= 0) tok_out_push(out, id);
    }
}

static int bpe_word(const tok_vocab *v, const unsigned char *in, size_t len, struct work *w, struct tok_out *out) {
    size_t wl = 0;
    int32_t ns = 0;
    for (size_t i = 0; i < len; i++) {
        char enc[2];
        int k = tok_byte_to_utf8(in[i], enc);
        w->s[ns] = (struct sym){ns - 1, i + 1 == len ? -1 : ns + 1, (uint32_t)wl, (uint32_t)k};
        memcpy(w->word + wl, enc, (size_t)k);
        wl += (size_t)k;
        ns++;
    }
    if (v->ignore_merges) {
        int32_t id = tok_lookup(v, w->word, wl);
        if (id >= 0) {
            tok_out_push(out, id);
            return 0;
        }
    }
    w->h.n = 0;
    int rc = 0;
    for (int32_t i = 1; i < ns && !rc; i++) rc = add_bigram(v, w, i - 1, i);
    while (!rc && w->h.n > 0) {
        struct tok_bigram b = tok_heap_pop(&w->h);
        struct sym *L = &w->s[b.left], *R = &w->s[b.right];
        /* symbols only grow, so an unchanged total size means an unchanged pair */
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) w->s[R->next].prev = b.left;
        rc = add_bigram(v, w, L->prev, b.left);
        if (!rc) rc = add_bigram(v, w, b.left, L->next);
    }
    if (rc) return rc;
    for (int32_t i = 0; i != -1; i = w->s[i].next) emit_symbol(v, w->word + w->s[i].off, w->s[i].n, out);
    return 0;
}

/* llama.cpp's unicode_cpt_to_utf8, which (unlike a strict encoder) writes
 * surrogates; above U+10FFFF it throws, we write U+FFFD */
static int enc_cp(uint32_t cp, char *o) {
    if (cp > 0x10FFFF) cp = 0xFFFD;
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* copy of text with undecodable bytes replaced by U+FFFD (<= 3x the input) */
static char *sanitize(const char *text, size_t len, size_t *olen) {
    char *o = malloc(len * 3 + 1);
    if (!o) return NULL;
    size_t n = 0;
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = tok_utf8_lenient(u + i, len - i, &cp);
        if (k == 0) {
            cp = 0xFFFD;
            k = 1;
        }
        i += (size_t)k;
        n += (size_t)enc_cp(cp, o + n);
    }
    *olen = n;
    return o;
}

int tok_bpe_fragment(const tok_vocab *v, const char *text, size_t len, struct tok_out *out) {
    if (len == 0) return 0;
    char *clean = NULL;
    if (!util_utf8_valid(text, len)) {
        clean = sanitize(text, len, &len);
        if (!clean) return -ENOMEM;
        text = clean;
    }
    int rc = 0;
    tok_span stack_spans[64], *spans = stack_spans;
    int ns = tok_pretokenize(v->pre, text, len, spans, (int)UTIL_ARRAY_LEN(stack_spans));
    if (ns > (int)UTIL_ARRAY_LEN(stack_spans)) {
        spans = malloc(sizeof(tok_span) * (size_t)ns);
        if (!spans) {
            rc = -ENOMEM;
            goto done;
        }
        int ns2 = tok_pretokenize(v->pre, text, len, spans, ns);
        LLORCH_ASSERT(ns2 == ns);
    }
    if (ns < 0) {
        rc = ns;
        goto done;
    }
    size_t maxw = 0;
    for (int i = 0; i < ns; i++) {
        LLORCH_ASSERT((size_t)spans[i].off + spans[i].len <= len); /* pretok's contract */
        if (spans[i].len > maxw) maxw = spans[i].len;
    }
    struct work w = {0};
    w.word = malloc(maxw * 2 + 1);
    w.s = malloc((maxw + 1) * sizeof *w.s);
    if (!w.word || !w.s) rc = -ENOMEM;
    for (int i = 0; i < ns && !rc; i++)
        if (spans[i].len > 0)
            rc = bpe_word(v, (const unsigned char *)text + spans[i].off, spans[i].len, &w, out);
    free(w.word);
    free(w.s);
    free(w.h.a);
done:
    if (spans != stack_spans) free(spans);
    free(clean);
    return rc;
}
