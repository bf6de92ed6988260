/* bulk.cuh — Hopper's bulk-copy (TMA) engine and mbarriers as pkw.cu and
 * mmv_tall.cu use them: ONE thread copies a 16-byte-aligned byte range of
 * global memory (a multiple of 16 bytes) into shared memory; the copy
 * counts its bytes on an mbarrier whose phase completes when the bytes the
 * thread announced (cu_bulk_expect) have all arrived; the consumers wait for
 * that phase by its parity. An mbarrier here has one arrival per phase (the
 * issuing thread's). sm_90 only (the CUDA build's only target). */
#ifndef LLORCH_CUDA_BULK_CUH
#define LLORCH_CUDA_BULK_CUH

#include <stdint.h>

/* the shared-state-space address of a shared-memory pointer */
__device__ __forceinline__ unsigned cu_sa(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }

/* thread 0 of the block: n mbarriers of one arrival each, visible to the
 * async proxy; the caller then synchronizes the block */
__device__ __forceinline__ void cu_mbar_init(unsigned long long *mb, int n) {
    for (int i = 0; i < n; i++) asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(cu_sa(&mb[i])) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

/* The issuing thread, before its copies into a region: the block's generic
 * reads of that region (earlier, ordered by a CTA barrier) before the async
 * proxy's writes; then its arrival, announcing `bytes` to come. Its own
 * plain shared stores before this are published by the arrival (release). */
__device__ __forceinline__ void cu_bulk_expect(unsigned mbar, unsigned bytes) {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mbar), "r"(bytes) : "memory");
}

/* n bytes global src → shared sdst (both 16-byte aligned, n % 16 == 0), on mbar */
__device__ __forceinline__ void cu_bulk_g2s(unsigned sdst, uintptr_t src, unsigned n, unsigned mbar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(sdst),
                 "l"(src), "r"(n), "r"(mbar)
                 : "memory");
}

/* until the phase of mbar with this parity has completed */
__device__ __forceinline__ void cu_mbar_wait(unsigned mbar, unsigned parity) {
    unsigned ok = 0;
    while (!ok)
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(ok)
                     : "r"(mbar), "r"(parity)
                     : "memory");
}

#endif
