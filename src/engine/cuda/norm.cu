/* norm.cu — RMSNorm: y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * g.
 * One block per row (1024 threads when there are few rows, as in decode,
 * where the single block's latency is the cost; 256 otherwise); the sum of
 * squares is reduced in fp32 through warp shuffles and a shared array. x == y
 * is allowed (each element is read before the barrier and written after it
 * by the same thread). */
#include "common.cuh"

__global__ void k_rmsnorm(const float *x, const float *g, float *y, int dim, float eps) {
    cu_pdl_begin();
    const int r = blockIdx.x;
    const float *xr = x + (int64_t)r * dim;
    float *yr = y + (int64_t)r * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    __shared__ float part[32];
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0) part[0] = v;
    }
    __syncthreads();
    const float scale = 1.0f / sqrtf(part[0] / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = g ? xr[i] * scale * g[i] : xr[i] * scale;
}

void cu_rmsnorm(cu_ctx *c, const float *x, const float *g, float *y, int rows, int dim, float eps) {
    if (rows <= 0 || dim <= 0) return;
    const int threads = rows <= 8 && dim >= 2048 ? 1024 : rows <= 8 && dim >= 512 ? 512 : 256;
    cu_launch(c, rows, threads, 0, k_rmsnorm, x, g, y, dim, eps);
    LAUNCH_CHECK(c, "rmsnorm");
}
