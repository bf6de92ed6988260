/* quant — ggml tensor block formats: type table, reference dequantization
 * (bit-exact with ggml's layouts), quantizers, and the vec-dot kernels the CPU
 * matmul runs directly on quantized rows.
 *
 * Type ids are ggml's (they are what GGUF files store). Rows are ne[0]
 * elements, a whole number of blocks. Block structs are packed little-endian
 * exactly as ggml lays them out; fp16 fields are IEEE half bits in a uint16_t.
 *
 * Dot products follow ggml: the activation row is first quantized to the
 * weight type's "vec_dot_type" (Q8_0 for Q4_0/Q5_0/Q8_0/MXFP4, Q8_1 for
 * Q4_1/Q5_1, Q8_K for the K-quants, F32 for F32, F16 for F16, and F32 for
 * BF16 -- our choice: BF16 weights dot unrounded F32 activations, where ggml
 * would round activations to BF16), once per row of activations, then
 * qt_vec_dot(wtype, wrow, xq, n) runs on both. Always read the activation type
 * from qt_info(wtype)->vec_dot_type rather than hard-coding it.
 *
 * Semantics others rely on (see the .c files for the element order of each
 * format; the dequantizers in quant_dequant.c are the project's reference):
 *  - Q8_1 and Q8_K are activation-only: vec_dot_type -1, can_quantize 0
 *    (qt_quantize_row says -ENOTSUP); qt_quantize_act and qt_dequant_row work.
 *    Q8_1's s = fp16(d * sum(qs)); Q8_K's d is fp32 and bsums[k] = sum of
 *    qs[16k..16k+15].
 *  - MXFP4: value = kvalues[nibble] * qt_e8m0_to_f32(e), kvalues being the
 *    e2m1 values doubled {0,1,2,3,4,6,8,12,0,-1,...,-12} and
 *    qt_e8m0_to_f32(e) = 2^(e-128) (ggml's GGML_E8M0_TO_FP32_HALF), which is
 *    the OCP 2^(e-127) scale with the table's factor 2 folded out. e = 255 is
 *    not NaN: it decodes as 2^127, as ggml does.
 *  - I8/I16/I32 are in the table (blck 1) for row sizes; dequant converts.
 *  - Asserts (tier 2) fire on unknown types or bad n in qt_dequant_row,
 *    qt_vec_dot and qt_quantize_act: validate tensor types at load time.
 *  - Quantizers are ggml's non-imatrix reference algorithms, byte-identical to
 *    llama.cpp's quantize_row_*_ref (tests/unit/test_quant_ggml.c checks that
 *    against libggml-base); e.g. an all-zero Q4_0/Q5_0 block stores
 *    d = -0.0 (0/-8) as ggml does. NaN/inf input is defined behaviour (no
 *    crash), the affected block's contents are unspecified.
 *  - Alignment: weight rows need 2-byte alignment (4 for F32); activation
 *    buffers for Q8_K and F32 need 4 (malloc'd buffers are fine).
 *  - Everything here is thread-safe and allocation-free (one-time dispatch
 *    table set-up behind pthread_once).
 */
#ifndef LLORCH_QUANT_H
#define LLORCH_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum qt_type {
    QT_F32 = 0, QT_F16 = 1, QT_Q4_0 = 2, QT_Q4_1 = 3, QT_Q5_0 = 6, QT_Q5_1 = 7,
    QT_Q8_0 = 8, QT_Q8_1 = 9, QT_Q2_K = 10, QT_Q3_K = 11, QT_Q4_K = 12, QT_Q5_K = 13,
    QT_Q6_K = 14, QT_Q8_K = 15, QT_I8 = 24, QT_I16 = 25, QT_I32 = 26, QT_BF16 = 30,
    QT_MXFP4 = 39,
    QT__MAX = 40
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define QK_MXFP4 32
#define K_SCALE_SIZE 12

/* ---- block layouts (ggml's, byte for byte) --------------------------------- */
typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } blk_q4_0;                  /* 18 B */
typedef struct { uint16_t d, m; uint8_t qs[QK4_1 / 2]; } blk_q4_1;               /* 20 B */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } blk_q5_0;   /* 22 B */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } blk_q5_1;/* 24 B */
typedef struct { uint16_t d; int8_t qs[QK8_0]; } blk_q8_0;                       /* 34 B */
typedef struct { uint16_t d, s; int8_t qs[QK8_1]; } blk_q8_1;                    /* 36 B: s = d*sum(qs) */
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d, dmin; } blk_q2_K;          /* 84 B */
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; } blk_q3_K; /* 110 B */
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } blk_q4_K;      /* 144 B */
typedef struct { uint16_t d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } blk_q5_K; /* 176 B */
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } blk_q6_K; /* 210 B */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } blk_q8_K;  /* 292 B */
typedef struct { uint8_t e; uint8_t qs[QK_MXFP4 / 2]; } blk_mxfp4;                /* 17 B: E8M0 scale + 32 e2m1 */

typedef struct {
    const char *name;      /* "Q4_K" as ggml names it ("f32", "f16", "bf16" in lower case) */
    int blck;              /* elements per block */
    int bytes;             /* bytes per block */
    int vec_dot_type;      /* activation format for qt_vec_dot, or -1 when no dot exists */
    int can_quantize;      /* qt_quantize_row is implemented */
} qt_info_t;

/* NULL for ids that are not block formats we know. */
const qt_info_t *qt_info(int type);
/* Bytes of a row of n elements; 0 when n is not a whole number of blocks,
 * the type is unknown, or the size would exceed INT64_MAX (never wraps). */
size_t qt_row_bytes(int type, int64_t n);

/* fp16 / bf16 helpers (round-to-nearest-even, NaN/Inf preserved) */
float qt_f16_to_f32(uint16_t h);
uint16_t qt_f32_to_f16(float f);
float qt_bf16_to_f32(uint16_t h);
uint16_t qt_f32_to_bf16(float f);
/* E8M0 scale of MXFP4 as ggml interprets it (2^(e-127), with ggml's half factor
 * folded as ggml does for the e2m1 table) */
float qt_e8m0_to_f32(uint8_t e);

/* Reference dequantization of n elements (n a multiple of the block size). */
void qt_dequant_row(int type, const void *src, float *dst, int64_t n);
/* Quantizes n floats into dst (qt_row_bytes(type, n) bytes). Returns 0, or
 * -ENOTSUP for a type without a quantizer, -EINVAL for a bad n. Deterministic. */
int qt_quantize_row(int type, const float *src, void *dst, int64_t n);

/* Dot product of a weight row (type) with an activation row already
 * quantized to qt_info(type)->vec_dot_type. */
float qt_vec_dot(int type, const void *wrow, const void *xq, int64_t n);
/* The scalar reference for qt_vec_dot (same integer sums per block; float
 * summation order may differ from the SIMD kernels). For tests and for
 * checking other backends. */
float qt_vec_dot_ref(int type, const void *wrow, const void *xq, int64_t n);
/* The same dot against 4 activation rows at once (prefill):
 * y[r * ldy] = qt_vec_dot(type, wrow, xq[r], n) for r = 0..3, bit for bit
 * (every output's float additions in the same order), the weight row
 * decoded once for the 4. qt_vec_dot4 returns NULL where the type has no
 * such kernel in this build (then call qt_vec_dot per row). */
typedef void (*qt_dot4_fn)(const void *wrow, const void *const xq[4], int64_t n, float *y, int64_t ldy);
qt_dot4_fn qt_vec_dot4(int type);
/* Quantizes an activation row into the given vec_dot_type (Q8_0, Q8_1, Q8_K,
 * F16 or F32 copy). */
void qt_quantize_act(int vec_dot_type, const float *x, void *dst, int64_t n);

#endif
