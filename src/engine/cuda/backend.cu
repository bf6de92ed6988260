/* backend.cu — the CUDA implementation of eng_backend_ops (backend.h): the
 * context's lifetime, memory entry points, sync/error latch, graph recording,
 * and dispatch of each op to its kernel family. No kernels live here.
 *
 * One device, one non-blocking stream; every op is enqueued on it. matmul
 * takes the mat-vec path (mmv.cu) for up to CU_MMV_MAX_ROWS activation rows
 * and the tiled tensor-core path (mm.cu) above.
 *
 * Graphs: record_begin(key) on a key seen before launches its graph and
 * returns 1 (the engine skips issuing); otherwise it opens a stream capture,
 * and record_end(key) closes it, instantiates and launches the graph. Ops read
 * positions and token ids from device memory, so the same graph serves every
 * decode step of a shape. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

/* common/util.h is C11 (_Noreturn): declare the one function used here */
extern "C" uint64_t util_now_ns(void);

static inline cu_ctx *C(void *ctx) { return (cu_ctx *)ctx; }
/* the mat-vec activation cache (common.cuh) is dropped by every op that
 * could write device memory other than an mmv matmul, by every memory entry
 * point and at every graph boundary */
static inline cu_ctx *CW(void *ctx) {
    cu_ctx *c = (cu_ctx *)ctx;
    c->aq_x = NULL;
    c->xh_x = NULL;
    return c;
}

/* ---- optional profiling (LLORCH_CUDA_PROFILE=1) --------------------------------------- */
#define PROF_N 2048
#define PROF_KEYS 96
struct cu_prof {
    cudaEvent_t ev[2 * PROF_N];
    int key[PROF_N];
    int n;
    char name[PROF_KEYS][64];
    double ms[PROF_KEYS];
    long cnt[PROF_KEYS];
    int nkeys;
    double sample_ms; /* host-timed */
    long sample_cnt;
};

static void prof_flush(cu_ctx *c) {
    cu_prof *p = c->prof;
    if (!p || !p->n) return;
    cudaStreamSynchronize(c->stream);
    for (int i = 0; i < p->n; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, p->ev[2 * i], p->ev[2 * i + 1]) == cudaSuccess) {
            p->ms[p->key[i]] += ms;
            p->cnt[p->key[i]]++;
        }
    }
    (void)cudaGetLastError();
    p->n = 0;
}

static int prof_begin(cu_ctx *c, const char *name) {
    cu_prof *p = c->prof;
    if (!p || c->capturing) return -1;
    if (p->n == PROF_N) prof_flush(c);
    int k = 0;
    while (k < p->nkeys && strcmp(p->name[k], name)) k++;
    if (k == p->nkeys) {
        if (p->nkeys == PROF_KEYS) return -1;
        snprintf(p->name[k], sizeof p->name[k], "%s", name);
        p->nkeys++;
    }
    p->key[p->n] = k;
    cudaEventRecord(p->ev[2 * p->n], c->stream);
    return p->n;
}

static void prof_end(cu_ctx *c, int i) {
    if (i < 0) return;
    cudaEventRecord(c->prof->ev[2 * i + 1], c->stream);
    c->prof->n++;
}

static void prof_report(cu_ctx *c) {
    cu_prof *p = c->prof;
    prof_flush(c);
    double tot = 0;
    for (int k = 0; k < p->nkeys; k++) tot += p->ms[k];
    fprintf(stderr, "cuda profile (GPU time per op kind, eager launches):\n");
    for (int k = 0; k < p->nkeys; k++)
        fprintf(stderr, "  %-40s %8ld calls %10.3f ms %8.2f us/call %5.1f%%\n", p->name[k], p->cnt[k], p->ms[k],
                p->cnt[k] ? 1e3 * p->ms[k] / p->cnt[k] : 0.0, tot > 0 ? 100 * p->ms[k] / tot : 0.0);
    fprintf(stderr, "  total op GPU time %.3f ms; sample(): %ld calls, %.3f ms host-timed (%.1f us/call)\n", tot,
            p->sample_cnt, p->sample_ms, p->sample_cnt ? 1e3 * p->sample_ms / p->sample_cnt : 0.0);
}
#define PROF(c, nm, body)                  \
    do {                                   \
        int pi_ = -1;                      \
        if ((c)->prof) pi_ = prof_begin((c), (nm)); \
        body;                              \
        if ((c)->prof) prof_end((c), pi_); \
    } while (0)

/* ---- lifetime ------------------------------------------------------------------- */
static void b_destroy(void *ctx) {
    cu_ctx *c = C(ctx);
    if (!c) return;
    cudaSetDevice(c->device);
    if (c->capturing) {
        cudaGraph_t g = NULL;
        cudaStreamEndCapture(c->stream, &g);
        if (g) cudaGraphDestroy(g);
    }
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->side) cudaStreamSynchronize(c->side);
    cu_stamps_report(c);
    if (c->prof) {
        prof_report(c);
        for (int i = 0; i < 2 * PROF_N; i++) cudaEventDestroy(c->prof->ev[i]);
        free(c->prof);
    }
    for (int i = 0; i < c->n_graphs; i++) cudaGraphExecDestroy(c->graphs[i].exec);
    free(c->graphs);
    cu_mem_release_all(c);
    cudaFree(c->act_q);
    cudaFree(c->act_d);
    cudaFree(c->act_s);
    cudaFree(c->mm_xh);
    cudaFree(c->attn_part);
    cudaFree(c->attn_cnt);
    cudaFree(c->pkw_ll);
    cudaFree(c->samp_w);
    cudaFree(c->samp_hist);
    cudaFree(c->samp_out);
    cudaFree(c->samp_red);
    cudaFree(c->head_red);
    cudaFree(c->stamps);
    if (c->samp_ev) cudaEventDestroy(c->samp_ev);
    if (c->side) cudaStreamDestroy(c->side);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

/* ---- memory --------------------------------------------------------------------- */
static int b_alloc(void *ctx, size_t bytes, void **out) { return cu_mem_alloc(CW(ctx), bytes, out); }
static void b_free(void *ctx, void *p) { cu_mem_free(CW(ctx), p); }

static int b_upload(void *ctx, void *dst, const void *src, size_t bytes) {
    cu_ctx *c = CW(ctx);
    if (!bytes) return 0;
    if (c->err) return -EIO;
    /* pageable source: returns once src has been staged, so src is reusable */
    if (CUDA_CHECK(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream))) return -EIO;
    return 0;
}

static int b_sync(void *ctx) {
    cu_ctx *c = C(ctx);
    if (!c->err && !c->capturing) CUDA_CHECK(c, cudaStreamSynchronize(c->stream));
    return c->err ? -EIO : 0;
}

static int b_download(void *ctx, void *dst, const void *src, size_t bytes) {
    cu_ctx *c = C(ctx);
    if (c->err) return -EIO;
    if (bytes && CUDA_CHECK(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream))) return -EIO;
    return b_sync(ctx);
}

static int b_zero(void *ctx, void *dst, size_t bytes) {
    cu_ctx *c = CW(ctx);
    if (!bytes) return 0;
    if (CUDA_CHECK(c, cudaMemsetAsync(dst, 0, bytes, c->stream))) return -EIO;
    return 0;
}

static uint64_t b_mem_used(void *ctx) { return C(ctx)->mem_used; }

static int b_is_resident(void *ctx, const void *p, char *why, size_t whylen) {
    return cu_mem_is_resident(C(ctx), p, why, whylen);
}

/* ---- ops -------------------------------------------------------------------------- */
static void b_get_rows(void *ctx, const eng_w *w, const int32_t *ids, int n, float *out) {
    PROF(CW(ctx), "get_rows", cu_get_rows(C(ctx), w, ids, n, out));
}
static void b_rmsnorm(void *ctx, const float *x, const float *g, float *y, int rows, int dim, float eps) {
    PROF(CW(ctx), "rmsnorm", cu_rmsnorm(C(ctx), x, g, y, rows, dim, eps));
}
static void b_matmul(void *ctx, const eng_w *w, const float *x, float *y, int rows) {
    cu_ctx *c = C(ctx);
    char nm[64] = "";
    if (c->prof) {
        const qt_info_t *qi = qt_info(w->type);
        snprintf(nm, sizeof nm, "matmul %s %lldx%lld %s", qi ? qi->name : "?", (long long)w->ne0, (long long)w->ne1,
                 rows <= CU_MMV_MAX_ROWS ? "mmv" : "mm");
    }
    if (rows <= CU_MMV_MAX_ROWS) {
        c->xh_x = NULL;
        PROF(c, nm, cu_mmv(c, w, x, y, rows)); /* keeps or drops the mat-vec cache itself */
    } else {
        c->aq_x = NULL;
        PROF(c, nm, cu_mm(c, w, x, y, rows)); /* may keep the fp16 conversion of x (mm_xh.cu) */
        /* ... unless this output overwrote the converted x */
        if (c->xh_x) {
            const uintptr_t xb = (uintptr_t)c->xh_x, xe = xb + (size_t)c->xh_rows * (size_t)c->xh_K * sizeof(float);
            const uintptr_t yb = (uintptr_t)y, ye = yb + (size_t)rows * (size_t)w->ne1 * sizeof(float);
            if (!(ye <= xb || yb >= xe)) c->xh_x = NULL;
        }
    }
}
static void b_add_bias(void *ctx, float *y, int ld, const float *b, int rows, int dim) {
    PROF(CW(ctx), "add_bias", cu_add_bias(C(ctx), y, ld, b, rows, dim));
}
static void b_add(void *ctx, float *y, const float *a, int64_t n) { PROF(CW(ctx), "add", cu_add(C(ctx), y, a, n)); }
static void b_rope(void *ctx, float *x, int ld, const int32_t *pos, int rows, int n_head, int head_dim,
                   const eng_rope *p) {
    PROF(CW(ctx), "rope", cu_rope(C(ctx), x, ld, pos, rows, n_head, head_dim, p));
}
static void b_kv_store(void *ctx, uint16_t *kc, uint16_t *vc, const float *k, const float *v, int ld,
                       const int32_t *pos, int rows, int kv_dim) {
    PROF(CW(ctx), "kv_store", cu_kv_store(C(ctx), kc, vc, k, v, ld, pos, rows, kv_dim));
}
static void b_attention(void *ctx, const float *q, int ld_q, const uint16_t *kc, const uint16_t *vc,
                        const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                        float *out) {
    PROF(CW(ctx), rows <= 4 ? "attention decode" : "attention prefill",
         cu_attention(C(ctx), q, ld_q, kc, vc, pos, rows, n_head, n_head_kv, head_dim, scale, out));
}
static void b_swiglu(void *ctx, const float *gate, const float *up, int ld_in, float *out, int rows, int dim) {
    PROF(CW(ctx), "swiglu", cu_swiglu(C(ctx), gate, up, ld_in, out, rows, dim));
}
/* ---- fused ops (backend.h, optional) ---------------------------------------------------
 * One row (decode): fused.cu / rope.cu in one dot launch each. Otherwise
 * (prefill rows, float weights, mixed gate/up types) the exact composition
 * of this backend's primitives, through the caller's scratch. */
static const char *fm_name(cu_ctx *c, char *nm, size_t cap, const char *op, const eng_w *w, int rows) {
    if (!c->prof) return "";
    const qt_info_t *qi = qt_info(w->type);
    snprintf(nm, cap, "%s %s %lldx%lld %s", op, qi ? qi->name : "?", (long long)w->ne0, (long long)w->ne1,
             rows <= CU_MMV_MAX_ROWS ? "mmv" : "mm");
    return nm;
}
static void b_matmul_n(void *ctx, int n, const eng_w *const *w, const float *const *b, const float *x,
                       float *const *y, int rows) {
    cu_ctx *c = C(ctx);
    char nm[80];
    int rc;
    if (rows == 1) {
        PROF(c, fm_name(c, nm, sizeof nm, "matmul_n", w[0], rows), rc = cu_fused_matmul_n(c, n, w, b, x, y, rows));
        if (rc == 0) return;
    }
    for (int j = 0; j < n; j++) b_matmul(ctx, w[j], x, y[j], rows);
    for (int j = 0; j < n; j++)
        if (b[j]) b_add_bias(ctx, y[j], (int)w[j]->ne1, b[j], rows, (int)w[j]->ne1);
}
static void b_matmul_add(void *ctx, const eng_w *w, const float *x, float *y, float *tmp, int rows) {
    cu_ctx *c = C(ctx);
    char nm[80];
    int rc;
    if (rows == 1) {
        PROF(c, fm_name(c, nm, sizeof nm, "matmul_add", w, rows), rc = cu_fused_matmul_add(c, w, x, y, rows));
        if (rc == 0) return;
    }
    b_matmul(ctx, w, x, tmp, rows);
    b_add(ctx, y, tmp, (int64_t)rows * w->ne1);
}
static void b_matmul_swiglu(void *ctx, const eng_w *wg, const eng_w *wu, const float *x, float *out, float *tmp,
                            int rows) {
    cu_ctx *c = C(ctx);
    char nm[80];
    int rc;
    if (rows == 1) {
        PROF(c, fm_name(c, nm, sizeof nm, "matmul_swiglu", wg, rows),
             rc = cu_fused_matmul_swiglu(c, wg, wu, x, out, rows));
        if (rc == 0) return;
    }
    const int F = (int)wg->ne1;
    b_matmul(ctx, wg, x, tmp, rows);
    b_matmul(ctx, wu, x, tmp + (size_t)rows * F, rows);
    b_swiglu(ctx, tmp, tmp + (size_t)rows * F, F, out, rows, F);
}
static void b_rope_kv_store(void *ctx, float *q, int ldq, float *k, const float *v, int ldkv, const int32_t *pos,
                            int rows, int n_head, int n_head_kv, int head_dim, const eng_rope *p, uint16_t *kc,
                            uint16_t *vc) {
    cu_ctx *c = CW(ctx);
    int rc;
    PROF(c, "rope_kv_store",
         rc = cu_rope_kv_store(c, q, ldq, k, v, ldkv, pos, rows, n_head, n_head_kv, head_dim, p, kc, vc));
    if (rc == 0) return;
    b_rope(ctx, q, ldq, pos, rows, n_head, head_dim, p);
    b_rope(ctx, k, ldkv, pos, rows, n_head_kv, head_dim, p);
    b_kv_store(ctx, kc, vc, k, v, ldkv, pos, rows, n_head_kv * head_dim);
}

/* persist.cu: decode_block in one persistent launch; -1 = not covered
 * (nothing enqueued). cu_persist_init: once per context, outside captures. */
int cu_decode_block(cu_ctx *c, const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t);
void cu_persist_init(cu_ctx *c);
int cu_decode_layers(cu_ctx *c, const eng_block_w *b, int n, float *x, const int32_t *pos, const eng_block_tmp *t);
int cu_decode_layers_embd(cu_ctx *c, const eng_w *embd, const int32_t *ids, const eng_block_w *b, int n, float *x,
                          const int32_t *pos, const eng_block_tmp *t);

/* attn_rope.cu: rope_kv_store + attention of one row in one launch (and the
 * Q8_1 of its output into the mat-vec cache when quant); -1 = not covered */
int cu_attn_rope(cu_ctx *c, const float *q, const float *k, const float *v, const int32_t *pos, int n_head,
                 int n_head_kv, int head_dim, const eng_rope *p, float scale, uint16_t *kc, uint16_t *vc, float *out,
                 int quant);

/* LLORCH_CUDA_ATTN_ROPE=0: decode_block's composition runs rope_kv_store and
 * attention as two launches; LLORCH_CUDA_ATTN_Q8=0: the fused attention does
 * not quantize its output for the o mat-vec (A/B switches, read once) */
static int g_attn_rope = -1, g_attn_q8 = -1;

/* backend.h decode_block: the persistent kernel, else the composition
 * (through this backend's fused ops; rope_kv_store + attention fused into
 * one launch, attn_rope.cu: the same values, see there) */
static void b_decode_block(void *ctx, const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t) {
    cu_ctx *c = CW(ctx);
    if (cu_decode_block(c, b, x, pos, t) == 0) return;
    if (g_attn_rope < 0) {
        const char *e = getenv("LLORCH_CUDA_ATTN_ROPE");
        g_attn_rope = !(e && !strcmp(e, "0"));
        e = getenv("LLORCH_CUDA_ATTN_Q8");
        g_attn_q8 = !(e && !strcmp(e, "0"));
    }
    const int E = (int)b->wq->ne0, Q = b->n_head * b->head_dim, KV = b->n_head_kv * b->head_dim;
    const eng_w *ws[3] = {b->wq, b->wk, b->wv};
    const float *bs[3] = {b->bq, b->bk, b->bv};
    float *ys[3] = {t->q, t->k, t->v};
    b_rmsnorm(ctx, x, b->attn_norm, t->xb, 1, E, b->eps);
    b_matmul_n(ctx, 3, ws, bs, t->xb, ys, 1);
    /* the quantized output serves the o mat-vec only when it wants Q8_0/Q8_1
     * activations (a Q8_K request would requantize anyway) */
    const int wo_q8 = b->wo->type != QT_F32 && b->wo->type != QT_F16 && b->wo->type != QT_BF16 &&
                      cu_vdt_of(b->wo->type) != VDT_Q8_K;
    int rc = -1;
    if (g_attn_rope) {
        c->aq_x = NULL;
        PROF(c, "attention+rope decode",
             rc = cu_attn_rope(c, t->q, t->k, t->v, pos, b->n_head, b->n_head_kv, b->head_dim, &b->rope, b->scale,
                               b->k_cache, b->v_cache, t->att, g_attn_q8 && wo_q8));
    }
    if (rc != 0) {
        b_rope_kv_store(ctx, t->q, Q, t->k, t->v, KV, pos, 1, b->n_head, b->n_head_kv, b->head_dim, &b->rope,
                        b->k_cache, b->v_cache);
        b_attention(ctx, t->q, Q, b->k_cache, b->v_cache, pos, 1, b->n_head, b->n_head_kv, b->head_dim, b->scale,
                    t->att);
    }
    b_matmul_add(ctx, b->wo, t->att, x, t->tmp, 1);
    b_rmsnorm(ctx, x, b->ffn_norm, t->xb, 1, E, b->eps);
    b_matmul_swiglu(ctx, b->w_gate, b->w_up, t->xb, t->hb, t->gu, 1);
    b_matmul_add(ctx, b->w_down, t->hb, x, t->tmp, 1);
}

/* backend.h decode_layers: all layers in one persistent launch, else per layer */
static void b_decode_layers(void *ctx, const eng_block_w *b, int n, float *x, const int32_t *pos,
                            const eng_block_tmp *t) {
    cu_ctx *c = CW(ctx);
    if (cu_decode_layers(c, b, n, x, pos, t) == 0) return;
    for (int l = 0; l < n; l++) b_decode_block(ctx, &b[l], x, pos, t);
}

/* backend.h decode_layers_embd: the lookup inside pkw.cu's launch, or -1 */
static int b_decode_layers_embd(void *ctx, const eng_w *embd, const int32_t *ids, const eng_block_w *b, int n,
                                float *x, const int32_t *pos, const eng_block_tmp *t) {
    return cu_decode_layers_embd(CW(ctx), embd, ids, b, n, x, pos, t);
}

static int b_sample(void *ctx, const float *logits, int n_vocab, const eng_sample_args *a, int32_t *dev_token,
                    int32_t *host_token) {
    cu_ctx *c = CW(ctx);
    if (c->prof) prof_flush(c);
    const uint64_t t0 = c->prof ? util_now_ns() : 0;
    int rc = cu_sample(c, logits, n_vocab, a, dev_token, host_token);
    if (c->prof) { /* host-timed: includes the history upload and the 4-byte download */
        c->prof->sample_ms += (util_now_ns() - t0) / 1e6;
        c->prof->sample_cnt++;
    }
    return rc;
}

/* backend.h head: the output norm, the vocabulary mat-vec and the greedy
 * choice in one launch where mmv_tall_reg.cu covers the matrix */
static int b_head(void *ctx, const float *x, const float *g, float eps, const eng_w *w, float *logits,
                  int32_t *tok_next, int32_t *ring, int32_t *pos_io, int pos_i) {
    cu_ctx *c = CW(ctx);
    int rc = -1;
    PROF(c, "head", rc = cu_head(c, x, g, eps, w, logits, tok_next, ring, pos_io, pos_i));
    return rc;
}

/* backend.h sample_ready: the id the head already chose (sample.cu) */
static int b_sample_ready(void *ctx, const int32_t *dev_token, int32_t *host_token) {
    cu_ctx *c = C(ctx);
    const uint64_t t0 = c->prof ? util_now_ns() : 0;
    int rc = cu_sample_ready(c, dev_token, host_token);
    if (c->prof) {
        c->prof->sample_ms += (util_now_ns() - t0) / 1e6;
        c->prof->sample_cnt++;
    }
    return rc;
}

/* backend.h read_token: the token of the last enqueue-only sample, read on
 * the side stream (sample.cu cu_read_token) while this stream runs on */
static int b_read_token(void *ctx, const int32_t *dev_token, int32_t *host_token) {
    cu_ctx *c = C(ctx);
    const uint64_t t0 = c->prof ? util_now_ns() : 0;
    int rc = cu_read_token(c, dev_token, host_token);
    if (c->prof) c->prof->sample_ms += (util_now_ns() - t0) / 1e6; /* the read-back half of sample() */
    return rc;
}

/* ---- gpt-oss ops (moe.cu, attention.cu) ------------------------------------------------ */
static void b_moe_route(void *ctx, const float *logits, int rows, int n_expert, int k, int32_t *ids, float *w) {
    PROF(CW(ctx), "moe_route", cu_moe_route(C(ctx), logits, rows, n_expert, k, ids, w));
}
static void b_matmul_id(void *ctx, const eng_w *w, const float *x, int n_x, const int32_t *ids, int k, const float *b,
                        float *y, int rows) {
    cu_ctx *c = CW(ctx); /* matmul_id overwrites the mat-vec activation scratch */
    char nm[64] = "";
    if (c->prof) {
        const qt_info_t *qi = qt_info(w->type);
        snprintf(nm, sizeof nm, "matmul_id %s %lldx%lld k%d", qi ? qi->name : "?", (long long)w->ne0,
                 (long long)w->ne1, k);
    }
    PROF(c, nm, cu_matmul_id(c, w, x, n_x, ids, k, b, y, rows));
}
static void b_swiglu_oai(void *ctx, const float *gate, const float *up, float *out, int64_t n, float alpha,
                         float limit) {
    PROF(CW(ctx), "swiglu_oai", cu_swiglu_oai(C(ctx), gate, up, out, n, alpha, limit));
}
static void b_moe_sum(void *ctx, const float *e, const float *w, int rows, int k, int dim, float *out) {
    PROF(CW(ctx), "moe_sum", cu_moe_sum(C(ctx), e, w, rows, k, dim, out));
}
static void b_attention_ext(void *ctx, const float *q, int ld_q, const uint16_t *kc, const uint16_t *vc,
                            const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                            const float *sinks, int window, float *out) {
    PROF(CW(ctx), rows <= 4 ? "attention_ext decode" : "attention_ext prefill",
         cu_attention_ext(C(ctx), q, ld_q, kc, vc, pos, rows, n_head, n_head_kv, head_dim, scale, sinks, window,
                          out));
}

/* ---- graphs ------------------------------------------------------------------------ */
static cu_graph_rec *find_graph(cu_ctx *c, int key) {
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].key == key) return &c->graphs[i];
    return NULL;
}

static int b_record_begin(void *ctx, int key) {
    cu_ctx *c = CW(ctx);
    if (c->err || c->capturing || c->no_graph || c->prof) return 0;
    cu_graph_rec *g = find_graph(c, key);
    if (g) {
        if (CUDA_CHECK(c, cudaGraphLaunch(g->exec, c->stream))) return 0;
        return 1;
    }
    if (CUDA_CHECK(c, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal))) return 0;
    c->capturing = 1;
    c->capture_key = key;
    return 0;
}

static int b_record_end(void *ctx, int key) {
    cu_ctx *c = CW(ctx);
    if (!c->capturing) return 0;
    c->capturing = 0;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    if (CUDA_CHECK(c, e) || key != c->capture_key) {
        if (graph) cudaGraphDestroy(graph);
        return c->err ? -EIO : -EINVAL;
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (CUDA_CHECK(c, e)) return -EIO;
    if (c->n_graphs == c->cap_graphs) {
        int cap = c->cap_graphs ? 2 * c->cap_graphs : 8;
        cu_graph_rec *r = (cu_graph_rec *)realloc(c->graphs, (size_t)cap * sizeof *r);
        if (!r) {
            cudaGraphExecDestroy(exec);
            return -ENOMEM;
        }
        c->graphs = r;
        c->cap_graphs = cap;
    }
    c->graphs[c->n_graphs].key = key;
    c->graphs[c->n_graphs].exec = exec;
    c->n_graphs++;
    /* the captured work did not run: run it now */
    if (CUDA_CHECK(c, cudaGraphLaunch(exec, c->stream))) return -EIO;
    return 0;
}

static void b_device_info(void *ctx, int *sm, int *rt, char *name, size_t name_cap, uint64_t *total,
                          uint64_t *free_bytes) {
    cu_ctx *c = C(ctx);
    if (sm) *sm = c->sm;
    if (rt) {
        int v = 0;
        cudaRuntimeGetVersion(&v);
        *rt = v;
    }
    if (name && name_cap) snprintf(name, name_cap, "%s", c->name);
    size_t f = 0, t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) (void)cudaGetLastError();
    if (total) *total = t;
    if (free_bytes) *free_bytes = f;
}

/* designated initializers in backend.h's declaration order (C++20 requires
 * the order; fields added to backend.h elsewhere cannot shift these) */
static const eng_backend_ops g_cuda_ops = {
    .name = "cuda",
    .memory_architecture = "vram-only",
    .weights_in_place = 0,
    .destroy = b_destroy,
    .alloc = b_alloc,
    .free = b_free,
    .upload = b_upload,
    .download = b_download,
    .zero = b_zero,
    .sync = b_sync,
    .mem_used = b_mem_used,
    .is_resident = b_is_resident,
    .get_rows = b_get_rows,
    .rmsnorm = b_rmsnorm,
    .matmul = b_matmul,
    .add_bias = b_add_bias,
    .add = b_add,
    .rope = b_rope,
    .kv_store = b_kv_store,
    .attention = b_attention,
    .swiglu = b_swiglu,
    .sample = b_sample,
    .read_token = b_read_token,
    .head = b_head,
    .sample_ready = b_sample_ready,
    .record_begin = b_record_begin,
    .record_end = b_record_end,
    .device_info = b_device_info,
    .matmul_n = b_matmul_n,
    .matmul_add = b_matmul_add,
    .matmul_swiglu = b_matmul_swiglu,
    .rope_kv_store = b_rope_kv_store,
    .decode_block = b_decode_block,
    .decode_layers = b_decode_layers,
    .decode_layers_embd = b_decode_layers_embd,
    .moe_route = b_moe_route,
    .matmul_id = b_matmul_id,
    .swiglu_oai = b_swiglu_oai,
    .moe_sum = b_moe_sum,
    .attention_ext = b_attention_ext,
};

extern "C" int eng_backend_cuda_new(int device, uint64_t mem_limit, eng_backend *out, char *err, size_t errlen) {
    out->ops = NULL;
    out->ctx = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        (void)cudaGetLastError();
        if (err && errlen)
            snprintf(err, errlen, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "count 0");
        return -ENODEV;
    }
    if (device < 0 || device >= n) {
        if (err && errlen) snprintf(err, errlen, "CUDA device %d out of range (%d present)", device, n);
        return -ENODEV;
    }
    cu_ctx *c = (cu_ctx *)calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->device = device;
    c->mem_limit = mem_limit;
    int rc = -EIO;
    cudaDeviceProp prop;
    if (cudaSetDevice(device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) goto fail;
    c->sm_count = prop.multiProcessorCount;
    c->sm = prop.major * 10 + prop.minor;
    snprintf(c->name, sizeof c->name, "%.127s", prop.name);
    if (cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess) goto fail;
    /* read_token: a second stream and the sampler's event (no timing) */
    if (cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&c->samp_ev, cudaEventDisableTiming) != cudaSuccess)
        goto fail;
    {
        void *p;
        rc = -ENOMEM;
        if (cu_mem_internal(c, (size_t)CU_MMV_MAX_ROWS * CU_ACT_MAX_K, &p)) goto fail;
        c->act_q = (int8_t *)p;
        if (cu_mem_internal(c, (size_t)CU_MMV_MAX_ROWS * (CU_ACT_MAX_K / 32) * 4, &p)) goto fail;
        c->act_d = (float *)p;
        if (cu_mem_internal(c, (size_t)CU_MMV_MAX_ROWS * (CU_ACT_MAX_K / 32) * 4, &p)) goto fail;
        c->act_s = (float *)p;
        if (cu_mem_internal(c, (size_t)CU_MM_XH_MAX * 2, &p)) goto fail;
        c->mm_xh = (__half *)p;
        if (cu_mem_internal(c, (size_t)CU_ATTN_SCRATCH_FLOATS * 4, &p)) goto fail;
        c->attn_part = (float *)p;
        if (cu_mem_internal(c, CU_ATTN_MAX_CNT * sizeof(unsigned), &p)) goto fail;
        c->attn_cnt = (unsigned *)p;
        if (cu_mem_internal(c, (CU_PKW_LL_HDR + CU_PKW_LL_SLOTS) * 8, &p)) goto fail;
        c->pkw_ll = (unsigned long long *)p;
        rc = -EIO;
        if (cudaMemsetAsync(c->attn_cnt, 0, CU_ATTN_MAX_CNT * sizeof(unsigned), c->stream) != cudaSuccess ||
            cudaMemsetAsync(c->pkw_ll, 0, (CU_PKW_LL_HDR + CU_PKW_LL_SLOTS) * 8, c->stream) != cudaSuccess ||
            cudaStreamSynchronize(c->stream) != cudaSuccess)
            goto fail;
        rc = -ENOMEM;
        if (cu_mem_internal(c, ENG_REPEAT_LAST_N * 4, &p)) goto fail;
        c->samp_hist = (int32_t *)p;
        if (cu_mem_internal(c, 256, &p)) goto fail;
        c->samp_out = (int32_t *)p;
        if (cu_mem_internal(c, 4096, &p)) goto fail;
        c->samp_red = (uint32_t *)p;
        if (cu_mem_internal(c, CU_HEAD_RED_BYTES, &p)) goto fail;
        c->head_red = (float *)p;
        rc = -EIO;
        if (cudaMemsetAsync(c->samp_red, 0, 4096, c->stream) != cudaSuccess ||
            cudaMemsetAsync(c->head_red, 0, CU_HEAD_RED_BYTES, c->stream) != cudaSuccess ||
            cudaStreamSynchronize(c->stream) != cudaSuccess)
            goto fail;
        rc = -ENOMEM;
    }
    {
        const char *e = getenv("LLORCH_CUDA_NO_GRAPH");
        c->no_graph = e && !strcmp(e, "1");
        e = getenv("LLORCH_CUDA_PDL");
        c->pdl = e ? (!strcmp(e, "0") ? 0 : !strcmp(e, "2") ? 2 : 1) : 1;
        e = getenv("LLORCH_CUDA_ACTCACHE");
        c->aq_off = e && !strcmp(e, "0");
        /* LLORCH_NO_FUSED=1 (read by the forward pass for the fused ops)
         * also restores the single-block rmsnorm here: one switch gives the
         * decode path as it was before the fused ops (A/B in one run) */
        e = getenv("LLORCH_NO_FUSED");
        const int no_fused = e && !strcmp(e, "1");
        e = getenv("LLORCH_CUDA_NORM_SPLIT");
        c->norm_split = !no_fused && !(e && !strcmp(e, "0"));
        e = getenv("LLORCH_CUDA_NORM_Q"); /* opt-in: measured slower (docs/PERF.md) */
        c->norm_q = !no_fused && e && !strcmp(e, "1");
        e = getenv("LLORCH_CUDA_ATTN_FUSED");
        c->attn_unfused = e && !strcmp(e, "0");
        e = getenv("LLORCH_CUDA_HEAD");
        c->head_on = !(e && !strcmp(e, "0"));
        e = getenv("LLORCH_CUDA_HEAD_AMAX");
        c->head_amax = !(e && !strcmp(e, "0"));
        e = getenv("LLORCH_CUDA_ARGMAX");
        c->samp_fast = !(e && !strcmp(e, "0"));
        e = getenv("LLORCH_CUDA_PROFILE");
        if (e && !strcmp(e, "1")) {
            c->prof = (cu_prof *)calloc(1, sizeof *c->prof);
            if (c->prof)
                for (int i = 0; i < 2 * PROF_N; i++) cudaEventCreate(&c->prof->ev[i]);
        }
    }
    rc = -ENOMEM;
    if (cu_stamps_init(c)) goto fail;
    cu_persist_init(c);
    out->ops = &g_cuda_ops;
    out->ctx = c;
    return 0;
fail:
    if (err && errlen) snprintf(err, errlen, "CUDA backend init on device %d failed (%s)", device,
                                rc == -ENOMEM ? "out of device memory" : cudaGetErrorString(cudaGetLastError()));
    b_destroy(c);
    return rc;
}

/* A strong symbol for programs that link this static library without
 * whole-archive (tests): referencing it pulls this object in, so the weak
 * eng_backend_cuda_new reference of backend.h resolves. */
extern "C" const int llorch_cuda_backend_linked = 1;
