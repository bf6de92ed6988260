/* fused.cu — the optional fused mat-vec ops of backend.h for one activation
 * row (decode): each is ONE dot launch (after the shared activation
 * quantization of mmv.cu, often a cache hit) with its epilogue inside:
 *   matmul_n       up to 3 matrices on the same x, one grid over all their
 *                  rows, per-matrix bias added to the dot  (q/k/v + biases)
 *   matmul_add     y[o] += dot                             (wo / ffn_down + residual)
 *   matmul_swiglu  out[o] = silu(dot(wg[o])) * dot(wu[o])  (gate/up + SwiGLU)
 * The dots are the integers of mmv.cu (so of the CPU reference); only the
 * fp32 summation order differs from the composition of primitives.
 *
 * Two bodies:
 *  - generic (every block format): a 128-thread block per output row,
 *    threads striding over the row's subs (mmv.cu's v2);
 *  - Q4_0 (K % 256 == 0, 16-byte aligned rows, e.g. every Llama-2 shape):
 *    mmv.cu's v3 pair decode, 64 threads per row (a staged variant that
 *    copies rows to shared memory with coalesced 16-byte loads is opt-in).
 * Shapes or types not covered (rows != 1, float weights, a gate/up pair of
 * different types) return -1 and backend.cu composes the primitives. */
#include <stdlib.h>
#include <string.h>

#include "quants.cuh"

enum { FM_STORE = 0, FM_ADD = 1, FM_SWIGLU = 2 };

/* up to 3 matrices sharing x; global row g of the launch is row g - start[j]
 * of matrix j for start[j] <= g < start[j+1]. FM_SWIGLU: w[0] gate, w[1] up,
 * out y[0]; start[1] = ne1 (the grid covers the gate rows). */
struct fm_set {
    const uint8_t *w[3];
    size_t nb1[3];
    int ne1[3];
    int start[4];
    float *y[3];
    const float *b[3];
    int n;
};

__device__ __forceinline__ int fm_which(const fm_set &S, int g) {
    int j = 0;
    while (j + 1 < S.n && g >= S.start[j + 1]) j++;
    return j;
}

__device__ __forceinline__ float fm_silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

/* the epilogue of row `row` of matrix j: v (and u for SwiGLU) are the full dots */
template <int MODE>
__device__ __forceinline__ void fm_store(const fm_set &S, int j, int row, float v, float u) {
    if (MODE == FM_SWIGLU) S.y[0][row] = fm_silu_mul(v, u);
    else if (MODE == FM_ADD) S.y[0][row] += v;
    else S.y[j][row] = S.b[j] ? v + S.b[j][row] : v;
}

/* ---- generic body: 128 threads per row ------------------------------------------------ */
template <int T>
__device__ __forceinline__ float fm_dot_part(const uint8_t *wr, int nblk, const int8_t *aq, const float *ad,
                                             const float *as, int tid) {
    typedef qfmt<T> F;
    float acc = 0.0f;
    const int units = nblk * F::NSUB;
#pragma unroll 2
    for (int u = tid; u < units; u += 128) {
        const int blk = u / F::NSUB, s = u % F::NSUB;
        const int g = blk * (F::QK / 32);
        acc += F::dot(wr + (size_t)blk * F::BYTES, s, aq + (int64_t)blk * F::QK, ad + g, as + g);
    }
    return acc;
}

/* sum over the 128 threads; valid in thread 0 */
__device__ __forceinline__ float fm_block_sum(float v, float *red) {
    v = warp_sum(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) red[warp] = v;
    __syncthreads();
    return red[0] + red[1] + red[2] + red[3];
}

template <int T, int MODE>
__global__ void __launch_bounds__(128)
k_fm_generic(fm_set S, int nblk, const int8_t *aq, const float *ad, const float *as) {
    cu_pdl_begin();
    const int g = blockIdx.x, tid = threadIdx.x;
    const int j = MODE == FM_STORE ? fm_which(S, g) : 0;
    const int row = g - S.start[j];
    __shared__ float red[2][4];
    const float v = fm_block_sum(fm_dot_part<T>(S.w[j] + (size_t)row * S.nb1[j], nblk, aq, ad, as, tid), red[0]);
    float u = 0.0f;
    if (MODE == FM_SWIGLU)
        u = fm_block_sum(fm_dot_part<T>(S.w[1] + (size_t)row * S.nb1[1], nblk, aq, ad, as, tid), red[1]);
    if (tid == 0) fm_store<MODE>(S, j, row, v, u);
}

/* ---- Q4_0 bodies (K % 256 == 0, 16-byte aligned rows) ------------------------------------
 * Both decode a PAIR of 18-byte blocks (36 bytes, 4-byte aligned) as mmv.cu's
 * v3 does: nine 32-bit words, block A's quants realigned with byte permutes.
 *  - "staged" (opt-in): one warp per row, 4 rows per block (1 when the rows
 *    do not fit 48 KB of shared memory); the warp first copies its row(s)
 *    into shared memory with coalesced 16-byte loads (up to 8 in flight per
 *    lane), then decodes pairs from there (word stride 9 per lane: no bank
 *    conflicts). Every byte of every 128-byte line is used by the instruction
 *    that fetches it, so nothing depends on L1 reuse.
 *  - "pair" (default): 64 threads per row, pairs straight from global
 *    memory (v3), the quickest per row in the model (see fm_launch).
 * A first "oct" body (16 threads per row, 144 bytes per thread as nine
 * 16-byte loads, lanes 144 bytes apart) was slower than v3 (4096x11008: 25.0
 * vs 14.5 us, docs/PERF.md): each load instruction touched 144 sectors for
 * 512 bytes and relied on L1 to serve the rest, which many warps evict. */
__device__ __forceinline__ float fm_q4_0_pair(const uint32_t *pw, int blk, const int8_t *aq, const float *ad) {
    uint32_t q[9];
#pragma unroll
    for (int i = 0; i < 9; i++) q[i] = pw[i];
    const float dA = h2f((uint16_t)(q[0] & 0xFFFFu)), dB = h2f((uint16_t)(q[4] >> 16));
    const int4 *xp = (const int4 *)(aq + 32 * (int64_t)blk);
    const int4 x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];
    const int xa_lo[4] = {x0.x, x0.y, x0.z, x0.w}, xa_hi[4] = {x1.x, x1.y, x1.z, x1.w};
    const int xb_lo[4] = {x2.x, x2.y, x2.z, x2.w}, xb_hi[4] = {x3.x, x3.y, x3.z, x3.w};
    int sa = 0, sb = 0, ua = 0, ub = 0;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const int qa = (int)__byte_perm(q[k], q[k + 1], 0x5432), qb = (int)q[5 + k];
        sa = dp4a(qa & 0x0F0F0F0F, xa_lo[k], sa);
        sa = dp4a((qa >> 4) & 0x0F0F0F0F, xa_hi[k], sa);
        sb = dp4a(qb & 0x0F0F0F0F, xb_lo[k], sb);
        sb = dp4a((qb >> 4) & 0x0F0F0F0F, xb_hi[k], sb);
        ua = dp4a(ONES4, xa_lo[k], dp4a(ONES4, xa_hi[k], ua));
        ub = dp4a(ONES4, xb_lo[k], dp4a(ONES4, xb_hi[k], ub));
    }
    return (float)(sa - 8 * ua) * (dA * ad[blk]) + (float)(sb - 8 * ub) * (dB * ad[blk + 1]);
}

/* copies n16 16-byte words src → dst (shared), lane-strided, 8 loads in flight */
__device__ __forceinline__ void fm_stage(uint4 *dst, const uint4 *src, int n16, int lane) {
    for (int i0 = 0; i0 < n16; i0 += 32 * 8) {
        uint4 t[8];
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int i = i0 + lane + 32 * k;
            if (i < n16) t[k] = src[i];
        }
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int i = i0 + lane + 32 * k;
            if (i < n16) dst[i] = t[k];
        }
    }
}

/* WPB warps (rows) per block; dynamic shared memory WPB * NM * n16 * 16 bytes,
 * NM = 2 for SwiGLU (gate and up rows), else 1 */
template <int MODE, int WPB>
__global__ void __launch_bounds__(WPB * 32)
k_fm_q4_0_staged(fm_set S, int npair, int total, const int8_t *aq, const float *ad) {
    extern __shared__ uint4 fm_sm[];
    cu_pdl_begin();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = blockIdx.x * WPB + warp;
    if (g >= total) return; /* warp-uniform; no block barrier below */
    const int NM = MODE == FM_SWIGLU ? 2 : 1;
    const int n16 = npair * 9 / 4; /* npair % 4 == 0 */
    const int j = MODE == FM_STORE ? fm_which(S, g) : 0;
    const int row = g - S.start[j];
    uint4 *my = fm_sm + (size_t)warp * NM * n16;
    fm_stage(my, (const uint4 *)(S.w[j] + (size_t)row * S.nb1[j]), n16, lane);
    if (MODE == FM_SWIGLU) fm_stage(my + n16, (const uint4 *)(S.w[1] + (size_t)row * S.nb1[1]), n16, lane);
    __syncwarp();
    const uint32_t *w32 = (const uint32_t *)my;
    float v = 0.0f, u = 0.0f;
    for (int p = lane; p < npair; p += 32) {
        v += fm_q4_0_pair(w32 + 9 * p, 2 * p, aq, ad);
        if (MODE == FM_SWIGLU) u += fm_q4_0_pair(w32 + 9 * (npair + p), 2 * p, aq, ad);
    }
    v = warp_sum(v);
    if (MODE == FM_SWIGLU) u = warp_sum(u);
    if (lane == 0) fm_store<MODE>(S, j, row, v, u);
}

/* one warp per row, 4 rows per 128-thread block, pairs from global memory
 * (mmv.cu's v3w, which as a plain mat-vec beat v3 for K <= 4096 on H100).
 * Opt-in (LLORCH_CUDA_FUSED_Q40=warp): written after the session's last
 * device run, so NOT YET RUN ON A GPU; run test_cuda_ops with it first. */
template <int MODE>
__global__ void __launch_bounds__(128)
k_fm_q4_0_warp(fm_set S, int npair, int total, const int8_t *aq, const float *ad) {
    cu_pdl_begin();
    const int lane = threadIdx.x & 31;
    const int g = blockIdx.x * 4 + (threadIdx.x >> 5);
    if (g >= total) return; /* warp-uniform; no block barrier below */
    const int j = MODE == FM_STORE ? fm_which(S, g) : 0;
    const int row = g - S.start[j];
    const uint32_t *wr = (const uint32_t *)(S.w[j] + (size_t)row * S.nb1[j]);
    const uint32_t *ur = (const uint32_t *)(S.w[1] + (size_t)row * S.nb1[1]);
    float v = 0.0f, u = 0.0f;
#pragma unroll 2
    for (int p = lane; p < npair; p += 32) {
        v += fm_q4_0_pair(wr + 9 * p, 2 * p, aq, ad);
        if (MODE == FM_SWIGLU) u += fm_q4_0_pair(ur + 9 * p, 2 * p, aq, ad);
    }
    v = warp_sum(v);
    if (MODE == FM_SWIGLU) u = warp_sum(u);
    if (lane == 0) fm_store<MODE>(S, j, row, v, u);
}

/* 64 threads per row, pairs from global memory (mmv.cu's v3 layout) */
template <int MODE>
__global__ void __launch_bounds__(64)
k_fm_q4_0_pair(fm_set S, int npair, const int8_t *aq, const float *ad) {
    cu_pdl_begin();
    const int g = blockIdx.x, tid = threadIdx.x;
    const int j = MODE == FM_STORE ? fm_which(S, g) : 0;
    const int row = g - S.start[j];
    const uint32_t *wr = (const uint32_t *)(S.w[j] + (size_t)row * S.nb1[j]);
    const uint32_t *ur = (const uint32_t *)(S.w[1] + (size_t)row * S.nb1[1]);
    float v = 0.0f, u = 0.0f;
    for (int p = tid; p < npair; p += 64) {
        v += fm_q4_0_pair(wr + 9 * p, 2 * p, aq, ad);
        if (MODE == FM_SWIGLU) u += fm_q4_0_pair(ur + 9 * p, 2 * p, aq, ad);
    }
    __shared__ float red[2][2];
    v = warp_sum(v);
    if (MODE == FM_SWIGLU) u = warp_sum(u);
    if ((tid & 31) == 0) {
        red[0][tid >> 5] = v;
        red[1][tid >> 5] = u;
    }
    __syncthreads();
    if (tid == 0) fm_store<MODE>(S, j, row, red[0][0] + red[0][1], red[1][0] + red[1][1]);
}

/* ---- host side -------------------------------------------------------------------------- */
static int fm_q4_0_pair_ok(const eng_w *w) {
    return w->type == QT_Q4_0 && w->ne0 % 256 == 0 && ((uintptr_t)w->data & 15) == 0 && (w->nb1 & 15) == 0;
}

/* 1 when the fused path covers w (a quantized type with a dot, one row) */
static int fm_covers(cu_ctx *c, const eng_w *w, int rows) {
    if (rows != 1 || w->ne0 > CU_ACT_MAX_K || w->ne0 % 32 || w->ne1 <= 0 || w->ne2 != 1) return 0;
    (void)c;
    switch (w->type) {
    case QT_Q4_0: case QT_Q4_1: case QT_Q5_0: case QT_Q5_1: case QT_Q8_0: case QT_MXFP4:
    case QT_Q2_K: case QT_Q3_K: case QT_Q4_K: case QT_Q5_K: case QT_Q6_K: return 1;
    default: return 0;
    }
}

/* LLORCH_CUDA_FUSED_Q40 = pair (default) | staged | auto | generic | warp (untested): the Q4_0 body (A/B) */
static int g_q40 = -1;


/* one launch over the set's S.start[S.n] rows, all of type `type`, with x
 * quantized; pair_ok: every matrix of the set passes fm_q4_0_pair_ok */
template <int MODE>
static void fm_launch(cu_ctx *c, int type, int pair_ok, const fm_set &S, int K) {
    const int total = S.start[S.n];
    if (g_q40 < 0) {
        const char *e = getenv("LLORCH_CUDA_FUSED_Q40");
        g_q40 = !e                      ? 1
                : !strcmp(e, "auto")    ? 0
                : !strcmp(e, "generic") ? 2
                : !strcmp(e, "staged")  ? 3
                : !strcmp(e, "warp")    ? 4
                                        : 1;
    }
    if (type == QT_Q4_0 && pair_ok && g_q40 != 2) {
        const int npair = K / 64;
        const size_t row_smem = (size_t)(MODE == FM_SWIGLU ? 2 : 1) * (size_t)npair * 36;
        /* pair (default): the pair body everywhere. auto: the staged body
         * where the kernel bench favours it (SwiGLU, or >= 8192 rows, with
         * rows of <= 4096 weights: 3 x 4096x4096 13.1 us, 2 x 4096x11008
         * 21.1 us, back-to-back graph replays) and pair elsewhere (4096x4096
         * 7.0 vs 8.0 us, 11008x4096 13.3 vs 17.3 us). In the model the pair
         * body everywhere wins (Llama-2-7B tg128 387 vs 366 for auto, 357 for
         * staged everywhere; same H100 run): between different kernels the
         * staged body's load-then-compute warps are not overlapped. */
        if (g_q40 == 4 && K <= 4096) {
            cu_launch(c, cu_div_up(total, 4), 128, 0, k_fm_q4_0_warp<MODE>, S, npair, total, c->act_q, c->act_d);
            return;
        }
        const int staged = g_q40 == 3 || (g_q40 == 0 && K <= 4096 && (MODE == FM_SWIGLU || total >= 8192));
        if (staged && 4 * row_smem <= 48 * 1024) {
            cu_launch(c, cu_div_up(total, 4), 128, 4 * row_smem, k_fm_q4_0_staged<MODE, 4>, S, npair, total, c->act_q,
                      c->act_d);
            return;
        }
        if (staged && row_smem <= 48 * 1024) {
            cu_launch(c, (unsigned)total, 32, row_smem, k_fm_q4_0_staged<MODE, 1>, S, npair, total, c->act_q,
                      c->act_d);
            return;
        }
        cu_launch(c, (unsigned)total, 64, 0, k_fm_q4_0_pair<MODE>, S, npair, c->act_q, c->act_d);
        return;
    }
    const unsigned grid = (unsigned)total;
    switch (type) {
#define G(TT) case TT: cu_launch(c, grid, 128, 0, k_fm_generic<TT, MODE>, S, (int)(K / qfmt<TT>::QK), c->act_q, c->act_d, c->act_s); break;
    G(QT_Q4_0) G(QT_Q4_1) G(QT_Q5_0) G(QT_Q5_1) G(QT_Q8_0) G(QT_MXFP4)
    G(QT_Q2_K) G(QT_Q3_K) G(QT_Q4_K) G(QT_Q5_K) G(QT_Q6_K)
#undef G
    default: break; /* fm_covers excluded it */
    }
}

int cu_fused_matmul_n(cu_ctx *c, int n, const eng_w *const *w, const float *const *b, const float *x,
                      float *const *y, int rows) {
    if (n < 1 || n > 3) return -1;
    for (int j = 0; j < n; j++)
        if (!fm_covers(c, w[j], rows) || w[j]->ne0 != w[0]->ne0) return -1;
    const int K = (int)w[0]->ne0;
    const float *cx = c->aq_x;
    c->aq_x = NULL;
    /* one launch per distinct type (Qwen: q/k Q5_0 + v Q8_0 = 2 launches, one quantization) */
    int done[3] = {0, 0, 0}, vq = -1;
    for (int j = 0; j < n; j++) {
        if (done[j]) continue;
        fm_set S = {};
        int pair_all = 1;
        for (int i = j; i < n; i++) {
            if (done[i] || w[i]->type != w[j]->type) continue;
            if (!fm_q4_0_pair_ok(w[i])) pair_all = 0;
            const int k = S.n++;
            S.w[k] = (const uint8_t *)w[i]->data;
            S.nb1[k] = w[i]->nb1;
            S.ne1[k] = (int)w[i]->ne1;
            S.start[k + 1] = S.start[k] + (int)w[i]->ne1;
            S.y[k] = y[i];
            S.b[k] = b[i];
            done[i] = 1;
        }
        vq = cu_act_quant(c, cx, x, rows, K, cu_vdt_of(w[j]->type));
        if (vq < 0) return 0;
        cx = x; /* quantized now: the next group hits when its vdt matches */
        c->aq_x = x;
        c->aq_rows = rows;
        c->aq_K = K;
        c->aq_vdt = vq;
        fm_launch<FM_STORE>(c, w[j]->type, pair_all, S, K);
        c->aq_x = NULL;
        if (LAUNCH_CHECK(c, "fused_matmul_n")) return 0;
    }
    /* backend.h forbids outputs overlapping x, but mmv.cu routes plain
     * matmuls here too: keep the cache only if no output overlaps x */
    const uintptr_t xb = (uintptr_t)x, xe = xb + (size_t)rows * (size_t)K * sizeof(float);
    int keep = vq >= 0;
    for (int j = 0; j < n; j++) {
        const uintptr_t yb = (uintptr_t)y[j], ye = yb + (size_t)rows * (size_t)w[j]->ne1 * sizeof(float);
        if (!(ye <= xb || yb >= xe)) keep = 0;
    }
    if (keep) cu_act_keep(c, x, rows, K, vq, y[0], 0);
    return 0;
}

int cu_fused_matmul_add(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
    if (!fm_covers(c, w, rows)) return -1;
    const int K = (int)w->ne0;
    const float *cx = c->aq_x;
    c->aq_x = NULL;
    const int vq = cu_act_quant(c, cx, x, rows, K, cu_vdt_of(w->type));
    if (vq < 0) return 0;
    fm_set S = {};
    S.n = 1;
    S.w[0] = (const uint8_t *)w->data;
    S.nb1[0] = w->nb1;
    S.ne1[0] = (int)w->ne1;
    S.start[1] = (int)w->ne1;
    S.y[0] = y;
    fm_launch<FM_ADD>(c, w->type, fm_q4_0_pair_ok(w), S, K);
    if (LAUNCH_CHECK(c, "fused_matmul_add")) return 0;
    cu_act_keep(c, x, rows, K, vq, y, (int64_t)rows * w->ne1);
    return 0;
}

int cu_fused_matmul_swiglu(cu_ctx *c, const eng_w *wg, const eng_w *wu, const float *x, float *out, int rows) {
    if (!fm_covers(c, wg, rows) || wu->type != wg->type || wu->ne0 != wg->ne0 || wu->ne1 != wg->ne1 ||
        wu->ne2 != 1)
        return -1;
    const int K = (int)wg->ne0;
    const float *cx = c->aq_x;
    c->aq_x = NULL;
    const int vq = cu_act_quant(c, cx, x, rows, K, cu_vdt_of(wg->type));
    if (vq < 0) return 0;
    fm_set S = {};
    S.n = 1;
    S.w[0] = (const uint8_t *)wg->data;
    S.w[1] = (const uint8_t *)wu->data;
    S.nb1[0] = wg->nb1;
    S.nb1[1] = wu->nb1;
    S.ne1[0] = S.ne1[1] = (int)wg->ne1;
    S.start[1] = (int)wg->ne1;
    S.y[0] = out;
    fm_launch<FM_SWIGLU>(c, wg->type, fm_q4_0_pair_ok(wg) && fm_q4_0_pair_ok(wu), S, K);
    if (LAUNCH_CHECK(c, "fused_matmul_swiglu")) return 0;
    cu_act_keep(c, x, rows, K, vq, out, (int64_t)rows * wg->ne1);
    return 0;
}
