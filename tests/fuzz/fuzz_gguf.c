// test-libs: llorch_gguf llorch_core
/* libFuzzer target: gguf_open_mem on arbitrary bytes, then walk everything
 * the reader exposes (every kv, every array element including nested arrays
 * and strings, every tensor's bytes) so ASan sees any read the reader's
 * open-time checks failed to cover. */
#include <stdint.h>
#include <string.h>

#include "gguf/gguf.h"

static volatile uint64_t sink;

static void touch(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint64_t s = 0;
    for (uint64_t i = 0; i < n; i++) s += b[i];
    sink += s;
}

static void walk_arr(const gguf_ctx *g, const gguf_arr *a, int depth) {
    if (depth > 16) return;
    touch(a->data, a->nbytes);
    for (uint64_t i = 0; i < a->n && i < 4096; i++) {
        if (a->type == GGUF_T_STRING) {
            gguf_str s;
            if (gguf_arr_str(g, a, i, &s) == 0) touch(s.ptr, s.len);
        } else if (a->type == GGUF_T_ARRAY) {
            gguf_arr sub;
            if (gguf_arr_arr(g, a, i, &sub) == 0) walk_arr(g, &sub, depth + 1);
        } else {
            int64_t v;
            float f;
            if (gguf_arr_i64(a, i, &v) == 0) sink += (uint64_t)v;
            if (gguf_arr_f32(a, i, &f) == 0) sink += (uint64_t)(f == f);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_ctx *g;
    char err[256];
    if (gguf_open_mem(data, size, &g, err, sizeof err) != 0) return 0;
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        gguf_str k = gguf_kv_key(g, i), s;
        touch(k.ptr, k.len);
        char key[128];
        gguf_str_copy(k, key, sizeof key);
        if (gguf_find_key(g, key) < 0 && k.len < sizeof key) __builtin_trap();
        gguf_arr a;
        uint32_t u;
        uint64_t u64;
        int64_t i64;
        float f;
        int b;
        sink += (uint64_t)gguf_get_u32(g, key, &u) + (uint64_t)gguf_get_u64(g, key, &u64) +
                (uint64_t)gguf_get_i64(g, key, &i64) + (uint64_t)gguf_get_f32(g, key, &f) +
                (uint64_t)gguf_get_bool(g, key, &b);
        if (gguf_kv_str(g, i, &s) == 0) touch(s.ptr, s.len);
        if (gguf_kv_arr(g, i, &a) == 0) walk_arr(g, &a, 0);
        const void *p = gguf_kv_scalar(g, i);
        if (p) touch(p, 1);
    }
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        touch(t->data, t->nbytes);
        if (gguf_find_tensor(g, t->name) != t) __builtin_trap();
    }
    gguf_close(g);
    return 0;
}
