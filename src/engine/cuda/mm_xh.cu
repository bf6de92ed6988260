/* mm_xh.cu — prefill matrix product for quantized weights on the tensor
 * cores, variant with fp16 activations made once per call (selected by
 * LLORCH_CUDA_MM_XH; the default stays mm_tc.cu until measured):
 * y[r][o] = sum_i w[o][i] x[r][i], r = activation rows (any count),
 * o = outputs (any count), K = w->ne0.
 *
 * Differences from mm_tc.cu (whose header describes the shared design: raw
 * weight chunks by cp.async, tc_deq into a double-buffered fp16 A tile,
 * mma.sync m16n8k16 from ldmatrix, quants.cuh sub order along K):
 *   - A small kernel (k_xh_conv) rounds x to fp16 once per call into the
 *     context's scratch c->mm_xh [rows][K], already permuted into the
 *     format's sub order: position 8g+j of a row holds element e0(s)+j
 *     (j < 4) or e1(s)+j-4 of block g/NSUB, s = g%NSUB. Pipeline step t of
 *     the matmul then needs halves [t*BK, t*BK+BK) of each token row:
 *     contiguous, 16-byte aligned (K is a multiple of 32).
 *   - The B tile (activations) travels global -> shared with 16-byte
 *     cp.async into an XH_NS-stage ring, issued XH_NS-1 steps ahead: no
 *     registers, no conversion, half the bytes of the fp32 path.
 *   - BK (K per step) is 32 or 64 (LLORCH_CUDA_MM_XH=2): 64 halves the
 *     barriers and the per-step overhead (needs K % 64 == 0, else 32).
 *   - Tiles X (128x128, 512 threads) and S (64x64, 256 threads) only: the
 *     tiles mm_tc.cu's model picks for every Llama and Qwen shape.
 *
 * cp.async groups: exactly one commit per step (plus XH_NS-1 in the
 * prologue), so "B of step t+1 has landed" is cp.async.wait_group XH_NS-2 at
 * the end of step t, before its barrier. The raw chunk c+1, issued with the
 * group of the last step of chunk c-1, is older than that group whenever
 * XH_NS <= steps per chunk + 1, so the same wait covers it.
 *
 * Numerics: the same fp16 roundings of both operands and the same mma
 * sequence per output as mm_tc.cu (BK 64 runs the two 32-halves in the
 * same order): results bit-identical to mm_tc.cu at the same tile
 * (tests/gpu/test_cuda_ops asserts 1e-6 and prints any bit difference).
 *
 * Scratch: rows*K <= CU_MM_XH_MAX halves (common.cuh: n_batch 512 x K
 * 16384, 16 MiB, allocated at context creation); larger products return 0
 * and the caller runs mm_tc.cu.
 *
 * Env: LLORCH_CUDA_MM_XH=1|2 (in mm_tc.cu's cu_mm_tc) selects this file;
 * LLORCH_CUDA_MM_TILE=X|S forces its tile; LLORCH_CUDA_MM_XH_NOCONV=1
 * (benchmarks only) skips the conversion, reusing the previous scratch.
 *
 * Shared memory per block: 2*BM*RB (raw) + 2*BM*(BK+8)*2 (A) +
 * XH_NS*BN*(BK+8)*2 (B); X Q4_0: 105 KB (BK 32), 152 KB (BK 64); X Q8_0
 * BK 64: 184 KB. */
#include <stdlib.h>
#include <string.h>

#include "mm_tc.cuh"
#include "mm_tc_dev.cuh"

#define XH_NS 4 /* stages of the B ring: B of step t+3 is copied during step t */

template <int T, int BM, int BN, int BK> struct xh_smem {
    enum {
        RAW = 2 * BM * tc_raw<T>::RB,
        A = 2 * BM * (BK + 8) * 2,
        BYTES = RAW + A + XH_NS * BN * (BK + 8) * 2,
    };
};

/* ---- conversion: x [rows][K] f32 -> xh [rows][K] fp16 in sub order ---------------------------- */
/* one thread per sub (8 elements); nsub = rows * K / 8 */
template <int T>
__global__ void __launch_bounds__(256) k_xh_conv(const float *x, __half *xh, int K, int64_t nsub) {
    cu_pdl_begin();
    typedef qfmt<T> F;
    const int64_t i = (int64_t)blockIdx.x * 256 + threadIdx.x;
    if (i >= nsub) return;
    const int spr = K / 8; /* subs per row */
    const int64_t r = i / spr;
    const int g = (int)(i - r * spr), blk = g / F::NSUB, s = g % F::NSUB;
    const float *xr = x + r * K + (int64_t)blk * F::QK;
    const float4 a = *(const float4 *)(xr + F::e0(s)), b = *(const float4 *)(xr + F::e1(s));
    *(uint4 *)(xh + r * K + 8 * (int64_t)g) =
        make_uint4(tc_h2(a.x, a.y), tc_h2(a.z, a.w), tc_h2(b.x, b.y), tc_h2(b.z, b.w));
}

/* ---- kernel ---------------------------------------------------------------------------- */
/* grid (ceil(ne1/BM), ceil(rows/BN)), NT threads. w: [ne1][nb1] bytes,
 * wend = w + ne1*nb1; xh: [rows][K] fp16 in sub order (K % BK == 0);
 * y: [rows][ne1] f32. Rows past ne1 and tokens past rows are computed from
 * clamped inputs and never stored (branch-free steps, as mm_tc.cu). */
template <int T, int BM, int BN, int WM, int NT, int MINB, int BK>
__global__ void __launch_bounds__(NT, MINB)
k_mm_xh(const uint8_t *w, size_t nb1, const uint8_t *wend, int ne1, const __half *xh, int K, int rows, float *y) {
    cu_pdl_begin();
    typedef qfmt<T> F;
    typedef tc_raw<T> R;
    enum {
        LDS = BK + 8,       /* halves per shared row: 80 or 144 B, odd multiples of 16 (ldmatrix conflict-free) */
        SPB = BK / 8,       /* subs per row per step */
        SPC = TC_RK / BK,   /* steps per raw chunk */
        NS = XH_NS,
        NW = NT / 32, WN = NW / WM, TM = BM / WM, TN = BN / WN, MI = TM / 16, NI = TN / 8,
        UA = BM * SPB / NT, /* A subs (8 weights) per thread per step */
        UB = BN * SPB / NT, /* B 16-byte copies per thread per step */
        RW = R::RB / 4      /* raw words per row slot */
    };
    static_assert(WM * WN == NW && TM % 16 == 0 && TN % 16 == 0, "tile");
    static_assert(UA >= 1 && UB >= 1 && UA * NT == BM * SPB && UB * NT == BN * SPB, "units");
    static_assert(NS >= 3 && NS <= SPC + 1, "a raw chunk must land within the wait of the B two steps later");
    static_assert(SPC % NS == 0 && SPC % 2 == 0, "step t = SPC*c + j: A buffer j & 1, B stage j % NS");
    extern __shared__ __align__(16) unsigned char smem[];
    unsigned char *raw = smem;                                         /* [2][BM][RB] bytes */
    __half *As = (__half *)(smem + xh_smem<T, BM, BN, BK>::RAW);      /* [2][BM][LDS] */
    __half *Bs = As + 2 * BM * LDS;                                    /* [NS][BN][LDS] */
    const int o0 = blockIdx.x * BM, t0 = blockIdx.y * BN;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WN, wn = warp % WN;
    const int nblk = K / F::QK, nchunk = (K + TC_RK - 1) / TC_RK, nstep = K / BK;

    /* raw chunk c of every row of the tile -> raw[c & 1] (rows < ne1 only);
     * the same copy as mm_tc.cu's */
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
                /* the tensor's last word, cut by its end: bytes */
                uint32_t v = 0;
                for (int k = 0; k < wend - src; k++) v |= (uint32_t)src[k] << (8 * k);
                *(uint32_t *)(dst + i * R::RB + 4 * j) = v;
            }
        }
    };
    /* per-thread fixed parts of the A units (weight rows, clamped to a copied row) */
    const uint8_t *arow[UA];
    int aoff[UA];
#pragma unroll
    for (int u = 0; u < UA; u++) {
        const int i = (tid + NT * u) / SPB;
        const int ic = o0 + i < ne1 ? i : ne1 - 1 - o0;
        arow[u] = w + (size_t)(o0 + ic) * nb1;
        aoff[u] = ic * R::RB;
    }
    /* ... and of the B units: token row (clamped) and 8-half column */
    const __half *xsrc[UB];
    int bdst[UB];
#pragma unroll
    for (int u = 0; u < UB; u++) {
        const int unit = tid + NT * u, tk = unit / SPB, q = unit % SPB;
        xsrc[u] = xh + (int64_t)(t0 + tk < rows ? t0 + tk : rows - 1) * K + 8 * q;
        bdst[u] = tk * LDS + 8 * q;
    }
    /* activations of step s -> B stage st = s % NS (passed as a constant
     * where known; steps past the end copy the last step again into a stage
     * nobody reads: keeps the body branch-free) */
    auto issue_b = [&](int s, int st) {
        const int sd = s < nstep ? s : nstep - 1;
        __half *B = Bs + st * BN * LDS;
#pragma unroll
        for (int u = 0; u < UB; u++) tc_cp16(B + bdst[u], xsrc[u] + (int64_t)sd * BK);
    };
    /* A tile of step t = SPC*c + j (j < SPC), dequantized from raw chunk c;
     * the callers pass c and j separately so that j is a constant in the
     * unrolled chunk body */
    auto produce_a = [&](int c, int j) {
        const unsigned char *rc = raw + (c & 1) * BM * R::RB;
        __half *A = As + (j & 1) * BM * LDS;
#pragma unroll
        for (int u = 0; u < UA; u++) {
            const int unit = tid + NT * u, i = unit / SPB, q = unit % SPB;
            const int ls = j * SPB + q; /* chunk-local sub index */
            const int bq = ls / F::NSUB, s = ls % F::NSUB;
            const uint8_t *a = arow[u] + (size_t)c * R::CB;
            const uint8_t *b = rc + aoff[u] + ((uintptr_t)a & 3) + bq * F::BYTES;
            *(uint4 *)(A + i * LDS + q * 8) = tc_deq<T>::run(b, s);
        }
    };

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;
    /* step t: A buffer t & 1, B stage t % NS (callers pass t % SPC or t) */
    auto mma_step = [&](int t) {
        const __half *A = As + (t & 1) * BM * LDS + (wm * TM) * LDS;
        const __half *B = Bs + (t % NS) * BN * LDS + (wn * TN) * LDS;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            uint32_t af[MI][4], bf[NI][2];
#pragma unroll
            for (int i = 0; i < MI; i++) tc_ldsm4(af[i], A + (i * 16 + (lane & 15)) * LDS + kk + (lane >> 4) * 8);
#pragma unroll
            for (int j = 0; j < NI / 2; j++) {
                uint32_t r[4];
                tc_ldsm4(r, B + (j * 16 + (lane & 7) + (lane >> 4) * 8) * LDS + kk + ((lane >> 3) & 1) * 8);
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

    /* prologue: groups P0 = {chunk 0, B 0}, P1 = {chunk 1, B 1},
     * P2..P(NS-2) = {B p}; wait for P0, produce A 0 */
    issue_chunk(0);
    issue_b(0, 0);
    tc_cp_commit();
#pragma unroll
    for (int p = 1; p <= NS - 2; p++) {
        if (p == 1 && nchunk > 1) issue_chunk(1);
        if (p < nstep) issue_b(p, p);
        tc_cp_commit();
    }
    tc_cp_wait<NS - 2>();
    __syncthreads();
    produce_a(0, 0);
    __syncthreads();

    /* Step t: mma on A[t & 1], B[t % NS]; produce A t+1 (its raw chunk landed
     * and was made visible by an earlier barrier); copy B t+NS-1 into the
     * stage step t-1 read; on the last step of chunk c, copy chunk c+2 into
     * the raw buffer chunk c used (last read by produce_a of this chunk's
     * last step, one barrier ago); one commit; wait for B t+1; barrier. */
    int t = 0;
    for (int c = 0; c + 1 < nchunk; c++) {
#pragma unroll
        for (int j = 0; j < SPC; j++, t++) {
            mma_step(j);
            /* t+1 < nstep: chunk c+1 has at least one step */
            if (j + 1 < SPC) produce_a(c, j + 1);
            else produce_a(c + 1, 0);
            issue_b(t + NS - 1, (j + NS - 1) % NS);
            if (j == SPC - 1 && c + 2 < nchunk) issue_chunk(c + 2);
            tc_cp_commit();
            tc_cp_wait<NS - 2>();
            __syncthreads();
        }
    }
    /* the last chunk: no successor */
    for (; t < nstep; t++) {
        mma_step(t);
        if (t + 1 < nstep) produce_a((t + 1) / SPC, (t + 1) % SPC);
        if (t + NS - 1 < nstep) issue_b(t + NS - 1, (t + NS - 1) % NS);
        tc_cp_commit();
        tc_cp_wait<NS - 2>();
        __syncthreads();
    }
    tc_cp_wait<0>(); /* no copy outlives the block (clamped B copies of short tails) */

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
template <int T, int BM, int BN, int WM, int NT, int MINB, int BK> struct xh_cfg {
    static int occ; /* blocks per SM; 0 until the first call */
    static int prepare(cu_ctx *c) {
        if (occ) return occ;
        const int smem = xh_smem<T, BM, BN, BK>::BYTES;
        if (CUDA_CHECK(c, cudaFuncSetAttribute(k_mm_xh<T, BM, BN, WM, NT, MINB, BK>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, smem)))
            return 0;
        int n = 0;
        if (CUDA_CHECK(c, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k_mm_xh<T, BM, BN, WM, NT, MINB, BK>, NT,
                                                                         smem)))
            return 0;
        occ = n > 0 ? n : 1;
        return occ;
    }
    static void launch(cu_ctx *c, const eng_w *w, const __half *xh, float *y, int rows) {
        dim3 grid(cu_div_up(w->ne1, BM), cu_div_up(rows, BN));
        const uint8_t *wd = (const uint8_t *)w->data;
        cu_launch(c, grid, NT, xh_smem<T, BM, BN, BK>::BYTES, k_mm_xh<T, BM, BN, WM, NT, MINB, BK>, wd, w->nb1,
                  wd + w->nb1 * (size_t)w->ne1, (int)w->ne1, xh, (int)w->ne0, rows, y);
    }
};
template <int T, int BM, int BN, int WM, int NT, int MINB, int BK>
int xh_cfg<T, BM, BN, WM, NT, MINB, BK>::occ = 0;

/* Tile choice between X and S with mm_tc.cu's per-wave model and its H100
 * fit for those two tiles (not refitted for this kernel): an SM running r
 * blocks finishes them in max(lat, r * tp) per K element. */
static double xh_est(cu_ctx *c, int64_t blocks, int occ, double lat, double tp) {
    const int64_t per_wave = (int64_t)occ * c->sm_count, full = blocks / per_wave, rest = blocks - full * per_wave;
    double est = (double)full * (occ * tp > lat ? occ * tp : lat);
    if (rest) {
        const int64_t r = (rest + c->sm_count - 1) / c->sm_count;
        est += r * tp > lat ? r * tp : lat;
    }
    return est;
}

template <int T, int BK> static void xh_run_bk(cu_ctx *c, const eng_w *w, const __half *xh, float *y, int rows) {
    typedef xh_cfg<T, 128, 128, 4, 512, 1, BK> X;
    /* S at BK 64 takes 78-96 KB of shared memory: 2 blocks per SM, so the
     * registers may grow to 128 (at 3 the bigger formats spill) */
    typedef xh_cfg<T, 64, 64, 2, 256, BK == 64 ? 2 : 3, BK> S;
    const int ox = X::prepare(c), os = S::prepare(c);
    if (!ox || !os) return; /* error latched */
    /* LLORCH_CUDA_MM_TILE=X|S forces a tile; other letters: the model */
    const char *e = getenv("LLORCH_CUDA_MM_TILE");
    int x_tile;
    if (e && e[0] == 'X') x_tile = 1;
    else if (e && e[0] == 'S') x_tile = 0;
    else {
        const int64_t bx = (int64_t)cu_div_up(w->ne1, 128) * cu_div_up(rows, 128);
        const int64_t bs = (int64_t)cu_div_up(w->ne1, 64) * cu_div_up(rows, 64);
        x_tile = xh_est(c, bx, ox, 0.0265, 0.0265) <= xh_est(c, bs, os, 0.0145, 0.0094);
    }
    if (x_tile) X::launch(c, w, xh, y, rows);
    else S::launch(c, w, xh, y, rows);
}

template <int T> static void xh_run(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows, int bk64) {
    const int K = (int)w->ne0;
    const int64_t nsub = (int64_t)rows * K / 8;
    /* LLORCH_CUDA_MM_XH_NOCONV=1, benchmarks only: skip the conversion and
     * reuse the scratch as the previous call left it (right only when that
     * call converted the same x for a format of the same sub order; the
     * kernel bench uses it to time the matmul without its conversion) */
    const char *nc = getenv("LLORCH_CUDA_MM_XH_NOCONV");
    if (!(nc && nc[0] == '1') &&
        cu_latch(c, cu_launch(c, dim3(cu_div_up(nsub, 256)), 256, 0, k_xh_conv<T>, x, c->mm_xh, K, nsub),
                 "mm_xh convert", __FILE__, __LINE__))
        return;
    if (bk64) xh_run_bk<T, 64>(c, w, c->mm_xh, y, rows);
    else xh_run_bk<T, 32>(c, w, c->mm_xh, y, rows);
}

int cu_mm_xh(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows, int bk64) {
    if (!c->mm_xh || (uint64_t)rows * (uint64_t)w->ne0 > CU_MM_XH_MAX) return 0;
    if (((uintptr_t)w->data & 15) != 0 || ((uintptr_t)x & 15) != 0 || w->ne0 % 32) return 0;
    if (w->ne0 % 64) bk64 = 0;
    int handled = 1;
#define XQ(T) xh_run<T>(c, w, x, y, rows, bk64)
    QFMT_DISPATCH(w->type, XQ)
#undef XQ
    return handled;
}
