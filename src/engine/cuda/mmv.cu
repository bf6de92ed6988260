/* mmv.cu — the decode mat-vec: y[r][o] = sum_i w[o][i] * x[r][i] for a few
 * activation rows (r < 8), weights dequantized in registers.
 *
 * Quantized weights follow the CPU reference exactly (quant.h): the
 * activation rows are first quantized once to the weight's vec_dot_type
 * (Q8_0, Q8_1 or Q8_K, with the reference's rounding: __fdiv_rn/__frcp_rn so
 * fast-math cannot change a single q; Q8_0/Q8_1 as cpu_matmul.c quantizes)
 * into the context's scratch, then every
 * sub-block dot is an integer dp4a sum scaled in fp32 (quants.cuh). So the
 * integer parts equal the CPU's and only the fp32 summation order differs.
 * F32/BF16 weights: fp32 x; F16 weights: x rounded to fp16 (the CPU's F16
 * vec_dot type), fp32 accumulation.
 *
 * Layout: one block (4 warps) per output row; threads stride over the row's
 * subs (8 weights each), so the block reads a contiguous run of blocks; all
 * NR activation rows are applied to each weight load (weights are read
 * once per call). v1 (one warp per row) stays selectable for comparison:
 * docs/PERF.md has both timings. */
#include <stdlib.h>
#include <string.h>

#include "actq.cuh"
#include "quants.cuh"

#define MMV_WARPS 4

/* ---- activation quantization ------------------------------------------------------ */
/* Q8_0 / Q8_1 of one 32-group, one warp (lane = element): common.cuh's
 * cu_q8_group_v, the CPU reference's activation rounding. */
__device__ __forceinline__ void q8_0_group(const float *xg, int lane, int8_t *q, float *d, float *s) {
    cu_q8_group_v(xg[lane], lane, q, d, s); /* common.cuh: also used by the fused rmsnorm */
}

/* all activation rows [nr][K] → q [nr][K], d/s [nr][K/32]; warps stride over groups */
template <int VDT>
__device__ __forceinline__ void quant_rows(const float *x, int K, int nr, int warp, int nwarps, int lane, int8_t *q,
                                           float *d, float *s) {
    const int K32 = K / 32;
    if (VDT == VDT_Q8_K) {
        const int nb = K / 256;
        for (int g = warp; g < nr * nb; g += nwarps) {
            const int r = g / nb, b = g % nb;
            q8_K_group(x + (int64_t)r * K + 256 * b, lane, q + (int64_t)r * K + 256 * b, d + (int64_t)r * K32 + 8 * b);
        }
    } else {
        for (int g = warp; g < nr * K32; g += nwarps) {
            const int r = g / K32, b = g % K32;
            q8_0_group(x + (int64_t)r * K + 32 * b, lane, q + (int64_t)r * K + 32 * b, d + (int64_t)r * K32 + b,
                       VDT == VDT_Q8_1 ? s + (int64_t)r * K32 + b : NULL);
        }
    }
}

/* standalone activation quantization (large matrices): 8 warps per block.
 * early (LLORCH_CUDA_QUANT_EARLY=1, opt-in): let the dependent kernel (the
 * mat-vec) launch BEFORE waiting for our own prerequisite, so a mat-vec that
 * requests its weights before its PDL wait (fused.cu's stream body) starts
 * them while the producer of x (rmsnorm, attention, SwiGLU) still runs.
 * Safe: the mat-vec's griddepcontrol.wait still waits for this grid to
 * complete, which happens only after this grid's own wait; and every block
 * of this grid is resident before the dependent can be placed. */
template <int VDT>
__global__ void k_quant_act(const float *x, int K, int rows, int8_t *q, float *d, float *s, int early) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (early) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
    cu_pdl_begin();
    const int nwarps_total = gridDim.x * (blockDim.x >> 5);
    const int warp = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    quant_rows<VDT>(x, K, rows, warp, nwarps_total, threadIdx.x & 31, q, d, s);
}

/* ---- dot kernels ----------------------------------------------------------------------- */
/* v2 (default): one block of MMV_WARPS warps per output row; the 128 threads
 * stride over the row's subs (a 4096-wide Q4_0 row is 512 subs: 4 per
 * thread), then a shared-memory reduction. Many short-lived blocks (one per
 * row) keep enough loads in flight and leave no partial last wave. */
template <int T, int NR>
__global__ void __launch_bounds__(MMV_WARPS * 32)
k_mmv_q(const uint8_t *w, size_t nb1, int nblk, int ne1, const int8_t *aq, const float *ad, const float *as, int K,
        float *y, int nr) {
    typedef qfmt<T> F;
    cu_pdl_begin();
    const int row = blockIdx.x;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const uint8_t *wr = w + (size_t)row * nb1;
    const int K32 = K / 32;
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = 0.0f;
    const int units = nblk * F::NSUB;
#pragma unroll 2
    for (int u = tid; u < units; u += MMV_WARPS * 32) {
        const int blk = u / F::NSUB, s = u % F::NSUB;
        const uint8_t *b = wr + (size_t)blk * F::BYTES;
        const int g = blk * (F::QK / 32); /* first 32-group of the block */
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (r < nr)
                acc[r] += F::dot(b, s, aq + (int64_t)r * K + (int64_t)blk * F::QK, ad + (int64_t)r * K32 + g,
                                 as + (int64_t)r * K32 + g);
        }
    }
    __shared__ float red[MMV_WARPS][NR];
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const float v = warp_sum(acc[r]);
        if (lane == 0) red[warp][r] = v;
    }
    __syncthreads();
    if (tid < NR && tid < nr) {
        float v = 0.0f;
#pragma unroll
        for (int wi = 0; wi < MMV_WARPS; wi++) v += red[wi][tid];
        y[(int64_t)tid * ne1 + row] = v;
    }
}

/* v1 (LLORCH_CUDA_MMV=1): one warp per output row, 4 rows per block */
template <int T, int NR>
__global__ void __launch_bounds__(MMV_WARPS * 32)
k_mmv_q1(const uint8_t *w, size_t nb1, int nblk, int ne1, const int8_t *aq, const float *ad, const float *as, int K,
         float *y, int nr) {
    typedef qfmt<T> F;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row = blockIdx.x * MMV_WARPS + warp;
    cu_pdl_begin();
    if (row >= ne1) return;
    const uint8_t *wr = w + (size_t)row * nb1;
    const int K32 = K / 32;
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = 0.0f;
    const int units = nblk * F::NSUB;
#pragma unroll 4
    for (int u = lane; u < units; u += 32) {
        const int blk = u / F::NSUB, s = u % F::NSUB;
        const uint8_t *b = wr + (size_t)blk * F::BYTES;
        const int g = blk * (F::QK / 32);
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (r < nr)
                acc[r] += F::dot(b, s, aq + (int64_t)r * K + (int64_t)blk * F::QK, ad + (int64_t)r * K32 + g,
                                 as + (int64_t)r * K32 + g);
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const float v = warp_sum(acc[r]);
        if (lane == 0 && r < nr) y[(int64_t)r * ne1 + row] = v;
    }
}

template <int T, int NR>
__global__ void __launch_bounds__(MMV_WARPS * 32)
k_mmv_f(const uint8_t *w, size_t nb1, int ne0, int ne1, const float *x, float *y, int nr) {
    cu_pdl_begin();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row = blockIdx.x * MMV_WARPS + warp;
    if (row >= ne1) return;
    const uint8_t *wr = w + (size_t)row * nb1;
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = 0.0f;
#pragma unroll 4
    for (int i = lane; i < ne0; i += 32) {
        float wv;
        if (T == QT_F32) wv = ((const float *)wr)[i];
        else if (T == QT_F16) wv = h2f(((const uint16_t *)wr)[i]);
        else wv = bf2f(((const uint16_t *)wr)[i]);
#pragma unroll
        for (int r = 0; r < NR; r++) {
            if (r < nr) {
                float xv = x[(int64_t)r * ne0 + i];
                if (T == QT_F16) xv = __half2float(__float2half_rn(xv));
                acc[r] += wv * xv;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const float v = warp_sum(acc[r]);
        if (lane == 0 && r < nr) y[(int64_t)r * ne1 + row] = v;
    }
}


/* v3 for Q4_0 (the Llama-2 decode format): a thread takes a PAIR of 18-byte
 * blocks, 36 bytes that start 4-byte aligned, as 9 independent 32-bit loads
 * (v2 issues 6 loads of 2-4 bytes per 8 weights), and the 64 activations as
 * four 16-byte loads; block A's quants are realigned with byte permutes.
 * 64 threads per row. Same integers and the same float association as the
 * CPU reference: sumi * (d_w * d_x). Needs K % 64 == 0 and a 4-aligned row. */
/* one pair p of row wr into acc[NR] (v3 body, shared by both layouts) */
template <int NR>
__device__ __forceinline__ void q4_0_pair_acc(const uint32_t *wr, int p, const int8_t *aq, const float *ad, int K,
                                              int nr, float *acc) {
    const int K32 = K / 32;
    const uint32_t *pw = wr + 9 * (size_t)p;
    uint32_t v[9];
#pragma unroll
    for (int i = 0; i < 9; i++) v[i] = pw[i];
    const float dA = h2f((uint16_t)(v[0] & 0xFFFFu)), dB = h2f((uint16_t)(v[4] >> 16));
    int qa[4], qb[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        qa[k] = (int)__byte_perm(v[k], v[k + 1], 0x5432);
        qb[k] = (int)v[5 + k];
    }
#pragma unroll
    for (int r = 0; r < NR; r++) {
        if (r >= nr) break;
        const int4 *xp = (const int4 *)(aq + (int64_t)r * K + 64 * (int64_t)p);
        const int4 x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];
        const int xa_lo[4] = {x0.x, x0.y, x0.z, x0.w}, xa_hi[4] = {x1.x, x1.y, x1.z, x1.w};
        const int xb_lo[4] = {x2.x, x2.y, x2.z, x2.w}, xb_hi[4] = {x3.x, x3.y, x3.z, x3.w};
        int sa = 0, sb = 0, ua = 0, ub = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            sa = dp4a(qa[k] & 0x0F0F0F0F, xa_lo[k], sa);
            sa = dp4a((qa[k] >> 4) & 0x0F0F0F0F, xa_hi[k], sa);
            sb = dp4a(qb[k] & 0x0F0F0F0F, xb_lo[k], sb);
            sb = dp4a((qb[k] >> 4) & 0x0F0F0F0F, xb_hi[k], sb);
            ua = dp4a(ONES4, xa_lo[k], dp4a(ONES4, xa_hi[k], ua));
            ub = dp4a(ONES4, xb_lo[k], dp4a(ONES4, xb_hi[k], ub));
        }
        const float *dx = ad + (int64_t)r * K32 + 2 * p;
        acc[r] += (float)(sa - 8 * ua) * (dA * dx[0]) + (float)(sb - 8 * ub) * (dB * dx[1]);
    }
}

template <int NR>
__global__ void __launch_bounds__(64)
k_mmv_q4_0_pair(const uint8_t *w, size_t nb1, int npair, int ne1, const int8_t *aq, const float *ad, int K, float *y,
                int nr) {
    cu_pdl_begin();
    const int row = blockIdx.x, tid = threadIdx.x;
    const uint32_t *wr = (const uint32_t *)(w + (size_t)row * nb1);
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = 0.0f;
    for (int p = tid; p < npair; p += 64) q4_0_pair_acc<NR>(wr, p, aq, ad, K, nr, acc);
    __shared__ float red[2][NR];
    const int lane = tid & 31, warp = tid >> 5;
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const float v = warp_sum(acc[r]);
        if (lane == 0) red[warp][r] = v;
    }
    __syncthreads();
    if (tid < NR && tid < nr) y[(int64_t)tid * ne1 + row] = red[0][tid] + red[1][tid];
}

/* v3w: the same pair body with one WARP per row and 4 rows per 128-thread
 * block (a quarter of v3's blocks; each lane takes npair/32 pairs, e.g. 2 for
 * K = 4096, so twice the loads in flight per thread). Aimed at the
 * 4096x4096 shapes where v3 reaches only ~38% of HBM (4096 blocks of 64
 * threads, one pair per thread). Op-tested and benched on H100 (see
 * launch_q for where it is the default). */
template <int NR>
__global__ void __launch_bounds__(128)
k_mmv_q4_0_pair_w(const uint8_t *w, size_t nb1, int npair, int ne1, const int8_t *aq, const float *ad, int K,
                  float *y, int nr) {
    cu_pdl_begin();
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * 4 + (threadIdx.x >> 5);
    if (row >= ne1) return;
    const uint32_t *wr = (const uint32_t *)(w + (size_t)row * nb1);
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) acc[r] = 0.0f;
#pragma unroll 2
    for (int p = lane; p < npair; p += 32) q4_0_pair_acc<NR>(wr, p, aq, ad, K, nr, acc);
#pragma unroll
    for (int r = 0; r < NR; r++) {
        const float v = warp_sum(acc[r]);
        if (lane == 0 && r < nr) y[(int64_t)r * ne1 + row] = v;
    }
}

/* ---- dispatch ------------------------------------------------------------------------- */
/* LLORCH_CUDA_MMV=1 selects the v1 kernel, =4/=5 the Q4_0 v3w kernel
 * everywhere / for small matrices (see launch_q), =6 one-row Q4_0 through fused.cu, =2 the generic v2 kernel for
 * every format (no Q4_0 pair kernel): comparisons in docs/PERF.md */
static int g_mmv_v1 = -1;
static int g_mmv_mode = 0;

template <int T>
static void launch_q(cu_ctx *c, const eng_w *w, float *y, int rows) {
    const int nblk = (int)(w->ne0 / qfmt<T>::QK), K = (int)w->ne0;
    const uint8_t *wd = (const uint8_t *)w->data;
    /* v1 also for very tall matrices (vocabulary projections): 152k one-row
     * blocks cost more to schedule than they gain (Qwen output 896x151936
     * Q8_0 on H100: v1 77 us, v2 95 us) */
    if (g_mmv_v1 || w->ne1 >= CU_MMV_TALL_ROWS) {
        /* one row of a tall matrix: LLORCH_CUDA_MMV_TALL=1 streams it
         * through shared memory (mmv_tall.cu; measured slower than v1),
         * =2 / =3 keep x in registers (mmv_tall_reg.cu, Q8_0; =3 is the
         * default, =0 keeps v1) */
        if (!g_mmv_v1 && rows == 1 && cu_mmv_tall(c, w, y) == 0) return;
        const unsigned grid = cu_div_up(w->ne1, MMV_WARPS);
#define L1(NR, nr) cu_launch(c, grid, MMV_WARPS * 32, 0, k_mmv_q1<T, NR>, wd, w->nb1, nblk, (int)w->ne1, c->act_q, c->act_d, c->act_s, K, y, nr)
        if (rows == 1) L1(1, 1);
        else if (rows == 2) L1(2, 2);
        else L1(8, rows);
#undef L1
        return;
    }
    if (T == QT_Q4_0 && g_mmv_mode != 2 && K % 64 == 0 && ((uintptr_t)wd & 3) == 0 && (w->nb1 & 3) == 0) {
        const int npair = K / 64;
        /* v3w (warp per row), opt-in: LLORCH_CUDA_MMV=4 for every Q4_0
         * matrix, =5 for K <= 4096 and <= 4096 rows. Op-tested and
         * kernel-benched on H100 (one run, ACTCACHE on): 4096x11008 11.4 vs
         * 14.5 us for v3 (75% of HBM), 4096x32000 26.4 vs 39.7 (94%),
         * 4096x4096 6.6 vs 6.7, but 11008x4096 16.1 vs 11.7. Not yet the
         * default for K <= 4096: no model run had it on (a kernel-bench win
         * can lose in the model, as fused.cu's staged body did), and with the
         * fused ops no Llama-2 decode matmul takes this path. */
        if (g_mmv_mode == 4 || (g_mmv_mode == 5 && w->ne1 <= 4096 && K <= 4096)) {
#define L3W(NR, nr) cu_launch(c, cu_div_up(w->ne1, 4), 128, 0, k_mmv_q4_0_pair_w<NR>, wd, w->nb1, npair, (int)w->ne1, c->act_q, c->act_d, K, y, nr)
            if (rows == 1) L3W(1, 1);
            else if (rows == 2) L3W(2, 2);
            else L3W(8, rows);
#undef L3W
            return;
        }
#define L3(NR, nr) cu_launch(c, (unsigned)w->ne1, 64, 0, k_mmv_q4_0_pair<NR>, wd, w->nb1, npair, (int)w->ne1, c->act_q, c->act_d, K, y, nr)
        if (rows == 1) L3(1, 1);
        else if (rows == 2) L3(2, 2);
        else L3(8, rows);
#undef L3
        return;
    }
    const unsigned grid = (unsigned)w->ne1;
#define L2(NR, nr) cu_launch(c, grid, MMV_WARPS * 32, 0, k_mmv_q<T, NR>, wd, w->nb1, nblk, (int)w->ne1, c->act_q, c->act_d, c->act_s, K, y, nr)
    if (rows == 1) L2(1, 1);
    else if (rows == 2) L2(2, 2);
    else L2(8, rows);
#undef L2
}

template <int T>
static void launch_f(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
    const unsigned grid = cu_div_up(w->ne1, MMV_WARPS);
    const uint8_t *wd = (const uint8_t *)w->data;
    if (rows == 1)
        cu_launch(c, grid, MMV_WARPS * 32, 0, k_mmv_f<T, 1>, wd, w->nb1, (int)w->ne0, (int)w->ne1, x, y, 1);
    else if (rows == 2)
        cu_launch(c, grid, MMV_WARPS * 32, 0, k_mmv_f<T, 2>, wd, w->nb1, (int)w->ne0, (int)w->ne1, x, y, 2);
    else
        cu_launch(c, grid, MMV_WARPS * 32, 0, k_mmv_f<T, 8>, wd, w->nb1, (int)w->ne0, (int)w->ne1, x, y, rows);
}

void cu_mmv(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
    if (rows <= 0 || w->ne1 <= 0) return;
    if (g_mmv_v1 < 0) {
        const char *e = getenv("LLORCH_CUDA_MMV");
        g_mmv_mode = e ? atoi(e) : 0;
        g_mmv_v1 = g_mmv_mode == 1;
    }
    /* LLORCH_CUDA_MMV=6: every one-row Q4_0 through fused.cu's bodies
     * (comparison; with LLORCH_CUDA_FUSED_Q40=staged, 4096x32000 takes 32.7
     * us vs 39.8 for v3 on H100, but the Llama-2 output is Q6_K in the
     * Q4_0 mix, so no model uses that shape) */
    if (rows == 1 && w->type == QT_Q4_0 && g_mmv_mode == 6) {
        const float *nob = NULL;
        if (cu_fused_matmul_n(c, 1, &w, &nob, x, &y, 1) == 0) return;
    }
    const float *cx = c->aq_x; /* the cached quantized input, if any */
    c->aq_x = NULL;            /* set again below only after a clean quantized launch */
    switch (w->type) {
    case QT_F32: launch_f<QT_F32>(c, w, x, y, rows); LAUNCH_CHECK(c, "mmv_f32"); return;
    case QT_F16: launch_f<QT_F16>(c, w, x, y, rows); LAUNCH_CHECK(c, "mmv_f16"); return;
    case QT_BF16: launch_f<QT_BF16>(c, w, x, y, rows); LAUNCH_CHECK(c, "mmv_bf16"); return;
    default: break;
    }
    if (g_mmv_v1 < 0) {
        const char *e = getenv("LLORCH_CUDA_MMV");
        g_mmv_mode = e ? atoi(e) : 0;
        g_mmv_v1 = g_mmv_mode == 1;
    }
    const qt_info_t *qi = qt_info(w->type);
    if (!qi || w->ne0 > CU_ACT_MAX_K || w->ne0 % 32 || rows > CU_MMV_MAX_ROWS) {
        cu_latch(c, cudaErrorNotSupported, "mmv: unsupported type or shape", __FILE__, __LINE__);
        return;
    }
    const int K = (int)w->ne0;
    const int vq = cu_act_quant(c, cx, x, rows, K, cu_vdt_of(w->type));
    if (vq < 0) return;
    /* 2. the integer dot */
    int handled = 1;
#define MV(T) launch_q<T>(c, w, y, rows)
    QFMT_DISPATCH(w->type, MV)
#undef MV
    if (!handled) {
        cu_latch(c, cudaErrorNotSupported, "mmv: unsupported tensor type", __FILE__, __LINE__);
        return;
    }
    if (LAUNCH_CHECK(c, "mmv_q")) return;
    cu_act_keep(c, x, rows, K, vq, y, (int64_t)rows * w->ne1);
}

int cu_vdt_of(int type) {
    const qt_info_t *qi = qt_info(type);
    return qi->vec_dot_type == QT_Q8_K ? VDT_Q8_K : qi->vec_dot_type == QT_Q8_1 ? VDT_Q8_1 : VDT_Q8_0;
}

int cu_act_quant(cu_ctx *c, const float *cx, const float *x, int rows, int K, int vdt) {
    /* 1. the activation rows → vec_dot_type, once (a per-block fused variant
     * was slower: 19.8 vs 7.9 us on 896x4864 Q5_0, docs/PERF.md). With the
     * cache on, a Q8_0 request is quantized as Q8_1 (the same q and d, plus
     * s), so Q8_0 and Q8_1 weights reading one x share it. The quantization
     * is skipped when the scratch already holds this x (c->aq_*: backend.cu
     * clears it on every op that could write device memory). */
    const int vq = (!c->aq_off && vdt == VDT_Q8_0) ? VDT_Q8_1 : vdt;
    const int hit = !c->aq_off && cx == x && c->aq_rows == rows && c->aq_K == K && c->aq_vdt == vq;
    if (!hit) {
        const int64_t groups = (int64_t)rows * (vq == VDT_Q8_K ? K / 256 : K / 32);
        const unsigned nb = cu_div_up(groups, 8);
        static int early = -1;
        if (early < 0) early = getenv("LLORCH_CUDA_QUANT_EARLY") && atoi(getenv("LLORCH_CUDA_QUANT_EARLY")) == 1;
        if (vq == VDT_Q8_K) cu_launch(c, nb, 256, 0, k_quant_act<VDT_Q8_K>, x, K, rows, c->act_q, c->act_d, c->act_s, early);
        else if (vq == VDT_Q8_1) cu_launch(c, nb, 256, 0, k_quant_act<VDT_Q8_1>, x, K, rows, c->act_q, c->act_d, c->act_s, early);
        else cu_launch(c, nb, 256, 0, k_quant_act<VDT_Q8_0>, x, K, rows, c->act_q, c->act_d, c->act_s, early);
        if (LAUNCH_CHECK(c, "mmv_quantize_act")) return -1;
    }
    return vq;
}

void cu_act_keep(cu_ctx *c, const float *x, int rows, int K, int vq, const float *y, int64_t ny) {
    /* keep the cache unless y overlaps x (then x itself changed) */
    const uintptr_t xb = (uintptr_t)x, xe = xb + (size_t)rows * (size_t)K * sizeof(float);
    const uintptr_t yb = (uintptr_t)y, ye = yb + (size_t)ny * sizeof(float);
    if (!c->aq_off && !c->err && (ye <= xb || yb >= xe)) {
        c->aq_x = x;
        c->aq_rows = rows;
        c->aq_K = K;
        c->aq_vdt = vq;
    }
}
