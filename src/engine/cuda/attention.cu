/* attention.cu — causal GQA attention over the fp16 KV cache.
 *
 * out[r][h*hd + d] = sum_j softmax_j(scale * q[r,h] . k[j,kvh]) v[j,kvh][d],
 * j = 0..pos[r], kvh = h / (n_head / n_head_kv); k/v rows have kv_dim =
 * n_head_kv*hd halves.
 *
 * One block (4 warps) per (head, query row, split). Each warp walks keys
 * j = start+warp, start+warp+4, ... with an online softmax (running max m,
 * sum l, output acc in registers: lane owns dims lane + 32e, e < EPL); the 4
 * warps are merged through shared memory. Positions are read on the device,
 * so the split bounds are computed in the kernel and a captured graph stays
 * valid as the context grows.
 *
 * Decode (rows <= 4): the keys are split over S blocks (flash-decoding) so
 * that n_head * rows * S fills the SMs; each split writes (m, l, acc[hd]) to
 * the context's scratch and k_attn_combine merges them. Prefill (rows > 4):
 * head_dim 64/80/96/128 runs on the tensor cores (attn_prefill.cu); other
 * head dims <= 128 and multiples of 8 run k_attn_tiled below (also selected
 * for every prefill by LLORCH_CUDA_ATTN_TILED=1, for comparison); otherwise
 * this kernel with S = 1.
 *
 * gpt-oss (attention_ext): a sliding window narrows the keys of row r to
 * t > pos[r] - window (the split bounds and the tiled kernel's masks start
 * there); a sink (per head, an extra logit with no value) is folded in at
 * the end, where (M, L, acc) are final: M' = max(M, sink), out = acc e^(M-M')
 * / (L e^(M-M') + e^(sink-M')). The tensor-core prefill kernel has neither,
 * so a prefill with sinks or a window runs the tiled kernel (slower for the
 * head dims the mma kernel serves: docs/ARCHITECTURE.md, gpt-oss). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn_dec.cuh"

#define ATTN_WARPS 4

/* cnt != NULL (S > 1): the last split block merges (attn_dec.cuh) */
template <int EPL>
__global__ void __launch_bounds__(ATTN_WARPS * 32)
k_attn(const float *q, int ld_q, const __half *kc, const __half *vc, const int32_t *pos, int n_head, int group,
       int hd, float scale, int S, float *out, float *part, unsigned *cnt, const float *sinks, int window) {
    cu_pdl_begin();
    attn_dec_item<EPL, ATTN_WARPS>(q, ld_q, kc, vc, pos, n_head, group, hd, scale, S, out, part, cnt, sinks, window,
                                   blockIdx.x, blockIdx.y, blockIdx.z);
}

/* ---- prefill: tiled over queries and keys ----------------------------------------------
 * One block (4 warps) per (head, 16 query rows). Keys are walked in tiles of
 * 32: the tile's K and V rows are converted once into shared memory and used
 * by all 16 queries (the per-row kernel above re-reads them per query). Lane
 * j of a warp scores key j of the tile (K rows padded by one float so the 32
 * lanes hit 32 banks), the online softmax runs per query row across the warp,
 * and acc (lane owns dims lane + 32e) takes the 32 probabilities by shuffle.
 * Each warp owns 4 query rows. head_dim <= 128 and a multiple of 8 (16-byte
 * K/V vectors). */
#define AQ 16  /* query rows per block */
#define AK 32  /* keys per tile */
/* one query row i (compile-time constant) of the warp against the key tile */
#define ATT_ROW(i)                                                                  \
    if (mypos[i] >= t0 && t0 + AK > mylo[i]) { /* warp-uniform; >= 1 key unmasked */ \
        const float *qr = Qs[warp * 4 + (i)];                                      \
        float sc = 0.0f;                                                           \
        for (int d = 0; d < hd; d++) sc += qr[d] * Ks[lane][d];                    \
        if (t0 + lane > mypos[i] || t0 + lane < mylo[i]) sc = -INFINITY;           \
        const float mn = fmaxf(m[i], warp_max(sc));                                \
        const float p = expf(sc - mn), corr = expf(m[i] - mn);                     \
        l[i] = l[i] * corr + warp_sum(p);                                          \
        _Pragma("unroll") for (int e = 0; e < EPL; e++) acc[i][e] *= corr;         \
        _Pragma("unroll 8") for (int jj = 0; jj < AK; jj++) {                      \
            const float pj = __shfl_sync(0xffffffffu, p, jj);                      \
            _Pragma("unroll") for (int e = 0; e < EPL; e++) {                      \
                const int d = lane + 32 * e;                                       \
                acc[i][e] += pj * (d < hd ? Vs[jj][d] : 0.0f);                     \
            }                                                                      \
        }                                                                          \
        m[i] = mn;                                                                 \
    }

template <int EPL>
__global__ void __launch_bounds__(128)
k_attn_tiled(const float *q, int ld_q, const __half *kc, const __half *vc, const int32_t *pos, int rows, int n_head,
             int group, int hd, float scale, float *out, const float *sinks, int window) {
    cu_pdl_begin();
    __shared__ float Ks[AK][128 + 1];
    __shared__ float Vs[AK][128];
    __shared__ float Qs[AQ][128];
    __shared__ int sh_kmax, sh_kmin;
    const int h = blockIdx.x, r0 = blockIdx.y * AQ;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int kv_dim = (n_head / group) * hd, kvh = h / group;
    if (tid == 0) {
        sh_kmax = -1;
        sh_kmin = 0x7fffffff;
    }
    __syncthreads();
    if (tid < AQ && r0 + tid < rows) {
        const int p = pos[r0 + tid];
        atomicMax(&sh_kmax, p);
        atomicMin(&sh_kmin, window > 0 && p + 1 > window ? p + 1 - window : 0);
    }
    for (int i = tid; i < AQ * hd; i += 128) {
        const int rr = i / hd, d = i % hd;
        Qs[rr][d] = r0 + rr < rows ? q[(int64_t)(r0 + rr) * ld_q + (int64_t)h * hd + d] * scale : 0.0f;
    }
    __syncthreads();
    const int kmax = sh_kmax, tstart = (sh_kmin / AK) * AK;
    int mypos[4], mylo[4];
    float m[4], l[4], acc[4][EPL];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = r0 + warp * 4 + i;
        mypos[i] = r < rows ? pos[r] : -1;
        mylo[i] = window > 0 && mypos[i] + 1 > window ? mypos[i] + 1 - window : 0;
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; e++) acc[i][e] = 0.0f;
    }
    /* K/V tiles move as 16-byte vectors (8 halves), the next tile's loads
     * issued into registers before the current tile is computed, so the L2
     * latency is hidden. (Measured: 127 -> 123 us per Qwen prefill layer; the
     * kernel is instruction-bound in the scalar score/PV loops, docs/PERF.md.) */
    const int vpr = hd / 8;
    uint4 pk[4], pv[4];
    auto fetch = [&](int t) {
#pragma unroll
        for (int it = 0; it < 4; it++) {
            const int i = tid + 128 * it;
            pk[it] = pv[it] = make_uint4(0, 0, 0, 0);
            if (i < AK * vpr) {
                const int j = i / vpr, c8 = (i % vpr) * 8;
                if (t + j <= kmax) {
                    const int64_t off = (int64_t)(t + j) * kv_dim + (int64_t)kvh * hd + c8;
                    pk[it] = *(const uint4 *)(kc + off);
                    pv[it] = *(const uint4 *)(vc + off);
                }
            }
        }
    };
    fetch(tstart);
    for (int t0 = tstart; t0 <= kmax; t0 += AK) {
        __syncthreads(); /* the previous tile is consumed */
#pragma unroll
        for (int it = 0; it < 4; it++) {
            const int i = tid + 128 * it;
            if (i < AK * vpr) {
                const int j = i / vpr, c8 = (i % vpr) * 8;
                const __half2 *hk = (const __half2 *)&pk[it], *hv = (const __half2 *)&pv[it];
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float2 fk = __half22float2(hk[e]), fv = __half22float2(hv[e]);
                    Ks[j][c8 + 2 * e] = fk.x;
                    Ks[j][c8 + 2 * e + 1] = fk.y;
                    Vs[j][c8 + 2 * e] = fv.x;
                    Vs[j][c8 + 2 * e + 1] = fv.y;
                }
            }
        }
        __syncthreads();
        if (t0 + AK <= kmax) fetch(t0 + AK);
        /* 4 query rows per warp, written out with constant indices */
        ATT_ROW(0);
        ATT_ROW(1);
        ATT_ROW(2);
        ATT_ROW(3);
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int r = r0 + warp * 4 + i;
        if (r >= rows) continue;
        float *o = out + (int64_t)r * n_head * hd + (int64_t)h * hd;
        float f = 1.0f, L = l[i];
        if (sinks) {
            const float sk = sinks[h], Mp = fmaxf(m[i], sk);
            f = expf(m[i] - Mp);
            L = L * f + expf(sk - Mp);
        }
#pragma unroll
        for (int e = 0; e < EPL; e++) {
            const int d = lane + 32 * e;
            if (d < hd) o[d] = acc[i][e] * f / L;
        }
    }
}

/* merges the S splits of (row, head): grid (n_head, rows) */
__global__ void k_attn_combine(const float *part, int n_head, int hd, int S, float *out, const float *sinks) {
    cu_pdl_begin();
    attn_combine_one(part, n_head, hd, S, out, blockIdx.x, blockIdx.y, sinks);
}

void cu_attention(cu_ctx *c, const float *q, int ld_q, const uint16_t *kc, const uint16_t *vc, const int32_t *pos,
                  int rows, int n_head, int n_head_kv, int head_dim, float scale, float *out) {
    cu_attention_ext(c, q, ld_q, kc, vc, pos, rows, n_head, n_head_kv, head_dim, scale, NULL, 0, out);
}

void cu_attention_ext(cu_ctx *c, const float *q, int ld_q, const uint16_t *kc, const uint16_t *vc,
                      const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                      const float *sinks, int window, float *out) {
    if (rows <= 0 || n_head <= 0) return;
    if (head_dim <= 0 || head_dim > 256 || n_head_kv <= 0 || n_head % n_head_kv || window < 0) {
        cu_latch(c, cudaErrorInvalidValue, "attention: unsupported head_dim / GQA shape", __FILE__, __LINE__);
        return;
    }
    const int group = n_head / n_head_kv;
    /* splits: fill ~2 blocks per SM for decode; the split depends only on
     * shapes, so a captured graph replays with the same grid */
    int S = 1;
    if (rows <= 4) {
        const int want = (2 * c->sm_count + n_head * rows - 1) / (n_head * rows);
        S = want < 1 ? 1 : (want > 32 ? 32 : want);
        while (S > 1 && (size_t)rows * n_head * S * (head_dim + 2) > CU_ATTN_SCRATCH_FLOATS) S--;
    }
    const int epl = (head_dim + 31) / 32;
    if (rows > 4) {
        /* getenv per prefill call (~0.1 us against tens of us of attention) so
         * a benchmark can switch kernels in one process */
        const char *e = getenv("LLORCH_CUDA_ATTN_TILED");
        if (!(e && !strcmp(e, "1")) && !sinks && window == 0 &&
            cu_attn_prefill_mma(c, q, ld_q, kc, vc, pos, rows, n_head, n_head_kv, head_dim, scale, out))
            return;
    }
    if (rows > 4 && head_dim <= 128 && head_dim % 8 == 0) {
        const __half *k = (const __half *)kc, *v = (const __half *)vc;
        dim3 g((unsigned)n_head, cu_div_up(rows, AQ));
#define AT2(E) cu_launch(c, g, 128, 0, k_attn_tiled<E>, q, ld_q, k, v, pos, rows, n_head, group, head_dim, scale, out, sinks, window)
        switch (epl) {
        case 1: AT2(1); break;
        case 2: AT2(2); break;
        case 3: AT2(3); break;
        default: AT2(4); break;
        }
#undef AT2
        LAUNCH_CHECK(c, "attention_tiled");
        return;
    }
    dim3 grid((unsigned)n_head, (unsigned)rows, (unsigned)S);
    const __half *k = (const __half *)kc, *v = (const __half *)vc;
    /* fused merge (LLORCH_CUDA_ATTN_FUSED=0: the separate combine kernel) */
    unsigned *cnt = (S > 1 && c->attn_cnt && !c->attn_unfused && rows * n_head <= CU_ATTN_MAX_CNT - 2) ? c->attn_cnt : NULL; /* the last 2: persist.cu's barrier */
#define AT(E) cu_launch(c, grid, ATTN_WARPS * 32, 0, k_attn<E>, q, ld_q, k, v, pos, n_head, group, head_dim, scale, S, out, c->attn_part, cnt, sinks, window)
    switch (epl) {
    case 1: AT(1); break;
    case 2: AT(2); break;
    case 3: AT(3); break;
    case 4: AT(4); break;
    case 5: case 6: AT(6); break;
    default: AT(8); break;
    }
#undef AT
    LAUNCH_CHECK(c, "attention");
    if (S > 1 && !cnt) {
        cu_launch(c, dim3((unsigned)n_head, (unsigned)rows), 128, 0, k_attn_combine, c->attn_part, n_head, head_dim, S, out, sinks);
        LAUNCH_CHECK(c, "attention_combine");
    }
}
