/* json — a small strict JSON reader for tokenizer.json (src/tokenizer depends
 * on libc only, so no jansson here). The input is hostile: RFC 8259 grammar
 * only (no comments, trailing commas, NaN, leading zeros), strings must be
 * valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF, raw or
 * \u-escaped; a lone surrogate escape is an error), control bytes inside
 * strings must be escaped, nesting is limited to TOK_JSON_MAX_DEPTH, the input to
 * TOK_JSON_MAX_INPUT bytes, and an object may not name a key twice.
 *
 * Shape: one parse gives an immutable tree of nodes in one array (index 0 is
 * the root). Arrays list their elements as children; objects list key, value,
 * key, value, ... (keys are TOK_JSON_STR nodes). Decoded string bytes live in one
 * pool owned by the document (not NUL-terminated: use (ptr, len); they may
 * contain NUL from \u0000). Numbers keep their source text; tok_json_int converts.
 * Errors: a negative code and a message "json: <what> at byte <offset>".
 */
#ifndef LLORCH_TOK_JSON_H
#define LLORCH_TOK_JSON_H

#include <stddef.h>
#include <stdint.h>

#define TOK_JSON_MAX_DEPTH 64
#define TOK_JSON_MAX_INPUT ((size_t)1 << 30) /* 1 GiB: real tokenizer.json files are < 40 MB */

enum tok_json_type {
    TOK_JSON_NULL = 0, TOK_JSON_FALSE, TOK_JSON_TRUE, TOK_JSON_NUM, TOK_JSON_STR, TOK_JSON_ARR, TOK_JSON_OBJ
};

typedef struct {
    uint8_t type;   /* enum tok_json_type */
    uint32_t n;     /* STR: byte length; NUM: source text length; ARR/OBJ: child count (OBJ: 2 per member) */
    uint64_t off;   /* STR: offset in the string pool; NUM: offset in the input */
    int32_t first;  /* ARR/OBJ: first child, -1 when empty */
    int32_t next;   /* next sibling, -1 at the end */
} tok_json_node;

typedef struct {
    tok_json_node *nodes; /* [n_nodes], nodes[0] is the root */
    int32_t n_nodes;
    char *pool;     /* decoded string bytes */
    const char *src; /* the input (borrowed: must outlive the document only for tok_json_int/tok_json_num_text) */
} tok_json_doc;

/* Parses src[0..len). 0 on success (doc filled; free with tok_json_free), or a
 * negative code (-EINVAL malformed, -E2BIG too large/deep, -ENOMEM) with a
 * message in err. */
int tok_json_parse(const char *src, size_t len, tok_json_doc *doc, char *err, size_t errlen);
void tok_json_free(tok_json_doc *doc);

static inline const tok_json_node *tok_json_at(const tok_json_doc *d, int32_t i) {
    return i >= 0 ? &d->nodes[i] : NULL;
}
static inline int tok_json_type(const tok_json_doc *d, int32_t i) { return i >= 0 ? d->nodes[i].type : -1; }

/* object member by key (first match; keys are unique anyway): value index or -1 */
int32_t tok_json_get(const tok_json_doc *d, int32_t obj, const char *key);
/* string bytes of a TOK_JSON_STR node (NULL for another type) */
const char *tok_json_str(const tok_json_doc *d, int32_t i, size_t *len);
/* 1 when node i is the string s exactly */
int tok_json_str_is(const tok_json_doc *d, int32_t i, const char *s);
/* integer value of a TOK_JSON_NUM written without fraction or exponent, within
 * [lo, hi]: 0, or -ERANGE (too big/small), -EINVAL (not an integer number) */
int tok_json_int(const tok_json_doc *d, int32_t i, int64_t lo, int64_t hi, int64_t *out);

#endif
