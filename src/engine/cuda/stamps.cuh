/* stamps.cuh — step stamps (LLORCH_CUDA_STAMPS=1; diagnostics only): where
 * a decode step's GPU time goes between and inside its kernels, measured in
 * place (ncu serializes kernels and cannot see the gaps between them).
 * The persistent layer kernel (pkw.cu) and the head (mmv_tall_reg.cu) stamp
 * %globaltimer into a ring indexed by a device step counter that the head's
 * last block advances: the earliest block entry and the earliest time past
 * the PDL wait of each kernel (atomicMin), and each kernel's end (the layer
 * kernel: the latest block out, atomicMax; the head: its last block). The
 * host prints the medians at context destruction (stamps.cu). Each stamp
 * costs thread 0 two dependent L2 round trips (~1 us): the stamps slow
 * the kernels' starts a little, so compare steps with stamps on only
 * against steps with stamps on. */
#pragma once

#define CU_ST_STEPS 4096
/* HD_NORM / HD_LOOP: the head's blocks past their norm and quantization of
 * x, and out of their mat-vec loop (earliest; *_LAST the latest). The head
 * takes those times into registers and stamps them after its loop with
 * reductions nothing waits for, so they do not delay its loop */
enum { CU_ST_PW_IN = 0, CU_ST_PW_GO, CU_ST_HD_IN, CU_ST_HD_GO, CU_ST_PW_PRE, CU_ST_HD_NORM, CU_ST_HD_LOOP, CU_ST_NMIN };
enum { CU_ST_PW_END = 0, CU_ST_HD_END, CU_ST_PW_IN_LAST, CU_ST_HD_NORM_LAST, CU_ST_HD_LOOP_LAST, CU_ST_NMAX };
struct cu_stamps {
    unsigned long long mn[CU_ST_STEPS][CU_ST_NMIN]; /* all ones before the first stamp */
    unsigned long long mx[CU_ST_STEPS][CU_ST_NMAX]; /* zero before */
    unsigned step;
};

__device__ __forceinline__ unsigned long long cu_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
/* by thread 0 of a block, after the kernel's PDL wait (the step counter is
 * the previous head's, complete from there) */
__device__ __forceinline__ void cu_stamp_min(cu_stamps *st, int k, unsigned long long t) {
    if (st && threadIdx.x == 0) atomicMin(&st->mn[__ldcg(&st->step) % CU_ST_STEPS][k], t);
}
__device__ __forceinline__ void cu_stamp_max(cu_stamps *st, int k, unsigned long long t) {
    if (st && threadIdx.x == 0) atomicMax(&st->mx[__ldcg(&st->step) % CU_ST_STEPS][k], t);
}
/* the head's last block, after its last stamp: the next step's ring slot */
__device__ __forceinline__ void cu_stamp_next(cu_stamps *st) {
    if (st && threadIdx.x == 0) {
        __threadfence();
        atomicAdd(&st->step, 1u);
    }
}
