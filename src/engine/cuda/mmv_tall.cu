/* mmv_tall.cu — one-row mat-vec of a tall quantized matrix (the vocabulary
 * projection: Qwen2.5-0.5B's 896 x 151,936 Q8_0, 145 MB per token) streamed
 * through shared memory by the bulk-copy (TMA) engine.
 *
 * Why: mmv.cu's v1 (a warp per row, 2-4 byte loads) ran this shape at ~1.8
 * TB/s on H100 (~79 us of a ~770 us Qwen decode step): each warp has a few
 * small loads in flight. Here every block owns a contiguous range of rows
 * (one contiguous byte range) and streams it in chunks of whole rows into a
 * ring of MT_STAGES shared-memory stages: one thread issues each chunk as one
 * bulk copy (completion in bytes on the stage's mbarrier), so up to
 * MT_STAGES chunks per block are in flight while the warps compute the
 * previous one. The first chunks are requested before the PDL wait
 * (weights depend on no kernel).
 *
 * Shapes: x quantized by cu_mmv (act_q/d/s, the format's vec_dot_type), the
 * same integer dots as v1 (qfmt::dot), one warp per row, the same float
 * association per lane as v1 (lane u, u + 32, ...) and the same warp
 * reduction, so y equals v1's (test_matmul_tall checks it bit for bit).
 * Copies: see mt_issue; the bulk-copy helpers are bulk.cuh's.
 * Status: opt-in (LLORCH_CUDA_MMV_TALL=1). Correct (tests/gpu test_matmul_tall,
 * memcheck and racecheck clean) but SLOWER than v1 in the model on H100:
 * Qwen2.5-0.5B tg128 1,250 / 1,256 with it against 1,318 / 1,301 with v1
 * (llorch bench, one call, alternating), i.e. ~35 us more per token than
 * v1's ~79 us. Not profiled yet; suspects: 17-row chunks over 8 warps (3
 * rounds, the last with one row), the CTA barrier per chunk, and only 16
 * warps per SM for the dots' latency chains. */
#include <stdlib.h>

#include "bulk.cuh"
#include "common.cuh"
#include "quants.cuh"

#define MT_THREADS 256
#define MT_WARPS (MT_THREADS / 32)
#define MT_STAGES 4
#define MT_STAGE_BYTES (16 * 1024) /* whole rows per stage, at most this (+ 32 for alignment and tail) */

/* thread 0: rows [cr0, cr1) into stage (at its byte offset g0 & 15), on
 * mbar. The bulk copy takes whole 16-byte lines: it ends at the first line
 * boundary after the chunk, which is still inside the tensor (the next rows)
 * except at the tensor's end; there the last < 16 bytes are copied by this
 * thread with plain loads and stores before its arrival, which publishes
 * them (release) to the waiting threads (acquire). */
__device__ __forceinline__ void mt_issue(const uint8_t *w, size_t nb1, int ne1, int cr0, int cr1, unsigned char *stage,
                                         unsigned mbar) {
    const uintptr_t g0 = (uintptr_t)(w + (size_t)cr0 * nb1), g1 = (uintptr_t)(w + (size_t)cr1 * nb1);
    const uintptr_t end = (uintptr_t)(w + (size_t)ne1 * nb1), a0 = g0 & ~(uintptr_t)15;
    uintptr_t a1 = (g1 + 15) & ~(uintptr_t)15;
    if (a1 > end) {
        a1 = g1 & ~(uintptr_t)15;
        for (uintptr_t i = a1; i < g1; i++) stage[i - a0] = *(const uint8_t *)i;
    }
    const unsigned n = (unsigned)(a1 - a0);
    cu_bulk_expect(mbar, n);
    if (n) cu_bulk_g2s(cu_sa(stage), a0, n, mbar);
}

template <int T>
__global__ void __launch_bounds__(MT_THREADS) k_mmv_tall(const uint8_t *w, size_t nb1, int nblk, int ne1, int rpc,
                                                         unsigned stride, const int8_t *aq, const float *ad,
                                                         const float *as, float *y) {
    typedef qfmt<T> F;
    extern __shared__ __align__(16) unsigned char sm[];
    __shared__ __align__(8) unsigned long long mb[MT_STAGES];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = (int)((long long)blockIdx.x * ne1 / gridDim.x);
    const int r1 = (int)((long long)(blockIdx.x + 1) * ne1 / gridDim.x);
    const int nch = (r1 - r0 + rpc - 1) / rpc;
    if (threadIdx.x == 0) {
        cu_mbar_init(mb, MT_STAGES);
        for (int ch = 0; ch < nch && ch < MT_STAGES; ch++)
            mt_issue(w, nb1, ne1, r0 + ch * rpc, min(r1, r0 + (ch + 1) * rpc), sm + (size_t)ch * stride, cu_sa(&mb[ch]));
    }
    __syncthreads();
    cu_pdl_begin(); /* x's quantization (the previous kernel) is complete from here */
    const int units = nblk * F::NSUB, K32 = nblk * (F::QK / 32);
    (void)K32;
    for (int ch = 0; ch < nch; ch++) {
        const int st = ch % MT_STAGES;
        const unsigned par = (unsigned)(ch / MT_STAGES) & 1u;
        cu_mbar_wait(cu_sa(&mb[st]), par);
        const int cr0 = r0 + ch * rpc, cr1 = min(r1, cr0 + rpc);
        const unsigned char *base = sm + (size_t)st * stride + ((uintptr_t)(w + (size_t)cr0 * nb1) & 15);
        for (int r = warp; r < cr1 - cr0; r += MT_WARPS) {
            const uint8_t *wr = base + (size_t)r * nb1;
            float acc = 0.0f;
#pragma unroll 4
            for (int u = lane; u < units; u += 32) {
                const int blk = u / F::NSUB, s = u % F::NSUB;
                const int g = blk * (F::QK / 32);
                acc += F::dot(wr + (size_t)blk * F::BYTES, s, aq + (size_t)blk * F::QK, ad + g, as + g);
            }
            acc = warp_sum(acc);
            if (lane == 0) y[cr0 + r] = acc;
        }
        __syncthreads(); /* every warp is done with stage st */
        if (threadIdx.x == 0 && ch + MT_STAGES < nch) {
            const int nc = ch + MT_STAGES;
            mt_issue(w, nb1, ne1, r0 + nc * rpc, min(r1, r0 + (nc + 1) * rpc), sm + (size_t)st * stride, cu_sa(&mb[st]));
        }
    }
}

/* 0 when launched; -1 when not taken (switch off, alignment, a row larger
 * than a stage, or the shared memory attribute refused): v1 runs instead */
template <int T>
static int mt_launch(cu_ctx *c, const eng_w *w, float *y) {
    static int attr_ok = -1; /* per instantiation: the dynamic shared memory limit raised once */
    const size_t nb1 = w->nb1;
    if (nb1 > MT_STAGE_BYTES || ((uintptr_t)w->data & 15)) return -1;
    const int rpc = (int)(MT_STAGE_BYTES / nb1);
    const unsigned stride = (unsigned)(((size_t)rpc * nb1 + 32 + 15) & ~(size_t)15);
    const size_t smem = (size_t)MT_STAGES * stride;
    if (attr_ok < 0) {
        /* the most any row size asks (rpc * nb1 <= MT_STAGE_BYTES): raised
         * once per instantiation, so a later matrix with a larger stride
         * still launches (was the first call's smem: a 1,088-byte-row Q8_0
         * after a 952-byte one failed with "invalid argument") */
        const int most = MT_STAGES * (int)((MT_STAGE_BYTES + 32 + 15) & ~(size_t)15);
        attr_ok = cudaFuncSetAttribute(k_mmv_tall<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, most) ==
                  cudaSuccess;
        if (!attr_ok) (void)cudaGetLastError();
    }
    if (!attr_ok) return -1;
    const int nblk = (int)(w->ne0 / qfmt<T>::QK);
    /* two blocks per SM: 8 stages in flight per SM, 16 warps to compute */
    const unsigned grid = (unsigned)(2 * c->sm_count);
    cu_launch(c, grid, MT_THREADS, smem, k_mmv_tall<T>, (const uint8_t *)w->data, nb1, nblk, (int)w->ne1, rpc, stride,
              (const int8_t *)c->act_q, (const float *)c->act_d, (const float *)c->act_s, y);
    return 0;
}

int cu_mmv_tall(cu_ctx *c, const eng_w *w, float *y) {
    /* opt-in (read at every call: only tall matrices ask, a graph reads it
     * once at capture, and the op test and kernel bench switch it between
     * calls): 1 this file's kernel, 2 / 3 mmv_tall_reg.cu's (Q8_0 only) */
    const char *e = getenv("LLORCH_CUDA_MMV_TALL");
    /* unset: mmv_tall_reg.cu's =3 (the default since session 6: Qwen2.5-0.5B's
     * output mat-vec 51.8 us against v1's 74.8 us, H100); where it declines
     * (not Q8_0, shapes) v1 runs. "0": v1 */
    if (!e || !e[0]) return cu_mmv_tall_reg(c, w, y, 1);
    if ((e[0] != '1' && e[0] != '2' && e[0] != '3') || e[1]) return -1;
    if (e[0] != '1') return cu_mmv_tall_reg(c, w, y, e[0] == '3');
    int rc = -1, handled = 1;
#define MT(T) rc = mt_launch<T>(c, w, y)
    QFMT_DISPATCH(w->type, MT)
#undef MT
    return handled ? rc : -1;
}
