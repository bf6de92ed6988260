/* utf8stream — assembles token bytes into complete, valid UTF-8 for
 * streaming. A sequence that is merely incomplete is held (never replaced);
 * a byte is replaced by U+FFFD only once it is certain it can never be part of
 * a valid sequence. Replacement follows the "maximal subpart" practice
 * (Unicode §3.9, WHATWG): one U+FFFD per maximal valid prefix, then the byte
 * that broke it is looked at afresh.
 */
#include <string.h>

#include "tokenizer/tokenizer.h"

static const char k_fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* expected length of a sequence led by b; 0 when b can never lead one */
static int seq_len(unsigned b) {
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

/* may b follow lead at position pos (1-based) of the sequence? (excludes
 * overlongs, surrogates and code points above U+10FFFF) */
static int cont_ok(unsigned lead, int pos, unsigned b) {
    unsigned lo = 0x80, hi = 0xBF;
    if (pos == 1) {
        if (lead == 0xE0) lo = 0xA0;
        else if (lead == 0xED) hi = 0x9F;
        else if (lead == 0xF0) lo = 0x90;
        else if (lead == 0xF4) hi = 0x8F;
    }
    return b >= lo && b <= hi;
}

struct sink {
    char *out;
    size_t cap, n;
};
static void put(struct sink *s, const char *p, size_t k) {
    size_t room = s->cap > s->n ? s->cap - s->n : 0;
    if (k > room) k = room; /* documented: an undersized cap truncates */
    memcpy(s->out + s->n, p, k);
    s->n += k;
}

void tok_utf8_init(tok_utf8_stream *s) { memset(s, 0, sizeof *s); }

size_t tok_utf8_push(tok_utf8_stream *s, const char *in, size_t n, char *out, size_t cap) {
    struct sink k = {out, cap, 0};
    for (size_t i = 0; i < n; i++) {
        unsigned b = (unsigned char)in[i];
        if (s->npend > 0) {
            unsigned lead = s->pend[0];
            if (cont_ok(lead, s->npend, b)) {
                s->pend[s->npend++] = (unsigned char)b;
                if (s->npend == seq_len(lead)) {
                    put(&k, (const char *)s->pend, (size_t)s->npend);
                    s->npend = 0;
                }
                continue;
            }
            /* the held prefix can never complete: one replacement, then b afresh */
            put(&k, k_fffd, 3);
            s->npend = 0;
        }
        int L = seq_len(b);
        if (L == 1) {
            char c = (char)b;
            put(&k, &c, 1);
        } else if (L == 0) {
            put(&k, k_fffd, 3);
        } else {
            s->pend[0] = (unsigned char)b;
            s->npend = 1;
        }
    }
    return k.n;
}

size_t tok_utf8_finish(tok_utf8_stream *s, char *out, size_t cap) {
    struct sink k = {out, cap, 0};
    if (s->npend > 0) put(&k, k_fffd, 3);
    s->npend = 0;
    return k.n;
}
