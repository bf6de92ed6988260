/* mm_tc.cu — prefill matrix product for quantized weights on the tensor
 * cores: y[r][o] = sum_i w[o][i] x[r][i], r = activation rows (tokens, any
 * count), o = outputs (any count), K = w->ne0 (a multiple of the block size).
 *
 * Design (docs/PERF.md "Prefill matmul" says why and what it measured):
 *   - mma.sync.m16n8k16 fp16 x fp16 -> fp32 through inline PTX, operands
 *     from shared memory with ldmatrix.x4. A block computes a BM (outputs) x
 *     BN (tokens) tile with NT/32 warps (WM x WN, warp tile TM x TN); four
 *     tile shapes (host side below), chosen per call by a wave model.
 *   - K advances in steps of 32 (TC_BK). Every step is double-buffered in
 *     shared memory as fp16: A [BM][40] (dequantized weights), B [BN][40]
 *     (activations); the 8-half row padding keeps ldmatrix conflict-free.
 *     One __syncthreads per step: while the tensor cores run step t the same
 *     warps fill step t+1's buffers, so dequantization overlaps the mma.
 *   - Raw weight bytes travel global -> shared with cp.async (4-byte words;
 *     the tensor's last word, when cut, byte by byte), one 256-element
 *     chunk per row (8 blocks of 32 or one K-quant super-block) at a time,
 *     double-buffered: chunk
 *     c+1 is in flight during the 8 steps of chunk c. The copy keeps every
 *     block's address modulo 4, so quants.cuh's deq (which assumes the
 *     format's alignment) reads shared memory exactly as it reads global.
 *   - Activations (fp32 in global) are loaded as float4 two steps ahead into
 *     registers and rounded to fp16 when stored.
 *   - The 8 steps of a chunk are unrolled without branches (rows and tokens
 *     past the edge are clamped, computed and never stored), so the
 *     compiler interleaves step t's mma with step t+1's dequantization.
 *   - Dequantization (tc_deq): Q4_0/Q5_0/Q8_0 straight to fp16 (bit-identical
 *     to the generic path), Q4_K/Q5_K/Q6_K with the group scale rounded to
 *     fp16 once, the other formats through quants.cuh deq in fp32.
 *   - K order inside a step is the quants.cuh "sub" order, not the natural
 *     one: step t holds the subs 4t..4t+3 of each row (global sub index over
 *     the row's blocks), sub s occupying 8 consecutive columns (elements
 *     e0(s)..e0(s)+3 then e1(s)..e1(s)+3). The activations are gathered in
 *     the same order (two float4 per sub), so the dot product is unchanged
 *     and every format goes through one template with its own deq.
 *
 * Numerics: both operands rounded to fp16 (relative 2^-11 each; K-quant
 * weights see one more 2^-11 rounding through their fp16 group scale), fp32
 * accumulation: ~1e-3 relative difference from the exact product of the
 * dequantized weights (tests/gpu/test_cuda_ops TOL_MM16); activations beyond
 * the fp16 range (65504) would overflow.
 *
 * Shared memory per block: 2*BM*RB (raw) + 2*(BM+BN)*80 bytes; 128x128 Q4_0:
 * 86 KB, Q8_0: 119 KB.
 *
 * Env: LLORCH_CUDA_MM_TILE=L|X|M|S forces a tile; LLORCH_CUDA_MM=1 runs the
 * previous WMMA kernel (mm.cu) instead; LLORCH_CUDA_MM_XH=1|2 runs the
 * fp16-activation variant (mm_xh.cu, tiles X and S) instead. */
#include <stdlib.h>
#include <string.h>

#include "mm_tc.cuh"
#include "mm_tc_dev.cuh"

#define TC_BK 32  /* K per pipeline step: 4 subs of 8 per row */
#define TC_LDS 40 /* halves per shared row: 80 B, 8 rows of ldmatrix hit 8 distinct 16-byte bank groups */

template <int T, int BM, int BN> struct tc_smem {
    enum { RAW = 2 * BM * tc_raw<T>::RB, BYTES = RAW + 2 * (BM + BN) * TC_LDS * 2 };
};

/* ---- kernel ---------------------------------------------------------------------------- */
/* grid (ceil(ne1/BM), ceil(rows/BN)), NT threads. w: [ne1][nb1] bytes,
 * wend = w + ne1*nb1 (cp.async never reads past it); x: [rows][K] f32
 * (16-byte aligned rows: K is a multiple of 32); y: [rows][ne1] f32.
 * Rows of the tile beyond ne1 and tokens beyond rows are computed from
 * clamped (repeated) inputs and never stored: no branches in the step body,
 * so the compiler can interleave one step's mma with the next one's
 * dequantization. */
template <int T, int BM, int BN, int WM, int NT, int MINB>
__global__ void __launch_bounds__(NT, MINB)
k_mm_tc(const uint8_t *w, size_t nb1, const uint8_t *wend, int ne1, const float *x, int K, int rows, float *y) {
    cu_pdl_begin();
    typedef qfmt<T> F;
    typedef tc_raw<T> R;
    enum {
        NW = NT / 32, WN = NW / WM, TM = BM / WM, TN = BN / WN, MI = TM / 16, NI = TN / 8,
        UA = BM * 4 / NT, /* A subs (8 weights) per thread per step */
        UB = BN * 4 / NT, /* B subs (8 activations) per thread per step */
        RW = R::RB / 4,   /* raw words per row slot */
        SPC = TC_RK / TC_BK /* steps per chunk: 8 */
    };
    static_assert(WM * WN == NW && TM % 16 == 0 && TN % 16 == 0 && UA >= 1 && UB >= 1, "tile");
    extern __shared__ __align__(16) unsigned char smem[];
    unsigned char *raw = smem;                                      /* [2][BM][RB] bytes */
    __half *As = (__half *)(smem + tc_smem<T, BM, BN>::RAW);       /* [2][BM][TC_LDS] */
    __half *Bs = As + 2 * BM * TC_LDS;                              /* [2][BN][TC_LDS] */
    const int o0 = blockIdx.x * BM, t0 = blockIdx.y * BN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WN, wn = warp % WN;
    const int nblk = K / F::QK, nchunk = (K + TC_RK - 1) / TC_RK, nstep = K / TC_BK;

    /* raw chunk c of every row of the tile -> raw[c & 1] (rows < ne1 only) */
    auto issue_chunk = [&](int c) {
        unsigned char *dst = raw + (c & 1) * BM * R::RB;
        const int b0 = c * R::BLK;
        const int len = (nblk - b0 < R::BLK ? nblk - b0 : R::BLK) * F::BYTES;
        for (int idx = tid; idx < BM * RW; idx += NT) {
            const int i = idx / RW, j = idx - i * RW;
            if (o0 + i >= ne1) continue;
            const uint8_t *a = w + (size_t)(o0 + i) * nb1 + (size_t)b0 * F::BYTES;
            const int mis = (int)((uintptr_t)a & 3);
            if (4 * j >= mis + len) continue;
            const uint8_t *src = a - mis + 4 * j;
            if (wend - src >= 4) {
                tc_cp4(dst + i * R::RB + 4 * j, src);
            } else {
                /* the tensor's last word, cut by its end (sizes not a
                 * multiple of 4): bytes, so nothing past the allocation is
                 * read (a cp.async with a smaller src-size still names 4
                 * bytes, which compute-sanitizer memcheck flags) */
                uint32_t v = 0;
                for (int k = 0; k < wend - src; k++) v |= (uint32_t)src[k] << (8 * k);
                *(uint32_t *)(dst + i * R::RB + 4 * j) = v;
            }
        }
    };
    /* per-thread fixed parts of the A and B units */
    const uint8_t *arow[UA]; /* global address of the unit's weight row (clamped) */
    int aoff[UA];            /* shared offset of that row in a raw buffer */
#pragma unroll
    for (int u = 0; u < UA; u++) {
        const int i = (tid + NT * u) >> 2;
        const int ic = o0 + i < ne1 ? i : ne1 - 1 - o0; /* a copied row */
        arow[u] = w + (size_t)(o0 + ic) * nb1;
        aoff[u] = ic * R::RB;
    }
    const float *xrow[UB];
#pragma unroll
    for (int u = 0; u < UB; u++) {
        const int tk = (tid + NT * u) >> 2;
        xrow[u] = x + (int64_t)(t0 + tk < rows ? t0 + tk : rows - 1) * K;
    }
    /* activations of step t -> registers */
    auto load_b = [&](int t, float4 (&xb)[UB][2]) {
#pragma unroll
        for (int u = 0; u < UB; u++) {
            const int q = (tid + NT * u) & 3;
            const int g = 4 * t + q, blk = g / F::NSUB, s = g % F::NSUB;
            const float *xr = xrow[u] + (int64_t)blk * F::QK;
            xb[u][0] = *(const float4 *)(xr + F::e0(s));
            xb[u][1] = *(const float4 *)(xr + F::e1(s));
        }
    };
    /* step t's fp16 tiles: A dequantized from raw chunk t/8, B from xb */
    auto produce = [&](int t, const float4 (&xb)[UB][2]) {
        const int c = t / SPC;
        const unsigned char *rc = raw + (c & 1) * BM * R::RB;
        __half *A = As + (t & 1) * BM * TC_LDS;
        __half *B = Bs + (t & 1) * BN * TC_LDS;
#pragma unroll
        for (int u = 0; u < UA; u++) {
            const int unit = tid + NT * u, i = unit >> 2, q = unit & 3;
            const int ls = (t % SPC) * 4 + q; /* chunk-local sub index */
            const int bq = ls / F::NSUB, s = ls % F::NSUB;
            const uint8_t *a = arow[u] + (size_t)c * R::CB;
            const uint8_t *b = rc + aoff[u] + ((uintptr_t)a & 3) + bq * F::BYTES;
            *(uint4 *)(A + i * TC_LDS + q * 8) = tc_deq<T>::run(b, s);
        }
#pragma unroll
        for (int u = 0; u < UB; u++) {
            const int unit = tid + NT * u, tk = unit >> 2, q = unit & 3;
            *(uint4 *)(B + tk * TC_LDS + q * 8) = make_uint4(tc_h2(xb[u][0].x, xb[u][0].y), tc_h2(xb[u][0].z, xb[u][0].w),
                                                             tc_h2(xb[u][1].x, xb[u][1].y), tc_h2(xb[u][1].z, xb[u][1].w));
        }
    };

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;
    auto mma_step = [&](int t) {
        const __half *A = As + (t & 1) * BM * TC_LDS + (wm * TM) * TC_LDS;
        const __half *B = Bs + (t & 1) * BN * TC_LDS + (wn * TN) * TC_LDS;
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            uint32_t af[MI][4], bf[NI][2];
#pragma unroll
            for (int i = 0; i < MI; i++) tc_ldsm4(af[i], A + (i * 16 + (lane & 15)) * TC_LDS + kk + (lane >> 4) * 8);
#pragma unroll
            for (int j = 0; j < NI / 2; j++) {
                uint32_t r[4];
                tc_ldsm4(r, B + (j * 16 + (lane & 7) + (lane >> 4) * 8) * TC_LDS + kk + ((lane >> 3) & 1) * 8);
                bf[2 * j][0] = r[0];
                bf[2 * j][1] = r[1];
                bf[2 * j + 1][0] = r[2];
                bf[2 * j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < NI; j++) tc_mma(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }
    };

    /* activations two steps ahead: xa holds step t+1 (even t) / xc step t+2 */
    float4 xe[UB][2], xo[UB][2]; /* even / odd steps */
    /* prologue: chunks 0 and 1 in flight, step 0 produced, steps 1, 2 loaded */
    issue_chunk(0);
    tc_cp_commit();
    if (nchunk > 1) issue_chunk(1);
    tc_cp_commit();
    load_b(0, xe);
    tc_cp_wait<1>();
    __syncthreads();
    produce(0, xe);
    load_b(nstep > 1 ? 1 : 0, xo);
    load_b(nstep > 2 ? 2 : 0, xe);
    __syncthreads();

    /* Every chunk but the last has 8 full steps and a successor: its body is
     * unrolled and branch-free; step t+1 of the chunk's last step opens the
     * next chunk (waited for and made visible first). Step t's x registers
     * are xe for even t, xo for odd; a step's registers are refilled with
     * step t+2 right after they were consumed. */
    int t = 0;
    for (int c = 0; c + 1 < nchunk; c++) {
#pragma unroll
        for (int j = 0; j < SPC; j++, t++) {
            if (j == SPC - 1) {
                tc_cp_wait<0>(); /* chunk c+1 landed (c+2 is not issued yet) */
                __syncthreads();
            }
            mma_step(t);
            /* step t+1 < nstep: chunk c+1 has at least one step */
            if (j & 1) {
                produce(t + 1, xe);
                load_b(t + 3 < nstep ? t + 3 : nstep - 1, xe);
            } else {
                produce(t + 1, xo);
                load_b(t + 3 < nstep ? t + 3 : nstep - 1, xo);
            }
            if (j == SPC - 1 && c + 2 < nchunk) {
                /* raw[c & 1] held chunk c, last read by produce(t) one barrier ago */
                issue_chunk(c + 2);
                tc_cp_commit();
            }
            __syncthreads();
        }
    }
    /* the last chunk: its steps, no successor */
    for (; t < nstep; t++) {
        mma_step(t);
        if (t + 1 < nstep) {
            if (t & 1) {
                produce(t + 1, xe);
                load_b(t + 3 < nstep ? t + 3 : nstep - 1, xe);
            } else {
                produce(t + 1, xo);
                load_b(t + 3 < nstep ? t + 3 : nstep - 1, xo);
            }
        }
        __syncthreads();
    }

    /* C fragments: (g, 2c..2c+1) and (g+8, 2c..2c+1), g = lane/4, c = lane%4 */
#pragma unroll
    for (int i = 0; i < MI; i++) {
        const int o = o0 + wm * TM + i * 16 + (lane >> 2);
#pragma unroll
        for (int j = 0; j < NI; j++) {
            const int tk = t0 + wn * TN + j * 8 + (lane & 3) * 2;
            if (tk < rows) {
                if (o < ne1) y[(int64_t)tk * ne1 + o] = acc[i][j][0];
                if (o + 8 < ne1) y[(int64_t)tk * ne1 + o + 8] = acc[i][j][2];
            }
            if (tk + 1 < rows) {
                if (o < ne1) y[(int64_t)(tk + 1) * ne1 + o] = acc[i][j][1];
                if (o + 8 < ne1) y[(int64_t)(tk + 1) * ne1 + o + 8] = acc[i][j][3];
            }
        }
    }
}

/* ---- host side --------------------------------------------------------------------------- */
/* Tile shapes (outputs x tokens, threads, warp tile, min blocks per SM for
 * the register budget): L 128x128, 256, 64x32, 1; X 128x128, 512, 32x32, 1;
 * M 128x64, 256, 32x32, 2; S 64x64, 256, 32x16, 3. */
enum { TC_L, TC_X, TC_M, TC_S, TC_NCFG };
static const char k_tc_name[TC_NCFG] = {'L', 'X', 'M', 'S'};

template <int T, int BM, int BN, int WM, int NT, int MINB> struct tc_cfg {
    /* blocks per SM at this kernel's registers and shared memory; 0 until
     * the first call (cudaFuncSetAttribute + occupancy query, once) */
    static int occ;
    static int prepare(cu_ctx *c) {
        if (occ) return occ;
        const int smem = tc_smem<T, BM, BN>::BYTES;
        if (CUDA_CHECK(c, cudaFuncSetAttribute(k_mm_tc<T, BM, BN, WM, NT, MINB>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               smem)))
            return 0;
        int n = 0;
        if (CUDA_CHECK(c, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k_mm_tc<T, BM, BN, WM, NT, MINB>, NT, smem)))
            return 0;
        occ = n > 0 ? n : 1;
        return occ;
    }
    static void launch(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
        dim3 grid(cu_div_up(w->ne1, BM), cu_div_up(rows, BN));
        const uint8_t *wd = (const uint8_t *)w->data;
        cu_launch(c, grid, NT, tc_smem<T, BM, BN>::BYTES, k_mm_tc<T, BM, BN, WM, NT, MINB>, wd, w->nb1,
                  wd + w->nb1 * (size_t)w->ne1, (int)w->ne1, x, (int)w->ne0, rows, y);
    }
};
template <int T, int BM, int BN, int WM, int NT, int MINB> int tc_cfg<T, BM, BN, WM, NT, MINB>::occ = 0;

/* Auto choice: a block is latency-bound when alone on an SM and
 * throughput-bound when several share it: an SM running r blocks of a tile
 * finishes them in max(lat, r * tp) * (K + 250) (250: prologue and epilogue
 * in K units). Full waves run occ blocks per SM, a last partial wave
 * ceil(rest / SMs). lat, tp (us per K element) fitted on H100 to the
 * comparison in docs/PERF.md; the model picks the measured best tile on all
 * eight shapes there. */
static const double k_tc_lat[TC_NCFG] = {0.0285, 0.0265, 0.0222, 0.0145};
static const double k_tc_tp[TC_NCFG] = {0.0285, 0.0265, 0.0166, 0.0094};
static const int k_tc_bm[TC_NCFG] = {128, 128, 128, 64}, k_tc_bn[TC_NCFG] = {128, 128, 64, 64};

template <int T> static int tc_run(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
    /* last parameter: blocks per SM the registers must allow */
    typedef tc_cfg<T, 128, 128, 2, 256, 1> L;
    typedef tc_cfg<T, 128, 128, 4, 512, 1> X;
    typedef tc_cfg<T, 128, 64, 4, 256, 2> M;
    typedef tc_cfg<T, 64, 64, 2, 256, 3> S;
    const int occ[TC_NCFG] = {L::prepare(c), X::prepare(c), M::prepare(c), S::prepare(c)};
    for (int k = 0; k < TC_NCFG; k++)
        if (!occ[k]) return 1; /* error latched */
    /* LLORCH_CUDA_MM_TILE=L|X|M|S forces a tile (tests, benchmarks) */
    const char *e = getenv("LLORCH_CUDA_MM_TILE");
    int pick = -1;
    for (int k = 0; e && k < TC_NCFG; k++)
        if (e[0] == k_tc_name[k]) pick = k;
    if (pick < 0) {
        double best = 0;
        for (int k = 0; k < TC_NCFG; k++) {
            const int64_t blocks = (int64_t)cu_div_up(w->ne1, k_tc_bm[k]) * cu_div_up(rows, k_tc_bn[k]);
            const int64_t per_wave = (int64_t)occ[k] * c->sm_count;
            const int64_t full = blocks / per_wave, rest = blocks - full * per_wave;
            const double lat = k_tc_lat[k], tp = k_tc_tp[k];
            double est = (double)full * (occ[k] * tp > lat ? occ[k] * tp : lat);
            if (rest) {
                const int64_t r = (rest + c->sm_count - 1) / c->sm_count;
                est += r * tp > lat ? r * tp : lat;
            }
            if (pick < 0 || est < best) {
                pick = k;
                best = est;
            }
        }
    }
    switch (pick) {
    case TC_L: L::launch(c, w, x, y, rows); break;
    case TC_X: X::launch(c, w, x, y, rows); break;
    case TC_M: M::launch(c, w, x, y, rows); break;
    default: S::launch(c, w, x, y, rows); break;
    }
    return 1;
}

int cu_mm_tc(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
    /* LLORCH_CUDA_MM=1: the previous WMMA kernel (mm.cu), for comparisons */
    const char *e = getenv("LLORCH_CUDA_MM");
    if (e && strcmp(e, "1") == 0) return 0;
    if (((uintptr_t)w->data & 15) != 0 || ((uintptr_t)x & 15) != 0) return 0;
    /* LLORCH_CUDA_MM_XH=1|2: fp16 activations made once per call (mm_xh.cu),
     * K steps of 32 | 64; falls through to this kernel where it declines */
    const char *xh = getenv("LLORCH_CUDA_MM_XH");
    if (xh && (xh[0] == '1' || xh[0] == '2') && !xh[1] && cu_mm_xh(c, w, x, y, rows, xh[0] == '2')) return 1;
    int handled = 1;
#define TQ(T) tc_run<T>(c, w, x, y, rows)
    QFMT_DISPATCH(w->type, TQ)
#undef TQ
    return handled;
}
