/* mm.cu — prefill matrix product y[r][o] = sum_i w[o][i] x[r][i] for many
 * activation rows (r >= 9).
 *
 * Quantized weights: by default mm_tc.cu (mma.sync, cp.async pipeline;
 * LLORCH_CUDA_MM_XH=1|2 selects its fp16-activation variant mm_xh.cu). The
 * kernel below is its predecessor, kept for comparison (LLORCH_CUDA_MM=1)
 * and as the fallback for unaligned weight or activation pointers:
 * tensor cores (WMMA m16n16k16, fp16 operands, fp32
 * accumulation). A block computes a 64 (outputs) x 128 (tokens) tile; per
 * 256-wide K step it dequantizes the 64 weight rows (quants.cuh subs) and
 * converts the 128 activation rows to fp16 in shared memory, then 8 warps run
 * 16 mma steps on 32x32 sub-tiles (dequantization per MAC halves against a
 * 64-token tile: v1 was 64x64). Numerics: both operands rounded to fp16
 * (relative 2^-11 each), fp32 sums: expect ~1e-3 relative difference from an
 * exact product; activations beyond the fp16 range (65504) would overflow.
 * Weak: single-buffered, no async copies, no int8 mma.
 *
 * F32/F16/BF16 weights: an fp32 SIMT tile (64x64, BK 16, 4x4 per thread),
 * bit-for-bit the CPU's arithmetic up to summation order (F16: x rounded to
 * fp16 first, as the CPU's F16 vec_dot type does). Any sizes. */
#include <mma.h>
#include <stdlib.h>

#include "mm_tc.cuh"
#include "quants.cuh"

using namespace nvcuda;

#define MM_BM 64
#define MM_BK 256
#define MM_LDS (MM_BK + 8) /* halves; +16 B per row against bank conflicts */
#define MM_SMEM(BN) ((MM_BM + (BN)) * MM_LDS * 2) /* A + B tiles in fp16: 101 KB at BN 128 */

template <int T, int BN>
__global__ void __launch_bounds__(256)
k_mm_q(const uint8_t *w, size_t nb1, int nblk, int ne1, const float *x, int K, int rows, float *y) {
    cu_pdl_begin();
    typedef qfmt<T> F;
    extern __shared__ __align__(16) unsigned char smem[];
    __half *As = (__half *)smem;       /* [64 outputs][MM_LDS] */
    __half *Bs = As + MM_BM * MM_LDS;  /* [BN tokens][MM_LDS] */
    const int o0 = blockIdx.x * MM_BM, t0 = blockIdx.y * BN;
    const int tid = threadIdx.x, warp = tid >> 5;
    /* 8 warps as WM x WN; a warp tile is FA*16 outputs x 32 tokens */
    enum { WN = BN / 32, WM = 8 / WN, FA = MM_BM / WM / 16 };
    const int wm = warp / WN, wn = warp % WN;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FA][2];
#pragma unroll
    for (int i = 0; i < FA; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int k0 = 0; k0 < K; k0 += MM_BK) {
        /* A: 64 rows x 32 subs of 8 */
#pragma unroll 2
        for (int it = 0; it < 8; it++) {
            const int unit = tid + 256 * it;
            const int i = unit >> 5, su = unit & 31;
            const int bt = su / F::NSUB, s = su % F::NSUB;
            const int row = o0 + i, gblk = k0 / F::QK + bt;
            float v[8];
            if (row < ne1 && gblk < nblk) {
                F::deq(w + (size_t)row * nb1 + (size_t)gblk * F::BYTES, s, v);
            } else {
#pragma unroll
                for (int j = 0; j < 8; j++) v[j] = 0.0f;
            }
            __half *a = As + i * MM_LDS + bt * F::QK;
            *(__half2 *)(a + F::e0(s)) = __floats2half2_rn(v[0], v[1]);
            *(__half2 *)(a + F::e0(s) + 2) = __floats2half2_rn(v[2], v[3]);
            *(__half2 *)(a + F::e1(s)) = __floats2half2_rn(v[4], v[5]);
            *(__half2 *)(a + F::e1(s) + 2) = __floats2half2_rn(v[6], v[7]);
        }
        /* B: 128 tokens x 256 k, float4 loads (K is a multiple of 32) */
#pragma unroll 4
        for (int it = 0; it < BN / 4; it++) {
            const int idx = tid + 256 * it;
            const int tk = idx >> 6, kk = (idx & 63) * 4;
            const int t = t0 + tk, gk = k0 + kk;
            float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
            if (t < rows && gk < K) v = *(const float4 *)(x + (int64_t)t * K + gk);
            __half *b = Bs + tk * MM_LDS + kk;
            *(__half2 *)b = __floats2half2_rn(v.x, v.y);
            *(__half2 *)(b + 2) = __floats2half2_rn(v.z, v.w);
        }
        __syncthreads();
#pragma unroll 4
        for (int kk = 0; kk < MM_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[FA];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
#pragma unroll
            for (int i = 0; i < FA; i++) wmma::load_matrix_sync(fa[i], As + (wm * FA * 16 + i * 16) * MM_LDS + kk, MM_LDS);
#pragma unroll
            for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], Bs + (wn * 32 + j * 16) * MM_LDS + kk, MM_LDS);
#pragma unroll
            for (int i = 0; i < FA; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        __syncthreads();
    }
    /* C [64 outputs][128 tokens] through shared memory, then y[token][output] */
    float *Cs = (float *)smem;
    const int LDC = BN + 4;
#pragma unroll
    for (int i = 0; i < FA; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(Cs + (wm * FA * 16 + i * 16) * LDC + wn * 32 + j * 16, acc[i][j], LDC,
                                    wmma::mem_row_major);
    __syncthreads();
    for (int idx = tid; idx < MM_BM * BN; idx += 256) {
        const int i = idx % MM_BM, tk = idx / MM_BM;
        if (o0 + i < ne1 && t0 + tk < rows) y[(int64_t)(t0 + tk) * ne1 + o0 + i] = Cs[i * LDC + tk];
    }
}

/* ---- fp32 SIMT tile for float weights ------------------------------------------------ */
#define MF_BK 16
template <int T>
__global__ void __launch_bounds__(256)
k_mm_f(const uint8_t *w, size_t nb1, int K, int ne1, const float *x, int rows, float *y) {
    cu_pdl_begin();
    __shared__ float As[MF_BK][64 + 4], Bs[MF_BK][64 + 4];
    const int o0 = blockIdx.x * 64, t0 = blockIdx.y * 64;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    float acc[4][4] = {};
    for (int k0 = 0; k0 < K; k0 += MF_BK) {
#pragma unroll
        for (int it = 0; it < 4; it++) {
            const int idx = tid + 256 * it;
            const int r = idx >> 4, kk = idx & 15;
            const int o = o0 + r, t = t0 + r, k = k0 + kk;
            float wv = 0.0f, xv = 0.0f;
            if (o < ne1 && k < K) {
                const uint8_t *wr = w + (size_t)o * nb1;
                if (T == QT_F32) wv = ((const float *)wr)[k];
                else if (T == QT_F16) wv = h2f(((const uint16_t *)wr)[k]);
                else wv = bf2f(((const uint16_t *)wr)[k]);
            }
            if (t < rows && k < K) {
                xv = x[(int64_t)t * K + k];
                if (T == QT_F16) xv = __half2float(__float2half_rn(xv));
            }
            As[kk][r] = wv;
            Bs[kk][r] = xv;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < MF_BK; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                a[i] = As[kk][ty * 4 + i];
                b[i] = Bs[kk][tx * 4 + i];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int o = o0 + ty * 4 + i;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int t = t0 + tx * 4 + j;
            if (o < ne1 && t < rows) y[(int64_t)t * ne1 + o] = acc[i][j];
        }
    }
}

template <int T, int BN>
static void launch_mm_q_bn(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
    static bool attr_set = false; /* per instantiation; raising the limit is idempotent */
    if (!attr_set) {
        if (CUDA_CHECK(c, cudaFuncSetAttribute(k_mm_q<T, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, MM_SMEM(BN))))
            return;
        attr_set = true;
    }
    dim3 grid(cu_div_up(w->ne1, MM_BM), cu_div_up(rows, BN));
    cu_launch(c, grid, 256, MM_SMEM(BN), k_mm_q<T, BN>, (const uint8_t *)w->data, w->nb1, (int)(w->ne0 / qfmt<T>::QK),
                                                          (int)w->ne1, x, (int)w->ne0, rows, y);
}

/* Tile choice by a wave model fitted on H100 (docs/PERF.md, same-run
 * timings of both tiles on four shapes): resident blocks per SM are 2 for
 * 64x128 (101 KB smem) and 3 for 64x64 (68 KB); a 64x128 block costs ~1.36x
 * a 64x64 one for the 32-blocks, ~0.86x for K-quants (their dequantization
 * dominates and is shared by twice the tokens). Pick the lower waves x cost. */
template <int T>
static void launch_mm_q(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
    /* LLORCH_CUDA_MM_BN=64|128 forces a tile (benchmarks, tests); read per
     * call (a prefill matmul is ~100 us; getenv is ~0.1 us) */
    const char *e = getenv("LLORCH_CUDA_MM_BN");
    int bn = e ? atoi(e) : 0;
    if (bn != 64 && bn != 128) {
        const int64_t mblk = cu_div_up(w->ne1, MM_BM);
        const int64_t w128 = (mblk * cu_div_up(rows, 128) + 2 * c->sm_count - 1) / (2 * c->sm_count);
        const int64_t w64 = (mblk * cu_div_up(rows, 64) + 3 * c->sm_count - 1) / (3 * c->sm_count);
        const double f128 = qfmt<T>::QK == 256 ? 0.86 : 1.36;
        bn = (double)w128 * f128 <= (double)w64 ? 128 : 64;
    }
    if (bn == 128) launch_mm_q_bn<T, 128>(c, w, x, y, rows);
    else launch_mm_q_bn<T, 64>(c, w, x, y, rows);
}

void cu_mm(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows) {
    if (rows <= 0 || w->ne1 <= 0) return;
    dim3 gf(cu_div_up(w->ne1, 64), cu_div_up(rows, 64));
    const uint8_t *wd = (const uint8_t *)w->data;
    switch (w->type) {
    case QT_F32: cu_launch(c, gf, 256, 0, k_mm_f<QT_F32>, wd, w->nb1, (int)w->ne0, (int)w->ne1, x, rows, y); LAUNCH_CHECK(c, "mm_f32"); return;
    case QT_F16: cu_launch(c, gf, 256, 0, k_mm_f<QT_F16>, wd, w->nb1, (int)w->ne0, (int)w->ne1, x, rows, y); LAUNCH_CHECK(c, "mm_f16"); return;
    case QT_BF16: cu_launch(c, gf, 256, 0, k_mm_f<QT_BF16>, wd, w->nb1, (int)w->ne0, (int)w->ne1, x, rows, y); LAUNCH_CHECK(c, "mm_bf16"); return;
    default: break;
    }
    if (w->ne0 % 32) {
        cu_latch(c, cudaErrorNotSupported, "mm: row length not a multiple of 32", __FILE__, __LINE__);
        return;
    }
    if (cu_mm_tc(c, w, x, y, rows)) {
        LAUNCH_CHECK(c, "mm_tc");
        return;
    }
    int handled = 1;
#define MQ(T) launch_mm_q<T>(c, w, x, y, rows)
    QFMT_DISPATCH(w->type, MQ)
#undef MQ
    if (!handled) {
        cu_latch(c, cudaErrorNotSupported, "mm: unsupported tensor type", __FILE__, __LINE__);
        return;
    }
    LAUNCH_CHECK(c, "mm_q");
}
