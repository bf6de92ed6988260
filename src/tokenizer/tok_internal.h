/* tok_internal — the vocabulary as the tokenizer files share it (not a
 * contract: only src/tokenizer/ includes this).
 *
 * Everything is copied out of the GGUF at load (tok_vocab outlives it). Token
 * texts live in one pool, NUL-terminated, so a token's text is a C string and
 * also (ptr, len) for byte-exact comparisons. Lookups are O(1) open-addressing
 * hash tables built once at load: token text -> id, and (for BPE) the merge
 * pair "left right" -> rank.
 */
#ifndef LLORCH_TOK_INTERNAL_H
#define LLORCH_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* per-token flags besides the attribute bits */
#define TOKF_EOG 1u

/* ---- hashing ------------------------------------------------------------- */
static inline uint64_t tok_hash_bytes(uint64_t h, const void *p, size_t n) {
    /* FNV-1a 64: simple, byte-exact, good enough spread for vocab strings */
    const unsigned char *u = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) {
        h ^= u[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define TOK_HASH_SEED 0xcbf29ce484222325ull

/* A BPE merge: "first second" stored as the concatenation first+second with
 * the split point, so a lookup of two adjacent symbols is one hashed range. */
struct tok_merge {
    uint32_t off;   /* into merge_pool */
    uint32_t len;   /* bytes of first+second */
    uint32_t split; /* bytes of first */
    int32_t rank;   /* index in tokenizer.ggml.merges (first occurrence wins) */
};

struct tok_vocab {
    enum tok_kind kind;
    enum tok_pre pre;
    int32_t n;            /* token count */

    /* token texts: pool[off[i] .. off[i]+len[i]) + NUL */
    char *pool;
    uint32_t *off, *len;  /* [n] */
    float *score;         /* [n] */
    uint16_t *attr;       /* [n] tok_attr bits */
    uint8_t *flags;       /* [n] TOKF_* */
    uint32_t max_len;     /* longest token text */

    /* text -> id: slots hold id+1 (0 = empty); mask = slots-1 */
    uint32_t *tmap;
    uint32_t tmask;

    /* rendered pieces (llama.cpp's token_to_piece(special=true) cache) */
    char *ppool;
    uint32_t *poff, *plen; /* [n] */

    /* BPE merges */
    struct tok_merge *merges;
    int32_t n_merges;
    uint32_t max_merge_len; /* longest first+second */
    char *merge_pool;
    uint32_t *mmap;        /* slots hold merge index+1 */
    uint32_t mmask;

    /* special ids (-1 = none) */
    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    int add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces;

    /* control/user-defined/unknown tokens, longest text first (tokenizer_st_partition order) */
    int32_t *special;
    int32_t n_special;

    /* SPM byte fallback: <0xNN> (or the raw one-byte token); -1 when neither */
    int32_t byte_tok[256];

    /* loaded from a tokenizer.json (hf_json.c): kind name "hf-json"; nfc:
     * raw text fragments are NFC-normalized before pre-tokenization */
    int hf_json, nfc;
};

/* ---- vocab building blocks (vocab.c), shared by the GGUF and hf-json loaders */
/* text -> id table over v->n tokens (pool/off/len filled); refuses two tokens
 * with the same text. 0 or negative with a message. */
int tok_vocab_index_tokens(tok_vocab *v, char *err, size_t errlen);
/* merge pair -> rank table over v->merges[0..n_merges) (rank order). Returns
 * the number of duplicate pairs (the first keeps its rank) or -ENOMEM. */
int tok_vocab_index_merges(tok_vocab *v);
/* special ids from tokenizer.ggml.*_token_id keys (in range only) */
void tok_vocab_gguf_ids(tok_vocab *v, const gguf_ctx *g);
/* after tokens, merges and ids: EOG/EOT detection by text, the special-token
 * list, byte tokens and the rendered pieces. 0 or negative with a message. */
int tok_vocab_finish(tok_vocab *v, char *err, size_t errlen);

/* NFC normalization (nfc.c) of valid UTF-8 s[0..n) into a malloc'd buffer
 * (*out, *olen). Returns 0, 1 when s is already NFC (*out = NULL, nothing to
 * free), or -ENOMEM. Invalid UTF-8 bytes pass through unchanged. */
int tok_nfc(const char *s, size_t n, char **out, size_t *olen);

/* text -> id, -1 when absent */
int32_t tok_lookup(const tok_vocab *v, const char *s, size_t n);
/* rank of the merge (left,right) where left = s[0..split), right = s[split..n); -1 when absent */
int32_t tok_merge_rank(const tok_vocab *v, const char *s, size_t n, size_t split);

static inline const char *tok_txt(const tok_vocab *v, int32_t id) { return v->pool + v->off[id]; }

/* ---- growable id output (tok_encode writes through this) ----------------- */
struct tok_out {
    int32_t *buf; /* caller's */
    int cap;
    int64_t n;    /* total produced (may exceed cap) */
};
static inline void tok_out_push(struct tok_out *o, int32_t id) {
    if (o->n < o->cap) o->buf[o->n] = id;
    o->n++;
}

/* fragments: special-token partition of the input (special.c) */
struct tok_frag {
    int32_t token; /* >= 0: a special token; -1: raw text [off, off+len) */
    uint32_t off, len;
};
/* Splits text into raw spans and whole special tokens like llama.cpp's
 * tokenizer_st_partition. *out is malloc'd (caller frees). Returns the count
 * or a negative code (OOM). */
int tok_partition(const tok_vocab *v, const char *text, size_t len, int parse_special, struct tok_frag **out);

/* SPM: tokenizes one raw fragment (already space-escaped) into out. 0 or -ENOMEM. */
int tok_spm_fragment(const tok_vocab *v, const char *text, size_t len, struct tok_out *out);
/* BPE: pre-tokenizes and merges one raw fragment. 0 or negative. */
int tok_bpe_fragment(const tok_vocab *v, const char *text, size_t len, struct tok_out *out);

/* GPT-2 byte-level mapping: byte -> code point (its UTF-8 in out[2]; returns 1 or 2) */
int tok_byte_to_utf8(unsigned char b, char out[2]);
/* code point -> byte, -1 when cp is not a byte-level code point */
int tok_cp_to_byte(uint32_t cp);

/* Lenient UTF-8 decode as llama.cpp's unicode_cpt_from_utf8: checks lead and
 * continuation bits only (overlongs/surrogates pass). Returns the length
 * consumed (1..4) and the code point, or 0 for an invalid sequence. */
int tok_utf8_lenient(const unsigned char *s, size_t n, uint32_t *cp);

/* builds the rendered-piece cache (piece.c); 0 or -ENOMEM */
int tok_build_pieces(tok_vocab *v);

#endif
