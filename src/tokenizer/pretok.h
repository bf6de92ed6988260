/* pretok — Unicode categories (tables generated from UnicodeData.txt into
 * unicode_tables.c by tools/gen_unicode.py) and the regex-free pre-tokenizers
 * that split text into the words byte-level BPE merges within.
 *
 * The splits reproduce, span for span, these pre-tokenizer regexes (as
 * llama.cpp applies them for tokenizer.ggml.pre):
 *   TOK_PRE_DEFAULT  GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   TOK_PRE_LLAMA3   Llama-3 (also qwen2 minus the digit rule; see pretok.c)
 *   TOK_PRE_QWEN2    Qwen2:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   TOK_PRE_O200K    GPT-4o / GPT-OSS (the o200k pattern with its case-aware letter classes)
 * Invalid UTF-8 bytes are treated as one-byte "other" characters (never dropped).
 */
#ifndef LLORCH_PRETOK_H
#define LLORCH_PRETOK_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* category flags of a code point */
enum tok_ucat {
    TOK_UCAT_L = 1 << 0,      /* letter (any Lu Ll Lt Lm Lo) */
    TOK_UCAT_LU = 1 << 1,     /* upper-case letter or title-case (Lu, Lt) */
    TOK_UCAT_LL = 1 << 2,     /* lower-case letter (Ll) */
    TOK_UCAT_LMO = 1 << 3,    /* Lm or Lo */
    TOK_UCAT_M = 1 << 4,      /* mark (Mn Mc Me) */
    TOK_UCAT_N = 1 << 5,      /* number (Nd Nl No) */
    TOK_UCAT_P = 1 << 6,      /* punctuation */
    TOK_UCAT_S = 1 << 7,      /* symbol */
    TOK_UCAT_Z = 1 << 8,      /* separator */
    TOK_UCAT_C = 1 << 9,      /* other (control, format, unassigned, ...) */
    TOK_UCAT_WS = 1 << 10,    /* \s as the regex engines mean it (White_Space property) */
};
unsigned tok_ucat(uint32_t cp);

typedef struct {
    uint32_t off; /* byte offset into the text */
    uint32_t len; /* byte length */
} tok_span;

/* Splits text[0..len) into spans that cover it exactly, in order. Writes up to
 * cap spans; returns the total count (may exceed cap) or a negative code. */
int tok_pretokenize(enum tok_pre pre, const char *text, size_t len, tok_span *spans, int cap);

/* Maps a tokenizer.ggml.pre name to the enum; -1 when unknown. */
int tok_pre_parse(const char *name, size_t len);

#endif
