/* mm_tc.cuh — the tensor-core prefill matrix product for quantized weights
 * (mm_tc.cu), called by mm.cu's cu_mm. */
#ifndef LLORCH_CUDA_MM_TC_CUH
#define LLORCH_CUDA_MM_TC_CUH

#include "common.cuh"

/* y[r][o] = sum_i w[o][i] x[r][i] for a quantized block format. Returns 1
 * when it enqueued the product, 0 when this kernel does not take the case
 * (type not a block format, weights not 16-byte aligned, tile forced to the
 * old kernel): the caller then runs the old kernel. */
int cu_mm_tc(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows);

/* The fp16-activation variant (mm_xh.cu; cu_mm_tc runs it when
 * LLORCH_CUDA_MM_XH=1 (K steps of 32) or 2 (K steps of 64 where K % 64 == 0)).
 * Returns 1 when it enqueued the product, 0 when it does not take the case
 * (rows * K > CU_MM_XH_MAX, type not a block format, unaligned pointers). */
int cu_mm_xh(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows, int bk64);

#endif
