/* quant_dequant.c — reference dequantization, one function per format.
 * These define the formats for the project: the CUDA kernels are tested
 * against them, and they follow ggml's dequantize_row_* element order
 * exactly. Shapes: src is n/blck blocks, dst is n floats. */
#include "engine/quant_impl.h"

void qt__dq_f32(const void *s, float *d, int64_t n) { memcpy(d, s, (size_t)n * 4); }

void qt__dq_f16(const void *s, float *d, int64_t n) {
    const uint8_t *p = s;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        d[i] = qt__h2f(h);
    }
}

void qt__dq_bf16(const void *s, float *d, int64_t n) {
    const uint8_t *p = s;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(&d[i], &u, 4);
    }
}

void qt__dq_i8(const void *s, float *d, int64_t n) {
    const int8_t *p = s;
    for (int64_t i = 0; i < n; i++) d[i] = (float)p[i];
}

void qt__dq_i16(const void *s, float *d, int64_t n) {
    const uint8_t *p = s;
    for (int64_t i = 0; i < n; i++) {
        int16_t v;
        memcpy(&v, p + 2 * i, 2);
        d[i] = (float)v;
    }
}

void qt__dq_i32(const void *s, float *d, int64_t n) {
    const uint8_t *p = s;
    for (int64_t i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, p + 4 * i, 4);
        d[i] = (float)v;
    }
}

/* Legacy 32-blocks: byte j of qs holds element j (low nibble) and j+16 (high). */
void qt__dq_q4_0(const void *s, float *y, int64_t n) {
    const blk_q4_0 *x = s;
    for (int64_t i = 0; i < n / QK4_0; i++, y += QK4_0) {
        const float d = qt__h2f(x[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((x[i].qs[j] & 0xF) - 8) * d;
            y[j + 16] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void qt__dq_q4_1(const void *s, float *y, int64_t n) {
    const blk_q4_1 *x = s;
    for (int64_t i = 0; i < n / QK4_1; i++, y += QK4_1) {
        const float d = qt__h2f(x[i].d), m = qt__h2f(x[i].m);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(x[i].qs[j] & 0xF) * d + m;
            y[j + 16] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* Q5: bit j of the little-endian 32-bit qh is bit 4 of element j. */
void qt__dq_q5_0(const void *s, float *y, int64_t n) {
    const blk_q5_0 *x = s;
    for (int64_t i = 0; i < n / QK5_0; i++, y += QK5_0) {
        const float d = qt__h2f(x[i].d);
        uint32_t qh = (uint32_t)x[i].qh[0] | (uint32_t)x[i].qh[1] << 8 | (uint32_t)x[i].qh[2] << 16 |
                      (uint32_t)x[i].qh[3] << 24;
        for (int j = 0; j < 16; j++) {
            int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            y[j] = (float)(((x[i].qs[j] & 0xF) | h0 << 4) - 16) * d;
            y[j + 16] = (float)(((x[i].qs[j] >> 4) | h1 << 4) - 16) * d;
        }
    }
}

void qt__dq_q5_1(const void *s, float *y, int64_t n) {
    const blk_q5_1 *x = s;
    for (int64_t i = 0; i < n / QK5_1; i++, y += QK5_1) {
        const float d = qt__h2f(x[i].d), m = qt__h2f(x[i].m);
        uint32_t qh = (uint32_t)x[i].qh[0] | (uint32_t)x[i].qh[1] << 8 | (uint32_t)x[i].qh[2] << 16 |
                      (uint32_t)x[i].qh[3] << 24;
        for (int j = 0; j < 16; j++) {
            int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
            y[j] = (float)((x[i].qs[j] & 0xF) | h0 << 4) * d + m;
            y[j + 16] = (float)((x[i].qs[j] >> 4) | h1 << 4) * d + m;
        }
    }
}

void qt__dq_q8_0(const void *s, float *y, int64_t n) {
    const blk_q8_0 *x = s;
    for (int64_t i = 0; i < n / QK8_0; i++, y += QK8_0) {
        const float d = qt__h2f(x[i].d);
        for (int j = 0; j < QK8_0; j++) y[j] = (float)x[i].qs[j] * d;
    }
}

void qt__dq_q8_1(const void *s, float *y, int64_t n) {
    const blk_q8_1 *x = s;
    for (int64_t i = 0; i < n / QK8_1; i++, y += QK8_1) {
        const float d = qt__h2f(x[i].d);
        for (int j = 0; j < QK8_1; j++) y[j] = (float)x[i].qs[j] * d;
    }
}

/* Q2_K: 16 sub-blocks of 16. scales[k]: low nibble = scale, high = min.
 * Each 128-half h uses qs[32h..32h+31]; 2-bit field s (shift 2s) of byte
 * qs[32h+l] is element 128h + 32s + l (l < 32); sub-block = 8h + 2s + l/16.
 * y = d*sc*q - dmin*m. */
void qt__dq_q2_K(const void *s, float *y, int64_t n) {
    const blk_q2_K *x = s;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qt__h2f(x[i].d), dmin = qt__h2f(x[i].dmin);
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = x[i].qs + 32 * h;
            for (int sh = 0; sh < 4; sh++) {
                for (int half = 0; half < 2; half++) {
                    uint8_t sc = x[i].scales[8 * h + 2 * sh + half];
                    const float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
                    for (int l = 0; l < 16; l++) *y++ = dl * (float)((q[16 * half + l] >> (2 * sh)) & 3) - ml;
                }
            }
        }
    }
}

/* Q3_K: element value = ((2-bit q) - (hmask bit set ? 0 : 4)) * d * (scale-32).
 * 2-bit layout as Q2_K; the high bit of element e (e = 128h + 32s + l) is bit
 * (4h + s) of hmask[l]. Scales: 16 x 6-bit, see qt__q3k_scales. */
void qt__dq_q3_K(const void *s, float *y, int64_t n) {
    const blk_q3_K *x = s;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qt__h2f(x[i].d);
        int8_t sc[16];
        qt__q3k_scales(x[i].scales, sc);
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = x[i].qs + 32 * h;
            for (int sh = 0; sh < 4; sh++) {
                const uint8_t m = (uint8_t)(1u << (4 * h + sh));
                for (int half = 0; half < 2; half++) {
                    const float dl = d * (float)sc[8 * h + 2 * sh + half];
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        int v = ((q[l] >> (2 * sh)) & 3) - ((x[i].hmask[l] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

/* Q4_K: 8 sub-blocks of 32 with 6-bit scale/min (qt__scale_min_k4). Chunk c
 * (64 elements) uses qs[32c..32c+31]: low nibbles = sub-block 2c, high = 2c+1.
 * y = d*sc*q - dmin*m. */
void qt__dq_q4_K(const void *s, float *y, int64_t n) {
    const blk_q4_K *x = s;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qt__h2f(x[i].d), dmin = qt__h2f(x[i].dmin);
        const uint8_t *q = x[i].qs;
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            qt__scale_min_k4(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            qt__scale_min_k4(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* Q5_K: as Q4_K plus a fifth bit: for chunk c, bit 2c of qh[l] is the high bit
 * of the low-nibble element l, bit 2c+1 of the high-nibble element. */
void qt__dq_q5_K(const void *s, float *y, int64_t n) {
    const blk_q5_K *x = s;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qt__h2f(x[i].d), dmin = qt__h2f(x[i].dmin);
        const uint8_t *q = x[i].qs, *qh = x[i].qh;
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            qt__scale_min_k4(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            qt__scale_min_k4(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * (float)sc, m2 = dmin * (float)m;
            const uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((q[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((q[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

/* Q6_K: per 128-half h (ql += 64h, qh += 32h, scales += 8h), for l < 32:
 *   e=l    : ql[l]    low  | qh[l] bits 0-1 ; scale sc[l/16 + 0]
 *   e=l+32 : ql[l+32] low  | qh[l] bits 2-3 ; scale sc[l/16 + 2]
 *   e=l+64 : ql[l]    high | qh[l] bits 4-5 ; scale sc[l/16 + 4]
 *   e=l+96 : ql[l+32] high | qh[l] bits 6-7 ; scale sc[l/16 + 6]
 * value (6 bits) - 32, times d * int8 scale. */
void qt__dq_q6_K(const void *s, float *y, int64_t n) {
    const blk_q6_K *x = s;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = qt__h2f(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void qt__dq_q8_K(const void *s, float *y, int64_t n) {
    const blk_q8_K *x = s;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        float d;
        memcpy(&d, &x[i].d, 4);
        for (int j = 0; j < QK_K; j++) y[j] = d * (float)x[i].qs[j];
    }
}

/* MXFP4: kvalues (doubled e2m1) times qt_e8m0_to_f32(e) (= 2^(e-128)). */
void qt__dq_mxfp4(const void *s, float *y, int64_t n) {
    const blk_mxfp4 *x = s;
    for (int64_t i = 0; i < n / QK_MXFP4; i++, y += QK_MXFP4) {
        const float d = qt_e8m0_to_f32(x[i].e);
        for (int j = 0; j < 16; j++) {
            y[j] = (float)qt__kvalues_mxfp4[x[i].qs[j] & 0xF] * d;
            y[j + 16] = (float)qt__kvalues_mxfp4[x[i].qs[j] >> 4] * d;
        }
    }
}
