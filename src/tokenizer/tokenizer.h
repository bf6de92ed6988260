/* tokenizer — GGUF vocabularies: SentencePiece-style (tokenizer.ggml.model =
 * "llama") and byte-level BPE ("gpt2" with merges and the pre-tokenizer named by
 * tokenizer.ggml.pre), plus a tokenizer.json beside the model (hf-json). No external
 * tokenizer library. Behaviour matches llama.cpp's llama-vocab so token ids can
 * be diffed.
 *
 * Ownership: tok_vocab copies everything it needs out of the GGUF, so it
 * outlives the gguf_ctx it was loaded from. A loaded vocab is immutable:
 * encode/piece/decode may run from any number of threads at once.
 *
 * Fidelity: ids and detokenized bytes match llama.cpp (the v0.4.0 bundle of
 * node-llama-cpp 3.21.1) on the committed fixtures for SPM (stories260K,
 * Llama-2) and BPE (Qwen2, Llama-3 and GPT-OSS vocabularies). Where llama.cpp
 * throws or aborts on a hostile vocabulary we return an error or degrade as
 * documented at each function. hf-json vocabularies match Hugging Face
 * tokenizers (transformers.js) ids on the committed fixtures for Qwen3,
 * Llama-3 and GPT-OSS. Not implemented: BPE pre-tokenizers beyond those
 * pretok.c splits, SentencePiece-style tokenizer.json (Unigram, byte_fallback).
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
    /* added: special-token matching eats whitespace left/right of the token (Phi-3) */
    TOK_ATTR_LSTRIP = 64, TOK_ATTR_RSTRIP = 128,
};

int tok_load_gguf(const gguf_ctx *g, tok_vocab **out, char *err, size_t errlen);

/* hf-json: a Hugging Face tokenizer.json (byte-level BPE: Qwen2/Qwen3,
 * Llama-3, GPT-OSS o200k, GPT-2 style). What is supported and refused is
 * listed in hf_json.c; anything else is refused with a message naming the
 * field. The loaded vocab behaves like a GGUF one (same functions), follows
 * HF tokenizers where it and llama.cpp differ (NFC normalizer applied, exact
 * o200k regex, no space clean-up on decode), and tok_kind_name says "hf-json". */
struct tok_hf_opts {
    int32_t n_pad;         /* pad with unused "[PAD<id>]" tokens up to this many (a model's embedding rows); 0: none */
    const gguf_ctx *model; /* optional: the model's GGUF. Its tokenizer.ggml.tokens (if any) must agree with the
                            * file at every shared id, and its *_token_id keys name eos/eot/... (the
                            * post_processor's BOS/EOS win) */
};
int tok_load_hf_json(const char *path, const struct tok_hf_opts *o, tok_vocab **out, char *err, size_t errlen);
int tok_load_hf_json_mem(const char *buf, size_t len, const struct tok_hf_opts *o, tok_vocab **out, char *err,
                         size_t errlen);
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
/* added: */
int32_t tok_eot(const tok_vocab *v);                     /* end-of-turn id (key or detected by text), -1 when none */
int32_t tok_unk(const tok_vocab *v);                     /* -1 when none */
unsigned tok_token_attr(const tok_vocab *v, int32_t id); /* TOK_ATTR_* bits; 0 for a bad id */
float tok_score(const tok_vocab *v, int32_t id);         /* tokenizer.ggml.scores entry (0 when absent/bad id) */
enum tok_pre tok_pre_kind(const tok_vocab *v);           /* BPE pre-tokenizer (TOK_PRE_DEFAULT for SPM) */

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

/* Detokenizes a sequence like llama.cpp's llama_detokenize(remove_special=false,
 * unparse_special=render_special): pieces concatenated; when the vocab adds a
 * space prefix (SPM) the first token loses one leading space; BPE vocabs with
 * clean_up_tokenization_spaces (gpt-2, llama-bpe; not qwen2/gpt-4o) get its
 * " ." / " 's" clean-ups. Returns the full byte count (may exceed cap: only
 * cap bytes written) or a negative code (bad id). */
int tok_decode(const tok_vocab *v, const int32_t *ids, int n, int render_special, char *out, int cap);
/* added: the same with llama_detokenize's remove_special: a leading BOS (and
 * trailing EOS) the vocab adds is dropped, and then no leading space is removed. */
int tok_detokenize(const tok_vocab *v, const int32_t *ids, int n, int remove_special, int render_special, char *out,
                   int cap);

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
/* Appends in[0..n) and writes the emit-ready bytes to out. Returns bytes
 * written. cap >= n + 3 is enough for valid UTF-8; each invalid byte becomes
 * the 3-byte U+FFFD, so cap >= 3 * n + 3 is always enough (TOK_UTF8_CAP).
 * Output beyond cap is dropped. */
#define TOK_UTF8_CAP(n) (3 * (size_t)(n) + 3)
size_t tok_utf8_push(tok_utf8_stream *s, const char *in, size_t n, char *out, size_t cap);
/* End of stream: flushes what is pending (an incomplete sequence becomes one
 * U+FFFD; cap >= 3 is enough). */
size_t tok_utf8_finish(tok_utf8_stream *s, char *out, size_t cap);

#endif
