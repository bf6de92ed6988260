/* pw_dot_bench.cu — diagnostics: pkw.cu's dot phases alone. Every SM runs
 * one block of 512 threads whose shared memory holds a phase's rows (the
 * shapes of one block's share of a layer, e.g. Qwen2.5-0.5B's D: 37 gate/up
 * row pairs of 896 Q5_0; E: 7 down rows of 4,864 Q4_K or Q6_K) and the
 * activation, and runs the phase `reps` times. It answers what the
 * in-kernel timers cannot: how long the dots take with nothing else in the
 * kernel (no hand-offs, no copies, a small code footprint), and how a
 * variant compares on identical data. Weights are pseudo-random bytes with
 * the scales set to 2^-6, the activation pseudo-random in [-1, 1].
 * test_cuda_perf runs it (LLORCH_BENCH_KERNELS=pwdot). */
#include <stdio.h>

#include "bulk.cuh"
#include "pw_dot.cuh"

__device__ __forceinline__ uint32_t pwb_hash(uint32_t x) {
    x ^= x >> 16, x *= 0x7feb352du, x ^= x >> 15, x *= 0x846ca68bu, x ^= x >> 16;
    return x;
}

/* mode 0: pw_units + pw_dotf (pkw.cu's code);
 * mode 1: pw_gu_mma (paired Q5_0 only); mode 2: pw_rows_mma (single rows; wcap > 0 caps the warps per tile), 3: the same
 * with the tile inlined; 4: nr dependent mma per warp alone (the tensor
 * cores' latency); 5 / 6: a 2 us spin then mode 1, with (5) or without an
 * mma before the spin (does an idle tensor core start slow?); 7: mode 1
 * with the int8 activation (pw_xq) and the u8 x s8 mma; 8: mode 1 while a
 * 40 KB bulk copy lands in the block's shared memory; 9: pw_units +
 * pw_dot8 (rows or pairs against the int8 activation, pw_q8_stage: the
 * decode kernel's default). two: gate/up pairs (rows nr of
 * each) or single rows. ns[block] = nanoseconds per rep; out = block 0's
 * results of the first rep, (a, b) per row. */
__global__ void __launch_bounds__(512, 1) k_pwdot_bench(int mode, int two, int type, int nr, int K, int nb1, int qk,
                                                        int bytes, int scale_at, int wcap, int reps,
                                                        unsigned long long *ns, float2 *out, const uint8_t *csrc,
                                                        unsigned cbytes) {
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float2 red[16 * 8];
    __shared__ float sx[256]; /* K <= 8192 (host check) */
    float *const xs = (float *)smem;
    __half *const xh = (__half *)(xs + K);
    uint8_t *const w = (uint8_t *)(xh + K);
    const int nrow = two ? 2 * nr : nr, nbytes = nrow * nb1;
    for (int i = threadIdx.x; i < K; i += blockDim.x)
        xs[i] = (float)(pwb_hash(0x9e3779b9u + i) & 0xffff) / 32768.0f - 1.0f;
    for (int i = threadIdx.x; i < nbytes; i += blockDim.x) w[i] = (uint8_t)pwb_hash(i);
    __syncthreads();
    for (int i = threadIdx.x; i < nbytes / bytes; i += blockDim.x) { /* the scale of every block: 2^-6 */
        w[i * bytes + scale_at] = 0x00;
        w[i * bytes + scale_at + 1] = 0x24;
        if (type == QT_Q4_K || type == QT_Q5_K) w[i * bytes + 2] = 0x00, w[i * bytes + 3] = 0x24;
    }
    (void)qk;
    __syncthreads();
    pw_xq xq8;
    pw_x8 x8 = pw_x8_at(xh, K); /* mode 9: K + K / 2 bytes of the 2K */
    if (mode == 7) xq8 = pw_xq_stage(xs, K, reinterpret_cast<int8_t *>(xh)); /* K + K / 4 bytes of the 2K */
    else if (mode == 9) x8 = pw_q8_stage(xs, K, xh);
    else pw_xh_sx_stage(xs, K, xh, sx);
    __syncthreads();
    const uint8_t *const wu = w + (size_t)nr * nb1;
    /* mode 8: a bulk copy of cbytes into shared memory after the rows,
     * issued as each rep starts and awaited as it ends (the decode kernel's
     * refills land while a phase computes) */
    __shared__ __align__(8) unsigned long long cmb[1];
    uint8_t *const cdst = w + (((size_t)nbytes + 15) & ~(size_t)15);
    if (threadIdx.x == 0) cu_mbar_init(cmb, 1);
    __syncthreads();
    unsigned long long t0 = 0;
    for (int rep = -1; rep < reps; rep++) {
        if (rep == 0) {
            __syncthreads();
            t0 = pk_now();
        }
        const bool keep = rep == -1 && blockIdx.x == 0;
        auto done = [&](int u, float2 d) {
            if (keep) out[u] = d;
        };
        if (mode == 8 && threadIdx.x == 0) {
            cu_bulk_expect(cu_sa(cmb), cbytes);
            cu_bulk_g2s(cu_sa(cdst), (uintptr_t)(csrc + (size_t)blockIdx.x * cbytes), cbytes, cu_sa(cmb));
        }
        if (mode == 7) {
            pw_gu_mma(nr, w, wu, nb1, K, xq8, red, done);
        } else if (mode == 9 && two) {
            pw_units(nr, red, [&](int u, int tt, int nt) {
                return pw_dot8<1, PW_FMT_Q4KM>(type, w + (size_t)u * nb1, wu + (size_t)u * nb1, K, tt, nt, x8);
            }, done);
        } else if (mode == 9) {
            pw_units(nr, red, [&](int u, int tt, int nt) {
                return pw_dot8<0, PW_FMT_Q4KM>(type, w + (size_t)u * nb1, NULL, K, tt, nt, x8);
            }, done);
        } else if (mode == 4) { /* nr dependent mma per warp on registers, nothing else */
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const uint32_t a = 0x3c003c00u + (threadIdx.x & 1);
            for (int i = 0; i < nr; i++) pw_mma16816(c, a, a, a, a, a, a);
            if (keep && threadIdx.x == 0) out[0] = make_float2(c[0], c[1]);
        } else if (mode == 5 || mode == 6) { /* a 2 us wait (spin), then the gate/up dots; 5: an mma before the wait */
            if (mode == 5) pw_mma_warm();
            const unsigned long long t = pk_now();
            while (pk_now() - t < 2000ull) {
            }
            pw_gu_mma(nr, w, wu, nb1, K, xh, red, done);
        } else if (mode == 1 || mode == 8) {
            pw_gu_mma(nr, w, wu, nb1, K, (const __half *)xh, red, done);
        } else if (mode == 3) {
            pw_rows_mma<true>(type, nr, w, nb1, K, xh, sx, reinterpret_cast<float *>(red), wcap ? wcap : 16,
                              [&](int u, float d) { done(u, make_float2(d, 0.0f)); });
        } else if (mode == 2) {
            pw_rows_mma(type, nr, w, nb1, K, xh, sx, reinterpret_cast<float *>(red), wcap ? wcap : 16,
                        [&](int u, float d) { done(u, make_float2(d, 0.0f)); });
        } else if (two) {
            pw_units(nr, red, [&](int u, int tt, int nt) {
                return pw_dotf<1, PW_FMT_Q4KM>(type, w + (size_t)u * nb1, wu + (size_t)u * nb1, K, tt, nt, xs);
            }, done);
        } else {
            pw_units(nr, red, [&](int u, int tt, int nt) {
                return pw_dotf<0, PW_FMT_Q4KM>(type, w + (size_t)u * nb1, NULL, K, tt, nt, xs);
            }, done);
        }
        if (mode == 8 && threadIdx.x == 0) cu_mbar_wait(cu_sa(cmb), (unsigned)(rep + 1) & 1u);
        __syncthreads();
    }
    if (threadIdx.x == 0) ns[blockIdx.x] = (pk_now() - t0) / (unsigned long long)reps;
}

static int pwb_cmp(const void *a, const void *b) {
    const unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}

/* one configuration: *ns_med = the median block's ns per rep; out (host,
 * nr float2) = block 0's results. Returns 0, or -1 on a CUDA error or an
 * unsupported type. */
extern "C" int llorch_cuda_pwdot_bench(int mode, int two, int type, int nr, int K, int wcap, int reps,
                                       double *ns_med, float *out) {
    int qk, bytes, scale_at;
    switch (type) {
    case QT_Q5_0: qk = 32, bytes = 22, scale_at = 0; break;
    case QT_Q8_0: qk = 32, bytes = 34, scale_at = 0; break;
    case QT_Q4_K: qk = 256, bytes = 144, scale_at = 0; break;
    case QT_Q5_K: qk = 256, bytes = 176, scale_at = 0; break;
    case QT_Q6_K: qk = 256, bytes = 210, scale_at = 208; break;
    default: return -1;
    }
    const unsigned cbytes = mode == 8 ? 40960u : 0u;
    if (K % qk || K > 8192 || (mode == 1 && (type != QT_Q5_0 || !two)) || (mode >= 2 && mode <= 3 && (two || !pw_mq_type(type))) ||
        (mode >= 5 && mode <= 8 && (type != QT_Q5_0 || !two)) || (mode == 9 && !pw_k8_type(type)))
        return -1;
    const int nb1 = K / qk * bytes;
    const size_t smem = (size_t)K * 6 + (((size_t)(two ? 2 : 1) * nr * nb1 + 15) & ~(size_t)15) + cbytes;
    int dev = 0, nsm = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev);
    unsigned long long *dns = NULL;
    float2 *dout = NULL;
    uint8_t *csrc = NULL;
    int rc = -1;
    if (cudaFuncSetAttribute(k_pwdot_bench, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess ||
        cudaMalloc(&dns, sizeof(*dns) * nsm) != cudaSuccess || cudaMalloc(&dout, sizeof(float2) * nr) != cudaSuccess ||
        (cbytes && cudaMalloc(&csrc, (size_t)cbytes * nsm) != cudaSuccess))
        goto out;
    k_pwdot_bench<<<nsm, 512, smem>>>(mode, two, type, nr, K, nb1, qk, bytes, scale_at, wcap, reps, dns, dout, csrc, cbytes);
    if (cudaDeviceSynchronize() != cudaSuccess) goto out;
    {
        unsigned long long *h = (unsigned long long *)malloc(sizeof(*h) * nsm);
        if (!h) goto out;
        cudaMemcpy(h, dns, sizeof(*h) * nsm, cudaMemcpyDeviceToHost);
        qsort(h, (size_t)nsm, sizeof(*h), pwb_cmp);
        *ns_med = (double)h[nsm / 2];
        free(h);
        if (cudaMemcpy(out, dout, sizeof(float2) * nr, cudaMemcpyDeviceToHost) != cudaSuccess) goto out;
    }
    rc = 0;
out:
    (void)cudaGetLastError();
    cudaFree(dns);
    cudaFree(dout);
    cudaFree(csrc);
    return rc;
}
