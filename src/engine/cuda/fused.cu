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
 *    mmv.cu's v3 pair decode; for K <= 4096 a warp per row whose weights
 *    are loaded into registers before the PDL wait ("warppf", the default:
 *    Llama-2-7B tg128 424.5 vs 416-418 for "warp" without the early loads
 *    and 390-395 for "pair" everywhere, one H100 run), above that 64
 *    threads per row: for matmul_add ("p1", the Llama down projection) two
 *    rows per block with each thread's first pair loaded before the PDL
 *    wait (down 13.2 -> 12.2 us, tg128 434-436 -> 441.7, one H100 run),
 *    else "pair" (no early loads). Opt-in alternatives
 *    (LLORCH_CUDA_FUSED_Q40): "warp", "pair" everywhere, "staged" (rows
 *    copied to shared memory with coalesced 16-byte loads, then decoded),
 *    "stream" (per-warp cp.async ring of rows, the first rows requested
 *    before the PDL wait); for K > 4096 LLORCH_CUDA_FUSED_Q40_LONG (pair,
 *    pairpf, w6, w5, p2, p1, q1) and for matmul_add at K <= 4096
 *    LLORCH_CUDA_FUSED_Q40_O (p1, w8): see k_fm_q4_0_pf; docs/PERF.md has
 *    every measurement.
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
 *  - "pair": 64 threads per row, pairs straight from global memory (v3);
 *    the default for K > 4096 (down), "warp" below (see fm_launch).
 * A first "oct" body (16 threads per row, 144 bytes per thread as nine
 * 16-byte loads, lanes 144 bytes apart) was slower than v3 (4096x11008: 25.0
 * vs 14.5 us, docs/PERF.md): each load instruction touched 144 sectors for
 * 512 bytes and relied on L1 to serve the rest, which many warps evict. */
/* the pair's nine words already loaded */
__device__ __forceinline__ float fm_q4_0_pair_q(const uint32_t (&q)[9], int blk, const int8_t *aq, const float *ad) {
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

__device__ __forceinline__ void fm_load9(uint32_t (&q)[9], const uint32_t *pw) {
#pragma unroll
    for (int i = 0; i < 9; i++) q[i] = pw[i];
}

__device__ __forceinline__ float fm_q4_0_pair(const uint32_t *pw, int blk, const int8_t *aq, const float *ad) {
    uint32_t q[9];
    fm_load9(q, pw);
    return fm_q4_0_pair_q(q, blk, aq, ad);
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
 * (mmv.cu's v3w). LLORCH_CUDA_FUSED_Q40=warp: in the kernel bench q/k/v 3 x
 * 4096x4096 11.3 us (84% of HBM) vs 16.0 for pair, the model +6%; the
 * default is its "pf" variant below (+2% more in the model). */
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

/* ---- "stream" Q4_0 body: per-warp cp.async ring, weights fetched before the PDL wait ----
 * Each warp owns the rows g0, g0 + W, g0 + 2W, ... of the launch (W = all
 * warps of a grid sized to what fits on the SMs at once) and keeps an NS-deep
 * ring of row buffers in shared memory: the copy of row i + NS is in flight
 * (cp.async.cg, 16 bytes per lane, each warp instruction one contiguous 512
 * bytes: no L1 reuse needed) while row i is decoded from shared memory (the
 * pair body; word stride 9 per lane: no bank conflicts). The first NS rows
 * are requested BEFORE griddepcontrol.wait: the weights are not written by
 * any kernel, so under PDL the HBM ramp-up of this launch overlaps the tail
 * of the previous kernel (the staged body lost in the model because its
 * load-then-compute was exposed between kernels). Shared memory per block
 * WPB * NS * NM * row bytes <= 48 KB (fm_stream_cfg). */
__device__ __forceinline__ void fm_cp16(void *dst_smem, const void *src) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst_smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(src) : "memory");
}
__device__ __forceinline__ void fm_cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void fm_cp_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* requests global row g of the set (and its up row for SwiGLU) into dst: n16 16-byte words per matrix row */
template <int MODE>
__device__ __forceinline__ void fm_fetch_row(const fm_set &S, int g, uint4 *dst, int n16, int lane) {
    const int j = MODE == FM_STORE ? fm_which(S, g) : 0;
    const int row = g - S.start[j];
    const uint4 *src = (const uint4 *)(S.w[j] + (size_t)row * S.nb1[j]);
    for (int i = lane; i < n16; i += 32) fm_cp16(dst + i, src + i);
    if (MODE == FM_SWIGLU) {
        const uint4 *su = (const uint4 *)(S.w[1] + (size_t)row * S.nb1[1]);
        for (int i = lane; i < n16; i += 32) fm_cp16(dst + n16 + i, su + i);
    }
}

/* blockDim.x = 32 * WPB (WPB <= 4); dynamic shared memory WPB * NS * NM * n16 * 16 bytes */
template <int MODE, int NS>
__global__ void __launch_bounds__(128)
k_fm_q4_0_stream(fm_set S, int npair, int total, const int8_t *aq, const float *ad) {
    extern __shared__ uint4 fm_sm[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wpb = blockDim.x >> 5;
    const int NM = MODE == FM_SWIGLU ? 2 : 1;
    const int n16 = npair * 9 / 4; /* npair % 4 == 0 */
    const int rb16 = NM * n16;     /* one ring slot */
    uint4 *ring = fm_sm + (size_t)warp * NS * rb16;
    const int g0 = blockIdx.x * wpb + warp, gs = gridDim.x * wpb;
    /* prologue: weights only, before the dependency wait (one commit group per slot, empty ones too) */
#pragma unroll
    for (int s = 0; s < NS; s++) {
        const int g = g0 + s * gs;
        if (g < total) fm_fetch_row<MODE>(S, g, ring + s * rb16, n16, lane);
        fm_cp_commit();
    }
    cu_pdl_begin(); /* x (act_q/act_d) and, for FM_ADD, y come from earlier kernels */
    int slot = 0;
    for (int g = g0; g < total; g += gs) {
        fm_cp_wait<NS - 1>(); /* this lane's copies of row g have landed */
        __syncwarp();         /* ... and every lane's are visible */
        const uint32_t *w32 = (const uint32_t *)(ring + slot * rb16);
        float v = 0.0f, u = 0.0f;
        for (int p = lane; p < npair; p += 32) {
            v += fm_q4_0_pair(w32 + 9 * p, 2 * p, aq, ad);
            if (MODE == FM_SWIGLU) u += fm_q4_0_pair(w32 + 9 * (npair + p), 2 * p, aq, ad);
        }
        v = warp_sum(v);
        if (MODE == FM_SWIGLU) u = warp_sum(u);
        if (lane == 0) {
            const int j = MODE == FM_STORE ? fm_which(S, g) : 0;
            fm_store<MODE>(S, j, g - S.start[j], v, u);
        }
        __syncwarp(); /* every lane has read the slot before it is refilled */
        const int gn = g + NS * gs;
        if (gn < total) fm_fetch_row<MODE>(S, gn, ring + slot * rb16, n16, lane);
        fm_cp_commit();
        slot = slot + 1 == NS ? 0 : slot + 1;
    }
    fm_cp_wait<0>(); /* nothing may be in flight into shared memory when the block exits */
}

/* ---- "pf" variants: the first PF pairs of each thread loaded BEFORE the PDL wait ----------
 * The weights are written by no kernel, so a launch may read them before
 * griddepcontrol.wait: under PDL the blocks placed while the previous kernel
 * still runs (the activation quantization, in the model) have their weight
 * loads in flight when x becomes readable. (This is the one exception to
 * common.cuh's "cu_pdl_begin() before touching global memory": only
 * never-written weights are read before it.) Registers only, no shared
 * memory for the weights. TPR threads per row (32, 64 or 128), RPB rows per
 * block (blockDim.x = TPR * RPB), MINB the resident blocks per SM asked of
 * the register allocator (1: no bound). Thread t of a row owns pairs t,
 * t + TPR, ...; PF = how many of them are loaded before the wait; longer
 * rows continue from global memory after it. Instances (fm_launch):
 *  - 32 x 2, 4 rows/block (the "warppf" default for K <= 4096, 42-64 registers);
 *  - 64 x 3, 1 row/block ("pairpf" for K > 4096: 56 registers halve the
 *    resident blocks, slower, opt-in);
 *  - 32 x 6, 4 rows/block, <= 64 registers ("w6", K = 11008: every pair of
 *    the row in flight before the wait; 4096 rows = 1024 blocks x 32 warps
 *    fit one wave at 8 blocks per SM) and 32 x 5 ("w5": 12 lanes load a
 *    sixth pair after the wait; fewer registers);
 *  - 64 x 2, 2 rows/block, <= 32 registers ("p2", K = 11008: 2048 threads
 *    per SM, one wave; 44 of 172 pairs after the wait);
 *  - 64 x 1, 2 rows/block, <= 32 registers ("p1", the DEFAULT for
 *    matmul_add at K > 4096: the pair body's layout with each thread's
 *    first pair loaded before the wait; down 13.2 -> 12.2 us, the only
 *    variant that beat pair) and 128 x 1, 1 row/block ("q1");
 *  - 64 x 1, 2 rows/block, <= 32 registers ("p1" for o, K = 4096: each
 *    thread one pair, the row over twice the threads of warppf, 2048 blocks
 *    in one wave) and 32 x 2 at 8 rows per block ("w8": fewer, larger
 *    blocks).
 * Registers (nvcc 13, sm_90, matmul_add): warppf 55, p1 48 unbounded (so
 * bounded to 32), w6/w5 64 with 48/8 bytes spilled, p2 32 with 68 spilled.
 * Kernel bench (H100, docs/PERF.md "Decode: down and o"): down 11008x4096
 * pair 13.2 us, p1 12.2, w5 14.4, q1 14.5, pairpf 14.9, w6 16.3, p2 19.7;
 * o 4096x4096 warppf 6.2, p1 6.2, w8 6.0 (w8 neutral in the model). */
template <int MODE, int TPR, int PF, int RPB, int MINB>
__global__ void __launch_bounds__(TPR * RPB, MINB)
k_fm_q4_0_pf(fm_set S, int npair, int total, const int8_t *aq, const float *ad) {
    static_assert(TPR == 32 || TPR == 64 || TPR == 128, "TPR");
    const int t = threadIdx.x % TPR;
    const int g = blockIdx.x * RPB + threadIdx.x / TPR;
    const bool live = g < total;
    const int j = live && MODE == FM_STORE ? fm_which(S, g) : 0;
    const int row = live ? g - S.start[j] : 0;
    const uint32_t *wr = (const uint32_t *)(S.w[j] + (size_t)row * S.nb1[j]);
    const uint32_t *ur = (const uint32_t *)(S.w[1] + (size_t)row * S.nb1[1]);
    uint32_t q[PF][9], qu[MODE == FM_SWIGLU ? PF : 1][9];
#pragma unroll
    for (int k = 0; k < PF; k++) {
        const int p = t + TPR * k;
        if (live && p < npair) {
            fm_load9(q[k], wr + 9 * p);
            if (MODE == FM_SWIGLU) fm_load9(qu[MODE == FM_SWIGLU ? k : 0], ur + 9 * p);
        }
    }
    cu_pdl_begin(); /* x (act_q/act_d) and, for FM_ADD, y come from earlier kernels */
    float v = 0.0f, u = 0.0f;
#pragma unroll
    for (int k = 0; k < PF; k++) {
        const int p = t + TPR * k;
        if (live && p < npair) {
            v += fm_q4_0_pair_q(q[k], 2 * p, aq, ad);
            if (MODE == FM_SWIGLU) u += fm_q4_0_pair_q(qu[MODE == FM_SWIGLU ? k : 0], 2 * p, aq, ad);
        }
    }
    if (live)
        for (int p = t + TPR * PF; p < npair; p += TPR) {
            v += fm_q4_0_pair(wr + 9 * p, 2 * p, aq, ad);
            if (MODE == FM_SWIGLU) u += fm_q4_0_pair(ur + 9 * p, 2 * p, aq, ad);
        }
    v = warp_sum(v);
    if (MODE == FM_SWIGLU) u = warp_sum(u);
    if (TPR == 32) {
        if (live && t == 0) fm_store<MODE>(S, j, row, v, u);
    } else { /* TPR / 32 warps per row: partial sums through shared memory */
        constexpr int W = TPR / 32;
        __shared__ float red[RPB][W][2];
        const int lane = threadIdx.x & 31, r = threadIdx.x / TPR, w = t >> 5;
        if (lane == 0) {
            red[r][w][0] = v;
            red[r][w][1] = u;
        }
        __syncthreads();
        if (live && t == 0) {
            float sv = 0.0f, su = 0.0f;
#pragma unroll
            for (int i = 0; i < W; i++) {
                sv += red[r][i][0];
                su += red[r][i][1];
            }
            fm_store<MODE>(S, j, row, sv, su);
        }
    }
}

template <int MODE, int TPR, int PF, int RPB, int MINB>
static void fm_pf_launch(cu_ctx *c, const fm_set &S, int npair, int total) {
    cu_launch(c, cu_div_up(total, RPB), TPR * RPB, 0, k_fm_q4_0_pf<MODE, TPR, PF, RPB, MINB>, S, npair, total,
              c->act_q, c->act_d);
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

/* LLORCH_CUDA_FUSED_Q40 = warppf (default) | warp | pair | staged | auto | generic | stream: the
 * Q4_0 body (A/B); warppf and warp apply to K <= 4096, longer rows take the
 * pair body or, with LLORCH_CUDA_FUSED_Q40_LONG=pairpf, its prefetching
 * variant (slower: 13.3 -> 16.3 us on 11008x4096, 56 registers instead of
 * 32 halve the resident blocks) */
static int g_q40 = -1;
/* LLORCH_CUDA_FUSED_Q40_LONG (K > 4096, the warppf/warp/pair settings):
 * 0 pair, 1 pairpf, 2 w6, 3 w5, 4 p2, 5 p1, 6 q1 (all but pairpf for
 * matmul_add and matmul_n; SwiGLU takes pairpf); see k_fm_q4_0_pf. Unset
 * (-1): p1 for matmul_add under warppf (the only mode it was measured in:
 * Llama down), pair otherwise (p1 spills 64 bytes in its matmul_n instance). */
static int g_q40_long = -1;
/* LLORCH_CUDA_FUSED_Q40_O (matmul_add at K <= 4096 under warppf): 0 warppf, 1 p1, 2 w8 */
static int g_q40_o = 0;
/* LLORCH_CUDA_FUSED_BLOCKS=n caps the stream body's grid at n blocks (tests:
 * many rows per warp, so every ring slot is reused); 0 = what fits */
static int g_stream_blocks = -1;
/* LLORCH_CUDA_FUSED_SMEM_KB=n (8..48, default 48): the stream body's shared
 * memory per block. A smaller ring may share an SM with kernels that run
 * under a small shared-memory carveout (an SM changes its L1/shared split
 * only when it drains), at the cost of fewer bytes in flight per warp. */
static int g_stream_smem = 48 * 1024;

/* the stream body's shape for rows of rb bytes (NM rows of npair * 36 each):
 * warps per block and ring depth, <= g_stream_smem bytes per block; the
 * deepest ring of >= 3 slots with the most warps, else 2 slots; 0 when even
 * one warp with 2 slots does not fit (then the pair body runs) */
static int fm_stream_cfg(size_t rb, int *wpb, int *ns) {
    for (int pass = 0; pass < 2; pass++)
        for (int wp = 4; wp >= 1; wp >>= 1) {
            size_t n = (size_t)g_stream_smem / ((size_t)wp * rb);
            if (n > 4) n = 4;
            if (n >= (size_t)(pass == 0 ? 3 : 2)) {
                *wpb = wp;
                *ns = (int)n;
                return 1;
            }
        }
    return 0;
}

template <int MODE, int NS>
static void fm_stream_launch(cu_ctx *c, const fm_set &S, int npair, int total, int wpb, size_t smem) {
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k_fm_q4_0_stream<MODE, NS>, wpb * 32, smem) !=
            cudaSuccess ||
        per_sm < 1)
        per_sm = 1;
    int64_t grid = (int64_t)c->sm_count * per_sm;
    if (grid > cu_div_up(total, wpb)) grid = cu_div_up(total, wpb);
    if (g_stream_blocks > 0 && grid > g_stream_blocks) grid = g_stream_blocks;
    cu_launch(c, (unsigned)grid, wpb * 32, smem, k_fm_q4_0_stream<MODE, NS>, S, npair, total, c->act_q, c->act_d);
}


/* one launch over the set's S.start[S.n] rows, all of type `type`, with x
 * quantized; pair_ok: every matrix of the set passes fm_q4_0_pair_ok */
template <int MODE>
static void fm_launch(cu_ctx *c, int type, int pair_ok, const fm_set &S, int K) {
    const int total = S.start[S.n];
    if (g_q40 < 0) {
        const char *e = getenv("LLORCH_CUDA_FUSED_Q40");
        g_q40 = !e                      ? 6
                : !strcmp(e, "pair")    ? 1
                : !strcmp(e, "warppf")  ? 6
                : !strcmp(e, "auto")    ? 0
                : !strcmp(e, "generic") ? 2
                : !strcmp(e, "staged")  ? 3
                : !strcmp(e, "warp")    ? 4
                : !strcmp(e, "stream")  ? 5
                                        : 6;
        const char *l = getenv("LLORCH_CUDA_FUSED_Q40_LONG");
        g_q40_long = !l                     ? -1
                     : !strcmp(l, "pair")   ? 0
                     : !strcmp(l, "pairpf") ? 1
                     : !strcmp(l, "w6")     ? 2
                     : !strcmp(l, "w5")     ? 3
                     : !strcmp(l, "p2")     ? 4
                     : !strcmp(l, "p1")     ? 5
                     : !strcmp(l, "q1")     ? 6
                                            : -1;
        const char *o = getenv("LLORCH_CUDA_FUSED_Q40_O");
        g_q40_o = !o ? 0 : !strcmp(o, "p1") ? 1 : !strcmp(o, "w8") ? 2 : 0;
        const char *b = getenv("LLORCH_CUDA_FUSED_BLOCKS");
        g_stream_blocks = b ? atoi(b) : 0;
        const char *m = getenv("LLORCH_CUDA_FUSED_SMEM_KB");
        if (m && atoi(m) >= 8 && atoi(m) <= 48) g_stream_smem = atoi(m) * 1024;
    }
    if (type == QT_Q4_0 && pair_ok && g_q40 != 2) {
        const int npair = K / 64;
        const size_t row_smem = (size_t)(MODE == FM_SWIGLU ? 2 : 1) * (size_t)npair * 36;
        /* warppf (default): the warp body with its pairs loaded before the
         * PDL wait for K <= 4096, p1 (matmul_add) or pair above; warp: the same without the
         * early loads (Llama-2-7B tg128 424.5 warppf, 416-418 warp, 390-395
         * pair; one H100 run, docs/PERF.md). pair:
         * the pair body everywhere. auto: the staged body
         * where the kernel bench favours it (SwiGLU, or >= 8192 rows, with
         * rows of <= 4096 weights: 3 x 4096x4096 13.1 us, 2 x 4096x11008
         * 21.1 us, back-to-back graph replays) and pair elsewhere (4096x4096
         * 7.0 vs 8.0 us, 11008x4096 13.3 vs 17.3 us). In the model the pair
         * body everywhere wins (Llama-2-7B tg128 387 vs 366 for auto, 357 for
         * staged everywhere; same H100 run): between different kernels the
         * staged body's load-then-compute warps are not overlapped. */
        int wpb = 0, ns = 0;
        if (g_q40 == 5 && fm_stream_cfg(row_smem, &wpb, &ns)) {
            const size_t smem = (size_t)wpb * (size_t)ns * row_smem;
            if (ns == 4) fm_stream_launch<MODE, 4>(c, S, npair, total, wpb, smem);
            else if (ns == 3) fm_stream_launch<MODE, 3>(c, S, npair, total, wpb, smem);
            else fm_stream_launch<MODE, 2>(c, S, npair, total, wpb, smem);
            return;
        }
        if (g_q40 == 6 && K <= 4096) {
            if constexpr (MODE == FM_ADD) { /* o (+ residual): LLORCH_CUDA_FUSED_Q40_O */
                if (g_q40_o == 1) return fm_pf_launch<MODE, 64, 1, 2, 16>(c, S, npair, total);
                if (g_q40_o == 2) return fm_pf_launch<MODE, 32, 2, 8, 1>(c, S, npair, total);
            }
            return fm_pf_launch<MODE, 32, 2, 4, 1>(c, S, npair, total);
        }
        /* the LLORCH_CUDA_FUSED_Q40_LONG setting in effect (unset: p1 for matmul_add under warppf) */
        const int lg = g_q40_long >= 0 ? g_q40_long : MODE == FM_ADD && g_q40 == 6 ? 5 : 0;
        if (K > 4096 && lg && (g_q40 == 1 || g_q40 == 4 || g_q40 == 6)) {
            if constexpr (MODE != FM_SWIGLU) { /* down (+ residual): LLORCH_CUDA_FUSED_Q40_LONG */
                if (lg == 2) return fm_pf_launch<MODE, 32, 6, 4, 8>(c, S, npair, total);
                if (lg == 3) return fm_pf_launch<MODE, 32, 5, 4, 8>(c, S, npair, total);
                if (lg == 4) return fm_pf_launch<MODE, 64, 2, 2, 16>(c, S, npair, total);
                if (lg == 5) return fm_pf_launch<MODE, 64, 1, 2, 16>(c, S, npair, total);
                if (lg == 6) return fm_pf_launch<MODE, 128, 1, 1, 16>(c, S, npair, total);
            }
            return fm_pf_launch<MODE, 64, 3, 1, 1>(c, S, npair, total);
        }
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
