/* quant_dot_avx2.c — AVX2+FMA vec-dot kernels (the CPU matmul hot path).
 * Structure follows ggml's x86 kernels: unpack each weight block to 32 int8
 * lanes, multiply against the int8 activations with maddubs (|w| x sign-
 * transferred y, which cannot saturate for our ranges: |w| <= 128, |y| <= 127,
 * two products per int16 lane <= 32512), widen to int32 with madd, convert,
 * and FMA with the block's float scale. The integer sums equal the scalar
 * reference's exactly; only float accumulation order differs.
 * Without __AVX2__ (LLORCH_CPU_FLAGS="") qt__dot_simd returns NULL and
 * qt_vec_dot uses the scalar reference. */
#include "engine/quant_impl.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 x int8 dot -> 8 x int32 partial sums */
static inline __m256i dot_i8(__m256i w, __m256i y) {
    const __m256i aw = _mm256_sign_epi8(w, w);
    const __m256i sy = _mm256_sign_epi8(y, w);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sy), _mm256_set1_epi16(1));
}

/* 16 packed bytes -> 32 nibbles: lanes 0-15 = low nibbles, 16-31 = high */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m256i v = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0xFF where bit i of v is set (byte i <- bit i) */
static inline __m256i bits_to_bytes(uint32_t v) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i x = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(x, bit), bit);
}

static inline float f16(uint16_t h) { return _cvtsh_ss(h); }

static float dot_f32(const void *w, const void *x, int64_t n) {
    const float *a = w, *b = x;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static float dot_f16(const void *w, const void *x, int64_t n) {
    const uint16_t *a = w, *b = x;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 b0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
        __m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i + 8)));
        __m256 b1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i + 8)));
        s0 = _mm256_fmadd_ps(a0, b0, s0);
        s1 = _mm256_fmadd_ps(a1, b1, s1);
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += f16(a[i]) * f16(b[i]);
    return s;
}

static float dot_bf16(const void *w, const void *x, int64_t n) {
    const uint16_t *a = w;
    const float *b = x;
    __m256 s0 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 a0 = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
        s0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + i), s0);
    }
    float s = hsum256(s0);
    for (; i < n; i++) s += qt_bf16_to_f32(a[i]) * b[i];
    return s;
}

static float dot_q4_0(const void *w, const void *x, int64_t n) {
    const blk_q4_0 *a = w;
    const blk_q8_0 *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const __m256i q = _mm256_sub_epi8(unpack_nibbles(a[i].qs), _mm256_set1_epi8(8));
        const __m256i y = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256 d = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, y)), acc);
    }
    return hsum256(acc);
}

static float dot_q8_0(const void *w, const void *x, int64_t n) {
    const blk_q8_0 *a = w;
    const blk_q8_0 *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)a[i].qs);
        const __m256i y = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256 d = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, y)), acc);
    }
    return hsum256(acc);
}

/* Q4_1/Q5_1: unsigned q (0..31) so maddubs takes q directly as the unsigned side. */
static inline __m256i dot_u8(__m256i q, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), _mm256_set1_epi16(1));
}

static float dot_q4_1(const void *w, const void *x, int64_t n) {
    const blk_q4_1 *a = w;
    const blk_q8_1 *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const __m256i q = unpack_nibbles(a[i].qs);
        const __m256i y = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256 d = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8(q, y)), acc);
        summ += f16(a[i].m) * f16(b[i].s);
    }
    return hsum256(acc) + summ;
}

static inline uint32_t ld_qh(const uint8_t qh[4]) {
    uint32_t v;
    memcpy(&v, qh, 4);
    return v;
}

static float dot_q5_0(const void *w, const void *x, int64_t n) {
    const blk_q5_0 *a = w;
    const blk_q8_0 *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK5_0; i++) {
        __m256i q = unpack_nibbles(a[i].qs);
        q = _mm256_or_si256(q, _mm256_and_si256(bits_to_bytes(ld_qh(a[i].qh)), _mm256_set1_epi8(0x10)));
        q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
        const __m256i y = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256 d = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, y)), acc);
    }
    return hsum256(acc);
}

static float dot_q5_1(const void *w, const void *x, int64_t n) {
    const blk_q5_1 *a = w;
    const blk_q8_1 *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        __m256i q = unpack_nibbles(a[i].qs);
        q = _mm256_or_si256(q, _mm256_and_si256(bits_to_bytes(ld_qh(a[i].qh)), _mm256_set1_epi8(0x10)));
        const __m256i y = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256 d = _mm256_set1_ps(f16(a[i].d) * f16(b[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8(q, y)), acc);
        summ += f16(a[i].m) * f16(b[i].s);
    }
    return hsum256(acc) + summ;
}

static float dot_mxfp4(const void *w, const void *x, int64_t n) {
    const blk_mxfp4 *a = w;
    const blk_q8_0 *b = x;
    const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qt__kvalues_mxfp4));
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_MXFP4; i++) {
        const __m256i q = _mm256_shuffle_epi8(table, unpack_nibbles(a[i].qs));
        const __m256i y = _mm256_loadu_si256((const __m256i *)b[i].qs);
        const __m256 d = _mm256_set1_ps(qt_e8m0_to_f32(a[i].e) * f16(b[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8(q, y)), acc);
    }
    return hsum256(acc);
}

qt_dot_fn qt__dot_simd(int type) {
    switch (type) {
    case QT_F32: return dot_f32;
    case QT_F16: return dot_f16;
    case QT_BF16: return dot_bf16;
    case QT_Q4_0: return dot_q4_0;
    case QT_Q4_1: return dot_q4_1;
    case QT_Q5_0: return dot_q5_0;
    case QT_Q5_1: return dot_q5_1;
    case QT_Q8_0: return dot_q8_0;
    case QT_MXFP4: return dot_mxfp4;
    default: return NULL;
    }
}

#else

qt_dot_fn qt__dot_simd(int type) {
    (void)type;
    return NULL;
}

#endif
