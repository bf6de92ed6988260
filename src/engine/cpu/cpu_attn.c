/* cpu_attn — causal GQA attention over the fp16 KV cache, in f32.
 *
 * One task per (query row, head), handed out through an atomic counter
 * (causal rows have unequal work). Each task walks the cache rows
 * 0..pos[r] in blocks of ATT_BLOCK: scores of a block on the stack, then an
 * online softmax (running max m, running sum l, accumulator acc rescaled
 * when m grows), so no scratch proportional to the context is needed.
 * Result: out[r][h*head_dim + d] = sum_t softmax_t(scale * q·k_t) v_t[d].
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>

#include "engine/cpu/cpu_int.h"
#include "engine/quant.h"

#if defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define ATT_SIMD 1
#endif

#define ATT_BLOCK 64
#define ATT_MAX_HEAD_DIM 512 /* the model loader refuses larger heads */

typedef struct {
    const float *q;
    int ld_q;
    const uint16_t *k, *v;
    const int32_t *pos;
    int rows, n_head, n_head_kv, head_dim;
    float scale;
    float *out;
    atomic_int next;
} att_args;

static inline float h2f(uint16_t h) { return qt_f16_to_f32(h); }

static float dot_f32_f16(const float *q, const uint16_t *k, int n) {
    int i = 0;
    float s = 0.0f;
#ifdef ATT_SIMD
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + i))), acc);
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    s = _mm_cvtss_f32(lo);
#endif
    for (; i < n; i++) s += q[i] * h2f(k[i]);
    return s;
}

/* acc[d] = acc[d] * f + p * v[d] */
static void axpby_f16(float *acc, float f, float p, const uint16_t *v, int n) {
    int i = 0;
#ifdef ATT_SIMD
    const __m256 vf = _mm256_set1_ps(f), vp = _mm256_set1_ps(p);
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(acc + i), vf);
        a = _mm256_fmadd_ps(vp, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + i))), a);
        _mm256_storeu_ps(acc + i, a);
    }
#endif
    for (; i < n; i++) acc[i] = acc[i] * f + p * h2f(v[i]);
}

static void att_task(void *ap, int ith, int nth) {
    (void)ith;
    (void)nth;
    att_args *a = ap;
    const int hd = a->head_dim, group = a->n_head / a->n_head_kv;
    const int64_t kv_dim = (int64_t)a->n_head_kv * hd;
    const int n_tasks = a->rows * a->n_head;
    float acc[ATT_MAX_HEAD_DIM], s[ATT_BLOCK];
    for (;;) {
        int task = atomic_fetch_add_explicit(&a->next, 1, memory_order_relaxed);
        if (task >= n_tasks) return;
        const int r = task / a->n_head, h = task % a->n_head, kvh = h / group;
        const float *q = a->q + (int64_t)r * a->ld_q + (int64_t)h * hd;
        const int n_t = a->pos[r] + 1;
        float m = -INFINITY, l = 0.0f;
        for (int d = 0; d < hd; d++) acc[d] = 0.0f;
        for (int t0 = 0; t0 < n_t; t0 += ATT_BLOCK) {
            const int nb = n_t - t0 < ATT_BLOCK ? n_t - t0 : ATT_BLOCK;
            float bm = -INFINITY;
            for (int j = 0; j < nb; j++) {
                s[j] = a->scale * dot_f32_f16(q, a->k + (int64_t)(t0 + j) * kv_dim + (int64_t)kvh * hd, hd);
                if (s[j] > bm) bm = s[j];
            }
            float f = 1.0f;
            if (bm > m) {
                f = m == -INFINITY ? 0.0f : expf(m - bm);
                l *= f;
                m = bm;
            }
            for (int j = 0; j < nb; j++) {
                const float p = expf(s[j] - m);
                l += p;
                axpby_f16(acc, j == 0 ? f : 1.0f, p, a->v + (int64_t)(t0 + j) * kv_dim + (int64_t)kvh * hd, hd);
            }
        }
        float *o = a->out + (int64_t)r * a->n_head * hd + (int64_t)h * hd;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int d = 0; d < hd; d++) o[d] = acc[d] * inv;
    }
}

void cpu_attention(void *ctx, const float *q, int ld_q, const uint16_t *k_cache, const uint16_t *v_cache,
                   const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                   float *out) {
    cpu_ctx *c = ctx;
    if (head_dim <= 0 || head_dim > ATT_MAX_HEAD_DIM || n_head_kv <= 0 || n_head % n_head_kv) {
        c->err = -EINVAL;
        return;
    }
    att_args a = {q, ld_q, k_cache, v_cache, pos, rows, n_head, n_head_kv, head_dim, scale, out, 0};
    atomic_init(&a.next, 0);
    int64_t work = 0;
    for (int r = 0; r < rows; r++) work += (int64_t)(pos[r] + 1) * n_head * head_dim * 2;
    int nth = cpu_nth_for(c, work);
    if (nth > rows * n_head) nth = rows * n_head;
    cpu_pool_run(c->pool, att_task, &a, nth);
}
