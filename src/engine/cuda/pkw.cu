/* pkw.cu — backend.h decode_layers on CUDA with every layer's weights read
 * from shared memory: all layers of ONE activation row in one persistent
 * launch (LLORCH_CUDA_PERSIST=2; persist.cu dispatches here).
 *
 * Status: written and compiled in session 4 with no device time left, NOT
 * yet run on a GPU; opt-in until tests/gpu/test_cuda_ops' test_decode_layers
 * passes with it and the model bench shows the gain (docs/PERF.md "Decode:
 * weights in shared memory"). Switches: LLORCH_CUDA_PKW_BPS=1 takes one
 * block per SM (the ~124-register instantiation; default 2, the
 * 64-register one, where both blocks' regions fit: Qwen2.5-0.5B's do);
 * LLORCH_CUDA_PERSIST_TIMING=1 makes block 0 sum per-step times (PW_T,
 * llorch_cuda_pkw_stamps).
 *
 * Why: persist.cu's kernels read each phase's weight rows after the grid
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
 * The dots are persist.cuh's generic per-format dots (pk_dot); only the
 * fp32 summation order differs from the composition. Grid: what is
 * co-resident (occupancy API), 2 blocks per SM when the regions fit, else 1;
 * the barrier words and the deadlock argument are persist.cu's. */
#include <stdio.h>

#include "persist.cuh"
#include "pkw_plan.h"

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
    int timing;            /* LLORCH_CUDA_PERSIST_TIMING=1: pw_ts as PW_T's accumulators */
};

/* Timing (diagnostics only): block 0's thread 0 adds the %globaltimer time
 * of each step, summed over the layers, into pw_ts[i] (zeroed at entry):
 * 0 entry to past the PDL wait; per phase A..E: 1 A staging, 2 A copy
 * wait, 3 A dots, 4 A barrier, 5 B items, 6 B barrier, 7 C staging + copy
 * wait, 8 C dots, 9 C barrier, 10 D staging + wait, 11 D dots, 12 D
 * barrier, 13 E staging + wait, 14 E dots, 15 E barrier. Block 0's view:
 * a barrier's time includes the other blocks' lateness. */
__device__ unsigned long long pw_ts[16];
#define PW_T(i)                                  \
    do {                                         \
        if (tm) {                                \
            const unsigned long long t_ = pk_now(); \
            pw_ts[i] += t_ - t_prev;             \
            t_prev = t_;                         \
        }                                        \
    } while (0)

__device__ __forceinline__ int pw_rows(const pw_args &A, int i) {
    const int Q = A.n_head * A.hd, KV = A.n_head_kv * A.hd;
    return i == PW_Q ? Q : i == PW_K || i == PW_V ? KV : i == PW_G || i == PW_U ? A.F : A.E;
}

/* this block's rows [r0, r1) of a matrix of R rows (pkw_plan.h) */
__device__ __forceinline__ void pw_range(int R, int &r0, int &r1) { pw_plan_range(blockIdx.x, gridDim.x, R, &r0, &r1); }

/* Starts the copy of this block's rows of matrix i of layer W into its
 * region as pkw_plan.h lays it out: the 16-byte chunks by cp.async, the
 * tail by one cp.async with a source size (never past the tensor's end; a
 * byte loop there would put a memory round trip before the next barrier). */
__device__ __forceinline__ void pw_copy(const pw_args &A, const pw_layer &W, int i, unsigned char *smem) {
    int r0, r1;
    pw_range(pw_rows(A, i), r0, r1);
    if (r1 <= r0) return;
    const pk_mat &m = W.m[i];
    uintptr_t a0, a1, g1;
    pw_plan_copy((uintptr_t)m.w, m.nb1, r0, r1, &a0, &a1, &g1);
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

/* MINB blocks per SM: 1 (~124 registers) or 2 (64 registers, no spills at
 * sm_90 with CUDA 13.0's ptxas) */
template <int EPL, int MINB>
__global__ void __launch_bounds__(PK_THREADS, MINB) k_pw_layers(const __grid_constant__ pw_args A) {
    PK_SM_DECL(A.Kmax);
    unsigned char *const smem = pk_smem;
    const pk_act act = {sm.q1, sm.d1, sm.s1, sm.q2, sm.d2};
    const int Q = A.n_head * A.hd, E = A.E, F = A.F, group = A.n_head / A.n_head_kv;
    const unsigned nblk = gridDim.x;
    const int p0 = A.pos[0]; /* written before the step (see k_decode_block) */
    const bool tm = A.timing && blockIdx.x == 0 && threadIdx.x == 0;
    unsigned long long t_prev = tm ? pk_now() : 0;
    if (tm)
        for (int i = 0; i < 16; i++) pw_ts[i] = 0;

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
extern "C" unsigned long llorch_cuda_pkw_launches; /* tests: did it run? */
unsigned long llorch_cuda_pkw_launches = 0;


#define PW_SMEM_MAX (227 * 1024) /* H100's opt-in shared memory per block (static included) */

void cu_pkw_init(void) {
/* the weights-in-shared-memory kernel: all that is left beside its static arrays */
    const void *pw[4] = {(const void *)k_pw_layers<2, 1>, (const void *)k_pw_layers<4, 1>,
                         (const void *)k_pw_layers<2, 2>, (const void *)k_pw_layers<4, 2>};
    for (int i = 0; i < 4; i++) {
        cudaFuncAttributes fa;
        if (cudaFuncGetAttributes(&fa, pw[i]) != cudaSuccess ||
            cudaFuncSetAttribute(pw[i], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)(PW_SMEM_MAX - fa.sharedSizeBytes)) != cudaSuccess)
            (void)cudaGetLastError();
    }
}

/* the per-step sums of the last timed launch (LLORCH_CUDA_PERSIST_TIMING=1) */
extern "C" int llorch_cuda_pkw_stamps(unsigned long long out[16]) {
    return cudaMemcpyFromSymbol(out, pw_ts, sizeof(unsigned long long) * 16) == cudaSuccess ? 0 : -1;
}

/* Every layer of b in one launch; 0, or -1 when not covered (nothing
 * enqueued): a layer outside pk_setup's cover, layers of different shapes,
 * head_dim % 32 != 0 (attn_rope.cuh), or regions that do not fit beside
 * the activation staging at 1 block per SM. */
/* LLORCH_CUDA_PERSIST=2 is an explicit opt-in: say once on stderr whether
 * it runs (and its grid) or why it composes instead */
static int pw_said_no, pw_said_yes;
static int pw_decline(const char *why) {
    if (!pw_said_no) fprintf(stderr, "llorch cuda: LLORCH_CUDA_PERSIST=2 not used: %s (decode composes)\n", why);
    pw_said_no = 1;
    return -1;
}

int cu_pkw_decode_layers(cu_ctx *c, const eng_block_w *b, int n, float *x, const int32_t *pos,
                         const eng_block_tmp *t) {
    if (n < 1 || n > PK_MAX_LAYERS) return pw_decline("layer count");
    if (b[0].head_dim % 32) return pw_decline("head_dim % 32 != 0");
    if (c->attn_unfused) return pw_decline("LLORCH_CUDA_ATTN_FUSED=0");
    static pw_args P; /* ~14 KB of kernel parameters, built here and copied by the launch */
    static const int rows_of[PW_MAT] = {0, 1, 1, 2, 3, 3, 2};   /* Q, KV, KV, E, F, F, E */
    size_t act = 0, nb1max[PW_MAT] = {0};
    int epl = 0;
    for (int l = 0; l < n; l++) {
        pk_args A;
        size_t sm_l;
        int epl_l;
        if (pk_setup(&b[l], x, pos, t, &A, &sm_l, &epl_l)) return pw_decline("a layer's formats or shapes");
        if (l && (epl_l != epl || A.E != P.E || A.F != P.F || A.n_head != P.n_head || A.n_head_kv != P.n_head_kv ||
                  A.hd != P.hd || A.Kmax != P.Kmax))
            return pw_decline("layers of different shapes");
        /* one rope table for all layers (rebuilt only where freq_factors change) */
        const rope_k &r0 = P.L[0].rope;
        if (l && (A.rope.n_rot != r0.n_rot || A.rope.neox != r0.neox || A.rope.theta_scale != r0.theta_scale ||
                  A.rope.freq_scale != r0.freq_scale || A.rope.ext_factor != r0.ext_factor ||
                  A.rope.attn_factor != r0.attn_factor || A.rope.corr0 != r0.corr0 || A.rope.corr1 != r0.corr1))
            return pw_decline("layers of different rope parameters");
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
            if ((uintptr_t)ms[i].w & 15) /* pw_copy rounds row ranges down to 16 within the tensor */
                return pw_decline("a weight tensor not 16-byte aligned");
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
    /* 2 blocks per SM (the 64-register instantiation) when both fit (their
     * regions are half as big), else 1; LLORCH_CUDA_PKW_BPS caps it (A/B) */
    const int cap = pk_env_int("LLORCH_CUDA_PKW_BPS", 2);
    int nblk = 0;
    size_t smem = 0;
    for (int bps = cap < 1 ? 1 : cap > 2 ? 2 : cap; bps >= 1 && !nblk; bps--) {
        const int nb = bps * c->sm_count;
        size_t off = (act + 15) & ~(size_t)15;
        for (int i = 0; i < PW_MAT; i++) {
            P.woff[i] = (unsigned)off;
            off += pw_plan_region(R[rows_of[i]], nb, nb1max[i]);
        }
        if (off > PW_SMEM_MAX) continue;
        const void *kfn = bps == 2 ? (epl == 2 ? (const void *)k_pw_layers<2, 2> : (const void *)k_pw_layers<4, 2>)
                                   : (epl == 2 ? (const void *)k_pw_layers<2, 1> : (const void *)k_pw_layers<4, 1>);
        if (pk_occupancy(kfn, off) >= bps) {
            nblk = nb;
            smem = off;
        }
    }
    if (!nblk) return pw_decline("the weight rows do not fit in shared memory");
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
    P.timing = pk_env_int("LLORCH_CUDA_PERSIST_TIMING", 0) == 1;
    const bool two = nblk > c->sm_count;
    if (epl == 2) pk_enqueue(c, two ? k_pw_layers<2, 2> : k_pw_layers<2, 1>, P, nblk, smem);
    else pk_enqueue(c, two ? k_pw_layers<4, 2> : k_pw_layers<4, 1>, P, nblk, smem);
    llorch_cuda_pkw_launches++;
    if (!pw_said_yes)
        fprintf(stderr, "llorch cuda: LLORCH_CUDA_PERSIST=2: %d layers in one launch, %d blocks x %d threads, %zu B shared\n",
                n, nblk, PK_THREADS, smem);
    pw_said_yes = 1;
    return 0;
}
