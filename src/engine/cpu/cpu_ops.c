/* cpu_ops — the element-wise and row-wise ops of the CPU backend: embedding
 * rows, RMSNorm, bias and residual adds, RoPE, the fp16 KV store, SwiGLU.
 * Written plainly: these are the reference every other backend is tested
 * against. Semantics are llama.cpp's CPU backend's, bit for bit where the
 * two could differ (RMSNorm sums in double; RoPE builds theta by repeated
 * float multiplication and rotates with one fused multiply-add per output,
 * x0·cos - x1·sin = fma(x0, cos, -(x1·sin)), as llama.cpp's build computes
 * it; SwiGLU uses llama.cpp's SIMD exp for all but a row's last dim % 8).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "engine/cpu/cpu_int.h"

/* The arithmetic below reproduces llama.cpp's CPU results bit for bit:
 * every fused multiply-add is written as fmaf, and no other may be formed
 * (GCC in -std=c11 does not contract; clang would, unless told). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "engine/quant.h"

#if defined(__F16C__)
#include <immintrin.h>
#endif

/* ---- get_rows ---------------------------------------------------------------- */
typedef struct {
    cpu_ctx *c;
    const eng_w *w;
    const int32_t *ids;
    int n;
    float *out;
} rows_args;

static void rows_task(void *ap, int ith, int nth) {
    rows_args *a = ap;
    int64_t lo, hi;
    cpu_split(a->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        int32_t id = a->ids[i];
        float *dst = a->out + i * a->w->ne0;
        if (id < 0 || id >= a->w->ne1) { /* the engine validates ids; latch, never read out of bounds */
            memset(dst, 0, (size_t)a->w->ne0 * sizeof *dst);
            a->c->err = -EINVAL;
            continue;
        }
        qt_dequant_row(a->w->type, (const char *)a->w->data + (size_t)id * a->w->nb1, dst, a->w->ne0);
    }
}

void cpu_get_rows(void *ctx, const eng_w *w, const int32_t *ids, int n, float *out) {
    cpu_ctx *c = ctx;
    rows_args a = {c, w, ids, n, out};
    cpu_pool_run(c->pool, rows_task, &a, cpu_nth_for(c, (int64_t)n * w->ne0 / 4));
}

/* ---- rmsnorm ------------------------------------------------------------------- */
typedef struct {
    const float *x, *g;
    float *y;
    int rows, dim;
    float eps;
} norm_args;

static void norm_task(void *ap, int ith, int nth) {
    norm_args *a = ap;
    int64_t lo, hi;
    cpu_split(a->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = a->x + r * a->dim;
        float *y = a->y + r * a->dim;
        double sum = 0.0;
        for (int i = 0; i < a->dim; i++) sum += (double)(x[i] * x[i]);
        const float mean = (float)(sum / a->dim);
        const float scale = 1.0f / sqrtf(mean + a->eps);
        if (a->g)
            for (int i = 0; i < a->dim; i++) y[i] = (x[i] * scale) * a->g[i];
        else
            for (int i = 0; i < a->dim; i++) y[i] = x[i] * scale;
    }
}

void cpu_rmsnorm(void *ctx, const float *x, const float *g, float *y, int rows, int dim, float eps) {
    cpu_ctx *c = ctx;
    norm_args a = {x, g, y, rows, dim, eps};
    cpu_pool_run(c->pool, norm_task, &a, cpu_nth_rows(c, rows, (int64_t)rows * dim));
}

/* ---- bias, residual -------------------------------------------------------------- */
void cpu_add_bias(void *ctx, float *y, int ld, const float *b, int rows, int dim) {
    (void)ctx;
    for (int r = 0; r < rows; r++) {
        float *yr = y + (int64_t)r * ld;
        for (int i = 0; i < dim; i++) yr[i] += b[i];
    }
}

void cpu_add(void *ctx, float *y, const float *a, int64_t n) {
    (void)ctx;
    for (int64_t i = 0; i < n; i++) y[i] += a[i];
}

/* ---- rope ------------------------------------------------------------------------ */
/* ggml's YaRN helpers, restated */
static float yarn_ramp(float low, float high, int i0) {
    const float y = (float)(i0 / 2 - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

static float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * logf(n_ctx_orig / (n_rot * 2 * (float)M_PI)) / (2 * logf(base));
}

static void yarn_corr_dims(int n_dims, int n_ctx_orig, float base, float beta_fast, float beta_slow, float d[2]) {
    float start = floorf(yarn_corr_dim(n_dims, n_ctx_orig, beta_fast, base));
    float end = ceilf(yarn_corr_dim(n_dims, n_ctx_orig, beta_slow, base));
    d[0] = fmaxf(0.0f, start);
    d[1] = fminf((float)(n_dims - 1), end);
}

#define ROPE_MAX_DIMS 1024 /* the model loader refuses n_rot above this */

typedef struct {
    float *x;
    int ld;
    const int32_t *pos;
    int rows, n_head, head_dim;
    const eng_rope *p;
    float corr[2];
    float theta_scale;
} rope_args;

static void rope_task(void *ap, int ith, int nth) {
    rope_args *a = ap;
    const eng_rope *p = a->p;
    const int n_rot = p->n_rot;
    float cache[ROPE_MAX_DIMS]; /* cos, sin interleaved for each pair */
    int64_t lo, hi;
    cpu_split(a->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        float theta = (float)a->pos[r];
        for (int i0 = 0; i0 < n_rot; i0 += 2) {
            const float ff = p->freq_factors ? p->freq_factors[i0 / 2] : 1.0f;
            const float theta_extrap = theta / ff;
            const float theta_interp = p->freq_scale * theta_extrap;
            float th = theta_interp, mscale = p->attn_factor;
            if (p->ext_factor != 0.0f) {
                const float mix = yarn_ramp(a->corr[0], a->corr[1], i0) * p->ext_factor;
                th = fmaf(theta_interp, 1 - mix, theta_extrap * mix);
                mscale *= fmaf(0.1f, logf(1.0f / p->freq_scale), 1.0f);
            }
            cache[i0] = cosf(th) * mscale;
            cache[i0 + 1] = sinf(th) * mscale;
            theta *= a->theta_scale;
        }
        for (int h = 0; h < a->n_head; h++) {
            float *x = a->x + r * a->ld + (int64_t)h * a->head_dim;
            for (int i0 = 0; i0 < n_rot; i0 += 2) {
                const float cs = cache[i0], sn = cache[i0 + 1];
                const int j0 = p->neox ? i0 / 2 : i0;
                const int j1 = p->neox ? i0 / 2 + n_rot / 2 : i0 + 1;
                const float x0 = x[j0], x1 = x[j1];
                x[j0] = fmaf(x0, cs, -(x1 * sn));
                x[j1] = fmaf(x0, sn, x1 * cs);
            }
        }
    }
}

void cpu_rope(void *ctx, float *x, int ld, const int32_t *pos, int rows, int n_head, int head_dim,
              const eng_rope *p) {
    cpu_ctx *c = ctx;
    if (p->n_rot <= 0 || p->n_rot > ROPE_MAX_DIMS || p->n_rot > head_dim || (p->n_rot & 1)) {
        c->err = -EINVAL;
        return;
    }
    rope_args a = {x, ld, pos, rows, n_head, head_dim, p, {0, 0}, powf(p->freq_base, -2.0f / p->n_rot)};
    yarn_corr_dims(p->n_rot, p->n_ctx_orig > 0 ? p->n_ctx_orig : 1, p->freq_base, p->beta_fast, p->beta_slow,
                   a.corr);
    cpu_pool_run(c->pool, rope_task, &a, cpu_nth_rows(c, rows, (int64_t)rows * n_head * p->n_rot * 4));
}

/* ---- kv_store ---------------------------------------------------------------------- */
static void f32_to_f16_row(const float *src, uint16_t *dst, int n) {
    int i = 0;
#if defined(__F16C__)
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
#endif
    for (; i < n; i++) dst[i] = qt_f32_to_f16(src[i]);
}

void cpu_kv_store(void *ctx, uint16_t *k_cache, uint16_t *v_cache, const float *k, const float *v, int ld,
                  const int32_t *pos, int rows, int kv_dim) {
    (void)ctx;
    for (int r = 0; r < rows; r++) {
        f32_to_f16_row(k + (int64_t)r * ld, k_cache + (int64_t)pos[r] * kv_dim, kv_dim);
        f32_to_f16_row(v + (int64_t)r * ld, v_cache + (int64_t)pos[r] * kv_dim, kv_dim);
    }
}

/* ---- swiglu -------------------------------------------------------------------------- */
typedef struct {
    const float *gate, *up;
    int ld_in;
    float *out;
    int rows, dim;
} glu_args;

/* exp(x) as llama.cpp's CPU backend computes it in its 8-lane SIMD body
 * (ggml_v_expf on AVX2+FMA), restated one element at a time (every step is
 * a lane-wise IEEE op, so this equals the vector result bit for bit):
 * n = round(x·log2 e) by the 1.5·2^23 shifter, b = x - n·ln2 (ln2 split in
 * two), exp(b) - 1 ≈ b·c0 + b²·(c1 + b·c2 + b²·(c3 + b·c4)), scaled by 2^n
 * built in the exponent bits, with a two-factor scale when |n| > 126 and
 * overflow/underflow (s1²) when |n| > 192. Not expf: differs by ~1 ulp,
 * which is the point (it is what llama.cpp computes). */
static inline float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float exp_ggml_simd(float x) {
    const float shift = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, shift);
    const float n = z - shift;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    const uint32_t e = f_bits(z) << 23;
    const float k = bits_f(e + f_bits(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                         0x1.ffffecp-1f * b);
    if (!(fabsf(n) > 126.0f)) return fmaf(k, j, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = bits_f(g + 0x7f000000u);
    const float s2 = bits_f(e - g);
    if (fabsf(n) > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

static void glu_task(void *ap, int ith, int nth) {
    glu_args *a = ap;
    /* split the flattened [rows][dim] so one row splits too (decode) */
    int64_t n = (int64_t)a->rows * a->dim, lo, hi;
    cpu_split(n, ith, nth, &lo, &hi);
    /* llama.cpp (ggml_vec_swiglu_f32, AVX2 build) runs each row's first
     * dim & ~7 elements through its SIMD silu, x / (1 + exp_simd(0 - x)),
     * and the tail through x / (1 + expf(-x)); matched for bitwise-equal
     * activations (and so equal int8 rounding in the next matmul). */
    const int64_t nvec = a->dim & ~7;
    for (int64_t e = lo; e < hi; e++) {
        int64_t r = e / a->dim, i = e % a->dim;
        const float g = a->gate[r * a->ld_in + i];
        const float ex = i < nvec ? exp_ggml_simd(0.0f - g) : expf(-g);
        a->out[e] = g / (1.0f + ex) * a->up[r * a->ld_in + i];
    }
}

void cpu_swiglu(void *ctx, const float *gate, const float *up, int ld_in, float *out, int rows, int dim) {
    cpu_ctx *c = ctx;
    glu_args a = {gate, up, ld_in, out, rows, dim};
    cpu_pool_run(c->pool, glu_task, &a, cpu_nth_for(c, (int64_t)rows * dim));
}
