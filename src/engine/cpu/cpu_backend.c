/* cpu_backend — the CPU backend's vtable, memory and constructor.
 *
 * Memory: alloc hands out 256-byte aligned host blocks; a 256-byte header in
 * front of each block records its size so free() can account for it.
 * mem_limit (a test knob) makes allocations beyond it fail with -ENOMEM.
 * Weights are used in place from the GGUF mmap (weights_in_place = 1).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "engine/cpu/cpu_int.h"

#define HDR 256

static void cpu_destroy(void *ctx) {
    cpu_ctx *c = ctx;
    if (!c) return;
    cpu_pool_free(c->pool);
    free(c->qbuf);
    free(c->mbuf);
    free(c);
}

int cpu_scratch(cpu_ctx *c, void **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    LLORCH_ASSERT(!c->reserved); /* an op beyond the bounds the engine reserved */
    void *nb = NULL;
    if (posix_memalign(&nb, 64, need) != 0) return -ENOMEM;
    free(*buf);
    *buf = nb;
    *cap = need;
    return 0;
}

/* qbuf and mbuf for the largest op of r (backend.h reserve) */
static int cpu_reserve(void *ctx, const eng_reserve *r) {
    cpu_ctx *c = ctx;
    size_t q = 0, mid = 0;
    for (int i = 0; i < r->n_w; i++) {
        const eng_w *w = r->w[i];
        size_t b = cpu_matmul_scratch_bytes(w, r->rows);
        if (b > q) q = b;
        if (w->ne2 > 1 && r->id_slots > 0) { /* an expert matrix: its matmuls run on up to id_slots rows */
            b = cpu_matmul_scratch_bytes(w, r->id_slots);
            if (b > q) q = b;
            b = cpu_matmul_id_scratch_bytes(w, r->id_slots);
            if (b > mid) mid = b;
        }
    }
    c->reserved = 0;
    if (cpu_scratch(c, &c->qbuf, &c->qbuf_cap, q) || cpu_scratch(c, &c->mbuf, &c->mbuf_cap, mid)) return -ENOMEM;
    c->reserved = 1;
    return 0;
}

static int cpu_alloc(void *ctx, size_t bytes, void **out) {
    cpu_ctx *c = ctx;
    *out = NULL;
    if (bytes > SIZE_MAX - 2 * HDR) return -ENOMEM;
    if (c->mem_limit && c->mem_used + bytes > c->mem_limit) return -ENOMEM;
    size_t total = (bytes + HDR + HDR - 1) / HDR * HDR;
    void *base = NULL;
    if (posix_memalign(&base, HDR, total) != 0) return -ENOMEM;
    memcpy(base, &bytes, sizeof bytes);
    c->mem_used += bytes;
    *out = (char *)base + HDR;
    return 0;
}

static void cpu_free(void *ctx, void *p) {
    cpu_ctx *c = ctx;
    if (!p) return;
    char *base = (char *)p - HDR;
    size_t bytes;
    memcpy(&bytes, base, sizeof bytes);
    c->mem_used -= bytes;
    free(base);
}

static int cpu_upload(void *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    if (bytes) memcpy(dst, src, bytes);
    return 0;
}

static int cpu_download(void *ctx, void *dst, const void *src, size_t bytes) {
    cpu_ctx *c = ctx;
    if (bytes) memcpy(dst, src, bytes);
    return c->err;
}

static int cpu_zero(void *ctx, void *dst, size_t bytes) {
    (void)ctx;
    if (bytes) memset(dst, 0, bytes);
    return 0;
}

static int cpu_sync(void *ctx) {
    cpu_ctx *c = ctx;
    int e = c->err;
    c->err = 0;
    return e;
}

static uint64_t cpu_mem_used(void *ctx) { return ((cpu_ctx *)ctx)->mem_used; }

static int cpu_is_resident(void *ctx, const void *p, char *why, size_t whylen) {
    (void)ctx;
    (void)p;
    if (why && whylen) why[0] = 0;
    return 1;
}

static const eng_backend_ops cpu_ops = {
    .name = "cpu",
    .memory_architecture = "host",
    .weights_in_place = 1,
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .mem_used = cpu_mem_used,
    .is_resident = cpu_is_resident,
    .reserve = cpu_reserve,
    .get_rows = cpu_get_rows,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .add_bias = cpu_add_bias,
    .add = cpu_add,
    .rope = cpu_rope,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .sample = NULL,       /* the host reference sampler is used directly */
    .read_token = NULL,   /* no enqueue-only sample */
    .head = NULL,         /* the engine composes rmsnorm + matmul; the host sampler chooses */
    .sample_ready = NULL,
    .record_begin = NULL, /* nothing to capture: ops run as issued */
    .record_end = NULL,
    .device_info = NULL,
    /* fused ops: the literal compositions (cpu_fused.c) */
    .matmul_n = cpu_matmul_n,
    .matmul_add = cpu_matmul_add,
    .matmul_swiglu = cpu_matmul_swiglu,
    .rope_kv_store = cpu_rope_kv_store,
    .decode_block = cpu_decode_block,
    .decode_layers = cpu_decode_layers,
    .moe_route = cpu_moe_route,
    .matmul_id = cpu_matmul_id,
    .swiglu_oai = cpu_swiglu_oai,
    .moe_sum = cpu_moe_sum,
    .attention_ext = cpu_attention_ext,
};

int eng_backend_cpu_new(int n_threads, uint64_t mem_limit, eng_backend *out, char *err, size_t errlen) {
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > 256) return util_fail(err, errlen, -EINVAL, "cpu backend: %d threads is too many", n_threads);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return util_fail(err, errlen, -ENOMEM, "cpu backend: out of memory");
    c->n_threads = n_threads;
    c->mem_limit = mem_limit;
    c->pool = cpu_pool_new(n_threads);
    if (!c->pool) {
        free(c);
        return util_fail(err, errlen, -ENOMEM, "cpu backend: cannot start %d threads", n_threads);
    }
    out->ops = &cpu_ops;
    out->ctx = c;
    return 0;
}
