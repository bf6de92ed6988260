/* tokenizer — GGUF vocabularies: SentencePiece-style (tokenizer.ggml.model =
 * "llama") and byte-level BPE ("gpt2" with merges and the pre-tokenizer named by
 * tokenizer.ggml.pre), plus tokenizer.json (hf-json) later. No external
 * tokenizer library. Behaviour matches llama.cpp's llama-vocab so token ids can
 * be diffed.
 *
 * Ownership: tok_vocab copies everything it needs out of the GGUF, so it
 * outlives the gguf_ctx it was loaded from.
 */
#ifndef LLORCH_TOKENIZER_H
#define LLORCH_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h"

typedef struct tok_vocab tok_vocab;

enum tok_kind { TOK_KIND_SPM = 0, TOK_KIND_BPE = 1 };

/* pre-tokenizers for BPE vocabularies (tokenizer.ggml.pre) */
enum tok_pre {
    TOK_PRE_DEFAULT = 0, /* "default", "gpt-2" (GPT-2 regex) */
    TOK_PRE_LLAMA3,      /* "llama-bpe", "llama3" */
    TOK_PRE_QWEN2,       /* "qwen2" */
    TOK_PRE_O200K,       /* "gpt-4o" (GPT-OSS) */
};

/* token attribute bits (from tokenizer.ggml.token_type) */
enum tok_attr {
    TOK_ATTR_NORMAL = 1, TOK_ATTR_UNKNOWN = 2, TOK_ATTR_CONTROL = 4,
    TOK_ATTR_USER_DEFINED = 8, TOK_ATTR_UNUSED = 16, TOK_ATTR_BYTE = 32,
};

int tok_load_gguf(const gguf_ctx *g, tok_vocab **out, char *err, size_t errlen);
void tok_free(tok_vocab *v); /* NULL ok */

enum tok_kind tok_kind(const tok_vocab *v);
const char *tok_kind_name(const tok_vocab *v); /* "gguf-spm" | "gguf-bpe" | "hf-json" */
int32_t tok_n_vocab(const tok_vocab *v);
int32_t tok_bos(const tok_vocab *v);   /* -1 when none */
int32_t tok_eos(const tok_vocab *v);
int tok_add_bos(const tok_vocab *v);   /* tokenizer.ggml.add_bos_token (with llama.cpp's defaults) */
int tok_add_eos(const tok_vocab *v);
/* end-of-generation: EOS, EOT, <|im_end|>, <|return|>, ... as the vocab declares */
int tok_is_eog(const tok_vocab *v, int32_t id);
int tok_is_control(const tok_vocab *v, int32_t id);
/* the token's text as stored in the vocab (e.g. "▁the", "Ġthe", "<0x0A>"); NULL when out of range */
const char *tok_text(const tok_vocab *v, int32_t id);
int32_t tok_find(const tok_vocab *v, const char *text); /* exact vocab entry, -1 when absent */

/* Tokenizes text[0..len). add_special: prepend BOS/append EOS per the vocab's
 * flags. parse_special: match special/control tokens written in the text
 * whole (e.g. "<|im_start|>") instead of tokenizing their characters.
 * Writes up to cap ids into out. Returns the total number of tokens (which may
 * exceed cap: call again with a larger buffer) or a negative error code. */
int tok_encode(const tok_vocab *v, const char *text, size_t len, int add_special, int parse_special,
               int32_t *out, int cap);

/* The raw bytes a token contributes to the output text (SPM: "▁"→' ', <0xNN>
 * byte tokens → that byte; BPE: byte-level unicode mapped back to bytes).
 * Control tokens give "" unless render_special. Returns the byte count (may
 * exceed cap: nothing written beyond cap) or a negative code for a bad id.
 * Like llama.cpp's token_to_piece(..., lstrip=0, special=render_special). */
int tok_piece(const tok_vocab *v, int32_t id, int render_special, char *out, int cap);

/* Detokenizes a sequence like llama.cpp's llama_detokenize (remove a leading
 * space after BOS for SPM when remove_leading_space...). Returns bytes or needed size. */
int tok_decode(const tok_vocab *v, const int32_t *ids, int n, int render_special, char *out, int cap);

/* ---- streaming UTF-8 assembler -----------------------------------------------
 * Feeds token bytes in; emits only complete, valid UTF-8. Bytes of an
 * incomplete sequence are held until completed. A byte that can never start
 * or continue a valid sequence is emitted as U+FFFD only when it is truly
 * invalid in the final stream (never invented for a split code point). */
typedef struct {
    unsigned char pend[4];
    int npend;
} tok_utf8_stream;

void tok_utf8_init(tok_utf8_stream *s);
/* Appends in[0..n) and writes the emit-ready bytes to out (cap >= n + 4 is
 * always enough). Returns bytes written. */
size_t tok_utf8_push(tok_utf8_stream *s, const char *in, size_t n, char *out, size_t cap);
/* End of stream: flushes what is pending (invalid leftovers become U+FFFD). */
size_t tok_utf8_finish(tok_utf8_stream *s, char *out, size_t cap);

#endif
