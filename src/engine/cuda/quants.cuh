/* quants.cuh — device views of the ggml block formats (quant.h), shared by
 * getrows.cu (dequantize), mmv.cu (integer dot) and mm.cu (dequantize into
 * shared memory).
 *
 * Every quantized block is cut into NSUB "subs" of 8 elements: two groups of
 * 4 consecutive elements starting at e0(s) and e1(s) (block-relative). The
 * groups follow the byte layout, so one sub is one or two 32-bit loads:
 *   32-element blocks (Q4_0/Q4_1/Q5_0/Q5_1/MXFP4): NSUB 4, sub s = qs bytes
 *     4s..4s+3: low nibbles are elements 4s.., high nibbles 4s+16..
 *   Q8_0: NSUB 4, elements 8s..8s+7.
 *   Q4_K/Q5_K: NSUB 32, s = 8c + k: qs[32c + 4k ..] low → 64c + 4k, high → 64c + 32 + 4k.
 *   Q2_K/Q3_K: NSUB 32, s = 16h + 8p + k: qs[32h + 4k ..] at shifts 2(2p) and
 *     2(2p+1) → 128h + 64p + 4k and 128h + 64p + 32 + 4k.
 *   Q6_K: NSUB 32, s = 16h + 8p + k: ql[64h + 32p + 4k ..] low → 128h + 32p + 4k,
 *     high → 128h + 32p + 64 + 4k.
 *
 * deq(b, s, v): v[0..3] = elements e0.., v[4..7] = e1.. (exact ggml values).
 * dot(b, s, xq, xd, xs): this sub's share of the ggml vec-dot against the
 * activation quantized to the format's vec_dot_type: xq points at the block's
 * 32 (or 256) int8 activations, xd at its per-32 scales, xs at Q8_1's sums.
 * The integer parts are exactly the CPU reference's (quant_dot.c); only the
 * float summation order differs.
 */
#ifndef LLORCH_CUDA_QUANTS_CUH
#define LLORCH_CUDA_QUANTS_CUH

#include "common.cuh"

#define ONES4 0x01010101

__device__ __forceinline__ int dp4a(int a, int b, int c) { return __dp4a(a, b, c); }

/* 4 bits b0..b3 of x (x < 16) → bit 4 of bytes 0..3: one multiply puts bit
 * i at i + 4, i + 11, i + 18, i + 25 (the four terms of 0x02040810, no two
 * products overlap, so no carries); bit j of byte j is bit 8j + 4 = j +
 * (7j + 4), the mask keeps exactly those. Two instructions instead of
 * seven on the integer pipe, which bounds the Q5_0 dots (docs/PERF.md). */
__device__ __forceinline__ uint32_t spread4_bit4(uint32_t x) { return (x * 0x02040810u) & 0x10101010u; }

/* int8 activations at e (block relative) */
__device__ __forceinline__ int xq4(const int8_t *xq, int e) { return *(const int *)(xq + e); }

template <int T> struct qfmt;

/* ---------------------------------------------------------------- Q4_0 */
template <> struct qfmt<QT_Q4_0> {
    enum { QK = 32, BYTES = 18, NSUB = 4 };
    __device__ static __forceinline__ int e0(int s) { return 4 * s; }
    __device__ static __forceinline__ int e1(int s) { return 4 * s + 16; }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = h2f(ld_u16(b));
        const uint32_t q = ld_u32_a2(b + 2 + 4 * s);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = (float)((int)((q >> (8 * i)) & 15) - 8) * d;
            v[4 + i] = (float)((int)((q >> (8 * i + 4)) & 15) - 8) * d;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        const uint32_t q = ld_u32_a2(b + 2 + 4 * s);
        const int x0 = xq4(xq, 4 * s), x1 = xq4(xq, 4 * s + 16);
        int sumi = dp4a((int)(q & 0x0F0F0F0Fu), x0, 0);
        sumi = dp4a((int)((q >> 4) & 0x0F0F0F0Fu), x1, sumi);
        sumi -= 8 * dp4a(ONES4, x0, dp4a(ONES4, x1, 0));
        return (float)sumi * (h2f(ld_u16(b)) * xd[0]);
    }
};

/* ---------------------------------------------------------------- Q4_1 */
template <> struct qfmt<QT_Q4_1> {
    enum { QK = 32, BYTES = 20, NSUB = 4 };
    __device__ static __forceinline__ int e0(int s) { return 4 * s; }
    __device__ static __forceinline__ int e1(int s) { return 4 * s + 16; }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = h2f(ld_u16(b)), m = h2f(ld_u16(b + 2));
        const uint32_t q = ld_u32_a2(b + 4 + 4 * s);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = (float)((q >> (8 * i)) & 15) * d + m;
            v[4 + i] = (float)((q >> (8 * i + 4)) & 15) * d + m;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        const uint32_t q = ld_u32_a2(b + 4 + 4 * s);
        int sumi = dp4a((int)(q & 0x0F0F0F0Fu), xq4(xq, 4 * s), 0);
        sumi = dp4a((int)((q >> 4) & 0x0F0F0F0Fu), xq4(xq, 4 * s + 16), sumi);
        float r = (h2f(ld_u16(b)) * xd[0]) * (float)sumi;
        if (s == 0) r += h2f(ld_u16(b + 2)) * xs[0]; /* m * s, once per block */
        return r;
    }
};

/* ---------------------------------------------------------------- Q5_0 */
template <> struct qfmt<QT_Q5_0> {
    enum { QK = 32, BYTES = 22, NSUB = 4 };
    __device__ static __forceinline__ int e0(int s) { return 4 * s; }
    __device__ static __forceinline__ int e1(int s) { return 4 * s + 16; }
    __device__ static __forceinline__ void vals(const uint8_t *b, int s, uint32_t &lo, uint32_t &hi) {
        const uint32_t qh = ld_u32_a2(b + 2), q = ld_u32_a2(b + 6 + 4 * s);
        lo = (q & 0x0F0F0F0Fu) | spread4_bit4((qh >> (4 * s)) & 15u);
        hi = ((q >> 4) & 0x0F0F0F0Fu) | spread4_bit4((qh >> (4 * s + 16)) & 15u);
    }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = h2f(ld_u16(b));
        uint32_t lo, hi;
        vals(b, s, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = (float)((int)((lo >> (8 * i)) & 31) - 16) * d;
            v[4 + i] = (float)((int)((hi >> (8 * i)) & 31) - 16) * d;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        uint32_t lo, hi;
        vals(b, s, lo, hi);
        const int x0 = xq4(xq, 4 * s), x1 = xq4(xq, 4 * s + 16);
        int sumi = dp4a((int)lo, x0, dp4a((int)hi, x1, 0));
        sumi -= 16 * dp4a(ONES4, x0, dp4a(ONES4, x1, 0));
        return (float)sumi * (h2f(ld_u16(b)) * xd[0]);
    }
};

/* ---------------------------------------------------------------- Q5_1 */
template <> struct qfmt<QT_Q5_1> {
    enum { QK = 32, BYTES = 24, NSUB = 4 };
    __device__ static __forceinline__ int e0(int s) { return 4 * s; }
    __device__ static __forceinline__ int e1(int s) { return 4 * s + 16; }
    __device__ static __forceinline__ void vals(const uint8_t *b, int s, uint32_t &lo, uint32_t &hi) {
        const uint32_t qh = ld_u32_a2(b + 4), q = ld_u32_a2(b + 8 + 4 * s);
        lo = (q & 0x0F0F0F0Fu) | spread4_bit4((qh >> (4 * s)) & 15u);
        hi = ((q >> 4) & 0x0F0F0F0Fu) | spread4_bit4((qh >> (4 * s + 16)) & 15u);
    }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = h2f(ld_u16(b)), m = h2f(ld_u16(b + 2));
        uint32_t lo, hi;
        vals(b, s, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = (float)((lo >> (8 * i)) & 31) * d + m;
            v[4 + i] = (float)((hi >> (8 * i)) & 31) * d + m;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        uint32_t lo, hi;
        vals(b, s, lo, hi);
        int sumi = dp4a((int)lo, xq4(xq, 4 * s), dp4a((int)hi, xq4(xq, 4 * s + 16), 0));
        float r = (h2f(ld_u16(b)) * xd[0]) * (float)sumi;
        if (s == 0) r += h2f(ld_u16(b + 2)) * xs[0];
        return r;
    }
};

/* ---------------------------------------------------------------- Q8_0 */
template <> struct qfmt<QT_Q8_0> {
    enum { QK = 32, BYTES = 34, NSUB = 4 };
    __device__ static __forceinline__ int e0(int s) { return 8 * s; }
    __device__ static __forceinline__ int e1(int s) { return 8 * s + 4; }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = h2f(ld_u16(b));
        const uint32_t q0 = ld_u32_a2(b + 2 + 8 * s), q1 = ld_u32_a2(b + 6 + 8 * s);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = (float)(int8_t)(q0 >> (8 * i)) * d;
            v[4 + i] = (float)(int8_t)(q1 >> (8 * i)) * d;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        const int q0 = (int)ld_u32_a2(b + 2 + 8 * s), q1 = (int)ld_u32_a2(b + 6 + 8 * s);
        const int sumi = dp4a(q0, xq4(xq, 8 * s), dp4a(q1, xq4(xq, 8 * s + 4), 0));
        return (float)sumi * (h2f(ld_u16(b)) * xd[0]);
    }
};

/* ---------------------------------------------------------------- MXFP4 */
__device__ __forceinline__ float e8m0_half(uint8_t e) {
    /* qt_e8m0_to_f32: 2^(e-128); e < 2 are the subnormals 2^-128, 2^-127 */
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    return __uint_as_float(bits);
}
/* four nibble indices (one per byte, 0..15) → the doubled e2m1 values as int8 bytes */
__device__ __forceinline__ int mxfp4_lut4(uint32_t idx) {
    /* kvalues {0,1,2,3,4,6,8,12,0,-1,-2,-3,-4,-6,-8,-12} as 4 little-endian words */
    const uint32_t t0 = 0x03020100u, t1 = 0x0C080604u, t2 = 0xFDFEFF00u, t3 = 0xF4F8FAFCu;
    const uint32_t sel = (idx & 7u) | ((idx >> 4) & 0x70u) | ((idx >> 8) & 0x700u) | ((idx >> 12) & 0x7000u);
    const uint32_t lo = __byte_perm(t0, t1, sel), hi = __byte_perm(t2, t3, sel);
    const uint32_t m = ((idx >> 3) & ONES4) * 0xFFu; /* byte mask where bit 3 is set */
    return (int)((lo & ~m) | (hi & m));
}
template <> struct qfmt<QT_MXFP4> {
    enum { QK = 32, BYTES = 17, NSUB = 4 };
    __device__ static __forceinline__ int e0(int s) { return 4 * s; }
    __device__ static __forceinline__ int e1(int s) { return 4 * s + 16; }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = e8m0_half(b[0]);
        const uint32_t q = ld_u32_a1(b + 1 + 4 * s);
        const int lo = mxfp4_lut4(q & 0x0F0F0F0Fu), hi = mxfp4_lut4((q >> 4) & 0x0F0F0F0Fu);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = (float)(int8_t)(lo >> (8 * i)) * d;
            v[4 + i] = (float)(int8_t)(hi >> (8 * i)) * d;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        const uint32_t q = ld_u32_a1(b + 1 + 4 * s);
        const int lo = mxfp4_lut4(q & 0x0F0F0F0Fu), hi = mxfp4_lut4((q >> 4) & 0x0F0F0F0Fu);
        const int sumi = dp4a(lo, xq4(xq, 4 * s), dp4a(hi, xq4(xq, 4 * s + 16), 0));
        return (float)sumi * (e8m0_half(b[0]) * xd[0]);
    }
};

/* ---------------------------------------------------------------- K-quants */
/* 6-bit scale and min j of Q4_K/Q5_K (12 packed bytes) */
__device__ __forceinline__ void scale_min_k4(int j, const uint8_t *q, int &sc, int &m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Q4_K: d, dmin (4 B) | scales[12] | qs[128] */
template <> struct qfmt<QT_Q4_K> {
    enum { QK = 256, BYTES = 144, NSUB = 32 };
    __device__ static __forceinline__ int e0(int s) { return 64 * (s >> 3) + 4 * (s & 7); }
    __device__ static __forceinline__ int e1(int s) { return 64 * (s >> 3) + 32 + 4 * (s & 7); }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const int c = s >> 3, k = s & 7;
        const float d = h2f(ld_u16(b)), dmin = h2f(ld_u16(b + 2));
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * c, b + 4, sc0, m0);
        scale_min_k4(2 * c + 1, b + 4, sc1, m1);
        const float d0 = d * (float)sc0, mm0 = dmin * (float)m0, d1 = d * (float)sc1, mm1 = dmin * (float)m1;
        const uint32_t q = ld_u32_a4(b + 16 + 32 * c + 4 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = d0 * (float)((q >> (8 * i)) & 15) - mm0;
            v[4 + i] = d1 * (float)((q >> (8 * i + 4)) & 15) - mm1;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        const int c = s >> 3, k = s & 7;
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * c, b + 4, sc0, m0);
        scale_min_k4(2 * c + 1, b + 4, sc1, m1);
        const uint32_t q = ld_u32_a4(b + 16 + 32 * c + 4 * k);
        const int x0 = xq4(xq, e0(s)), x1 = xq4(xq, e1(s));
        const int sumi = sc0 * dp4a((int)(q & 0x0F0F0F0Fu), x0, 0) + sc1 * dp4a((int)((q >> 4) & 0x0F0F0F0Fu), x1, 0);
        const int summ = m0 * dp4a(ONES4, x0, 0) + m1 * dp4a(ONES4, x1, 0);
        const float dy = xd[0];
        return dy * h2f(ld_u16(b)) * (float)sumi - dy * h2f(ld_u16(b + 2)) * (float)summ;
    }
};

/* Q5_K: d, dmin | scales[12] | qh[32] | qs[128] */
template <> struct qfmt<QT_Q5_K> {
    enum { QK = 256, BYTES = 176, NSUB = 32 };
    __device__ static __forceinline__ int e0(int s) { return 64 * (s >> 3) + 4 * (s & 7); }
    __device__ static __forceinline__ int e1(int s) { return 64 * (s >> 3) + 32 + 4 * (s & 7); }
    __device__ static __forceinline__ void vals(const uint8_t *b, int s, uint32_t &lo, uint32_t &hi) {
        const int c = s >> 3, k = s & 7;
        const uint32_t q = ld_u32_a4(b + 48 + 32 * c + 4 * k), qh = ld_u32_a4(b + 16 + 4 * k);
        lo = (q & 0x0F0F0F0Fu) | (((qh >> (2 * c)) & ONES4) << 4);
        hi = ((q >> 4) & 0x0F0F0F0Fu) | (((qh >> (2 * c + 1)) & ONES4) << 4);
    }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const int c = s >> 3;
        const float d = h2f(ld_u16(b)), dmin = h2f(ld_u16(b + 2));
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * c, b + 4, sc0, m0);
        scale_min_k4(2 * c + 1, b + 4, sc1, m1);
        const float d0 = d * (float)sc0, mm0 = dmin * (float)m0, d1 = d * (float)sc1, mm1 = dmin * (float)m1;
        uint32_t lo, hi;
        vals(b, s, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = d0 * (float)((lo >> (8 * i)) & 31) - mm0;
            v[4 + i] = d1 * (float)((hi >> (8 * i)) & 31) - mm1;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        const int c = s >> 3;
        int sc0, m0, sc1, m1;
        scale_min_k4(2 * c, b + 4, sc0, m0);
        scale_min_k4(2 * c + 1, b + 4, sc1, m1);
        uint32_t lo, hi;
        vals(b, s, lo, hi);
        const int x0 = xq4(xq, e0(s)), x1 = xq4(xq, e1(s));
        const int sumi = sc0 * dp4a((int)lo, x0, 0) + sc1 * dp4a((int)hi, x1, 0);
        const int summ = m0 * dp4a(ONES4, x0, 0) + m1 * dp4a(ONES4, x1, 0);
        const float dy = xd[0];
        return dy * h2f(ld_u16(b)) * (float)sumi - dy * h2f(ld_u16(b + 2)) * (float)summ;
    }
};

/* Q2_K: scales[16] | qs[64] | d, dmin */
template <> struct qfmt<QT_Q2_K> {
    enum { QK = 256, BYTES = 84, NSUB = 32 };
    __device__ static __forceinline__ int e0(int s) { return 128 * (s >> 4) + 64 * ((s >> 3) & 1) + 4 * (s & 7); }
    __device__ static __forceinline__ int e1(int s) { return e0(s) + 32; }
    /* scale byte indices of the two groups: 8h + 2*sh + k/4 */
    __device__ static __forceinline__ void sidx(int s, int &j0, int &j1) {
        const int h = s >> 4, p = (s >> 3) & 1, k = s & 7;
        j0 = 8 * h + 2 * (2 * p) + (k >> 2);
        j1 = j0 + 2;
    }
    __device__ static __forceinline__ void vals(const uint8_t *b, int s, uint32_t &lo, uint32_t &hi) {
        const int h = s >> 4, p = (s >> 3) & 1, k = s & 7;
        const uint32_t q = ld_u32_a4(b + 16 + 32 * h + 4 * k);
        lo = (q >> (4 * p)) & 0x03030303u;
        hi = (q >> (4 * p + 2)) & 0x03030303u;
    }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = h2f(ld_u16(b + 80)), dmin = h2f(ld_u16(b + 82));
        int j0, j1;
        sidx(s, j0, j1);
        const float d0 = d * (float)(b[j0] & 15), mm0 = dmin * (float)(b[j0] >> 4);
        const float d1 = d * (float)(b[j1] & 15), mm1 = dmin * (float)(b[j1] >> 4);
        uint32_t lo, hi;
        vals(b, s, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = d0 * (float)((lo >> (8 * i)) & 3) - mm0;
            v[4 + i] = d1 * (float)((hi >> (8 * i)) & 3) - mm1;
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        int j0, j1;
        sidx(s, j0, j1);
        uint32_t lo, hi;
        vals(b, s, lo, hi);
        const int x0 = xq4(xq, e0(s)), x1 = xq4(xq, e1(s));
        const int sumi = (b[j0] & 15) * dp4a((int)lo, x0, 0) + (b[j1] & 15) * dp4a((int)hi, x1, 0);
        const int summ = (b[j0] >> 4) * dp4a(ONES4, x0, 0) + (b[j1] >> 4) * dp4a(ONES4, x1, 0);
        const float dy = xd[0];
        return dy * h2f(ld_u16(b + 80)) * (float)sumi - dy * h2f(ld_u16(b + 82)) * (float)summ;
    }
};

/* Q3_K: hmask[32] | qs[64] | scales[12] | d */
__device__ __forceinline__ int q3k_scale(const uint8_t *sc, int j) {
    const int lo = j < 8 ? (sc[j] & 0xF) : (sc[j - 8] >> 4);
    const int hi = (sc[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
    return (lo | (hi << 4)) - 32;
}
template <> struct qfmt<QT_Q3_K> {
    enum { QK = 256, BYTES = 110, NSUB = 32 };
    __device__ static __forceinline__ int e0(int s) { return 128 * (s >> 4) + 64 * ((s >> 3) & 1) + 4 * (s & 7); }
    __device__ static __forceinline__ int e1(int s) { return e0(s) + 32; }
    /* the 3-bit values 0..7 (value - 4 is the weight) */
    __device__ static __forceinline__ void vals(const uint8_t *b, int s, uint32_t &lo, uint32_t &hi) {
        const int h = s >> 4, p = (s >> 3) & 1, k = s & 7;
        const uint32_t q = ld_u32_a2(b + 32 + 32 * h + 4 * k), hm = ld_u32_a2(b + 4 * k);
        const int sh0 = 2 * p, sh1 = 2 * p + 1;
        lo = ((q >> (2 * sh0)) & 0x03030303u) | (((hm >> (4 * h + sh0)) & ONES4) << 2);
        hi = ((q >> (2 * sh1)) & 0x03030303u) | (((hm >> (4 * h + sh1)) & ONES4) << 2);
    }
    __device__ static __forceinline__ void sidx(int s, int &j0, int &j1) {
        const int h = s >> 4, p = (s >> 3) & 1, k = s & 7;
        j0 = 8 * h + 2 * (2 * p) + (k >> 2);
        j1 = j0 + 2;
    }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = h2f(ld_u16(b + 108));
        int j0, j1;
        sidx(s, j0, j1);
        const float d0 = d * (float)q3k_scale(b + 96, j0), d1 = d * (float)q3k_scale(b + 96, j1);
        uint32_t lo, hi;
        vals(b, s, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = d0 * (float)((int)((lo >> (8 * i)) & 7) - 4);
            v[4 + i] = d1 * (float)((int)((hi >> (8 * i)) & 7) - 4);
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        int j0, j1;
        sidx(s, j0, j1);
        uint32_t lo, hi;
        vals(b, s, lo, hi);
        const int x0 = xq4(xq, e0(s)), x1 = xq4(xq, e1(s));
        const int t0 = dp4a((int)lo, x0, 0) - 4 * dp4a(ONES4, x0, 0);
        const int t1 = dp4a((int)hi, x1, 0) - 4 * dp4a(ONES4, x1, 0);
        const int sumi = q3k_scale(b + 96, j0) * t0 + q3k_scale(b + 96, j1) * t1;
        return xd[0] * h2f(ld_u16(b + 108)) * (float)sumi;
    }
};

/* Q6_K: ql[128] | qh[64] | scales[16] (int8) | d */
template <> struct qfmt<QT_Q6_K> {
    enum { QK = 256, BYTES = 210, NSUB = 32 };
    __device__ static __forceinline__ int e0(int s) { return 128 * (s >> 4) + 32 * ((s >> 3) & 1) + 4 * (s & 7); }
    __device__ static __forceinline__ int e1(int s) { return e0(s) + 64; }
    /* 6-bit values 0..63 (value - 32 is the weight) */
    __device__ static __forceinline__ void vals(const uint8_t *b, int s, uint32_t &lo, uint32_t &hi) {
        const int h = s >> 4, p = (s >> 3) & 1, k = s & 7;
        const uint32_t ql = ld_u32_a2(b + 64 * h + 32 * p + 4 * k), qh = ld_u32_a2(b + 128 + 32 * h + 4 * k);
        lo = (ql & 0x0F0F0F0Fu) | (((qh >> (2 * p)) & 0x03030303u) << 4);
        hi = ((ql >> 4) & 0x0F0F0F0Fu) | (((qh >> (2 * p + 4)) & 0x03030303u) << 4);
    }
    __device__ static __forceinline__ void deq(const uint8_t *b, int s, float v[8]) {
        const float d = h2f(ld_u16(b + 208));
        const int j0 = e0(s) >> 4, j1 = e1(s) >> 4;
        const float d0 = d * (float)(int8_t)b[192 + j0], d1 = d * (float)(int8_t)b[192 + j1];
        uint32_t lo, hi;
        vals(b, s, lo, hi);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = d0 * (float)((int)((lo >> (8 * i)) & 63) - 32);
            v[4 + i] = d1 * (float)((int)((hi >> (8 * i)) & 63) - 32);
        }
    }
    __device__ static __forceinline__ float dot(const uint8_t *b, int s, const int8_t *xq, const float *xd,
                                                const float *xs) {
        (void)xs;
        const int j0 = e0(s) >> 4, j1 = e1(s) >> 4;
        uint32_t lo, hi;
        vals(b, s, lo, hi);
        const int x0 = xq4(xq, e0(s)), x1 = xq4(xq, e1(s));
        const int t0 = dp4a((int)lo, x0, 0) - 32 * dp4a(ONES4, x0, 0);
        const int t1 = dp4a((int)hi, x1, 0) - 32 * dp4a(ONES4, x1, 0);
        const int sumi = (int)(int8_t)b[192 + j0] * t0 + (int)(int8_t)b[192 + j1] * t1;
        return xd[0] * h2f(ld_u16(b + 208)) * (float)sumi;
    }
};

/* Calls F::template run<T>() for the quantized type t; returns 0 when t is
 * not a quantized block format handled here. */
#define QFMT_DISPATCH(t, CALL)                \
    switch (t) {                              \
    case QT_Q4_0: CALL(QT_Q4_0); break;       \
    case QT_Q4_1: CALL(QT_Q4_1); break;       \
    case QT_Q5_0: CALL(QT_Q5_0); break;       \
    case QT_Q5_1: CALL(QT_Q5_1); break;       \
    case QT_Q8_0: CALL(QT_Q8_0); break;       \
    case QT_MXFP4: CALL(QT_MXFP4); break;     \
    case QT_Q2_K: CALL(QT_Q2_K); break;       \
    case QT_Q3_K: CALL(QT_Q3_K); break;       \
    case QT_Q4_K: CALL(QT_Q4_K); break;       \
    case QT_Q5_K: CALL(QT_Q5_K); break;       \
    case QT_Q6_K: CALL(QT_Q6_K); break;       \
    default: handled = 0; break;              \
    }

#endif
