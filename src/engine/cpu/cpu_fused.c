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

static atomic_ulong g_block_calls;
uint64_t cpu_decode_block_calls(void) { return atomic_load(&g_block_calls); }

void cpu_decode_block(void *ctx, const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t) {
    atomic_fetch_add(&g_fused_calls, 1);
    atomic_fetch_add(&g_block_calls, 1);
    const int E = (int)b->wq->ne0, Q = b->n_head * b->head_dim, KV = b->n_head_kv * b->head_dim;
    const eng_w *ws[3] = {b->wq, b->wk, b->wv};
    const float *bs[3] = {b->bq, b->bk, b->bv};
    float *ys[3] = {t->q, t->k, t->v};
    cpu_rmsnorm(ctx, x, b->attn_norm, t->xb, 1, E, b->eps);
    cpu_matmul_n(ctx, 3, ws, bs, t->xb, ys, 1);
    cpu_rope_kv_store(ctx, t->q, Q, t->k, t->v, KV, pos, 1, b->n_head, b->n_head_kv, b->head_dim, &b->rope,
                      b->k_cache, b->v_cache);
    cpu_attention(ctx, t->q, Q, b->k_cache, b->v_cache, pos, 1, b->n_head, b->n_head_kv, b->head_dim, b->scale,
                  t->att);
    cpu_matmul_add(ctx, b->wo, t->att, x, t->tmp, 1);
    cpu_rmsnorm(ctx, x, b->ffn_norm, t->xb, 1, E, b->eps);
    cpu_matmul_swiglu(ctx, b->w_gate, b->w_up, t->xb, t->hb, t->gu, 1);
    cpu_matmul_add(ctx, b->w_down, t->hb, x, t->tmp, 1);
}

void cpu_decode_layers(void *ctx, const eng_block_w *b, int n, float *x, const int32_t *pos, const eng_block_tmp *t) {
    for (int l = 0; l < n; l++) cpu_decode_block(ctx, &b[l], x, pos, t);
}
