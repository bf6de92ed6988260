/* fuzz_tok_common — shared by fuzz_tok_spm.c and fuzz_tok_bpe.c: vocab
 * setup at startup and the invariants every encode/decode must keep.
 *
 * Input layout: byte 0 = flags (bit0 add_special, bit1 parse_special,
 * bit2 render_special, bits 3.. pick a vocab), the rest is the text.
 *
 * Invariants: tok_encode never fails on any bytes; all ids are in range; the
 * count is the same whatever cap is passed and nothing is written past cap;
 * pieces and decode succeed for every produced id; when every id is an
 * ordinary or byte token, detokenizing gives the input back (exactly as
 * llama.cpp does for these vocabularies: see each target).
 */
#ifndef FUZZ_TOK_COMMON_H
#define FUZZ_TOK_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#include "fuzz_vocab.h"

static void ft_check(tok_vocab *v, const uint8_t *data, size_t size, int roundtrip_ok) {
    if (size < 1) return;
    int add = data[0] & 1, parse = (data[0] >> 1) & 1, render = (data[0] >> 2) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int n = tok_encode(v, text, len, add, parse, NULL, 0);
    if (n < 0) abort(); /* any bytes tokenize */
    int32_t *ids = malloc(sizeof(int32_t) * ((size_t)n + 1));
    if (!ids) abort();
    ids[n] = 0x7eadbeef;
    int n2 = tok_encode(v, text, len, add, parse, ids, n);
    if (n2 != n || ids[n] != 0x7eadbeef) abort();
    int special = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok_n_vocab(v)) abort();
        unsigned a = tok_token_attr(v, ids[i]);
        if (!(a & (TOK_ATTR_NORMAL | TOK_ATTR_BYTE)) || (a & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED))) special = 1;
        char pc[8];
        if (tok_piece(v, ids[i], render, pc, sizeof pc) < 0) abort();
    }
    /* a short cap: the same count, a prefix of the ids */
    if (n > 2) {
        int32_t few[2];
        if (tok_encode(v, text, len, add, parse, few, 2) != n || few[0] != ids[0] || few[1] != ids[1]) abort();
    }
    int dl = tok_decode(v, ids, n, render, NULL, 0);
    if (dl < 0) abort();
    char *out = malloc((size_t)dl + 1);
    if (!out) abort();
    if (tok_decode(v, ids, n, render, out, dl) != dl) abort();
    if (roundtrip_ok && !special && !add && !parse && (dl != (int)len || memcmp(out, text, len) != 0)) {
        fprintf(stderr, "round trip differs: in %zu bytes, out %d bytes\n", len, dl);
        abort();
    }
    /* streaming the pieces gives valid UTF-8 */
    tok_utf8_stream st;
    tok_utf8_init(&st);
    for (int i = 0; i < n; i++) {
        char pc[256], o[TOK_UTF8_CAP(256)];
        int k = tok_piece(v, ids[i], render, pc, sizeof pc);
        if (k > (int)sizeof pc) continue;
        size_t e = tok_utf8_push(&st, pc, (size_t)k, o, sizeof o);
        if (!util_utf8_valid(o, e)) abort();
    }
    free(out);
    free(ids);
}

#endif
