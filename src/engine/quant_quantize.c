/* quant_quantize.c — quantizers for the fp formats, the legacy 32-element
 * blocks, MXFP4 and the activation formats (Q8_0, Q8_1, Q8_K). They follow
 * ggml's quantize_row_*_ref step for step (same rounding, same ties), so a
 * file we write holds the bytes llama.cpp's quantizer would write without
 * an importance matrix. */
#include <float.h>

#include "engine/quant_impl.h"

void qt__q_f32(const float *s, void *d, int64_t n) { memcpy(d, s, (size_t)n * 4); }

void qt__q_f16(const float *s, void *d, int64_t n) {
    uint8_t *p = d;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = qt_f32_to_f16(s[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

void qt__q_bf16(const float *s, void *d, int64_t n) {
    uint8_t *p = d;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = qt_f32_to_bf16(s[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* ggml's MIN(hi, (int8_t)v): truncation toward zero, clamped. Written so
 * that NaN/inf/huge inputs (a hostile source file) are defined behaviour:
 * NaN and negatives give 0. Identical to ggml for every finite in-range v. */
static inline int trunc_clamp(float v, int hi) {
    if (!(v > 0.0f)) return 0;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* ggml's (int8_t)roundf(v) for |v| <= 127 (always so for finite rows),
 * defined for NaN (0) and clamped otherwise. */
static inline int8_t round_i8(float v) {
    if (!(v == v)) return 0;
    if (v >= 127.0f) return 127;
    if (v <= -128.0f) return -128;
    return (int8_t)roundf(v);
}

/* value of largest magnitude (first one wins ties), as ggml's "max" */
static float signed_absmax(const float *x, int n, float *amax_out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    *amax_out = amax;
    return max;
}

/* Q4_0: d = max/-8 so the extreme maps to -8; q = min(15, trunc(x/d + 8.5)). */
void qt__q_q4_0(const float *s, void *dst, int64_t n) {
    blk_q4_0 *y = dst;
    for (int64_t i = 0; i < n / QK4_0; i++, s += QK4_0) {
        float amax;
        const float max = signed_absmax(s, QK4_0, &amax);
        const float d = max / -8, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qt_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            const uint8_t xa = (uint8_t)trunc_clamp(s[j] * id + 8.5f, 15);
            const uint8_t xb = (uint8_t)trunc_clamp(s[j + 16] * id + 8.5f, 15);
            y[i].qs[j] = (uint8_t)(xa | xb << 4);
        }
    }
}

/* Q4_1: d = (max-min)/15, m = min; q = min(15, trunc((x-min)/d + 0.5)). */
void qt__q_q4_1(const float *s, void *dst, int64_t n) {
    blk_q4_1 *y = dst;
    for (int64_t i = 0; i < n / QK4_1; i++, s += QK4_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK4_1; j++) {
            if (s[j] < min) min = s[j];
            if (s[j] > max) max = s[j];
        }
        const float d = (max - min) / 15, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qt_f32_to_f16(d);
        y[i].m = qt_f32_to_f16(min);
        for (int j = 0; j < 16; j++) {
            const uint8_t xa = (uint8_t)trunc_clamp((s[j] - min) * id + 0.5f, 15);
            const uint8_t xb = (uint8_t)trunc_clamp((s[j + 16] - min) * id + 0.5f, 15);
            y[i].qs[j] = (uint8_t)(xa | xb << 4);
        }
    }
}

static void put_qh(uint8_t qh[4], uint32_t v) {
    qh[0] = (uint8_t)v;
    qh[1] = (uint8_t)(v >> 8);
    qh[2] = (uint8_t)(v >> 16);
    qh[3] = (uint8_t)(v >> 24);
}

/* Q5_0: d = max/-16; q = min(31, trunc(x/d + 16.5)); bit 4 of element j goes
 * to bit j of qh. */
void qt__q_q5_0(const float *s, void *dst, int64_t n) {
    blk_q5_0 *y = dst;
    for (int64_t i = 0; i < n / QK5_0; i++, s += QK5_0) {
        float amax;
        const float max = signed_absmax(s, QK5_0, &amax);
        const float d = max / -16, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qt_f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const uint32_t xa = (uint32_t)trunc_clamp(s[j] * id + 16.5f, 31);
            const uint32_t xb = (uint32_t)trunc_clamp(s[j + 16] * id + 16.5f, 31);
            y[i].qs[j] = (uint8_t)((xa & 0xF) | (xb & 0xF) << 4);
            qh |= ((xa >> 4) & 1u) << j;
            qh |= ((xb >> 4) & 1u) << (j + 16);
        }
        put_qh(y[i].qh, qh);
    }
}

/* Q5_1: d = (max-min)/31, m = min; q = (uint8)((x-min)/d + 0.5) (ggml does
 * not clamp: the value cannot exceed 31.5 by construction; we clamp to 31
 * only so that hostile input stays defined). */
void qt__q_q5_1(const float *s, void *dst, int64_t n) {
    blk_q5_1 *y = dst;
    for (int64_t i = 0; i < n / QK5_1; i++, s += QK5_1) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < QK5_1; j++) {
            if (s[j] < min) min = s[j];
            if (s[j] > max) max = s[j];
        }
        const float d = (max - min) / 31, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qt_f32_to_f16(d);
        y[i].m = qt_f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            const uint32_t xa = (uint32_t)trunc_clamp((s[j] - min) * id + 0.5f, 31);
            const uint32_t xb = (uint32_t)trunc_clamp((s[j + 16] - min) * id + 0.5f, 31);
            y[i].qs[j] = (uint8_t)((xa & 0xF) | (xb & 0xF) << 4);
            qh |= ((xa >> 4) & 1u) << j;
            qh |= ((xb >> 4) & 1u) << (j + 16);
        }
        put_qh(y[i].qh, qh);
    }
}

/* Q8_0: d = amax/127, q = roundf(x/d) (half away from zero). */
void qt__q_q8_0(const float *s, void *dst, int64_t n) {
    blk_q8_0 *y = dst;
    for (int64_t i = 0; i < n / QK8_0; i++, s += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(s[j]));
        const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qt_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) y[i].qs[j] = round_i8(s[j] * id);
    }
}

/* Q8_1: as Q8_0 plus s = fp16(d * sum(q)) for the dot's min term. */
void qt__q_q8_1(const float *s, void *dst, int64_t n) {
    blk_q8_1 *y = dst;
    for (int64_t i = 0; i < n / QK8_1; i++, s += QK8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_1; j++) amax = fmaxf(amax, fabsf(s[j]));
        const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = qt_f32_to_f16(d);
        int sum = 0;
        for (int j = 0; j < QK8_1; j++) {
            y[i].qs[j] = round_i8(s[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = qt_f32_to_f16((float)sum * d);
    }
}

/* Q8_K: fp32 d = max/-127 (signed max, so the extreme maps to -127);
 * q = min(127, nearest_int(x * -127/max)); bsums[k] = sum of q[16k..16k+15]. */
void qt__q_q8_K(const float *s, void *dst, int64_t n) {
    blk_q8_K *y = dst;
    for (int64_t i = 0; i < n / QK_K; i++, s += QK_K) {
        float amax;
        const float max = signed_absmax(s, QK_K, &amax);
        if (amax == 0.0f) {
            float z = 0.0f;
            memcpy(&y[i].d, &z, 4);
            memset(y[i].qs, 0, QK_K);
            memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = qt__nearest_int(iscale * s[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int k = 0; k < QK_K / 16; k++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += y[i].qs[16 * k + j];
            y[i].bsums[k] = (int16_t)sum;
        }
        float d = 1 / iscale;
        memcpy(&y[i].d, &d, 4);
    }
}

/* MXFP4: e = floor(log2(amax)) - 2 + 127 (0 for an all-zero block), then each
 * element takes the kvalue index nearest to x / 2^(e-128) (first index wins
 * ties, so +0 not -0). */
static int best_index_mxfp4(float x, float e) {
    int best = 0;
    float best_err = fabsf((float)qt__kvalues_mxfp4[0] * e - x);
    for (int i = 1; i < 16; i++) {
        float err = fabsf((float)qt__kvalues_mxfp4[i] * e - x);
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    return best;
}

void qt__q_mxfp4(const float *s, void *dst, int64_t n) {
    blk_mxfp4 *y = dst;
    for (int64_t i = 0; i < n / QK_MXFP4; i++, s += QK_MXFP4) {
        float amax = 0.0f;
        for (int j = 0; j < QK_MXFP4; j++)
            if (amax < fabsf(s[j])) amax = fabsf(s[j]);
        /* ggml casts straight to uint8; amax < 2^-125 (negative) or inf would
         * be undefined there: we clamp to [0, 254] (finite amax gives <= 252) */
        const float ef = amax > 0.0f ? floorf(log2f(amax)) - 2 + 127 : 0.0f;
        const uint8_t e = (uint8_t)(ef > 0.0f ? (ef < 254.0f ? ef : 254.0f) : 0.0f); /* inf amax -> 254 */
        const float d = qt_e8m0_to_f32(e);
        y[i].e = e;
        for (int j = 0; j < 16; j++)
            y[i].qs[j] = (uint8_t)(best_index_mxfp4(s[j], d) | best_index_mxfp4(s[j + 16], d) << 4);
    }
}
