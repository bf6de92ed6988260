/* cpu_fused — the optional fused ops of backend.h on the CPU: each is run as
 * exactly the composition of primitives its contract names, in that order,
 * so the reference backend's results are bit-identical with fused ops on or
 * off (tests/unit/test_engine_fused.c checks it through whole forwards).
 * Other backends are tested against these. */
#include "engine/cpu/cpu_int.h"

#include <stdatomic.h>

/* how many fused ops this process ran (any CPU backend): lets a test tell
 * that a forward really took the fused path, since the results cannot */
static atomic_ulong g_fused_calls;
uint64_t cpu_fused_calls(void) { return atomic_load(&g_fused_calls); }

void cpu_matmul_n(void *ctx, int n, const eng_w *const *w, const float *const *b, const float *x, float *const *y,
                  int rows) {
    atomic_fetch_add(&g_fused_calls, 1);
    for (int j = 0; j < n; j++) {
        cpu_matmul(ctx, w[j], x, y[j], rows);
        if (b[j]) cpu_add_bias(ctx, y[j], (int)w[j]->ne1, b[j], rows, (int)w[j]->ne1);
    }
}

void cpu_matmul_add(void *ctx, const eng_w *w, const float *x, float *y, float *tmp, int rows) {
    atomic_fetch_add(&g_fused_calls, 1);
    cpu_matmul(ctx, w, x, tmp, rows);
    cpu_add(ctx, y, tmp, (int64_t)rows * w->ne1);
}

void cpu_matmul_swiglu(void *ctx, const eng_w *wg, const eng_w *wu, const float *x, float *out, float *tmp,
                       int rows) {
    atomic_fetch_add(&g_fused_calls, 1);
    const int F = (int)wg->ne1;
    float *u = tmp + (size_t)rows * F;
    cpu_matmul(ctx, wg, x, tmp, rows);
    cpu_matmul(ctx, wu, x, u, rows);
    cpu_swiglu(ctx, tmp, u, F, out, rows, F);
}

void cpu_rope_kv_store(void *ctx, float *q, int ldq, float *k, const float *v, int ldkv, const int32_t *pos, int rows,
                       int n_head, int n_head_kv, int head_dim, const eng_rope *p, uint16_t *k_cache,
                       uint16_t *v_cache) {
    atomic_fetch_add(&g_fused_calls, 1);
    cpu_rope(ctx, q, ldq, pos, rows, n_head, head_dim, p);
    cpu_rope(ctx, k, ldkv, pos, rows, n_head_kv, head_dim, p);
    cpu_kv_store(ctx, k_cache, v_cache, k, v, ldkv, pos, rows, n_head_kv * head_dim);
}
