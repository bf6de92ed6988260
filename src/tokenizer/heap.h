/* heap — the binary min-heap of candidate merges both tokenizers use (spm.c,
 * bpe.c), as llama.cpp's llm_bigram_spm / llm_bigram_bpe priority queues.
 *
 * A candidate is the adjacent symbol pair (left, right) of total byte size
 * `size`; the heap yields the smallest `key` first and, on equal keys, the
 * leftmost pair. SPM pushes key = -score (highest score first), BPE pushes
 * key = merge rank (lowest rank first); a double holds every float score and
 * int32 rank exactly, so both orders are the ones they had with their own
 * types. Stale entries (a side merged since the push) are the caller's to
 * recognise by `size`. The array grows by doubling and is the caller's to
 * free (free(h->a)); clearing is h->n = 0, keeping the allocation.
 */
#ifndef LLORCH_TOK_HEAP_H
#define LLORCH_TOK_HEAP_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

struct tok_bigram {
    double key;           /* smaller first */
    int32_t left, right;  /* symbol indices */
    uint32_t size;        /* bytes of left + right when pushed */
};

struct tok_heap {
    struct tok_bigram *a; /* [cap], the first n are the heap */
    size_t n, cap;
};

static inline int tok_bigram_before(const struct tok_bigram *a, const struct tok_bigram *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

/* 0, or -ENOMEM (the heap is unchanged) */
static inline int tok_heap_push(struct tok_heap *h, struct tok_bigram b) {
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 64;
        struct tok_bigram *na = realloc(h->a, nc * sizeof *na);
        if (!na) return -ENOMEM;
        h->a = na;
        h->cap = nc;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!tok_bigram_before(&b, &h->a[p])) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = b;
    return 0;
}

/* removes and returns the first entry; h->n > 0 */
static inline struct tok_bigram tok_heap_pop(struct tok_heap *h) {
    struct tok_bigram top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && tok_bigram_before(&h->a[c + 1], &h->a[c])) c++;
        if (!tok_bigram_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n > 0) h->a[i] = last;
    return top;
}

#endif
