/* cpu_ops — the element-wise and row-wise ops of the CPU backend: embedding
 * rows, RMSNorm, bias and residual adds, RoPE, the fp16 KV store, SwiGLU.
 * Written plainly: these are the reference every other backend is tested
 * against. Semantics are ggml's where the two could differ (RMSNorm sums in
 * double; RoPE builds theta by repeated float multiplication as ggml does).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "engine/cpu/cpu_int.h"
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
                th = theta_interp * (1 - mix) + theta_extrap * mix;
                mscale *= 1.0f + 0.1f * logf(1.0f / p->freq_scale);
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
                x[j0] = x0 * cs - x1 * sn;
                x[j1] = x0 * sn + x1 * cs;
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

static void glu_task(void *ap, int ith, int nth) {
    glu_args *a = ap;
    /* split the flattened [rows][dim] so one row splits too (decode) */
    int64_t n = (int64_t)a->rows * a->dim, lo, hi;
    cpu_split(n, ith, nth, &lo, &hi);
    for (int64_t e = lo; e < hi; e++) {
        int64_t r = e / a->dim, i = e % a->dim;
        const float g = a->gate[r * a->ld_in + i];
        a->out[e] = g / (1.0f + expf(-g)) * a->up[r * a->ld_in + i];
    }
}

void cpu_swiglu(void *ctx, const float *gate, const float *up, int ld_in, float *out, int rows, int dim) {
    cpu_ctx *c = ctx;
    glu_args a = {gate, up, ld_in, out, rows, dim};
    cpu_pool_run(c->pool, glu_task, &a, cpu_nth_for(c, (int64_t)rows * dim));
}
