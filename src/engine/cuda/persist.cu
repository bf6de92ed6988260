/* persist.cu — backend.h decode_block / decode_layers on CUDA: whole
 * pre-norm decoder layers of ONE activation row (decode) in one persistent
 * launch per layer (or, opt-in, one for all layers).
 *
 * Switches (read at every call, so one process can A/B them):
 *   LLORCH_CUDA_PERSIST=1         use this kernel (default 0: backend.cu
 *                                 composes the existing fused ops, the
 *                                 pre-existing decode path). Opt-in: its
 *                                 tests pass on H100, but it measured 1-2.4%
 *                                 slower than the composition there
 *                                 (docs/PERF.md "Decode: persistent kernel",
 *                                 round 2).
 *   LLORCH_CUDA_PERSIST=2         decode_layers: the weights-in-shared-memory
 *                                 kernel (k_pw_layers, below the per-layer
 *                                 kernels; all layers in one launch). Written
 *                                 and compiled in session 4 with no device
 *                                 time left: NOT yet run on a GPU, so opt-in
 *                                 until test_decode_layers passes with it and
 *                                 the model bench shows the gain.
 *   LLORCH_CUDA_PKW_BPS=1         caps that kernel at 1 block per SM (default:
 *                                 2 where the occupancy allows it; at ~120
 *                                 registers x 512 threads it does not, so 1)
 *   LLORCH_CUDA_PERSIST_LAYERS=1  all layers in one launch (measured slower)
 *   LLORCH_CUDA_PERSIST_BPS=n     blocks per SM (default 2 = the occupancy)
 *   LLORCH_CUDA_PERSIST_PF=0      no L2 prefetch;  _BAR=0 fence barrier
 *   LLORCH_CUDA_PERSIST_COOP=1    cooperative launch attribute
 *   LLORCH_CUDA_PERSIST_MAXMB=n   largest layer (weight MiB) taken (64)
 *   LLORCH_CUDA_PERSIST_TIMING=1  phase stamps (llorch_cuda_persist_stamps)
 *
 * The grid is what is co-resident (occupancy API x SM count), PK_WARPS
 * warps per block; the layer's phases are separated by grid-wide barriers
 * (pk_grid_sync):
 *   A  every block: rmsnorm(x) * attn_norm into shared memory, quantized to
 *      the vec_dot_type(s) of q/k/v (the CPU's integers: common.cuh
 *      cu_q8_group_v, actq.cuh q8_K_group); then "rope pairs" of q/k/v rows
 *      (the two rows one rope rotation mixes, or two unrotated/v rows) are
 *      spread over teams of warps: both dots (+ bias), rope, and for k/v the
 *      fp16 store into the cache row pos.                     | barrier
 *   B  decode attention items (head, split) over the blocks: attn_dec.cuh's
 *      body, the last split of a head merges (attention.cu's counters);
 *      one split per PK_SPLIT_KEYS keys, at most about one item per block.
 *                                                             | barrier
 *   C  every block quantizes att; o rows: x[o] += dot          | barrier
 *   D  every block: rmsnorm(x) * ffn_norm, quantized; gate/up rows:
 *      hb[f] = silu(dot_g) * dot_u                            | barrier
 *   E  every block quantizes hb; down rows: x[o] += dot.
 * A "team" is G warps (G = 1..PK_WARPS, a power of two chosen per phase so
 * that the phase's rows cover the grid's warps) that share one row's dot;
 * the dots are quants.cuh's qfmt<T>::dot (generic sub loop; not mmv.cu's
 * tuned Q4_0 bodies), so only the fp32 summation order differs from the
 * composition (H100: x within ~2e-7 of the CUDA composition).
 *
 * Weight prefetch (LLORCH_CUDA_PERSIST_PF, default on): before waiting for
 * the previous kernel (griddepcontrol.wait) every block asks L2 for all the
 * weight rows it will read in phases A..E, the norm weights, biases and
 * the layer's K/V history (prefetch.global.L2, one 128-byte line per
 * request): none is written by a kernel before us, so this is safe before
 * the wait. The rope table (cos/sin per pair at pos) is made there too.
 *
 * Deadlock freedom: every block must be resident for a barrier to open. The
 * grid never exceeds the occupancy API's blocks per SM x SMs. Under PDL the
 * previous kernel's dependents launch only after ALL its blocks triggered
 * (so they are all placed and finish without us), and our dependents only
 * after all of ours did; the only other risk is unrelated work of another
 * context on the same GPU holding SMs for ever, which a worker does not
 * have. LLORCH_CUDA_PERSIST_COOP=1 adds cudaLaunchAttributeCooperative
 * (the driver then guarantees co-residency): graph capture accepted it on
 * H100 / CUDA 13.0 and the op tests passed with it, but it measured ~8%
 * slower, so it stays opt-in.
 *
 * The barrier words are the last two counters of the attention scratch
 * (c->attn_cnt[CU_ATTN_MAX_CNT - 2 ..]; attention.cu never uses them): an
 * arrive counter that every barrier returns to 0 and a generation word that
 * only grows, so nothing needs a reset between graph replays.
 *
 * Not covered (returns -1; backend.cu composes the existing ops, always
 * correct): weight formats other than Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/
 * Q6_K, head_dim other than 33..64 or 97..128 (the instantiated attention
 * widths), activation widths whose shared-memory staging does not fit,
 * layers above LLORCH_CUDA_PERSIST_MAXMB (Llama-2-7B's 113 MB layers ran at
 * 198 vs 427 tok/s through this kernel: the generic Q4_0 dot and an L2
 * prefetch larger than L2). */
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
                while (pk_ld_acquire(bar + 1) == g) {
                }
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
                while (pk_ld_acquire(bar + 1) == g) {
                }
            }
        }
    }
    __syncthreads();
}

/* ---- L2 prefetch ------------------------------------------------------------------------- */
__device__ __forceinline__ void pk_prefetch(const uint8_t *p, size_t bytes) {
    for (size_t o = (size_t)threadIdx.x * 128; o < bytes; o += (size_t)PK_THREADS * 128)
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
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    float tot = 0.0f;
#pragma unroll
    for (int w = 0; w < PK_WARPS; w++) tot += red[w];
    const float scale = 1.0f / sqrtf(tot / (float)E + eps);
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
 * 4,864-wide hb: 2-3 loads per thread instead of 10) */
__device__ __forceinline__ void pk_stage_copy(const float *src, int K, float *xs) {
    if (!(K & 3) && !((uintptr_t)src & 15)) {
        for (int i = threadIdx.x; i < K / 4; i += PK_THREADS)
            reinterpret_cast<float4 *>(xs)[i] = __ldcg(reinterpret_cast<const float4 *>(src) + i);
    } else {
        for (int i = threadIdx.x; i < K; i += PK_THREADS) xs[i] = __ldcg(src + i);
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

/* ---- phase A: the rows of rope pair u ------------------------------------------------------
 * u < n_head*hp: q pair; then n_head_kv*hp k pairs; then kv_dim/2 v pairs.
 * mat 0/1/2 = q/k/v; ra, rb the rows (head-relative offset added); ri the
 * rope pair index, or -1 (not rotated). */
__device__ __forceinline__ void pk_pair(const pk_args &A, int u, int &mat, int &ra, int &rb, int &ri) {
    const int hp = A.hd / 2, half = A.rope.n_rot / 2;
    const int nq = A.n_head * hp, nk = A.n_head_kv * hp;
    if (u >= nq + nk) {
        mat = 2;
        ra = 2 * (u - nq - nk);
        rb = ra + 1;
        ri = -1;
        return;
    }
    mat = u < nq ? 0 : 1;
    const int uu = u < nq ? u : u - nq;
    const int h = uu / hp, i = uu % hp;
    if (i < half) {
        ra = A.rope.neox ? i : 2 * i;
        rb = A.rope.neox ? i + half : 2 * i + 1;
        ri = i;
    } else {
        ra = A.rope.n_rot + 2 * (i - half);
        rb = ra + 1;
        ri = -1;
    }
    ra += h * A.hd;
    rb += h * A.hd;
}

/* ---- the kernel ------------------------------------------------------------------------------ */
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

/* the rope angles of position p0 (they depend on the position and the
 * layer's frequency factors only): threads < n_rot/2, double precision
 * (~1 us); published by the next __syncthreads */
__device__ __forceinline__ void pk_rope_table(const pk_args &A, int p0, const pk_sm &sm) {
    if ((int)threadIdx.x < A.rope.n_rot / 2)
        rope_cs(A.rope, p0, threadIdx.x, A.ff, &sm.rope_c[threadIdx.x], &sm.rope_s[threadIdx.x]);
}

/* every weight row this block will read in layer A, its small vectors and
 * the layer's K/V history rows (0..p0-1; row p0 is written in phase A),
 * requested into L2 (weights are written by no kernel: safe before any wait) */
__device__ __forceinline__ void pk_prefetch_layer(const pk_args &A, int p0) {
    const int Q = A.n_head * A.hd, KV = A.n_head_kv * A.hd, E = A.E, F = A.F;
    const unsigned nblk = gridDim.x;
    const int n_pairs = (Q + 2 * KV) / 2;
    {
        const int tpb = PK_WARPS / A.ga;
        for (int base = blockIdx.x * tpb; base < n_pairs; base += nblk * tpb)
            for (int u = base; u < min(n_pairs, base + tpb); u++) {
                int mat, ra, rb, ri;
                pk_pair(A, u, mat, ra, rb, ri);
                const pk_mat &m = mat == 0 ? A.wq : mat == 1 ? A.wk : A.wv;
                if (threadIdx.x == 0 || threadIdx.x == 1) {
                    /* two rows of one pair: a few lines each, a warp-wide loop is overkill */
                    const uint8_t *p = m.w + (size_t)(threadIdx.x ? rb : ra) * m.nb1;
                    for (size_t o = 0; o < m.nb1; o += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(p + o));
                }
            }
        /* small vectors and the K/V rows attention will read (0..pos-1: the
         * history; row pos is written in phase A), spread over the blocks */
        if (blockIdx.x == 0) {
            pk_prefetch((const uint8_t *)A.attn_norm, (size_t)E * 4);
            pk_prefetch((const uint8_t *)A.ffn_norm, (size_t)E * 4);
        } else if (blockIdx.x == 1) {
            if (A.bq) pk_prefetch((const uint8_t *)A.bq, (size_t)Q * 4);
            if (A.bk) pk_prefetch((const uint8_t *)A.bk, (size_t)KV * 4);
            if (A.bv) pk_prefetch((const uint8_t *)A.bv, (size_t)KV * 4);
        } else if (nblk > 2) {
            const size_t hist = (size_t)p0 * KV * 2; /* bytes of rows 0..p0-1 per cache */
            const size_t per = (hist + (nblk - 2) - 1) / (nblk - 2), o0 = (size_t)(blockIdx.x - 2) * per;
            if (o0 < hist) {
                const size_t n = hist - o0 < per ? hist - o0 : per;
                pk_prefetch((const uint8_t *)A.kc + o0, n);
                pk_prefetch((const uint8_t *)A.vc + o0, n);
            }
        }
        pk_prefetch_phase(A.wo, E, A.gc);
        pk_prefetch_phase(A.wg, F, A.gd);
        pk_prefetch_phase(A.wu, F, A.gd);
        pk_prefetch_phase(A.wd, E, A.ge);
    }
}

/* the phases A..E of one layer (every thread of every block) */
template <int EPL>
__device__ __forceinline__ void pk_phases(const pk_args &A, int p0, const pk_sm &sm) {
    float *xs = sm.xs, *d1 = sm.d1, *s1 = sm.s1, *d2 = sm.d2;
    int8_t *q1 = sm.q1, *q2 = sm.q2;
    float2 *red2 = sm.red2;
    float *redf = sm.redf;
    const float *rope_c = sm.rope_c, *rope_s = sm.rope_s;
    const pk_act act = {q1, d1, s1, q2, d2};
    const int Q = A.n_head * A.hd, KV = A.n_head_kv * A.hd, E = A.E, F = A.F;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const unsigned nblk = gridDim.x;
    const int n_pairs = (Q + 2 * KV) / 2;

    /* ---- A: norm, q/k/v pairs, rope, K/V store ---- */
    pk_stage_norm(A.x, A.attn_norm, E, A.eps, xs, redf); /* its barriers also publish the rope table */
    pk_quant(xs, E, A.need_a, q1, d1, s1, q2, d2);
    PK_TS0(A, 2);
    {
        const int g = A.ga, tpb = PK_WARPS / g, team = warp / g, tt = (warp & (g - 1)) * 32 + lane;
        for (int base = blockIdx.x * tpb; base < n_pairs; base += nblk * tpb) {
            const int u = base + team;
            int mat = 0, ra = 0, rb = 0, ri = -1;
            float2 d = make_float2(0.0f, 0.0f), bias2 = make_float2(0.0f, 0.0f);
            if (u < n_pairs) {
                pk_pair(A, u, mat, ra, rb, ri);
                const float *bias = mat == 0 ? A.bq : mat == 1 ? A.bk : A.bv;
                if (bias && tt == 0) bias2 = make_float2(bias[ra], bias[rb]); /* in flight during the dot */
                const pk_mat &m = mat == 0 ? A.wq : mat == 1 ? A.wk : A.wv;
                d = pk_dot<1>(m.type, m.kq, m.w + (size_t)ra * m.nb1, m.w + (size_t)rb * m.nb1, E, tt, g * 32, act);
            }
            d = pk_team_sum(d, g, red2);
            if (u < n_pairs && tt == 0) {
                const float *bias = mat == 0 ? A.bq : mat == 1 ? A.bk : A.bv;
                float ya = bias ? d.x + bias2.x : d.x, yb = bias ? d.y + bias2.y : d.y;
                if (ri >= 0) {
                    const float c = rope_c[ri], s = rope_s[ri];
                    const float x0 = ya, x1 = yb;
                    ya = x0 * c - x1 * s;
                    yb = x0 * s + x1 * c;
                }
                float *out = mat == 0 ? A.q : mat == 1 ? A.k : A.v;
                out[ra] = ya;
                out[rb] = yb;
                if (mat) {
                    __half *cache = (mat == 1 ? A.kc : A.vc) + (size_t)p0 * KV;
                    cache[ra] = __float2half_rn(ya);
                    cache[rb] = __float2half_rn(yb);
                }
            }
        }
    }
    pk_grid_sync(A.bar, nblk, A.bar_fence, A.timing, 3);
    PK_TS0(A, 4);

    /* ---- B: attention (head, split) items; splits of >= PK_SPLIT_KEYS keys
     * (a short context takes one block per head and no merge) ---- */
    {
        int S = (p0 + PK_SPLIT_KEYS) / PK_SPLIT_KEYS;
        S = S < A.S ? S : A.S;
        for (int it = blockIdx.x; it < A.n_head * S; it += nblk) {
            __syncthreads(); /* the item's shared arrays are reused */
            attn_dec_item<EPL, PK_WARPS>(A.q, Q, A.kc, A.vc, A.pos, A.n_head, A.n_head / A.n_head_kv, A.hd, A.scale,
                                         S, A.att, A.part, S > 1 ? A.cnt : NULL, NULL, 0, it % A.n_head, 0,
                                         it / A.n_head);
        }
    }
    pk_grid_sync(A.bar, nblk, A.bar_fence, A.timing, 5);
    PK_TS0(A, 6);

    /* ---- C: x += att·Wo ---- */
    pk_stage_copy(A.att, Q, xs);
    pk_quant(xs, Q, A.need_c, q1, d1, s1, q2, d2);
    PK_TS0(A, 7);
    {
        const int g = A.gc, tpb = PK_WARPS / g, team = warp / g, tt = (warp & (g - 1)) * 32 + lane;
        for (int base = blockIdx.x * tpb; base < E; base += nblk * tpb) {
            const int row = base + team;
            float2 d = make_float2(0.0f, 0.0f);
            /* this team alone writes x[row] in this phase: its old value is requested before the dot */
            const float xr = row < E && tt == 0 ? __ldcg(A.x + row) : 0.0f;
            if (row < E) d = pk_dot<0>(A.wo.type, A.wo.kq, A.wo.w + (size_t)row * A.wo.nb1, NULL, Q, tt, g * 32, act);
            d = pk_team_sum(d, g, red2);
            if (row < E && tt == 0) A.x[row] = xr + d.x;
        }
    }
    pk_grid_sync(A.bar, nblk, A.bar_fence, A.timing, 8);
    PK_TS0(A, 9);

    /* ---- D: hb = silu(xb·Wg) * (xb·Wu) ---- */
    pk_stage_norm(A.x, A.ffn_norm, E, A.eps, xs, redf);
    pk_quant(xs, E, A.need_d, q1, d1, s1, q2, d2);
    PK_TS0(A, 10);
    {
        const int g = A.gd, tpb = PK_WARPS / g, team = warp / g, tt = (warp & (g - 1)) * 32 + lane;
        const int same = A.wg.type == A.wu.type;
        for (int base = blockIdx.x * tpb; base < F; base += nblk * tpb) {
            const int row = base + team;
            float2 d = make_float2(0.0f, 0.0f);
            if (row < F) {
                const uint8_t *ga = A.wg.w + (size_t)row * A.wg.nb1, *ua = A.wu.w + (size_t)row * A.wu.nb1;
                if (same) {
                    d = pk_dot<1>(A.wg.type, A.wg.kq, ga, ua, E, tt, g * 32, act);
                } else {
                    d.x = pk_dot<0>(A.wg.type, A.wg.kq, ga, NULL, E, tt, g * 32, act).x;
                    d.y = pk_dot<0>(A.wu.type, A.wu.kq, ua, NULL, E, tt, g * 32, act).x;
                }
            }
            d = pk_team_sum(d, g, red2);
            if (row < F && tt == 0) A.hb[row] = d.x / (1.0f + expf(-d.x)) * d.y;
        }
    }
    pk_grid_sync(A.bar, nblk, A.bar_fence, A.timing, 11);
    PK_TS0(A, 12);

    /* ---- E: x += hb·Wd ---- */
    pk_stage_copy(A.hb, F, xs);
    pk_quant(xs, F, A.need_e, q1, d1, s1, q2, d2);
    PK_TS0(A, 13);
    {
        const int g = A.ge, tpb = PK_WARPS / g, team = warp / g, tt = (warp & (g - 1)) * 32 + lane;
        for (int base = blockIdx.x * tpb; base < E; base += nblk * tpb) {
            const int row = base + team;
            float2 d = make_float2(0.0f, 0.0f);
            const float xr = row < E && tt == 0 ? __ldcg(A.x + row) : 0.0f;
            if (row < E) d = pk_dot<0>(A.wd.type, A.wd.kq, A.wd.w + (size_t)row * A.wd.nb1, NULL, F, tt, g * 32, act);
            d = pk_team_sum(d, g, red2);
            if (row < E && tt == 0) A.x[row] = xr + d.x;
        }
    }

}

__device__ __forceinline__ void pk_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    /* safe at once: dependents launch only after every block of this grid
     * executed it, i.e. when all of them are resident (see the top comment) */
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* one layer per launch (decode_block) */
template <int EPL>
__global__ void __launch_bounds__(PK_THREADS, 2) k_decode_block(pk_args A) {
    PK_SM_DECL(A.Kmax);
    PK_TS0(A, 0);
    /* pos is written before the graph (or op) starts and every kernel
     * before this one waited for its own predecessor before letting us
     * launch, so it may be read before our wait (as the weights): the rope
     * table and the prefetches overlap the previous kernel's tail */
    const int p0 = A.pos[0];
    pk_rope_table(A, p0, sm);
    if (A.pf) pk_prefetch_layer(A, p0);
    pk_pdl_wait();
    PK_TSMAX(A, 1);
    pk_phases<EPL>(A, p0, sm);
    if (A.timing) {
        __syncthreads();
        PK_TSMAX(A, 14);
    }
}

/* every layer in one launch (decode_layers): a grid barrier between layers
 * (x of layer l is read by layer l + 1); layer l + 1's rows are requested
 * into L2 while layer l runs (pf_next: small layers only, L2 holds both) */
#define PK_MAX_LAYERS 48
struct pk_multi {
    pk_args L[PK_MAX_LAYERS];
    int n;
    int pf_next;
};

template <int EPL>
__global__ void __launch_bounds__(PK_THREADS, 2) k_decode_layers(const __grid_constant__ pk_multi M) {
    PK_SM_DECL(M.L[0].Kmax);
    const int p0 = M.L[0].pos[0];
    pk_rope_table(M.L[0], p0, sm);
    if (M.L[0].pf) pk_prefetch_layer(M.L[0], p0);
    pk_pdl_wait();
    for (int l = 0; l < M.n; l++) {
        const pk_args &A = M.L[l];
        if (l > 0 && A.ff != M.L[l - 1].ff) pk_rope_table(A, p0, sm); /* the table is read in phase A only */
        if (M.pf_next && l + 1 < M.n) pk_prefetch_layer(M.L[l + 1], p0);
        pk_phases<EPL>(A, p0, sm);
        if (l + 1 < M.n) pk_grid_sync(A.bar, gridDim.x, A.bar_fence, 0, 0);
    }
}

/* ==== weights in shared memory: every layer in one launch (LLORCH_CUDA_PERSIST=2) ====
 *
 * Why: the kernels above read each phase's weight rows after the grid
 * barrier that makes its activation ready, so every phase pays HBM/L2
 * latency chains on its critical path (docs/PERF.md: the dot phases ran at
 * 0.5-1.1 TB/s). Weights depend on no activation, so here every block
 * copies ITS rows of the next layer's matrices into shared memory
 * (cp.async, 16-byte chunks) a whole layer ahead: after a phase's dots the
 * block refills that phase's region with the next layer's rows, which
 * arrive while the other four phases of this layer run. The dots then read
 * weights from shared memory; what stays on the critical path is the five
 * grid barriers, the activation staging (from L2) and the attention.
 * Qwen2.5-0.5B: ~10 MB of weights per layer over 132 blocks = ~80 KB per
 * block, which one block per SM holds next to the activation staging.
 *
 * Rows: for each matrix of R rows, block b owns the contiguous rows
 * [b*R/nblk, (b+1)*R/nblk) (so the copy is one contiguous byte range);
 * its warps share them in teams (pw_units). Phases, grid barrier after each
 * (after E only between layers):
 *   A  rmsnorm(x)*attn_norm quantized in every block; q/k/v rows (+ bias),
 *      NOT roped: written to q/k/v
 *   B  attn_rope.cuh items (head, split): rope of q and k, the K/V store of
 *      row pos, attention, split merge → att
 *   C  att quantized; o rows: x[r] += dot
 *   D  rmsnorm(x)*ffn_norm quantized; gate/up rows: hb = silu(g)*u
 *   E  hb quantized; down rows: x[r] += dot
 * cp.async groups: the prologue commits A, C, D, E of layer 0; after phase
 * X of layer l the block commits X of layer l + 1 (an empty group past the
 * last layer), so before phase X the group it needs is always the 4th most
 * recent: cp.async.wait_group 3, then __syncthreads (each thread waits for
 * its own copies; the barrier publishes them).
 * The dots are the same generic per-format dots as above (pk_dot); only the
 * fp32 summation order differs from the composition. Grid: what is
 * co-resident (occupancy API), 2 blocks per SM when the regions fit, else 1;
 * the barrier words and the deadlock argument are those above. */
enum { PW_Q = 0, PW_K, PW_V, PW_O, PW_G, PW_U, PW_D, PW_MAT };

struct pw_layer {
    pk_mat m[PW_MAT];
    const float *bq, *bk, *bv, *attn_norm, *ffn_norm, *ff;
    __half *kc, *vc;
    rope_k rope;
    float eps, scale;
    int need_a, need_c, need_d, need_e;
};

struct pw_args {
    pw_layer L[PK_MAX_LAYERS];
    int n, E, F, n_head, n_head_kv, hd, Kmax, S;
    const int32_t *pos;
    float *x, *q, *k, *v, *att, *hb, *part;
    unsigned *cnt, *bar;
    unsigned woff[PW_MAT]; /* each matrix's region: byte offset in dynamic shared memory */
    int timing;            /* LLORCH_CUDA_PERSIST_TIMING=1: pk_ts as PW_T's accumulators */
};

/* Timing (diagnostics only): block 0's thread 0 adds the %globaltimer time
 * of each step, summed over the layers, into pk_ts[i] (zeroed at entry):
 * 0 entry to past the PDL wait; per phase A..E: 1 A staging, 2 A copy
 * wait, 3 A dots, 4 A barrier, 5 B items, 6 B barrier, 7 C staging + copy
 * wait, 8 C dots, 9 C barrier, 10 D staging + wait, 11 D dots, 12 D
 * barrier, 13 E staging + wait, 14 E dots, 15 E barrier. Block 0's view:
 * a barrier's time includes the other blocks' lateness. */
#define PW_T(i)                                  \
    do {                                         \
        if (tm) {                                \
            const unsigned long long t_ = pk_now(); \
            pk_ts[i] += t_ - t_prev;             \
            t_prev = t_;                         \
        }                                        \
    } while (0)

__device__ __forceinline__ int pw_rows(const pw_args &A, int i) {
    const int Q = A.n_head * A.hd, KV = A.n_head_kv * A.hd;
    return i == PW_Q ? Q : i == PW_K || i == PW_V ? KV : i == PW_G || i == PW_U ? A.F : A.E;
}

/* this block's rows [r0, r1) of a matrix of R rows */
__device__ __forceinline__ void pw_range(int R, int &r0, int &r1) {
    r0 = (int)((long long)blockIdx.x * R / gridDim.x);
    r1 = (int)((long long)(blockIdx.x + 1) * R / gridDim.x);
}

/* Starts the copy of this block's rows of matrix i of layer W into its
 * region: the 16-byte chunks of [g0 & ~15, g1 & ~15) by cp.async (the bytes
 * before g0 belong to the previous rows of the same tensor, whose base is
 * 16-aligned: host check), the tail [g1 & ~15, g1) by one cp.async with a
 * source size (never past the tensor's end; a byte loop there would put a
 * memory round trip before the next barrier). Row r lands at region +
 * (g0 & 15) + (r - r0) * nb1. */
__device__ __forceinline__ void pw_copy(const pw_args &A, const pw_layer &W, int i, unsigned char *smem) {
    int r0, r1;
    pw_range(pw_rows(A, i), r0, r1);
    if (r1 <= r0) return;
    const pk_mat &m = W.m[i];
    const uintptr_t g0 = (uintptr_t)(m.w + (size_t)r0 * m.nb1), g1 = g0 + (size_t)(r1 - r0) * m.nb1;
    const uintptr_t a0 = g0 & ~(uintptr_t)15, a1 = g1 & ~(uintptr_t)15;
    unsigned char *region = smem + A.woff[i];
    const unsigned sb = (unsigned)__cvta_generic_to_shared(region);
    for (uintptr_t o = (uintptr_t)threadIdx.x * 16; o < a1 - a0; o += (uintptr_t)PK_THREADS * 16)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sb + (unsigned)o), "l"(a0 + o) : "memory");
    /* the tail: one 16-byte copy that reads only g1 - a1 bytes (zero-fills the rest) */
    if (g1 > a1 && threadIdx.x == 0)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(sb + (unsigned)(a1 - a0)), "l"(a1),
                     "r"((unsigned)(g1 - a1))
                     : "memory");
}

/* row r of matrix i (r in this block's range) in shared memory */
__device__ __forceinline__ const uint8_t *pw_row(const pw_args &A, const pw_layer &W, int i,
                                                 const unsigned char *smem, int r) {
    int r0, r1;
    pw_range(pw_rows(A, i), r0, r1);
    const pk_mat &m = W.m[i];
    const uintptr_t g0 = (uintptr_t)(m.w + (size_t)r0 * m.nb1);
    return smem + A.woff[i] + (g0 & 15) + (size_t)(r - r0) * m.nb1;
}

/* phase ph (0 A, 1 C, 2 D, 3 E) of layer l: copies issued, one group committed */
__device__ __forceinline__ void pw_issue(const pw_args &A, int l, int ph, unsigned char *smem) {
    if (l < A.n) {
        const pw_layer &W = A.L[l];
        if (ph == 0) {
            pw_copy(A, W, PW_Q, smem);
            pw_copy(A, W, PW_K, smem);
            pw_copy(A, W, PW_V, smem);
        } else if (ph == 1) {
            pw_copy(A, W, PW_O, smem);
        } else if (ph == 2) {
            pw_copy(A, W, PW_G, smem);
            pw_copy(A, W, PW_U, smem);
        } else {
            pw_copy(A, W, PW_D, smem);
        }
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
}

/* the group of the phase about to run (4th most recent) is in, for every thread */
__device__ __forceinline__ void pw_wait() {
    asm volatile("cp.async.wait_group 3;" ::: "memory");
    __syncthreads();
}

/* nr units of work over the block's warps in teams of g warps (the largest
 * power of two with nr * g <= PK_WARPS, at least 1): dot(u, tt, nt) is team
 * thread tt's partial (of nt), done(u, sum) runs in the team's first
 * thread. Block-uniform loop (pk_team_sum synchronizes for g > 1). */
template <class Dot, class Done>
__device__ __forceinline__ void pw_units(int nr, float2 *red, Dot dot, Done done) {
    int g = 1;
    while (g < PK_WARPS && nr * 2 * g <= PK_WARPS) g *= 2;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int tpb = PK_WARPS / g, team = warp / g, tt = (warp & (g - 1)) * 32 + lane;
    for (int base = 0; base < nr; base += tpb) {
        const int u = base + team;
        float2 d = make_float2(0.0f, 0.0f);
        if (u < nr) d = dot(u, tt, g * 32);
        d = pk_team_sum(d, g, red);
        if (u < nr && tt == 0) done(u, d);
    }
}

/* x[r] += dot(row r of matrix i, the staged activation of width K) for
 * this block's rows of i (o in C, down in E): this block alone writes
 * them in the phase */
__device__ __forceinline__ void pw_residual(const pw_args &A, const pw_layer &W, int i, int K,
                                            const unsigned char *smem, const pk_act &act, float2 *red) {
    int r0, r1;
    pw_range(A.E, r0, r1);
    float xr = 0.0f; /* the team's first thread: x[row]'s old value, requested before the dot */
    pw_units(
        r1 - r0, red,
        [&](int u, int tt, int nt) {
            if (tt == 0) xr = __ldcg(A.x + r0 + u);
            const pk_mat &m = W.m[i];
            return pk_dot<0>(m.type, m.kq, pw_row(A, W, i, smem, r0 + u), NULL, K, tt, nt, act);
        },
        [&](int u, float2 d) { A.x[r0 + u] = xr + d.x; });
}

/* the layer's K/V history rows 0..p0-1 requested into L2, spread over the
 * blocks (attention reads them in phase B) */
__device__ __forceinline__ void pw_prefetch_kv(const pw_args &A, const pw_layer &W, int p0) {
    const size_t hist = (size_t)p0 * A.n_head_kv * A.hd * 2;
    const size_t per = (hist + gridDim.x - 1) / gridDim.x, o0 = (size_t)blockIdx.x * per;
    if (o0 >= hist) return;
    const size_t n = hist - o0 < per ? hist - o0 : per;
    pk_prefetch((const uint8_t *)W.kc + o0, n);
    pk_prefetch((const uint8_t *)W.vc + o0, n);
}

template <int EPL>
__global__ void __launch_bounds__(PK_THREADS, 1) k_pw_layers(const __grid_constant__ pw_args A) {
    PK_SM_DECL(A.Kmax);
    unsigned char *const smem = pk_smem;
    const pk_act act = {sm.q1, sm.d1, sm.s1, sm.q2, sm.d2};
    const int Q = A.n_head * A.hd, E = A.E, F = A.F, group = A.n_head / A.n_head_kv;
    const unsigned nblk = gridDim.x;
    const int p0 = A.pos[0]; /* written before the step (see k_decode_block) */
    const bool tm = A.timing && blockIdx.x == 0 && threadIdx.x == 0;
    unsigned long long t_prev = tm ? pk_now() : 0;
    if (tm)
        for (int i = 0; i < 16; i++) pk_ts[i] = 0;

    /* before the wait: the rope table of layer 0 and every weight copy of layer 0 */
    if ((int)threadIdx.x < A.L[0].rope.n_rot / 2)
        rope_cs(A.L[0].rope, p0, threadIdx.x, A.L[0].ff, &sm.rope_c[threadIdx.x], &sm.rope_s[threadIdx.x]);
    for (int ph = 0; ph < 4; ph++) pw_issue(A, 0, ph, smem);
    pk_pdl_wait();
    PW_T(0);

    /* attention splits: at most A.S, at least PK_SPLIT_KEYS keys each */
    int S = (p0 + PK_SPLIT_KEYS) / PK_SPLIT_KEYS;
    S = S < A.S ? S : A.S;

    for (int l = 0; l < A.n; l++) {
        const pw_layer &W = A.L[l];
        if (l > 0 && W.ff != A.L[l - 1].ff && (int)threadIdx.x < W.rope.n_rot / 2) /* read in B, after barriers */
            rope_cs(W.rope, p0, threadIdx.x, W.ff, &sm.rope_c[threadIdx.x], &sm.rope_s[threadIdx.x]);
        pw_prefetch_kv(A, W, p0);

        /* ---- A: q/k/v rows (+ bias) ---- */
        pk_stage_norm(A.x, W.attn_norm, E, W.eps, sm.xs, sm.redf);
        pk_quant(sm.xs, E, W.need_a, sm.q1, sm.d1, sm.s1, sm.q2, sm.d2);
        PW_T(1);
        pw_wait();
        PW_T(2);
        {
            int q0, q1, k0, k1, v0, v1;
            pw_range(Q, q0, q1);
            pw_range(pw_rows(A, PW_K), k0, k1);
            pw_range(pw_rows(A, PW_V), v0, v1);
            const int nq = q1 - q0, nk = k1 - k0, nv = v1 - v0;
            float bias = 0.0f; /* the team's first thread: the row's bias, requested before the dot */
            pw_units(
                nq + nk + nv, sm.red2,
                [&](int u, int tt, int nt) {
                    const int i = u < nq ? PW_Q : u < nq + nk ? PW_K : PW_V;
                    const int r = i == PW_Q ? q0 + u : i == PW_K ? k0 + u - nq : v0 + u - nq - nk;
                    const float *b = i == PW_Q ? W.bq : i == PW_K ? W.bk : W.bv;
                    if (tt == 0) bias = b ? b[r] : 0.0f;
                    const pk_mat &m = W.m[i];
                    return pk_dot<0>(m.type, m.kq, pw_row(A, W, i, smem, r), NULL, E, tt, nt, act);
                },
                [&](int u, float2 d) {
                    if (u < nq) A.q[q0 + u] = d.x + bias;
                    else if (u < nq + nk) A.k[k0 + u - nq] = d.x + bias;
                    else A.v[v0 + u - nq - nk] = d.x + bias;
                });
        }
        PW_T(3);
        __syncthreads();
        pw_issue(A, l + 1, 0, smem);
        pk_grid_sync(A.bar, nblk, 0, 0, 0);
        PW_T(4);

        /* ---- B: attention items ---- */
        for (int it = blockIdx.x; it < A.n_head * S; it += nblk) {
            __syncthreads(); /* the item's shared arrays are reused */
            ar_item<EPL, PK_WARPS>(A.q, A.k, A.v, p0, it % A.n_head, it / A.n_head, A.n_head, group, A.hd, W.scale,
                                   S, W.rope, sm.rope_c, sm.rope_s, W.kc, W.vc, A.att, A.part, A.cnt, NULL, NULL,
                                   NULL);
        }
        PW_T(5);
        pk_grid_sync(A.bar, nblk, 0, 0, 0);
        PW_T(6);

        /* ---- C: x += att·Wo ---- */
        pk_stage_copy(A.att, Q, sm.xs);
        pk_quant(sm.xs, Q, W.need_c, sm.q1, sm.d1, sm.s1, sm.q2, sm.d2);
        pw_wait();
        PW_T(7);
        pw_residual(A, W, PW_O, Q, smem, act, sm.red2);
        PW_T(8);
        __syncthreads();
        pw_issue(A, l + 1, 1, smem);
        pk_grid_sync(A.bar, nblk, 0, 0, 0);
        PW_T(9);

        /* ---- D: hb = silu(xb·Wg) * (xb·Wu) ---- */
        pk_stage_norm(A.x, W.ffn_norm, E, W.eps, sm.xs, sm.redf);
        pk_quant(sm.xs, E, W.need_d, sm.q1, sm.d1, sm.s1, sm.q2, sm.d2);
        pw_wait();
        PW_T(10);
        {
            int r0, r1;
            pw_range(F, r0, r1);
            const pk_mat &mg = W.m[PW_G], &mu = W.m[PW_U];
            pw_units(
                r1 - r0, sm.red2,
                [&](int u, int tt, int nt) {
                    const uint8_t *ga = pw_row(A, W, PW_G, smem, r0 + u), *ua = pw_row(A, W, PW_U, smem, r0 + u);
                    if (mg.type == mu.type) return pk_dot<1>(mg.type, mg.kq, ga, ua, E, tt, nt, act);
                    return make_float2(pk_dot<0>(mg.type, mg.kq, ga, NULL, E, tt, nt, act).x,
                                       pk_dot<0>(mu.type, mu.kq, ua, NULL, E, tt, nt, act).x);
                },
                [&](int u, float2 d) { A.hb[r0 + u] = d.x / (1.0f + expf(-d.x)) * d.y; });
        }
        PW_T(11);
        __syncthreads();
        pw_issue(A, l + 1, 2, smem);
        pk_grid_sync(A.bar, nblk, 0, 0, 0);
        PW_T(12);

        /* ---- E: x += hb·Wd ---- */
        pk_stage_copy(A.hb, F, sm.xs);
        pk_quant(sm.xs, F, W.need_e, sm.q1, sm.d1, sm.s1, sm.q2, sm.d2);
        pw_wait();
        PW_T(13);
        pw_residual(A, W, PW_D, F, smem, act, sm.red2);
        PW_T(14);
        __syncthreads();
        pw_issue(A, l + 1, 3, smem);
        if (l + 1 < A.n) pk_grid_sync(A.bar, nblk, 0, 0, 0);
        PW_T(15);
    }
    asm volatile("cp.async.wait_all;" ::: "memory"); /* nothing may be in flight at exit */
}

/* ---- host ------------------------------------------------------------------------------------ */
static int pk_type_ok(int t) {
    switch (t) {
#define PK_OK(T) case T:
        PK_TYPES(PK_OK)
#undef PK_OK
        return 1;
    default: return 0;
    }
}

static int pk_mat_make(const eng_w *w, int64_t ne0, int64_t ne1, pk_mat *m) {
    if (!w || !w->data || !pk_type_ok(w->type) || w->ne0 != ne0 || w->ne1 != ne1 || w->ne2 != 1) return -1;
    if (((uintptr_t)w->data & 3) || (w->nb1 & 1)) return -1;
    m->w = (const uint8_t *)w->data;
    m->nb1 = w->nb1;
    m->type = w->type;
    m->kq = cu_vdt_of(w->type) == VDT_Q8_K;
    if (m->kq && ne0 % 256) return -1;
    return 0;
}

/* largest power of two g <= PK_WARPS with units * g <= total warps (>= 1) */
static int pk_team(int units, int total_warps) {
    int g = 1;
    while (g < PK_WARPS && (int64_t)units * (2 * g) <= total_warps) g *= 2;
    return g;
}

static int env_int(const char *name, int def) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : def;
}

/* the phase stamps of the last timed launch (LLORCH_CUDA_PERSIST_TIMING=1) */
extern "C" int llorch_cuda_persist_stamps(unsigned long long out[16]) {
    return cudaMemcpyFromSymbol(out, pk_ts, sizeof(unsigned long long) * 16) == cudaSuccess ? 0 : -1;
}

/* persistent launches enqueued by this process (tests: did the fast path run?) */
extern "C" unsigned long llorch_cuda_persist_launches;
unsigned long llorch_cuda_persist_launches = 0;

#define PK_SMEM_MAX (200 * 1024)
#define PW_SMEM_MAX (227 * 1024) /* H100's opt-in shared memory per block (static included) */

/* Called once per context at creation (backend.cu), outside any capture:
 * raises the dynamic shared-memory limit of every instantiation. */
void cu_persist_init(cu_ctx *c) {
    (void)c;
    if (cudaFuncSetAttribute(k_decode_block<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, PK_SMEM_MAX) !=
            cudaSuccess ||
        cudaFuncSetAttribute(k_decode_block<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, PK_SMEM_MAX) !=
            cudaSuccess ||
        cudaFuncSetAttribute(k_decode_layers<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, PK_SMEM_MAX) !=
            cudaSuccess ||
        cudaFuncSetAttribute(k_decode_layers<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, PK_SMEM_MAX) !=
            cudaSuccess)
        (void)cudaGetLastError(); /* then the occupancy query below fails for big smem: composition */
    /* the weights-in-shared-memory kernel: all that is left beside its static arrays */
    const void *pw[2] = {(const void *)k_pw_layers<2>, (const void *)k_pw_layers<4>};
    for (int i = 0; i < 2; i++) {
        cudaFuncAttributes fa;
        if (cudaFuncGetAttributes(&fa, pw[i]) != cudaSuccess ||
            cudaFuncSetAttribute(pw[i], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)(PW_SMEM_MAX - fa.sharedSizeBytes)) != cudaSuccess)
            (void)cudaGetLastError();
    }
}

/* The grid of kernel kfn at smem (occupancy x SMs, capped by
 * LLORCH_CUDA_PERSIST_BPS) and what depends on it: team sizes, attention
 * splits, scratch and barrier words, into A. 0, or -1 (does not fit). */
static int pk_grid(cu_ctx *c, const void *kfn, pk_args &A, size_t smem, int *nblk_out) {
    static const void *q_fn[4];
    static size_t q_smem[4];
    static int q_bps[4], q_n;
    int bps = -1;
    for (int i = 0; i < q_n; i++)
        if (q_fn[i] == kfn && q_smem[i] == smem) bps = q_bps[i];
    if (bps < 0) {
        int nb = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, kfn, PK_THREADS, smem) != cudaSuccess) nb = 0;
        (void)cudaGetLastError();
        const int i = q_n < 4 ? q_n++ : 0;
        q_fn[i] = kfn;
        q_smem[i] = smem;
        q_bps[i] = bps = nb;
    }
    if (bps < 1) return -1;
    const int cap = env_int("LLORCH_CUDA_PERSIST_BPS", 2);
    if (cap >= 1 && bps > cap) bps = cap;
    const int nblk = bps * c->sm_count;
    const int tw = nblk * PK_WARPS;
    const int Q = A.n_head * A.hd, KV = A.n_head_kv * A.hd;
    A.ga = pk_team((Q + 2 * KV) / 2, tw);
    A.gc = pk_team(A.E, tw);
    A.gd = pk_team(A.F, tw);
    A.ge = pk_team(A.E, tw);
    /* attention splits: at most about one item per block, within the scratch */
    int S = nblk / A.n_head;
    S = S < 1 ? 1 : S > 32 ? 32 : S;
    while (S > 1 && (size_t)A.n_head * S * (A.hd + 2) > CU_ATTN_SCRATCH_FLOATS) S--;
    A.S = S;
    A.cnt = S > 1 ? c->attn_cnt : NULL;
    A.part = c->attn_part;
    A.bar = c->attn_cnt + CU_ATTN_MAX_CNT - 2;
    *nblk_out = nblk;
    return 0;
}

/* cudaLaunchKernelEx of kfn with PDL inside captures (as cu_launch) and,
 * opt-in, the cooperative attribute */
template <typename P>
static void pk_enqueue(cu_ctx *c, void (*kfn)(P), const P &arg, int nblk, size_t smem) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)nblk);
    cfg.blockDim = dim3(PK_THREADS);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute at[2];
    int na = 0;
    if (c->pdl == 2 || (c->pdl == 1 && c->capturing)) {
        at[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[na].val.programmaticStreamSerializationAllowed = 1;
        na++;
    }
    if (env_int("LLORCH_CUDA_PERSIST_COOP", 0) == 1) {
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

/* one layer's kernel arguments; 0, or -1 when the layer is not covered */
static int pk_setup(const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t, pk_args *Ap,
                    size_t *smem_out, int *epl_out) {
    pk_args &A = *Ap;
    const int E = (int)b->wq->ne0, F = (int)b->w_gate->ne1, hd = b->head_dim;
    const int Q = b->n_head * hd, KV = b->n_head_kv * hd;
    if (b->n_head <= 0 || b->n_head_kv <= 0 || b->n_head % b->n_head_kv || hd % 2) return -1;
    if (b->n_head > CU_ATTN_MAX_CNT - 2) return -1;
    const int epl = (hd + 31) / 32;
    if (epl != 2 && epl != 4) return -1;
    if (b->rope.n_rot <= 0 || b->rope.n_rot % 2 || b->rope.n_rot > hd) return -1;
    if (E % 32 || F % 32 || Q % 32) return -1;
    memset(&A, 0, sizeof A);
    if (pk_mat_make(b->wq, E, Q, &A.wq) || pk_mat_make(b->wk, E, KV, &A.wk) || pk_mat_make(b->wv, E, KV, &A.wv) ||
        pk_mat_make(b->wo, Q, E, &A.wo) || pk_mat_make(b->w_gate, E, F, &A.wg) || pk_mat_make(b->w_up, E, F, &A.wu) ||
        pk_mat_make(b->w_down, F, E, &A.wd))
        return -1;
    int Kmax = E > Q ? E : Q;
    Kmax = Kmax > F ? Kmax : F;
    /* xs f32 + d1, s1, d2 per 32 + q1, q2 int8 */
    const size_t smem = (size_t)Kmax * 4 + 3 * (size_t)(Kmax / 32) * 4 + 2 * (size_t)Kmax;
    if (smem > PK_SMEM_MAX) return -1;
    /* big layers (Llama-2-7B: 113 MB) measured slower than the tuned
     * composition (docs/PERF.md): only layers up to LLORCH_CUDA_PERSIST_MAXMB */
    const double mb = (double)(b->wq->nb2 + b->wk->nb2 + b->wv->nb2 + b->wo->nb2 + b->w_gate->nb2 + b->w_up->nb2 +
                               b->w_down->nb2) / (1024.0 * 1024.0);
    if (mb > (double)env_int("LLORCH_CUDA_PERSIST_MAXMB", 64)) return -1;
    A.bq = b->bq;
    A.bk = b->bk;
    A.bv = b->bv;
    A.attn_norm = b->attn_norm;
    A.ffn_norm = b->ffn_norm;
    A.E = E;
    A.F = F;
    A.n_head = b->n_head;
    A.n_head_kv = b->n_head_kv;
    A.hd = hd;
    A.Kmax = Kmax;
    A.eps = b->eps;
    A.scale = b->scale;
    A.rope = cu_rope_params(&b->rope);
    A.ff = b->rope.freq_factors;
    A.kc = (__half *)b->k_cache;
    A.vc = (__half *)b->v_cache;
    A.pos = pos;
    A.x = x;
    A.q = t->q;
    A.k = t->k;
    A.v = t->v;
    A.att = t->att;
    A.hb = t->hb;
    A.need_a = (A.wq.kq || A.wk.kq || A.wv.kq ? 2 : 0) | (!A.wq.kq || !A.wk.kq || !A.wv.kq ? 1 : 0);
    A.need_c = A.wo.kq ? 2 : 1;
    A.need_d = (A.wg.kq || A.wu.kq ? 2 : 0) | (!A.wg.kq || !A.wu.kq ? 1 : 0);
    A.need_e = A.wd.kq ? 2 : 1;
    A.pf = env_int("LLORCH_CUDA_PERSIST_PF", 1) != 0;
    A.bar_fence = env_int("LLORCH_CUDA_PERSIST_BAR", 1) == 0;
    A.timing = env_int("LLORCH_CUDA_PERSIST_TIMING", 0) == 1;
    *smem_out = smem;
    *epl_out = epl;
    return 0;
}

/* ---- host: the weights-in-shared-memory kernel (LLORCH_CUDA_PERSIST=2) -------------------- */
extern "C" unsigned long llorch_cuda_pkw_launches; /* tests: did it run? */
unsigned long llorch_cuda_pkw_launches = 0;


/* Every layer of b in one launch; 0, or -1 when not covered (nothing
 * enqueued): a layer outside pk_setup's cover, layers of different shapes,
 * head_dim % 32 != 0 (attn_rope.cuh), or regions that do not fit beside
 * the activation staging at 1 block per SM. */
static int pw_decode_layers(cu_ctx *c, const eng_block_w *b, int n, float *x, const int32_t *pos,
                            const eng_block_tmp *t) {
    if (n < 1 || n > PK_MAX_LAYERS || b[0].head_dim % 32 || c->attn_unfused) return -1;
    static pw_args P; /* ~14 KB of kernel parameters, built here and copied by the launch */
    static const int rows_of[PW_MAT] = {0, 1, 1, 2, 3, 3, 2};   /* Q, KV, KV, E, F, F, E */
    size_t act = 0, nb1max[PW_MAT] = {0};
    int epl = 0;
    for (int l = 0; l < n; l++) {
        pk_args A;
        size_t sm_l;
        int epl_l;
        if (pk_setup(&b[l], x, pos, t, &A, &sm_l, &epl_l)) return -1;
        if (l && (epl_l != epl || A.E != P.E || A.F != P.F || A.n_head != P.n_head || A.n_head_kv != P.n_head_kv ||
                  A.hd != P.hd || A.Kmax != P.Kmax))
            return -1;
        /* one rope table for all layers (rebuilt only where freq_factors change) */
        const rope_k &r0 = P.L[0].rope;
        if (l && (A.rope.n_rot != r0.n_rot || A.rope.neox != r0.neox || A.rope.theta_scale != r0.theta_scale ||
                  A.rope.freq_scale != r0.freq_scale || A.rope.ext_factor != r0.ext_factor ||
                  A.rope.attn_factor != r0.attn_factor || A.rope.corr0 != r0.corr0 || A.rope.corr1 != r0.corr1))
            return -1;
        epl = epl_l;
        act = sm_l;
        P.E = A.E;
        P.F = A.F;
        P.n_head = A.n_head;
        P.n_head_kv = A.n_head_kv;
        P.hd = A.hd;
        P.Kmax = A.Kmax;
        pw_layer &W = P.L[l];
        const pk_mat ms[PW_MAT] = {A.wq, A.wk, A.wv, A.wo, A.wg, A.wu, A.wd};
        for (int i = 0; i < PW_MAT; i++) {
            if ((uintptr_t)ms[i].w & 15) return -1; /* pw_copy rounds row ranges down to 16 within the tensor */
            W.m[i] = ms[i];
            if (ms[i].nb1 > nb1max[i]) nb1max[i] = ms[i].nb1;
        }
        W.bq = A.bq;
        W.bk = A.bk;
        W.bv = A.bv;
        W.attn_norm = A.attn_norm;
        W.ffn_norm = A.ffn_norm;
        W.ff = A.ff;
        W.kc = A.kc;
        W.vc = A.vc;
        W.rope = A.rope;
        W.eps = A.eps;
        W.scale = A.scale;
        W.need_a = A.need_a;
        W.need_c = A.need_c;
        W.need_d = A.need_d;
        W.need_e = A.need_e;
    }
    const int R[4] = {P.n_head * P.hd, P.n_head_kv * P.hd, P.E, P.F};
    const void *kfn = epl == 2 ? (const void *)k_pw_layers<2> : (const void *)k_pw_layers<4>;
    /* 2 blocks per SM when both fit (their regions are half as big), else 1;
     * LLORCH_CUDA_PKW_BPS caps it (A/B) */
    const int cap = env_int("LLORCH_CUDA_PKW_BPS", 2);
    int nblk = 0;
    size_t smem = 0;
    for (int bps = cap < 1 ? 1 : cap > 2 ? 2 : cap; bps >= 1 && !nblk; bps--) {
        const int nb = bps * c->sm_count;
        size_t off = (act + 15) & ~(size_t)15;
        for (int i = 0; i < PW_MAT; i++) {
            P.woff[i] = (unsigned)off;
            const size_t most = (size_t)((R[rows_of[i]] + nb - 1) / nb) * nb1max[i] + 16;
            off += (most + 15) & ~(size_t)15;
        }
        if (off > PW_SMEM_MAX) continue;
        static const void *q_fn[4];
        static size_t q_smem[4];
        static int q_occ[4], q_n;
        int occ = -1;
        for (int i = 0; i < q_n; i++)
            if (q_fn[i] == kfn && q_smem[i] == off) occ = q_occ[i];
        if (occ < 0) {
            if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kfn, PK_THREADS, off) != cudaSuccess) occ = 0;
            (void)cudaGetLastError();
            const int i = q_n < 4 ? q_n++ : 0;
            q_fn[i] = kfn;
            q_smem[i] = off;
            q_occ[i] = occ;
        }
        if (occ >= bps) {
            nblk = nb;
            smem = off;
        }
    }
    if (!nblk) return -1;
    int S = nblk / P.n_head;
    S = S < 1 ? 1 : S > 32 ? 32 : S;
    while (S > 1 && (size_t)P.n_head * S * (P.hd + 2) > CU_ATTN_SCRATCH_FLOATS) S--;
    P.n = n;
    P.S = S;
    P.pos = pos;
    P.x = x;
    P.q = t->q;
    P.k = t->k;
    P.v = t->v;
    P.att = t->att;
    P.hb = t->hb;
    P.part = c->attn_part;
    P.cnt = c->attn_cnt;
    P.bar = c->attn_cnt + CU_ATTN_MAX_CNT - 2;
    P.timing = env_int("LLORCH_CUDA_PERSIST_TIMING", 0) == 1;
    if (epl == 2) pk_enqueue(c, k_pw_layers<2>, P, nblk, smem);
    else pk_enqueue(c, k_pw_layers<4>, P, nblk, smem);
    llorch_cuda_pkw_launches++;
    return 0;
}

int cu_decode_block(cu_ctx *c, const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t) {
    /* read at every call (eager decode, or a graph capture): tests and
     * benchmarks switch them within one process */
    if (env_int("LLORCH_CUDA_PERSIST", 0) != 1 || c->prof) return -1; /* opt-in; profiling times the composed ops */
    pk_args A;
    size_t smem;
    int epl, nblk;
    if (pk_setup(b, x, pos, t, &A, &smem, &epl)) return -1;
    if (epl == 2) {
        if (pk_grid(c, (const void *)k_decode_block<2>, A, smem, &nblk)) return -1;
        pk_enqueue(c, k_decode_block<2>, A, nblk, smem);
    } else {
        if (pk_grid(c, (const void *)k_decode_block<4>, A, smem, &nblk)) return -1;
        pk_enqueue(c, k_decode_block<4>, A, nblk, smem);
    }
    return 0;
}

/* launches of the all-layers kernel (tests) */
extern "C" unsigned long llorch_cuda_persist_multi_launches;
unsigned long llorch_cuda_persist_multi_launches = 0;

int cu_decode_layers(cu_ctx *c, const eng_block_w *b, int n, float *x, const int32_t *pos, const eng_block_tmp *t) {
    if (c->prof) return -1; /* profiling times the composed ops */
    const int mode = env_int("LLORCH_CUDA_PERSIST", 0);
    if (mode == 2) return pw_decode_layers(c, b, n, x, pos, t);
    /* opt-in on top of LLORCH_CUDA_PERSIST=1: measured slower than a launch per layer (docs/PERF.md) */
    if (mode != 1 || env_int("LLORCH_CUDA_PERSIST_LAYERS", 0) != 1) return -1;
    if (n < 1 || n > PK_MAX_LAYERS) return -1;
    /* ~21 KB of kernel parameters: static, built and copied at launch (one per process
     * is enough: launches are enqueued from one thread per context, and the
     * launch copies the parameters) */
    static pk_multi M;
    size_t smem = 0, sm_l;
    int epl = 0, epl_l, nblk;
    double bytes = 0;
    for (int l = 0; l < n; l++) {
        if (pk_setup(&b[l], x, pos, t, &M.L[l], &sm_l, &epl_l)) return -1;
        /* one grid for all: the shapes must agree (types may differ) */
        if (l && (epl_l != epl || M.L[l].E != M.L[0].E || M.L[l].F != M.L[0].F || M.L[l].n_head != M.L[0].n_head ||
                  M.L[l].n_head_kv != M.L[0].n_head_kv || M.L[l].Kmax != M.L[0].Kmax))
            return -1;
        epl = epl_l;
        smem = sm_l > smem ? sm_l : smem;
        bytes += (double)(b[l].wq->nb2 + b[l].wk->nb2 + b[l].wv->nb2 + b[l].wo->nb2 + b[l].w_gate->nb2 +
                          b[l].w_up->nb2 + b[l].w_down->nb2);
    }
    const void *kfn = epl == 2 ? (const void *)k_decode_layers<2> : (const void *)k_decode_layers<4>;
    if (pk_grid(c, kfn, M.L[0], smem, &nblk)) return -1;
    for (int l = 1; l < n; l++) {
        M.L[l].ga = M.L[0].ga;
        M.L[l].gc = M.L[0].gc;
        M.L[l].gd = M.L[0].gd;
        M.L[l].ge = M.L[0].ge;
        M.L[l].S = M.L[0].S;
        M.L[l].cnt = M.L[0].cnt;
        M.L[l].part = M.L[0].part;
        M.L[l].bar = M.L[0].bar;
        M.L[l].timing = 0;
    }
    M.L[0].timing = 0;
    M.n = n;
    M.pf_next = bytes / n <= 16.0 * 1024 * 1024; /* two layers fit L2 (50 MB) with room */
    if (epl == 2) pk_enqueue(c, k_decode_layers<2>, M, nblk, smem);
    else pk_enqueue(c, k_decode_layers<4>, M, nblk, smem);
    llorch_cuda_persist_multi_launches++;
    return 0;
}
