/* pw_dot.cuh — the dots of pkw.cu's decode kernel: one row's quantized
 * weights (shared memory, the GGUF block layout) against an fp32 activation
 * (shared memory), every format of PK_TYPES, and pw_units, which spreads a
 * phase's rows over the block's warps. Shared by pkw.cu and the dot
 * microbenchmark (pw_dot_bench.cu), so the benchmark runs this exact code. */
#pragma once

#include <type_traits>

#include "persist.cuh"

/* ---- dots: weights (shared memory) against the fp32 activation xs ---- */
/* The activation is not quantized: no quantization pass in every block
 * before every phase (session 4's kernel spent most of its staging
 * there), and the result differs from the composition's Q8 activations by
 * that quantization's error. A sub's 8 weights are its format's integers
 * (quants.cuh's byte layout) times scales: each integer byte becomes an
 * exact float with one PRMT (2^23 + byte as bits) and one FADD, the scale
 * multiplies the sum of 4 products once, and the format's offset is folded
 * into the FADD (or, for a min, into the sum of the 4 activations). */
#define PW_MAGIC 8388608.0f /* 2^23 */

/* sum over bytes i of w of (byte_i - c) * x_i; c folded into the magic */
__device__ __forceinline__ float pw_d4(uint32_t w, const float4 &x, float magic_c) {
    const float v0 = __int_as_float(__byte_perm(w, 0x4Bu, 0x4550u)) - magic_c;
    const float v1 = __int_as_float(__byte_perm(w, 0x4Bu, 0x4551u)) - magic_c;
    const float v2 = __int_as_float(__byte_perm(w, 0x4Bu, 0x4552u)) - magic_c;
    const float v3 = __int_as_float(__byte_perm(w, 0x4Bu, 0x4553u)) - magic_c;
    return v0 * x.x + v1 * x.y + v2 * x.z + v3 * x.w;
}
__device__ __forceinline__ float pw_s4(const float4 &x) { return (x.x + x.y) + (x.z + x.w); }

/* one sub of block b against x0 (elements e0..) and x1 (e1..) */
template <int T> struct pw_sub;
template <> struct pw_sub<QT_Q4_0> {
    __device__ static __forceinline__ float f(const uint8_t *b, int s, const float4 &x0, const float4 &x1) {
        const uint32_t q = ld_u32_a2(b + 2 + 4 * s);
        return h2f(ld_u16(b)) *
               (pw_d4(q & 0x0F0F0F0Fu, x0, PW_MAGIC + 8.0f) + pw_d4((q >> 4) & 0x0F0F0F0Fu, x1, PW_MAGIC + 8.0f));
    }
};
template <> struct pw_sub<QT_Q4_1> {
    __device__ static __forceinline__ float f(const uint8_t *b, int s, const float4 &x0, const float4 &x1) {
        const uint32_t q = ld_u32_a2(b + 4 + 4 * s);
        return h2f(ld_u16(b)) * (pw_d4(q & 0x0F0F0F0Fu, x0, PW_MAGIC) + pw_d4((q >> 4) & 0x0F0F0F0Fu, x1, PW_MAGIC)) +
               h2f(ld_u16(b + 2)) * (pw_s4(x0) + pw_s4(x1));
    }
};
template <> struct pw_sub<QT_Q5_0> {
    __device__ static __forceinline__ float f(const uint8_t *b, int s, const float4 &x0, const float4 &x1) {
        uint32_t lo, hi;
        qfmt<QT_Q5_0>::vals(b, s, lo, hi);
        return h2f(ld_u16(b)) * (pw_d4(lo, x0, PW_MAGIC + 16.0f) + pw_d4(hi, x1, PW_MAGIC + 16.0f));
    }
};
template <> struct pw_sub<QT_Q5_1> {
    __device__ static __forceinline__ float f(const uint8_t *b, int s, const float4 &x0, const float4 &x1) {
        uint32_t lo, hi;
        qfmt<QT_Q5_1>::vals(b, s, lo, hi);
        return h2f(ld_u16(b)) * (pw_d4(lo, x0, PW_MAGIC) + pw_d4(hi, x1, PW_MAGIC)) +
               h2f(ld_u16(b + 2)) * (pw_s4(x0) + pw_s4(x1));
    }
};
template <> struct pw_sub<QT_Q8_0> {
    /* int8 q as the byte q + 128 (sign bit flipped), offset 128 */
    __device__ static __forceinline__ float f(const uint8_t *b, int s, const float4 &x0, const float4 &x1) {
        const uint32_t q0 = ld_u32_a2(b + 2 + 8 * s) ^ 0x80808080u, q1 = ld_u32_a2(b + 6 + 8 * s) ^ 0x80808080u;
        return h2f(ld_u16(b)) * (pw_d4(q0, x0, PW_MAGIC + 128.0f) + pw_d4(q1, x1, PW_MAGIC + 128.0f));
    }
};
/* K-quants with a 6-bit scale and min per 32 (Q4_K, Q5_K): w = d*sc*u - dmin*m */
__device__ __forceinline__ float pw_kq(const uint8_t *b, int s, uint32_t lo, uint32_t hi, const float4 &x0,
                                       const float4 &x1) {
    /* the sub's two 6-bit (scale, min) pairs j = 2c, 2c + 1 (c = s / 8) of
     * the 12 scale bytes, four at a time and without scale_min_k4's branch
     * (lanes of one warp take both sides of it: docs/PERF.md, session 7):
     * j < 4 scale q[j] & 63, min q[j+4] & 63; j >= 4 scale q[j+4] & 15 |
     * (q[j-4] >> 6) << 4, min q[j+4] >> 4 | (q[j] >> 6) << 4 */
    const int c = s >> 3, sh = 16 * (c & 1);
    const uint32_t q0 = ld_u32_a4(b + 4), q1 = ld_u32_a4(b + 8), q2 = ld_u32_a4(b + 12);
    const uint32_t scw = c < 2 ? q0 & 0x3f3f3f3fu : (q2 & 0x0f0f0f0fu) | ((q0 >> 2) & 0x30303030u);
    const uint32_t mw = c < 2 ? q1 & 0x3f3f3f3fu : ((q2 >> 4) & 0x0f0f0f0fu) | ((q1 >> 2) & 0x30303030u);
    const uint32_t sc = scw >> sh, m = mw >> sh; /* bytes 0, 1: j = 2c, 2c + 1 */
    const float d = h2f(ld_u16(b)), dmin = h2f(ld_u16(b + 2));
    const float sc0 = __int_as_float(__byte_perm(sc, 0x4Bu, 0x4550)) - PW_MAGIC,
                sc1 = __int_as_float(__byte_perm(sc, 0x4Bu, 0x4551)) - PW_MAGIC,
                m0 = __int_as_float(__byte_perm(m, 0x4Bu, 0x4550)) - PW_MAGIC,
                m1 = __int_as_float(__byte_perm(m, 0x4Bu, 0x4551)) - PW_MAGIC;
    return d * (sc0 * pw_d4(lo, x0, PW_MAGIC) + sc1 * pw_d4(hi, x1, PW_MAGIC)) - dmin * (m0 * pw_s4(x0) + m1 * pw_s4(x1));
}
template <> struct pw_sub<QT_Q4_K> {
    __device__ static __forceinline__ float f(const uint8_t *b, int s, const float4 &x0, const float4 &x1) {
        const uint32_t q = ld_u32_a4(b + 16 + 32 * (s >> 3) + 4 * (s & 7));
        return pw_kq(b, s, q & 0x0F0F0F0Fu, (q >> 4) & 0x0F0F0F0Fu, x0, x1);
    }
};
template <> struct pw_sub<QT_Q5_K> {
    __device__ static __forceinline__ float f(const uint8_t *b, int s, const float4 &x0, const float4 &x1) {
        uint32_t lo, hi;
        qfmt<QT_Q5_K>::vals(b, s, lo, hi);
        return pw_kq(b, s, lo, hi, x0, x1);
    }
};
template <> struct pw_sub<QT_Q6_K> {
    __device__ static __forceinline__ float f(const uint8_t *b, int s, const float4 &x0, const float4 &x1) {
        typedef qfmt<QT_Q6_K> F;
        uint32_t lo, hi;
        F::vals(b, s, lo, hi);
        const float d = h2f(ld_u16(b + 208));
        const float d0 = d * (float)(int8_t)b[192 + (F::e0(s) >> 4)], d1 = d * (float)(int8_t)b[192 + (F::e1(s) >> 4)];
        return d0 * pw_d4(lo, x0, PW_MAGIC + 32.0f) + d1 * pw_d4(hi, x1, PW_MAGIC + 32.0f);
    }
};

template <int T, int TWO>
__device__ __forceinline__ void pw_dotf_t(const uint8_t *wa, const uint8_t *wb, int K, int tt, int nt,
                                          const float *xs, float &a, float &b) {
    typedef qfmt<T> F;
    const int units = (K / F::QK) * F::NSUB;
#pragma unroll 2
    for (int u = tt; u < units; u += nt) {
        const int blk = u / F::NSUB, s = u % F::NSUB;
        const float *xb = xs + blk * F::QK;
        const float4 x0 = *reinterpret_cast<const float4 *>(xb + F::e0(s));
        const float4 x1 = *reinterpret_cast<const float4 *>(xb + F::e1(s));
        a += pw_sub<T>::f(wa + (size_t)blk * F::BYTES, s, x0, x1);
        if (TWO) b += pw_sub<T>::f(wb + (size_t)blk * F::BYTES, s, x0, x1);
    }
}

/* The formats a kernel instantiation carries code for (a mask of QT_*
 * bits): every format, or just the Q4_K_M mixes' (Q4_K, Q6_K and their
 * fallbacks Q5_0, Q8_0 where a width is not a multiple of 256). The smaller
 * set makes a smaller kernel (instruction fetch: docs/PERF.md) */
#define PW_FMT_ALL 0xffffffffu
#define PW_FMT_Q4KM ((1u << QT_Q5_0) | (1u << QT_Q8_0) | (1u << QT_Q4_K) | (1u << QT_Q6_K))
/* the paired (gate + up in one call) dots of the Q4_K_M kernel: gate and up
 * are Q4_K or its fallback Q5_0 in those mixes (the host checks) */
#define PW_FMT2_Q4KM ((1u << QT_Q5_0) | (1u << QT_Q4_K))
#define PW_FMT_TWO(FMT, TWO) ((TWO) && (FMT) == PW_FMT_Q4KM ? PW_FMT2_Q4KM : (FMT))

template <int TWO, unsigned FMT>
__device__ __noinline__ float2 pw_dotf(int type, const uint8_t *wa, const uint8_t *wb, int K, int tt, int nt,
                                       const float *xs) {
    float a = 0.0f, b = 0.0f;
    switch (type) {
#define PW_CASE(T)                                                        \
    case T:                                                               \
        if constexpr (((PW_FMT_TWO(FMT, TWO) >> T) & 1u) != 0) pw_dotf_t<T, TWO>(wa, wb, K, tt, nt, xs, a, b); \
        else a = b = __int_as_float(0x7fc00000);                          \
        break;
        PK_TYPES(PW_CASE)
#undef PW_CASE
    default: a = b = __int_as_float(0x7fc00000); break; /* unreachable (host check): NaN shows it */
    }
    return make_float2(a, b);
}

/* ---- int8 activations (pw_dot8; LLORCH_CUDA_PKW_I8) ----
 * pw_dotf takes ~65 instructions per 8 weights (docs/PERF.md, session 8):
 * two activation float4s, the magic-number conversions and, for the
 * K-quants, the scale decode per sub of 8. Here the activation is
 * quantized once per phase, per 32 like Q8_0 (the CPU and the composition
 * quantize it too), and ONE item is a whole 32-element block of one row
 * (or of a gate/up pair): its scales decoded once, its 32 weights as
 * bytes into 8 dp4a against the int8 activation. Layout in shared memory:
 * xq [K] int8 in element order, then xg [K / 32] float4 per block {dx =
 * amax / 127, the sum of xq over elements 0..15, over 16..31, 0} (offsets
 * and mins multiply the sums; Q6_K's scales are per 16). */
struct pw_x8 {
    const int8_t *q;
    const float4 *g;
};
__device__ __forceinline__ pw_x8 pw_x8_at(void *p, int K) {
    pw_x8 r;
    r.q = reinterpret_cast<const int8_t *>(p);
    r.g = reinterpret_cast<const float4 *>(r.q + K);
    return r;
}
__device__ __forceinline__ uint32_t pw_pack4(int a, int b, int c, int d) {
    return __byte_perm(__byte_perm((uint32_t)a, (uint32_t)b, 0x0040u), __byte_perm((uint32_t)c, (uint32_t)d, 0x0040u),
                       0x5410u);
}
/* item i: 8 consecutive values v of block i >> 2 (4 items per block, on 4
 * consecutive lanes: i % 32 is the lane) → xq [8i..8i+7], and xg [i >> 2]
 * from the block's first lane. Every lane of the warp calls it (ok: the
 * lane has an item; lanes without pass zeros). */
__device__ __forceinline__ void pw_q8_item(const float (&v)[8], int i, bool ok, int8_t *xq, float4 *xg) {
    float am = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; k++) am = fmaxf(am, fabsf(v[k]));
    am = fmaxf(am, __shfl_xor_sync(0xffffffffu, am, 1));
    am = fmaxf(am, __shfl_xor_sync(0xffffffffu, am, 2));
    const float inv = am > 0.0f ? 127.0f / am : 0.0f;
    int q[8], s = 0;
#pragma unroll
    for (int k = 0; k < 8; k++) {
        q[k] = __float2int_rn(v[k] * inv);
        s += q[k];
    }
    s += __shfl_xor_sync(0xffffffffu, s, 1); /* lanes 0, 1 of the block: elements 0..15; 2, 3: 16..31 */
    const int s_hi = __shfl_down_sync(0xffffffffu, s, 2);
    if (ok) *reinterpret_cast<uint2 *>(xq + 8 * i) = make_uint2(pw_pack4(q[0], q[1], q[2], q[3]), pw_pack4(q[4], q[5], q[6], q[7]));
    if (ok && (i & 3) == 0) xg[i >> 2] = make_float4(am / 127.0f, (float)s, (float)s_hi, 0.0f);
}
/* xs [K] (fp32, K % 32 == 0) → xq, xg (pw_x8's layout at out).
 * Warp-uniform loop; the caller syncs after. */
__device__ __forceinline__ pw_x8 pw_q8_stage(const float *xs, int K, void *out) {
    int8_t *const xq = reinterpret_cast<int8_t *>(out);
    float4 *const xg = reinterpret_cast<float4 *>(xq + K);
    const int ni = K >> 3, nt = (int)blockDim.x;
    for (int wb = (int)(threadIdx.x & ~31u); wb < ni; wb += nt) {
        const int i = wb + (int)(threadIdx.x & 31);
        const bool ok = i < ni;
        float v[8];
        if (ok) {
            const float4 a = reinterpret_cast<const float4 *>(xs)[2 * i], b = reinterpret_cast<const float4 *>(xs)[2 * i + 1];
            v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) v[k] = 0.0f;
        }
        pw_q8_item(v, i, ok, xq, xg);
    }
    return pw_x8_at(out, K);
}

/* N words from a 2-byte aligned address: aligned loads and funnel shifts.
 * Misaligned, it reads 2 bytes past the 4N: every caller's span ends at
 * least 2 bytes before its row region's end (a Q5_0/Q8_0 block's last
 * bytes are followed by the next block or by the region's slack: rows land
 * at an even offset below 16 in a region of 16 more bytes, pkw_plan.h) */
template <int N>
__device__ __forceinline__ void pw_ldw_a2(const uint8_t *p, uint32_t (&w)[N]) {
    const uint32_t *a = reinterpret_cast<const uint32_t *>((uintptr_t)p & ~(uintptr_t)3);
    const unsigned sh = 8u * (unsigned)((uintptr_t)p & 3);
    uint32_t t = a[0];
#pragma unroll
    for (int k = 0; k < N; k++) {
        const uint32_t u = (k + 1 < N || sh) ? a[k + 1] : 0u;
        w[k] = __funnelshift_r(t, u, sh);
        t = u;
    }
}
/* the (scale, min) of sub-block s (0..7) of a Q4_K/Q5_K block b as floats:
 * pw_kq's branch-free decode, one pair */
__device__ __forceinline__ void pw_k8_scale(const uint8_t *b, int s, float &sc, float &m) {
    const uint32_t q0 = ld_u32_a4(b + 4), q1 = ld_u32_a4(b + 8), q2 = ld_u32_a4(b + 12);
    const uint32_t scw = s < 4 ? q0 & 0x3f3f3f3fu : (q2 & 0x0f0f0f0fu) | ((q0 >> 2) & 0x30303030u);
    const uint32_t mw = s < 4 ? q1 & 0x3f3f3f3fu : ((q2 >> 4) & 0x0f0f0f0fu) | ((q1 >> 2) & 0x30303030u);
    const uint32_t sel = 0x4550u | (uint32_t)(s & 3);
    sc = __int_as_float(__byte_perm(scw, 0x4Bu, sel)) - PW_MAGIC;
    m = __int_as_float(__byte_perm(mw, 0x4Bu, sel)) - PW_MAGIC;
}
/* the activation of one 32-element block */
struct pw_xb {
    int x[8]; /* xq words: elements 4k..4k+3 */
    float4 g; /* pw_x8's xg entry */
};
__device__ __forceinline__ void pw_xb_ld(const pw_x8 &X, int j, pw_xb &b) {
    const int4 a = reinterpret_cast<const int4 *>(X.q + 32 * j)[0], c = reinterpret_cast<const int4 *>(X.q + 32 * j)[1];
    b.x[0] = a.x, b.x[1] = a.y, b.x[2] = a.z, b.x[3] = a.w, b.x[4] = c.x, b.x[5] = c.y, b.x[6] = c.z, b.x[7] = c.w;
    b.g = X.g[j];
}
/* block j (32 elements) of a row of format T against the block's activation x */
template <int T> struct pw_k8;
template <> struct pw_k8<QT_Q4_0> {
    __device__ static __forceinline__ float f(const uint8_t *row, int j, const pw_xb &x) {
        const uint8_t *b = row + 18 * j;
        uint32_t w[4];
        pw_ldw_a2<4>(b + 2, w);
        int acc = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            acc = dp4a((int)(w[k] & 0x0F0F0F0Fu), x.x[k], acc);
            acc = dp4a((int)((w[k] >> 4) & 0x0F0F0F0Fu), x.x[4 + k], acc);
        }
        return h2f(ld_u16(b)) * x.g.x * ((float)acc - 8.0f * (x.g.y + x.g.z));
    }
};
template <> struct pw_k8<QT_Q5_0> {
    __device__ static __forceinline__ float f(const uint8_t *row, int j, const pw_xb &x) {
        const uint8_t *b = row + 22 * j;
        uint32_t w[5]; /* qh, qs */
        pw_ldw_a2<5>(b + 2, w);
        int acc = 0;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const uint32_t lo = (w[1 + k] & 0x0F0F0F0Fu) | spread4_bit4((w[0] >> (4 * k)) & 15u);
            const uint32_t hi = ((w[1 + k] >> 4) & 0x0F0F0F0Fu) | spread4_bit4((w[0] >> (4 * k + 16)) & 15u);
            acc = dp4a((int)lo, x.x[k], acc);
            acc = dp4a((int)hi, x.x[4 + k], acc);
        }
        return h2f(ld_u16(b)) * x.g.x * ((float)acc - 16.0f * (x.g.y + x.g.z));
    }
};
template <> struct pw_k8<QT_Q8_0> {
    __device__ static __forceinline__ float f(const uint8_t *row, int j, const pw_xb &x) {
        const uint8_t *b = row + 34 * j;
        uint32_t w[8];
        pw_ldw_a2<8>(b + 2, w);
        int acc = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) acc = dp4a((int)w[k], x.x[k], acc);
        return h2f(ld_u16(b)) * x.g.x * (float)acc;
    }
};
template <> struct pw_k8<QT_Q4_K> {
    __device__ static __forceinline__ float f(const uint8_t *row, int j, const pw_xb &x) {
        const uint8_t *b = row + 144 * (j >> 3);
        const int s = j & 7, sh = 4 * (s & 1);
        float sc, m;
        pw_k8_scale(b, s, sc, m);
        const uint4 w0 = *reinterpret_cast<const uint4 *>(b + 16 + 32 * (s >> 1)),
                    w1 = *reinterpret_cast<const uint4 *>(b + 32 + 32 * (s >> 1));
        const uint32_t w[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
        int acc = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) acc = dp4a((int)((w[k] >> sh) & 0x0F0F0F0Fu), x.x[k], acc);
        return x.g.x * (h2f(ld_u16(b)) * sc * (float)acc - h2f(ld_u16(b + 2)) * m * (x.g.y + x.g.z));
    }
};
template <> struct pw_k8<QT_Q5_K> {
    __device__ static __forceinline__ float f(const uint8_t *row, int j, const pw_xb &x) {
        const uint8_t *b = row + 176 * (j >> 3);
        const int s = j & 7, sh = 4 * (s & 1);
        float sc, m;
        pw_k8_scale(b, s, sc, m);
        const uint4 *q = reinterpret_cast<const uint4 *>(b + 48 + 32 * (s >> 1)), *h = reinterpret_cast<const uint4 *>(b + 16);
        const uint4 q0 = q[0], q1 = q[1], h0 = h[0], h1 = h[1];
        const uint32_t w[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
        const uint32_t hb[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
        int acc = 0;
#pragma unroll
        for (int k = 0; k < 8; k++)
            acc = dp4a((int)(((w[k] >> sh) & 0x0F0F0F0Fu) | (((hb[k] >> s) & 0x01010101u) << 4)), x.x[k], acc);
        return x.g.x * (h2f(ld_u16(b)) * sc * (float)acc - h2f(ld_u16(b + 2)) * m * (x.g.y + x.g.z));
    }
};
template <> struct pw_k8<QT_Q6_K> {
    /* element 128h + 32qd + l: ql[64h + 32(qd & 1) + l] nibble qd >> 1, qh[32h + l] bits 2qd, scale [8h + 2qd + l / 16] */
    __device__ static __forceinline__ float f(const uint8_t *row, int j, const pw_xb &x) {
        const uint8_t *b = row + 210 * (j >> 3);
        const int s = j & 7, h = s >> 2, qd = s & 3, nsh = 4 * (qd >> 1), hsh = 2 * qd;
        uint32_t lq[8], hq[8];
        pw_ldw_a2<8>(b + 64 * h + 32 * (qd & 1), lq);
        pw_ldw_a2<8>(b + 128 + 32 * h, hq);
        int a0 = 0, a1 = 0;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int v = (int)(((lq[k] >> nsh) & 0x0F0F0F0Fu) | (((hq[k] >> hsh) & 0x03030303u) << 4));
            if (k < 4) a0 = dp4a(v, x.x[k], a0);
            else a1 = dp4a(v, x.x[k], a1);
        }
        const int i = 192 + 8 * h + 2 * qd;
        return h2f(ld_u16(b + 208)) * x.g.x *
               ((float)(int8_t)b[i] * ((float)a0 - 32.0f * x.g.y) + (float)(int8_t)b[i + 1] * ((float)a1 - 32.0f * x.g.z));
    }
};
/* the formats pw_dot8 carries (QT_* bits); PW_I8_KQ: those the decode
 * kernel runs on int8 (phase E's K-quant down rows, which
 * test_decode_layers checks against the composition; the 32-element
 * formats are checked against pw_dotf by the bench only) */
#define PW_I8_TYPES ((1u << QT_Q4_0) | (1u << QT_Q5_0) | (1u << QT_Q8_0) | (1u << QT_Q4_K) | (1u << QT_Q5_K) | (1u << QT_Q6_K))
#define PW_I8_KQ ((1u << QT_Q4_K) | (1u << QT_Q5_K) | (1u << QT_Q6_K))
__host__ __device__ __forceinline__ bool pw_k8_type(int t, unsigned mask = PW_I8_TYPES) {
    return t >= 0 && t < 32 && ((mask >> t) & 1u);
}

/* team thread tt (of nt)'s partial of one row wa (TWO: and wb, the same
 * format) of width K against X: blocks tt, tt + nt, ...; the pair shares
 * each block's activation loads. Out of line like pw_dotf. */
template <int TWO, unsigned FMT>
__device__ __noinline__ float2 pw_dot8(int type, const uint8_t *wa, const uint8_t *wb, int K, int tt, int nt,
                                       pw_x8 X) {
    float a = 0.0f, b = 0.0f;
    const int nbk = K >> 5;
    switch (type) {
#define PW_K8(T)                                                      \
    case T:                                                           \
        if constexpr (((FMT >> T) & 1u) != 0) {                       \
            _Pragma("unroll 2") for (int j = tt; j < nbk; j += nt) {  \
                pw_xb x;                                              \
                pw_xb_ld(X, j, x);                                    \
                a += pw_k8<T>::f(wa, j, x);                           \
                if (TWO) b += pw_k8<T>::f(wb, j, x);                  \
            }                                                         \
        } else {                                                      \
            a = b = __int_as_float(0x7fc00000);                       \
        }                                                             \
        break;
        PW_K8(QT_Q4_0)
        PW_K8(QT_Q5_0)
        PW_K8(QT_Q8_0)
        PW_K8(QT_Q4_K)
        PW_K8(QT_Q5_K)
        PW_K8(QT_Q6_K)
#undef PW_K8
    default: a = b = __int_as_float(0x7fc00000); break; /* unreachable (pw_k8_type): NaN shows it */
    }
    return make_float2(a, b);
}

/* nr units of work over the block's warps in teams of g warps (the largest
 * power of two with nr * 2g <= the block's warps, at least 1): dot(u, tt, nt) is team
 * thread tt's partial (of nt), done(u, sum) runs in the team's first
 * thread. Block-uniform loop (pk_team_sum synchronizes for g > 1). Spreading
 * a short last round over more warps (each round's own g) measured slower:
 * docs/PERF.md, session 7. */
template <class Dot, class Done>
__device__ __forceinline__ void pw_units(int nr, float2 *red, Dot dot, Done done) {
    const int nw = (int)(blockDim.x >> 5);
    int g = 1;
    while (g < nw && nr * 2 * g <= nw) g *= 2;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int tpb = nw / g, team = warp / g, tt = (warp & (g - 1)) * 32 + lane;
    for (int base = 0; base < nr; base += tpb) {
        const int u = base + team;
        float2 d = make_float2(0.0f, 0.0f);
        if (u < nr) d = dot(u, tt, g * 32);
        d = pk_team_sum(d, g, red);
        if (u < nr && tt == 0) done(u, d);
    }
}


/* ---- gate/up on the tensor cores (Q5_0, phase D) ----
 * One warp computes 8 gate rows and the same 8 up rows over a range of
 * 32-element blocks with mma.m16n8k16 (fp16 in, fp32 accumulate): A rows
 * 0..7 are the gate rows, 8..15 the up rows; every column of B is the
 * activation, so every column of C is the answer and 7/8 of the tensor
 * core's work is thrown away (it is not the bound: the unpacking is).
 * Lane (g = lane / 4, c = lane % 4) unpacks sub c of its two rows' block,
 * exactly the bytes pw_sub<QT_Q5_0> reads: elements 4c..4c+3 (low nibbles,
 * fifth bits) feed k-step 0 and 16+4c.. (high nibbles) k-step 1, placed at
 * the fragment's k positions 2c, 2c+1, 2c+8, 2c+9 — a permutation of k that
 * the activation follows (pw_xh_stage writes it in that order). Each byte
 * n in 0..31 becomes the half 1024 + n (one PRMT per two), minus 1040 is
 * n - 16 exactly; the block's scale multiplies the fp32 result once.
 * xh: the activation in fp16, per block j and lane c the 8 halves
 * x[32j+4c..+3], x[32j+16+4c..+3] (16 bytes). */
__device__ __forceinline__ void pw_xh_stage(const float *xs, int K, __half *xh) {
    for (int i = threadIdx.x; i < K / 4; i += blockDim.x) {
        const int j = i >> 3, c = i & 7; /* 8 chunks of 4 per block: c < 4 low half, else high */
        const float4 v = *reinterpret_cast<const float4 *>(xs + 32 * j + (c < 4 ? 4 * c : 16 + 4 * (c - 4)));
        __half2 *o = reinterpret_cast<__half2 *>(xh + 32 * j + 8 * (c & 3) + 4 * (c >> 2));
        o[0] = __floats2half2_rn(v.x, v.y);
        o[1] = __floats2half2_rn(v.z, v.w);
    }
}

__device__ __forceinline__ uint32_t pw_h2sub16(uint32_t lo2) {
    /* bytes n0, n1 (low two bytes of lo2 after the select) → half2 (n0 - 16, n1 - 16) */
    const __half2 h = __hsub2(*reinterpret_cast<const __half2 *>(&lo2), __half2half2(__ushort_as_half(0x6410)));
    return *reinterpret_cast<const uint32_t *>(&h);
}

__device__ __forceinline__ void pw_mma16816(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                            uint32_t b0, uint32_t b1) {
    /* not volatile: no side effect, so the compiler may overlap it with the
     * next group's loads */
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* one Q5_0 block kb of the lane's gate row ga and up row ua */
__device__ __forceinline__ void pw_gu_step(const uint8_t *ga, const uint8_t *ua, int kb, int c, const __half *xh,
                                           float &ag, float &au) {
    const uint8_t *bg = ga + kb * 22, *bu = ua + kb * 22;
    uint32_t glo, ghi, ulo, uhi;
    qfmt<QT_Q5_0>::vals(bg, c, glo, ghi);
    qfmt<QT_Q5_0>::vals(bu, c, ulo, uhi);
    const uint4 xb = *reinterpret_cast<const uint4 *>(xh + 32 * kb + 8 * c);
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    pw_mma16816(acc, pw_h2sub16(__byte_perm(glo, 0x64646464u, 0x4140)), pw_h2sub16(__byte_perm(ulo, 0x64646464u, 0x4140)),
                pw_h2sub16(__byte_perm(glo, 0x64646464u, 0x4342)), pw_h2sub16(__byte_perm(ulo, 0x64646464u, 0x4342)),
                xb.x, xb.y);
    pw_mma16816(acc, pw_h2sub16(__byte_perm(ghi, 0x64646464u, 0x4140)), pw_h2sub16(__byte_perm(uhi, 0x64646464u, 0x4140)),
                pw_h2sub16(__byte_perm(ghi, 0x64646464u, 0x4342)), pw_h2sub16(__byte_perm(uhi, 0x64646464u, 0x4342)),
                xb.z, xb.w);
    ag = fmaf(h2f(ld_u16(bg)), acc[0], ag);
    au = fmaf(h2f(ld_u16(bu)), acc[2], au);
}

/* one throw-away mma (volatile: kept though unused): issued before a
 * phase's staging wait so the tensor cores are awake when the dots start
 * (LLORCH_CUDA_PKW_MMA bit 8; measured in docs/PERF.md) */
__device__ __forceinline__ void pw_mma_warm() {
    float c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, c3 = 0.0f;
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%4,%4,%4}, {%4,%4}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3)
                 : "r"(0u));
}

/* int8 variant (LLORCH_CUDA_PKW_MMA bit 2): the activation quantized per
 * 32 like Q8_0 (xq: pw_xq_stage's order, dq the scales, sq 16 x the sum
 * of each group's integers), the weights' 5-bit integers as they are (u8),
 * one mma.m16n8k32 u8 x s8 per block and row pair: A's fragment IS
 * qfmt<QT_Q5_0>::vals' (lo, hi) — no conversion — and
 * sum (n - 16) q = C - 16 sum q exactly. */
__device__ __forceinline__ void pw_imma16832(int (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                             uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
struct pw_xq {
    const int8_t *q; /* [K], per group j and lane c: q[32j+4c..+3], q[32j+16+4c..+3] at 32j + 8c */
    const float *d;  /* [K / 32] */
    const int *s16;  /* [K / 32]: 16 x the group's sum of q */
};
/* xs [K] (fp32, K % 32 == 0) → the pw_xq arrays at xq (K bytes), then the
 * scales and sums (4-byte aligned: K % 32 == 0); one warp per group; the
 * caller synchronizes after */
__device__ __forceinline__ pw_xq pw_xq_stage(const float *xs, int K, int8_t *xq) {
    float *const dq = reinterpret_cast<float *>(xq + K);
    int *const sq = reinterpret_cast<int *>(dq + K / 32);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = (int)(blockDim.x >> 5);
    for (int j = warp; j < K / 32; j += nw) {
        const float v = xs[32 * j + lane];
        float am = fabsf(v);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) am = fmaxf(am, __shfl_xor_sync(0xffffffffu, am, o));
        const int q = am > 0.0f ? __float2int_rn(v * (127.0f / am)) : 0;
        int sum = q;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        const int pos = 8 * ((lane & 15) >> 2) + 4 * (lane >> 4) + (lane & 3);
        xq[32 * j + pos] = (int8_t)q;
        if (lane == 0) {
            dq[j] = am / 127.0f;
            sq[j] = 16 * sum;
        }
    }
    pw_xq r;
    r.q = xq, r.d = dq, r.s16 = sq;
    return r;
}

__device__ __forceinline__ void pw_gu_istep(const uint8_t *ga, const uint8_t *ua, int kb, int c, const pw_xq &x,
                                            float &ag, float &au) {
    const uint8_t *bg = ga + kb * 22, *bu = ua + kb * 22;
    uint32_t glo, ghi, ulo, uhi;
    qfmt<QT_Q5_0>::vals(bg, c, glo, ghi);
    qfmt<QT_Q5_0>::vals(bu, c, ulo, uhi);
    const uint2 xb = *reinterpret_cast<const uint2 *>(x.q + 32 * kb + 8 * c);
    int acc[4] = {0, 0, 0, 0};
    pw_imma16832(acc, glo, ulo, ghi, uhi, xb.x, xb.y);
    const float dx = x.d[kb];
    const int s16 = x.s16[kb];
    ag = fmaf(h2f(ld_u16(bg)) * dx, (float)(acc[0] - s16), ag);
    au = fmaf(h2f(ld_u16(bu)) * dx, (float)(acc[2] - s16), au);
}

/* the warp's 8 row pairs (lane row r, clamped by the caller) over blocks
 * [kb0, kb1), two blocks in flight: lane (g, any c) returns (gate, up) of
 * row r. X: const __half * (fp16 path) or pw_xq (int8 path). */
template <class X>
__device__ __forceinline__ float2 pw_gu_mma_tile(const uint8_t *wg, const uint8_t *wu, int nb1, int r, int kb0,
                                                 int kb1, const X &x) {
    const int c = threadIdx.x & 3;
    const uint8_t *ga = wg + (size_t)r * nb1, *ua = wu + (size_t)r * nb1;
    float ag = 0.0f, au = 0.0f, ag2 = 0.0f, au2 = 0.0f;
    int kb = kb0;
    for (; kb + 1 < kb1; kb += 2) {
        if constexpr (std::is_same<X, pw_xq>::value) {
            pw_gu_istep(ga, ua, kb, c, x, ag, au);
            pw_gu_istep(ga, ua, kb + 1, c, x, ag2, au2);
        } else {
            pw_gu_step(ga, ua, kb, c, x, ag, au);
            pw_gu_step(ga, ua, kb + 1, c, x, ag2, au2);
        }
    }
    if (kb < kb1) {
        if constexpr (std::is_same<X, pw_xq>::value) pw_gu_istep(ga, ua, kb, c, x, ag, au);
        else pw_gu_step(ga, ua, kb, c, x, ag, au);
    }
    return make_float2(ag + ag2, au + au2);
}

/* nr gate/up row pairs (Q5_0, width K) over the block's warps: tiles of 8
 * pairs; with fewer tiles than warps each tile's blocks are split over
 * ks = warps / tiles warps and summed in a fixed order (red: >= warps * 8
 * float2). done(u, (gate, up)) once per row, from one thread; mark() in
 * every thread once its own tile is done (timing). Every thread of the
 * block calls it (block-uniform). */
struct pw_nomark {
    __device__ void operator()() const {}
};
template <class X, class Done, class Mark = pw_nomark>
__device__ __forceinline__ void pw_gu_mma(int nr, const uint8_t *wg, const uint8_t *wu, int nb1, int K, const X &xh,
                                          float2 *red, Done done, Mark mark = Mark()) {
    const int nw = (int)(blockDim.x >> 5), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int nt = (nr + 7) >> 3, nbk = K >> 5;
    const int ks = nt >= nw ? 1 : nw / nt;
    if (ks == 1) {
        for (int t = warp; t < nt; t += nw) {
            const int r = 8 * t + (lane >> 2);
            const float2 v = pw_gu_mma_tile(wg, wu, nb1, r < nr ? r : nr - 1, 0, nbk, xh);
            if ((lane & 3) == 0 && r < nr) done(r, v);
        }
        mark();
        return;
    }
    if (warp < nt * ks) {
        const int t = warp / ks, k = warp % ks, r = 8 * t + (lane >> 2);
        const int kb0 = nbk * k / ks, kb1 = nbk * (k + 1) / ks;
        const float2 v = pw_gu_mma_tile(wg, wu, nb1, r < nr ? r : nr - 1, kb0, kb1, xh);
        if ((lane & 3) == 0) red[warp * 8 + (lane >> 2)] = v;
    }
    mark(); /* the caller's timer: this thread's own tile is done */
    __syncthreads();
    if ((int)threadIdx.x < nr) {
        const int r = threadIdx.x, t = r >> 3;
        float2 s = make_float2(0.0f, 0.0f);
        for (int k = 0; k < ks; k++) {
            const float2 v = red[(t * ks + k) * 8 + (r & 7)];
            s.x += v.x;
            s.y += v.y;
        }
        done(r, s);
    }
    __syncthreads();
}

/* ---- single-matrix rows on the tensor cores (phases C and E) ----
 * The same fragments, but A's rows 8..15 are the SAME 8 matrix rows over a
 * second range of 32-element groups (so no half of the tile is wasted when
 * a block owns fewer than 16 rows, as Qwen's C and E own 7), and B's
 * columns 0..3 hold the first range's activation, 4..7 the second's:
 * C[g][0..3] is row g over the first range, C[g + 8][4..7] over the
 * second; lanes c = 0, 1 read the former, c = 2, 3 the latter. Per format,
 * frag() gives lane c's 8 values of group j (elements 4c..4c+3 in k-step 0,
 * 16+4c.. in k-step 1, xh's order) as four half2, offset removed; epi()
 * scales the two k-steps' fp32 sums (Q6_K's 16-element scales are one per
 * k-step in this order; Q4_K's minimum uses sx, the group's sum of x). */
template <int T> struct pw_mq;
__device__ __forceinline__ void pw_mq_h2(uint32_t v0, uint32_t v1, uint32_t off2, uint32_t a[4]) {
    const __half2 o = *reinterpret_cast<const __half2 *>(&off2);
    const uint32_t w[4] = {__byte_perm(v0, 0x64646464u, 0x4140), __byte_perm(v0, 0x64646464u, 0x4342),
                           __byte_perm(v1, 0x64646464u, 0x4140), __byte_perm(v1, 0x64646464u, 0x4342)};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const __half2 h = __hsub2(*reinterpret_cast<const __half2 *>(&w[i]), o);
        a[i] = *reinterpret_cast<const uint32_t *>(&h);
    }
}
template <> struct pw_mq<QT_Q5_0> {
    __device__ static __forceinline__ void frag(const uint8_t *r, int j, int c, uint32_t a[4]) {
        uint32_t lo, hi;
        qfmt<QT_Q5_0>::vals(r + 22 * j, c, lo, hi);
        pw_mq_h2(lo, hi, 0x64106410u, a); /* 1024 + 16 */
    }
    __device__ static __forceinline__ float epi(const uint8_t *r, int j, float v0, float v1, const float *sx) {
        (void)sx;
        return h2f(ld_u16(r + 22 * j)) * (v0 + v1);
    }
};
template <> struct pw_mq<QT_Q8_0> {
    __device__ static __forceinline__ void frag(const uint8_t *r, int j, int c, uint32_t a[4]) {
        const uint8_t *b = r + 34 * j + 2 + 4 * c;
        pw_mq_h2(ld_u32_a2(b) ^ 0x80808080u, ld_u32_a2(b + 16) ^ 0x80808080u, 0x64806480u, a); /* 1024 + 128 */
    }
    __device__ static __forceinline__ float epi(const uint8_t *r, int j, float v0, float v1, const float *sx) {
        (void)sx;
        return h2f(ld_u16(r + 34 * j)) * (v0 + v1);
    }
};
template <> struct pw_mq<QT_Q4_K> {
    __device__ static __forceinline__ void frag(const uint8_t *r, int j, int c, uint32_t a[4]) {
        const int s = j & 7, sh = 4 * (s & 1);
        const uint8_t *q = r + 144 * (j >> 3) + 16 + 32 * (s >> 1) + 4 * c;
        pw_mq_h2((ld_u32_a4(q) >> sh) & 0x0F0F0F0Fu, (ld_u32_a4(q + 16) >> sh) & 0x0F0F0F0Fu, 0x64006400u, a);
    }
    __device__ static __forceinline__ float epi(const uint8_t *r, int j, float v0, float v1, const float *sx) {
        const uint8_t *b = r + 144 * (j >> 3);
        int sc, m;
        scale_min_k4(j & 7, b + 4, sc, m);
        return h2f(ld_u16(b)) * (float)sc * (v0 + v1) - h2f(ld_u16(b + 2)) * (float)m * sx[j];
    }
};
template <> struct pw_mq<QT_Q6_K> {
    __device__ static __forceinline__ void frag(const uint8_t *r, int j, int c, uint32_t a[4]) {
        const int s = j & 7, h = s >> 2, q4 = s & 3, shn = 4 * (q4 >> 1), shh = 2 * q4;
        const uint8_t *b = r + 210 * (j >> 3), *ql = b + 64 * h + 32 * (q4 & 1) + 4 * c, *qh = b + 128 + 32 * h + 4 * c;
        const uint32_t v0 = ((ld_u32_a2(ql) >> shn) & 0x0F0F0F0Fu) | (((ld_u32_a2(qh) >> shh) & 0x03030303u) << 4);
        const uint32_t v1 =
            ((ld_u32_a2(ql + 16) >> shn) & 0x0F0F0F0Fu) | (((ld_u32_a2(qh + 16) >> shh) & 0x03030303u) << 4);
        pw_mq_h2(v0, v1, 0x64206420u, a); /* 1024 + 32 */
    }
    __device__ static __forceinline__ float epi(const uint8_t *r, int j, float v0, float v1, const float *sx) {
        (void)sx;
        const int s = j & 7, i = 8 * (s >> 2) + 2 * (s & 3);
        const uint8_t *b = r + 210 * (j >> 3);
        return h2f(ld_u16(b + 208)) * ((float)(int8_t)b[192 + i] * v0 + (float)(int8_t)b[193 + i] * v1);
    }
};

/* lane (g, c): row g's pointers rt (groups jt.., nt of them) and rb (jb..,
 * nb); returns the lane's row over its range: c < 2 the first, else the
 * second. Out of line: one copy per format however many phases call it. */
/* one group of each of the lane's two rows (vt / vb: whether the group
 * exists; the last step of unequal ranges) */
template <int T>
__device__ __forceinline__ float pw_mq_step(const uint8_t *rt, int jt, const uint8_t *rb, int jb, bool vt, bool vb,
                                            const __half *xh, const float *sx) {
    const int lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
    const bool top = c < 2;
    uint32_t at[4] = {0u, 0u, 0u, 0u}, ab[4] = {0u, 0u, 0u, 0u};
    if (vt) pw_mq<T>::frag(rt, jt, c, at);
    if (vb) pw_mq<T>::frag(rb, jb, c, ab);
    const int jx = g < 4 ? (vt ? jt : jb) : (vb ? jb : jt);
    const uint4 xb = *reinterpret_cast<const uint4 *>(xh + 32 * jx + 8 * c);
    float c0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, c1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    pw_mma16816(c0, at[0], ab[0], at[1], ab[1], xb.x, xb.y);
    pw_mma16816(c1, at[2], ab[2], at[3], ab[3], xb.z, xb.w);
    if (!(top ? vt : vb)) return 0.0f;
    return top ? pw_mq<T>::epi(rt, jt, c0[0], c1[0], sx) : pw_mq<T>::epi(rb, jb, c0[2], c1[2], sx);
}

template <int T>
__device__ __forceinline__ float pw_mq_tile_t(const uint8_t *rt, int jt, int nt, const uint8_t *rb, int jb, int nb,
                                              const __half *xh, const float *sx) {
    const int n0 = nt < nb ? nt : nb;
    float acc = 0.0f, acc2 = 0.0f;
    int i = 0;
    for (; i + 1 < n0; i += 2) { /* two groups in flight (independent chains) */
        acc += pw_mq_step<T>(rt, jt + i, rb, jb + i, true, true, xh, sx);
        acc2 += pw_mq_step<T>(rt, jt + i + 1, rb, jb + i + 1, true, true, xh, sx);
    }
    if (i < n0) acc += pw_mq_step<T>(rt, jt + i, rb, jb + i, true, true, xh, sx), i++;
    if (nt != nb) acc2 += pw_mq_step<T>(rt, jt + i, rb, jb + i, i < nt, i < nb, xh, sx);
    return acc + acc2;
}

template <int T>
__device__ __noinline__ float pw_mq_tile(const uint8_t *rt, int jt, int nt, const uint8_t *rb, int jb, int nb,
                                         const __half *xh, const float *sx) {
    return pw_mq_tile_t<T>(rt, jt, nt, rb, jb, nb, xh, sx);
}

/* the activation xs [K] (fp32) as xh (pw_xh_stage's order) and sx [K/32]
 * (each 32-element group's sum); the caller synchronizes after */
__device__ __forceinline__ void pw_xh_sx_stage(const float *xs, int K, __half *xh, float *sx) {
    pw_xh_stage(xs, K, xh);
    for (int j = threadIdx.x; j < K / 32; j += blockDim.x) {
        const float4 *p = reinterpret_cast<const float4 *>(xs + 32 * j);
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float4 v = p[i];
            s += (v.x + v.y) + (v.z + v.w);
        }
        sx[j] = s;
    }
}

/* does pw_rows_mma carry type t */
__host__ __device__ __forceinline__ bool pw_mq_type(int t) {
    return t == QT_Q5_0 || t == QT_Q8_0 || t == QT_Q4_K || t == QT_Q6_K;
}

/* nr rows of one matrix (type t, pw_mq_type; rows at base + r * nb1, width
 * K) against xh/sx: tiles of 8 rows, each tile's K split into R ranges (two
 * per warp, at least 2 groups each), partials summed per row in a fixed
 * order (red: >= 16 * warps floats); at most wcap warps per tile. done(r,
 * sum) once per row, from one thread. Every thread of the block calls it (block-uniform). */
template <bool INL = false, class Done>
__device__ __forceinline__ void pw_rows_mma(int t, int nr, const uint8_t *base, size_t nb1, int K, const __half *xh,
                                            const float *sx, float *red, int wcap, Done done) {
    const int nw = (int)(blockDim.x >> 5), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, c = lane & 3, ng = K >> 5, ntile = (nr + 7) >> 3;
    int wpt = nw / ntile; /* warps per tile */
    if (wpt > wcap) wpt = wcap;
    if (wpt < 1) wpt = 1;
    while (wpt > 1 && ng / (2 * wpt) < 2) wpt--;
    const int R = 2 * wpt, tpr = nw / wpt; /* ranges per tile, tiles per round */
    for (int t0 = 0; t0 < ntile; t0 += tpr) {
        const int tl = warp / wpt, k = warp % wpt, tile = t0 + tl;
        if (tl < tpr && tile < ntile) {
            int row = 8 * tile + g;
            row = row < nr ? row : nr - 1;
            const uint8_t *r = base + (size_t)row * nb1;
            const int j0 = ng * (2 * k) / R, j1 = ng * (2 * k + 1) / R, j2 = ng * (2 * k + 2) / R;
            float v = 0.0f;
            switch (t) {
#define PW_MQ_CASE(T)                                                                         \
    case T:                                                                                   \
        v = INL ? pw_mq_tile_t<T>(r, j0, j1 - j0, r, j1, j2 - j1, xh, sx)                     \
                : pw_mq_tile<T>(r, j0, j1 - j0, r, j1, j2 - j1, xh, sx);                      \
        break;
                PW_MQ_CASE(QT_Q5_0)
                PW_MQ_CASE(QT_Q8_0)
                PW_MQ_CASE(QT_Q4_K)
                PW_MQ_CASE(QT_Q6_K)
#undef PW_MQ_CASE
            default: v = __int_as_float(0x7fc00000); break; /* unreachable (host check): NaN shows it */
            }
            v += __shfl_xor_sync(0xffffffffu, v, 2); /* the warp's two ranges of row g */
            if (c == 0) red[(tl * wpt + k) * 8 + g] = v;
        }
        __syncthreads();
        /* 4 threads per row, each a quarter of the tile's wpt partials, in a
         * fixed order (deterministic) */
        const int tiles = ntile - t0 < tpr ? ntile - t0 : tpr, i = threadIdx.x >> 2, p = threadIdx.x & 3;
        float s = 0.0f;
        if (i < 8 * tiles)
            for (int q = p; q < wpt; q += 4) s += red[((i >> 3) * wpt + q) * 8 + (i & 7)];
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        if (p == 0 && i < 8 * tiles && 8 * t0 + i < nr) done(8 * t0 + i, s);
        __syncthreads();
    }
}
