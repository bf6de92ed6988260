/* gguf — GGUF v3 (v2 read-only) reader over mmap, and a streaming writer.
 *
 * Reader: every length, count and offset is checked against the file size
 * before use; model files are hostile input. Metadata strings point into the
 * mapping (not NUL-terminated: use gguf_str.len). Tensor names are copied
 * NUL-terminated. The mapping lives until gguf_close.
 *
 * Errors (tier 1): functions return 0 or a negative errno-style code and, when
 * err is non-NULL, a message that says what and where ("tensor 12 'blk.0.attn_q.weight':
 * data [offset, offset+size) ends past the file (size 1234)").
 */
#ifndef LLORCH_GGUF_H
#define LLORCH_GGUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct gguf_ctx gguf_ctx;
typedef struct gguf_writer gguf_writer;

enum gguf_vtype {
    GGUF_T_U8 = 0, GGUF_T_I8 = 1, GGUF_T_U16 = 2, GGUF_T_I16 = 3, GGUF_T_U32 = 4,
    GGUF_T_I32 = 5, GGUF_T_F32 = 6, GGUF_T_BOOL = 7, GGUF_T_STRING = 8, GGUF_T_ARRAY = 9,
    GGUF_T_U64 = 10, GGUF_T_I64 = 11, GGUF_T_F64 = 12,
};

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_TENSORS 10000        /* SPEC §3.2: tensor count < 10,000 */
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    const char *ptr; /* into the mapping (or writer-owned); NOT NUL-terminated */
    uint64_t len;
} gguf_str;

/* An array value. Elements of fixed-size types are contiguous at data
 * (unaligned: read with memcpy). String arrays: use gguf_arr_str. Nested
 * arrays: gguf_arr_arr. */
typedef struct {
    enum gguf_vtype type; /* element type */
    uint64_t n;           /* element count */
    const void *data;     /* first element in the mapping */
    uint64_t nbytes;      /* bytes spanned by the elements */
    int64_t kv_index;     /* owning key, for the string offset index */
} gguf_arr;

typedef struct {
    char *name;           /* NUL-terminated copy */
    int type;             /* ggml type id (quant.h QT_*) */
    int n_dims;           /* 1..4 */
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] = elements per row (fastest), unused dims = 1 */
    uint64_t offset;      /* relative to the data section */
    uint64_t nbytes;      /* from the type's block size */
    const void *data;     /* into the mapping, aligned per general.alignment */
} gguf_tensor;

/* ---- reader ----------------------------------------------------------------- */
int gguf_open(const char *path, gguf_ctx **out, char *err, size_t errlen);
/* Parses a caller-owned buffer (kept by reference; must outlive the ctx). For fuzzing and tests. */
int gguf_open_mem(const void *data, size_t size, gguf_ctx **out, char *err, size_t errlen);
void gguf_close(gguf_ctx *g); /* NULL ok */

uint32_t gguf_version(const gguf_ctx *g);
uint64_t gguf_file_size(const gguf_ctx *g);
uint32_t gguf_alignment(const gguf_ctx *g);
uint64_t gguf_data_offset(const gguf_ctx *g);      /* file offset of the tensor data section */
const void *gguf_base(const gguf_ctx *g);           /* start of the mapping */

int64_t gguf_n_kv(const gguf_ctx *g);
int64_t gguf_find_key(const gguf_ctx *g, const char *key);  /* -1 when absent */
gguf_str gguf_kv_key(const gguf_ctx *g, int64_t i);
enum gguf_vtype gguf_kv_type(const gguf_ctx *g, int64_t i);

/* Typed getters by key. Return 0, -ENOENT (absent) or -EINVAL (wrong type /
 * out of range). Integer getters accept any integer type whose value fits. */
int gguf_get_u32(const gguf_ctx *g, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_ctx *g, const char *key, int64_t *out);
int gguf_get_u64(const gguf_ctx *g, const char *key, uint64_t *out);
int gguf_get_f32(const gguf_ctx *g, const char *key, float *out);  /* F32 or F64 */
int gguf_get_bool(const gguf_ctx *g, const char *key, int *out);
int gguf_get_str(const gguf_ctx *g, const char *key, gguf_str *out);
int gguf_get_arr(const gguf_ctx *g, const char *key, gguf_arr *out);
/* by index, for generic dumps */
int gguf_kv_str(const gguf_ctx *g, int64_t i, gguf_str *out);
int gguf_kv_arr(const gguf_ctx *g, int64_t i, gguf_arr *out);
/* raw scalar bytes of kv i (for any non-string, non-array type); NULL otherwise */
const void *gguf_kv_scalar(const gguf_ctx *g, int64_t i);

/* Element i of a string array (O(1): the reader indexes string arrays at open). */
int gguf_arr_str(const gguf_ctx *g, const gguf_arr *a, uint64_t i, gguf_str *out);
/* Element i of an array of arrays. */
int gguf_arr_arr(const gguf_ctx *g, const gguf_arr *a, uint64_t i, gguf_arr *out);
/* Scalar element getters with type conversion (-EINVAL on mismatch). */
int gguf_arr_f32(const gguf_arr *a, uint64_t i, float *out);
int gguf_arr_i64(const gguf_arr *a, uint64_t i, int64_t *out);

int64_t gguf_n_tensors(const gguf_ctx *g);
const gguf_tensor *gguf_tensor_at(const gguf_ctx *g, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_ctx *g, const char *name); /* NULL when absent */

/* Convenience: str compare against a C string. */
int gguf_str_eq(gguf_str s, const char *c);
/* Copies s into buf[cap] NUL-terminated (truncating); returns buf. */
char *gguf_str_copy(gguf_str s, char *buf, size_t cap);

/* Name of a value type ("u32", "string", ...) */
const char *gguf_vtype_name(enum gguf_vtype t);

/* ---- writer ------------------------------------------------------------------
 * Collects metadata and tensor descriptors, then streams the file in one pass.
 * Tensor data comes either from a pointer (kept by reference until write) or
 * from a fill callback invoked once per tensor with a buffer of exactly its
 * nbytes (so multi-GB synthetic models never sit in memory twice).
 * Keys are unique: setting an existing key replaces its value. */
typedef int (*gguf_fill_fn)(void *user, int64_t tensor_index, void *dst, uint64_t nbytes);

gguf_writer *gguf_writer_new(void);
void gguf_writer_free(gguf_writer *w);
int gguf_w_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_w_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_w_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_w_set_f32(gguf_writer *w, const char *key, float v);
int gguf_w_set_bool(gguf_writer *w, const char *key, int v);
int gguf_w_set_str(gguf_writer *w, const char *key, const char *v);
/* arrays of fixed-size scalars: elements copied */
int gguf_w_set_arr(gguf_writer *w, const char *key, enum gguf_vtype type, const void *data, uint64_t n);
/* array of strings: each copied; lens may be NULL (then NUL-terminated) */
int gguf_w_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens, uint64_t n);
/* copy key i (any type, arrays included) from a reader */
int gguf_w_copy_kv(gguf_writer *w, const gguf_ctx *src, int64_t i);
int gguf_w_remove_key(gguf_writer *w, const char *key);
void gguf_w_set_alignment(gguf_writer *w, uint32_t align); /* also writes general.alignment when != 32 */

/* Adds a tensor; data may be NULL when fill is set. Returns its index or a negative code. */
int64_t gguf_w_add_tensor(gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                          const void *data, gguf_fill_fn fill, void *user);
/* Writes to path atomically (path.tmp then rename). */
int gguf_w_write(gguf_writer *w, const char *path, char *err, size_t errlen);

/* ---- ggml type table (own copy: llorch_gguf does not depend on llorch_quant) --
 * Added for the reader's size checks and for tools. Ids 0..39 as ggml defines
 * them; removed ids (4, 5, 31..33, 36..38) are unknown. */
/* Elements and bytes per block; returns 0, or -EINVAL for an unknown id. */
int gguf_type_block(int type, int *blck, int *bytes);
/* ggml's name ("F32", "Q4_K", "MXFP4"); NULL for an unknown id. */
const char *gguf_type_name(int type);
/* Parses a type name (case-insensitive); -1 when unknown. */
int gguf_type_parse(const char *name);
/* Bytes of a tensor of this type and shape; 0 when ne[0] is not a whole
 * number of blocks, the id is unknown or the size overflows. */
uint64_t gguf_type_nbytes(int type, int n_dims, const int64_t *ne);

#endif
