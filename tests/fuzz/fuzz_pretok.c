// test-libs: llorch_tok llorch_core
/* fuzz_pretok: tok_pretokenize on arbitrary bytes, every pre kind. Invariants:
 * the spans cover the input exactly and in order, none is empty, every span
 * boundary is a character boundary of the strict UTF-8 decode (invalid bytes
 * are one-byte characters), and a short cap returns the same count with the
 * same leading spans. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretok.h"
#include "tokenizer/unicode.h"

#define CHECK(c)                 \
    do {                         \
        if (!(c)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    const char *text = (const char *)data;
    tok_span *sp = malloc((size + 1) * sizeof *sp);
    tok_span *sq = malloc((size + 1) * sizeof *sq);
    unsigned char *boundary = calloc(size + 1, 1);
    CHECK(sp && sq && boundary);
    for (size_t at = 0; at < size;) {
        boundary[at] = 1;
        uint32_t cp;
        int k = tok_utf8_next(data + at, size - at, &cp);
        at += k > 0 ? (size_t)k : 1;
    }
    boundary[size] = 1;
    static const enum tok_pre pres[] = {TOK_PRE_DEFAULT, TOK_PRE_LLAMA3, TOK_PRE_QWEN2, TOK_PRE_O200K,
                                        TOK_PRE_O200K_LLAMACPP, TOK_PRE_LLAMA_DEFAULT};
    for (size_t p = 0; p < sizeof pres / sizeof pres[0]; p++) {
        int n = tok_pretokenize(pres[p], text, size, sp, (int)size + 1);
        CHECK(n >= 0 && (size_t)n <= size);
        size_t at = 0;
        for (int i = 0; i < n; i++) {
            CHECK(sp[i].off == at && sp[i].len > 0);
            at += sp[i].len;
            CHECK(at <= size && boundary[at]);
        }
        CHECK(at == size);
        int cap = n / 2;
        int m = tok_pretokenize(pres[p], text, size, sq, cap);
        CHECK(m == n);
        CHECK(memcmp(sp, sq, (size_t)cap * sizeof *sp) == 0);
    }
    free(sp);
    free(sq);
    free(boundary);
    return 0;
}
