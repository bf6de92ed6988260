/* gguf_read — GGUF v3 (and v2, same layout) reader over an mmap or a caller
 * buffer. See gguf.h.
 *
 * File layout (little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv × { string key, u32 vtype, value }       string = u64 len + bytes
 *   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset }
 *   padding to general.alignment, then the data section (offsets are relative to it)
 *   array value = u32 elem vtype, u64 n, n × elem (elements may be strings or arrays)
 *
 * Every read goes through the cursor functions below, which check the bytes
 * exist before touching them; counts are checked against the bytes left before
 * anything is allocated for them, so a hostile header cannot make us allocate
 * more than a small multiple of the file size.
 *
 * String arrays and arrays of arrays are indexed at open: g->elem holds the
 * file offset of every element (its u64 length, or its u32 type for nested
 * arrays), so gguf_arr_str / gguf_arr_arr are O(1) after finding the array's
 * entry in g->arrs (O(1) for top-level arrays via the kv, else binary search:
 * entries are appended in file order, so sorted by data offset). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "gguf/gguf.h"

#define GGUF_MAGIC "GGUF"
#define MAX_NEST 8          /* arrays of arrays deeper than this are refused */
#define MAX_TENSOR_NAME 64  /* ggml's GGML_MAX_NAME: names are < 64 bytes */

struct kv {
    gguf_str key;
    enum gguf_vtype type;
    uint64_t voff;   /* file offset of the value */
    gguf_str s;      /* GGUF_T_STRING */
    gguf_arr a;      /* GGUF_T_ARRAY */
    int64_t arr_id;  /* entry in arrs for string/array arrays, else -1 */
};

struct arr_ent {
    uint64_t data_off; /* file offset of the first element */
    uint64_t end_off;  /* one past the last byte of the last element */
    uint64_t first;    /* index in elem of element 0 */
};

struct gguf_ctx {
    const uint8_t *base;
    uint64_t size;
    int mapped;
    uint32_t version, alignment;
    uint64_t data_off;
    int64_t n_kv, n_t;
    struct kv *kv;
    gguf_tensor *t;
    struct arr_ent *arrs;
    int64_t n_arrs, cap_arrs;
    uint64_t *elem;
    uint64_t n_elem, cap_elem;
    int64_t *khash, *thash; /* open addressing, value = index + 1, 0 = empty */
    uint64_t khash_cap, thash_cap;
};

/* ---- cursor --------------------------------------------------------------- */

struct cur {
    gguf_ctx *g;
    uint64_t pos;
    char *err;
    size_t errlen;
    char where[160]; /* "kv 3 'general.name'" — prefix for messages */
};

static int need(struct cur *c, uint64_t n, const char *what) {
    if (n > c->g->size - c->pos)
        return util_fail(c->err, c->errlen, -EINVAL,
                         "%s: %s at byte %llu needs %llu bytes but the file ends at %llu",
                         c->where, what, (unsigned long long)c->pos, (unsigned long long)n,
                         (unsigned long long)c->g->size);
    return 0;
}

static int rd_u32(struct cur *c, uint32_t *v, const char *what) {
    int rc = need(c, 4, what);
    if (rc) return rc;
    memcpy(v, c->g->base + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int rd_u64(struct cur *c, uint64_t *v, const char *what) {
    int rc = need(c, 8, what);
    if (rc) return rc;
    memcpy(v, c->g->base + c->pos, 8);
    c->pos += 8;
    return 0;
}

static int rd_str(struct cur *c, gguf_str *s, const char *what) {
    uint64_t len;
    uint64_t at = c->pos;
    int rc = rd_u64(c, &len, what);
    if (rc) return rc;
    if (len > c->g->size - c->pos)
        return util_fail(c->err, c->errlen, -EINVAL,
                         "%s: %s length %llu at byte %llu runs past the end of the file (size %llu)",
                         c->where, what, (unsigned long long)len, (unsigned long long)at,
                         (unsigned long long)c->g->size);
    s->ptr = (const char *)c->g->base + c->pos;
    s->len = len;
    c->pos += len;
    return 0;
}

/* ---- small helpers -------------------------------------------------------- */

static size_t vtype_size(enum gguf_vtype t) {
    switch (t) {
    case GGUF_T_U8: case GGUF_T_I8: case GGUF_T_BOOL: return 1;
    case GGUF_T_U16: case GGUF_T_I16: return 2;
    case GGUF_T_U32: case GGUF_T_I32: case GGUF_T_F32: return 4;
    case GGUF_T_U64: case GGUF_T_I64: case GGUF_T_F64: return 8;
    default: return 0; /* string, array, unknown */
    }
}

static int vtype_valid(uint32_t t) { return t <= GGUF_T_F64; }

const char *gguf_vtype_name(enum gguf_vtype t) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                        "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < UTIL_ARRAY_LEN(names) ? names[t] : "?";
}

static uint64_t hash_bytes(const char *p, uint64_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

int gguf_str_eq(gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

char *gguf_str_copy(gguf_str s, char *buf, size_t cap) {
    if (!cap) return buf;
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    if (n) memcpy(buf, s.ptr, n);
    buf[n] = 0;
    return buf;
}

/* reserves n slots in elem; returns the first index or -1 on OOM */
static int64_t elem_reserve(gguf_ctx *g, uint64_t n) {
    if (g->n_elem + n > g->cap_elem) {
        uint64_t cap = g->cap_elem ? g->cap_elem : 256;
        while (cap < g->n_elem + n) cap *= 2;
        uint64_t *p = realloc(g->elem, cap * sizeof *p);
        if (!p) return -1;
        g->elem = p;
        g->cap_elem = cap;
    }
    uint64_t first = g->n_elem;
    g->n_elem += n;
    return (int64_t)first;
}

static int64_t arr_add(gguf_ctx *g, uint64_t data_off, uint64_t first) {
    if (g->n_arrs == g->cap_arrs) {
        int64_t cap = g->cap_arrs ? g->cap_arrs * 2 : 16;
        struct arr_ent *p = realloc(g->arrs, (size_t)cap * sizeof *p);
        if (!p) return -1;
        g->arrs = p;
        g->cap_arrs = cap;
    }
    g->arrs[g->n_arrs] = (struct arr_ent){data_off, 0, first};
    return g->n_arrs++;
}

/* ---- values --------------------------------------------------------------- */

/* Parses an array header and its elements at the cursor. *arr_id is the
 * arrs entry for string arrays / arrays of arrays, else -1. */
static int parse_array(struct cur *c, gguf_arr *a, int64_t kv_index, int depth, int64_t *arr_id) {
    gguf_ctx *g = c->g;
    uint32_t et;
    uint64_t n, at = c->pos;
    int rc;
    *arr_id = -1;
    if (depth > MAX_NEST)
        return util_fail(c->err, c->errlen, -EINVAL, "%s: arrays nested deeper than %d at byte %llu",
                         c->where, MAX_NEST, (unsigned long long)at);
    if ((rc = rd_u32(c, &et, "array element type")) || (rc = rd_u64(c, &n, "array length"))) return rc;
    if (!vtype_valid(et))
        return util_fail(c->err, c->errlen, -EINVAL, "%s: unknown array element type %u at byte %llu",
                         c->where, et, (unsigned long long)at);
    uint64_t left = g->size - c->pos;
    size_t sz = vtype_size((enum gguf_vtype)et);
    /* smallest possible element: its fixed size, 8 (string length), 12 (array header) */
    uint64_t min_el = sz ? sz : (et == GGUF_T_STRING ? 8 : 12);
    if (n > left / min_el)
        return util_fail(c->err, c->errlen, -EINVAL,
                         "%s: array of %llu %s elements at byte %llu cannot fit in the %llu bytes left",
                         c->where, (unsigned long long)n, gguf_vtype_name((enum gguf_vtype)et),
                         (unsigned long long)at, (unsigned long long)left);
    a->type = (enum gguf_vtype)et;
    a->n = n;
    a->data = g->base + c->pos;
    a->kv_index = kv_index;
    uint64_t start = c->pos;
    if (sz) {
        c->pos += n * sz;
        a->nbytes = n * sz;
        return 0;
    }
    int64_t first = elem_reserve(g, n);
    int64_t id = first < 0 ? -1 : arr_add(g, start, (uint64_t)first);
    if (id < 0) return util_fail(c->err, c->errlen, -ENOMEM, "%s: out of memory indexing an array", c->where);
    for (uint64_t i = 0; i < n; i++) {
        g->elem[(uint64_t)first + i] = c->pos;
        if (et == GGUF_T_STRING) {
            gguf_str s;
            rc = rd_str(c, &s, "array string");
        } else {
            gguf_arr sub;
            int64_t sub_id;
            rc = parse_array(c, &sub, kv_index, depth + 1, &sub_id);
        }
        if (rc) return rc;
    }
    g->arrs[id].end_off = c->pos;
    a->nbytes = c->pos - start;
    *arr_id = id;
    return 0;
}

/* ---- key / name hash tables ---------------------------------------------- */

static int64_t khash_find(const gguf_ctx *g, const char *k, uint64_t n) {
    if (!g->khash) return -1;
    uint64_t mask = g->khash_cap - 1;
    for (uint64_t h = hash_bytes(k, n) & mask;; h = (h + 1) & mask) {
        int64_t v = g->khash[h];
        if (!v) return -1;
        const struct kv *e = &g->kv[v - 1];
        if (e->key.len == n && memcmp(e->key.ptr, k, n) == 0) return v - 1;
    }
}

static void khash_put(gguf_ctx *g, int64_t i) {
    uint64_t mask = g->khash_cap - 1;
    uint64_t h = hash_bytes(g->kv[i].key.ptr, g->kv[i].key.len) & mask;
    while (g->khash[h]) h = (h + 1) & mask;
    g->khash[h] = i + 1;
}

/* doubles the kv array and the key hash (rehashing the g->n_kv keys in it) */
static int kv_grow(gguf_ctx *g, uint64_t *cap) {
    uint64_t nc = *cap ? *cap * 2 : 64;
    struct kv *p = realloc(g->kv, nc * sizeof *p);
    if (!p) return -ENOMEM;
    g->kv = p;
    int64_t *h = calloc(nc * 2, sizeof *h);
    if (!h) return -ENOMEM;
    free(g->khash);
    g->khash = h;
    g->khash_cap = nc * 2;
    for (int64_t i = 0; i < g->n_kv; i++) khash_put(g, i);
    *cap = nc;
    return 0;
}

static int64_t thash_find(const gguf_ctx *g, const char *name) {
    if (!g->thash) return -1;
    uint64_t n = strlen(name), mask = g->thash_cap - 1;
    for (uint64_t h = hash_bytes(name, n) & mask;; h = (h + 1) & mask) {
        int64_t v = g->thash[h];
        if (!v) return -1;
        if (!strcmp(g->t[v - 1].name, name)) return v - 1;
    }
}

/* ---- header --------------------------------------------------------------- */

static int parse_kvs(struct cur *c, uint64_t n_kv) {
    gguf_ctx *g = c->g;
    int rc;
    /* grown as keys are parsed (a claimed count is only checked against the
     * file size, which still allows millions: allocate for what is there) */
    uint64_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        if (i == cap && (rc = kv_grow(g, &cap)))
            return util_fail(c->err, c->errlen, rc, "out of memory for %llu keys", (unsigned long long)i + 1);
        struct kv *e = &g->kv[i];
        memset(e, 0, sizeof *e);
        uint64_t at = c->pos;
        snprintf(c->where, sizeof c->where, "kv %llu", (unsigned long long)i);
        if ((rc = rd_str(c, &e->key, "key"))) return rc;
        if (e->key.len == 0)
            return util_fail(c->err, c->errlen, -EINVAL, "kv %llu at byte %llu: empty key",
                             (unsigned long long)i, (unsigned long long)at);
        if (!util_utf8_valid(e->key.ptr, e->key.len) || memchr(e->key.ptr, 0, e->key.len))
            return util_fail(c->err, c->errlen, -EINVAL, "kv %llu at byte %llu: key is not valid UTF-8 text",
                             (unsigned long long)i, (unsigned long long)at);
        char kbuf[96];
        gguf_str_copy(e->key, kbuf, sizeof kbuf);
        snprintf(c->where, sizeof c->where, "kv %llu '%s'", (unsigned long long)i, kbuf);
        if (khash_find(g, e->key.ptr, e->key.len) >= 0)
            return util_fail(c->err, c->errlen, -EINVAL, "%s at byte %llu: duplicate key", c->where,
                             (unsigned long long)at);
        g->n_kv = (int64_t)i + 1; /* entries up to i are initialised: hash lookups see them */
        khash_put(g, (int64_t)i);
        uint32_t t;
        if ((rc = rd_u32(c, &t, "value type"))) return rc;
        if (!vtype_valid(t))
            return util_fail(c->err, c->errlen, -EINVAL, "%s: unknown value type %u at byte %llu", c->where, t,
                             (unsigned long long)(c->pos - 4));
        e->type = (enum gguf_vtype)t;
        e->voff = c->pos;
        e->arr_id = -1;
        if (t == GGUF_T_STRING) rc = rd_str(c, &e->s, "string value");
        else if (t == GGUF_T_ARRAY) rc = parse_array(c, &e->a, (int64_t)i, 1, &e->arr_id);
        else if (!(rc = need(c, vtype_size(e->type), gguf_vtype_name(e->type)))) c->pos += vtype_size(e->type);
        if (rc) return rc;
    }
    return 0;
}

static int cmp_by_offset(const void *a, const void *b, void *ctx) {
    const gguf_tensor *t = ctx;
    const gguf_tensor *x = &t[*(const int64_t *)a], *y = &t[*(const int64_t *)b];
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int parse_tensors(struct cur *c, uint64_t n_t) {
    gguf_ctx *g = c->g;
    int rc;
    g->t = calloc(n_t ? n_t : 1, sizeof *g->t);
    g->thash_cap = pow2_at_least(n_t * 2);
    g->thash = calloc(g->thash_cap, sizeof *g->thash);
    if (!g->t || !g->thash) return util_fail(c->err, c->errlen, -ENOMEM, "out of memory for tensors");
    for (uint64_t i = 0; i < n_t; i++) {
        gguf_tensor *t = &g->t[i];
        uint64_t at = c->pos;
        gguf_str name;
        snprintf(c->where, sizeof c->where, "tensor %llu", (unsigned long long)i);
        if ((rc = rd_str(c, &name, "tensor name"))) return rc;
        if (name.len == 0 || name.len >= MAX_TENSOR_NAME || memchr(name.ptr, 0, name.len) ||
            !util_utf8_valid(name.ptr, name.len))
            return util_fail(c->err, c->errlen, -EINVAL,
                             "tensor %llu at byte %llu: name of %llu bytes is empty, too long (max %d) or not UTF-8",
                             (unsigned long long)i, (unsigned long long)at, (unsigned long long)name.len,
                             MAX_TENSOR_NAME - 1);
        t->name = malloc(name.len + 1);
        if (!t->name) return util_fail(c->err, c->errlen, -ENOMEM, "out of memory");
        gguf_str_copy(name, t->name, name.len + 1);
        g->n_t = (int64_t)i + 1; /* name owned by g from here on */
        snprintf(c->where, sizeof c->where, "tensor %llu '%s'", (unsigned long long)i, t->name);
        if (thash_find(g, t->name) >= 0)
            return util_fail(c->err, c->errlen, -EINVAL, "%s at byte %llu: duplicate tensor name", c->where,
                             (unsigned long long)at);
        {
            uint64_t mask = g->thash_cap - 1, h = hash_bytes(name.ptr, name.len) & mask;
            while (g->thash[h]) h = (h + 1) & mask;
            g->thash[h] = (int64_t)i + 1;
        }
        uint32_t nd, type;
        if ((rc = rd_u32(c, &nd, "n_dims"))) return rc;
        if (nd < 1 || nd > GGUF_MAX_DIMS)
            return util_fail(c->err, c->errlen, -EINVAL, "%s: n_dims %u at byte %llu is not in 1..%d", c->where, nd,
                             (unsigned long long)(c->pos - 4), GGUF_MAX_DIMS);
        t->n_dims = (int)nd;
        uint64_t nel = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint64_t v;
            if ((rc = rd_u64(c, &v, "ne"))) return rc;
            if (v > (uint64_t)INT64_MAX || __builtin_mul_overflow(nel, v, &nel) || nel > (uint64_t)INT64_MAX)
                return util_fail(c->err, c->errlen, -EINVAL, "%s: ne[%u]=%llu at byte %llu overflows the element count",
                                 c->where, d, (unsigned long long)v, (unsigned long long)(c->pos - 8));
            t->ne[d] = (int64_t)v;
        }
        if ((rc = rd_u32(c, &type, "tensor type"))) return rc;
        int blck, bytes;
        if (gguf_type_block((int)type, &blck, &bytes) != 0)
            return util_fail(c->err, c->errlen, -EINVAL, "%s: unknown tensor type %u at byte %llu", c->where, type,
                             (unsigned long long)(c->pos - 4));
        t->type = (int)type;
        if (t->ne[0] % blck)
            return util_fail(c->err, c->errlen, -EINVAL, "%s: ne[0]=%lld is not a multiple of %s's block size %d",
                             c->where, (long long)t->ne[0], gguf_type_name(t->type), blck);
        t->nbytes = gguf_type_nbytes(t->type, t->n_dims, t->ne);
        if (t->nbytes == 0 && nel != 0)
            return util_fail(c->err, c->errlen, -EINVAL, "%s: byte size overflows", c->where);
        if ((rc = rd_u64(c, &t->offset, "tensor offset"))) return rc;
    }
    return 0;
}

static int check_layout(struct cur *c) {
    gguf_ctx *g = c->g;
    uint64_t a = g->alignment, off;
    if (__builtin_add_overflow(c->pos, a - 1, &off))
        return util_fail(c->err, c->errlen, -EINVAL, "data section offset overflows");
    off &= ~(a - 1);
    if (off > g->size) {
        if (g->n_t)
            return util_fail(c->err, c->errlen, -EINVAL,
                             "data section starts at byte %llu, past the end of the file (size %llu)",
                             (unsigned long long)off, (unsigned long long)g->size);
        off = g->size; /* no tensors: a file may end right after its header */
    }
    g->data_off = off;
    uint64_t dsize = g->size - off;
    for (int64_t i = 0; i < g->n_t; i++) {
        gguf_tensor *t = &g->t[i];
        if (t->offset % a)
            return util_fail(c->err, c->errlen, -EINVAL, "tensor %lld '%s': offset %llu is not a multiple of the alignment %llu",
                             (long long)i, t->name, (unsigned long long)t->offset, (unsigned long long)a);
        if (t->offset > dsize || t->nbytes > dsize - t->offset)
            return util_fail(c->err, c->errlen, -EINVAL,
                             "tensor %lld '%s': data [%llu, %llu+%llu) ends past the data section "
                             "(file size %llu, data starts at byte %llu)",
                             (long long)i, t->name, (unsigned long long)t->offset, (unsigned long long)t->offset,
                             (unsigned long long)t->nbytes, (unsigned long long)g->size, (unsigned long long)off);
        t->data = g->base + off + t->offset;
    }
    if (g->n_t > 1) {
        int64_t *ord = malloc((size_t)g->n_t * sizeof *ord);
        if (!ord) return util_fail(c->err, c->errlen, -ENOMEM, "out of memory");
        for (int64_t i = 0; i < g->n_t; i++) ord[i] = i;
        qsort_r(ord, (size_t)g->n_t, sizeof *ord, cmp_by_offset, g->t);
        int64_t prev = -1;
        int rc = 0;
        for (int64_t k = 0; k < g->n_t && !rc; k++) {
            const gguf_tensor *t = &g->t[ord[k]];
            if (t->nbytes == 0) continue;
            if (prev >= 0 && g->t[prev].offset + g->t[prev].nbytes > t->offset)
                rc = util_fail(c->err, c->errlen, -EINVAL, "tensors '%s' [%llu, +%llu) and '%s' [%llu, +%llu) overlap",
                               g->t[prev].name, (unsigned long long)g->t[prev].offset,
                               (unsigned long long)g->t[prev].nbytes, t->name, (unsigned long long)t->offset,
                               (unsigned long long)t->nbytes);
            prev = ord[k];
        }
        free(ord);
        if (rc) return rc;
    }
    return 0;
}

static int parse(gguf_ctx *g, char *err, size_t errlen) {
    struct cur c = {.g = g, .pos = 0, .err = err, .errlen = errlen};
    snprintf(c.where, sizeof c.where, "header");
    int rc;
    if (g->size < 4 || memcmp(g->base, GGUF_MAGIC, 4))
        return util_fail(err, errlen, -EINVAL, "not a GGUF file (no 'GGUF' magic at byte 0; size %llu)",
                         (unsigned long long)g->size);
    c.pos = 4;
    uint64_t n_t, n_kv;
    if ((rc = rd_u32(&c, &g->version, "version"))) return rc;
    if (g->version != 2 && g->version != 3)
        return util_fail(err, errlen, -EINVAL, "unsupported GGUF version %u at byte 4 (2 and 3 are read)", g->version);
    if ((rc = rd_u64(&c, &n_t, "tensor count")) || (rc = rd_u64(&c, &n_kv, "kv count"))) return rc;
    if (n_t >= GGUF_MAX_TENSORS)
        return util_fail(err, errlen, -EINVAL, "tensor count %llu at byte 8 is not below %d",
                         (unsigned long long)n_t, GGUF_MAX_TENSORS);
    /* each kv takes at least 8 (key len) + 1 (key) + 4 (type) + 1 bytes */
    if (n_kv > (g->size - c.pos) / 14)
        return util_fail(err, errlen, -EINVAL, "kv count %llu at byte 16 cannot fit in a file of %llu bytes",
                         (unsigned long long)n_kv, (unsigned long long)g->size);
    if ((rc = parse_kvs(&c, n_kv))) return rc;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = khash_find(g, "general.alignment", strlen("general.alignment"));
    if (ai >= 0) {
        uint32_t a = 0;
        if (g->kv[ai].type != GGUF_T_U32)
            return util_fail(err, errlen, -EINVAL, "general.alignment has type %s, not u32",
                             gguf_vtype_name(g->kv[ai].type));
        memcpy(&a, g->base + g->kv[ai].voff, 4);
        if (a == 0 || (a & (a - 1)))
            return util_fail(err, errlen, -EINVAL, "general.alignment %u is not a power of two", a);
        g->alignment = a;
    }
    /* each tensor info takes at least 8+1 (name) + 4 + 8 (one dim) + 4 + 8 bytes */
    if (n_t > (g->size - c.pos) / 33)
        return util_fail(err, errlen, -EINVAL, "tensor count %llu cannot fit in the %llu bytes after the metadata",
                         (unsigned long long)n_t, (unsigned long long)(g->size - c.pos));
    if ((rc = parse_tensors(&c, n_t))) return rc;
    return check_layout(&c);
}

/* ---- open / close ---------------------------------------------------------- */

static int open_common(gguf_ctx *g, gguf_ctx **out, char *err, size_t errlen) {
    int rc = parse(g, err, errlen);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

int gguf_open_mem(const void *data, size_t size, gguf_ctx **out, char *err, size_t errlen) {
    *out = NULL;
    if (!data && size) return util_fail(err, errlen, -EINVAL, "NULL buffer");
    gguf_ctx *g = calloc(1, sizeof *g);
    if (!g) return util_fail(err, errlen, -ENOMEM, "out of memory");
    g->base = data ? data : (const uint8_t *)"";
    g->size = size;
    return open_common(g, out, err, errlen);
}

int gguf_open(const char *path, gguf_ctx **out, char *err, size_t errlen) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return util_fail(err, errlen, -errno, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return util_fail(err, errlen, -EINVAL, "%s: not a regular file%s%s", path, e ? ": " : "", e ? strerror(e) : "");
    }
    if (st.st_size < 24) {
        close(fd);
        return util_fail(err, errlen, -EINVAL, "%s: %lld bytes is too small for a GGUF header", path,
                         (long long)st.st_size);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return util_fail(err, errlen, -e, "%s: mmap failed: %s", path, strerror(e));
    gguf_ctx *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(m, (size_t)st.st_size);
        return util_fail(err, errlen, -ENOMEM, "out of memory");
    }
    g->base = m;
    g->size = (uint64_t)st.st_size;
    g->mapped = 1;
    char inner[384] = "";
    int rc = open_common(g, out, inner, sizeof inner);
    if (rc) return util_fail(err, errlen, rc, "%s: %s", path, inner);
    return 0;
}

void gguf_close(gguf_ctx *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_t; i++) free(g->t[i].name);
    free(g->t);
    free(g->kv);
    free(g->arrs);
    free(g->elem);
    free(g->khash);
    free(g->thash);
    if (g->mapped) munmap((void *)g->base, (size_t)g->size);
    free(g);
}

/* ---- accessors ------------------------------------------------------------- */

uint32_t gguf_version(const gguf_ctx *g) { return g->version; }
uint64_t gguf_file_size(const gguf_ctx *g) { return g->size; }
uint32_t gguf_alignment(const gguf_ctx *g) { return g->alignment; }
uint64_t gguf_data_offset(const gguf_ctx *g) { return g->data_off; }
const void *gguf_base(const gguf_ctx *g) { return g->base; }
int64_t gguf_n_kv(const gguf_ctx *g) { return g->n_kv; }
int64_t gguf_n_tensors(const gguf_ctx *g) { return g->n_t; }

int64_t gguf_find_key(const gguf_ctx *g, const char *key) { return khash_find(g, key, strlen(key)); }

gguf_str gguf_kv_key(const gguf_ctx *g, int64_t i) {
    if (i < 0 || i >= g->n_kv) return (gguf_str){"", 0};
    return g->kv[i].key;
}

enum gguf_vtype gguf_kv_type(const gguf_ctx *g, int64_t i) {
    if (i < 0 || i >= g->n_kv) return (enum gguf_vtype)-1;
    return g->kv[i].type;
}

const void *gguf_kv_scalar(const gguf_ctx *g, int64_t i) {
    if (i < 0 || i >= g->n_kv || !vtype_size(g->kv[i].type)) return NULL;
    return g->base + g->kv[i].voff;
}

int gguf_kv_str(const gguf_ctx *g, int64_t i, gguf_str *out) {
    if (i < 0 || i >= g->n_kv) return -ENOENT;
    if (g->kv[i].type != GGUF_T_STRING) return -EINVAL;
    *out = g->kv[i].s;
    return 0;
}

int gguf_kv_arr(const gguf_ctx *g, int64_t i, gguf_arr *out) {
    if (i < 0 || i >= g->n_kv) return -ENOENT;
    if (g->kv[i].type != GGUF_T_ARRAY) return -EINVAL;
    *out = g->kv[i].a;
    return 0;
}

/* Reads a scalar of integer type t at p as signed/unsigned 64-bit.
 * Returns 1 when it is an integer type (sets *neg and *mag), 0 otherwise. */
static int int_value(enum gguf_vtype t, const void *p, int *neg, uint64_t *mag) {
    int64_t s = 0;
    uint64_t u = 0;
    int is_signed = 0;
    switch (t) {
    case GGUF_T_U8: { uint8_t v; memcpy(&v, p, 1); u = v; break; }
    case GGUF_T_U16: { uint16_t v; memcpy(&v, p, 2); u = v; break; }
    case GGUF_T_U32: { uint32_t v; memcpy(&v, p, 4); u = v; break; }
    case GGUF_T_U64: { memcpy(&u, p, 8); break; }
    case GGUF_T_I8: { int8_t v; memcpy(&v, p, 1); s = v; is_signed = 1; break; }
    case GGUF_T_I16: { int16_t v; memcpy(&v, p, 2); s = v; is_signed = 1; break; }
    case GGUF_T_I32: { int32_t v; memcpy(&v, p, 4); s = v; is_signed = 1; break; }
    case GGUF_T_I64: { memcpy(&s, p, 8); is_signed = 1; break; }
    default: return 0;
    }
    if (is_signed) {
        *neg = s < 0;
        *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    } else {
        *neg = 0;
        *mag = u;
    }
    return 1;
}

static const struct kv *kv_by_key(const gguf_ctx *g, const char *key) {
    int64_t i = gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

int gguf_get_u32(const gguf_ctx *g, const char *key, uint32_t *out) {
    const struct kv *e = kv_by_key(g, key);
    int neg;
    uint64_t m;
    if (!e) return -ENOENT;
    if (!int_value(e->type, g->base + e->voff, &neg, &m) || neg || m > UINT32_MAX) return -EINVAL;
    *out = (uint32_t)m;
    return 0;
}

int gguf_get_u64(const gguf_ctx *g, const char *key, uint64_t *out) {
    const struct kv *e = kv_by_key(g, key);
    int neg;
    uint64_t m;
    if (!e) return -ENOENT;
    if (!int_value(e->type, g->base + e->voff, &neg, &m) || neg) return -EINVAL;
    *out = m;
    return 0;
}

static int mag_to_i64(int neg, uint64_t m, int64_t *out) {
    if (!neg && m > (uint64_t)INT64_MAX) return -EINVAL;
    if (neg && m > (uint64_t)INT64_MAX + 1) return -EINVAL;
    *out = neg ? (int64_t)(0 - m) : (int64_t)m;
    return 0;
}

int gguf_get_i64(const gguf_ctx *g, const char *key, int64_t *out) {
    const struct kv *e = kv_by_key(g, key);
    int neg;
    uint64_t m;
    if (!e) return -ENOENT;
    if (!int_value(e->type, g->base + e->voff, &neg, &m)) return -EINVAL;
    return mag_to_i64(neg, m, out);
}

int gguf_get_f32(const gguf_ctx *g, const char *key, float *out) {
    const struct kv *e = kv_by_key(g, key);
    if (!e) return -ENOENT;
    if (e->type == GGUF_T_F32) {
        memcpy(out, g->base + e->voff, 4);
    } else if (e->type == GGUF_T_F64) {
        double d;
        memcpy(&d, g->base + e->voff, 8);
        *out = (float)d;
    } else {
        return -EINVAL;
    }
    return 0;
}

int gguf_get_bool(const gguf_ctx *g, const char *key, int *out) {
    const struct kv *e = kv_by_key(g, key);
    if (!e) return -ENOENT;
    if (e->type != GGUF_T_BOOL) return -EINVAL;
    *out = g->base[e->voff] != 0;
    return 0;
}

int gguf_get_str(const gguf_ctx *g, const char *key, gguf_str *out) {
    int64_t i = gguf_find_key(g, key);
    return i < 0 ? -ENOENT : gguf_kv_str(g, i, out);
}

int gguf_get_arr(const gguf_ctx *g, const char *key, gguf_arr *out) {
    int64_t i = gguf_find_key(g, key);
    return i < 0 ? -ENOENT : gguf_kv_arr(g, i, out);
}

/* the arrs entry of a string array / array of arrays, or NULL */
static const struct arr_ent *arr_entry(const gguf_ctx *g, const gguf_arr *a) {
    const uint8_t *d = a->data;
    if (d < g->base || d > g->base + g->size) return NULL;
    uint64_t off = (uint64_t)(d - g->base);
    if (a->kv_index >= 0 && a->kv_index < g->n_kv) {
        int64_t id = g->kv[a->kv_index].arr_id;
        if (id >= 0 && g->arrs[id].data_off == off) return &g->arrs[id];
    }
    int64_t lo = 0, hi = g->n_arrs - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (g->arrs[mid].data_off == off) return &g->arrs[mid];
        if (g->arrs[mid].data_off < off) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int gguf_arr_str(const gguf_ctx *g, const gguf_arr *a, uint64_t i, gguf_str *out) {
    if (a->type != GGUF_T_STRING || i >= a->n) return -EINVAL;
    const struct arr_ent *e = arr_entry(g, a);
    if (!e) return -EINVAL;
    uint64_t off = g->elem[e->first + i], len;
    memcpy(&len, g->base + off, 8); /* validated at open */
    out->ptr = (const char *)g->base + off + 8;
    out->len = len;
    return 0;
}

int gguf_arr_arr(const gguf_ctx *g, const gguf_arr *a, uint64_t i, gguf_arr *out) {
    if (a->type != GGUF_T_ARRAY || i >= a->n) return -EINVAL;
    const struct arr_ent *e = arr_entry(g, a);
    if (!e) return -EINVAL;
    uint64_t off = g->elem[e->first + i];
    uint32_t et;
    uint64_t n;
    memcpy(&et, g->base + off, 4);
    memcpy(&n, g->base + off + 4, 8);
    out->type = (enum gguf_vtype)et;
    out->n = n;
    out->data = g->base + off + 12;
    out->kv_index = a->kv_index;
    size_t sz = vtype_size(out->type);
    if (sz) {
        out->nbytes = n * sz;
    } else {
        const struct arr_ent *c = n ? arr_entry(g, out) : NULL;
        out->nbytes = c ? c->end_off - c->data_off : 0;
    }
    return 0;
}

int gguf_arr_i64(const gguf_arr *a, uint64_t i, int64_t *out) {
    size_t sz = vtype_size(a->type);
    if (!sz || i >= a->n) return -EINVAL;
    const uint8_t *p = (const uint8_t *)a->data + i * sz;
    if (a->type == GGUF_T_BOOL) {
        *out = *p != 0;
        return 0;
    }
    int neg;
    uint64_t m;
    if (!int_value(a->type, p, &neg, &m)) return -EINVAL;
    return mag_to_i64(neg, m, out);
}

int gguf_arr_f32(const gguf_arr *a, uint64_t i, float *out) {
    size_t sz = vtype_size(a->type);
    if (!sz || i >= a->n) return -EINVAL;
    const uint8_t *p = (const uint8_t *)a->data + i * sz;
    if (a->type == GGUF_T_F32) {
        memcpy(out, p, 4);
        return 0;
    }
    if (a->type == GGUF_T_F64) {
        double d;
        memcpy(&d, p, 8);
        *out = (float)d;
        return 0;
    }
    int64_t v;
    if (a->type == GGUF_T_BOOL || gguf_arr_i64(a, i, &v) != 0) return -EINVAL;
    *out = (float)v;
    return 0;
}

const gguf_tensor *gguf_tensor_at(const gguf_ctx *g, int64_t i) {
    return i < 0 || i >= g->n_t ? NULL : &g->t[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_ctx *g, const char *name) {
    int64_t i = thash_find(g, name);
    return i < 0 ? NULL : &g->t[i];
}
