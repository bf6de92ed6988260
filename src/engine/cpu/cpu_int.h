/* cpu_int — private to the CPU backend (the cpu/ sources): its context and the op
 * entry points the vtable in cpu_backend.c points at.
 *
 * Every op runs synchronously on the calling thread plus the pool's helpers;
 * "enqueue" on the CPU means "done on return". An op that cannot run (scratch
 * allocation failed, an id out of range) latches an error that the next
 * sync() returns, as backend.h promises.
 */
#ifndef LLORCH_CPU_INT_H
#define LLORCH_CPU_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/cpu/cpu_pool.h"

typedef struct {
    cpu_pool *pool;        /* n_threads workers incl. the caller; created once */
    int n_threads;
    uint64_t mem_limit;    /* 0 = none */
    uint64_t mem_used;     /* bytes handed out by alloc */
    int err;               /* latched error (negative errno), returned by sync */
    void *qbuf;            /* activation rows quantized for matmul (cpu_matmul_scratch_bytes) */
    size_t qbuf_cap;
    void *mbuf;            /* matmul_id: rows gathered per expert (cpu_matmul_id_scratch_bytes) */
    size_t mbuf_cap;
    int reserved;          /* 1 after reserve(): qbuf/mbuf are sized for every op; they never grow again */
} cpu_ctx;

/* Makes *buf (64-byte aligned, *cap bytes) hold need bytes. Before reserve()
 * (ops driven directly: tests, tools) it grows to the largest use and is
 * kept; after reserve() the engine promised need <= *cap, so more is an
 * engine bug (LLORCH_ASSERT), never an allocation during an eval. 0 or
 * -ENOMEM. cpu_backend.c */
int cpu_scratch(cpu_ctx *c, void **buf, size_t *cap, size_t need);

/* Ops with at least this many scalar multiply-adds are split over the pool. */
#define CPU_PAR_MIN_WORK 16384

/* number of threads worth using for `work` units (>= 1) */
static inline int cpu_nth_for(const cpu_ctx *c, int64_t work) {
    if (work < CPU_PAR_MIN_WORK) return 1;
    int64_t n = work / CPU_PAR_MIN_WORK;
    return n < c->n_threads ? (int)n : c->n_threads;
}

/* the same, never more threads than rows */
static inline int cpu_nth_rows(const cpu_ctx *c, int64_t rows, int64_t work) {
    int n = cpu_nth_for(c, work);
    return rows < n ? (rows > 0 ? (int)rows : 1) : n;
}

/* [lo, hi) share of n items for thread ith of nth */
static inline void cpu_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nth - 1) / nth;
    *lo = per * ith;
    *hi = *lo + per;
    if (*lo > n) *lo = n;
    if (*hi > n) *hi = n;
}

/* cpu_ops.c */
void cpu_get_rows(void *ctx, const eng_w *w, const int32_t *ids, int n, float *out);
void cpu_rmsnorm(void *ctx, const float *x, const float *g, float *y, int rows, int dim, float eps);
void cpu_add_bias(void *ctx, float *y, int ld, const float *b, int rows, int dim);
void cpu_add(void *ctx, float *y, const float *a, int64_t n);
void cpu_rope(void *ctx, float *x, int ld, const int32_t *pos, int rows, int n_head, int head_dim,
              const eng_rope *p);
void cpu_kv_store(void *ctx, uint16_t *k_cache, uint16_t *v_cache, const float *k, const float *v, int ld,
                  const int32_t *pos, int rows, int kv_dim);
void cpu_swiglu(void *ctx, const float *gate, const float *up, int ld_in, float *out, int rows, int dim);

/* cpu_matmul.c */
void cpu_matmul(void *ctx, const eng_w *w, const float *x, float *y, int rows);
/* qbuf bytes cpu_matmul needs for rows activation rows on w (0: none, e.g. F32 weights) */
size_t cpu_matmul_scratch_bytes(const eng_w *w, int rows);

/* cpu_fused.c: the optional fused ops, as their primitives' composition */
/* fused ops run so far in this process (tests: did the fused path run?) */
uint64_t cpu_fused_calls(void);
void cpu_matmul_n(void *ctx, int n, const eng_w *const *w, const float *const *b, const float *x, float *const *y,
                  int rows);
void cpu_matmul_add(void *ctx, const eng_w *w, const float *x, float *y, float *tmp, int rows);
void cpu_matmul_swiglu(void *ctx, const eng_w *wg, const eng_w *wu, const float *x, float *out, float *tmp,
                       int rows);
void cpu_rope_kv_store(void *ctx, float *q, int ldq, float *k, const float *v, int ldkv, const int32_t *pos, int rows,
                       int n_head, int n_head_kv, int head_dim, const eng_rope *p, uint16_t *k_cache,
                       uint16_t *v_cache);
void cpu_decode_block(void *ctx, const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t);
void cpu_decode_layers(void *ctx, const eng_block_w *b, int n, float *x, const int32_t *pos, const eng_block_tmp *t);
/* decode_block calls so far in this process (tests: did the block path run?) */
uint64_t cpu_decode_block_calls(void);

/* cpu_attn.c */
/* llama.cpp's ggml_vec_dot_f16 order of summation (AVX2 build), cpu_attn.c */
float cpu_dot_f16_ggml(const uint16_t *x, const uint16_t *y, int64_t n);
void cpu_attention(void *ctx, const float *q, int ld_q, const uint16_t *k_cache, const uint16_t *v_cache,
                   const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                   float *out);
/* with sinks [n_head] (or NULL) and a sliding window (0 = none): backend.h attention_ext */
void cpu_attention_ext(void *ctx, const float *q, int ld_q, const uint16_t *k_cache, const uint16_t *v_cache,
                       const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                       const float *sinks, int window, float *out);

/* cpu_moe.c: gpt-oss mixture of experts (backend.h) */
void cpu_moe_route(void *ctx, const float *logits, int rows, int n_expert, int k, int32_t *ids, float *w);
void cpu_matmul_id(void *ctx, const eng_w *w, const float *x, int n_x, const int32_t *ids, int k, const float *b,
                   float *y, int rows);
/* mbuf bytes cpu_matmul_id needs for slots = rows * k on w */
size_t cpu_matmul_id_scratch_bytes(const eng_w *w, int slots);
void cpu_swiglu_oai(void *ctx, const float *gate, const float *up, float *out, int64_t n, float alpha, float limit);
void cpu_moe_sum(void *ctx, const float *e, const float *w, int rows, int k, int dim, float *out);

#endif
