/* rope.cuh — the rotary-embedding angle of rope.cu (ggml semantics), shared
 * with persist.cu: rope_k holds the per-model parameters, rope_cs the cos
 * and sin of one pair at one position, cu_rope_params (rope.cu, host) fills
 * rope_k from an eng_rope. */
#ifndef LLORCH_CUDA_ROPE_CUH
#define LLORCH_CUDA_ROPE_CUH

#include <math.h>

#include "common.cuh"

struct rope_k {
    int n_rot, neox;
    double theta_scale; /* base^(-2/n_rot) */
    float freq_scale, ext_factor, attn_factor;
    float corr0, corr1;
};

/* cos and sin (times the magnitude scale) of pair i at position ps */
__device__ __forceinline__ void rope_cs(const rope_k &p, int32_t ps, int i, const float *ff, float *c_out,
                                        float *s_out) {
    double theta_extrap = (double)ps * pow(p.theta_scale, (double)i);
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
    *c_out = (float)(cs * mscale);
    *s_out = (float)(sn * mscale);
}

rope_k cu_rope_params(const eng_rope *p);

#endif
