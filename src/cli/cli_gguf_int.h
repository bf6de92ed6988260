/* cli_gguf_int — shared pieces of the `llorch gguf` subcommands (inspect,
 * make, quantize): llama.cpp's file-type table and per-tensor type rules,
 * vocabulary sources, and a portable PRNG. Internal to src/cli/cli_gguf*.c. */
#ifndef LLORCH_CLI_GGUF_INT_H
#define LLORCH_CLI_GGUF_INT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gguf/gguf.h"

int cli_gguf_inspect(int argc, char **argv);
int cli_gguf_make(int argc, char **argv);
int cli_gguf_quantize(int argc, char **argv);

/* ---- file types (llama.cpp's LLAMA_FTYPE numbering) ------------------------ */
typedef struct {
    const char *name; /* "Q4_K_M" */
    int ftype;        /* general.file_type value */
    int base;         /* default ggml type of 2-D weights */
} mix_ftype_t;

/* NULL when unknown (case-insensitive) */
const mix_ftype_t *mix_ftype_by_name(const char *name);
const mix_ftype_t *mix_ftype_by_id(int ftype);

/* Per-tensor type selection, a port of llama.cpp's llama_tensor_get_type
 * (src/llama-quant.cpp) for the file types in our table (no IQ types, no
 * imatrix; experts only as gpt-oss has them: 32, not 8): categories by name,
 * the Q*_K_M/S bumps driven by counters over attn_v / ffn_down in the order
 * tensors are presented (llama.cpp presents them by layer), and the fall-back
 * when ne[0] is not a multiple of the chosen type's block size. */
typedef struct {
    const mix_ftype_t *ft;
    int arch_falcon;     /* never set by us; kept for fidelity of the rules */
    int n_layer;
    int n_gqa;           /* n_head / n_head_kv */
    int has_output;      /* a separate output.weight exists (else token_embd is the output) */
    int n_attn_v;        /* tensors in the attn_v category (attn_v, attn_qkv) */
    int i_attn_v, i_ffn_down, i_ffn_gate, i_ffn_up;
    int n_fallback;
    int pure;            /* --pure (llama-quantize's): every quantizable tensor gets
                          * the base type; only the block-size fall-back applies */
} mix_state;

/* name/n_dims/ne of the tensor; src_type is its current type (kept when the
 * tensor is not quantizable: 1-D, norms, ...). Call once per tensor, in file
 * order, after mix_init counted the model's tensors. */
int mix_tensor_type(mix_state *st, const char *name, int n_dims, const int64_t *ne, int src_type);
/* True when llama.cpp would quantize this tensor (2-D+ weights, not norms). */
int mix_quantizable(const char *name, int n_dims);
/* has_output / n_attn_v from the full name list */
void mix_init(mix_state *st, const mix_ftype_t *ft, int n_layer, int n_gqa, const char *const *names, int n);

/* ---- vocabularies ------------------------------------------------------------ */
/* HF tokenizer.json (BPE, byte-level) → tokenizer.ggml.* keys the way
 * llama.cpp's convert_hf_to_gguf.py writes them. tokenizer_config.json beside
 * it (when present) gives bos/eos/pad, add_bos/add_eos and the chat template.
 * pad_to > 0 pads the token list with "[PAD<i>]" UNUSED tokens up to that size.
 * pre: tokenizer.ggml.pre (NULL: guessed, "qwen2" for Qwen tokenizers).
 * *n_vocab receives the token count written. */
int vocab_from_json(gguf_writer *w, const char *path, const char *pre, int64_t pad_to, int64_t *n_vocab,
                    char *err, size_t errlen);
/* Copies every tokenizer.* key of a GGUF file. */
int vocab_from_gguf(gguf_writer *w, const char *path, int64_t *n_vocab, char *err, size_t errlen);
/* A synthetic SentencePiece vocabulary of n tokens (>= 259): <unk> <s> </s>,
 * the 256 byte tokens <0x00>.., then distinct filler pieces. */
int vocab_synthetic(gguf_writer *w, int64_t n, char *err, size_t errlen);

/* ---- flags --------------------------------------------------------------------- */
/* --flag's value s as an int in [lo, hi] into *out, 0; otherwise prints
 * "<cmd>: --flag 's': not an integer in lo..hi" and returns -1 (a cast of
 * strtol's long would silently truncate 4294967297 to 1) */
static inline int cg_flag_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 0);
    if (!*s || *end || errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "%s: --%s '%s': not an integer in %ld..%ld\n", cmd, flag, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* ---- threads ------------------------------------------------------------------ */
#define CG_MAX_THREADS 32
typedef int (*cg_rows_fn)(void *ctx, int tid, int64_t r0, int64_t r1);
/* online CPUs, capped at CG_MAX_THREADS */
int cg_threads_default(void);
/* Runs fn over [0, rows) split in nthreads contiguous ranges (1 thread for
 * small tensors); returns the first non-zero result. */
int cg_parallel_rows(int64_t rows, int nthreads, cg_rows_fn fn, void *ctx);

/* ---- PRNG (same stream on every machine) --------------------------------------- */
static inline uint64_t cg_rng(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
