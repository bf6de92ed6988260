/* persist.cu — backend.h decode_block / decode_layers on CUDA: whole
 * pre-norm decoder layers of ONE activation row (decode) in one persistent
 * launch per layer (or, opt-in, one for all layers).
 *
 * Switches (read at every call, so one process can A/B them):
 *   LLORCH_CUDA_PERSIST=2         (the default) decode_layers through
 *                                 pkw.cu's weights-in-shared-memory kernel,
 *                                 which composes where it declines
 *   LLORCH_CUDA_PERSIST=1         use this file's kernels instead. Opt-in:
 *                                 its tests pass on H100, but it measured
 *                                 1-2.4% slower than the composition there
 *                                 (docs/PERF.md "Decode: persistent kernel",
 *                                 round 2)
 *   LLORCH_CUDA_PERSIST=0         backend.cu composes the existing fused ops
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

#include "persist.cuh"

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
            attn_dec_item<EPL, PK_WARPS, 1>(A.q, Q, A.kc, A.vc, A.pos, A.n_head, A.n_head / A.n_head_kv, A.hd, A.scale,
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

/* the phase stamps of the last timed launch (LLORCH_CUDA_PERSIST_TIMING=1) */
extern "C" int llorch_cuda_persist_stamps(unsigned long long out[16]) {
    return cudaMemcpyFromSymbol(out, pk_ts, sizeof(unsigned long long) * 16) == cudaSuccess ? 0 : -1;
}

/* persistent launches enqueued by this process (tests: did the fast path run?) */
unsigned long llorch_cuda_persist_launches = 0;

int pk_env_int(const char *name, int def) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : def;
}

#define PK_SMEM_MAX (200 * 1024)

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
    cu_pkw_init(); /* pkw.cu */
}

/* The grid of kernel kfn at smem (occupancy x SMs, capped by
 * LLORCH_CUDA_PERSIST_BPS) and what depends on it: team sizes, attention
 * splits, scratch and barrier words, into A. 0, or -1 (does not fit). */
int pk_occupancy_t(const void *kfn, int threads, size_t smem) {
    static const void *q_fn[8];
    static size_t q_smem[8];
    static int q_bps[8], q_n;
    for (int i = 0; i < q_n; i++)
        if (q_fn[i] == kfn && q_smem[i] == smem) return q_bps[i]; /* a kernel has one block size */
    int nb = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&nb, kfn, threads, smem) != cudaSuccess) nb = 0;
    (void)cudaGetLastError();
    const int i = q_n < 8 ? q_n++ : 0;
    q_fn[i] = kfn;
    q_smem[i] = smem;
    q_bps[i] = nb;
    return nb;
}

int pk_occupancy(const void *kfn, size_t smem) { return pk_occupancy_t(kfn, PK_THREADS, smem); }

static int pk_grid(cu_ctx *c, const void *kfn, pk_args &A, size_t smem, int *nblk_out) {
    int bps = pk_occupancy(kfn, smem);
    if (bps < 1) return -1;
    const int cap = pk_env_int("LLORCH_CUDA_PERSIST_BPS", 2);
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

/* one layer's kernel arguments (persist.cuh) */
int pk_setup(const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t, pk_args *Ap,
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
    if (mb > (double)pk_env_int("LLORCH_CUDA_PERSIST_MAXMB", 64)) return -1;
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
    A.pf = pk_env_int("LLORCH_CUDA_PERSIST_PF", 1) != 0;
    A.bar_fence = pk_env_int("LLORCH_CUDA_PERSIST_BAR", 1) == 0;
    A.timing = pk_env_int("LLORCH_CUDA_PERSIST_TIMING", 0) == 1;
    *smem_out = smem;
    *epl_out = epl;
    return 0;
}

int cu_decode_block(cu_ctx *c, const eng_block_w *b, float *x, const int32_t *pos, const eng_block_tmp *t) {
    /* read at every call (eager decode, or a graph capture): tests and
     * benchmarks switch them within one process */
    if (pk_env_int("LLORCH_CUDA_PERSIST", 0) != 1 || c->prof) return -1; /* opt-in; profiling times the composed ops */
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

/* backend.h decode_layers_embd: only pkw.cu's kernel reads the embedding
 * row itself; -1 elsewhere (the engine runs get_rows + decode_layers) */
int cu_decode_layers_embd(cu_ctx *c, const eng_w *embd, const int32_t *ids, const eng_block_w *b, int n, float *x,
                          const int32_t *pos, const eng_block_tmp *t) {
    if (c->prof || pk_env_int("LLORCH_CUDA_PERSIST", 2) != 2) return -1;
    return cu_pkw_decode_layers(c, b, n, x, pos, t, embd, ids);
}

int cu_decode_layers(cu_ctx *c, const eng_block_w *b, int n, float *x, const int32_t *pos, const eng_block_tmp *t) {
    if (c->prof) return -1; /* profiling times the composed ops */
    /* default 2: pkw.cu (composes by itself where it declines: formats,
     * shapes, layers too big for shared memory, e.g. Llama-2-7B) */
    const int mode = pk_env_int("LLORCH_CUDA_PERSIST", 2);
    if (mode == 2) return cu_pkw_decode_layers(c, b, n, x, pos, t); /* pkw.cu */
    /* opt-in on top of LLORCH_CUDA_PERSIST=1: measured slower than a launch per layer (docs/PERF.md) */
    if (mode != 1 || pk_env_int("LLORCH_CUDA_PERSIST_LAYERS", 0) != 1) return -1;
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
