/* common.cuh — what every CUDA file of the backend shares: the backend
 * context, the error latch, CUDA_CHECK / LAUNCH_CHECK, small device helpers
 * (warp reductions, unaligned loads, fp16), and the host-side entry points
 * of each kernel family (one .cu per family; backend.cu only dispatches).
 *
 * Error model (backend.h): an op never fails synchronously. Every CUDA call
 * and every launch is checked; the first failure is latched in ctx->err and
 * returned by the next sync()/download() as -EIO (the engine maps it to
 * ENG_E_BACKEND → CUDA_ERROR). Allocation failures return -ENOMEM at once.
 *
 * Memory (SPEC §3.5): device memory only through cudaMalloc (256-byte
 * aligned), every byte accounted in memory.cu. No managed, mapped, registered
 * or pinned host memory anywhere in this backend.
 */
#ifndef LLORCH_CUDA_COMMON_CUH
#define LLORCH_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <stddef.h>

extern "C" {
#include "engine/backend.h"
#include "engine/quant.h"
}

/* ---- context ------------------------------------------------------------------ */
struct cu_alloc_rec {
    void *p;
    size_t bytes;
};

struct cu_graph_rec {
    int key;
    cudaGraphExec_t exec;
};

/* Activation scratch of the mat-vec path: the activation rows quantized to
 * the weight's vec_dot_type (quant.h), in our own aligned struct-of-arrays
 * layout: q [rows][K] int8, d [rows][K/32] f32 (per 32-element group; for
 * Q8_K every group of a 256-block carries the block's d), s [rows][K/32] f32
 * (Q8_1's fp16-rounded d*sum(q)). x16 [rows][K] fp16 for F16 weights. */
#define CU_MMV_MAX_ROWS 8
#define CU_ACT_MAX_K 65536
/* the decode head's grid bound (one (value, id) pair per block in head_red) */
#define CU_HEAD_MAXB 1024
/* matrices with at least this many rows take the tall one-row mat-vec
 * (mmv.cu launch_q: v1 / mmv_tall*.cu), and only those the head */
#define CU_MMV_TALL_ROWS 32768
#define CU_HEAD_RED_BYTES (2 * CU_HEAD_MAXB * 4 + 256)
/* fp16 activations of the prefill matmul's LLORCH_CUDA_MM_XH variant
 * (mm_xh.cu): rows * K halves at most (n_batch 512 x K 16384, 16 MiB);
 * larger products run mm_tc.cu */
#define CU_MM_XH_MAX ((uint64_t)512 * 16384)
/* attention split-K partials: floats */
#define CU_ATTN_SCRATCH_FLOATS (2u << 20)
/* per-(row, head) split counters of the fused decode attention */
#define CU_ATTN_MAX_CNT 4096
/* pkw.cu's flagged activation slots (ll.cuh), 8 bytes each: a 256-byte
 * header (launch generation, exit count) then [2][<= half the rest]
 * (Qwen2.5-0.5B needs 2 x 8,704; Qwen3-0.6B-shaped 2 x 11,264) */
#define CU_PKW_LL_HDR 32
#define CU_PKW_LL_SLOTS (65536u - CU_PKW_LL_HDR)

struct cu_ctx {
    int device;
    cudaStream_t stream;
    int sm_count;
    char name[128];
    int sm;                     /* major*10+minor */

    /* allocations made through alloc() (memory.cu) */
    uint64_t mem_limit;         /* 0 = none */
    uint64_t mem_used;          /* sum of live alloc() bytes */
    cu_alloc_rec *allocs;
    int n_allocs, cap_allocs;

    /* internal scratch, allocated once at creation (not counted in mem_used,
     * reported as internal_bytes) */
    uint64_t internal_bytes;
    int8_t *act_q;              /* [CU_MMV_MAX_ROWS][CU_ACT_MAX_K] */
    float *act_d;               /* [CU_MMV_MAX_ROWS][CU_ACT_MAX_K/32] */
    float *act_s;               /* [CU_MMV_MAX_ROWS][CU_ACT_MAX_K/32] */
    __half *act_h;              /* [CU_MMV_MAX_ROWS][CU_ACT_MAX_K] */
    __half *mm_xh;              /* [CU_MM_XH_MAX] (mm_xh.cu) */
    /* mm_xh holds x converted for (xh_x, xh_rows, xh_K, xh_cls) while xh_x
     * != NULL: consecutive prefill matmuls on one x (q/k/v, gate/up) convert
     * it once. Dropped with the mat-vec cache (every other op, every memory
     * entry point, every graph boundary) and by a matmul whose output
     * overlaps x. */
    const float *xh_x;
    int xh_rows, xh_K, xh_cls;
    float *attn_part;           /* CU_ATTN_SCRATCH_FLOATS */
    unsigned *attn_cnt;         /* CU_ATTN_MAX_CNT, zero between launches */
    unsigned long long *pkw_ll; /* CU_PKW_LL_HDR + CU_PKW_LL_SLOTS, zeroed at creation (pkw.cu) */
    int attn_unfused;           /* LLORCH_CUDA_ATTN_FUSED=0 */
    /* sampling scratch: grows at the first sample() call of a vocab size,
     * never inside a graph capture */
    float *samp_w;              /* [samp_cap] working logits */
    int samp_cap;
    int32_t *samp_hist;         /* [ENG_REPEAT_LAST_N] */
    int32_t *samp_out;          /* [1] */
    uint32_t *samp_red;         /* greedy argmax: [256] f32 values, [256] ids, counter (zero between launches) */
    /* the decode head (mmv_tall_reg.cu cu_head): per-block (value, id)
     * pairs [CU_HEAD_MAXB] f32, [CU_HEAD_MAXB] i32, then the counter and,
     * 8 bytes after it, the 64-bit maximum of head_amax (both zero between
     * launches); head_on: LLORCH_CUDA_HEAD != 0 */
    float *head_red;
    int head_on;
    int head_amax;              /* LLORCH_CUDA_HEAD_AMAX != 0 (default): the head's choice by one 64-bit
                                 * maximum (mr_head key, after the counter in head_red) */
    struct cu_stamps *stamps;   /* LLORCH_CUDA_STAMPS=1: step stamps (stamps.cuh), else NULL */
    int samp_fast;              /* greedy through the many-block k_argmax (default; LLORCH_CUDA_ARGMAX=0: k_sample) */
    /* enqueue-only sample + read_token (backend.h): the event recorded on
     * `stream` right after the sampling kernel, and the side stream that
     * waits on it and copies the token back without waiting for the work
     * enqueued after the sample (the next decode step). Created once in
     * eng_backend_cuda_new. */
    cudaEvent_t samp_ev;
    cudaStream_t side;
    const int32_t *samp_pending; /* the id's device address of the last enqueue-only sample; NULL: none */

    /* error latch */
    int err;                    /* 0 or the first cudaError_t seen */
    char errmsg[256];

    /* graphs (record_begin/record_end) */
    cu_graph_rec *graphs;
    int n_graphs, cap_graphs;
    int capturing;              /* 1 while a capture is open */
    int capture_key;
    int no_graph;               /* LLORCH_CUDA_NO_GRAPH=1: record_begin never captures */

    /* Programmatic dependent launch (Hopper): every kernel is launched with
     * cudaLaunchAttributeProgrammaticStreamSerialization (cu_launch below)
     * and begins with cu_pdl_begin(), so the next kernel's launch and block
     * placement overlap the previous kernel's last wave, also inside graphs.
     * LLORCH_CUDA_PDL=0 turns the attribute off (plain stream order). */
    int pdl;

    /* Activation-quantization cache of the mat-vec path (mmv.cu): act_q/d/s
     * hold x quantized for (aq_x, aq_rows, aq_K, aq_vdt) while aq_x != NULL.
     * Consecutive matmuls that read the same x (q/k/v, gate/up) quantize it
     * once. Every op other than an mmv matmul, every memory entry point and
     * every graph boundary clears it (backend.cu); an mmv whose output
     * overlaps its input clears it too. LLORCH_CUDA_ACTCACHE=0 turns it off. */
    const float *aq_x;
    int aq_rows, aq_K, aq_vdt;
    int aq_off;
    int norm_split;             /* decode rmsnorm over ceil(dim/256) blocks (norm.cu); LLORCH_CUDA_NORM_SPLIT=0 / LLORCH_NO_FUSED=1 off */
    int norm_q;                 /* rmsnorm also quantizes into the cache (norm.cu); opt-in LLORCH_CUDA_NORM_Q=1 */

    /* LLORCH_CUDA_PROFILE=1: per-op GPU time with events (graphs off), summed
     * per op kind / matmul shape and printed to stderr at destroy */
    struct cu_prof *prof;
};

/* Latches the first error (records where it happened). Returns 1 when err != success. */
int cu_latch(cu_ctx *c, cudaError_t e, const char *what, const char *file, int line);

#define CUDA_CHECK(c, call) cu_latch((c), (call), #call, __FILE__, __LINE__)
/* after every <<<>>> launch */
#define LAUNCH_CHECK(c, name) cu_latch((c), cudaGetLastError(), name, __FILE__, __LINE__)

/* Launches kernel<<<grid, block, smem, c->stream>>>(args...) with the
 * programmatic-stream-serialization attribute when c->pdl; returns the launch
 * error (also left for LAUNCH_CHECK). Every kernel launched this way must
 * call cu_pdl_begin() before it touches global memory written by earlier
 * kernels; reads of weights (which no kernel writes) may be issued before
 * it, as fused.cu's default Q4_0 body does to hide their latency. */
template <typename... KArgs, typename... Args>
static inline cudaError_t cu_launch(cu_ctx *c, dim3 grid, dim3 block, size_t smem, void (*kernel)(KArgs...),
                                    Args &&...args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = (c->pdl == 2 || (c->pdl == 1 && c->capturing)) ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<Args &&>(args)...);
}

/* First statement of every kernel: wait until the preceding kernel in the
 * stream has completed and its writes are visible (a no-op without a
 * programmatic dependency), then let the next kernel be launched early. */
__device__ __forceinline__ void cu_pdl_begin() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

static inline unsigned cu_div_up(int64_t a, int64_t b) { return (unsigned)((a + b - 1) / b); }

/* ---- device helpers -------------------------------------------------------------- */
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ int warp_sum_i(int v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* loads of little-endian words from block data that is only 1-, 2- or
 * 4-byte aligned (block sizes 17, 18, 22, 34, 110, 210 bytes) */
__device__ __forceinline__ uint16_t ld_u16(const uint8_t *p) { return *(const uint16_t *)p; }
__device__ __forceinline__ uint32_t ld_u32_a2(const uint8_t *p) {
    const uint16_t *q = (const uint16_t *)p;
    return (uint32_t)q[0] | ((uint32_t)q[1] << 16);
}
__device__ __forceinline__ uint32_t ld_u32_a1(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
__device__ __forceinline__ uint32_t ld_u32_a4(const uint8_t *p) { return *(const uint32_t *)p; }

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf2f(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

/* vec_dot_type codes of the mat-vec activation scratch (cu_ctx.aq_vdt) */
enum { VDT_Q8_0 = 0, VDT_Q8_1 = 1, VDT_Q8_K = 2 };

/* Q8_0 / Q8_1 of one 32-group held one value per lane (v = element lane),
 * rounded as the CPU reference quantizes activations (cpu_matmul.c
 * act_q8_llamacpp, llama.cpp's AVX quantizer): d = amax/127 (fp16 stored; the
 * dot uses the rounded value), q = v * (127/amax) rounded to nearest, ties to
 * even, s = fp16(d * sum(q)) when s != NULL; __fdiv_rn/__float2int_rn so
 * fast-math cannot change a q, and the int8s equal the CPU's for equal x.
 * q points at the group's 32 bytes. Every lane of the warp must call it. */
__device__ __forceinline__ void cu_q8_group_v(float v, int lane, int8_t *q, float *d, float *s) {
    const float amax = warp_max(fabsf(v));
    const float dd = __fdiv_rn(amax, 127.0f);
    const float id = amax != 0.0f ? __fdiv_rn(127.0f, amax) : 0.0f;
    const int qi = __float2int_rn(__fmul_rn(v, id));
    q[lane] = (int8_t)qi;
    if (s) {
        const int sum = warp_sum_i(qi);
        if (lane == 0) *s = __half2float(__float2half_rn(__fmul_rn((float)sum, dd)));
    }
    if (lane == 0) *d = __half2float(__float2half_rn(dd));
}

/* RMSNorm's 1 / sqrt(mean(x^2) + eps) of one row x [dim], computed by a
 * block of exactly 256 threads, the result in every thread; part: [8]
 * shared. One fixed summation order (float4 per thread where x is 16-byte
 * aligned and dim % 4 == 0, then the warp, then a fixed tree over the 8
 * warps), so every block and every kernel that calls it gets the same bits:
 * norm.cu's split rmsnorm and the decode head (mmv_tall_reg.cu), whose
 * logits must equal rmsnorm + matmul. */
__device__ __forceinline__ float cu_rms_scale256(const float *xr, int dim, float eps, float *part) {
    const int tid = threadIdx.x;
    float ss = 0.0f;
    if ((dim & 3) == 0 && ((uintptr_t)xr & 15) == 0) {
        const float4 *x4 = (const float4 *)xr;
        for (int i = tid; i < dim / 4; i += 256) {
            const float4 v = x4[i];
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int i = tid; i < dim; i += 256) ss += xr[i] * xr[i];
    }
    ss = warp_sum(ss);
    if ((tid & 31) == 0) part[tid >> 5] = ss;
    __syncthreads();
    const float tot = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    return 1.0f / sqrtf(tot / (float)dim + eps);
}

/* ---- kernel-family entry points (host side, enqueue on c->stream) ------------------- */
/* getrows.cu */
void cu_get_rows(cu_ctx *c, const eng_w *w, const int32_t *ids, int n, float *out);
/* norm.cu */
void cu_rmsnorm(cu_ctx *c, const float *x, const float *g, float *y, int rows, int dim, float eps);
/* rope.cu */
void cu_rope(cu_ctx *c, float *x, int ld, const int32_t *pos, int rows, int n_head, int head_dim, const eng_rope *p);
/* elementwise.cu */
void cu_add_bias(cu_ctx *c, float *y, int ld, const float *b, int rows, int dim);
void cu_add(cu_ctx *c, float *y, const float *a, int64_t n);
void cu_swiglu(cu_ctx *c, const float *gate, const float *up, int ld_in, float *out, int rows, int dim);
void cu_kv_store(cu_ctx *c, uint16_t *kc, uint16_t *vc, const float *k, const float *v, int ld, const int32_t *pos,
                 int rows, int kv_dim);
/* attention.cu */
void cu_attention(cu_ctx *c, const float *q, int ld_q, const uint16_t *kc, const uint16_t *vc, const int32_t *pos,
                  int rows, int n_head, int n_head_kv, int head_dim, float scale, float *out);
/* attention.cu: `attention` with per-head sinks (NULL: none) and a sliding
 * window (0: none), backend.h attention_ext; cu_attention is this with NULL, 0 */
void cu_attention_ext(cu_ctx *c, const float *q, int ld_q, const uint16_t *kc, const uint16_t *vc,
                      const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                      const float *sinks, int window, float *out);
/* attn_prefill.cu: the tensor-core prefill kernel; returns 1 when launched,
 * 0 when the shape is not its own (attention.cu then runs its own kernels) */
int cu_attn_prefill_mma(cu_ctx *c, const float *q, int ld_q, const uint16_t *kc, const uint16_t *vc,
                        const int32_t *pos, int rows, int n_head, int n_head_kv, int head_dim, float scale,
                        float *out);
/* mmv.cu: rows <= CU_MMV_MAX_ROWS */
void cu_mmv(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows);
/* mmv_tall.cu: the one-row mat-vec of a tall matrix (>= 32768 rows: the
 * vocabulary projection), x already quantized into act_q/d/s; 0 launched,
 * -1 not taken (the caller runs mmv.cu's v1; the default: opt-in with
 * LLORCH_CUDA_MMV_TALL=1, or =2 / =3 for mmv_tall_reg.cu's kernels) */
int cu_mmv_tall(cu_ctx *c, const eng_w *w, float *y);
/* mmv_tall_reg.cu: the same for Q8_0 with the activation in registers and
 * 8-byte weight words (LLORCH_CUDA_MMV_TALL=2: neighbour words by shuffle,
 * =3 (dup = 1): loaded again); 0 launched, -1 not taken; bit-identical to v1 */
int cu_mmv_tall_reg(cu_ctx *c, const eng_w *w, float *y, int dup);
/* mmv_tall_reg.cu: backend.h head (the output norm, the vocabulary mat-vec
 * and the greedy choice in one launch) for the shapes cu_mmv_tall_reg
 * covers; 0 launched, -1 not taken (nothing enqueued) */
int cu_head(cu_ctx *c, const float *x, const float *g, float eps, const eng_w *w, float *logits, int32_t *tok_next,
            int32_t *ring, int32_t *pos_io, int pos_i);
/* mmv.cu, shared with fused.cu: the activation quantization step.
 * cu_act_quant quantizes x [rows][K] for weights of vec_dot_type code vdt
 * into act_q/d/s unless cx (the cache's x, read and cleared by the caller)
 * already is x in that form; returns the VDT_* code it holds (Q8_0 requests
 * become Q8_1 with the cache on) or -1 (error latched). cu_act_keep re-arms
 * the cache after the dot unless the output y [ny] overlaps x. */
int cu_vdt_of(int type);
int cu_act_quant(cu_ctx *c, const float *cx, const float *x, int rows, int K, int vdt);
void cu_act_keep(cu_ctx *c, const float *x, int rows, int K, int vq, const float *y, int64_t ny);
/* fused.cu: the optional fused ops of backend.h for one activation row
 * (decode); 0 when done, -1 when the shape/type is not covered (nothing
 * enqueued: the caller composes the primitives) */
int cu_fused_matmul_n(cu_ctx *c, int n, const eng_w *const *w, const float *const *b, const float *x,
                      float *const *y, int rows);
int cu_fused_matmul_add(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows);
int cu_fused_matmul_swiglu(cu_ctx *c, const eng_w *wg, const eng_w *wu, const float *x, float *out, int rows);
/* rope.cu: rope(q), rope(k), kv_store(k, v) in one launch; -1 = not covered (odd dims) */
int cu_rope_kv_store(cu_ctx *c, float *q, int ldq, float *k, const float *v, int ldkv, const int32_t *pos, int rows,
                      int n_head, int n_head_kv, int head_dim, const eng_rope *p, uint16_t *kc, uint16_t *vc);
/* mm.cu: any rows */
void cu_mm(cu_ctx *c, const eng_w *w, const float *x, float *y, int rows);
/* sample.cu: returns 0 or -errno; the token id also stays in dev_token;
 * host_token NULL: enqueue only, then cu_read_token reads it (backend.h) */
int cu_sample(cu_ctx *c, const float *logits, int n_vocab, const eng_sample_args *a, int32_t *dev_token,
              int32_t *host_token);
int cu_read_token(cu_ctx *c, const int32_t *dev_token, int32_t *host_token);
/* stamps.cu: LLORCH_CUDA_STAMPS=1 allocates the step-stamp ring (0, or -1
 * out of memory); the report prints where the steps' time went */
int cu_stamps_init(cu_ctx *c);
void cu_stamps_report(cu_ctx *c);
/* sample.cu: backend.h sample_ready (the id already at dev_token) */
int cu_sample_ready(cu_ctx *c, const int32_t *dev_token, int32_t *host_token);
/* moe.cu: gpt-oss's mixture-of-experts ops (backend.h) */
void cu_moe_route(cu_ctx *c, const float *logits, int rows, int n_expert, int k, int32_t *ids, float *w);
void cu_matmul_id(cu_ctx *c, const eng_w *w, const float *x, int n_x, const int32_t *ids, int k, const float *b,
                  float *y, int rows);
void cu_swiglu_oai(cu_ctx *c, const float *gate, const float *up, float *out, int64_t n, float alpha, float limit);
void cu_moe_sum(cu_ctx *c, const float *e, const float *w, int rows, int k, int dim, float *out);
/* memory.cu */
int cu_mem_alloc(cu_ctx *c, size_t bytes, void **out);
void cu_mem_free(cu_ctx *c, void *p);
int cu_mem_is_resident(cu_ctx *c, const void *p, char *why, size_t whylen);
int cu_mem_internal(cu_ctx *c, size_t bytes, void **out); /* internal scratch, counted in internal_bytes */
void cu_mem_release_all(cu_ctx *c);

#endif
