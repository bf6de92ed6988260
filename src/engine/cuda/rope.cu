/* rope.cu — rotary position embedding, ggml semantics (both orderings,
 * freq_factors, YaRN). In place on x[r][h*head_dim + d] (leading dim ld),
 * position pos[r] read from device memory.
 *
 * Angles are computed in double: positions reach 10^5 and fast-math sinf/cosf
 * lose accuracy far from zero, while double sincos costs nothing at this size
 * (rows * n_head * n_rot/2 threads). */
#include <math.h>

#include "rope.cuh"

__global__ void k_rope(float *x, int ld, const int32_t *pos, int rows, int n_head, int head_dim, rope_k p,
                       const float *ff) {
    cu_pdl_begin();
    const int half = p.n_rot / 2;
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (int64_t)rows * n_head * half) return;
    const int i = (int)(t % half);
    const int h = (int)((t / half) % n_head);
    const int r = (int)(t / ((int64_t)half * n_head));
    const int i0 = 2 * i;
    float c, s;
    rope_cs(p, pos[r], i, ff, &c, &s);
    float *xh = x + (int64_t)r * ld + (int64_t)h * head_dim;
    const int a = p.neox ? i : i0, b = p.neox ? i + half : i0 + 1;
    const float x0 = xh[a], x1 = xh[b];
    xh[a] = x0 * c - x1 * s;
    xh[b] = x0 * s + x1 * c;
}

/* rope(q), rope(k), kv_store(k, v) in one launch (backend.h rope_kv_store).
 * Threads: [0, nq) rotate a q pair; [nq, nq + nk) take a k pair (j < half:
 * rotated, written back and stored; j >= half: the unrotated dims n_rot +
 * 2(j - half), +1, stored); [nq + nk, nq + nk + nv) store one v element.
 * The values are those of the separate kernels: the same rope_cs, the same
 * fp16 rounding. head_dim is even. */
__global__ void k_rope_kv(float *q, int ldq, float *k, const float *v, int ldkv, const int32_t *pos, int rows,
                          int n_head, int n_head_kv, int head_dim, rope_k p, const float *ff, __half *kc,
                          __half *vc) {
    cu_pdl_begin();
    const int half = p.n_rot / 2, hp = head_dim / 2, kv_dim = n_head_kv * head_dim;
    const int64_t nq = (int64_t)rows * n_head * half, nk = (int64_t)rows * n_head_kv * hp;
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < nq) {
        const int i = (int)(t % half), h = (int)((t / half) % n_head), r = (int)(t / ((int64_t)half * n_head));
        float c, s;
        rope_cs(p, pos[r], i, ff, &c, &s);
        float *xh = q + (int64_t)r * ldq + (int64_t)h * head_dim;
        const int a = p.neox ? i : 2 * i, b = p.neox ? i + half : 2 * i + 1;
        const float x0 = xh[a], x1 = xh[b];
        xh[a] = x0 * c - x1 * s;
        xh[b] = x0 * s + x1 * c;
        return;
    }
    t -= nq;
    if (t < nk) {
        const int j = (int)(t % hp), h = (int)((t / hp) % n_head_kv), r = (int)(t / ((int64_t)hp * n_head_kv));
        float *xh = k + (int64_t)r * ldkv + (int64_t)h * head_dim;
        __half *dst = kc + (int64_t)pos[r] * kv_dim + (int64_t)h * head_dim;
        if (j < half) {
            float c, s;
            rope_cs(p, pos[r], j, ff, &c, &s);
            const int a = p.neox ? j : 2 * j, b = p.neox ? j + half : 2 * j + 1;
            const float x0 = xh[a], x1 = xh[b];
            const float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
            xh[a] = y0;
            xh[b] = y1;
            dst[a] = __float2half_rn(y0);
            dst[b] = __float2half_rn(y1);
        } else {
            const int a = p.n_rot + 2 * (j - half);
            dst[a] = __float2half_rn(xh[a]);
            dst[a + 1] = __float2half_rn(xh[a + 1]);
        }
        return;
    }
    t -= nk;
    if (t < (int64_t)rows * kv_dim) {
        const int i = (int)(t % kv_dim), r = (int)(t / kv_dim);
        vc[(int64_t)pos[r] * kv_dim + i] = __float2half_rn(v[(int64_t)r * ldkv + i]);
    }
}

/* ggml_rope_yarn_corr_dim */
static float corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

rope_k cu_rope_params(const eng_rope *p) {
    rope_k k;
    k.n_rot = p->n_rot;
    k.neox = p->neox;
    k.theta_scale = pow((double)p->freq_base, -2.0 / (double)p->n_rot);
    k.freq_scale = p->freq_scale;
    k.ext_factor = p->ext_factor;
    k.attn_factor = p->attn_factor;
    k.corr0 = k.corr1 = 0.0f;
    if (p->ext_factor != 0.0f) {
        const float lo = floorf(corr_dim(p->n_rot, p->n_ctx_orig, p->beta_fast, p->freq_base));
        const float hi = ceilf(corr_dim(p->n_rot, p->n_ctx_orig, p->beta_slow, p->freq_base));
        k.corr0 = lo > 0.0f ? lo : 0.0f;
        k.corr1 = hi < (float)(p->n_rot - 1) ? hi : (float)(p->n_rot - 1);
    }
    return k;
}

void cu_rope(cu_ctx *c, float *x, int ld, const int32_t *pos, int rows, int n_head, int head_dim, const eng_rope *p) {
    if (rows <= 0 || n_head <= 0 || p->n_rot <= 0) return;
    const rope_k k = cu_rope_params(p);
    const int64_t n = (int64_t)rows * n_head * (p->n_rot / 2);
    cu_launch(c, cu_div_up(n, 256), 256, 0, k_rope, x, ld, pos, rows, n_head, head_dim, k, p->freq_factors);
    LAUNCH_CHECK(c, "rope");
}

int cu_rope_kv_store(cu_ctx *c, float *q, int ldq, float *k, const float *v, int ldkv, const int32_t *pos, int rows,
                     int n_head, int n_head_kv, int head_dim, const eng_rope *p, uint16_t *kc, uint16_t *vc) {
    if (head_dim % 2 || p->n_rot <= 0 || p->n_rot % 2 || p->n_rot > head_dim) return -1;
    if (rows <= 0) return 0;
    const rope_k rk = cu_rope_params(p);
    const int64_t n = (int64_t)rows * (n_head * (p->n_rot / 2) + n_head_kv * (head_dim / 2) + n_head_kv * head_dim);
    cu_launch(c, cu_div_up(n, 256), 256, 0, k_rope_kv, q, ldq, k, v, ldkv, pos, rows, n_head, n_head_kv, head_dim, rk,
              p->freq_factors, (__half *)kc, (__half *)vc);
    LAUNCH_CHECK(c, "rope_kv_store");
    return 0;
}
