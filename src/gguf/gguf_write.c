/* gguf_write — streaming GGUF v3 writer. See gguf.h.
 *
 * Metadata values are serialised into owned byte buffers when set (so a
 * later write is one pass), tensors are descriptors whose data comes from a
 * caller pointer or a fill callback at write time. The file is written to
 * "<path>.tmp" and renamed over path only when complete. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "gguf/gguf.h"

struct wkv {
    char *key;
    uint32_t type;
    uint8_t *val; /* serialised value (what follows the u32 type field) */
    size_t vlen;
};

struct wt {
    char *name;
    int type, n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
    const void *data;
    gguf_fill_fn fill;
    void *user;
};

struct gguf_writer {
    struct wkv *kv;
    size_t n_kv, cap_kv;
    struct wt *t;
    size_t n_t, cap_t;
    uint32_t align;
};

gguf_writer *gguf_writer_new(void) {
    gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->align = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

static size_t scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_T_U8: case GGUF_T_I8: case GGUF_T_BOOL: return 1;
    case GGUF_T_U16: case GGUF_T_I16: return 2;
    case GGUF_T_U32: case GGUF_T_I32: case GGUF_T_F32: return 4;
    case GGUF_T_U64: case GGUF_T_I64: case GGUF_T_F64: return 8;
    default: return 0;
    }
}

static int64_t find_kv(const gguf_writer *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return (int64_t)i;
    return -1;
}

/* Stores (key, type, val[vlen]); takes ownership of val (freed on failure). */
static int put_kv(gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t vlen) {
    if (!w || !key || !*key || !util_utf8_valid(key, strlen(key))) {
        free(val);
        return -EINVAL;
    }
    int64_t i = find_kv(w, key);
    if (i >= 0) {
        free(w->kv[i].val);
        w->kv[i].type = type;
        w->kv[i].val = val;
        w->kv[i].vlen = vlen;
        return 0;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        struct wkv *p = realloc(w->kv, cap * sizeof *p);
        if (!p) {
            free(val);
            return -ENOMEM;
        }
        w->kv = p;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(val);
        return -ENOMEM;
    }
    w->kv[w->n_kv++] = (struct wkv){k, type, val, vlen};
    return 0;
}

static int put_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v) {
    size_t n = scalar_size(type);
    uint8_t *b = malloc(n);
    if (!b) return -ENOMEM;
    memcpy(b, v, n);
    return put_kv(w, key, type, b, n);
}

int gguf_w_set_u32(gguf_writer *w, const char *key, uint32_t v) { return put_scalar(w, key, GGUF_T_U32, &v); }
int gguf_w_set_i32(gguf_writer *w, const char *key, int32_t v) { return put_scalar(w, key, GGUF_T_I32, &v); }
int gguf_w_set_u64(gguf_writer *w, const char *key, uint64_t v) { return put_scalar(w, key, GGUF_T_U64, &v); }
int gguf_w_set_f32(gguf_writer *w, const char *key, float v) { return put_scalar(w, key, GGUF_T_F32, &v); }
int gguf_w_set_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v != 0;
    return put_scalar(w, key, GGUF_T_BOOL, &b);
}

int gguf_w_set_str(gguf_writer *w, const char *key, const char *v) {
    uint64_t n = strlen(v);
    uint8_t *b = malloc(8 + n);
    if (!b) return -ENOMEM;
    memcpy(b, &n, 8);
    memcpy(b + 8, v, n);
    return put_kv(w, key, GGUF_T_STRING, b, 8 + n);
}

int gguf_w_set_arr(gguf_writer *w, const char *key, enum gguf_vtype type, const void *data, uint64_t n) {
    size_t sz = scalar_size(type);
    if (!sz || (n && !data) || n > (SIZE_MAX - 12) / sz) return -EINVAL;
    uint8_t *b = malloc(12 + n * sz);
    if (!b) return -ENOMEM;
    uint32_t t = type;
    memcpy(b, &t, 4);
    memcpy(b + 4, &n, 8);
    if (n) memcpy(b + 12, data, n * sz);
    return put_kv(w, key, GGUF_T_ARRAY, b, 12 + n * sz);
}

int gguf_w_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens, uint64_t n) {
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) total += 8 + (lens ? lens[i] : strlen(strs[i]));
    uint8_t *b = malloc(total), *p = b;
    if (!b) return -ENOMEM;
    uint32_t t = GGUF_T_STRING;
    memcpy(p, &t, 4);
    memcpy(p + 4, &n, 8);
    p += 12;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = lens ? lens[i] : strlen(strs[i]);
        memcpy(p, &len, 8);
        if (len) memcpy(p + 8, strs[i], len);
        p += 8 + len;
    }
    return put_kv(w, key, GGUF_T_ARRAY, b, total);
}

int gguf_w_copy_kv(gguf_writer *w, const gguf_ctx *src, int64_t i) {
    if (i < 0 || i >= gguf_n_kv(src)) return -EINVAL;
    char key[512];
    gguf_str k = gguf_kv_key(src, i);
    if (k.len >= sizeof key) return -EINVAL;
    gguf_str_copy(k, key, sizeof key);
    enum gguf_vtype t = gguf_kv_type(src, i);
    const uint8_t *from;
    size_t n;
    if (t == GGUF_T_STRING) {
        gguf_str s;
        gguf_kv_str(src, i, &s);
        from = (const uint8_t *)s.ptr - 8; /* the serialised string starts at its length */
        n = 8 + s.len;
    } else if (t == GGUF_T_ARRAY) {
        gguf_arr a;
        gguf_kv_arr(src, i, &a);
        from = (const uint8_t *)a.data - 12; /* element type + count precede the elements */
        n = 12 + a.nbytes;
    } else {
        from = gguf_kv_scalar(src, i);
        n = scalar_size(t);
        if (!from || !n) return -EINVAL;
    }
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return -ENOMEM;
    memcpy(b, from, n);
    return put_kv(w, key, t, b, n);
}

int gguf_w_remove_key(gguf_writer *w, const char *key) {
    int64_t i = find_kv(w, key);
    if (i < 0) return -ENOENT;
    free(w->kv[i].key);
    free(w->kv[i].val);
    memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - (size_t)i - 1) * sizeof *w->kv);
    w->n_kv--;
    return 0;
}

void gguf_w_set_alignment(gguf_writer *w, uint32_t align) {
    LLORCH_ASSERT(align && !(align & (align - 1)));
    w->align = align;
    if (align != GGUF_DEFAULT_ALIGNMENT) gguf_w_set_u32(w, "general.alignment", align);
    else gguf_w_remove_key(w, "general.alignment");
}

int64_t gguf_w_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                          const void *data, gguf_fill_fn fill, void *user) {
    size_t nl = name ? strlen(name) : 0;
    if (nl == 0 || nl >= 64 || n_dims < 1 || n_dims > GGUF_MAX_DIMS || (!data && !fill)) return -EINVAL;
    if (gguf_type_name(type) == NULL) return -EINVAL;
    uint64_t nbytes = gguf_type_nbytes(type, n_dims, ne);
    int any_zero = 0;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0) return -EINVAL;
        any_zero |= ne[d] == 0;
    }
    if (nbytes == 0 && !any_zero) return -EINVAL;
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return -EEXIST;
    if (w->n_t + 1 >= GGUF_MAX_TENSORS) return -E2BIG;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        struct wt *p = realloc(w->t, cap * sizeof *p);
        if (!p) return -ENOMEM;
        w->t = p;
        w->cap_t = cap;
    }
    struct wt *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return -ENOMEM;
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->nbytes = nbytes;
    t->data = data;
    t->fill = fill;
    t->user = user;
    return (int64_t)w->n_t++;
}

/* ---- output ----------------------------------------------------------------- */

static int put(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -EIO; }

static int pad(FILE *f, uint64_t pos, uint32_t align) {
    static const uint8_t zeros[256];
    uint64_t n = (align - pos % align) % align;
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (put(f, zeros, k)) return -EIO;
        n -= k;
    }
    return 0;
}

static uint64_t align_up(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

static int write_all(gguf_writer *w, FILE *f, char *err, size_t errlen) {
    uint32_t version = 3;
    uint64_t n_t = w->n_t, n_kv = w->n_kv, pos = 0;
    int rc = put(f, "GGUF", 4) | put(f, &version, 4) | put(f, &n_t, 8) | put(f, &n_kv, 8);
    pos = 24;
    for (size_t i = 0; i < w->n_kv && !rc; i++) {
        uint64_t kl = strlen(w->kv[i].key);
        rc = put(f, &kl, 8) | put(f, w->kv[i].key, kl) | put(f, &w->kv[i].type, 4) | put(f, w->kv[i].val, w->kv[i].vlen);
        pos += 8 + kl + 4 + w->kv[i].vlen;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t && !rc; i++) {
        struct wt *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        uint32_t nd = (uint32_t)t->n_dims, type = (uint32_t)t->type;
        t->offset = off;
        off = align_up(off + t->nbytes, w->align);
        rc = put(f, &nl, 8) | put(f, t->name, nl) | put(f, &nd, 4);
        for (int d = 0; d < t->n_dims; d++) rc |= put(f, &t->ne[d], 8);
        rc |= put(f, &type, 4) | put(f, &t->offset, 8);
        pos += 8 + nl + 4 + 8 * (uint64_t)nd + 4 + 8;
    }
    if (rc) return util_fail(err, errlen, -EIO, "write failed: %s", strerror(errno));
    if (w->n_t && (rc = pad(f, pos, w->align))) return util_fail(err, errlen, rc, "write failed: %s", strerror(errno));
    /* one scratch buffer, sized for the largest filled tensor */
    uint64_t max_fill = 0;
    for (size_t i = 0; i < w->n_t; i++)
        if (!w->t[i].data && w->t[i].nbytes > max_fill) max_fill = w->t[i].nbytes;
    uint8_t *buf = max_fill ? malloc(max_fill) : NULL;
    if (max_fill && !buf)
        return util_fail(err, errlen, -ENOMEM, "out of memory for a %llu-byte tensor buffer", (unsigned long long)max_fill);
    for (size_t i = 0; i < w->n_t && !rc; i++) {
        struct wt *t = &w->t[i];
        const void *src = t->data;
        if (!src) {
            rc = t->fill(t->user, (int64_t)i, buf, t->nbytes);
            if (rc) {
                rc = util_fail(err, errlen, rc < 0 ? rc : -EIO, "tensor '%s': fill callback failed (%d)", t->name, rc);
                break;
            }
            src = buf;
        }
        if (put(f, src, t->nbytes) || (i + 1 < w->n_t && pad(f, t->nbytes, w->align)))
            rc = util_fail(err, errlen, -EIO, "tensor '%s': write failed: %s", t->name, strerror(errno));
    }
    free(buf);
    return rc;
}

int gguf_w_write(gguf_writer *w, const char *path, char *err, size_t errlen) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (!tmp) return util_fail(err, errlen, -ENOMEM, "out of memory");
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(tmp);
        return util_fail(err, errlen, -e, "%s.tmp: cannot create: %s", path, strerror(e));
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    int rc = write_all(w, f, err, errlen);
    if (fclose(f) != 0 && !rc) rc = util_fail(err, errlen, -EIO, "%s.tmp: close failed: %s", path, strerror(errno));
    if (!rc && rename(tmp, path) != 0) rc = util_fail(err, errlen, -errno, "%s: rename failed: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
