/* backend — the vtable every compute backend implements (cpu/, cuda/).
 *
 * The forward pass (arch/ sources) is written once against these ops; a backend
 * only knows tensors and ops, never architectures. Pointers to activations,
 * caches and weights are backend memory (host pointers on the CPU, device
 * pointers on CUDA). Ops are enqueued in order on the backend's single stream
 * and may run asynchronously until sync()/download(); an op never fails
 * synchronously: a device fault is latched and returned by the next sync().
 *
 * Activations are f32, row-major [rows][cols]. Where an op takes a leading
 * dimension `ld` (in elements), its input may be a column slice of a wider
 * matrix (phi3's fused qkv / gate_up outputs).
 *
 * Every op that reads a position reads it from backend memory (pos[rows]), and
 * the token ids for get_rows likewise, so a decode step's op sequence is
 * identical token after token and a backend may record it once (CUDA graph)
 * and replay it: see record_begin/record_end.
 *
 * The CPU implementation (cpu/) is the reference: every op of every other
 * backend is tested against it on random inputs.
 */
#ifndef LLORCH_BACKEND_H
#define LLORCH_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"

/* A weight tensor resident in a backend. Matrices: ne0 = row length (input
 * features), ne1 = rows (output features), ne2 = matrices (MoE experts; 1 otherwise). */
typedef struct {
    const void *data;   /* backend memory */
    int type;           /* quant.h QT_* block format of every row */
    int64_t ne0, ne1, ne2;
    size_t nb1;         /* bytes per row = qt_row_bytes(type, ne0) */
    size_t nb2;         /* bytes per matrix = nb1 * ne1 */
} eng_w;

/* Rotary embedding parameters (ggml semantics). */
typedef struct {
    int n_rot;                 /* dimensions rotated per head (<= head_dim, even) */
    int neox;                  /* 0: adjacent pairs (x[2i], x[2i+1]) — llama;
                                  1: halves (x[i], x[i + n_rot/2]) — qwen2, phi3, gpt-oss */
    float freq_base;           /* theta base, e.g. 10000, 1e6 */
    float freq_scale;          /* 1 / linear scaling factor; 1 = none */
    const float *freq_factors; /* [n_rot/2] backend memory or NULL: theta_i /= factor_i (phi3 long rope, llama3) */
    float ext_factor;          /* YaRN extrapolation mix; 0 = off */
    float attn_factor;         /* YaRN magnitude scale; 1 = none */
    float beta_fast, beta_slow;
    int n_ctx_orig;            /* YaRN original context */
} eng_rope;

/* Arguments of a device-side sampling op (SPEC §3.4 pipeline). */
typedef struct {
    eng_sampling_params p;
    const int32_t *history;    /* host: last n_history tokens (oldest first) */
    int n_history;
    double uniform;            /* the PRNG draw for this token, from the host sampler */
} eng_sample_args;

/* The bounds of every op an engine will issue on a model, known at load
 * (backend reserve()): matmul(w, .., rows) with w one of w[] and rows <=
 * rows; matmul_id(w, .., k, .., rows) with w one of w[] and rows * k <=
 * id_slots; the fused matmuls likewise. */
typedef struct {
    int rows;                   /* most activation rows of one op (the model's n_batch) */
    int id_slots;               /* most rows * k of one matmul_id; 0 = no matmul_id */
    const eng_w *const *w;      /* every matrix an op multiplies by, [n_w] (duplicates fine) */
    int n_w;
} eng_reserve;

/* One layer of a pre-norm decoder block (llama family: separate q/k/v with
 * optional biases, rope, GQA attention, gated FFN) for the decode_block op. */
typedef struct {
    const float *attn_norm, *ffn_norm; /* [n_embd] f32 */
    const eng_w *wq, *wk, *wv;         /* [q_dim | kv_dim | kv_dim][n_embd] */
    const float *bq, *bk, *bv;         /* [q_dim], [kv_dim], [kv_dim] or NULL */
    const eng_w *wo;                   /* [n_embd][q_dim] */
    const eng_w *w_gate, *w_up;        /* [n_ff][n_embd] each */
    const eng_w *w_down;               /* [n_embd][n_ff] */
    int n_head, n_head_kv, head_dim;   /* q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim */
    float eps;                         /* rmsnorm epsilon */
    float scale;                       /* attention logit scale */
    eng_rope rope;                     /* freq_factors: this layer's, or NULL */
    uint16_t *k_cache, *v_cache;       /* this layer's [n_ctx][kv_dim] fp16 */
} eng_block_w;

/* Scratch of decode_block (backend memory, clobbered): xb [n_embd], q
 * [q_dim], k [kv_dim], v [kv_dim], att [q_dim], tmp [n_embd], gu [2 n_ff],
 * hb [n_ff]; none overlaps x or another. */
typedef struct {
    float *xb, *q, *k, *v, *att, *tmp, *gu, *hb;
} eng_block_tmp;

typedef struct eng_backend_ops {
    const char *name;                 /* "cpu" | "cuda" */
    const char *memory_architecture;  /* "host" | "vram-only" */
    int weights_in_place;             /* 1: weights are used straight from the host mmap (no alloc/upload) */

    /* ---- lifetime ------------------------------------------------------------ */
    void (*destroy)(void *ctx);

    /* ---- memory: 0 or -ENOMEM (limit or device full); never managed/host memory on cuda */
    int (*alloc)(void *ctx, size_t bytes, void **out);   /* 256-byte aligned */
    void (*free)(void *ctx, void *p);                     /* NULL ok */
    int (*upload)(void *ctx, void *dst, const void *src, size_t bytes);   /* host → backend, src reusable on return */
    int (*download)(void *ctx, void *dst, const void *src, size_t bytes); /* backend → host, synchronous (includes sync) */
    int (*zero)(void *ctx, void *dst, size_t bytes);
    int (*sync)(void *ctx);            /* 0 or the first latched device error (-EIO) */
    uint64_t (*mem_used)(void *ctx);   /* bytes currently allocated through alloc */
    /* 1 when p (from alloc) is resident backend memory; cpu: always 1 */
    int (*is_resident)(void *ctx, const void *p, char *why, size_t whylen);

    /* ---- ops (enqueue) ----------------------------------------------------------- */
    /* out[i][0..w.ne0) = dequant(row ids[i] of w), i < n; ids in backend memory */
    void (*get_rows)(void *ctx, const eng_w *w, const int32_t *ids, int n, float *out);
    /* y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * g  (g [dim] f32, may be NULL); x==y allowed */
    void (*rmsnorm)(void *ctx, const float *x, const float *g, float *y, int rows, int dim, float eps);
    /* y[r][o] = sum_i w[o][i] * x[r][i] for o < w.ne1;  x [rows][w.ne0], y [rows][w.ne1] */
    void (*matmul)(void *ctx, const eng_w *w, const float *x, float *y, int rows);
    /* y[r][0..dim) += b[0..dim) where y has leading dim ld (bias add) */
    void (*add_bias)(void *ctx, float *y, int ld, const float *b, int rows, int dim);
    /* y[i] += a[i], i < n (residual) */
    void (*add)(void *ctx, float *y, const float *a, int64_t n);
    /* in place: x[r][h*head_dim + d] for h < n_head, leading dim ld; position pos[r] */
    void (*rope)(void *ctx, float *x, int ld, const int32_t *pos, int rows, int n_head, int head_dim,
                 const eng_rope *p);
    /* k_cache/v_cache [n_ctx][kv_dim] fp16: row pos[r] = k[r] / v[r] (leading dim ld) */
    void (*kv_store)(void *ctx, uint16_t *k_cache, uint16_t *v_cache, const float *k, const float *v, int ld,
                     const int32_t *pos, int rows, int kv_dim);
    /* causal GQA attention: query row r (head h, leading dim ld_q) attends to
     * cache rows 0..pos[r] of kv head h / (n_head / n_head_kv);
     * out [rows][n_head*head_dim]; softmax(scale * q·k) · v */
    void (*attention)(void *ctx, const float *q, int ld_q, const uint16_t *k_cache, const uint16_t *v_cache,
                      const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                      float *out);
    /* out[r][i] = silu(gate[r][i]) * up[r][i], i < dim; gate/up leading dim ld_in, out dim */
    void (*swiglu)(void *ctx, const float *gate, const float *up, int ld_in, float *out, int rows, int dim);

    /* ---- optional (NULL when absent) ----------------------------------------------- */
    /* Samples from logits [n_vocab] on the backend; writes the id to *dev_token
     * (backend memory, so the next decode step can read it) and to *host_token.
     * host_token == NULL: enqueue only (no device → host copy, no sync; the
     * return code covers the enqueue): the backend marks the point right
     * after the sampling (CUDA: an event) for a later read_token. */
    int (*sample)(void *ctx, const float *logits, int n_vocab, const eng_sample_args *a,
                  int32_t *dev_token, int32_t *host_token);
    /* Optional with sample (NULL: the engine never enqueues a sample alone).
     * Reads into *host_token the id that the last enqueue-only sample wrote
     * to dev_token (the same pointer), waiting for that sample only, NOT for
     * work enqueued after it (CUDA: a second stream waits on sample's event
     * and copies the 4 bytes). 0, -EINVAL when no enqueue-only sample is
     * pending, or -EIO (the error is latched as for sync). */
    int (*read_token)(void *ctx, const int32_t *dev_token, int32_t *host_token);
    /* Optional (NULL, or -1 when this backend does not cover w: nothing
     * enqueued, the engine runs rmsnorm + matmul). The head of ONE row x
     * [w.ne0]: logits[0..w.ne1) = (rmsnorm(x) * g) · w, bit for bit what
     * rmsnorm then matmul give, and the greedy choice over them (the highest
     * logit, the lowest id among equals, NaN skipped, 0 when none; no
     * repetition penalty) written to tok_next[0] and to ring[pos & 1], where
     * pos = pos_io[pos_i]; then pos_io[0] = pos + 1 (the next step's
     * position). All pointers in backend memory. 0 when enqueued. */
    int (*head)(void *ctx, const float *x, const float *g, float eps, const eng_w *w, float *logits,
                int32_t *tok_next, int32_t *ring, int32_t *pos_io, int pos_i);
    /* Optional with read_token: the chosen id is already at dev_token
     * (written by enqueued work: head's ring). host_token == NULL marks this
     * point for a later read_token(dev_token), as an enqueue-only sample
     * does; else reads the id now (waits for the enqueued work). 0 or -EIO. */
    int (*sample_ready)(void *ctx, const int32_t *dev_token, int32_t *host_token);
    /* Op recording: between record_begin(key) and record_end(key) the engine
     * issues one decode step; a backend may capture it (CUDA graph) and, on the
     * next record_begin with the same key, return 1 = "replayed, skip issuing".
     * Dynamic inputs (positions, token ids) live in backend memory and are
     * uploaded before record_begin. The engine passes one key per session
     * (a recording holds that session's buffers); keys are never reused
     * within a model, so a freed session's recording is simply never replayed. */
    int (*record_begin)(void *ctx, int key);
    int (*record_end)(void *ctx, int key);
    /* Optional (NULL: nothing to reserve). Called once at model load, after
     * the weights are bound, with the bounds of every later op: the backend
     * allocates the op scratch those need now, so that an eval never
     * allocates (CPU: the quantized activation rows of matmul, the gathered
     * rows of matmul_id). 0, or -ENOMEM (the model does not load). An op
     * beyond the reserved bounds afterwards is an engine bug (assert). */
    int (*reserve)(void *ctx, const eng_reserve *r);
    /* Device facts for eng_model_info: sm, cuda_runtime_version, device_name,
     * device_total_bytes, device_free_bytes (fields of eng_model_info). */
    void (*device_info)(void *ctx, int *sm, int *cuda_runtime_version, char *name, size_t name_cap,
                        uint64_t *total, uint64_t *free_bytes);

    /* ==== optional fused ops (decode speed; NULL when absent) ====================
     * Each is defined as exactly the composition of primitives written beside
     * it; the forward pass uses one when present (LLORCH_NO_FUSED=1 forces the
     * primitives) and a backend may compute it in fewer passes (CUDA: one
     * launch for the mat-vec rows). The CPU backend runs the composition
     * itself, so its results are bit-identical fused or not. `tmp` arguments
     * are scratch of the stated size that the op may clobber (a backend that
     * falls back to the primitives, e.g. for many rows, writes them there).
     * Architecture-agnostic: tensors and ops only. */
    /* for j < n (1..3), every w[j] of the same ne0:
     *   matmul(w[j], x, y[j], rows); if (b[j]) add_bias(y[j], w[j]->ne1, b[j], rows, w[j]->ne1)
     * y[j] [rows][w[j]->ne1], b[j] [w[j]->ne1] or NULL; no y[j] may overlap x */
    void (*matmul_n)(void *ctx, int n, const eng_w *const *w, const float *const *b, const float *x,
                     float *const *y, int rows);
    /* y += x·w^T:  matmul(w, x, tmp, rows); add(y, tmp, rows * w->ne1)
     * y and tmp [rows][w->ne1]; neither overlaps x */
    void (*matmul_add)(void *ctx, const eng_w *w, const float *x, float *y, float *tmp, int rows);
    /* out = silu(x·wg^T) * (x·wu^T), wg/wu of the same shape [F][ne0]:
     *   matmul(wg, x, tmp, rows); matmul(wu, x, tmp + rows*F, rows); swiglu(tmp, tmp + rows*F, F, out, rows, F)
     * tmp [2][rows][F] scratch, out [rows][F] */
    void (*matmul_swiglu)(void *ctx, const eng_w *wg, const eng_w *wu, const float *x, float *out, float *tmp,
                          int rows);
    /* rope(q, ldq, pos, rows, n_head, head_dim, p); rope(k, ldkv, pos, rows, n_head_kv, head_dim, p);
     * kv_store(k_cache, v_cache, k, v, ldkv, pos, rows, n_head_kv * head_dim) */
    void (*rope_kv_store)(void *ctx, float *q, int ldq, float *k, const float *v, int ldkv, const int32_t *pos,
                          int rows, int n_head, int n_head_kv, int head_dim, const eng_rope *p, uint16_t *k_cache,
                          uint16_t *v_cache);
    /* One whole decoder block for ONE activation row (decode), b's layer,
     * x [n_embd] the residual row (updated in place), pos [1]; t as above:
     *   rmsnorm(x, attn_norm, xb, 1, n_embd, eps)
     *   matmul_n(3, {wq, wk, wv}, {bq, bk, bv}, xb, {q, k, v}, 1)
     *   rope_kv_store(q, q_dim, k, v, kv_dim, pos, 1, n_head, n_head_kv, head_dim, &rope, k_cache, v_cache)
     *   attention(q, q_dim, k_cache, v_cache, pos, 1, n_head, n_head_kv, head_dim, scale, att)
     *   matmul_add(wo, att, x, tmp, 1)
     *   rmsnorm(x, ffn_norm, xb, 1, n_embd, eps)
     *   matmul_swiglu(w_gate, w_up, xb, hb, gu, 1)
     *   matmul_add(w_down, hb, x, tmp, 1)
     * (CUDA: that composition; with LLORCH_CUDA_PERSIST=1 one persistent
     * launch per layer where the shapes/formats allow, cuda/persist.cu.) */
    void (*decode_block)(void *ctx, const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t);
    /* n whole layers in order, one decode row:
     *   for (l = 0; l < n; l++) decode_block(&b[l], x, pos, t)
     * (CUDA: decode_block per layer; opt-in LLORCH_CUDA_PERSIST_LAYERS=1:
     * one persistent launch for all of them where they share shapes) */
    void (*decode_layers)(void *ctx, const eng_block_w *b, int n, float *x, const int32_t *pos,
                          const eng_block_tmp *t);
    /* Optional (NULL, or -1 where it does not cover them: nothing enqueued,
     * and the engine runs the two ops): the embedding lookup and the layers
     * as one op, x = get_rows(embd, ids, 1) then decode_layers(b, n, x, pos,
     * t). 0 when enqueued. (CUDA: the lookup inside the persistent launch.) */
    int (*decode_layers_embd)(void *ctx, const eng_w *embd, const int32_t *ids, const eng_block_w *b, int n,
                              float *x, const int32_t *pos, const eng_block_tmp *t);
    /* ==== end of fused ops ======================================================== */
    /* ---- gpt-oss ops (owner: gpt-oss work; optional: NULL where a backend lacks
     * them, and the engine then refuses gpt-oss models at load with
     * ENG_E_UNSUPPORTED). Semantics are llama.cpp's (openai-moe graph). ---------- */
    /* Router, per row r < rows: ids[r][0..k) = indices of the k largest
     * logits[r][0..n_expert) in descending order (ties: lower index first);
     * w[r][j] = softmax over the k selected logits (SOFTMAX_WEIGHT gating). */
    void (*moe_route)(void *ctx, const float *logits, int rows, int n_expert, int k, int32_t *ids, float *w);
    /* Expert matmul: for r < rows, j < k, e = ids[r][j] (< w.ne2):
     *   y[r][j][0..ne1) = matrix e of w · x[r][n_x == 1 ? 0 : j]  (+ b[e][0..ne1) when b)
     * x [rows][n_x][w.ne0] with n_x 1 (one input per row, shared by its
     * slots) or k (one per slot); y [rows][k][w.ne1]; b [w.ne2][w.ne1] f32. */
    void (*matmul_id)(void *ctx, const eng_w *w, const float *x, int n_x, const int32_t *ids, int k, const float *b,
                      float *y, int rows);
    /* gpt-oss's clamped SwiGLU, i < n:
     *   g = min(gate[i], limit), u = clamp(up[i], -limit, limit),
     *   out[i] = g / (1 + exp(-alpha g)) * (u + 1) */
    void (*swiglu_oai)(void *ctx, const float *gate, const float *up, float *out, int64_t n, float alpha,
                       float limit);
    /* out[r][i] = sum over j = 0..k-1 in order of (w[r][j] * e[r][j][i]), i < dim;
     * e [rows][k][dim], w [rows][k], out [rows][dim] */
    void (*moe_sum)(void *ctx, const float *e, const float *w, int rows, int k, int dim, float *out);
    /* `attention` with per-head sinks and a sliding window: sinks [n_head]
     * f32 (backend memory) or NULL: head h's softmax gets one more logit
     * sinks[h] with no value; window > 0: query row r attends only to cache
     * rows t with pos[r] - t < window; 0 = all of 0..pos[r]. */
    void (*attention_ext)(void *ctx, const float *q, int ld_q, const uint16_t *k_cache, const uint16_t *v_cache,
                          const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                          const float *sinks, int window, float *out);
    /* ---- end of gpt-oss ops ---- */
} eng_backend_ops;

typedef struct {
    const eng_backend_ops *ops;
    void *ctx;
} eng_backend;

/* Constructors. n_threads 0 = online cores. mem_limit 0 = none.
 * eng_backend_cuda_new is defined only in llorch_engine_cuda; the engine
 * references it weakly, so a binary without the CUDA library links and
 * reports ENG_E_NO_DEVICE for ENG_BACKEND_CUDA. */
int eng_backend_cpu_new(int n_threads, uint64_t mem_limit, eng_backend *out, char *err, size_t errlen);
int eng_backend_cuda_new(int device, uint64_t mem_limit, eng_backend *out, char *err, size_t errlen)
    __attribute__((weak));

#endif
