/* argmax.cuh — the greedy choice's reductions, shared by the samplers
 * (sample.cu) and the decode head (mmv_tall_reg.cu): one total order
 * (value desc, id asc; id < 0 = empty) and the many-block pattern where
 * every block writes its (value, id) and the last block to finish merges
 * them. NaN never enters: callers skip it before am_merge. */
#pragma once

/* (v, i) as one unsigned key whose maximum is am_merge's choice: the high
 * word v's bits mapped to an unsigned order (negatives flipped; -0 taken
 * as +0, which compares equal), the low word ~i (among equal values the
 * lower id is the larger key). Any real key is > 0 (0 is "none"). v is
 * not NaN (callers skip it). */
__device__ __forceinline__ unsigned long long am_key(float v, int i) {
    unsigned u = __float_as_uint(v);
    if (!(u << 1)) u = 0u; /* -0 -> +0 (bits: fast-math may fold v + 0) */
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((unsigned long long)u << 32) | (unsigned)~(unsigned)i;
}
/* the id of am_key's key k; -1 for 0 (none) */
__device__ __forceinline__ int am_key_id(unsigned long long k) { return k ? (int)~(unsigned)k : -1; }

/* (bv, bi) = the better of itself and (v2, i2) */
__device__ __forceinline__ void am_merge(float &bv, int &bi, float v2, int i2) {
    if (i2 >= 0 && (bi < 0 || v2 > bv || (v2 == bv && i2 < bi))) {
        bv = v2;
        bi = i2;
    }
}

/* argmax merge over a block of NT threads; the result in every thread.
 * shv/shi: [NT / 32] shared. */
template <int NT>
__device__ void am_block_all(float &bv, int &bi, float *shv, int *shi) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float v2 = __shfl_xor_sync(0xffffffffu, bv, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
        am_merge(bv, bi, v2, i2);
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
        shv[threadIdx.x >> 5] = bv;
        shi[threadIdx.x >> 5] = bi;
    }
    __syncthreads();
    bv = 0.0f;
    bi = -1;
    for (int k = 0; k < NT / 32; k++) am_merge(bv, bi, shv[k], shi[k]);
    __syncthreads();
}

/* "the last block to finish": every thread fences its writes (stores and
 * atomics to global memory) and the block meets, thread 0 counts; 1 in the
 * last block (which fences again before reading what the others wrote).
 * The last block resets *ctr itself when it is done with it. */
__device__ __forceinline__ bool cu_last_block(unsigned *ctr, unsigned *sh) {
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        *sh = atomicAdd(ctr, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    const bool last = *sh != 0;
    if (last) __threadfence();
    return last;
}

/* The many-block argmax's end, for blocks of NT threads: the block's
 * (bv, bi) (the same in every thread, e.g. from am_block_all) goes to
 * pv/pi[blockIdx.x]; the last block to finish merges every block's pair
 * and returns true with the result in every thread, *cnt reset to 0 for
 * the next launch. The other blocks return false. */
template <int NT>
__device__ bool am_grid(float &bv, int &bi, float *pv, int *pi, unsigned *cnt, float *shv, int *shi, unsigned *sh) {
    if (threadIdx.x == 0) {
        pv[blockIdx.x] = bv;
        pi[blockIdx.x] = bi;
    }
    if (!cu_last_block(cnt, sh)) return false;
    bv = 0.0f;
    bi = -1;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += NT) am_merge(bv, bi, __ldcg(pv + b), __ldcg(pi + b));
    am_block_all<NT>(bv, bi, shv, shi);
    if (threadIdx.x == 0) *cnt = 0;
    return true;
}
