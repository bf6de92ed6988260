/* quant_kquant.c — K-quant weight quantizers (Q2_K..Q6_K), ggml's reference
 * (no importance matrix) algorithms: per sub-block scale (and min) search
 * (make_qx_quants / make_q3_quants / make_qkx2_quants), scales quantized
 * against the super-block's largest, then every element re-quantized with
 * the scale it will actually be decoded with. Deterministic; all scratch on
 * the stack. */
#include "engine/quant_impl.h"

#define GROUP_MAX_EPS 1e-15f

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* the first x[i] of largest magnitude (0 when all are 0 or n is 0); that
 * magnitude into *amax */
static inline float signed_absmax(const float *x, int n, float *amax_out) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* Symmetric scale for n values into [-nmax, nmax-1] (L holds q + nmax).
 * rmse_type 1: weights x^2 (or qw), then 18 trial scales around nmax/max,
 * keeping the least-squares best. Returns the scale (x ~ scale * (L - nmax)). */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type, const float *qw) {
    float amax;
    const float max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, qt__nearest_int(iscale * x[i]))));
        return 1 / iscale;
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, qt__nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i]; /* rmse_type 1 is the only other one we use */
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, qt__nearest_int(iscale * x[i])));
            float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, qt__nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q3_K's sub-block search: start from nmax/max, then up to 5 passes of
 * per-element coordinate descent on the weighted (x^2) least-squares fit. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, qt__nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                int nl = imax(-nmax, imin(nmax - 1, qt__nearest_int(x[i] * sl2 / slx)));
                if (nl != L[i]) {
                    slx += w * x[i] * (float)nl;
                    sl2 += w * (float)nl * (float)nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)nl;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric scale+min for n values into [0, nmax]: x ~ scale*L - the_min.
 * Tries nstep+1 scales (rmin + rdelta*is + nmax)/(max-min), each with the
 * weighted least-squares (scale, min), and keeps the lowest weighted error
 * (|diff| when use_mad, else diff^2). min is clamped to <= 0. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = qt__nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, qt__nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

#if defined(__AVX2__)
#include <immintrin.h>

/* make_qkx2_quants for 8 sub-blocks at once, lane k = sub-block k: every lane
 * performs exactly the scalar function's float operations in the same order
 * (separate mul and add, no FMA; sums in element order), so the results are
 * bit-identical -- only 8 independent dependency chains now run side by side.
 * x and w hold 8 sub-blocks of n (16 or 32) contiguous floats; L gets 8*n
 * codes, scale[k]/the_min[k] the results. */
static inline __m256 nearest_clamp(__m256 v, int nmax) {
    const __m256i bits = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));
    __m256i l = _mm256_sub_epi32(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x00400000));
    l = _mm256_max_epi32(_mm256_setzero_si256(), _mm256_min_epi32(_mm256_set1_epi32(nmax), l));
    return _mm256_cvtepi32_ps(l);
}

static inline __m256 err_term(__m256 diff, int use_mad) {
    return use_mad ? _mm256_andnot_ps(_mm256_set1_ps(-0.0f), diff) : _mm256_mul_ps(diff, diff);
}

static void make_qkx2_quants_x8(int n, int nmax, const float *x, const float *w, uint8_t *L, float *scale_out,
                                float *min_out, float rmin, float rdelta, int nstep, int use_mad) {
    __m256 X[32], W[32], Lb[32], La[32];
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(n));
    for (int i = 0; i < n; i++) {
        X[i] = _mm256_i32gather_ps(x + i, idx, 4);
        W[i] = _mm256_i32gather_ps(w + i, idx, 4);
    }
    const __m256 zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
    __m256 mn = X[0], mx = X[0], sw = W[0], sx = _mm256_mul_ps(W[0], X[0]);
    for (int i = 1; i < n; i++) {
        mn = _mm256_min_ps(X[i], mn); /* x < min ? x : min */
        mx = _mm256_max_ps(X[i], mx); /* x > max ? x : max */
        sw = _mm256_add_ps(sw, W[i]);
        sx = _mm256_add_ps(sx, _mm256_mul_ps(W[i], X[i]));
    }
    mn = _mm256_blendv_ps(mn, zero, _mm256_cmp_ps(mn, zero, _CMP_GT_OQ));
    const __m256 mn0 = mn;
    const __m256 degenerate = _mm256_cmp_ps(mx, mn, _CMP_EQ_OQ);
    const __m256 fnmax = _mm256_set1_ps((float)nmax);
    __m256 iscale = _mm256_div_ps(fnmax, _mm256_sub_ps(mx, mn));
    __m256 scale = _mm256_div_ps(_mm256_set1_ps(1.0f), iscale);
    __m256 best = zero;
    for (int i = 0; i < n; i++) {
        Lb[i] = nearest_clamp(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], mn)), nmax);
        const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(scale, Lb[i]), mn), X[i]);
        best = _mm256_add_ps(best, _mm256_mul_ps(W[i], err_term(diff, use_mad)));
    }
    for (int is = 0; is <= nstep; is++) {
        const float num = rmin + rdelta * (float)is + (float)nmax;
        iscale = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(mx, mn));
        __m256 sl = zero, sl2 = zero, sxl = zero;
        for (int i = 0; i < n; i++) {
            La[i] = nearest_clamp(_mm256_mul_ps(iscale, _mm256_sub_ps(X[i], mn)), nmax);
            const __m256 wl = _mm256_mul_ps(W[i], La[i]);
            sl = _mm256_add_ps(sl, wl);
            sl2 = _mm256_add_ps(sl2, _mm256_mul_ps(wl, La[i]));
            sxl = _mm256_add_ps(sxl, _mm256_mul_ps(wl, X[i]));
        }
        const __m256 D = _mm256_sub_ps(_mm256_mul_ps(sw, sl2), _mm256_mul_ps(sl, sl));
        const __m256 dpos = _mm256_cmp_ps(D, zero, _CMP_GT_OQ);
        if (_mm256_movemask_ps(dpos) == 0) continue;
        __m256 ts = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sw, sxl), _mm256_mul_ps(sx, sl)), D);
        __m256 tm = _mm256_div_ps(_mm256_sub_ps(_mm256_mul_ps(sl2, sx), _mm256_mul_ps(sl, sxl)), D);
        const __m256 mpos = _mm256_cmp_ps(tm, zero, _CMP_GT_OQ);
        tm = _mm256_blendv_ps(tm, zero, mpos);
        ts = _mm256_blendv_ps(ts, _mm256_div_ps(sxl, sl2), mpos);
        __m256 cur = zero;
        for (int i = 0; i < n; i++) {
            const __m256 diff = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(ts, La[i]), tm), X[i]);
            cur = _mm256_add_ps(cur, _mm256_mul_ps(W[i], err_term(diff, use_mad)));
        }
        const __m256 upd = _mm256_and_ps(dpos, _mm256_cmp_ps(cur, best, _CMP_LT_OQ));
        if (_mm256_movemask_ps(upd) == 0) continue;
        for (int i = 0; i < n; i++) Lb[i] = _mm256_blendv_ps(Lb[i], La[i], upd);
        best = _mm256_blendv_ps(best, cur, upd);
        scale = _mm256_blendv_ps(scale, ts, upd);
        mn = _mm256_blendv_ps(mn, tm, upd);
    }
    /* lanes with max == min returned early in the scalar code: L = 0, scale 0, min from the start */
    scale = _mm256_blendv_ps(scale, zero, degenerate);
    mn = _mm256_blendv_ps(mn, mn0, degenerate);
    _mm256_storeu_ps(scale_out, scale);
    _mm256_storeu_ps(min_out, _mm256_xor_ps(mn, sign)); /* the_min = -min, exact negation */
    int32_t tmp[8];
    const __m256i keep = _mm256_castps_si256(_mm256_xor_ps(degenerate, _mm256_castsi256_ps(_mm256_set1_epi32(-1))));
    for (int i = 0; i < n; i++) {
        _mm256_storeu_si256((__m256i *)tmp, _mm256_and_si256(_mm256_cvttps_epi32(Lb[i]), keep));
        for (int k = 0; k < 8; k++) L[k * n + i] = (uint8_t)tmp[k];
    }
}

/* make_qx_quants(n, nmax, x, L, rmse_type 1, qw NULL) for 8 sub-blocks at once
 * (lane k = sub-block k), the same float operations in the same order as the
 * scalar function, so bit-identical. Used by Q6_K. */
static void make_qx_quants_x8(int n, int nmax, const float *x, int8_t *L, float *scale_out) {
    __m256 X[16], W[16], Lb[16];
    const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(n));
    const __m256 zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
    __m256 amax = zero, max = zero;
    for (int i = 0; i < n; i++) {
        X[i] = _mm256_i32gather_ps(x + i, idx, 4);
        W[i] = _mm256_mul_ps(X[i], X[i]);
        const __m256 ax = _mm256_andnot_ps(sign, X[i]);
        const __m256 upd = _mm256_cmp_ps(ax, amax, _CMP_GT_OQ); /* first largest wins */
        amax = _mm256_blendv_ps(amax, ax, upd);
        max = _mm256_blendv_ps(max, X[i], upd);
    }
    const __m256 allzero = _mm256_cmp_ps(amax, _mm256_set1_ps(GROUP_MAX_EPS), _CMP_LT_OQ);
    const __m256i lo = _mm256_set1_epi32(-nmax), hi = _mm256_set1_epi32(nmax - 1);
    const __m256 magic = _mm256_set1_ps(12582912.f);
    const __m256i m23 = _mm256_set1_epi32(0x007fffff), off = _mm256_set1_epi32(0x00400000);
#define QX_L(is_v, i) _mm256_cvtepi32_ps(_mm256_max_epi32(lo, _mm256_min_epi32(hi, _mm256_sub_epi32( \
        _mm256_and_si256(_mm256_castps_si256(_mm256_add_ps(_mm256_mul_ps(is_v, X[i]), magic)), m23), off))))
    __m256 iscale = _mm256_div_ps(_mm256_set1_ps((float)-nmax), max);
    __m256 sumlx = zero, suml2 = zero;
    for (int i = 0; i < n; i++) {
        Lb[i] = QX_L(iscale, i); /* signed l; + nmax at the end */
        sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(W[i], X[i]), Lb[i]));
        suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], Lb[i]), Lb[i]));
    }
    const __m256 nz = _mm256_cmp_ps(suml2, zero, _CMP_NEQ_UQ);
    __m256 scale = _mm256_and_ps(nz, _mm256_div_ps(sumlx, suml2));
    __m256 best = _mm256_mul_ps(scale, sumlx);
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        const float num = -((float)nmax + 0.1f * (float)is);
        iscale = _mm256_div_ps(_mm256_set1_ps(num), max);
        __m256 Lt[16];
        sumlx = suml2 = zero;
        for (int i = 0; i < n; i++) {
            Lt[i] = QX_L(iscale, i);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(_mm256_mul_ps(W[i], X[i]), Lt[i]));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(W[i], Lt[i]), Lt[i]));
        }
        const __m256 upd = _mm256_and_ps(_mm256_cmp_ps(suml2, zero, _CMP_GT_OQ),
                                         _mm256_cmp_ps(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2), _CMP_GT_OQ));
        if (_mm256_movemask_ps(upd) == 0) continue;
        for (int i = 0; i < n; i++) Lb[i] = _mm256_blendv_ps(Lb[i], Lt[i], upd);
        const __m256 sc = _mm256_div_ps(sumlx, suml2);
        scale = _mm256_blendv_ps(scale, sc, upd);
        best = _mm256_blendv_ps(best, _mm256_mul_ps(sc, sumlx), upd);
    }
#undef QX_L
    scale = _mm256_blendv_ps(scale, zero, allzero);
    _mm256_storeu_ps(scale_out, scale);
    int32_t tmp[8];
    const __m256i keep = _mm256_castps_si256(_mm256_xor_ps(allzero, _mm256_castsi256_ps(_mm256_set1_epi32(-1))));
    for (int i = 0; i < n; i++) {
        const __m256i l = _mm256_add_epi32(_mm256_cvttps_epi32(Lb[i]), _mm256_set1_epi32(nmax));
        _mm256_storeu_si256((__m256i *)tmp, _mm256_and_si256(l, keep));
        for (int k = 0; k < 8; k++) L[k * n + i] = (int8_t)tmp[k];
    }
}
#endif

/* make_qkx2_quants over nsub contiguous sub-blocks of n; simd picks the
 * 8-lane version (bit-identical) when built with AVX2. */
static void qkx2_batch(int nsub, int n, int nmax, const float *x, const float *w, uint8_t *L, float *scales,
                       float *mins, float rmin, float rdelta, int nstep, int use_mad, int simd) {
    int j = 0;
#if defined(__AVX2__)
    if (simd)
        for (; j + 8 <= nsub; j += 8)
            make_qkx2_quants_x8(n, nmax, x + n * j, w + n * j, L + n * j, scales + j, mins + j, rmin, rdelta, nstep,
                                use_mad);
#else
    (void)simd;
#endif
    uint8_t Laux[32];
    for (; j < nsub; j++)
        scales[j] = make_qkx2_quants(n, nmax, x + n * j, w + n * j, L + n * j, &mins[j], Laux, rmin, rdelta, nstep,
                                     use_mad);
}

/* 2-bit fields: byte qs[32h + l] holds elements 128h + 32s + l at shift 2s */
static void pack_2bit(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
}

static void q2_K_impl(const float *x, void *dst, int64_t n, int simd) {
    blk_q2_K *y = dst;
    uint8_t L[QK_K];
    float weights[QK_K], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_min = 0;
        for (int l = 0; l < QK_K; l++) weights[l] = fabsf(x[l]);
        qkx2_batch(16, 16, 3, x, weights, L, scales, mins, -0.5f, 0.1f, 15, 1, simd);
        for (int j = 0; j < 16; j++) {
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) y[i].scales[j] = (uint8_t)qt__nearest_int(iscale * scales[j]);
            y[i].d = qt_f32_to_f16(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = qt_f32_to_f16(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++) /* unsigned shift: same bits as ggml, defined for a (hostile) negative */
                y[i].scales[j] |= (uint8_t)((unsigned)qt__nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = qt_f32_to_f16(max_min / q4scale);
        } else {
            y[i].dmin = qt_f32_to_f16(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = qt__h2f(y[i].d) * (float)(y[i].scales[j] & 0xF);
            if (d == 0.0f) continue;
            const float dm = qt__h2f(y[i].dmin) * (float)(y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (uint8_t)imax(0, imin(3, qt__nearest_int((x[16 * j + ii] + dm) / d)));
        }
        pack_2bit(L, y[i].qs);
    }
}

void qt__q_q2_K(const float *x, void *dst, int64_t n) { q2_K_impl(x, dst, n, 1); }

void qt__q_q3_K(const float *x, void *dst, int64_t n) {
    blk_q3_K *y = dst;
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            if (fabsf(scales[j]) > amax) {
                amax = fabsf(scales[j]);
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int l = imax(-32, imin(31, (int8_t)qt__nearest_int(iscale * scales[j]))) + 32;
                if (j < 8) y[i].scales[j] = (uint8_t)(l & 0xF);
                else y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
            }
            y[i].d = qt_f32_to_f16(1 / iscale);
        } else {
            y[i].d = qt_f32_to_f16(0.f);
        }
        int8_t sc[16];
        qt__q3k_scales(y[i].scales, sc);
        for (int j = 0; j < 16; j++) {
            const float d = qt__h2f(y[i].d) * (float)sc[j];
            if (d == 0.0f) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(imax(-4, imin(3, qt__nearest_int(x[16 * j + ii] / d))) + 4);
        }
        /* high bit of element e goes to bit e/32 of hmask[e%32] */
        memset(y[i].hmask, 0, QK_K / 8);
        uint8_t U[QK_K];
        for (int j = 0; j < QK_K; j++) {
            U[j] = (uint8_t)L[j];
            if (U[j] > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                U[j] -= 4;
            }
        }
        pack_2bit(U, y[i].qs);
    }
}

/* Q4_K/Q5_K share the scale search and the 6-bit scale packing. */
static void q45_K_scales(const float *x, int nmax, float rmin, int nstep, uint8_t *L, uint8_t scales_out[12],
                         uint16_t *d_out, uint16_t *dmin_out, int simd) {
    float weights[QK_K], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[32 * j + l] = av_x + fabsf(x[32 * j + l]);
    }
    qkx2_batch(8, 32, nmax, x, weights, L, scales, mins, rmin, 0.1f, nstep, 0, simd);
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)qt__nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)qt__nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            scales_out[j] = ls;
            scales_out[j + 4] = lm;
        } else {
            scales_out[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            scales_out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales_out[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = qt_f32_to_f16(max_scale / 63.f);
    *dmin_out = qt_f32_to_f16(max_min / 63.f);
    /* re-quantize every element with the scale/min it will be decoded with */
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        qt__scale_min_k4(j, scales_out, &sc, &m);
        const float d = qt__h2f(*d_out) * (float)sc;
        if (d == 0.0f) continue;
        const float dm = qt__h2f(*dmin_out) * (float)m;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, qt__nearest_int((x[32 * j + ii] + dm) / d)));
    }
}

static void q4_K_impl(const float *x, void *dst, int64_t n, int simd) {
    blk_q4_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        q45_K_scales(x, 15, -1.f, 20, L, y[i].scales, &y[i].d, &y[i].dmin, simd);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

static void q5_K_impl(const float *x, void *dst, int64_t n, int simd) {
    blk_q5_K *y = dst;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        q45_K_scales(x, 31, -0.5f, 15, L, y[i].scales, &y[i].d, &y[i].dmin, simd);
        memset(y[i].qh, 0, QK_K / 8);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
                if (l1 > 15) {
                    l1 -= 16;
                    y[i].qh[l] |= (uint8_t)(1u << (2 * c));
                }
                if (l2 > 15) {
                    l2 -= 16;
                    y[i].qh[l] |= (uint8_t)(2u << (2 * c));
                }
                y[i].qs[32 * c + l] = (uint8_t)(l1 | l2 << 4);
            }
    }
}

void qt__q_q4_K(const float *x, void *dst, int64_t n) { q4_K_impl(x, dst, n, 1); }
void qt__q_q5_K(const float *x, void *dst, int64_t n) { q5_K_impl(x, dst, n, 1); }

static void q6_K_impl(const float *x, void *dst, int64_t n, int simd) {
    blk_q6_K *y = dst;
    int8_t L[QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
#if defined(__AVX2__)
        if (simd) {
            make_qx_quants_x8(16, 32, x, L, scales);
            make_qx_quants_x8(16, 32, x + 128, L + 128, scales + 8);
        } else
#endif
            for (int ib = 0; ib < 16; ib++) scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, NULL);
        (void)simd;
        for (int ib = 0; ib < 16; ib++) {
            if (fabsf(scales[ib]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = qt_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < 16; ib++) y[i].scales[ib] = (int8_t)imin(127, qt__nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; j++) {
            const float d = qt__h2f(y[i].d) * (float)y[i].scales[j];
            if (d == 0.0f) continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(imax(-32, imin(31, qt__nearest_int(x[16 * j + ii] / d))) + 32);
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | q3 << 4);
                ql[l + 32] = (uint8_t)(q2 | q4 << 4);
                qh[l] = (uint8_t)((L[j + l] >> 4) | (L[j + l + 32] >> 4) << 2 | (L[j + l + 64] >> 4) << 4 |
                                  (L[j + l + 96] >> 4) << 6);
            }
    }
}

void qt__q_q6_K(const float *x, void *dst, int64_t n) { q6_K_impl(x, dst, n, 1); }

/* The K-quantizers with the scalar scale search only (tests compare the two). */
int qt__kquant_scalar(int type, const float *x, void *dst, int64_t n) {
    switch (type) {
    case QT_Q2_K: q2_K_impl(x, dst, n, 0); return 0;
    case QT_Q4_K: q4_K_impl(x, dst, n, 0); return 0;
    case QT_Q5_K: q5_K_impl(x, dst, n, 0); return 0;
    case QT_Q6_K: q6_K_impl(x, dst, n, 0); return 0;
    default: return -1;
    }
}
