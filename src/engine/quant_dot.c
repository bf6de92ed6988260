/* quant_dot.c — scalar reference dot products, weight row x activation row in
 * the weight type's vec_dot_type. Integer sums per block, then one float
 * scale per block (sub-block for K-quants) exactly as ggml's generic kernels
 * do; the AVX2 kernels (quant_dot_avx2.c) compute the same integer sums and
 * differ from these only in float summation order. */
#include "engine/quant_impl.h"

static inline float ld_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

static inline uint16_t ld_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

float qt__dot_f32_ref(const void *w, const void *x, int64_t n) {
    const uint8_t *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)ld_f32(a + 4 * i) * (double)ld_f32(b + 4 * i);
    return (float)s;
}

float qt__dot_f16_ref(const void *w, const void *x, int64_t n) {
    const uint8_t *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)qt__h2f(ld_u16(a + 2 * i)) * (double)qt__h2f(ld_u16(b + 2 * i));
    return (float)s;
}

/* BF16 weights dot F32 activations (our choice: no activation rounding). */
float qt__dot_bf16_ref(const void *w, const void *x, int64_t n) {
    const uint8_t *a = w, *b = x;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)qt_bf16_to_f32(ld_u16(a + 2 * i)) * (double)ld_f32(b + 4 * i);
    return (float)s;
}

float qt__dot_q4_0_ref(const void *w, const void *x, int64_t n) {
    const blk_q4_0 *a = w;
    const blk_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += ((a[i].qs[j] & 0xF) - 8) * b[i].qs[j] + ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
        s += (float)sumi * (qt__h2f(a[i].d) * qt__h2f(b[i].d));
    }
    return s;
}

/* sum(q*d + m)*(y*dy) = d*dy*sum(q*y) + m*(dy*sum(y)) = ... + m*s */
float qt__dot_q4_1_ref(const void *w, const void *x, int64_t n) {
    const blk_q4_1 *a = w;
    const blk_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK4_1; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) sumi += (a[i].qs[j] & 0xF) * b[i].qs[j] + (a[i].qs[j] >> 4) * b[i].qs[j + 16];
        s += (qt__h2f(a[i].d) * qt__h2f(b[i].d)) * (float)sumi + qt__h2f(a[i].m) * qt__h2f(b[i].s);
    }
    return s;
}

static inline uint32_t ld_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

float qt__dot_q5_0_ref(const void *w, const void *x, int64_t n) {
    const blk_q5_0 *a = w;
    const blk_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_0; i++) {
        const uint32_t qh = ld_qh(a[i].qh);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int v0 = (int)((a[i].qs[j] & 0xF) | ((qh >> j) & 1) << 4) - 16;
            int v1 = (int)((a[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - 16;
            sumi += v0 * b[i].qs[j] + v1 * b[i].qs[j + 16];
        }
        s += (float)sumi * (qt__h2f(a[i].d) * qt__h2f(b[i].d));
    }
    return s;
}

float qt__dot_q5_1_ref(const void *w, const void *x, int64_t n) {
    const blk_q5_1 *a = w;
    const blk_q8_1 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK5_1; i++) {
        const uint32_t qh = ld_qh(a[i].qh);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int v0 = (int)((a[i].qs[j] & 0xF) | ((qh >> j) & 1) << 4);
            int v1 = (int)((a[i].qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4);
            sumi += v0 * b[i].qs[j] + v1 * b[i].qs[j + 16];
        }
        s += (qt__h2f(a[i].d) * qt__h2f(b[i].d)) * (float)sumi + qt__h2f(a[i].m) * qt__h2f(b[i].s);
    }
    return s;
}

float qt__dot_q8_0_ref(const void *w, const void *x, int64_t n) {
    const blk_q8_0 *a = w;
    const blk_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        int sumi = 0;
        for (int j = 0; j < QK8_0; j++) sumi += a[i].qs[j] * b[i].qs[j];
        s += (float)sumi * (qt__h2f(a[i].d) * qt__h2f(b[i].d));
    }
    return s;
}

float qt__dot_mxfp4_ref(const void *w, const void *x, int64_t n) {
    const blk_mxfp4 *a = w;
    const blk_q8_0 *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_MXFP4; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += qt__kvalues_mxfp4[a[i].qs[j] & 0xF] * b[i].qs[j] + qt__kvalues_mxfp4[a[i].qs[j] >> 4] * b[i].qs[j + 16];
        s += (float)sumi * (qt_e8m0_to_f32(a[i].e) * qt__h2f(b[i].d));
    }
    return s;
}

/* ---- K-quants x Q8_K ----------------------------------------------------------
 * Each super-block: dot = d*dy * sum_j sc_j * sum(q*y over sub-block j)
 *                       - dmin*dy * sum_j m_j * (sum of y over sub-block j),
 * the y sums taken from Q8_K's bsums (16-element groups). q is unpacked in
 * element order (the same order the dequantizers write). */
static inline float q8k_d(const blk_q8_K *b) { return ld_f32((const uint8_t *)&b->d); }

float qt__dot_q2_K_ref(const void *w, const void *x, int64_t n) {
    const blk_q2_K *a = w;
    const blk_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        for (int h = 0; h < 2; h++)
            for (int sh = 0; sh < 4; sh++)
                for (int l = 0; l < 32; l++) q[128 * h + 32 * sh + l] = (int8_t)((a[i].qs[32 * h + l] >> (2 * sh)) & 3);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 16; j++) {
            int t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * j + l] * b[i].qs[16 * j + l];
            sumi += (a[i].scales[j] & 0xF) * t;
            summ += (a[i].scales[j] >> 4) * b[i].bsums[j];
        }
        const float dy = q8k_d(&b[i]);
        s += dy * qt__h2f(a[i].d) * (float)sumi - dy * qt__h2f(a[i].dmin) * (float)summ;
    }
    return s;
}

float qt__dot_q3_K_ref(const void *w, const void *x, int64_t n) {
    const blk_q3_K *a = w;
    const blk_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K], sc[16];
        qt__q3k_scales(a[i].scales, sc);
        for (int h = 0; h < 2; h++)
            for (int sh = 0; sh < 4; sh++)
                for (int l = 0; l < 32; l++) {
                    int v = (a[i].qs[32 * h + l] >> (2 * sh)) & 3;
                    q[128 * h + 32 * sh + l] = (int8_t)(v - ((a[i].hmask[l] >> (4 * h + sh)) & 1 ? 0 : 4));
                }
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * j + l] * b[i].qs[16 * j + l];
            sumi += sc[j] * t;
        }
        s += q8k_d(&b[i]) * qt__h2f(a[i].d) * (float)sumi;
    }
    return s;
}

/* Q4_K and Q5_K share everything but the fifth bit. */
static float dot_q45_K(const uint16_t *dd, const uint8_t *scales, const uint8_t *qs, const uint8_t *qh,
                       const blk_q8_K *b) {
    int8_t q[QK_K];
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int lo = qs[32 * c + l] & 0xF, hi = qs[32 * c + l] >> 4;
            if (qh) {
                lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
            }
            q[64 * c + l] = (int8_t)lo;
            q[64 * c + 32 + l] = (int8_t)hi;
        }
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        qt__scale_min_k4(j, scales, &sc, &m);
        int t = 0;
        for (int l = 0; l < 32; l++) t += q[32 * j + l] * b->qs[32 * j + l];
        sumi += sc * t;
        summ += m * (b->bsums[2 * j] + b->bsums[2 * j + 1]);
    }
    const float dy = q8k_d(b);
    return dy * qt__h2f(dd[0]) * (float)sumi - dy * qt__h2f(dd[1]) * (float)summ;
}

float qt__dot_q4_K_ref(const void *w, const void *x, int64_t n) {
    const blk_q4_K *a = w;
    const blk_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint16_t dd[2] = {a[i].d, a[i].dmin};
        s += dot_q45_K(dd, a[i].scales, a[i].qs, NULL, &b[i]);
    }
    return s;
}

float qt__dot_q5_K_ref(const void *w, const void *x, int64_t n) {
    const blk_q5_K *a = w;
    const blk_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint16_t dd[2] = {a[i].d, a[i].dmin};
        s += dot_q45_K(dd, a[i].scales, a[i].qs, a[i].qh, &b[i]);
    }
    return s;
}

float qt__dot_q6_K_ref(const void *w, const void *x, int64_t n) {
    const blk_q6_K *a = w;
    const blk_q8_K *b = x;
    float s = 0;
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = a[i].ql + 64 * h, *qh = a[i].qh + 32 * h;
            int8_t *o = q + 128 * h;
            for (int l = 0; l < 32; l++) {
                o[l] = (int8_t)(((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32);
                o[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32);
                o[l + 64] = (int8_t)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
                o[l + 96] = (int8_t)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
            }
        }
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int t = 0;
            for (int l = 0; l < 16; l++) t += q[16 * j + l] * b[i].qs[16 * j + l];
            sumi += a[i].scales[j] * t;
        }
        s += q8k_d(&b[i]) * qt__h2f(a[i].d) * (float)sumi;
    }
    return s;
}
