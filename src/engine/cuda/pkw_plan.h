/* pkw_plan.h — how pkw.cu splits each weight matrix over the blocks of its
 * grid and sizes the shared-memory regions those rows are copied into:
 * plain integer arithmetic, shared by the kernel (device), its host setup
 * and a CPU unit test (tests/unit/test_pkw_plan.c), so the invariants the
 * copies rely on are checked in CI, where no GPU runs them.
 *
 * A matrix is R rows of nb1 bytes from a 16-byte aligned base. Block b of
 * nblk owns the contiguous rows [b*R/nblk, (b+1)*R/nblk). Its copy takes
 * the 16-byte chunks of [a0, a1) = [g0 & ~15, g1 & ~15) (g0, g1: its rows'
 * first and one-past-last byte; the bytes before g0 belong to earlier rows
 * of the same tensor) and, when g1 > a1, one more 16-byte chunk at a1 that
 * reads only g1 - a1 bytes. Row r lands at region + (g0 & 15) + (r - r0) *
 * nb1. */
#ifndef LLORCH_CUDA_PKW_PLAN_H
#define LLORCH_CUDA_PKW_PLAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define PW_PLAN_FN static __host__ __device__ __forceinline__
#else
#define PW_PLAN_FN static inline
#endif

/* block b's rows [*r0, *r1) of R over nblk blocks (at most ceil(R/nblk)) */
PW_PLAN_FN void pw_plan_range(long long b, long long nblk, int R, int *r0, int *r1) {
    *r0 = (int)(b * R / nblk);
    *r1 = (int)((b + 1) * R / nblk);
}

/* the copy of rows [r0, r1) of a matrix at base: *a0, *a1 (16-byte chunks
 * between them) and *g1 (the tail g1 - a1 < 16 bytes); returns the bytes it
 * writes into the region: a1 - a0, plus 16 when there is a tail */
PW_PLAN_FN size_t pw_plan_copy(uintptr_t base, size_t nb1, int r0, int r1, uintptr_t *a0, uintptr_t *a1,
                               uintptr_t *g1) {
    const uintptr_t g0 = base + (uintptr_t)r0 * nb1;
    *g1 = g0 + (uintptr_t)(r1 - r0) * nb1;
    *a0 = g0 & ~(uintptr_t)15;
    *a1 = *g1 & ~(uintptr_t)15;
    return (size_t)(*a1 - *a0) + (*g1 > *a1 ? 16 : 0);
}

/* the region every block of nblk needs for a matrix of R rows of at most
 * nb1 bytes: ceil(R/nblk) rows, 16 bytes for the alignment offset and the
 * tail chunk, a multiple of 16 (pw_plan_copy never writes more) */
PW_PLAN_FN size_t pw_plan_region(int R, int nblk, size_t nb1) {
    const size_t most = (size_t)((R + nblk - 1) / nblk) * nb1 + 16;
    return (most + 15) & ~(size_t)15;
}

#undef PW_PLAN_FN
#endif
