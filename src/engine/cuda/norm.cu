/* norm.cu — RMSNorm: y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * g.
 * One block per row (1024 threads when there are few rows, as in decode,
 * where the single block's latency is the cost; 256 otherwise); the sum of
 * squares is reduced in fp32 through warp shuffles and a shared array. x == y
 * is allowed (each element is read before the barrier and written after it
 * by the same thread).
 *
 * Fused quantization (decode, opt-in: LLORCH_CUDA_NORM_Q=1; it measured
 * 1-3% slower end to end than the separate quantization launch it saves, on
 * both models, H100): for rows <= CU_MMV_MAX_ROWS and dim % 32 == 0
 * the kernel also writes y quantized to Q8_1 into the mat-vec activation
 * scratch and arms the cache for y (common.cuh), so the q/k/v or gate/up
 * mat-vecs that follow skip their quantization launch. The q are computed
 * from the same fp32 values that are stored in y, with the same rounding
 * (cu_q8_group_v), so they equal what the separate quantization would make.
 * Decode rows take the split kernel below (LLORCH_CUDA_NORM_SPLIT=0 or
 * LLORCH_NO_FUSED=1: the single-block one). */
#include "common.cuh"

template <int QUANT>
__global__ void k_rmsnorm(const float *x, const float *g, float *y, int dim, float eps, int8_t *aq, float *ad,
                          float *as) {
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
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const float v = g ? xr[i] * scale * g[i] : xr[i] * scale;
        yr[i] = v;
        /* dim % 32 == 0 and blockDim % 32 == 0: a warp holds one whole 32-group, lane = element */
        if (QUANT) {
            const int64_t gi = (int64_t)r * (dim / 32) + i / 32;
            cu_q8_group_v(v, threadIdx.x & 31, aq + (int64_t)r * dim + (i & ~31), ad + gi, as + gi);
        }
    }
}

/* Split decode variant: grid (ceil(dim/256), rows), 256 threads. Every block
 * sums the squares of the WHOLE row (an L2 re-read of at most a few tens of
 * KB, in the same order in every block, so every block gets the same scale)
 * and then normalizes (and quantizes) only its own 256-element slice. The
 * single-block kernel above serializes a 4096-wide row's normalization and
 * 128 group quantizations on one SM (Llama-2: ~9 us per call in profile
 * mode); split, each block does 8 groups. Not for x == y (a block would
 * overwrite what another still sums). */
template <int QUANT>
__global__ void __launch_bounds__(256)
k_rmsnorm_split(const float *x, const float *g, float *y, int dim, float eps, int8_t *aq, float *ad, float *as) {
    cu_pdl_begin();
    const int r = blockIdx.y, tid = threadIdx.x;
    const float *xr = x + (int64_t)r * dim;
    __shared__ float part[8];
    const float scale = cu_rms_scale256(xr, dim, eps, part);
    const int i = blockIdx.x * 256 + tid;
    if (i >= dim) return; /* dim % 32 == 0: whole warps leave together */
    const float v = g ? xr[i] * scale * g[i] : xr[i] * scale;
    y[(int64_t)r * dim + i] = v;
    if (QUANT) {
        const int64_t gi = (int64_t)r * (dim / 32) + i / 32;
        cu_q8_group_v(v, tid & 31, aq + (int64_t)r * dim + (i & ~31), ad + gi, as + gi);
    }
}

void cu_rmsnorm(cu_ctx *c, const float *x, const float *g, float *y, int rows, int dim, float eps) {
    if (rows <= 0 || dim <= 0) return;
    const int threads = rows <= 8 && dim >= 2048 ? 1024 : rows <= 8 && dim >= 512 ? 512 : 256;
    const int quant = c->norm_q && !c->aq_off && rows <= CU_MMV_MAX_ROWS && dim % 32 == 0 && dim <= CU_ACT_MAX_K;
    const int split = c->norm_split && rows <= CU_MMV_MAX_ROWS && dim % 32 == 0 && dim >= 512 && x != y;
    if (split) {
        const dim3 grid(cu_div_up(dim, 256), rows);
        if (quant) cu_launch(c, grid, 256, 0, k_rmsnorm_split<1>, x, g, y, dim, eps, c->act_q, c->act_d, c->act_s);
        else cu_launch(c, grid, 256, 0, k_rmsnorm_split<0>, x, g, y, dim, eps, (int8_t *)NULL, (float *)NULL,
                       (float *)NULL);
    } else if (quant) cu_launch(c, rows, threads, 0, k_rmsnorm<1>, x, g, y, dim, eps, c->act_q, c->act_d, c->act_s);
    else cu_launch(c, rows, threads, 0, k_rmsnorm<0>, x, g, y, dim, eps, (int8_t *)NULL, (float *)NULL, (float *)NULL);
    if (LAUNCH_CHECK(c, "rmsnorm")) return;
    c->aq_x = NULL;
    if (quant) { /* the scratch now holds y as Q8_1 (mmv.cu's cache) */
        c->aq_x = y;
        c->aq_rows = rows;
        c->aq_K = dim;
        c->aq_vdt = VDT_Q8_1;
    }
}
