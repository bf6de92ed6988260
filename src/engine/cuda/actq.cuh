/* actq.cuh — activation quantization helpers shared by mmv.cu (the
 * standalone quantization launch) and persist.cu (each block quantizes into
 * its shared memory): Q8_K of one 256-block per warp, the CPU reference's
 * rounding. (Q8_0/Q8_1 groups: common.cuh cu_q8_group_v.) */
#ifndef LLORCH_CUDA_ACTQ_CUH
#define LLORCH_CUDA_ACTQ_CUH

#include "common.cuh"

/* Q8_K of one 256-block, one warp (8 elements per lane). max = the value of
 * largest magnitude, first index on ties; iscale = -127/max; q =
 * min(127, rint(iscale*x)); d = 1/iscale, stored for each of the 8 32-groups. */
__device__ __forceinline__ void q8_K_group(const float *xb, int lane, int8_t *qb, float *db) {
    float v[8], amax = 0.0f, mx = 0.0f;
    int idx = 1 << 30;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        v[i] = xb[lane * 8 + i];
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            mx = v[i];
            idx = lane * 8 + i;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float a2 = __shfl_xor_sync(0xffffffffu, amax, o), m2 = __shfl_xor_sync(0xffffffffu, mx, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, idx, o);
        if (a2 > amax || (a2 == amax && i2 < idx)) {
            amax = a2;
            mx = m2;
            idx = i2;
        }
    }
    if (amax == 0.0f) {
#pragma unroll
        for (int i = 0; i < 8; i++) qb[lane * 8 + i] = 0;
        if (lane < 8) db[lane] = 0.0f;
        return;
    }
    const float iscale = __fdiv_rn(-127.0f, mx);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int qi = __float2int_rn(__fmul_rn(iscale, v[i]));
        qb[lane * 8 + i] = (int8_t)(qi < 127 ? qi : 127);
    }
    if (lane < 8) db[lane] = __frcp_rn(iscale);
}

#endif
