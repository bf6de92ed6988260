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
 * previous WMMA kernel (mm.cu) instead. */
#include <stdlib.h>
#include <string.h>

#include "mm_tc.cuh"
#include "quants.cuh"

#define TC_BK 32  /* K per pipeline step: 4 subs of 8 per row */
#define TC_LDS 40 /* halves per shared row: 80 B, 8 rows of ldmatrix hit 8 distinct 16-byte bank groups */
#define TC_RK 256 /* K per raw chunk */

/* per-format raw chunk geometry */
template <int T> struct tc_raw {
    enum {
        BLK = TC_RK / qfmt<T>::QK, /* blocks per chunk per row: 8 or 1 */
        CB = BLK * qfmt<T>::BYTES, /* bytes of a full chunk of one row */
        /* shared bytes per row: the 4-byte-aligned window around CB bytes
         * spans at most round4(CB) + 4; rounded to 16, and to an odd
         * multiple of 16 so the 8 rows a warp dequantizes fall on distinct
         * banks */
        RB0 = (((CB + 3) / 4 * 4 + 4) + 15) / 16 * 16,
        RB = RB0 % 32 == 0 ? RB0 + 16 : RB0,
    };
};

template <int T, int BM, int BN> struct tc_smem {
    enum { RAW = 2 * BM * tc_raw<T>::RB, BYTES = RAW + 2 * (BM + BN) * TC_LDS * 2 };
};

/* ---- PTX wrappers ---------------------------------------------------------------------- */
__device__ __forceinline__ void tc_cp4(void *sdst, const void *gsrc) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(sdst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(gsrc) : "memory");
}
__device__ __forceinline__ void tc_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void tc_cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void tc_ldsm4(uint32_t r[4], const __half *p) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
/* c += a (16x16, row) * b (16x8, col) */
__device__ __forceinline__ void tc_mma(float c[4], const uint32_t a[4], const uint32_t b0, const uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t tc_h2(float a, float b) {
    __half2 h = __floats2half2_rn(a, b);
    return *(uint32_t *)&h;
}

/* ---- dequantization of one sub into 8 fp16 ------------------------------------------------- */
/* Generic: quants.cuh deq (fp32), rounded to fp16 pairs. */
template <int T> struct tc_deq {
    __device__ static __forceinline__ uint4 run(const uint8_t *b, int s) {
        float v[8];
        qfmt<T>::deq(b, s, v);
        return make_uint4(tc_h2(v[0], v[1]), tc_h2(v[2], v[3]), tc_h2(v[4], v[5]), tc_h2(v[6], v[7]));
    }
};
/* Formats whose weights are (n - off) * d with small unsigned n and an fp16
 * d: the bytes n go into fp16 mantissas (0x6400 | n = 1024 + n), then one
 * exact subtraction and one fp16 multiplication: the same single rounding
 * of the exact product as the generic path, in ~14 instead of ~45
 * instructions per 8 weights. lo/hi: bytes n of elements e0.. and e1.. */
__device__ __forceinline__ uint4 tc_deq_bytes(uint32_t lo, uint32_t hi, int off, uint16_t dbits) {
    const __half2 bias = __half2half2(__ushort_as_half((unsigned short)(0x6400 + off)));
    const __half2 d = __half2half2(__ushort_as_half(dbits));
    uint32_t r[4];
    const uint32_t in[2] = {lo, hi};
#pragma unroll
    for (int k = 0; k < 2; k++) {
#pragma unroll
        for (int p = 0; p < 2; p++) {
            const uint32_t u = __byte_perm(in[k], 0x64646464u, p ? 0x5342 : 0x5140);
            const __half2 h = __hmul2(__hsub2(*(const __half2 *)&u, bias), d);
            r[2 * k + p] = *(const uint32_t *)&h;
        }
    }
    return make_uint4(r[0], r[1], r[2], r[3]);
}
template <> struct tc_deq<QT_Q4_0> {
    __device__ static __forceinline__ uint4 run(const uint8_t *b, int s) {
        const uint32_t q = ld_u32_a2(b + 2 + 4 * s);
        return tc_deq_bytes(q & 0x0F0F0F0Fu, (q >> 4) & 0x0F0F0F0Fu, 8, ld_u16(b));
    }
};
template <> struct tc_deq<QT_Q5_0> {
    __device__ static __forceinline__ uint4 run(const uint8_t *b, int s) {
        uint32_t lo, hi;
        qfmt<QT_Q5_0>::vals(b, s, lo, hi);
        return tc_deq_bytes(lo, hi, 16, ld_u16(b));
    }
};
template <> struct tc_deq<QT_Q8_0> {
    __device__ static __forceinline__ uint4 run(const uint8_t *b, int s) {
        /* int8 q + 128 = q ^ 0x80 as an unsigned byte */
        const uint32_t q0 = ld_u32_a2(b + 2 + 8 * s) ^ 0x80808080u, q1 = ld_u32_a2(b + 6 + 8 * s) ^ 0x80808080u;
        return tc_deq_bytes(q0, q1, 128, ld_u16(b));
    }
};

/* K-quants: per 32-element group an fp32 scale (and min) from the super-block
 * header, rounded to fp16 once (one more rounding than the generic path:
 * relative 2^-11 on the group's scale, within TOL_MM16). n exact in fp16
 * (0x6400 | n minus 1024). w = n * dlo - mlo (elements e0..), n * dhi - mhi
 * (e1..); with off: w = (n - off) * d. */
__device__ __forceinline__ __half2 tc_n2(uint32_t u, int p, int off) {
    const uint32_t v = __byte_perm(u, 0x64646464u, p ? 0x5342 : 0x5140);
    return __hsub2(*(const __half2 *)&v, __half2half2(__ushort_as_half((unsigned short)(0x6400 + off))));
}
__device__ __forceinline__ uint32_t tc_u(__half2 h) { return *(const uint32_t *)&h; }
__device__ __forceinline__ uint4 tc_deq_affine(uint32_t lo, uint32_t hi, float dlo, float mlo, float dhi, float mhi) {
    const __half2 d0 = __float2half2_rn(dlo), m0 = __float2half2_rn(-mlo);
    const __half2 d1 = __float2half2_rn(dhi), m1 = __float2half2_rn(-mhi);
    return make_uint4(tc_u(__hfma2(tc_n2(lo, 0, 0), d0, m0)), tc_u(__hfma2(tc_n2(lo, 1, 0), d0, m0)),
                      tc_u(__hfma2(tc_n2(hi, 0, 0), d1, m1)), tc_u(__hfma2(tc_n2(hi, 1, 0), d1, m1)));
}
__device__ __forceinline__ uint4 tc_deq_off(uint32_t lo, uint32_t hi, int off, float dlo, float dhi) {
    const __half2 d0 = __float2half2_rn(dlo), d1 = __float2half2_rn(dhi);
    return make_uint4(tc_u(__hmul2(tc_n2(lo, 0, off), d0)), tc_u(__hmul2(tc_n2(lo, 1, off), d0)),
                      tc_u(__hmul2(tc_n2(hi, 0, off), d1)), tc_u(__hmul2(tc_n2(hi, 1, off), d1)));
}
template <> struct tc_deq<QT_Q4_K> {
    __device__ static __forceinline__ uint4 run(const uint8_t *b, int s) {
        const int c = s >> 3, k = s & 7;
        const float d = h2f(ld_u16(b)), dmin = h2f(ld_u16(b + 2));
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * c, b + 4, sc0, m0);
        scale_min_k4(2 * c + 1, b + 4, sc1, m1);
        const uint32_t q = ld_u32_a4(b + 16 + 32 * c + 4 * k);
        return tc_deq_affine(q & 0x0F0F0F0Fu, (q >> 4) & 0x0F0F0F0Fu, d * (float)sc0, dmin * (float)m0,
                             d * (float)sc1, dmin * (float)m1);
    }
};
template <> struct tc_deq<QT_Q5_K> {
    __device__ static __forceinline__ uint4 run(const uint8_t *b, int s) {
        const int c = s >> 3;
        const float d = h2f(ld_u16(b)), dmin = h2f(ld_u16(b + 2));
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * c, b + 4, sc0, m0);
        scale_min_k4(2 * c + 1, b + 4, sc1, m1);
        uint32_t lo, hi;
        qfmt<QT_Q5_K>::vals(b, s, lo, hi);
        return tc_deq_affine(lo, hi, d * (float)sc0, dmin * (float)m0, d * (float)sc1, dmin * (float)m1);
    }
};
template <> struct tc_deq<QT_Q6_K> {
    __device__ static __forceinline__ uint4 run(const uint8_t *b, int s) {
        typedef qfmt<QT_Q6_K> F;
        const float d = h2f(ld_u16(b + 208));
        const int j0 = F::e0(s) >> 4, j1 = F::e1(s) >> 4;
        uint32_t lo, hi;
        F::vals(b, s, lo, hi);
        return tc_deq_off(lo, hi, 32, d * (float)(int8_t)b[192 + j0], d * (float)(int8_t)b[192 + j1]);
    }
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
    int handled = 1;
#define TQ(T) tc_run<T>(c, w, x, y, rows)
    QFMT_DISPATCH(w->type, TQ)
#undef TQ
    return handled;
}
