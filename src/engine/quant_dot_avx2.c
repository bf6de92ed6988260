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

/* acc + d * (the 8 int32 partial sums of q . y): one 32-block of a
 * Q8_0-activation dot (signed q) */
static inline __m256 acc_blk_i8(__m256 acc, __m256i q, const int8_t *y, float d) {
    const __m256i yv = _mm256_loadu_si256((const __m256i *)y);
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_i8(q, yv)), acc);
}

static float dot_q4_0(const void *w, const void *x, int64_t n) {
    const blk_q4_0 *a = w;
    const blk_q8_0 *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK4_0; i++) {
        const __m256i q = _mm256_sub_epi8(unpack_nibbles(a[i].qs), _mm256_set1_epi8(8));
        acc = acc_blk_i8(acc, q, b[i].qs, f16(a[i].d) * f16(b[i].d));
    }
    return hsum256(acc);
}

static float dot_q8_0(const void *w, const void *x, int64_t n) {
    const blk_q8_0 *a = w;
    const blk_q8_0 *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK8_0; i++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)a[i].qs);
        acc = acc_blk_i8(acc, q, b[i].qs, f16(a[i].d) * f16(b[i].d));
    }
    return hsum256(acc);
}

/* Q4_1/Q5_1: unsigned q (0..31) so maddubs takes q directly as the unsigned side. */
static inline __m256i dot_u8(__m256i q, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(q, y), _mm256_set1_epi16(1));
}

/* acc_blk_i8 for unsigned q */
static inline __m256 acc_blk_u8(__m256 acc, __m256i q, const int8_t *y, float d) {
    const __m256i yv = _mm256_loadu_si256((const __m256i *)y);
    return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot_u8(q, yv)), acc);
}

static float dot_q4_1(const void *w, const void *x, int64_t n) {
    const blk_q4_1 *a = w;
    const blk_q8_1 *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        const __m256i q = unpack_nibbles(a[i].qs);
        acc = acc_blk_u8(acc, q, b[i].qs, f16(a[i].d) * f16(b[i].d));
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
        acc = acc_blk_i8(acc, q, b[i].qs, f16(a[i].d) * f16(b[i].d));
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
        acc = acc_blk_u8(acc, q, b[i].qs, f16(a[i].d) * f16(b[i].d));
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
        acc = acc_blk_i8(acc, q, b[i].qs, qt__e8m0(a[i].e) * f16(b[i].d));
    }
    return hsum256(acc);
}

/* ---- K-quants x Q8_K -----------------------------------------------------------
 * Unsigned codes go on maddubs' unsigned side directly; signed formats are
 * offset to unsigned (Q3_K: u = v + 4, Q6_K: u = v + 32) and the offset is
 * removed with Q8_K's bsums (sum of y per 16 elements):
 *   sum_j sc_j * sum((u-o)*y) = sum_j sc_j * sum(u*y) - o * sum_j sc_j * bsums_j. */

/* The 8 i16 scale vectors of a super-block with 16 sub-blocks of 16: pair p
 * has lanes 0-7 = sc[2p], lanes 8-15 = sc[2p+1], matching one 32-lane
 * maddubs result (bytes 0-15 = sub-block 2p, 16-31 = 2p+1). One byte shuffle
 * per pair on the scales broadcast to both 128-bit halves. */
static inline void scale_pairs(const int8_t sc[16], __m256i out[8]) {
    const __m256i lo = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
    const __m256i hi = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(sc + 8))));
    for (int k = 0; k < 4; k++) {
        const __m256i ctrl = _mm256_set_m128i(_mm_set1_epi16((short)((4 * k + 3) << 8 | (4 * k + 2))),
                                              _mm_set1_epi16((short)((4 * k + 1) << 8 | (4 * k))));
        out[k] = _mm256_shuffle_epi8(lo, ctrl);
        out[4 + k] = _mm256_shuffle_epi8(hi, ctrl);
    }
}

static inline float q8k_d(const blk_q8_K *b) {
    float d;
    memcpy(&d, &b->d, 4);
    return d;
}

static float dot_q2_K(const void *w, const void *x, int64_t n) {
    const blk_q2_K *a = w;
    const blk_q8_K *b = x;
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float dy = q8k_d(&b[i]);
        /* mins: sum_j (scales[j] >> 4) * bsums[j], FMAed lane by lane into acc
         * with -dy*dmin before the block's d term, as ggml's AVX2
         * ggml_vec_dot_q2_K_q8_K does (bit-identical sums to llama.cpp's CPU) */
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)a[i].scales);
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc8, 4), _mm_set1_epi8(0x0F)));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)b[i].bsums);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(-dy * f16(a[i].dmin)), _mm256_cvtepi32_ps(_mm256_madd_epi16(mins16, bs)),
                              acc);
        int8_t sc[16];
        _mm_storeu_si128((__m128i *)sc, _mm_and_si128(sc8, _mm_set1_epi8(0x0F)));
        __m256i sp[8];
        scale_pairs(sc, sp);
        __m256i sumi = _mm256_setzero_si256();
        const int8_t *y = b[i].qs;
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * h));
            for (int sh = 0; sh < 4; sh++, y += 32) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * sh), m3);
                const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)y));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sp[4 * h + sh]));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * f16(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum256(acc);
}

static float dot_q3_K(const void *w, const void *x, int64_t n) {
    const blk_q3_K *a = w;
    const blk_q8_K *b = x;
    const __m256i m3 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t sc[16];
        qt__q3k_scales(a[i].scales, sc);
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)b[i].bsums);
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 2); /* 4 * sum sc*bsums */
        const __m256i hm = _mm256_loadu_si256((const __m256i *)a[i].hmask);
        __m256i sp[8];
        scale_pairs(sc, sp);
        __m256i sumi = _mm256_setzero_si256();
        const int8_t *y = b[i].qs;
        for (int h = 0; h < 2; h++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * h));
            for (int sh = 0; sh < 4; sh++, y += 32) {
                const __m256i hb = _mm256_set1_epi8((char)(1 << (4 * h + sh)));
                const __m256i high = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, hb), hb), m4);
                const __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 2 * sh), m3), high);
                const __m256i p = _mm256_maddubs_epi16(u, _mm256_loadu_si256((const __m256i *)y));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sp[4 * h + sh]));
            }
        }
        sumi = _mm256_sub_epi32(sumi, off);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(q8k_d(&b[i]) * f16(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum256(acc);
}

/* Q4_K / Q5_K codes of chunk c (64 elements): the low nibbles of qs[32c..]
 * into *ql (sub-block 2c), the high nibbles into *qh4 (sub-block 2c+1), each
 * with its fifth bit from hbits (bits 2c and 2c+1 of qh[l]) when q5 */
static inline __attribute__((always_inline)) void q45_K_codes(const uint8_t *qs, __m256i hbits, int q5, int c,
                                                              __m256i *ql, __m256i *qh4) {
    const __m256i lo4 = _mm256_set1_epi8(0x0F), b5 = _mm256_set1_epi8(0x10);
    const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
    *ql = _mm256_and_si256(bits, lo4);
    *qh4 = _mm256_and_si256(_mm256_srli_epi16(bits, 4), lo4);
    if (q5) {
        const __m256i m1 = _mm256_set1_epi8((char)(1 << (2 * c))), m2 = _mm256_set1_epi8((char)(2 << (2 * c)));
        *ql = _mm256_or_si256(*ql, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, m1), m1), b5));
        *qh4 = _mm256_or_si256(*qh4, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hbits, m2), m2), b5));
    }
}

/* Q4_K / Q5_K: 8 sub-blocks of 32, one maddubs per sub-block. qh NULL for
 * Q4_K. The min term m_j * (bsums[2j] + bsums[2j+1]) is accumulated as a
 * vector (*accm) with dmin*dy, no horizontal sum per super-block. */
static inline void dot_q45_K_blk(const uint16_t d, const uint16_t dmin, const uint8_t *scales, const uint8_t *qs,
                                 const uint8_t *qh, const blk_q8_K *b, __m256 *acc, __m256 *accm) {
    uint8_t sc[8], m[8];
    qt__scales_mins_k4(scales, sc, m);
    const float dy = q8k_d(b);
    const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)b->bsums), _mm256_set1_epi16(1));
    const __m256i m32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)m));
    *accm = _mm256_fmadd_ps(_mm256_set1_ps(dy * f16(dmin)), _mm256_cvtepi32_ps(_mm256_mullo_epi32(bs, m32)), *accm);
    const __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    __m256i sumi = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        __m256i ql, qhh;
        q45_K_codes(qs, hbits, qh != NULL, c, &ql, &qhh);
        const __m256i y0 = _mm256_loadu_si256((const __m256i *)(b->qs + 64 * c));
        const __m256i y1 = _mm256_loadu_si256((const __m256i *)(b->qs + 64 * c + 32));
        const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(ql, y0), _mm256_set1_epi16(sc[2 * c]));
        const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(qhh, y1), _mm256_set1_epi16(sc[2 * c + 1]));
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
    }
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(dy * f16(d)), _mm256_cvtepi32_ps(sumi), *acc);
}

static float dot_q4_K(const void *w, const void *x, int64_t n) {
    const blk_q4_K *a = w;
    const blk_q8_K *b = x;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) dot_q45_K_blk(a[i].d, a[i].dmin, a[i].scales, a[i].qs, NULL, &b[i], &acc, &accm);
    return hsum256(_mm256_sub_ps(acc, accm));
}

static float dot_q5_K(const void *w, const void *x, int64_t n) {
    const blk_q5_K *a = w;
    const blk_q8_K *b = x;
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++)
        dot_q45_K_blk(a[i].d, a[i].dmin, a[i].scales, a[i].qs, a[i].qh, &b[i], &acc, &accm);
    return hsum256(_mm256_sub_ps(acc, accm));
}

/* Q6_K's unsigned 6-bit codes (0..63) of one half super-block (128
 * elements) into u[0..3], 32 each in element order: low 4 bits from ql
 * (64 bytes), high 2 bits from qh (32 bytes) */
static inline __attribute__((always_inline)) void q6_K_codes(const uint8_t *ql, const uint8_t *qh, __m256i u[4]) {
    const __m256i lo4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
    u[0] = _mm256_or_si256(_mm256_and_si256(l0, lo4), _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4));
    u[1] = _mm256_or_si256(_mm256_and_si256(l1, lo4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4));
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), lo4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4));
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), lo4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4));
}

static float dot_q6_K(const void *w, const void *x, int64_t n) {
    const blk_q6_K *a = w;
    const blk_q8_K *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const int8_t *sc = a[i].scales;
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        const __m256i bs = _mm256_loadu_si256((const __m256i *)b[i].bsums);
        const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5); /* 32 * sum sc*bsums */
        __m256i sp[8];
        scale_pairs(sc, sp);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i u[4];
            q6_K_codes(a[i].ql + 64 * h, a[i].qh + 32 * h, u);
            for (int k = 0; k < 4; k++) {
                const __m256i y = _mm256_loadu_si256((const __m256i *)(b[i].qs + 128 * h + 32 * k));
                const __m256i p = _mm256_maddubs_epi16(u[k], y);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sp[4 * h + k]));
            }
        }
        sumi = _mm256_sub_epi32(sumi, off);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(q8k_d(&b[i]) * f16(a[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum256(acc);
}

/* ---- 4 activation rows at once (prefill) -------------------------------------
 * Each output is the single-row kernel's exact arithmetic: the same integer
 * block sums, the same float FMAs into the same 8-lane accumulators in the
 * same order, the same horizontal sum, so y equals dot_q4_K / dot_q5_K /
 * dot_q6_K bit for bit (test_backend_cpu checks it). What is shared is the
 * weight side: scale unpacking and bit decoding happen once per super-block
 * for the 4 rows instead of once per row. */

static inline __attribute__((always_inline)) void dot4_q45_K_blk(uint16_t d, uint16_t dmin, const uint8_t *scales,
                                                                 const uint8_t *qs, const uint8_t *qh,
                                                                 const blk_q8_K *const y[4], __m256 acc[4],
                                                                 __m256 accm[4]) {
    uint8_t sc[8], m[8];
    qt__scales_mins_k4(scales, sc, m);
    const float fd = f16(d), fm = f16(dmin);
    const __m256i m32 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)m));
    __m256i sumi[4];
    for (int r = 0; r < 4; r++) {
        const __m256i bs = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[r]->bsums), _mm256_set1_epi16(1));
        accm[r] = _mm256_fmadd_ps(_mm256_set1_ps(q8k_d(y[r]) * fm), _mm256_cvtepi32_ps(_mm256_mullo_epi32(bs, m32)),
                                  accm[r]);
        sumi[r] = _mm256_setzero_si256();
    }
    const __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        __m256i ql, qhh;
        q45_K_codes(qs, hbits, qh != NULL, c, &ql, &qhh);
        const __m256i s0 = _mm256_set1_epi16(sc[2 * c]), s1 = _mm256_set1_epi16(sc[2 * c + 1]);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m256i y0 = _mm256_loadu_si256((const __m256i *)(y[r]->qs + 64 * c));
            const __m256i y1 = _mm256_loadu_si256((const __m256i *)(y[r]->qs + 64 * c + 32));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(ql, y0), s0);
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(qhh, y1), s1);
            sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p0, p1));
        }
    }
    for (int r = 0; r < 4; r++)
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(q8k_d(y[r]) * fd), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
}

static void dot4_q4_K(const void *w, const void *const x[4], int64_t n, float *out, int64_t ldy) {
    const blk_q4_K *a = w;
    __m256 acc[4], accm[4];
    for (int r = 0; r < 4; r++) acc[r] = accm[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const blk_q8_K *y[4];
        for (int r = 0; r < 4; r++) y[r] = (const blk_q8_K *)x[r] + i;
        dot4_q45_K_blk(a[i].d, a[i].dmin, a[i].scales, a[i].qs, NULL, y, acc, accm);
    }
    for (int r = 0; r < 4; r++) out[r * ldy] = hsum256(_mm256_sub_ps(acc[r], accm[r]));
}

static void dot4_q5_K(const void *w, const void *const x[4], int64_t n, float *out, int64_t ldy) {
    const blk_q5_K *a = w;
    __m256 acc[4], accm[4];
    for (int r = 0; r < 4; r++) acc[r] = accm[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const blk_q8_K *y[4];
        for (int r = 0; r < 4; r++) y[r] = (const blk_q8_K *)x[r] + i;
        dot4_q45_K_blk(a[i].d, a[i].dmin, a[i].scales, a[i].qs, a[i].qh, y, acc, accm);
    }
    for (int r = 0; r < 4; r++) out[r * ldy] = hsum256(_mm256_sub_ps(acc[r], accm[r]));
}

static void dot4_q6_K(const void *w, const void *const x[4], int64_t n, float *out, int64_t ldy) {
    const blk_q6_K *a = w;
    __m256 acc[4];
    for (int r = 0; r < 4; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        const blk_q8_K *y[4];
        for (int r = 0; r < 4; r++) y[r] = (const blk_q8_K *)x[r] + i;
        const int8_t *sc = a[i].scales;
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i sp[8], sumi[4], off[4];
        scale_pairs(sc, sp);
        for (int r = 0; r < 4; r++) {
            const __m256i bs = _mm256_loadu_si256((const __m256i *)y[r]->bsums);
            off[r] = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5); /* 32 * sum sc*bsums */
            sumi[r] = _mm256_setzero_si256();
        }
        for (int h = 0; h < 2; h++) {
            __m256i u[4];
            q6_K_codes(a[i].ql + 64 * h, a[i].qh + 32 * h, u);
            for (int k = 0; k < 4; k++)
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    const __m256i yv = _mm256_loadu_si256((const __m256i *)(y[r]->qs + 128 * h + 32 * k));
                    const __m256i p = _mm256_maddubs_epi16(u[k], yv);
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(p, sp[4 * h + k]));
                }
        }
        for (int r = 0; r < 4; r++) {
            sumi[r] = _mm256_sub_epi32(sumi[r], off[r]);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(q8k_d(y[r]) * f16(a[i].d)), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) out[r * ldy] = hsum256(acc[r]);
}

qt_dot4_fn qt_vec_dot4(int type) {
    switch (type) {
    case QT_Q4_K: return dot4_q4_K;
    case QT_Q5_K: return dot4_q5_K;
    case QT_Q6_K: return dot4_q6_K;
    default: return NULL;
    }
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
    case QT_Q2_K: return dot_q2_K;
    case QT_Q3_K: return dot_q3_K;
    case QT_Q4_K: return dot_q4_K;
    case QT_Q5_K: return dot_q5_K;
    case QT_Q6_K: return dot_q6_K;
    default: return NULL;
    }
}

#else

qt_dot_fn qt__dot_simd(int type) {
    (void)type;
    return NULL;
}

qt_dot4_fn qt_vec_dot4(int type) {
    (void)type;
    return NULL;
}

#endif
