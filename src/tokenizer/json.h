/* json — a small strict JSON reader for tokenizer.json (src/tokenizer depends
 * on libc only, so no jansson here). The input is hostile: RFC 8259 grammar
 * only (no comments, trailing commas, NaN, leading zeros), strings must be
 * valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF, raw or
 * \u-escaped; a lone surrogate escape is an error), control bytes inside
 * strings must be escaped, nesting is limited to TJ_MAX_DEPTH, the input to
 * TJ_MAX_INPUT bytes, and an object may not name a key twice.
 *
 * Shape: one parse gives an immutable tree of nodes in one array (index 0 is
 * the root). Arrays list their elements as children; objects list key, value,
 * key, value, ... (keys are TJ_STR nodes). Decoded string bytes live in one
 * pool owned by the document (not NUL-terminated: use (ptr, len); they may
 * contain NUL from \u0000). Numbers keep their source text; tj_int converts.
 * Errors: a negative code and a message "json: <what> at byte <offset>".
 */
#ifndef LLORCH_TOK_JSON_H
#define LLORCH_TOK_JSON_H

#include <stddef.h>
#include <stdint.h>

#define TJ_MAX_DEPTH 64
#define TJ_MAX_INPUT ((size_t)1 << 30) /* 1 GiB: real tokenizer.json files are < 40 MB */

enum tj_type { TJ_NULL = 0, TJ_FALSE, TJ_TRUE, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ };

typedef struct {
    uint8_t type;   /* enum tj_type */
    uint32_t n;     /* STR: byte length; NUM: source text length; ARR/OBJ: child count (OBJ: 2 per member) */
    uint64_t off;   /* STR: offset in the string pool; NUM: offset in the input */
    int32_t first;  /* ARR/OBJ: first child, -1 when empty */
    int32_t next;   /* next sibling, -1 at the end */
} tj_node;

typedef struct {
    tj_node *nodes; /* [n_nodes], nodes[0] is the root */
    int32_t n_nodes;
    char *pool;     /* decoded string bytes */
    const char *src; /* the input (borrowed: must outlive the document only for tj_int/tj_num_text) */
} tj_doc;

/* Parses src[0..len). 0 on success (doc filled; free with tj_free), or a
 * negative code (-EINVAL malformed, -E2BIG too large/deep, -ENOMEM) with a
 * message in err. */
int tj_parse(const char *src, size_t len, tj_doc *doc, char *err, size_t errlen);
void tj_free(tj_doc *doc);

static inline const tj_node *tj_at(const tj_doc *d, int32_t i) { return i >= 0 ? &d->nodes[i] : NULL; }
static inline int tj_type(const tj_doc *d, int32_t i) { return i >= 0 ? d->nodes[i].type : -1; }

/* object member by key (first match; keys are unique anyway): value index or -1 */
int32_t tj_get(const tj_doc *d, int32_t obj, const char *key);
/* string bytes of a TJ_STR node (NULL for another type) */
const char *tj_str(const tj_doc *d, int32_t i, size_t *len);
/* 1 when node i is the string s exactly */
int tj_str_is(const tj_doc *d, int32_t i, const char *s);
/* integer value of a TJ_NUM written without fraction or exponent, within
 * [lo, hi]: 0, or -ERANGE (too big/small), -EINVAL (not an integer number) */
int tj_int(const tj_doc *d, int32_t i, int64_t lo, int64_t hi, int64_t *out);

#endif
