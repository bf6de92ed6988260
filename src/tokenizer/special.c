/* special — splits input text into raw-text fragments and whole special
 * tokens, like llama.cpp's tokenizer_st_partition: special tokens (control,
 * user-defined, unknown) are tried longest first; each one cuts every raw
 * fragment at all its non-overlapping occurrences, left to right. Without
 * parse_special only user-defined tokens are matched. LSTRIP/RSTRIP tokens eat
 * the whitespace beside them (Phi-3).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

struct fvec {
    struct tok_frag *a;
    size_t n, cap;
};

static int fpush(struct fvec *f, int32_t tok, size_t off, size_t len) {
    if (f->n == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 16;
        struct tok_frag *na = realloc(f->a, nc * sizeof *na);
        if (!na) return -ENOMEM;
        f->a = na;
        f->cap = nc;
    }
    f->a[f->n++] = (struct tok_frag){tok, (uint32_t)off, (uint32_t)len};
    return 0;
}

int tok_partition(const tok_vocab *v, const char *text, size_t len, int parse_special, struct tok_frag **out) {
    *out = NULL;
    if (len > ((size_t)1 << 28)) return -E2BIG; /* keeps offsets and the fragment count well inside int */
    struct fvec cur = {0}, nxt = {0};
    if (len > 0 && fpush(&cur, -1, 0, len)) return -ENOMEM;

    for (int32_t s = 0; s < v->n_special && cur.n > 0; s++) {
        int32_t id = v->special[s];
        unsigned a = v->attr[id];
        if (!parse_special && (a & (TOK_ATTR_CONTROL | TOK_ATTR_UNKNOWN))) continue;
        const char *t = tok_txt(v, id);
        size_t tl = v->len[id];
        nxt.n = 0;
        int changed = 0;
        for (size_t f = 0; f < cur.n; f++) {
            struct tok_frag fr = cur.a[f];
            if (fr.token >= 0 || fr.len < tl) {
                if (fpush(&nxt, fr.token, fr.off, fr.len)) goto oom;
                continue;
            }
            size_t boff = fr.off, blen = fr.len;
            for (;;) {
                const char *m = blen >= tl ? memmem(text + boff, blen, t, tl) : NULL;
                if (!m) break;
                changed = 1;
                size_t mo = (size_t)(m - text);
                size_t llen = mo - boff;
                if (a & TOK_ATTR_LSTRIP)
                    while (llen > 0 && isspace((unsigned char)text[boff + llen - 1])) llen--;
                if (llen > 0 && fpush(&nxt, -1, boff, llen)) goto oom;
                if (fpush(&nxt, id, 0, 0)) goto oom;
                size_t roff = mo + tl, rlen = boff + blen - roff;
                if (a & TOK_ATTR_RSTRIP)
                    while (rlen > 0 && isspace((unsigned char)text[roff])) roff++, rlen--;
                boff = roff;
                blen = rlen;
                if (blen == 0) break;
            }
            if (blen > 0 && fpush(&nxt, -1, boff, blen)) goto oom;
        }
        if (changed) {
            struct fvec tmp = cur;
            cur = nxt;
            nxt = tmp;
        }
    }
    free(nxt.a);
    if (!cur.a) { /* empty input: a valid, empty list */
        cur.a = malloc(sizeof *cur.a);
        if (!cur.a) return -ENOMEM;
    }
    *out = cur.a;
    return (int)cur.n;
oom:
    free(cur.a);
    free(nxt.a);
    return -ENOMEM;
}
