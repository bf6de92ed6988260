/* mm_tc_dev.cuh — device pieces shared by the two tensor-core prefill
 * kernels (mm_tc.cu: fp32 activations converted per block; mm_xh.cu: fp16
 * activations converted once per call): the raw-chunk geometry of a block
 * format, PTX wrappers (cp.async, ldmatrix, mma.sync) and the dequantization
 * of one quants.cuh sub into 8 fp16 (tc_deq). mm_tc.cu's header says how
 * they are used. */
#ifndef LLORCH_CUDA_MM_TC_DEV_CUH
#define LLORCH_CUDA_MM_TC_DEV_CUH

#include "quants.cuh"

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

/* ---- PTX wrappers ---------------------------------------------------------------------- */
__device__ __forceinline__ void tc_cp4(void *sdst, const void *gsrc) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(sdst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(gsrc) : "memory");
}
/* 16 bytes, L2 only (.cg): the fp16 activations of mm_xh.cu */
__device__ __forceinline__ void tc_cp16(void *sdst, const void *gsrc) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(sdst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(gsrc) : "memory");
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

#endif
