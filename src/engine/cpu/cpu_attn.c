/* cpu_attn — causal GQA attention over the fp16 KV cache: llama.cpp's CPU
 * flash attention (what node-llama-cpp runs: flash_attn "auto" resolves to
 * on for the CPU), reproduced so that our results equal llama.cpp's bit for
 * bit (checked with tools/ref/ref_dump_tensors.c + tools/ref/cmp_dump.py).
 *
 * One task per (query row, head), handed out through an atomic counter
 * (causal rows have unequal work). Each task, like ggml's
 * flash_attn_ext_f16 with an F16 cache:
 *   q is rounded to fp16; s_t = fp16 dot (cpu_dot_f16_ggml) of k_t and q,
 *   times scale; online softmax over t = 0..pos in order with running max M
 *   and sum S: a new max rescales the accumulator by expf(M_old - M) and
 *   adds v_t with weight 1, otherwise v_t is added with weight expf(s_t - M);
 *   S = S·ms + vs.
 *   The accumulator is an fp16 vector (each update rounded to fp16), the
 *   result fp16 → f32 times 1/S.
 * gpt-oss (cpu_attention_ext): a sliding window skips the cache rows
 * before pos - window + 1 (llama.cpp masks them with -inf, which its loop
 * skips); a sink is folded in after the loop as llama.cpp does, on the f32
 * result: s > M scales it by expf(M - s) and adds 1 to S·ms, otherwise S
 * gains expf(s - M).
 * Deviations from the "obvious" f32 formula (fp16 q, fp16 accumulator, the
 * f16 dot's order) are all for matching llama.cpp; they cost ~1e-3 relative
 * accuracy against exact attention (tests/unit/test_backend_cpu.c).
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>

#include "engine/cpu/cpu_int.h"

/* The arithmetic below reproduces llama.cpp's CPU results bit for bit:
 * every fused multiply-add is written as fmaf, and no other may be formed
 * (GCC in -std=c11 does not contract; clang would, unless told). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#include "engine/quant.h"

#if defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define ATT_SIMD 1
#endif

#define ATT_MAX_HEAD_DIM 512 /* the model loader refuses larger heads */
#define ATT_MAX_HG 4         /* heads per task at most (att_task) */
#define ATT_CHUNK 64         /* keys per phase (att_task) */

typedef struct {
    const float *q;
    int ld_q;
    const uint16_t *k, *v;
    const int32_t *pos;
    int rows, n_head, n_head_kv, head_dim;
    float scale;
    float *out;
    const float *sinks; /* [n_head] or NULL */
    int window;         /* 0: full causal */
    int hg;             /* heads per task (att_task) */
    atomic_int next;
} att_args;

/* fp16 <-> f32, round to nearest even (F16C where built with it; the same
 * values as qt_f16_to_f32 / qt_f32_to_f16) */
#ifdef ATT_SIMD
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t f2h(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
#else
static inline float h2f(uint16_t h) { return qt_f16_to_f32(h); }
static inline uint16_t f2h(float f) { return qt_f32_to_f16(f); }
#endif

/* ---- llama.cpp's CPU flash attention, reproduced (see the header) ---- */

/* ggml_vec_dot_f16: blocks of 32 on four 8-lane fp32 FMA accumulators,
 * reduced (0+2, 1+3; 0+1; high+low 128; hadd; hadd), then the leftover
 * elements added in double, the total rounded to float once. */
float cpu_dot_f16_ggml(const uint16_t *x, const uint16_t *y, int64_t n) {
    int64_t i = 0;
    double sum = 0.0;
#ifdef ATT_SIMD
    const int64_t np = n & ~(int64_t)31;
    if (np) {
        /* four named accumulators: an array of them GCC -O2 keeps on the stack */
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
#define F16_8(o) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(o)))
        for (; i < np; i += 32) {
            a0 = _mm256_fmadd_ps(F16_8(x + i), F16_8(y + i), a0);
            a1 = _mm256_fmadd_ps(F16_8(x + i + 8), F16_8(y + i + 8), a1);
            a2 = _mm256_fmadd_ps(F16_8(x + i + 16), F16_8(y + i + 16), a2);
            a3 = _mm256_fmadd_ps(F16_8(x + i + 24), F16_8(y + i + 24), a3);
        }
#undef F16_8
        a0 = _mm256_add_ps(a0, a2);
        a1 = _mm256_add_ps(a1, a3);
        a0 = _mm256_add_ps(a0, a1);
        __m128 t = _mm_add_ps(_mm256_castps256_ps128(a0), _mm256_extractf128_ps(a0, 1));
        t = _mm_hadd_ps(t, t);
        t = _mm_hadd_ps(t, t);
        sum = (double)_mm_cvtss_f32(t);
    }
#endif
#ifdef ATT_SIMD
    /* the products are exact in f32 (11-bit significands): form 8 at once */
    for (; i + 8 <= n; i += 8) {
        float p[8];
        _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                                          _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i)))));
        for (int j = 0; j < 8; j++) sum += (double)p[j];
    }
#endif
    for (; i < n; i++) sum += (double)(h2f(x[i]) * h2f(y[i]));
    return (float)sum;
}

/* y = fp16(y * v), element by element (ggml_vec_scale_f16) */
static void scale_f16(uint16_t *y, float v, int n) {
    int i = 0;
#ifdef ATT_SIMD
    const __m256 vv = _mm256_set1_ps(v);
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))), vv);
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
    }
#endif
    for (; i < n; i++) y[i] = f2h(h2f(y[i]) * v);
}

/* y = fp16(x * v + y) with one rounding of the fma (ggml_vec_mad_f16: fused
 * in its SIMD body, and its scalar tail is contracted the same way in the
 * build node-llama-cpp ships, checked bitwise against it) */
static void mad_f16(uint16_t *y, const uint16_t *x, float v, int n) {
    int i = 0;
#ifdef ATT_SIMD
    const __m256 vv = _mm256_set1_ps(v);
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))), vv,
                                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(y + i))));
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(a, _MM_FROUND_TO_NEAREST_INT));
    }
#endif
    for (; i < n; i++) y[i] = f2h(fmaf(h2f(x[i]), v, h2f(y[i])));
}

/* Phase 1 of att_task for head dims 8, 16 and 24 (below the 32-wide FMA
 * blocks of cpu_dot_f16_ggml, which then adds the exact f32 products one by
 * one in double): 4 keys at once, one double lane per key, each key's
 * products added in the same order d = 0, 1, ... from 0.0 as
 * cpu_dot_f16_ggml does, then rounded to float and scaled: the same scores
 * bit for bit, 4 dependency chains instead of 1. */
#ifdef ATT_SIMD
static void scores_small(const uint16_t *k, int64_t ldk, const uint16_t *qh, int hd, int nc, float scale,
                         float *sc) {
    __m256 qv[3];
    for (int c = 0; c < hd / 8; c++) qv[c] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(qh + 8 * c)));
    int j = 0;
    for (; j + 4 <= nc; j += 4) {
        __m256d sum = _mm256_setzero_pd();
        for (int c = 0; c < hd / 8; c++) {
            __m256 p[4];
            for (int i = 0; i < 4; i++)
                p[i] = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + (j + i) * ldk + 8 * c))),
                                     qv[c]);
            /* transpose: u[d % 4] holds the 4 keys' products of dim d (low
             * half) and d + 4 (high half) */
            const __m256 t0 = _mm256_unpacklo_ps(p[0], p[1]), t1 = _mm256_unpackhi_ps(p[0], p[1]);
            const __m256 t2 = _mm256_unpacklo_ps(p[2], p[3]), t3 = _mm256_unpackhi_ps(p[2], p[3]);
            const __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                                 _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
            for (int d = 0; d < 4; d++) sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm256_castps256_ps128(u[d])));
            for (int d = 0; d < 4; d++) sum = _mm256_add_pd(sum, _mm256_cvtps_pd(_mm256_extractf128_ps(u[d], 1)));
        }
        _mm_storeu_ps(sc + j, _mm_mul_ps(_mm256_cvtpd_ps(sum), _mm_set1_ps(scale)));
    }
    for (; j < nc; j++) sc[j] = cpu_dot_f16_ggml(k + j * ldk, qh, hd) * scale;
}
#endif

/* One chunk's accumulation, phase 3 of att_task: for key j, nm[j] says
 * whether it raised the running max (then acc = fp16(acc * ex[j]) and v_j
 * is added with weight 1), else v_j is added with weight ex[j]; S as in the
 * header. No calls inside, so for head dims 8/16/32/64 (nv = hd / 8 vectors)
 * acc stays in registers as f32 values that are exactly fp16 (each update
 * rounded through cvtps2ph, the same values scale_f16 / mad_f16 store). */
#ifdef ATT_SIMD
static inline __attribute__((always_inline)) float acc_chunk_reg(int nv, uint16_t *acc, const uint16_t *v,
                                                                 int64_t ldv, const float *ex,
                                                                 const unsigned char *nm, int nc, float S) {
    __m256 av[8];
    for (int k = 0; k < nv; k++) av[k] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(acc + 8 * k)));
    for (int j = 0; j < nc; j++, v += ldv) {
        float ms = 1.0f, vs = 1.0f;
        if (nm[j]) {
            ms = ex[j];
            const __m256 mv = _mm256_set1_ps(ms);
            for (int k = 0; k < nv; k++)
                av[k] = _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_mul_ps(av[k], mv), _MM_FROUND_TO_NEAREST_INT));
        } else {
            vs = ex[j];
        }
        const __m256 vv = _mm256_set1_ps(vs);
        for (int k = 0; k < nv; k++) {
            const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 8 * k)));
            av[k] = _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_fmadd_ps(x, vv, av[k]), _MM_FROUND_TO_NEAREST_INT));
        }
        S = S * ms + vs;
    }
    for (int k = 0; k < nv; k++)
        _mm_storeu_si128((__m128i *)(acc + 8 * k), _mm256_cvtps_ph(av[k], _MM_FROUND_TO_NEAREST_INT));
    return S;
}
/* acc_chunk_reg for G heads of one query row at once (their keys are the
 * same positions): G independent fp16 rounding chains interleaved, where
 * one head alone waits on each update's latency. Per head, exactly
 * acc_chunk_reg's operations in its order. */
static inline __attribute__((always_inline)) void acc_chunk_reg_g(int G, int nv, uint16_t (*acc)[ATT_MAX_HEAD_DIM],
                                                                  const uint16_t *const *v, int64_t ldv,
                                                                  float (*ex)[ATT_CHUNK],
                                                                  unsigned char (*nm)[ATT_CHUNK], int nc, float *S) {
    __m256 av[4][2];
    float s[4];
    for (int g = 0; g < G; g++) {
        s[g] = S[g];
        for (int k = 0; k < nv; k++) av[g][k] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(acc[g] + 8 * k)));
    }
    for (int j = 0; j < nc; j++)
        for (int g = 0; g < G; g++) {
            const uint16_t *vj = v[g] + j * ldv;
            float ms = 1.0f, vs = 1.0f;
            if (nm[g][j]) {
                ms = ex[g][j];
                const __m256 mv = _mm256_set1_ps(ms);
                for (int k = 0; k < nv; k++)
                    av[g][k] = _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_mul_ps(av[g][k], mv), _MM_FROUND_TO_NEAREST_INT));
            } else {
                vs = ex[g][j];
            }
            const __m256 vv = _mm256_set1_ps(vs);
            for (int k = 0; k < nv; k++) {
                const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vj + 8 * k)));
                av[g][k] =
                    _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_fmadd_ps(x, vv, av[g][k]), _MM_FROUND_TO_NEAREST_INT));
            }
            s[g] = s[g] * ms + vs;
        }
    for (int g = 0; g < G; g++) {
        S[g] = s[g];
        for (int k = 0; k < nv; k++)
            _mm_storeu_si128((__m128i *)(acc[g] + 8 * k), _mm256_cvtps_ph(av[g][k], _MM_FROUND_TO_NEAREST_INT));
    }
}
#endif

static float acc_chunk(int hd, uint16_t *acc, const uint16_t *v, int64_t ldv, const float *ex,
                       const unsigned char *nm, int nc, float S) {
#ifdef ATT_SIMD
    switch (hd) {
    case 8: return acc_chunk_reg(1, acc, v, ldv, ex, nm, nc, S);
    case 16: return acc_chunk_reg(2, acc, v, ldv, ex, nm, nc, S);
    case 32: return acc_chunk_reg(4, acc, v, ldv, ex, nm, nc, S);
    case 64: return acc_chunk_reg(8, acc, v, ldv, ex, nm, nc, S);
    default: break;
    }
#endif
    for (int j = 0; j < nc; j++, v += ldv) {
        float ms = 1.0f, vs = 1.0f;
        if (nm[j]) {
            ms = ex[j];
            scale_f16(acc, ms, hd);
        } else {
            vs = ex[j];
        }
        mad_f16(acc, v, vs, hd);
        S = S * ms + vs;
    }
    return S;
}

/* The keys go in chunks of ATT_CHUNK, each in three phases that together do
 * exactly the per-key loop of the header (same operations on the same
 * values in the same order; only the scheduling differs): 1. the scores of
 * the chunk; 2. the running max, key by key, and with it every exp factor
 * (expf(M_old - s) where s raises the max, else expf(s - M)); 3. the
 * accumulation (acc_chunk), free of calls. A task is one query row and
 * a->hg heads (4 or 2 for head dims 8/16, whose single fp16 chain per head
 * is latency-bound: their phase 3 runs interleaved; else 1). */
static void att_task(void *ap, int ith, int nth) {
    (void)ith;
    (void)nth;
    att_args *a = ap;
    const int hd = a->head_dim, group = a->n_head / a->n_head_kv, G = a->hg;
    const int64_t kv_dim = (int64_t)a->n_head_kv * hd;
    const int n_tasks = a->rows * (a->n_head / G);
    uint16_t qh[ATT_MAX_HG][ATT_MAX_HEAD_DIM], acc[ATT_MAX_HG][ATT_MAX_HEAD_DIM];
    float sc[ATT_CHUNK], ex[ATT_MAX_HG][ATT_CHUNK], M[ATT_MAX_HG], S[ATT_MAX_HG];
    unsigned char nm[ATT_MAX_HG][ATT_CHUNK];
    for (;;) {
        int task = atomic_fetch_add_explicit(&a->next, 1, memory_order_relaxed);
        if (task >= n_tasks) return;
        const int r = task / (a->n_head / G), h0 = task % (a->n_head / G) * G;
        const int n_t = a->pos[r] + 1;
        const int t0 = a->window > 0 && n_t > a->window ? n_t - a->window : 0;
        for (int g = 0; g < G; g++) {
            const float *q = a->q + (int64_t)r * a->ld_q + (int64_t)(h0 + g) * hd;
            for (int d = 0; d < hd; d++) {
                qh[g][d] = f2h(q[d]);
                acc[g][d] = 0;
            }
            M[g] = -INFINITY;
            S[g] = 0.0f;
        }
        for (int t1 = t0; t1 < n_t; t1 += ATT_CHUNK) {
            const int nc = n_t - t1 < ATT_CHUNK ? n_t - t1 : ATT_CHUNK;
            const uint16_t *vg[ATT_MAX_HG];
            for (int g = 0; g < G; g++) {
                const int kvh = (h0 + g) / group;
                const uint16_t *k = a->k + (int64_t)t1 * kv_dim + (int64_t)kvh * hd;
                vg[g] = a->v + (int64_t)t1 * kv_dim + (int64_t)kvh * hd;
#ifdef ATT_SIMD
                if (hd < 32 && hd % 8 == 0) scores_small(k, kv_dim, qh[g], hd, nc, a->scale, sc);
                else
#endif
                    for (int j = 0; j < nc; j++) sc[j] = cpu_dot_f16_ggml(k + j * kv_dim, qh[g], hd) * a->scale;
                float m = M[g];
                for (int j = 0; j < nc; j++) {
                    if (sc[j] > m) {
                        const float Mold = m;
                        m = sc[j];
                        nm[g][j] = 1;
                        ex[g][j] = expf(Mold - m);
                    } else {
                        nm[g][j] = 0;
                        ex[g][j] = expf(sc[j] - m);
                    }
                }
                M[g] = m;
            }
#ifdef ATT_SIMD
            if (G == 4 && hd == 8) acc_chunk_reg_g(4, 1, acc, vg, kv_dim, ex, nm, nc, S);
            else if (G == 4 && hd == 16) acc_chunk_reg_g(4, 2, acc, vg, kv_dim, ex, nm, nc, S);
            else if (G == 2 && hd == 8) acc_chunk_reg_g(2, 1, acc, vg, kv_dim, ex, nm, nc, S);
            else if (G == 2 && hd == 16) acc_chunk_reg_g(2, 2, acc, vg, kv_dim, ex, nm, nc, S);
            else
#endif
                for (int g = 0; g < G; g++) S[g] = acc_chunk(hd, acc[g], vg[g], kv_dim, ex[g], nm[g], nc, S[g]);
        }
        for (int g = 0; g < G; g++) {
            const int h = h0 + g;
            float *o = a->out + (int64_t)r * a->n_head * hd + (int64_t)h * hd;
            for (int d = 0; d < hd; d++) o[d] = h2f(acc[g][d]);
            float Sg = S[g];
            if (a->sinks) {
                const float sk = a->sinks[h];
                float ms = 1.0f, vs = 1.0f;
                if (sk > M[g]) {
                    ms = expf(M[g] - sk);
                    for (int d = 0; d < hd; d++) o[d] *= ms;
                } else {
                    vs = expf(sk - M[g]);
                }
                Sg = Sg * ms + vs;
            }
            const float inv = Sg == 0.0f ? 0.0f : 1.0f / Sg;
            for (int d = 0; d < hd; d++) o[d] *= inv;
        }
    }
}

void cpu_attention(void *ctx, const float *q, int ld_q, const uint16_t *k_cache, const uint16_t *v_cache,
                   const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                   float *out) {
    cpu_attention_ext(ctx, q, ld_q, k_cache, v_cache, pos, rows, n_head, n_head_kv, head_dim, scale, NULL, 0, out);
}

void cpu_attention_ext(void *ctx, const float *q, int ld_q, const uint16_t *k_cache, const uint16_t *v_cache,
                       const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                       const float *sinks, int window, float *out) {
    cpu_ctx *c = ctx;
    if (head_dim <= 0 || head_dim > ATT_MAX_HEAD_DIM || n_head_kv <= 0 || n_head % n_head_kv || window < 0) {
        c->err = -EINVAL;
        return;
    }
    /* heads per task: several for the small head dims (att_task) */
    const int hg = head_dim > 16 ? 1 : n_head % 4 == 0 ? 4 : n_head % 2 == 0 ? 2 : 1;
    att_args a = {q, ld_q, k_cache, v_cache, pos, rows, n_head, n_head_kv, head_dim, scale, out, sinks, window, hg, 0};
    atomic_init(&a.next, 0);
    int64_t work = 0;
    for (int r = 0; r < rows; r++) {
        const int64_t n_t = window > 0 && pos[r] + 1 > window ? window : pos[r] + 1;
        work += n_t * n_head * head_dim * 2;
    }
    int nth = cpu_nth_for(c, work);
    if (nth > rows * (n_head / hg)) nth = rows * (n_head / hg);
    cpu_pool_run(c->pool, att_task, &a, nth);
}
