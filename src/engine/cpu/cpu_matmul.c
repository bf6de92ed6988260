/* cpu_matmul — y[rows][ne1] = x[rows][ne0] · w^T on quantized weights.
 *
 * As ggml does: the activation rows are quantized once per matmul into the
 * weight type's vec_dot_type (Q8_0, Q8_1, Q8_K, F16; F32 weights use x as
 * is) into a scratch buffer the backend keeps (sized at model load by
 * reserve() for the largest matmul, so an eval allocates nothing), then each output element is one
 * qt_vec_dot of a weight row with an activation row. Output rows are split
 * across the pool; for several activation rows (prompt processing) the
 * weight rows are walked in blocks of MM_BLOCK so a block stays in cache
 * while every activation row passes over it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_int.h"
#include "engine/quant.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define MM_SIMD 1
#endif

#define MM_BLOCK 16
#ifdef MM_SIMD
/* ---- multi-row kernel for the 32-blocks dotted with Q8_0 activations --------
 * Q4_0, Q5_0 and Q8_0 weights: each weight block is decoded to 32 signed
 * bytes once and dotted with R = 8 or 4 activation rows (the per-row
 * qt_vec_dot would decode it once per row). Same arithmetic as the per-row
 * dot and as llama.cpp's tinyBLAS for these types: an exact int32 sum per
 * 4 bytes (8 lanes a block), times fp32(d_w * d_x), FMA-accumulated per lane
 * block after block, then one horizontal sum; so every output equals the
 * single-row dot bit for bit (test_backend_cpu checks it). */
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline __m256i dec_q4_0(const blk_q4_0 *b) {
    const __m128i t = _mm_loadu_si128((const __m128i *)b->qs);
    const __m128i m = _mm_set1_epi8(0x0f);
    const __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(t, 4), m), _mm_and_si128(t, m));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
}

static inline __m256i dec_q5_0(const blk_q5_0 *b) {
    const __m128i t = _mm_loadu_si128((const __m128i *)b->qs);
    const __m128i m = _mm_set1_epi8(0x0f);
    __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(t, 4), m), _mm_and_si128(t, m));
    uint32_t qh;
    memcpy(&qh, b->qh, 4);
    /* bit j of qh → 0xff in byte j */
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000ll, 0x0101010101010101ll, 0x0202020202020202ll,
                                            0x0303030303030303ll);
    const __m256i bm = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    hb = _mm256_cmpeq_epi8(_mm256_and_si256(hb, bm), bm);
    q = _mm256_or_si256(q, _mm256_and_si256(hb, _mm256_set1_epi8(0x10)));
    return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
}

/* the exact int32 sum of the 32 products of signed bytes q and y (|q| <=
 * 128, |y| <= 127: maddubs' int16 pairs cannot saturate) */
static inline int32_t isum_i8(__m256i q, __m256i y) {
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q)),
                                        _mm256_set1_epi16(1));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}

static inline float hsum(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

static inline __attribute__((always_inline)) __m256i dec_block(int type, const char *wrow, int64_t i, float *dw) {
    if (type == QT_Q4_0) {
        const blk_q4_0 *b = (const blk_q4_0 *)wrow + i;
        *dw = h2f(b->d);
        return dec_q4_0(b);
    }
    if (type == QT_Q5_0) {
        const blk_q5_0 *b = (const blk_q5_0 *)wrow + i;
        *dw = h2f(b->d);
        return dec_q5_0(b);
    }
    const blk_q8_0 *b = (const blk_q8_0 *)wrow + i;
    *dw = h2f(b->d);
    return _mm256_loadu_si256((const __m256i *)b->qs);
}

/* y[r * ldy] = row of w · activation row x[r], r < R (8 or 4). dx: the
 * activation block scales as f32, block-major ([nb][ldd]: dx[i * ldd + r] is
 * row r's scale of block i), so that one pointer walks them. The R
 * accumulators stay in registers (R + 2 weight vectors + temporaries <= 16). */
static inline __attribute__((always_inline)) void q32_rows(int type, int R, const char *wrow, int64_t nb,
                                                           const blk_q8_0 *const *x, const float *dx, int64_t ldd,
                                                           float *y, int64_t ldy) {
    __m256 acc[8];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < nb; i++, dx += ldd) {
        float dw;
        const __m256i q = dec_block(type, wrow, i, &dw);
        const __m256i aw = _mm256_sign_epi8(q, q);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m256i sx = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)x[r][i].qs), q);
            const __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx[r]), p, acc[r]);
        }
    }
    for (int r = 0; r < R; r++) y[r * ldy] = hsum(acc[r]);
}

/* F32 weights: one weight row against 4 activation rows (f32, no quantization) */
static void f32_rows(const float *w, int64_t n, const float *const *x, float *y, int64_t ldy) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 wv = _mm256_loadu_ps(w + i);
        a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[0] + i), a0);
        a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[1] + i), a1);
        a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[2] + i), a2);
        a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[3] + i), a3);
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (; i < n; i++) {
        s0 += w[i] * x[0][i];
        s1 += w[i] * x[1][i];
        s2 += w[i] * x[2][i];
        s3 += w[i] * x[3][i];
    }
    y[0] = s0;
    y[ldy] = s1;
    y[2 * ldy] = s2;
    y[3 * ldy] = s3;
}

/* the same order for one activation row */
static float f32_row1(const float *w, int64_t n, const float *x) {
    __m256 a0 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), a0);
    float s0 = hsum(a0);
    for (; i < n; i++) s0 += w[i] * x[i];
    return s0;
}

/* llama.cpp's ggml_vec_dot_f32 order (AVX2 build): blocks of 32 on four
 * 8-lane FMA accumulators, reduced 0+2, 1+3; 0+1; low+high 128; hadd;
 * hadd; then the leftovers in float, each a fused multiply-add (the
 * scalar tail as node-llama-cpp's build compiles it, checked bitwise). */
static float dot_f32_ggml(const float *x, const float *y, int64_t n) {
    int64_t i = 0;
    float sum = 0.0f;
    const int64_t np = n & ~(int64_t)31;
    if (np) {
        /* four named accumulators: an array of them GCC -O2 keeps on the stack */
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (; i < np; i += 32) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
        }
        a0 = _mm256_add_ps(a0, a2);
        a1 = _mm256_add_ps(a1, a3);
        a0 = _mm256_add_ps(a0, a1);
        __m128 t = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
        t = _mm_hadd_ps(t, t);
        t = _mm_hadd_ps(t, t);
        sum = _mm_cvtss_f32(t);
    }
    for (; i < n; i++) sum += x[i] * y[i];
    return sum;
}

/* dot_f32_ggml of one weight row with two activation rows: each output's
 * operations and their order exactly dot_f32_ggml's (the two dependency
 * chains interleave; the scalar tail is latency-bound alone) */
static void dot_f32_ggml2(const float *w, const float *x0, const float *x1, int64_t n, float *y, int64_t ldy) {
    int64_t i = 0;
    float s0 = 0.0f, s1 = 0.0f;
    const int64_t np = n & ~(int64_t)31;
    if (np) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
        for (; i < np; i += 32) {
            const __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + i + 8);
            const __m256 w2 = _mm256_loadu_ps(w + i + 16), w3 = _mm256_loadu_ps(w + i + 24);
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + i), a0);
            a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x0 + i + 8), a1);
            a2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x0 + i + 16), a2);
            a3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x0 + i + 24), a3);
            b0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + i), b0);
            b1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1 + i + 8), b1);
            b2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x1 + i + 16), b2);
            b3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x1 + i + 24), b3);
        }
        a0 = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
        b0 = _mm256_add_ps(_mm256_add_ps(b0, b2), _mm256_add_ps(b1, b3));
        __m128 t = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
        __m128 u = _mm_add_ps(_mm256_castps256_ps128(b0), _mm256_extractf128_ps(b0, 1));
        t = _mm_hadd_ps(t, t);
        u = _mm_hadd_ps(u, u);
        t = _mm_hadd_ps(t, t);
        u = _mm_hadd_ps(u, u);
        s0 = _mm_cvtss_f32(t);
        s1 = _mm_cvtss_f32(u);
    }
    for (; i < n; i++) {
        s0 += w[i] * x0[i];
        s1 += w[i] * x1[i];
    }
    y[0] = s0;
    y[ldy] = s1;
}

/* one instance per (type, R), so the type test leaves the inner loop */
#define Q32_INST(T, t)                                                                                            \
    static void q32_8_##t(const char *w, int64_t nb, const blk_q8_0 *const *x, const float *dx, int64_t ldd,    \
                          float *y, int64_t ldy) {                                                               \
        q32_rows(T, 8, w, nb, x, dx, ldd, y, ldy);                                                               \
    }                                                                                                            \
    static void q32_4_##t(const char *w, int64_t nb, const blk_q8_0 *const *x, const float *dx, int64_t ldd,    \
                          float *y, int64_t ldy) {                                                               \
        q32_rows(T, 4, w, nb, x, dx, ldd, y, ldy);                                                               \
    }
Q32_INST(QT_Q4_0, q4_0)
Q32_INST(QT_Q5_0, q5_0)
Q32_INST(QT_Q8_0, q8_0)
#undef Q32_INST
typedef void (*q32_fn)(const char *, int64_t, const blk_q8_0 *const *, const float *, int64_t, float *, int64_t);
static q32_fn q32_kernel(int type, int R) {
    switch (type) {
    case QT_Q4_0: return R == 8 ? q32_8_q4_0 : q32_4_q4_0;
    case QT_Q5_0: return R == 8 ? q32_8_q5_0 : q32_4_q5_0;
    case QT_Q8_0: return R == 8 ? q32_8_q8_0 : q32_4_q8_0;
    default: return NULL;
    }
}
#endif

typedef struct {
    const eng_w *w;
    const float *x;
    char *xq;          /* [rows][rb] quantized activations (or x itself for F32) */
    size_t rb;         /* bytes per quantized row */
    int vdt;           /* vec_dot_type */
    float *y;
    int rows;
    float *dx;         /* [ne0/32][rows] Q8_0 block scales as f32 (multi-row kernel) or NULL */
} mm_args;

/* Q8_0 / Q8_1 activations as llama.cpp's x86 CPU backend quantizes them
 * (its AVX/AVX2 quantize_row_q8_0/_1), which is not ggml's reference
 * quantizer (qt_quantize_act): per 32-block amax, d = amax / 127 (stored
 * fp16), the multiplier is 127 / amax (not 1 / d), and x·(127 / amax) is
 * rounded to nearest, ties to even (not half away from zero); Q8_1's
 * s = fp16(d · Σq). Either rounding is equally good; this one makes our
 * int8 activations, and so every quantized matmul, equal llama.cpp's. */
static void act_q8_llamacpp(const float *x, void *dst, int64_t n, int with_sum) {
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f;
#ifdef MM_SIMD
        {
            /* max_ps(|x|, m) returns m where x is NaN, as fmaxf ignores it; the
             * max of the lanes does not depend on its order */
            const __m256 sign = _mm256_set1_ps(-0.0f);
            __m256 m = _mm256_setzero_ps();
            for (int j = 0; j < 32; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            amax = _mm_cvtss_f32(h);
        }
#else
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
#endif
        const float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
        int8_t *q;
        if (with_sum) {
            blk_q8_1 *b = (blk_q8_1 *)dst + i;
            b->d = qt_f32_to_f16(d);
            q = b->qs;
        } else {
            blk_q8_0 *b = (blk_q8_0 *)dst + i;
            b->d = qt_f32_to_f16(d);
            q = b->qs;
        }
        int sum = 0;
#ifdef MM_SIMD
        const __m256 vid = _mm256_set1_ps(id);
        for (int j = 0; j < 32; j += 8) {
            __m256 v = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j), vid),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            int32_t t[8];
            _mm256_storeu_si256((__m256i *)t, _mm256_cvtps_epi32(v));
            for (int k = 0; k < 8; k++) {
                q[j + k] = (int8_t)t[k];
                sum += t[k];
            }
        }
#else
        for (int j = 0; j < 32; j++) {
            q[j] = (int8_t)nearbyintf(x[j] * id);
            sum += q[j];
        }
#endif
        if (with_sum) ((blk_q8_1 *)dst)[i].s = qt_f32_to_f16(d * (float)sum);
    }
}

static void quant_task(void *ap, int ith, int nth) {
    mm_args *a = ap;
    int64_t lo, hi;
    cpu_split(a->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        if (a->vdt == QT_Q8_0 || a->vdt == QT_Q8_1)
            act_q8_llamacpp(a->x + r * a->w->ne0, a->xq + r * a->rb, a->w->ne0, a->vdt == QT_Q8_1);
        else
            qt_quantize_act(a->vdt, a->x + r * a->w->ne0, a->xq + r * a->rb, a->w->ne0);
        if (!a->dx) continue;
        const int64_t nb = a->w->ne0 / QK8_0;
        const blk_q8_0 *b = (const blk_q8_0 *)(a->xq + r * a->rb);
        for (int64_t i = 0; i < nb; i++) a->dx[i * a->rows + r] = qt_f16_to_f32(b[i].d);
    }
}

/* One output element. F16 weights: llama.cpp's CPU order of summation
 * (cpu_dot_f16_ggml, cpu_attn.c) instead of qt_vec_dot's, so that the
 * result, and the int8 rounding of what the next matmul quantizes, equal
 * llama.cpp's bit for bit (stories260K's ffn_down is F16 in every
 * requantized file: 172 is not a multiple of 32). F32 weights likewise:
 * llama.cpp runs several activation rows whose width is a multiple of 8
 * through its tinyBLAS sgemm (one 8-lane FMA accumulator per output, that
 * is f32_rows / f32_row1) and everything else (one row: decode; other
 * widths) through ggml_vec_dot_f32 (dot_f32_ggml); so do we. */
static inline float mm_dot(int type, const char *wrow, const void *x, int64_t n) {
    if (type == QT_F16) return cpu_dot_f16_ggml((const uint16_t *)wrow, x, n);
#ifdef MM_SIMD
    if (type == QT_F32) return dot_f32_ggml((const float *)wrow, x, n);
#endif
    return qt_vec_dot(type, wrow, x, n);
}

/* Q4_0 weights with a multiple of 8 rows: llama.cpp's x86 CPU backend
 * repacks them (q4_0_8x8, its "CPU_REPACK" buffer) and its gemv/gemm
 * kernels sum each block's 32 products exactly in int32 first, then
 * acc = fma((float)isum, d_w·d_x, acc) block after block: no 8-lane float
 * partials, no horizontal float sum. Reproduced here element by element. */
static int32_t isum_q4_0_q8_0(const blk_q4_0 *w, const blk_q8_0 *x) {
#ifdef MM_SIMD
    return isum_i8(dec_q4_0(w), _mm256_loadu_si256((const __m256i *)x->qs));
#else
    int32_t s = 0;
    for (int j = 0; j < 16; j++)
        s += ((w->qs[j] & 0x0f) - 8) * x->qs[j] + ((w->qs[j] >> 4) - 8) * x->qs[j + 16];
    return s;
#endif
}

static float dot_q4_0_repacked(const char *wrow, const char *xrow, int64_t nb) {
    const blk_q4_0 *w = (const blk_q4_0 *)wrow;
    const blk_q8_0 *x = (const blk_q8_0 *)xrow;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++)
        acc = fmaf((float)isum_q4_0_q8_0(&w[b], &x[b]), qt_f16_to_f32(w[b].d) * qt_f16_to_f32(x[b].d), acc);
    return acc;
}

/* MXFP4 weights with a multiple of 8 rows: llama.cpp's x86 CPU backend
 * repacks them too (mxfp4_8x8_q8_0) and its gemv/gemm (the same template as
 * Q4_0's) sums each block's products exactly in int32, then
 * acc = fma((float)isum, e8m0(w)·d_x, acc) block after block; so do we
 * (gpt-oss's expert matmuls then equal llama.cpp's bit for bit). */
static const int8_t k_mxfp4_vals[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12}; /* e2m1 x 2 */

static int32_t isum_mxfp4_q8_0(const blk_mxfp4 *w, const blk_q8_0 *x) {
#ifdef MM_SIMD
    const __m128i t = _mm_loadu_si128((const __m128i *)w->qs), m = _mm_set1_epi8(0x0f);
    const __m128i lut = _mm_loadu_si128((const __m128i *)k_mxfp4_vals);
    const __m256i q = _mm256_set_m128i(_mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(t, 4), m)),
                                       _mm_shuffle_epi8(lut, _mm_and_si128(t, m)));
    return isum_i8(q, _mm256_loadu_si256((const __m256i *)x->qs));
#else
    int32_t s = 0;
    for (int j = 0; j < 16; j++)
        s += k_mxfp4_vals[w->qs[j] & 0x0f] * x->qs[j] + k_mxfp4_vals[w->qs[j] >> 4] * x->qs[j + 16];
    return s;
#endif
}

static float dot_mxfp4_repacked(const char *wrow, const char *xrow, int64_t nb) {
    const blk_mxfp4 *w = (const blk_mxfp4 *)wrow;
    const blk_q8_0 *x = (const blk_q8_0 *)xrow;
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++)
        acc = fmaf((float)isum_mxfp4_q8_0(&w[b], &x[b]), qt_e8m0_to_f32(w[b].e) * qt_f16_to_f32(x[b].d), acc);
    return acc;
}

static void mm_task(void *ap, int ith, int nth) {
    mm_args *a = ap;
    const eng_w *w = a->w;
    const int64_t ne0 = w->ne0, ne1 = w->ne1;
    const char *wd = w->data;
    int64_t lo, hi;
    cpu_split(ne1, ith, nth, &lo, &hi);
    if ((w->type == QT_Q4_0 || w->type == QT_MXFP4) && ne1 % 8 == 0 && a->vdt == QT_Q8_0) {
        const int64_t nb = ne0 / QK8_0;
        float (*dot)(const char *, const char *, int64_t) =
            w->type == QT_Q4_0 ? dot_q4_0_repacked : dot_mxfp4_repacked;
        for (int64_t ob = lo; ob < hi; ob += MM_BLOCK) {
            const int64_t oe = ob + MM_BLOCK < hi ? ob + MM_BLOCK : hi;
            for (int r = 0; r < a->rows; r++)
                for (int64_t o = ob; o < oe; o++)
                    a->y[(int64_t)r * ne1 + o] = dot(wd + o * w->nb1, a->xq + (size_t)r * a->rb, nb);
        }
        return;
    }
#ifdef MM_SIMD
    if (w->type == QT_F32 && a->rows >= 2 && ne0 % 8 == 0) {
        const int r4 = a->rows / 4 * 4;
        for (int64_t ob = lo; ob < hi; ob += MM_BLOCK) {
            const int64_t oe = ob + MM_BLOCK < hi ? ob + MM_BLOCK : hi;
            for (int r0 = 0; r0 < r4; r0 += 4) {
                const float *x[4];
                for (int r = 0; r < 4; r++) x[r] = a->x + (int64_t)(r0 + r) * ne0;
                for (int64_t o = ob; o < oe; o++)
                    f32_rows((const float *)(wd + o * w->nb1), ne0, x, a->y + (int64_t)r0 * ne1 + o, ne1);
            }
            for (int r = r4; r < a->rows; r++)
                for (int64_t o = ob; o < oe; o++)
                    a->y[(int64_t)r * ne1 + o] = f32_row1((const float *)(wd + o * w->nb1), ne0, a->x + (int64_t)r * ne0);
        }
        return;
    }
    if (a->rows >= 4 && a->vdt == QT_Q8_0 && q32_kernel(w->type, 8)) {
        /* groups of 8 rows, then one of 4, then the rest per row */
        const int64_t nb = ne0 / QK8_0;
        const q32_fn k8 = q32_kernel(w->type, 8), k4 = q32_kernel(w->type, 4);
        const int r8 = a->rows / 8 * 8, r4 = a->rows / 4 * 4;
        for (int64_t ob = lo; ob < hi; ob += MM_BLOCK) {
            const int64_t oe = ob + MM_BLOCK < hi ? ob + MM_BLOCK : hi;
            for (int r0 = 0; r0 < r4; r0 += r0 < r8 ? 8 : 4) {
                const q32_fn k = r0 < r8 ? k8 : k4;
                const blk_q8_0 *x[8];
                for (int r = 0; r < 8 && r0 + r < a->rows; r++) x[r] = (const blk_q8_0 *)(a->xq + (size_t)(r0 + r) * a->rb);
                for (int64_t o = ob; o < oe; o++)
                    k(wd + o * w->nb1, nb, x, a->dx + r0, a->rows, a->y + (int64_t)r0 * ne1 + o, ne1);
            }
            for (int r = r4; r < a->rows; r++) {
                const char *xr = a->xq + (size_t)r * a->rb;
                for (int64_t o = ob; o < oe; o++)
                    a->y[(int64_t)r * ne1 + o] = mm_dot(w->type, wd + o * w->nb1, xr, ne0);
            }
        }
        return;
    }
#endif
    const qt_dot4_fn d4 = a->rows >= 4 ? qt_vec_dot4(w->type) : NULL;
    if (d4) {
        /* K-quants: groups of 4 rows (qt_vec_dot4: the single-row sums, bit
         * for bit), the rest per row */
        const int r4 = a->rows / 4 * 4;
        for (int64_t ob = lo; ob < hi; ob += MM_BLOCK) {
            const int64_t oe = ob + MM_BLOCK < hi ? ob + MM_BLOCK : hi;
            for (int r0 = 0; r0 < r4; r0 += 4) {
                const void *x[4];
                for (int r = 0; r < 4; r++) x[r] = a->xq + (size_t)(r0 + r) * a->rb;
                for (int64_t o = ob; o < oe; o++) d4(wd + o * w->nb1, x, ne0, a->y + (int64_t)r0 * ne1 + o, ne1);
            }
            for (int r = r4; r < a->rows; r++) {
                const char *xr = a->xq + (size_t)r * a->rb;
                for (int64_t o = ob; o < oe; o++)
                    a->y[(int64_t)r * ne1 + o] = mm_dot(w->type, wd + o * w->nb1, xr, ne0);
            }
        }
        return;
    }
    if (a->rows == 1) {
        for (int64_t o = lo; o < hi; o++) a->y[o] = mm_dot(w->type, wd + o * w->nb1, a->xq, ne0);
        return;
    }
    for (int64_t ob = lo; ob < hi; ob += MM_BLOCK) {
        const int64_t oe = ob + MM_BLOCK < hi ? ob + MM_BLOCK : hi;
        int r = 0;
#ifdef MM_SIMD
        if (w->type == QT_F32) /* widths tinyBLAS does not take: ggml_vec_dot_f32, two rows at once */
            for (; r + 2 <= a->rows; r += 2)
                for (int64_t o = ob; o < oe; o++)
                    dot_f32_ggml2((const float *)(wd + o * w->nb1), a->x + (int64_t)r * ne0, a->x + (int64_t)(r + 1) * ne0,
                                  ne0, a->y + (int64_t)r * ne1 + o, ne1);
#endif
        for (; r < a->rows; r++) {
            const char *xr = a->xq + (size_t)r * a->rb;
            float *yr = a->y + (int64_t)r * ne1;
            for (int64_t o = ob; o < oe; o++) yr[o] = mm_dot(w->type, wd + o * w->nb1, xr, ne0);
        }
    }
}

/* qbuf layout of a matmul of rows activation rows on w whose vec_dot_type
 * is vdt (not F32): rows quantized rows of rb bytes, then (MM_SIMD's
 * unsigned Q4_0/Q5_0 kernel, rows >= 4) the block scales and sums from
 * *aux_off, *aux_n floats each. Returns the bytes (monotonic in rows). */
static size_t mm_qbuf_layout(const eng_w *w, int vdt, int rows, size_t rb, int *aux, size_t *aux_off, size_t *aux_n) {
    size_t need = rb * (size_t)rows;
    *aux = 0;
    *aux_off = *aux_n = 0;
#ifdef MM_SIMD
    /* f32 block scales for the multi-row Q8_0-activation kernel */
    *aux = rows >= 4 && vdt == QT_Q8_0 && q32_kernel(w->type, 8) != NULL;
    *aux_off = (need + 63) / 64 * 64;
    *aux_n = (size_t)rows * (size_t)(w->ne0 / QK8_0);
    if (*aux) need = *aux_off + *aux_n * sizeof(float);
#else
    (void)w;
    (void)vdt;
#endif
    return need;
}

size_t cpu_matmul_scratch_bytes(const eng_w *w, int rows) {
    const qt_info_t *ti = qt_info(w->type);
    if (!ti || ti->vec_dot_type < 0 || ti->vec_dot_type == QT_F32 || rows <= 0) return 0;
    int aux;
    size_t aux_off, aux_n;
    return mm_qbuf_layout(w, ti->vec_dot_type, rows, qt_row_bytes(ti->vec_dot_type, w->ne0), &aux, &aux_off,
                          &aux_n);
}

void cpu_matmul(void *ctx, const eng_w *w, const float *x, float *y, int rows) {
    cpu_ctx *c = ctx;
    const qt_info_t *ti = qt_info(w->type);
    if (!ti || ti->vec_dot_type < 0 || rows <= 0) {
        c->err = -EINVAL;
        return;
    }
    mm_args a = {w, x, NULL, 0, ti->vec_dot_type, y, rows, NULL};
    if (a.vdt == QT_F32) {
        a.xq = (char *)x;
        a.rb = (size_t)w->ne0 * sizeof(float);
    } else {
        a.rb = qt_row_bytes(a.vdt, w->ne0);
        int aux;
        size_t aux_off, aux_n;
        const size_t need = mm_qbuf_layout(w, a.vdt, rows, a.rb, &aux, &aux_off, &aux_n);
        if (a.rb == 0) {
            c->err = -EINVAL;
            return;
        }
        /* sized at reserve() from the engine's bounds (never grown during an eval) */
        if (cpu_scratch(c, &c->qbuf, &c->qbuf_cap, need)) {
            c->err = -ENOMEM;
            return;
        }
        a.xq = c->qbuf;
#ifdef MM_SIMD
        if (aux) {
            a.dx = (float *)((char *)c->qbuf + aux_off);
        }
#endif
        cpu_pool_run(c->pool, quant_task, &a, cpu_nth_rows(c, rows, (int64_t)rows * w->ne0 * 4));
    }
    const int64_t work = w->ne0 * w->ne1 * (int64_t)rows;
    int nth = cpu_nth_for(c, work);
    if (nth > w->ne1) nth = (int)w->ne1;
    cpu_pool_run(c->pool, mm_task, &a, nth);
}
