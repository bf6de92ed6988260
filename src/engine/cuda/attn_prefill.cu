/* attn_prefill.cu — causal GQA prefill attention on the tensor cores
 * (flash-attention-2 style, mma.sync m16n8k16 fp16 -> fp32, inline PTX).
 *
 * out[r][h*HD + d] = sum_j softmax_j(scale * q[r,h] . k[j,kvh]) v[j,kvh][d],
 * j = 0..pos[r], kvh = h / group; the K/V cache rows are [n_ctx][kv_dim]
 * halves, kv_dim = (n_head / group) * HD.
 *
 * Work split: one block (4 warps, 128 threads) per (head, 64 query rows);
 * warp w owns rows r0 + 16w .. +15, lane (g = lane/4, t = lane%4) owns rows
 * g and g+8 of them (the mma accumulator layout). Keys are walked in tiles of
 * 64 from cache row 0 to the block's largest pos (tiles past it are never
 * loaded: the causal skip); a warp whose 16 rows all end before a tile skips
 * its arithmetic. Per tile:
 *   - K and V tiles [64][HD] fp16 arrive in shared memory by cp.async, double
 *     buffered (tile i+1 is in flight while tile i is computed). Rows are
 *     padded to HD+8 halves so each ldmatrix phase (8 rows x 16 bytes) hits
 *     32 distinct banks. Key rows past the block's largest pos are zero-filled
 *     and never read from global memory (they may lie past the cache).
 *   - S = Q K^T: Q fragments (rounded to fp16) sit in registers for the whole
 *     block (HD/16 x 4 words); K fragments by ldmatrix; fp32 accumulators.
 *   - Causal mask from pos[] (any values, read on the device; only tiles that
 *     reach past the warp's smallest pos pay for the compare), online softmax
 *     in base 2 (scale * log2 e folded into one multiply): row max over the
 *     thread's 16 scores then the lane quad (shfl_xor 1, 2); the row sum stays
 *     per-thread partial until the end.
 *   - P (fp16) is formed in registers directly as the A operand of O += P V
 *     (the S accumulator layout of two n8 blocks is the A layout of one k16
 *     step); V fragments by ldmatrix.trans; O accumulates in fp32.
 * Blocks are numbered heavy-first (the last query block of every head is
 * dispatched first) so the long causal blocks do not form the tail.
 *
 * Numerics (bound used by tests/gpu/test_cuda_ops.c, TOL_ATT: 3e-3 relative
 * L2 up to 150 keys, growing as sqrt(keys/150) beyond): the CPU reference
 * (cpu_attn.c, llama.cpp's CPU flash attention) rounds q to fp16 too, so the
 * scores differ only in fp32 summation order. Here the probabilities are
 * rounded to fp16 (relative 2^-11 = 4.9e-4 per weight) and the row sum is
 * taken over the rounded values, so O is an exact fp32 average with weights
 * perturbed by <= 2^-11 relative: <= 4.9e-4 * max|v| per element, ~3e-4
 * relative L2 for random data. The reference itself rounds its accumulator
 * to fp16 after every key (~1e-3 relative after a few hundred keys), which
 * dominates the difference; both stay well inside TOL_ATT.
 *
 * Head dims 64, 80, 96, 128 (multiples of 16: the k16 step of Q K^T). Other
 * shapes, misaligned caches and decode (rows <= 4) stay with attention.cu. */
#include <limits.h>
#include <math.h>

#include "common.cuh"

#define AP_BQ 64 /* query rows per block: 4 warps x 16 */
#define AP_BK 64 /* keys per tile */

/* ---- PTX helpers ----------------------------------------------------------------- */
__device__ __forceinline__ uint32_t ap_smem(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared, asynchronous; bytes = 0 writes zeros and reads nothing */
__device__ __forceinline__ void ap_cp16(uint32_t dst, const void *src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}
__device__ __forceinline__ void ap_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* all but the most recent group have landed (for this thread) */
__device__ __forceinline__ void ap_wait1() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }

__device__ __forceinline__ void ap_ldm4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}
__device__ __forceinline__ void ap_ldm4t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr));
}

/* c[16x8] += a[16x16] b[16x8], fp16 inputs, fp32 accumulators */
__device__ __forceinline__ void ap_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* two floats -> one register of two halves (lo = the smaller column index) */
__device__ __forceinline__ uint32_t ap_pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}
__device__ __forceinline__ float2 ap_unpack(uint32_t u) { return __half22float2(*(__half2 *)&u); }

/* ---- the kernel ------------------------------------------------------------------- */
/* grid (n_head, ceil(rows / 64)), 128 threads, dynamic shared memory
 * 2 buffers x (K, V) x [64][HD + 8] halves */
template <int HD>
__global__ void __launch_bounds__(128)
k_attn_mma(const float *q, int ld_q, const __half *kc, const __half *vc, const int32_t *pos, int rows, int n_head,
           int group, float scale_log2, float *out) {
    cu_pdl_begin();
    constexpr int LDS = HD + 8;       /* shared row stride, halves */
    constexpr int NB = AP_BK / 8;     /* n8 blocks of S per tile */
    constexpr int KS = HD / 16;       /* k16 steps of Q K^T */
    constexpr int ND = HD / 8;        /* n8 blocks of O */
    constexpr int CPR = HD / 8;       /* 16-byte chunks per K/V row */
    constexpr int TILE = AP_BK * LDS; /* halves per K (or V) tile buffer */
    static_assert(HD % 16 == 0 && (AP_BK * CPR) % 128 == 0, "head dim");
    extern __shared__ __align__(16) unsigned char ap_sm[];
    __half *Ks = (__half *)ap_sm; /* [2][AP_BK][LDS] */
    __half *Vs = Ks + 2 * TILE;   /* [2][AP_BK][LDS] */
    __shared__ int sh_kmax;

    const int h = blockIdx.x;
    const int r0 = (gridDim.y - 1 - blockIdx.y) * AP_BQ; /* heavy-first */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;
    const int kvh = h / group;
    const int64_t kv_dim = (int64_t)(n_head / group) * HD;

    /* this thread's two rows; padding rows (>= rows) get pos -1: fully masked */
    const int ra = r0 + warp * 16 + g, rb = ra + 8;
    const int pa = ra < rows ? pos[ra] : -1, pb = rb < rows ? pos[rb] : -1;
    int wmax = max(pa, pb);
    int wmin = min(ra < rows ? pa : INT_MAX, rb < rows ? pb : INT_MAX);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        wmax = max(wmax, __shfl_xor_sync(0xffffffffu, wmax, o));
        wmin = min(wmin, __shfl_xor_sync(0xffffffffu, wmin, o));
    }
    if (tid == 0) sh_kmax = -1;
    __syncthreads();
    if (lane == 0) atomicMax(&sh_kmax, wmax);
    __syncthreads();
    const int kmax = sh_kmax; /* the block's last key */
    if (kmax < 0) return;     /* no valid row (not launched that way) */

    /* Q fragments (A operand, row-major 16 x HD), rounded to fp16 as the CPU
     * reference does; padding rows are zero */
    uint32_t qf[KS][4];
    {
        const float *qa = q + (int64_t)(ra < rows ? ra : 0) * ld_q + (int64_t)h * HD;
        const float *qb = q + (int64_t)(rb < rows ? rb : 0) * ld_q + (int64_t)h * HD;
        const bool va = ra < rows, vb = rb < rows;
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            const int d = ks * 16 + 2 * t;
            qf[ks][0] = va ? ap_pack(qa[d], qa[d + 1]) : 0u;
            qf[ks][1] = vb ? ap_pack(qb[d], qb[d + 1]) : 0u;
            qf[ks][2] = va ? ap_pack(qa[d + 8], qa[d + 9]) : 0u;
            qf[ks][3] = vb ? ap_pack(qb[d + 8], qb[d + 9]) : 0u;
        }
    }

    /* K/V tile `tile` into buffer `buf`: chunk i = (key i / CPR, 8 halves at
     * (i % CPR) * 8); keys past kmax are zero-filled */
    auto load = [&](int tile, int buf) {
        const int t0 = tile * AP_BK;
        __half *ks = Ks + buf * TILE, *vs = Vs + buf * TILE;
#pragma unroll
        for (int it = 0; it < AP_BK * CPR / 128; it++) {
            const int i = tid + 128 * it;
            const int j = i / CPR, c = (i % CPR) * 8;
            const int key = t0 + j;
            const int ok = key <= kmax;
            const int64_t off = ok ? (int64_t)key * kv_dim + (int64_t)kvh * HD + c : 0;
            ap_cp16(ap_smem(ks + j * LDS + c), kc + off, ok ? 16 : 0);
            ap_cp16(ap_smem(vs + j * LDS + c), vc + off, ok ? 16 : 0);
        }
    };

    float o[ND][4];
#pragma unroll
    for (int nd = 0; nd < ND; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
    float m_a = -INFINITY, m_b = -INFINITY; /* running max (base-2 scaled) of rows g, g+8 */
    float l_a = 0.0f, l_b = 0.0f;           /* this thread's part of the row sums */

    /* ldmatrix lane addresses inside a tile (halves):
     * K (non-trans), x4 = (keys nb..+7 | nb+8..+15) x (d lo | d hi):
     *   key = (lane & 7) + ((lane >> 4) & 1) * 8, d = ((lane >> 3) & 1) * 8
     * V (trans), x4 = (keys lo | keys hi) x (d nd | nd+1):
     *   key = (lane & 7) + ((lane >> 3) & 1) * 8, d = ((lane >> 4) & 1) * 8 */
    const int k_lane = ((lane & 7) + ((lane >> 4) & 1) * 8) * LDS + ((lane >> 3) & 1) * 8;
    const int v_lane = ((lane & 7) + ((lane >> 3) & 1) * 8) * LDS + ((lane >> 4) & 1) * 8;

    const int ntiles = kmax / AP_BK + 1;
    load(0, 0);
    ap_commit();
    for (int it = 0; it < ntiles; it++) {
        if (it + 1 < ntiles) load(it + 1, (it + 1) & 1);
        ap_commit(); /* possibly empty: keeps "all but the newest" = tile it */
        ap_wait1();
        __syncthreads(); /* every thread's copies of tile it have landed */
        const int t0 = it * AP_BK;
        if (t0 <= wmax) { /* warp-uniform */
            const uint32_t ks_base = ap_smem(Ks + (it & 1) * TILE);
            const uint32_t vs_base = ap_smem(Vs + (it & 1) * TILE);

            /* S = Q K^T, [16 rows][64 keys] per warp */
            float s[NB][4];
#pragma unroll
            for (int nb = 0; nb < NB; nb++) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < KS; ks++) {
#pragma unroll
                for (int nb = 0; nb < NB; nb += 2) {
                    uint32_t b0, b1, b2, b3;
                    ap_ldm4(b0, b1, b2, b3, ks_base + 2u * (uint32_t)(nb * 8 * LDS + ks * 16 + k_lane));
                    ap_mma(s[nb], qf[ks], b0, b1);
                    ap_mma(s[nb + 1], qf[ks], b2, b3);
                }
            }

            /* scale, causal mask, row max */
            const bool need_mask = t0 + AP_BK - 1 > wmin;
            float mxa = m_a, mxb = m_b;
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    s[nb][e] *= scale_log2;
                    if (need_mask) {
                        const int key = t0 + nb * 8 + 2 * t + (e & 1);
                        if (key > (e < 2 ? pa : pb)) s[nb][e] = -INFINITY;
                    }
                }
                mxa = fmaxf(mxa, fmaxf(s[nb][0], s[nb][1]));
                mxb = fmaxf(mxb, fmaxf(s[nb][2], s[nb][3]));
            }
            mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 1));
            mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 2));
            mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 1));
            mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 2));
            /* a row with no unmasked key yet keeps max -inf: subtract 0 then,
             * so exp2 gives 0 and never NaN */
            const float ba = mxa == -INFINITY ? 0.0f : mxa, bb = mxb == -INFINITY ? 0.0f : mxb;
            const float ca = exp2f(m_a - ba), cb = exp2f(m_b - bb);
            m_a = mxa;
            m_b = mxb;
            l_a *= ca;
            l_b *= cb;
#pragma unroll
            for (int nd = 0; nd < ND; nd++) {
                o[nd][0] *= ca;
                o[nd][1] *= ca;
                o[nd][2] *= cb;
                o[nd][3] *= cb;
            }

            /* O += P V, one k16 step per 16 keys */
#pragma unroll
            for (int kk = 0; kk < AP_BK / 16; kk++) {
                uint32_t pf[4];
                pf[0] = ap_pack(exp2f(s[2 * kk][0] - ba), exp2f(s[2 * kk][1] - ba));
                pf[1] = ap_pack(exp2f(s[2 * kk][2] - bb), exp2f(s[2 * kk][3] - bb));
                pf[2] = ap_pack(exp2f(s[2 * kk + 1][0] - ba), exp2f(s[2 * kk + 1][1] - ba));
                pf[3] = ap_pack(exp2f(s[2 * kk + 1][2] - bb), exp2f(s[2 * kk + 1][3] - bb));
                /* the row sums over the fp16-rounded weights (see the header) */
                const float2 p0 = ap_unpack(pf[0]), p1 = ap_unpack(pf[1]);
                const float2 p2 = ap_unpack(pf[2]), p3 = ap_unpack(pf[3]);
                l_a += (p0.x + p0.y) + (p2.x + p2.y);
                l_b += (p1.x + p1.y) + (p3.x + p3.y);
#pragma unroll
                for (int nd = 0; nd < ND; nd += 2) {
                    uint32_t b0, b1, b2, b3;
                    ap_ldm4t(b0, b1, b2, b3, vs_base + 2u * (uint32_t)(kk * 16 * LDS + nd * 8 + v_lane));
                    ap_mma(o[nd], pf, b0, b1);
                    ap_mma(o[nd + 1], pf, b2, b3);
                }
            }
        }
        __syncthreads(); /* tile it is consumed before its buffer is refilled */
    }

    /* the quad holds the row sums in 4 parts */
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
    const int64_t ld_o = (int64_t)n_head * HD;
    if (ra < rows) {
        const float inv = 1.0f / l_a;
        float *oa = out + (int64_t)ra * ld_o + (int64_t)h * HD + 2 * t;
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            oa[nd * 8] = o[nd][0] * inv;
            oa[nd * 8 + 1] = o[nd][1] * inv;
        }
    }
    if (rb < rows) {
        const float inv = 1.0f / l_b;
        float *ob = out + (int64_t)rb * ld_o + (int64_t)h * HD + 2 * t;
#pragma unroll
        for (int nd = 0; nd < ND; nd++) {
            ob[nd * 8] = o[nd][2] * inv;
            ob[nd * 8 + 1] = o[nd][3] * inv;
        }
    }
}

/* ---- host entry -------------------------------------------------------------------- */
template <int HD>
static void ap_launch(cu_ctx *c, const float *q, int ld_q, const __half *k, const __half *v, const int32_t *pos,
                      int rows, int n_head, int group, float scale, float *out) {
    const size_t smem = (size_t)2 * 2 * AP_BK * (HD + 8) * sizeof(__half);
    /* more than the default 48 KiB of dynamic shared memory needs an opt-in,
     * once per process (the attribute belongs to the function; a repeat is
     * harmless, so a race between two contexts is too) */
    static int opted;
    if (smem > 48 * 1024 && !opted) {
        if (CUDA_CHECK(c, cudaFuncSetAttribute(k_attn_mma<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem)))
            return;
        opted = 1;
    }
    const float scale_log2 = scale * 1.4426950408889634f;
    dim3 grid((unsigned)n_head, cu_div_up(rows, AP_BQ));
    cu_launch(c, grid, 128, smem, k_attn_mma<HD>, q, ld_q, k, v, pos, rows, n_head, group, scale_log2, out);
    LAUNCH_CHECK(c, "attention_mma");
}

int cu_attn_prefill_mma(cu_ctx *c, const float *q, int ld_q, const uint16_t *kc, const uint16_t *vc,
                        const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                        float *out) {
    /* 16-byte cp.async of cache rows: the cache bases must be 16-byte aligned
     * (kv_dim * 2 and kvh * HD * 2 are, for these head dims) */
    if ((((uintptr_t)kc) | ((uintptr_t)vc)) & 15) return 0;
    const int group = n_head / n_head_kv;
    const __half *k = (const __half *)kc, *v = (const __half *)vc;
    switch (head_dim) {
    case 64: ap_launch<64>(c, q, ld_q, k, v, pos, rows, n_head, group, scale, out); return 1;
    case 80: ap_launch<80>(c, q, ld_q, k, v, pos, rows, n_head, group, scale, out); return 1;
    case 96: ap_launch<96>(c, q, ld_q, k, v, pos, rows, n_head, group, scale, out); return 1;
    case 128: ap_launch<128>(c, q, ld_q, k, v, pos, rows, n_head, group, scale, out); return 1;
    default: return 0;
    }
}
