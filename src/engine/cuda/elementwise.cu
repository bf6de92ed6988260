/* elementwise.cu — bias add, residual add, SwiGLU, and the fp16 KV store.
 * All memory-bound one-pass kernels: one thread per element. */
#include "common.cuh"

__global__ void k_add_bias(float *y, int ld, const float *b, int rows, int dim) {
    cu_pdl_begin();
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (int64_t)rows * dim) return;
    const int r = (int)(t / dim), i = (int)(t % dim);
    y[(int64_t)r * ld + i] += b[i];
}

__global__ void k_add(float *y, const float *a, int64_t n) {
    cu_pdl_begin();
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < n) y[t] += a[t];
}

/* silu(g) * u = g / (1 + e^-g) * u */
__global__ void k_swiglu(const float *gate, const float *up, int ld_in, float *out, int rows, int dim) {
    cu_pdl_begin();
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (int64_t)rows * dim) return;
    const int r = (int)(t / dim), i = (int)(t % dim);
    const float g = gate[(int64_t)r * ld_in + i], u = up[(int64_t)r * ld_in + i];
    out[t] = g / (1.0f + expf(-g)) * u;
}

/* k_cache/v_cache [n_ctx][kv_dim] fp16; row pos[r] = k[r] / v[r] (round to nearest even) */
__global__ void k_kv_store(__half *kc, __half *vc, const float *k, const float *v, int ld, const int32_t *pos,
                           int rows, int kv_dim) {
    cu_pdl_begin();
    const int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (int64_t)rows * kv_dim) return;
    const int r = (int)(t / kv_dim), i = (int)(t % kv_dim);
    const int64_t dst = (int64_t)pos[r] * kv_dim + i;
    kc[dst] = __float2half_rn(k[(int64_t)r * ld + i]);
    vc[dst] = __float2half_rn(v[(int64_t)r * ld + i]);
}

void cu_add_bias(cu_ctx *c, float *y, int ld, const float *b, int rows, int dim) {
    const int64_t n = (int64_t)rows * dim;
    if (n <= 0) return;
    cu_launch(c, cu_div_up(n, 256), 256, 0, k_add_bias, y, ld, b, rows, dim);
    LAUNCH_CHECK(c, "add_bias");
}

void cu_add(cu_ctx *c, float *y, const float *a, int64_t n) {
    if (n <= 0) return;
    cu_launch(c, cu_div_up(n, 256), 256, 0, k_add, y, a, n);
    LAUNCH_CHECK(c, "add");
}

void cu_swiglu(cu_ctx *c, const float *gate, const float *up, int ld_in, float *out, int rows, int dim) {
    const int64_t n = (int64_t)rows * dim;
    if (n <= 0) return;
    cu_launch(c, cu_div_up(n, 256), 256, 0, k_swiglu, gate, up, ld_in, out, rows, dim);
    LAUNCH_CHECK(c, "swiglu");
}

void cu_kv_store(cu_ctx *c, uint16_t *kc, uint16_t *vc, const float *k, const float *v, int ld, const int32_t *pos,
                 int rows, int kv_dim) {
    const int64_t n = (int64_t)rows * kv_dim;
    if (n <= 0) return;
    cu_launch(c, cu_div_up(n, 256), 256, 0, k_kv_store, (__half *)kc, (__half *)vc, k, v, ld, pos, rows, kv_dim);
    LAUNCH_CHECK(c, "kv_store");
}
