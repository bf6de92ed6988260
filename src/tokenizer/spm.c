/* spm — SentencePiece-style tokenization as llama.cpp's llm_tokenizer_spm_session:
 * start from one symbol per UTF-8 character, repeatedly merge the adjacent
 * pair whose concatenation is the highest-scoring vocab entry (ties: leftmost),
 * then emit each symbol's token, or its bytes as <0xNN> tokens when it is not
 * in the vocab. A binary heap keeps this O(n log n); stale heap entries are
 * recognised by size, as in llama.cpp.
 */
#include <errno.h>
#include <stdlib.h>

#include "tokenizer/heap.h"
#include "tokenizer/tok_internal.h"

struct sym {
    int32_t prev, next; /* neighbours in the live chain, -1 at the ends */
    uint32_t off, n;    /* text[off .. off+n); n == 0 once merged away */
};

static int try_bigram(const tok_vocab *v, const char *text, const struct sym *s, int32_t l, int32_t r,
                      struct tok_heap *h) {
    if (l < 0 || r < 0) return 0;
    size_t n = (size_t)s[l].n + s[r].n;
    int32_t id = tok_lookup(v, text + s[l].off, n);
    if (id < 0) return 0;
    return tok_heap_push(h, (struct tok_bigram){-(double)v->score[id], l, r, (uint32_t)n}); /* highest score first */
}

static void emit_bytes(const tok_vocab *v, const char *p, size_t n, struct tok_out *out) {
    for (size_t j = 0; j < n; j++) {
        int32_t id = v->byte_tok[(unsigned char)p[j]];
        /* no <0xNN> nor raw-byte token: llama.cpp throws; we fall back to <unk> */
        if (id < 0) id = v->unk;
        if (id >= 0) tok_out_push(out, id);
    }
}

int tok_spm_fragment(const tok_vocab *v, const char *text, size_t len, struct tok_out *out) {
    if (len == 0) return 0;
    struct sym *s = malloc(len * sizeof *s);
    struct tok_heap h = {0};
    if (!s) return -ENOMEM;
    int32_t ns = 0;
    static const unsigned char k_len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    for (size_t off = 0; off < len;) {
        size_t k = k_len[(unsigned char)text[off] >> 4];
        if (k > len - off) k = len - off;
        s[ns] = (struct sym){ns - 1, off + k == len ? -1 : ns + 1, (uint32_t)off, (uint32_t)k};
        ns++;
        off += k;
    }
    int rc = 0;
    for (int32_t i = 1; i < ns && !rc; i++) rc = try_bigram(v, text, s, i - 1, i, &h);
    while (!rc && h.n > 0) {
        struct tok_bigram b = tok_heap_pop(&h);
        struct sym *L = &s[b.left], *R = &s[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue; /* stale */
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) s[R->next].prev = b.left;
        rc = try_bigram(v, text, s, L->prev, b.left, &h);
        if (!rc) rc = try_bigram(v, text, s, b.left, L->next, &h);
    }
    if (!rc) {
        for (int32_t i = 0; i != -1; i = s[i].next) {
            int32_t id = tok_lookup(v, text + s[i].off, s[i].n);
            if (id >= 0) tok_out_push(out, id);
            else emit_bytes(v, text + s[i].off, s[i].n, out);
        }
    }
    free(h.a);
    free(s);
    return rc;
}
