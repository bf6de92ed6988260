/* pretok — Unicode categories (tables generated from UnicodeData.txt into
 * unicode_tables.c by tools/gen_unicode.py) and the regex-free pre-tokenizers
 * that split text into the words byte-level BPE merges within.
 *
 * The splits reproduce, span for span, these pre-tokenizer regexes as
 * llama.cpp applies them for tokenizer.ggml.pre (llama-vocab.cpp, unicode.cpp):
 *   TOK_PRE_DEFAULT  GPT-2 ("gpt-2"; llama.cpp's hand-written gpt2 splitter):
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   TOK_PRE_LLAMA3   Llama-3 ("llama-bpe"):
 *     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   TOK_PRE_QWEN2    Qwen2 ("qwen2"): the Llama-3 regex with \p{N} (one digit) for \p{N}{1,3}
 *   TOK_PRE_O200K    GPT-4o / GPT-OSS ("gpt-4o"), the o200k regex as written in
 *     tokenizer.json (what tiktoken and HF tokenizers run):
 *     [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
 *     |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
 *     |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   TOK_PRE_O200K_LLAMACPP  the rewrite llama.cpp actually runs for "gpt-4o"
 *     (std::regex has no \p{Lu}): U = (?=\p{L})[^a-z], L = (?=\p{L})[^A-Z] in place
 *     of the two classes above, so case is told apart for ASCII letters only and
 *     combining marks are not word characters. Equal to TOK_PRE_O200K on text
 *     without non-ASCII letters or marks.
 *   TOK_PRE_LLAMA_DEFAULT  llama.cpp's "default" (tokenizer.ggml.pre "default"
 *     or missing): not GPT-2 but a chain of four regexes, each splitting every
 *     piece the previous one left: [\p{P}\$\+<=>\^~\|]+, then the GPT-2 regex,
 *     then \p{N}+, then [0-9][0-9][0-9].
 * Categories are Unicode 15.1 (as llama.cpp's tables; tools/ref/llamacpp_check.sh
 * compares every code point). \s is the White_Space property (U+0085 yes, U+FEFF no);
 * the (?i:) groups fold ASCII letters only, as llama.cpp's [sS] rewrite does,
 * except in TOK_PRE_O200K, which folds as Unicode regex engines do (U+017F
 * long s matches 's'). Invalid UTF-8 bytes are one-byte
 * characters of category "other" (TOK_UCAT_C), never dropped (llama.cpp would
 * replace each with U+FFFD, also a non-letter non-number non-space).
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

/* extra kinds beyond enum tok_pre (tokenizer.h); see above */
#define TOK_PRE_O200K_LLAMACPP ((enum tok_pre)16)
#define TOK_PRE_LLAMA_DEFAULT ((enum tok_pre)17)

/* Splits text[0..len) into spans that cover it exactly, in order. Writes up to
 * cap spans; returns the total count (may exceed cap) or a negative code
 * (-ERR_INVALID_REQUEST: unknown pre, NULL pointers, cap < 0, len > INT_MAX).
 * Spans are never empty; linear time; no allocation. */
int tok_pretokenize(enum tok_pre pre, const char *text, size_t len, tok_span *spans, int cap);

/* Maps a tokenizer.ggml.pre name (len bytes, no NUL needed) to the enum, by
 * the split llama.cpp applies for it ("gpt-2", "llama-bpe", "qwen2",
 * "deepseek-r1-qwen", "gpt-4o", ... see pretok.c; "default" gives
 * TOK_PRE_LLAMA_DEFAULT, which is also llama.cpp's choice for a missing
 * tokenizer.ggml.pre); -1 when unknown. */
int tok_pre_parse(const char *name, size_t len);

#endif
