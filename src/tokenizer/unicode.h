/* unicode — internal to the tokenizer module: the generated category tables
 * (unicode_tables.c, from tools/gen_unicode.py) and a strict UTF-8 decoder.
 * The public lookup is tok_ucat() in pretok.h. */
#ifndef LLORCH_TOK_UNICODE_H
#define LLORCH_TOK_UNICODE_H

#include <stddef.h>
#include <stdint.h>

extern const char tok_unicode_version[];   /* e.g. "15.0.0" */
extern const uint32_t tok_ucat_nranges;
extern const uint16_t tok_ucat_latin1[256]; /* flags of U+0000..U+00FF */
extern const uint32_t tok_ucat_start[];     /* [tok_ucat_nranges] sorted, [0] == 0 */
extern const uint16_t tok_ucat_flags[];     /* [tok_ucat_nranges] */
extern const uint16_t tok_ucat_block[];     /* [0x1101]: range of each 256-block's first code point */

/* Decodes one strict UTF-8 sequence at s[0..n), n >= 1. Returns its length
 * (1..4) and sets *cp, or 0 when s[0] does not start a complete, shortest-form,
 * non-surrogate sequence <= U+10FFFF (the caller then treats s[0] as one
 * invalid byte). */
static inline int tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2 || c > 0xF4) return 0; /* continuation, overlong lead, or > U+10FFFF */
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        uint32_t v = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        if (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF)) return 0;
        *cp = v;
        return 3;
    }
    if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
    uint32_t v = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
    if (v < 0x10000 || v > 0x10FFFF) return 0;
    *cp = v;
    return 4;
}

#endif
