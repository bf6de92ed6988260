// test-libs: llorch_gguf llorch_core
/* gguf reader/writer: round trips of every value type, the two real models,
 * and a malformed corpus generated from a small hand-built valid file (every
 * truncation, absurd counts, bad offsets/types/dims/keys) that must be refused
 * with a negative code and a message, never a crash. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"

/* ---- a tiny byte builder for hand-made files ------------------------------- */
struct tb {
    uint8_t b[4096];
    size_t n;
};
static size_t tb_bytes(struct tb *t, const void *p, size_t n) {
    assert_true(t->n + n <= sizeof t->b);
    size_t at = t->n;
    memcpy(t->b + t->n, p, n);
    t->n += n;
    return at;
}
static size_t tb_u32(struct tb *t, uint32_t v) { return tb_bytes(t, &v, 4); }
static size_t tb_u64(struct tb *t, uint64_t v) { return tb_bytes(t, &v, 8); }
static size_t tb_str(struct tb *t, const char *s) { /* returns the offset of the length */
    size_t at = tb_u64(t, strlen(s));
    tb_bytes(t, s, strlen(s));
    return at;
}
static void tb_pad(struct tb *t, size_t a) {
    while (t->n % a) t->b[t->n++] = 0;
}
static void patch32(struct tb *t, size_t at, uint32_t v) { memcpy(t->b + at, &v, 4); }
static void patch64(struct tb *t, size_t at, uint64_t v) { memcpy(t->b + at, &v, 8); }

/* Offsets of the fields the malformed cases patch. */
struct base_pos {
    size_t version, n_t, n_kv, key0_len, key0, arch_len, align_val, align_type, arr_type, arr_n, strs_n, str1_len,
        flt_key, flt_type, t0_name_len, t0_ndims, t0_ne0, t0_ne1, t0_type, t0_off, t1_name, t1_off, header_end;
};

/* A valid v3 file: 5 kvs, tensor "a" Q8_0 [32,2] at 0 (68 B), tensor "b" F32 [16] at 96. */
static void build_base(struct tb *t, struct base_pos *p) {
    memset(t, 0, sizeof *t);
    tb_bytes(t, "GGUF", 4);
    p->version = tb_u32(t, 3);
    p->n_t = tb_u64(t, 2);
    p->n_kv = tb_u64(t, 5);
    p->key0_len = tb_str(t, "general.architecture");
    p->key0 = p->key0_len + 8;
    tb_u32(t, GGUF_T_STRING);
    p->arch_len = tb_str(t, "llama");
    tb_str(t, "general.alignment");
    p->align_type = tb_u32(t, GGUF_T_U32);
    p->align_val = tb_u32(t, 32);
    tb_str(t, "k.arr");
    tb_u32(t, GGUF_T_ARRAY);
    p->arr_type = tb_u32(t, GGUF_T_U32);
    p->arr_n = tb_u64(t, 3);
    tb_u32(t, 7), tb_u32(t, 8), tb_u32(t, 9);
    tb_str(t, "k.str");
    tb_u32(t, GGUF_T_ARRAY);
    tb_u32(t, GGUF_T_STRING);
    p->strs_n = tb_u64(t, 2);
    tb_str(t, "ab");
    p->str1_len = tb_str(t, "cde");
    p->flt_key = tb_str(t, "k.flt") + 8;
    p->flt_type = tb_u32(t, GGUF_T_F32);
    float f = 1.5f;
    tb_bytes(t, &f, 4);
    p->t0_name_len = tb_str(t, "a");
    p->t0_ndims = tb_u32(t, 2);
    p->t0_ne0 = tb_u64(t, 32);
    p->t0_ne1 = tb_u64(t, 2);
    p->t0_type = tb_u32(t, 8);
    p->t0_off = tb_u64(t, 0);
    p->t1_name = tb_str(t, "b") + 8;
    tb_u32(t, 1);
    tb_u64(t, 16);
    tb_u32(t, 0);
    p->t1_off = tb_u64(t, 96);
    p->header_end = t->n;
    tb_pad(t, 32);
    for (int i = 0; i < 160; i++) t->b[t->n++] = (uint8_t)i;
}

static void expect_refused(const void *buf, size_t n, const char *what, const char *needle) {
    gguf_ctx *g = (gguf_ctx *)0x1;
    char err[512] = "";
    int rc = gguf_open_mem(buf, n, &g, err, sizeof err);
    if (rc >= 0) fail_msg("case '%s' was accepted", what);
    assert_null(g);
    if (!err[0]) fail_msg("case '%s': no message", what);
    if (getenv("TEST_GGUF_VERBOSE")) fprintf(stderr, "%-22s %s\n", what, err);
    if (needle && !strstr(err, needle)) fail_msg("case '%s': message '%s' lacks '%s'", what, err, needle);
}

static void test_base_valid(void **st) {
    (void)st;
    struct tb t;
    struct base_pos p;
    build_base(&t, &p);
    gguf_ctx *g;
    char err[256];
    assert_int_equal(gguf_open_mem(t.b, t.n, &g, err, sizeof err), 0);
    assert_int_equal(gguf_version(g), 3);
    assert_int_equal(gguf_n_kv(g), 5);
    assert_int_equal(gguf_n_tensors(g), 2);
    assert_int_equal(gguf_alignment(g), 32);
    assert_int_equal(gguf_data_offset(g), (p.header_end + 31) / 32 * 32);
    gguf_str s;
    assert_int_equal(gguf_get_str(g, "general.architecture", &s), 0);
    assert_true(gguf_str_eq(s, "llama"));
    gguf_arr a;
    assert_int_equal(gguf_get_arr(g, "k.str", &a), 0);
    assert_int_equal(a.n, 2);
    assert_int_equal(gguf_arr_str(g, &a, 1, &s), 0);
    assert_true(gguf_str_eq(s, "cde"));
    assert_int_equal(gguf_arr_str(g, &a, 2, &s), -EINVAL);
    assert_int_equal(gguf_get_arr(g, "k.arr", &a), 0);
    int64_t v;
    assert_int_equal(gguf_arr_i64(&a, 2, &v), 0);
    assert_int_equal(v, 9);
    const gguf_tensor *ta = gguf_find_tensor(g, "a"), *tb2 = gguf_find_tensor(g, "b");
    assert_non_null(ta);
    assert_non_null(tb2);
    assert_int_equal(ta->nbytes, 68);
    assert_int_equal(tb2->nbytes, 64);
    assert_ptr_equal(tb2->data, (const uint8_t *)t.b + gguf_data_offset(g) + 96);
    assert_int_equal(((const uint8_t *)tb2->data)[0], 96);
    assert_null(gguf_find_tensor(g, "c"));
    gguf_close(g);
}

/* GGUF v2 has v3's layout (64-bit counts): read as is */
static void test_v2_accepted(void **st) {
    (void)st;
    struct tb t;
    struct base_pos p;
    build_base(&t, &p);
    patch32(&t, p.version, 2);
    gguf_ctx *g;
    char err[256];
    assert_int_equal(gguf_open_mem(t.b, t.n, &g, err, sizeof err), 0);
    assert_int_equal(gguf_version(g), 2);
    assert_int_equal(gguf_n_tensors(g), 2);
    gguf_close(g);
}

static void test_truncations(void **st) {
    (void)st;
    struct tb t;
    struct base_pos p;
    build_base(&t, &p);
    for (size_t n = 0; n < t.n; n++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", n);
        /* a heap copy of exactly n bytes, so ASan sees any read past the end */
        void *c = malloc(n ? n : 1);
        memcpy(c, t.b, n);
        expect_refused(c, n, what, NULL);
        free(c);
    }
}

typedef void (*mutate_fn)(struct tb *t, const struct base_pos *p);
#define CASE(name, needle, body) \
    static void m_##name(struct tb *t, const struct base_pos *p) { (void)p; body; }
CASE(magic, "magic", t->b[0] = 'X')
CASE(v1, "version 1", patch32(t, p->version, 1))
CASE(v4, "version 4", patch32(t, p->version, 4))
CASE(vbig, "version", patch32(t, p->version, 0x03000000))
CASE(nt_10000, "tensor count", patch64(t, p->n_t, 10000))
CASE(nt_huge, "tensor count", patch64(t, p->n_t, UINT64_MAX))
CASE(nt_more, NULL, patch64(t, p->n_t, 3))
CASE(nkv_huge, "kv count", patch64(t, p->n_kv, 1ull << 40))
CASE(nkv_max, "kv count", patch64(t, p->n_kv, UINT64_MAX))
CASE(nkv_more, NULL, patch64(t, p->n_kv, 6))
CASE(key_len_eof, "past the end", patch64(t, p->key0_len, 4096))
CASE(key_len_max, "past the end", patch64(t, p->key0_len, UINT64_MAX))
CASE(key_empty, "empty key", patch64(t, p->key0_len, 0))
CASE(key_bad_utf8, "UTF-8", t->b[p->key0 + 3] = 0xff)
CASE(key_overlong, "UTF-8", (t->b[p->key0 + 3] = 0xc0, t->b[p->key0 + 4] = 0x80))
CASE(key_nul, "UTF-8", t->b[p->key0 + 3] = 0)
CASE(key_dup, "duplicate key", memcpy(t->b + p->flt_key, "k.arr", 5))
CASE(vtype_13, "unknown value type", patch32(t, p->flt_type, 13))
CASE(vtype_max, "unknown value type", patch32(t, p->flt_type, UINT32_MAX))
CASE(str_len_eof, "past the end", patch64(t, p->arch_len, 4000))
CASE(str_len_max, "past the end", patch64(t, p->arch_len, UINT64_MAX))
CASE(arr_n_huge, "cannot fit", patch64(t, p->arr_n, 1ull << 62))
CASE(arr_n_max, "cannot fit", patch64(t, p->arr_n, UINT64_MAX))
CASE(arr_type_bad, "unknown array element type", patch32(t, p->arr_type, 13))
CASE(strs_n_huge, "cannot fit", patch64(t, p->strs_n, 1ull << 60))
CASE(strs_len_max, "past the end", patch64(t, p->str1_len, UINT64_MAX))
CASE(align_0, "power of two", patch32(t, p->align_val, 0))
CASE(align_3, "power of two", patch32(t, p->align_val, 3))
CASE(align_48, "power of two", patch32(t, p->align_val, 48))
CASE(align_type, "alignment", patch32(t, p->align_type, GGUF_T_I32))
CASE(align_huge, NULL, patch32(t, p->align_val, 1u << 31))
CASE(ndims_0, "n_dims 0", patch32(t, p->t0_ndims, 0))
CASE(ndims_5, "n_dims 5", patch32(t, p->t0_ndims, 5))
CASE(ne_overflow, "overflows", (patch64(t, p->t0_ne0, 1ull << 62), patch64(t, p->t0_ne1, 1ull << 62)))
CASE(ne_negative, "overflows", patch64(t, p->t0_ne0, 1ull << 63))
CASE(ne_not_block, "block size", patch64(t, p->t0_ne0, 33))
CASE(ne_big, "past the data section", patch64(t, p->t0_ne1, 1ull << 40))
CASE(type_4, "unknown tensor type 4", patch32(t, p->t0_type, 4))
CASE(type_31, "unknown tensor type 31", patch32(t, p->t0_type, 31))
CASE(type_40, "unknown tensor type 40", patch32(t, p->t0_type, 40))
CASE(type_max, "unknown tensor type", patch32(t, p->t0_type, UINT32_MAX))
CASE(off_eof, "past the data section", patch64(t, p->t1_off, 4096))
CASE(off_max, "past the data section", patch64(t, p->t1_off, UINT64_MAX - 31))
CASE(off_end, "past the data section", patch64(t, p->t1_off, 128))
CASE(off_misaligned, "alignment", patch64(t, p->t1_off, 100))
CASE(off_overlap, "overlap", patch64(t, p->t1_off, 64))
CASE(off_same, "overlap", patch64(t, p->t1_off, 0))
CASE(name_empty, "name", patch64(t, p->t0_name_len, 0))
CASE(name_dup, "duplicate tensor", t->b[p->t1_name] = 'a')
CASE(name_bad_utf8, "name", t->b[p->t1_name] = 0x80)
CASE(name_len_max, "past the end", patch64(t, p->t0_name_len, UINT64_MAX))

static void test_malformed(void **st) {
    (void)st;
    static const struct {
        const char *name, *needle;
        mutate_fn fn;
    } cases[] = {
#define C(n, needle) {#n, needle, m_##n}
        C(magic, "magic"), C(v1, "version 1"), C(v4, "version 4"), C(vbig, "version"),
        C(nt_10000, "tensor count"), C(nt_huge, "tensor count"), C(nt_more, NULL), C(nkv_huge, "kv count"),
        C(nkv_max, "kv count"), C(nkv_more, NULL), C(key_len_eof, "past the end"), C(key_len_max, "past the end"),
        C(key_empty, "empty key"), C(key_bad_utf8, "UTF-8"), C(key_overlong, "UTF-8"), C(key_nul, "UTF-8"),
        C(key_dup, "duplicate key"), C(vtype_13, "unknown value type"), C(vtype_max, "unknown value type"),
        C(str_len_eof, "past the end"), C(str_len_max, "past the end"), C(arr_n_huge, "cannot fit"),
        C(arr_n_max, "cannot fit"), C(arr_type_bad, "unknown array element type"), C(strs_n_huge, "cannot fit"),
        C(strs_len_max, "past the end"), C(align_0, "power of two"), C(align_3, "power of two"),
        C(align_48, "power of two"), C(align_type, "alignment"), C(align_huge, NULL), C(ndims_0, "n_dims 0"),
        C(ndims_5, "n_dims 5"), C(ne_overflow, "overflows"), C(ne_negative, "overflows"),
        C(ne_not_block, "block size"), C(ne_big, "past the data section"), C(type_4, "unknown tensor type 4"),
        C(type_31, "unknown tensor type 31"), C(type_40, "unknown tensor type 40"),
        C(type_max, "unknown tensor type"), C(off_eof, "past the data section"),
        C(off_max, "past the data section"), C(off_end, "past the data section"), C(off_misaligned, "alignment"),
        C(off_overlap, "overlap"), C(off_same, "overlap"), C(name_empty, "name"), C(name_dup, "duplicate tensor"),
        C(name_bad_utf8, "name"), C(name_len_max, "past the end"),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tb t;
        struct base_pos p;
        build_base(&t, &p);
        cases[i].fn(&t, &p);
        void *c = malloc(t.n);
        memcpy(c, t.b, t.n);
        expect_refused(c, t.n, cases[i].name, cases[i].needle);
        free(c);
    }
}

/* Messages name the tensor and byte offsets. */
static void test_message_names_tensor(void **st) {
    (void)st;
    struct tb t;
    struct base_pos p;
    build_base(&t, &p);
    patch64(&t, p.t1_off, 4096);
    char err[512];
    gguf_ctx *g;
    assert_true(gguf_open_mem(t.b, t.n, &g, err, sizeof err) < 0);
    assert_non_null(strstr(err, "tensor 1 'b'"));
    assert_non_null(strstr(err, "[4096,"));
}

/* Arrays of arrays: [[u8 1,2], [string "x","yz"], [[i32 -5]]], and a depth limit. */
static void build_nested(struct tb *t, int depth) {
    memset(t, 0, sizeof *t);
    tb_bytes(t, "GGUF", 4);
    tb_u32(t, 3);
    tb_u64(t, 0);
    tb_u64(t, 2);
    tb_str(t, "n.arr");
    tb_u32(t, GGUF_T_ARRAY);
    tb_u32(t, GGUF_T_ARRAY);
    tb_u64(t, 3);
    tb_u32(t, GGUF_T_U8), tb_u64(t, 2), tb_bytes(t, "\x01\x02", 2);
    tb_u32(t, GGUF_T_STRING), tb_u64(t, 2), tb_str(t, "x"), tb_str(t, "yz");
    tb_u32(t, GGUF_T_ARRAY), tb_u64(t, 1), tb_u32(t, GGUF_T_I32), tb_u64(t, 1), tb_u32(t, (uint32_t)-5);
    /* "n.deep": depth levels of single-element arrays around one u8 */
    tb_str(t, "n.deep");
    tb_u32(t, GGUF_T_ARRAY);
    for (int d = 1; d < depth; d++) tb_u32(t, GGUF_T_ARRAY), tb_u64(t, 1);
    tb_u32(t, GGUF_T_U8), tb_u64(t, 1), tb_bytes(t, "\x2a", 1);
}

static void test_nested(void **st) {
    (void)st;
    struct tb t;
    build_nested(&t, 8);
    gguf_ctx *g;
    char err[256];
    assert_int_equal(gguf_open_mem(t.b, t.n, &g, err, sizeof err), 0);
    gguf_arr a, sub, subsub;
    assert_int_equal(gguf_get_arr(g, "n.arr", &a), 0);
    assert_int_equal(a.type, GGUF_T_ARRAY);
    assert_int_equal(a.n, 3);
    assert_int_equal(gguf_arr_arr(g, &a, 0, &sub), 0);
    assert_int_equal(sub.type, GGUF_T_U8);
    int64_t v;
    assert_int_equal(gguf_arr_i64(&sub, 1, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(gguf_arr_arr(g, &a, 1, &sub), 0);
    gguf_str s;
    assert_int_equal(gguf_arr_str(g, &sub, 1, &s), 0);
    assert_true(gguf_str_eq(s, "yz"));
    assert_int_equal(sub.nbytes, 8 + 1 + 8 + 2);
    assert_int_equal(gguf_arr_arr(g, &a, 2, &sub), 0);
    assert_int_equal(gguf_arr_arr(g, &sub, 0, &subsub), 0);
    assert_int_equal(gguf_arr_i64(&subsub, 0, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(gguf_arr_arr(g, &a, 3, &sub), -EINVAL);
    assert_int_equal(gguf_arr_str(g, &a, 0, &s), -EINVAL); /* wrong element type */
    /* walk the deep one down to its byte */
    assert_int_equal(gguf_get_arr(g, "n.deep", &a), 0);
    for (int d = 1; d < 8; d++) {
        assert_int_equal(gguf_arr_arr(g, &a, 0, &sub), 0);
        a = sub;
    }
    assert_int_equal(gguf_arr_i64(&a, 0, &v), 0);
    assert_int_equal(v, 42);
    gguf_close(g);
    build_nested(&t, 9);
    expect_refused(t.b, t.n, "nested 9 deep", "nested deeper");
}

/* ---- writer round trip -------------------------------------------------------- */

static char *tmp_path(char *buf, size_t cap, const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test-tmp", tu_env("LLORCH_BUILD_DIR", "."));
    mkdir(dir, 0755);
    snprintf(buf, cap, "%s/%s.%d", dir, name, (int)getpid());
    return buf;
}

static int fill_ramp(void *user, int64_t ti, void *dst, uint64_t nbytes) {
    (void)user;
    for (uint64_t i = 0; i < nbytes; i++) ((uint8_t *)dst)[i] = (uint8_t)(i * 7 + (uint64_t)ti);
    return 0;
}

static int fill_fail(void *user, int64_t ti, void *dst, uint64_t nbytes) {
    (void)user, (void)ti, (void)dst, (void)nbytes;
    return -EIO;
}

static void test_writer_roundtrip(void **st) {
    (void)st;
    char path[600];
    tmp_path(path, sizeof path, "rt.gguf");
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    assert_int_equal(gguf_w_set_str(w, "general.architecture", "qwen2"), 0);
    assert_int_equal(gguf_w_set_u32(w, "k.u32", 4000000000u), 0);
    assert_int_equal(gguf_w_set_i32(w, "k.i32", -7), 0);
    assert_int_equal(gguf_w_set_u64(w, "k.u64", 1ull << 40), 0);
    assert_int_equal(gguf_w_set_f32(w, "k.f32", 0.25f), 0);
    assert_int_equal(gguf_w_set_bool(w, "k.bool", 1), 0);
    assert_int_equal(gguf_w_set_str(w, "k.replaced", "old"), 0);
    assert_int_equal(gguf_w_set_str(w, "k.replaced", "new value"), 0);
    assert_int_equal(gguf_w_set_str(w, "k.removed", "x"), 0);
    assert_int_equal(gguf_w_remove_key(w, "k.removed"), 0);
    assert_int_equal(gguf_w_set_str(w, "", "x"), -EINVAL);
    assert_int_equal(gguf_w_set_str(w, "bad\xff", "x"), -EINVAL);
    /* one array per scalar type */
    static const enum gguf_vtype sc[] = {GGUF_T_U8, GGUF_T_I8, GGUF_T_U16, GGUF_T_I16, GGUF_T_U32, GGUF_T_I32,
                                         GGUF_T_F32, GGUF_T_BOOL, GGUF_T_U64, GGUF_T_I64, GGUF_T_F64};
    static const size_t scsz[] = {1, 1, 2, 2, 4, 4, 4, 1, 8, 8, 8};
    uint8_t raw[11][5 * 8];
    for (size_t k = 0; k < 11; k++) {
        uint64_t seed = k + 1;
        for (size_t i = 0; i < sizeof raw[k]; i++) raw[k][i] = (uint8_t)tu_rng(&seed);
        if (sc[k] == GGUF_T_BOOL)
            for (int i = 0; i < 5; i++) raw[k][i] &= 1;
        if (sc[k] == GGUF_T_F32 || sc[k] == GGUF_T_F64) { /* finite values */
            for (int i = 0; i < 5; i++) {
                if (sc[k] == GGUF_T_F32) { float f = (float)i - 1.5f; memcpy(raw[k] + 4 * i, &f, 4); }
                else { double d = i * 1e100; memcpy(raw[k] + 8 * i, &d, 8); }
            }
        }
        char key[32];
        snprintf(key, sizeof key, "arr.%s", gguf_vtype_name(sc[k]));
        assert_int_equal(gguf_w_set_arr(w, key, sc[k], raw[k], 5), 0);
    }
    assert_int_equal(gguf_w_set_arr(w, "arr.empty", GGUF_T_I32, NULL, 0), 0);
    assert_int_equal(gguf_w_set_arr(w, "arr.bad", GGUF_T_STRING, raw[0], 1), -EINVAL);
    const char *strs[] = {"hello", "", "\xe4\xb8\xad", "a\0b"};
    uint64_t lens[] = {5, 0, 3, 3};
    assert_int_equal(gguf_w_set_arr_str(w, "arr.str", strs, lens, 4), 0);
    gguf_w_set_alignment(w, 64);
    /* tensors: F32 by pointer, Q8_0 by callback, a 3-D F16 */
    float f32[10];
    for (int i = 0; i < 10; i++) f32[i] = (float)i * 0.5f;
    int64_t ne_a[] = {10}, ne_b[] = {64, 3}, ne_c[] = {4, 2, 3};
    assert_int_equal(gguf_w_add_tensor(w, "t.a", 0, 1, ne_a, f32, NULL, NULL), 0);
    assert_int_equal(gguf_w_add_tensor(w, "t.b", 8, 2, ne_b, NULL, fill_ramp, NULL), 1);
    assert_int_equal(gguf_w_add_tensor(w, "t.c", 1, 3, ne_c, NULL, fill_ramp, NULL), 2);
    assert_int_equal(gguf_w_add_tensor(w, "t.a", 0, 1, ne_a, f32, NULL, NULL), -EEXIST);
    int64_t ne_bad[] = {33};
    assert_int_equal(gguf_w_add_tensor(w, "t.bad", 8, 1, ne_bad, f32, NULL, NULL), -EINVAL);
    assert_int_equal(gguf_w_add_tensor(w, "t.bad", 4, 1, ne_a, f32, NULL, NULL), -EINVAL);
    assert_int_equal(gguf_w_add_tensor(w, "t.bad", 0, 5, ne_c, f32, NULL, NULL), -EINVAL);
    char err[256];
    assert_int_equal(gguf_w_write(w, path, err, sizeof err), 0);
    gguf_writer_free(w);

    gguf_ctx *g;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    assert_int_equal(gguf_alignment(g), 64);
    assert_int_equal(gguf_data_offset(g) % 64, 0);
    gguf_str s;
    assert_int_equal(gguf_get_str(g, "general.architecture", &s), 0);
    assert_true(gguf_str_eq(s, "qwen2"));
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
    float f;
    int b;
    assert_int_equal(gguf_get_u32(g, "k.u32", &u32), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_i64(g, "k.i32", &i64), 0);
    assert_int_equal(i64, -7);
    assert_int_equal(gguf_get_u32(g, "k.i32", &u32), -EINVAL); /* negative does not fit */
    assert_int_equal(gguf_get_u64(g, "k.u64", &u64), 0);
    assert_int_equal(u64, 1ull << 40);
    assert_int_equal(gguf_get_u32(g, "k.u64", &u32), -EINVAL);
    assert_int_equal(gguf_get_f32(g, "k.f32", &f), 0);
    assert_true(f == 0.25f);
    assert_int_equal(gguf_get_bool(g, "k.bool", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(gguf_get_str(g, "k.replaced", &s), 0);
    assert_true(gguf_str_eq(s, "new value"));
    assert_int_equal(gguf_find_key(g, "k.removed"), -1);
    assert_int_equal(gguf_get_u32(g, "nope", &u32), -ENOENT);
    assert_int_equal(gguf_get_str(g, "k.u32", &s), -EINVAL);
    for (size_t k = 0; k < 11; k++) {
        char key[32];
        snprintf(key, sizeof key, "arr.%s", gguf_vtype_name(sc[k]));
        gguf_arr a;
        assert_int_equal(gguf_get_arr(g, key, &a), 0);
        assert_int_equal(a.type, sc[k]);
        assert_int_equal(a.n, 5);
        assert_int_equal(a.nbytes, 5 * scsz[k]);
        assert_memory_equal(a.data, raw[k], 5 * scsz[k]);
    }
    gguf_arr a;
    assert_int_equal(gguf_get_arr(g, "arr.f32", &a), 0);
    assert_int_equal(gguf_arr_f32(&a, 4, &f), 0);
    assert_true(f == 2.5f);
    assert_int_equal(gguf_get_arr(g, "arr.i32", &a), 0);
    int32_t i32;
    memcpy(&i32, raw[5] + 12, 4);
    assert_int_equal(gguf_arr_i64(&a, 3, &i64), 0);
    assert_int_equal(i64, i32);
    assert_int_equal(gguf_arr_i64(&a, 5, &i64), -EINVAL);
    assert_int_equal(gguf_get_arr(g, "arr.empty", &a), 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(gguf_get_arr(g, "arr.str", &a), 0);
    assert_int_equal(a.n, 4);
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(gguf_arr_str(g, &a, i, &s), 0);
        assert_int_equal(s.len, lens[i]);
        assert_memory_equal(s.ptr, strs[i], lens[i]);
    }
    assert_int_equal(gguf_n_tensors(g), 3);
    const gguf_tensor *t = gguf_find_tensor(g, "t.a");
    assert_non_null(t);
    assert_int_equal(t->type, 0);
    assert_int_equal(t->nbytes, 40);
    assert_memory_equal(t->data, f32, 40);
    assert_int_equal(((uintptr_t)t->data - (uintptr_t)gguf_base(g)) % 64, 0);
    t = gguf_find_tensor(g, "t.b");
    assert_int_equal(t->nbytes, 3 * 2 * 34);
    assert_int_equal(t->offset % 64, 0);
    assert_int_equal(((const uint8_t *)t->data)[5], (uint8_t)(5 * 7 + 1));
    t = gguf_find_tensor(g, "t.c");
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[2], 3);
    assert_int_equal(t->ne[3], 1);
    assert_int_equal(t->nbytes, 4 * 2 * 3 * 2);
    assert_int_equal(((const uint8_t *)t->data)[9], (uint8_t)(9 * 7 + 2));

    /* copy every kv into a new writer: the copy reads back byte-identical */
    char path2[600];
    tmp_path(path2, sizeof path2, "rt2.gguf");
    w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_n_kv(g); i++) assert_int_equal(gguf_w_copy_kv(w, g, i), 0);
    gguf_w_set_alignment(w, 64);
    assert_int_equal(gguf_w_write(w, path2, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_ctx *g2;
    assert_int_equal(gguf_open(path2, &g2, err, sizeof err), 0);
    assert_int_equal(gguf_n_kv(g2), gguf_n_kv(g));
    assert_int_equal(gguf_n_tensors(g2), 0);
    uint64_t hdr = 24;
    (void)hdr;
    /* the kv section is the same bytes: both files start with the same 24+kv bytes */
    const gguf_tensor *t0 = gguf_tensor_at(g, 0);
    (void)t0;
    assert_int_equal(gguf_file_size(g2) <= gguf_file_size(g), 1);
    assert_memory_equal((const uint8_t *)gguf_base(g2) + 16, (const uint8_t *)gguf_base(g) + 16,
                        gguf_file_size(g2) - 16);
    gguf_close(g2);
    gguf_close(g);
    unlink(path);
    unlink(path2);

    /* a failing fill callback fails the write and leaves no file behind */
    w = gguf_writer_new();
    assert_int_equal(gguf_w_add_tensor(w, "x", 0, 1, ne_a, NULL, fill_fail, NULL), 0);
    assert_true(gguf_w_write(w, path, err, sizeof err) < 0);
    assert_non_null(strstr(err, "'x'"));
    assert_int_not_equal(access(path, F_OK), 0);
    char tmpf[620];
    snprintf(tmpf, sizeof tmpf, "%s.tmp", path);
    assert_int_not_equal(access(tmpf, F_OK), 0);
    assert_true(gguf_w_write(w, "/nonexistent-dir/x.gguf", err, sizeof err) < 0);
    assert_non_null(strstr(err, "cannot create"));
    gguf_writer_free(w);
}

/* hundreds of keys: the kv table and its hash grow while parsing */
static void test_many_keys(void **st) {
    (void)st;
    char path[600], err[256], key[32];
    tmp_path(path, sizeof path, "many.gguf");
    gguf_writer *w = gguf_writer_new();
    for (uint32_t i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "k.%u", i);
        assert_int_equal(gguf_w_set_u32(w, key, i * 3), 0);
    }
    assert_int_equal(gguf_w_write(w, path, err, sizeof err), 0);
    gguf_writer_free(w);
    gguf_ctx *g;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    assert_int_equal(gguf_n_kv(g), 1000);
    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t v;
        snprintf(key, sizeof key, "k.%u", i);
        assert_int_equal(gguf_find_key(g, key), i);
        assert_int_equal(gguf_get_u32(g, key, &v), 0);
        assert_int_equal(v, i * 3);
    }
    assert_int_equal(gguf_find_key(g, "k.1000"), -1);
    gguf_close(g);
    unlink(path);
}

static void test_open_errors(void **st) {
    (void)st;
    gguf_ctx *g;
    char err[256];
    assert_true(gguf_open("/nonexistent/file.gguf", &g, err, sizeof err) < 0);
    assert_non_null(strstr(err, "/nonexistent/file.gguf"));
    assert_true(gguf_open("/", &g, err, sizeof err) < 0);
    assert_null(g);
}

/* ---- the real models ------------------------------------------------------------ */
/* name from the models dir; fails the test when it does not open */
static gguf_ctx *open_model(const char *name) {
    char path[512], err[512];
    TU_MODEL(path, name);
    gguf_ctx *g;
    if (gguf_open(path, &g, err, sizeof err)) fail_msg("%s", err);
    return g;
}
static void expect_str(gguf_ctx *g, const char *key, const char *want) {
    gguf_str s;
    assert_int_equal(gguf_get_str(g, key, &s), 0);
    assert_true(gguf_str_eq(s, want));
}
static void expect_u32(gguf_ctx *g, const char *key, uint32_t want) {
    uint32_t u;
    assert_int_equal(gguf_get_u32(g, key, &u), 0);
    assert_int_equal(u, want);
}
/* element i of the string array a is want */
static void expect_arr_str(gguf_ctx *g, const gguf_arr *a, uint64_t i, const char *want) {
    gguf_str s;
    assert_int_equal(gguf_arr_str(g, a, i, &s), 0);
    assert_true(gguf_str_eq(s, want));
}

static void test_stories260k(void **st) {
    (void)st;
    gguf_ctx *g = open_model("stories260K.gguf");
    expect_str(g, "general.architecture", "llama");
    gguf_arr a;
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", &a), 0);
    assert_int_equal(a.type, GGUF_T_STRING);
    assert_int_equal(a.n, 512);
    expect_arr_str(g, &a, 0, "<unk>");
    expect_arr_str(g, &a, 1, "<s>");
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.scores", &a), 0);
    assert_int_equal(a.type, GGUF_T_F32);
    assert_int_equal(a.n, 512);
    expect_u32(g, "llama.embedding_length", 64);
    expect_u32(g, "llama.block_count", 5);
    expect_u32(g, "llama.attention.head_count", 8);
    expect_u32(g, "llama.attention.head_count_kv", 4);
    expect_u32(g, "llama.feed_forward_length", 172);
    const gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->type, 0);
    assert_int_equal(t->ne[0], 64);
    assert_int_equal(t->ne[1], 512);
    t = gguf_find_tensor(g, "blk.4.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 172);
    assert_int_equal(t->ne[1], 64);
    assert_int_equal(gguf_n_tensors(g), 3 + 5 * 9 - 1 + 1); /* embd, norm, output + 9 per layer */
    /* every tensor inside the file, and the data section covers them */
    uint64_t total = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        t = gguf_tensor_at(g, i);
        assert_true(gguf_data_offset(g) + t->offset + t->nbytes <= gguf_file_size(g));
        total += t->nbytes;
    }
    assert_true(total > 260000 * 4 * 9 / 10 && total < 300000 * 4);
    gguf_close(g);
}

static void test_llama2_tiny(void **st) {
    (void)st;
    gguf_ctx *g = open_model("llama-2-tiny-random.gguf");
    expect_str(g, "general.architecture", "llama");
    expect_str(g, "tokenizer.ggml.model", "llama");
    gguf_arr a;
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", &a), 0);
    assert_int_equal(a.n, 32000);
    /* SentencePiece byte-fallback tokens sit at 3..258: <0x00>..<0xFF> */
    expect_arr_str(g, &a, 3, "<0x00>");
    expect_arr_str(g, &a, 258, "<0xFF>");
    gguf_str s;
    assert_int_equal(gguf_arr_str(g, &a, 31999, &s), 0);
    assert_true(s.len > 0);
    expect_u32(g, "tokenizer.ggml.bos_token_id", 1);
    const gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[1], 32000);
    gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_valid),     cmocka_unit_test(test_v2_accepted), cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_malformed),      cmocka_unit_test(test_message_names_tensor),
        cmocka_unit_test(test_nested),         cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_many_keys),      cmocka_unit_test(test_open_errors),    cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_llama2_tiny),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
