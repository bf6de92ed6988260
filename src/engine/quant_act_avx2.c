/* quant_act_avx2.c — AVX2 activation quantizers (Q8_0, Q8_1, Q8_K, F16),
 * byte-identical to the scalar ones in quant_quantize.c (ggml's reference
 * rounding): the max search keeps the first element of largest magnitude,
 * roundf's half-away-from-zero is rebuilt exactly from trunc, nearest_int
 * uses the same 1.5*2^23 trick, and bsums/sums are integer. They run once per
 * activation row of every matmul, which with many threads on the dot
 * products is no longer negligible. NULL from qt__act_simd without AVX2. */
#include "engine/quant_impl.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

static inline float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* max |x| over n (multiple of 8) floats; NaN lanes never win (as the scalar
 * "if (amax < |v|)" / fmaxf) */
static inline float absmax(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), m);
    return hmax256(m);
}

/* roundf(v) (half away from zero) for |v| <= 2^23, then int32 */
static inline __m256i roundf_i32(__m256 v) {
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t)); /* exact */
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f)); /* copysign(1, v) */
    return _mm256_cvttps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, one)));
}

/* 32 int32 (4 vectors) -> 32 int8 in element order */
static inline void pack_i8(__m256i a, __m256i b, __m256i c, __m256i d, int8_t *out) {
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i r = _mm256_packs_epi16(ab, cd);
    r = _mm256_permutevar8x32_epi32(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)out, r);
}

/* Blocks whose largest magnitude is below this take the scalar path: there
 * 1/d or -127/max overflow to inf and the scalar code's clamps and int8
 * wrap-around would have to be mimicked lane by lane. Never hit by real
 * activations. */
#define TINY_AMAX 1e-30f

static void q8_0_block(const float *x, blk_q8_0 *y, int *sum_out, float *d_out, float amax) {
    const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
    y->d = qt_f32_to_f16(d);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = roundf_i32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid));
    pack_i8(q[0], q[1], q[2], q[3], y->qs);
    if (sum_out) {
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
        *sum_out = _mm_cvtsi128_si32(h);
        *d_out = d;
    }
}

/* The scalar versions clamp NaN/inf to defined values; rows with non-finite
 * values take the scalar path so the bytes stay identical. */
static inline int all_finite(const float *x, int n) {
    __m256 bad = _mm256_setzero_ps();
    const __m256 inf = _mm256_set1_ps(INFINITY), sign = _mm256_set1_ps(-0.0f);
    for (int j = 0; j < n; j += 8)
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), inf, _CMP_NLT_UQ));
    return _mm256_movemask_ps(bad) == 0;
}

/* amax of a block when the SIMD path may handle it, else -1 (scalar path) */
static inline float simd_amax(const float *x, int n) {
    if (!all_finite(x, n)) return -1.0f;
    const float amax = absmax(x, n);
    return amax == 0.0f || amax >= TINY_AMAX ? amax : -1.0f;
}

static void act_q8_0(const float *x, void *dst, int64_t n) {
    blk_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const float amax = simd_amax(x + 32 * i, 32);
        if (amax >= 0.0f) q8_0_block(x + 32 * i, &y[i], NULL, NULL, amax);
        else qt__q_q8_0(x + 32 * i, &y[i], 32);
    }
}

static void act_q8_1(const float *x, void *dst, int64_t n) {
    blk_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++) {
        const float amax = simd_amax(x + 32 * i, 32);
        if (amax < 0.0f) {
            qt__q_q8_1(x + 32 * i, &y[i], 32);
            continue;
        }
        blk_q8_0 t;
        int sum;
        float d;
        q8_0_block(x + 32 * i, &t, &sum, &d, amax);
        y[i].d = t.d;
        memcpy(y[i].qs, t.qs, 32);
        y[i].s = qt_f32_to_f16((float)sum * d);
    }
}

static void act_q8_K(const float *x, void *dst, int64_t n) {
    blk_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float *xb = x + QK_K * i;
        const float amax = simd_amax(xb, QK_K);
        if (amax <= 0.0f) { /* non-finite, tiny, or all zero (d = 0): scalar */
            qt__q_q8_K(xb, &y[i], QK_K);
            continue;
        }
        int first = 0; /* the scalar "max": first element with |x| == amax */
        while (fabsf(xb[first]) != amax) first++;
        const float iscale = -127.f / xb[first];
        const __m256 vis = _mm256_set1_ps(iscale), magic = _mm256_set1_ps(12582912.f);
        const __m256i m23 = _mm256_set1_epi32(0x007fffff), off = _mm256_set1_epi32(0x00400000);
        const __m256i c127 = _mm256_set1_epi32(127);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                const __m256 v = _mm256_add_ps(_mm256_mul_ps(vis, _mm256_loadu_ps(xb + j + 8 * k)), magic);
                q[k] = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), m23), off);
                q[k] = _mm256_min_epi32(q[k], c127);
            }
            pack_i8(q[0], q[1], q[2], q[3], y[i].qs + j);
        }
        /* bsums: 16 sums of 16 int8 */
        for (int k = 0; k < QK_K / 16; k++) {
            const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(y[i].qs + 16 * k)));
            __m256i s = _mm256_madd_epi16(v, _mm256_set1_epi16(1));
            __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
            h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
            y[i].bsums[k] = (int16_t)_mm_cvtsi128_si32(h);
        }
        const float d = 1 / iscale;
        memcpy(&y[i].d, &d, 4);
    }
}

/* F16C converts with round-to-nearest-even like qt_f32_to_f16; NaNs are
 * quieted by both (payload bits kept), so the bytes match. */
static void act_f16(const float *x, void *dst, int64_t n) {
    uint16_t *y = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = qt_f32_to_f16(x[i]);
}

qt_quant_fn qt__act_simd(int type) {
    switch (type) {
    case QT_Q8_0: return act_q8_0;
    case QT_Q8_1: return act_q8_1;
    case QT_Q8_K: return act_q8_K;
    case QT_F16: return act_f16;
    default: return NULL;
    }
}

#else

qt_quant_fn qt__act_simd(int type) {
    (void)type;
    return NULL;
}

#endif
