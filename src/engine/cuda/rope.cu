/* rope.cu — rotary position embedding, ggml semantics (both orderings,
 * freq_factors, YaRN). In place on x[r][h*head_dim + d] (leading dim ld),
 * position pos[r] read from device memory.
 *
 * Angles are computed in double: positions reach 10^5 and fast-math sinf/cosf
 * lose accuracy far from zero, while double sincos costs nothing at this size
 * (rows * n_head * n_rot/2 threads). */
#include <math.h>

#include "common.cuh"

struct rope_k {
    int n_rot, neox;
    double theta_scale; /* base^(-2/n_rot) */
    float freq_scale, ext_factor, attn_factor;
    float corr0, corr1;
};

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
    double theta_extrap = (double)pos[r] * pow(p.theta_scale, (double)i);
    if (ff) theta_extrap /= (double)ff[i];
    const double theta_interp = (double)p.freq_scale * theta_extrap;
    double theta = theta_interp;
    double mscale = p.attn_factor;
    if (p.ext_factor != 0.0f) {
        const double y = ((double)i - p.corr0) / fmax(0.001, (double)p.corr1 - p.corr0);
        const double ramp = (1.0 - fmin(1.0, fmax(0.0, y))) * p.ext_factor;
        theta = theta_interp * (1.0 - ramp) + theta_extrap * ramp;
        mscale *= 1.0 + 0.1 * log(1.0 / (double)p.freq_scale);
    }
    double sn, cs;
    sincos(theta, &sn, &cs);
    const float c = (float)(cs * mscale), s = (float)(sn * mscale);
    float *xh = x + (int64_t)r * ld + (int64_t)h * head_dim;
    const int a = p.neox ? i : i0, b = p.neox ? i + half : i0 + 1;
    const float x0 = xh[a], x1 = xh[b];
    xh[a] = x0 * c - x1 * s;
    xh[b] = x0 * s + x1 * c;
}

/* ggml_rope_yarn_corr_dim */
static float corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2.0f * (float)M_PI)) / (2.0f * logf(base));
}

void cu_rope(cu_ctx *c, float *x, int ld, const int32_t *pos, int rows, int n_head, int head_dim, const eng_rope *p) {
    if (rows <= 0 || n_head <= 0 || p->n_rot <= 0) return;
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
    const int64_t n = (int64_t)rows * n_head * (p->n_rot / 2);
    cu_launch(c, cu_div_up(n, 256), 256, 0, k_rope, x, ld, pos, rows, n_head, head_dim, k, p->freq_factors);
    LAUNCH_CHECK(c, "rope");
}
