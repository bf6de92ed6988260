/* persist.cuh — what persist.cu's persistent decode kernels (a launch per
 * layer, or all layers) share with pkw.cu's weights-in-shared-memory one:
 * the weight and argument views, the grid barrier, the generic per-format
 * dots, activation staging and quantization in shared memory, and the
 * host helpers that build one layer's arguments and enqueue a launch.
 * persist.cu's top comment describes the phases, the barrier and why a
 * grid of co-resident blocks cannot deadlock. No relocatable device code:
 * each .cu that includes this has its own pk_ts. */
#ifndef LLORCH_CUDA_PERSIST_CUH
#define LLORCH_CUDA_PERSIST_CUH

#include <stdlib.h>
#include <string.h>

#include "actq.cuh"
#include "attn_dec.cuh"
#include "attn_rope.cuh"
#include "quants.cuh"
#include "rope.cuh"

#define PK_WARPS 16
#define PK_SPLIT_KEYS 32 /* fewest keys per attention split */
#define PK_THREADS (PK_WARPS * 32)

/* one weight matrix as the kernel sees it */
struct pk_mat {
    const uint8_t *w;
    size_t nb1;
    int type;
    int kq; /* 1: the activation is Q8_K (K-quants), 0: Q8_1 (holds Q8_0's q and d too) */
};

struct pk_args {
    pk_mat wq, wk, wv, wo, wg, wu, wd;
    const float *bq, *bk, *bv;
    const float *attn_norm, *ffn_norm;
    int E, F, n_head, n_head_kv, hd, Kmax;
    float eps, scale;
    rope_k rope;
    const float *ff; /* rope frequency factors or NULL */
    __half *kc, *vc;
    const int32_t *pos;
    float *x, *q, *k, *v, *att, *hb;
    float *part;   /* attention split partials */
    unsigned *cnt; /* attention merge counters (S > 1) or NULL */
    int S;         /* attention splits */
    unsigned *bar; /* [2] arrive counter, generation */
    int need_a, need_c, need_d, need_e; /* activation forms per phase: 1 = Q8_1, 2 = Q8_K */
    int ga, gc, gd, ge;                 /* team size (warps) per phase */
    int pf;                             /* L2 prefetch of the block's weight rows */
    int bar_fence;                      /* 1: the __threadfence barrier (LLORCH_CUDA_PERSIST_BAR=0) */
    int timing;                         /* 1: globaltimer stamps into pk_ts (LLORCH_CUDA_PERSIST_TIMING=1) */
};

/* the activation of the running phase in shared memory */
struct pk_act {
    const int8_t *q1; /* Q8_1: q [K], d, s [K/32] */
    const float *d1, *s1;
    const int8_t *q2; /* Q8_K: q [K], d [K/32] (each 32-group carries its block's d) */
    const float *d2;
};

/* ---- grid barrier ------------------------------------------------------------------------ */
__device__ __forceinline__ unsigned pk_ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

/* Phase timing (LLORCH_CUDA_PERSIST_TIMING=1, diagnostics only): block 0
 * stamps %globaltimer at fixed points, every block raises the "work done"
 * stamps of each phase to its own time (atomicMax), so after a launch
 * pk_ts holds: 0 entry (block 0), 1 the last block past its PDL wait, 2 A
 * staged (block 0), 3 A done (last block), 4 barrier 1 left (block 0), 5 B
 * done (last), 6 barrier 2 left, 7 C staged, 8 C done, 9 barrier 3 left, 10 D
 * staged, 11 D done, 12 barrier 4 left, 13 E staged, 14 E done (last). */
__device__ unsigned long long pk_ts[16];
__device__ __forceinline__ unsigned long long pk_now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
#define PK_TS0(A, i)                                                           \
    do {                                                                       \
        if ((A).timing && blockIdx.x == 0 && threadIdx.x == 0) pk_ts[i] = pk_now(); \
    } while (0)
#define PK_TSMAX(A, i)                                                         \
    do {                                                                       \
        if ((A).timing && threadIdx.x == 0) atomicMax(&pk_ts[i], pk_now());    \
    } while (0)

/* Waits until *gen != g. A grid barrier that does not open within
 * PK_SPIN_TRAP_NS is our bug (a block not resident, a block that skipped a
 * barrier): trap, so the launch fails with an error instead of hanging the
 * worker. Generous because compute-sanitizer slows kernels 100-1000x. */
#define PK_SPIN_TRAP_NS 20000000000ull
__device__ __forceinline__ void pk_spin(const unsigned *gen, unsigned g) {
    const unsigned long long t0 = pk_now();
    for (unsigned i = 1; pk_ld_acquire(gen) == g; i++)
        if (!(i & 1023u) && pk_now() - t0 > PK_SPIN_TRAP_NS) __trap();
}

/* Every thread of every block calls it. Thread 0 reads the generation, then
 * arrives; the last arriver resets the counter and releases the next
 * generation; the others spin on it. Default: the arrival is an
 * acq_rel atomic and the spin an acquire load (the block's writes before
 * __syncthreads are ordered before thread 0's release by the CTA barrier;
 * the reads after the closing __syncthreads after its acquire), as CUTLASS's
 * generic barrier does. bar_fence (LLORCH_CUDA_PERSIST_BAR=0): the
 * cooperative-groups pattern with __threadfence around relaxed atomics. */
__device__ __forceinline__ void pk_grid_sync(unsigned *bar, unsigned nblk, int fence, int timing, int ts) {
    __syncthreads();
    if (threadIdx.x == 0) {
        if (timing) atomicMax(&pk_ts[ts], pk_now());
        const unsigned g = pk_ld_acquire(bar + 1);
        if (fence) {
            __threadfence();
            if (atomicAdd(bar, 1u) == nblk - 1) {
                atomicExch(bar, 0u);
                __threadfence();
                atomicAdd(bar + 1, 1u);
            } else {
                pk_spin(bar + 1, g);
            }
            __threadfence();
        } else {
            unsigned old;
            asm volatile("atom.add.acq_rel.gpu.global.u32 %0, [%1], 1;" : "=r"(old) : "l"(bar) : "memory");
            if (old == nblk - 1) {
                /* every block has arrived and none can arrive again before
                 * the release below: the plain reset is ordered by it */
                asm volatile("st.relaxed.gpu.global.u32 [%0], 0;" ::"l"(bar) : "memory");
                asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(bar + 1), "r"(g + 1) : "memory");
            } else {
                pk_spin(bar + 1, g);
            }
        }
    }
    __syncthreads();
}

/* ---- L2 prefetch ------------------------------------------------------------------------- */
__device__ __forceinline__ void pk_prefetch(const uint8_t *p, size_t bytes) {
    for (size_t o = (size_t)threadIdx.x * 128; o < bytes; o += (size_t)blockDim.x * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(p + o));
}

/* the contiguous rows [r0, r1) of m */
__device__ __forceinline__ void pk_prefetch_rows(const pk_mat &m, int r0, int r1) {
    if (r1 > r0) pk_prefetch(m.w + (size_t)r0 * m.nb1, (size_t)(r1 - r0) * m.nb1);
}

/* rows this block reads in a phase of `units` rows of m, teams of g warps */
__device__ __forceinline__ void pk_prefetch_phase(const pk_mat &m, int units, int g) {
    const int tpb = PK_WARPS / g;
    for (int base = blockIdx.x * tpb; base < units; base += gridDim.x * tpb)
        pk_prefetch_rows(m, base, min(units, base + tpb));
}

/* ---- dots ------------------------------------------------------------------------------------ */
/* partial dots of rows wa (and wb when TWO) over this thread's subs: team
 * thread tt of nt; x: the phase's activation in the matrix's form */
template <int T, int TWO>
__device__ __forceinline__ void pk_dot_t(const uint8_t *wa, const uint8_t *wb, int K, int tt, int nt,
                                         const int8_t *xq, const float *xd, const float *xs, float &a, float &b) {
    typedef qfmt<T> F;
    const int units = (K / F::QK) * F::NSUB;
#pragma unroll 4
    for (int u = tt; u < units; u += nt) {
        const int blk = u / F::NSUB, s = u % F::NSUB;
        const int g = blk * (F::QK / 32);
        a += F::dot(wa + (size_t)blk * F::BYTES, s, xq + (size_t)blk * F::QK, xd + g, xs + g);
        if (TWO) b += F::dot(wb + (size_t)blk * F::BYTES, s, xq + (size_t)blk * F::QK, xd + g, xs + g);
    }
}

/* formats of the fast path (host check: pk_type_ok) */
#define PK_TYPES(CALL)  \
    CALL(QT_Q4_0)       \
    CALL(QT_Q4_1)       \
    CALL(QT_Q5_0)       \
    CALL(QT_Q5_1)       \
    CALL(QT_Q8_0)       \
    CALL(QT_Q4_K)       \
    CALL(QT_Q5_K)       \
    CALL(QT_Q6_K)

template <int TWO>
__device__ __noinline__ float2 pk_dot(int type, int kq, const uint8_t *wa, const uint8_t *wb, int K, int tt, int nt,
                                      pk_act x) {
    float a = 0.0f, b = 0.0f;
    const int8_t *xq = kq ? x.q2 : x.q1;
    const float *xd = kq ? x.d2 : x.d1, *xs = kq ? x.d2 : x.s1;
    switch (type) {
#define PK_CASE(T) \
    case T: pk_dot_t<T, TWO>(wa, wb, K, tt, nt, xq, xd, xs, a, b); break;
        PK_TYPES(PK_CASE)
#undef PK_CASE
    default: a = b = __int_as_float(0x7fc00000); break; /* unreachable (host check): NaN shows it */
    }
    return make_float2(a, b);
}

/* sums (a, b) over the team's g warps; valid in the team's first thread.
 * Every thread of the block calls it (block-uniform loop). */
__device__ __forceinline__ float2 pk_team_sum(float2 v, int g, float2 *red) {
    v.x = warp_sum(v.x);
    v.y = warp_sum(v.y);
    if (g == 1) return v;
    const int warp = threadIdx.x >> 5;
    if ((threadIdx.x & 31) == 0) red[warp] = v;
    __syncthreads();
    if (((warp & (g - 1)) == 0) && (threadIdx.x & 31) == 0) {
        for (int i = 1; i < g; i++) {
            v.x += red[warp + i].x;
            v.y += red[warp + i].y;
        }
    }
    __syncthreads();
    return v;
}

/* ---- activation staging ------------------------------------------------------------------ */
/* 1 / rms over E from every thread's partial sum of squares ss: warp sums,
 * then the block's warps in order (every block the same fp32 value); red
 * [warps] is scratch; every thread of the block calls it and gets it */
__device__ __forceinline__ float pk_rms_scale(float ss, int E, float eps, float *red) {
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    float tot = 0.0f;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) tot += red[w];
    return 1.0f / sqrtf(tot / (float)E + eps);
}

/* xs = rmsnorm(x) * g over E (every block the same fp32 values: same
 * order). g is loaded with x (registers, E <= 8 x PK_THREADS), so its
 * latency is not a second round trip after the sum. */
#define PK_NORM_REGS 8
__device__ __forceinline__ void pk_stage_norm(const float *x, const float *g, int E, float eps, float *xs,
                                              float *red) {
    float ss = 0.0f, gv[PK_NORM_REGS];
    const int reg = E <= PK_NORM_REGS * PK_THREADS;
#pragma unroll
    for (int k = 0; k < PK_NORM_REGS; k++) {
        const int i = threadIdx.x + k * PK_THREADS;
        gv[k] = (reg && g && i < E) ? g[i] : 1.0f;
    }
    for (int i = threadIdx.x; i < E; i += PK_THREADS) {
        const float v = __ldcg(x + i);
        xs[i] = v;
        ss += v * v;
    }
    const float scale = pk_rms_scale(ss, E, eps, red);
    if (reg) {
#pragma unroll
        for (int k = 0; k < PK_NORM_REGS; k++) {
            const int i = threadIdx.x + k * PK_THREADS;
            if (i < E) xs[i] = g ? xs[i] * scale * gv[k] : xs[i] * scale;
        }
    } else {
        for (int i = threadIdx.x; i < E; i += PK_THREADS) xs[i] = g ? xs[i] * scale * g[i] : xs[i] * scale;
    }
    __syncthreads(); /* red is reused by the caller */
}

/* xs (16-aligned) = src [K]: 16-byte loads where src allows (Qwen's
 * 4,864-wide hb: 2-3 loads per thread instead of 10); any block size */
__device__ __forceinline__ void pk_stage_copy(const float *src, int K, float *xs) {
    if (!(K & 3) && !((uintptr_t)src & 15)) {
        for (int i = threadIdx.x; i < K / 4; i += blockDim.x)
            reinterpret_cast<float4 *>(xs)[i] = __ldcg(reinterpret_cast<const float4 *>(src) + i);
    } else {
        for (int i = threadIdx.x; i < K; i += blockDim.x) xs[i] = __ldcg(src + i);
    }
    __syncthreads();
}

/* xs [K] → the forms in need (1: Q8_1, 2: Q8_K); then a block barrier */
__device__ __forceinline__ void pk_quant(const float *xs, int K, int need, int8_t *q1, float *d1, float *s1,
                                         int8_t *q2, float *d2) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (need & 1)
        for (int grp = warp; grp < K / 32; grp += PK_WARPS)
            cu_q8_group_v(xs[32 * grp + lane], lane, q1 + 32 * grp, d1 + grp, s1 + grp);
    if (need & 2)
        for (int b = warp; b < K / 256; b += PK_WARPS) q8_K_group(xs + 256 * b, lane, q2 + 256 * b, d2 + 8 * b);
    __syncthreads();
}

/* ---- shared memory of a block ------------------------------------------------------------ */
/* a block's shared memory */
struct pk_sm {
    float *xs, *d1, *s1, *d2; /* dynamic: xs [Kmax] f32, d1/s1/d2 [Kmax/32] */
    int8_t *q1, *q2;          /* dynamic: [Kmax] each */
    float2 *red2;             /* [PK_WARPS] */
    float *redf;              /* [PK_WARPS] */
    float *rope_c, *rope_s;   /* [64]: cos/sin of pair i at this position */
};

#define PK_SM_DECL(Kmax)                                                                 \
    extern __shared__ __align__(16) unsigned char pk_smem[];                             \
    __shared__ float2 pk_red2[PK_WARPS];                                                 \
    __shared__ float pk_redf[PK_WARPS], pk_rc[64], pk_rs[64];                            \
    pk_sm sm;                                                                            \
    sm.xs = (float *)pk_smem;                                                            \
    sm.d1 = sm.xs + (Kmax);                                                              \
    sm.s1 = sm.d1 + (Kmax) / 32;                                                         \
    sm.d2 = sm.s1 + (Kmax) / 32;                                                         \
    sm.q1 = (int8_t *)(sm.d2 + (Kmax) / 32);                                             \
    sm.q2 = sm.q1 + (Kmax);                                                              \
    sm.red2 = pk_red2;                                                                   \
    sm.redf = pk_redf;                                                                   \
    sm.rope_c = pk_rc;                                                                   \
    sm.rope_s = pk_rs

__device__ __forceinline__ void pk_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    /* safe at once: dependents launch only after every block of this grid
     * executed it, i.e. when all of them are resident (see the top comment) */
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* the most layers one all-layers launch takes (kernel parameter space) */
#define PK_MAX_LAYERS 48

/* ---- host (persist.cu) --------------------------------------------------------------------- */
/* LLORCH_CUDA_* integer switches, read at every call */
int pk_env_int(const char *name, int def);

/* one layer's kernel arguments and staging bytes; 0, or -1 when the layer
 * is not covered (formats, shapes, the size gate) */
int pk_setup(const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t, pk_args *A,
             size_t *smem_out, int *epl_out);

/* blocks of kfn (PK_THREADS threads, smem dynamic bytes) one SM holds: the
 * occupancy API, cached per (kfn, smem); 0 when it does not fit */
int pk_occupancy(const void *kfn, size_t smem);
/* the same for blocks of `threads` threads (pkw.cu) */
int pk_occupancy_t(const void *kfn, int threads, size_t smem);

/* persistent launches enqueued by this process (tests: did the fast path run?) */
extern "C" unsigned long llorch_cuda_persist_launches;

/* cudaLaunchKernelEx of kfn with PDL inside captures (as cu_launch) and,
 * opt-in, the cooperative attribute */
template <typename P>
static inline void pk_enqueue(cu_ctx *c, void (*kfn)(P), const P &arg, int nblk, size_t smem,
                              int threads = PK_THREADS) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)nblk);
    cfg.blockDim = dim3((unsigned)threads);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute at[2];
    int na = 0;
    if (c->pdl == 2 || (c->pdl == 1 && c->capturing)) {
        at[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[na].val.programmaticStreamSerializationAllowed = 1;
        na++;
    }
    if (pk_env_int("LLORCH_CUDA_PERSIST_COOP", 0) == 1) {
        at[na].id = cudaLaunchAttributeCooperative;
        at[na].val.cooperative = 1;
        na++;
    }
    cfg.attrs = at;
    cfg.numAttrs = na;
    cudaLaunchKernelEx(&cfg, kfn, arg);
    LAUNCH_CHECK(c, "decode_block");
    llorch_cuda_persist_launches++;
}

/* ---- pkw.cu ------------------------------------------------------------------------------- */
/* every layer of b in one weights-in-shared-memory launch; 0, or -1 when not
 * covered (nothing enqueued). embd != NULL: x = dequant(row ids[0] of embd)
 * first, inside the same launch (F32 / F16 / Q8_0 rows; else -1) */
int cu_pkw_decode_layers(cu_ctx *c, const eng_block_w *b, int n, float *x, const int32_t *pos,
                         const eng_block_tmp *t, const eng_w *embd = NULL, const int32_t *ids = NULL);
/* once per context, outside captures: its shared-memory limit */
void cu_pkw_init(void);

#endif
