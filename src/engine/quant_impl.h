/* quant_impl — private to the quant*.c files: per-type kernels the type
 * table in quant.c dispatches to, and small shared helpers.
 *
 * Every kernel takes n = elements in the row (a whole number of blocks; the
 * public entry points check that before calling in). Pointers are the raw,
 * possibly unaligned rows; block structs have 2-byte alignment at most except
 * blk_q8_K (float d), which our own activation buffers always satisfy. */
#ifndef LLORCH_QUANT_IMPL_H
#define LLORCH_QUANT_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/quant.h"

/* No FMA contraction in the reference code: quantizer choices compare float
 * errors, and a fused a*b+c rounds differently from ggml's reference build,
 * which changes bytes. gcc in -std=c11 mode already contracts nothing; clang
 * contracts within expressions by default and honours this pragma. (A gcc
 * build in gnu11 mode would need -ffp-contract=off; CMake uses c11.) */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

typedef void (*qt_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*qt_quant_fn)(const float *src, void *dst, int64_t n);
typedef float (*qt_dot_fn)(const void *w, const void *x, int64_t n);

/* fp16 -> fp32 inline for hot loops (same as qt_f16_to_f32) */
static inline float qt__h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0) {
        float f = (float)m * 5.9604644775390625e-8f; /* m * 2^-24, exact */
        return sign ? -f : f;
    }
    if (e == 31) u = sign | 0x7f800000u | (m << 13);
    else u = sign | ((e + 112u) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ggml's nearest_int: round-half-to-even via the 1.5*2^23 trick; valid for
 * |f| <= 4194303 (callers keep values in range). */
static inline int qt__nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* e2m1 values doubled (ggml's kvalues_mxfp4); the E8M0 scale carries the 1/2 */
extern const int8_t qt__kvalues_mxfp4[16];

/* Q4_K/Q5_K 6-bit scale j (0..7) and min j from the 12 packed scale bytes */
static inline void qt__scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q3_K: the 16 signed 6-bit scales (already minus 32) from the 12 packed
 * bytes: scale j has its low 4 bits in byte j (j < 8, low nibble) or byte
 * j-8 (high nibble), and its high 2 bits at bits 2*(j/4) of byte 8 + j%4.
 * Done four scales at a time in 32-bit words. */
static inline void qt__q3k_scales(const uint8_t *s, int8_t out[16]) {
    uint32_t u0, u1, u2, w[4];
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    w[0] = (u0 & 0x0f0f0f0fu) | (u2 & 0x03030303u) << 4;
    w[1] = (u1 & 0x0f0f0f0fu) | ((u2 >> 2) & 0x03030303u) << 4;
    w[2] = ((u0 >> 4) & 0x0f0f0f0fu) | ((u2 >> 4) & 0x03030303u) << 4;
    w[3] = ((u1 >> 4) & 0x0f0f0f0fu) | ((u2 >> 6) & 0x03030303u) << 4;
    uint8_t b[16];
    memcpy(b, w, 16); /* little-endian: byte k of w[i] is scale 4i + k */
    for (int j = 0; j < 16; j++) out[j] = (int8_t)(b[j] - 32);
}

/* Q4_K/Q5_K: all 8 scales and 8 mins at once (same packing as
 * qt__scale_min_k4), in 32-bit words. */
static inline void qt__scales_mins_k4(const uint8_t *q, uint8_t sc[8], uint8_t m[8]) {
    uint32_t u0, u1, u2, w[4];
    memcpy(&u0, q, 4);
    memcpy(&u1, q + 4, 4);
    memcpy(&u2, q + 8, 4);
    w[0] = u0 & 0x3f3f3f3fu;                                       /* sc 0..3 */
    w[1] = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;    /* sc 4..7 */
    w[2] = u1 & 0x3f3f3f3fu;                                       /* m 0..3 */
    w[3] = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4; /* m 4..7 */
    memcpy(sc, w, 8);
    memcpy(m, w + 2, 8);
}

/* qt_e8m0_to_f32 inline for hot loops */
static inline float qt__e8m0(uint8_t e) {
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* quant_dequant.c */
void qt__dq_f32(const void *s, float *d, int64_t n);
void qt__dq_f16(const void *s, float *d, int64_t n);
void qt__dq_bf16(const void *s, float *d, int64_t n);
void qt__dq_i8(const void *s, float *d, int64_t n);
void qt__dq_i16(const void *s, float *d, int64_t n);
void qt__dq_i32(const void *s, float *d, int64_t n);
void qt__dq_q4_0(const void *s, float *d, int64_t n);
void qt__dq_q4_1(const void *s, float *d, int64_t n);
void qt__dq_q5_0(const void *s, float *d, int64_t n);
void qt__dq_q5_1(const void *s, float *d, int64_t n);
void qt__dq_q8_0(const void *s, float *d, int64_t n);
void qt__dq_q8_1(const void *s, float *d, int64_t n);
void qt__dq_q2_K(const void *s, float *d, int64_t n);
void qt__dq_q3_K(const void *s, float *d, int64_t n);
void qt__dq_q4_K(const void *s, float *d, int64_t n);
void qt__dq_q5_K(const void *s, float *d, int64_t n);
void qt__dq_q6_K(const void *s, float *d, int64_t n);
void qt__dq_q8_K(const void *s, float *d, int64_t n);
void qt__dq_mxfp4(const void *s, float *d, int64_t n);

/* quant_quantize.c (legacy 32-blocks, fp, MXFP4, activations) */
void qt__q_f32(const float *s, void *d, int64_t n);
void qt__q_f16(const float *s, void *d, int64_t n);
void qt__q_bf16(const float *s, void *d, int64_t n);
void qt__q_q4_0(const float *s, void *d, int64_t n);
void qt__q_q4_1(const float *s, void *d, int64_t n);
void qt__q_q5_0(const float *s, void *d, int64_t n);
void qt__q_q5_1(const float *s, void *d, int64_t n);
void qt__q_q8_0(const float *s, void *d, int64_t n);
void qt__q_q8_1(const float *s, void *d, int64_t n);
void qt__q_q8_K(const float *s, void *d, int64_t n);
void qt__q_mxfp4(const float *s, void *d, int64_t n);

/* quant_kquant.c (K-quant weight quantizers) */
void qt__q_q2_K(const float *s, void *d, int64_t n);
void qt__q_q3_K(const float *s, void *d, int64_t n);
void qt__q_q4_K(const float *s, void *d, int64_t n);
void qt__q_q5_K(const float *s, void *d, int64_t n);
void qt__q_q6_K(const float *s, void *d, int64_t n);
/* Q2_K/Q4_K/Q5_K/Q6_K through the scalar scale search only (the default path
 * searches 8 sub-blocks per AVX2 vector, bit-identically); for tests.
 * Identical bytes hold whenever no inf/NaN arises inside the search (finite
 * rows with |x| in [1e-20, 1e9] or 0): once a NaN appears, which operand's
 * NaN the hardware propagates depends on operand order the compiler may
 * swap, in the scalar code as much as in ggml's. Returns -1 for other types. */
int qt__kquant_scalar(int type, const float *s, void *d, int64_t n);

/* quant_dot.c: scalar reference dots (weight type x its vec_dot_type) */
float qt__dot_f32_ref(const void *w, const void *x, int64_t n);
float qt__dot_f16_ref(const void *w, const void *x, int64_t n);
float qt__dot_bf16_ref(const void *w, const void *x, int64_t n);
float qt__dot_q4_0_ref(const void *w, const void *x, int64_t n);
float qt__dot_q4_1_ref(const void *w, const void *x, int64_t n);
float qt__dot_q5_0_ref(const void *w, const void *x, int64_t n);
float qt__dot_q5_1_ref(const void *w, const void *x, int64_t n);
float qt__dot_q8_0_ref(const void *w, const void *x, int64_t n);
float qt__dot_q2_K_ref(const void *w, const void *x, int64_t n);
float qt__dot_q3_K_ref(const void *w, const void *x, int64_t n);
float qt__dot_q4_K_ref(const void *w, const void *x, int64_t n);
float qt__dot_q5_K_ref(const void *w, const void *x, int64_t n);
float qt__dot_q6_K_ref(const void *w, const void *x, int64_t n);
float qt__dot_mxfp4_ref(const void *w, const void *x, int64_t n);

/* quant_dot_avx2.c: AVX2+FMA dots; NULL-equivalent (the ref) without __AVX2__.
 * qt__dot_simd(type) returns the fast kernel or NULL when none exists. */
qt_dot_fn qt__dot_simd(int type);
/* quant_act_avx2.c: AVX2 activation quantizers, byte-identical to the
 * scalar ones; NULL when none (or without __AVX2__). */
qt_quant_fn qt__act_simd(int type);
/* The scalar activation quantizer (tests compare it with the SIMD one). */
void qt__act_ref(int type, const float *x, void *dst, int64_t n);

#endif
