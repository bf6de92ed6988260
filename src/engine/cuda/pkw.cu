/* pkw.cu — backend.h decode_layers on CUDA with every layer's weights read
 * from shared memory: all layers of ONE activation row in one persistent
 * launch. The default decode path (LLORCH_CUDA_PERSIST unset or 2;
 * persist.cu dispatches here; 0 composes the fused ops, 1 runs persist.cu's
 * older kernels); where it declines (formats, shapes, layers too big for
 * shared memory such as Llama-2-7B's) decode composes.
 *
 * Measured (docs/PERF.md "Decode: weights in shared memory", H100):
 * Qwen2.5-0.5B Q4_K_M tg128 ~1,850 tok/s `llorch bench` (session 7: D's
 * gate/up on the tensor cores, pw_dot.cuh; session 6: flagged hand-offs,
 * 128 keys per attention split, the Q4_K_M-format kernel, with the
 * pipelined engine and mmv_tall_reg.cu's head) against ~1,110 composed.
 * The dots live in pw_dot.cuh, which pw_dot_bench.cu also runs alone.
 * Switches: LLORCH_CUDA_PKW_LL=0 grid barriers instead of flagged
 * hand-offs; LLORCH_CUDA_PKW_FMT=0 the all-format kernel;
 * LLORCH_CUDA_PKW_MMA (default 9; 0 runs D's gate/up through pw_dotf);
 * LLORCH_CUDA_PKW_I8 (default 1; 0 runs E's down rows on fp32 instead of
 * the int8 activation, pw_dot8); LLORCH_CUDA_PKW_HB16 (default 1; 0 hands
 * hb to E in fp32 slots instead of bf16 pairs: +2.9% per token, session 8);
 * LLORCH_CUDA_PKW_SPLIT_KEYS (default 128); LLORCH_CUDA_PKW_LL_SLEEP (ns
 * between polls, default 0); LLORCH_CUDA_PKW_WARPS=32 runs 32 warps per
 * block with barriers (64 registers; default 16, up to 128); one block per
 * SM (two, at 64 registers, measured slower);
 * LLORCH_CUDA_PERSIST_TIMING=1 makes block 0 sum per-step times (PW_T,
 * llorch_cuda_pkw_stamps), =2 every block (llorch_cuda_pkw_block_stamps);
 * LLORCH_CUDA_PKW_EMBD=0 leaves the embedding lookup to get_rows (backend.h
 * decode_layers_embd: by default every block dequantizes the token's row
 * itself after the PDL wait, pw_embed, so a decode step is this launch and
 * the head's); LLORCH_CUDA_STAMPS=1 the step stamps (stamps.cuh).
 *
 * Why: persist.cu's kernels read each phase's weight rows after the grid
 * barrier that makes its activation ready, so every phase pays HBM/L2
 * latency chains on its critical path (docs/PERF.md: the dot phases ran at
 * 0.5-1.1 TB/s). Weights depend on no activation, so here every block
 * copies ITS rows of the next layer's matrices into shared memory a whole
 * layer ahead (bulk copies, one thread per matrix): after a phase's dots the
 * block refills that phase's region with the next layer's rows, which
 * arrive while the other four phases of this layer run. The dots then read
 * weights from shared memory; what stays on the critical path is the five
 * grid barriers, the activation staging (from L2) and the attention.
 * Qwen2.5-0.5B: ~10 MB of weights per layer over 132 blocks = ~80 KB per
 * block, which one block per SM holds next to the activation staging.
 *
 * Rows: for each matrix of R rows, block b owns the contiguous rows
 * [b*R/nblk, (b+1)*R/nblk) (so the copy is one contiguous byte range);
 * its warps share them in teams (pw_units). Phases, each handing its
 * output to the next through flagged slots (ll.cuh: value and epoch in one
 * 64-bit store; the consumer's staging polls them) or, with
 * LLORCH_CUDA_PKW_LL=0, a grid barrier after each (after E only between
 * layers):
 *   A  rmsnorm(x)*attn_norm staged in every block (fp32); q/k/v rows
 *      (+ bias), NOT roped: written to q/k/v
 *   B  attn_rope.cuh items (head, split): rope of q and k, the K/V store of
 *      row pos, attention, split merge → att
 *   C  att staged; o rows: x[r] += dot (the block keeps its rows of x)
 *   D  rmsnorm(x)*ffn_norm staged (in fp16, in the mma fragments' order,
 *      where gate and up are Q5_0); gate/up rows: hb = silu(g)*u, on the
 *      tensor cores (pw_gu_mma) or by pw_dotf
 *   E  hb staged from bf16 pairs (D's blocks own their F rows in pairs, so
 *      one slot carries two rows: E's staging reads half the bytes, and
 *      the D to E hand-off was the slowest: ~3.3 us after the last D
 *      producer with fp32 slots, ~2.6 with pairs), quantized per 32 where the down rows are K-quants:
 *      pw_dot8's dp4a dots); down rows: x[r] += dot
 * Activations are NOT quantized: the dots multiply the weights' exact
 * values with fp32 activations (pw_sub), so the result differs from the
 * composition's (and the CPU's) Q8 activations by that quantization's
 * error (decode KL against the CPU on Qwen2.5-0.5B: 0.00208 nats, the
 * composition's 0.00202; tests/gpu/test_cuda_decode_kl.c).
 * Copies: the prologue issues A, C, D, E of layer 0; after phase X of layer
 * l the block issues X of layer l + 1 (pw_issue). Bulk copies complete on
 * the phase's mbarrier (once per layer: parity l & 1); the small rest
 * (row-range tails, unaligned norms and biases) are per-thread cp.async in
 * one commit group per issue, so before phase X the group it needs is the
 * 4th most recent (wait_group 3). Grid barriers: a count that only grows
 * within a launch (pw_arrive / pw_await). Flagged slots: ll.cuh; epochs
 * from a launch generation that the last block out advances (pkw_ll's
 * header). Grid: what is co-resident (occupancy API); the deadlock
 * argument is persist.cu's (a consumer only waits for producers that are
 * resident and never wait for it). */
#include <stdio.h>

#include "bulk.cuh"
#include "ll.cuh"
#include "persist.cuh"
#include "pkw_plan.h"
#include "pw_dot.cuh"
#include "stamps.cuh"

enum { PW_Q = 0, PW_K, PW_V, PW_O, PW_G, PW_U, PW_D, PW_MAT };

/* Fewest keys per attention split. A split's merge (partials, a counter,
 * the last block's combine) costs more than a block's 16 warps take for
 * 128 keys: H100, Qwen2.5-0.5B tg128 1,671 tok/s at 128 against 1,550 at
 * persist.cu's 32 (one split up to position 127); at position 702 the
 * 3-layer test replay takes 91.2 us against 89.0 (6 splits against 9) */
#define PW_SPLIT_KEYS 128
#define PW_HB_ROWS 256 /* hb16: most F rows per block */

struct pw_layer {
    pk_mat m[PW_MAT];
    const float *bq, *bk, *bv, *attn_norm, *ffn_norm, *ff;
    __half *kc, *vc;
    rope_k rope;
    float eps, scale;
};

struct pw_args {
    pw_layer L[PK_MAX_LAYERS];
    int n, E, F, n_head, n_head_kv, hd, Kmax, S;
    const int32_t *pos;
    float *x, *q, *k, *v, *att, *hb, *part;
    unsigned *cnt, *bar;
    unsigned woff[PW_MAT]; /* each matrix's region: byte offset in dynamic shared memory */
    /* float offsets in dynamic shared memory (each a multiple of 4): the
     * staged activation xs [Kmax], attn_norm [E], ffn_norm [E], this block's
     * q/k/v biases [nbias], this block's rows of x [nown] */
    unsigned o_na, o_nf, o_bias, o_own;
    unsigned o_xh; /* float offset: D's activation in fp16 [E] (pw_xh_stage's order) */
    int timing; /* LLORCH_CUDA_PERSIST_TIMING: 1 block 0 sums into pw_ts, 2 every block into pw_bts */
    /* flagged hand-offs (ll.cuh; the LL instantiation): slots [2][ll_par]
     * after a 256-byte header (llh [0] the launch generation, [1] the exit
     * count); each buffer's slot offset within a parity */
    ll_slot *ll;
    unsigned *llh;
    unsigned ll_par, lo_q, lo_k, lo_v, lo_att, lo_hb, lo_xc, lo_xe;
    unsigned ll_sleep; /* ns between polls (LLORCH_CUDA_PKW_LL_SLEEP; 0 polls back to back) */
    int split_keys;    /* fewest keys per attention split (LLORCH_CUDA_PKW_SPLIT_KEYS, default PW_SPLIT_KEYS) */
    int issue_par;     /* LLORCH_CUDA_PKW_ISSUE_PAR (default 2): phase ph's copies issued by warp NW-1-ph (2), by
                        * warp ph (1), by warp 0 (0); with 2 the first attention item of a layer starts without a
                        * CTA barrier of its own (pw_next's precedes it) */
    int efuse;         /* LLORCH_CUDA_PKW_E_FUSE (default 1): E's hb16 staging quantizes as it polls (pw_ll_stage_h2_q8) */
    int mma; /* LLORCH_CUDA_PKW_MMA (default 9), bits: 1 D's Q5_0 gate/up on the tensor cores (pw_gu_mma,
              * fp16 activation), 8 an mma before D's staging wait (pw_mma_warm); 0 runs D through pw_dotf */
    int i8;  /* LLORCH_CUDA_PKW_I8 (default 1): E's down rows on the int8 activation (pw_dot8) where
              * they are K-quants (PW_I8_KQ); 0 runs E on fp32 (pw_dotf) */
    unsigned o_x8; /* float offset: E's activation in int8 (pw_x8's layout, 1.5 F bytes) */
    cu_stamps *st; /* LLORCH_CUDA_STAMPS=1 (stamps.cuh), else NULL */
    /* embedding lookup in the launch (backend.h decode_layers_embd): x =
     * row tok[0] of embd (embd_type F32 / F16 / Q8_0, embd_rows rows of
     * embd_nb1 bytes; an id outside them: NaN) instead of reading x; NULL:
     * x holds the row already */
    const uint8_t *embd;
    size_t embd_nb1;
    int embd_type, embd_rows;
    const int32_t *tok;
    int hb16; /* LLORCH_CUDA_PKW_HB16 (default 1; LL only): hb handed to E in bf16 pairs (ll_put_h2),
               * the F rows split over the blocks in pairs */
};

/* the epoch of phase ph (0 A .. 4 E) of layer l in the launch of generation
 * gen: unique per (launch, layer, phase) modulo 2^32 (~17.9 M launches) */
__device__ __forceinline__ unsigned ll_epoch(unsigned gen, int l, int ph) {
    return gen * (5u * PK_MAX_LAYERS) + 5u * (unsigned)l + (unsigned)ph + 1u;
}

/* Timing (diagnostics only): block 0's thread 0 adds the %globaltimer time
 * of each step, summed over the layers, into pw_ts[i] (zeroed at entry):
 * 0 entry to past the PDL wait; per phase A..E: 1 A staging, 2 A copy
 * wait, 3 A dots, 4 A barrier, 5 B items, 6 B barrier, 7 C copy wait +
 * staging, 8 C dots, 9 C barrier, 10 D wait + staging, 11 D dots, 12 D
 * barrier, 13 E wait + staging, 14 E dots, 15 E barrier, 16 D on the
 * tensor cores: thread 0's own tile (then 11 is the rest: waiting for the
 * block's other warps, the sums, SwiGLU and the hand-off); 17 / 18 / 19: of
 * C's / D's / E's wait + staging, the wait for the phase's weight copies
 * (its mbarrier and cp.async group; the rest is the staging). A barrier is the
 * arrival, the next layer's copies issued, and the wait for every other
 * block: block 0's view, so it includes the other blocks' lateness. */
#define PW_NT 20 /* steps timed */
__device__ unsigned long long pw_ts[PW_NT];
/* LLORCH_CUDA_PERSIST_TIMING=2: the same sums for EVERY block (grids of at
 * most PW_MAX_BLOCKS), to see which blocks a phase waits for */
#define PW_MAX_BLOCKS 256
__device__ unsigned long long pw_bts[PW_MAX_BLOCKS][PW_NT];
/* =2 also: every block's %globaltimer at the ends of layer 1's steps (the
 * hand-offs' producers and consumers): 0 A's dots, 1 the attention items,
 * 2 C's staging, 3 C's dots, 4 D's staging, 5 D's dots, 6 E's staging, 7
 * E's dots, 8 layer 2's A staging; inside its last attention item (LL, 0
 * in blocks without one): 9 q/k/v staged, 10 the warps' states ready to
 * merge, 11 item end, 12 keys folded (before the lane groups' merge) */
#define PW_NA 13
__device__ unsigned long long pw_abs[PW_MAX_BLOCKS][PW_NA];
#define PW_AT(k, layer)                                         \
    do {                                                        \
        if (tm && A.timing == 2 && l == (layer)) tabs[k] = pk_now(); \
    } while (0)
#define PW_T(i)                                  \
    do {                                         \
        if (tm) {                                \
            const unsigned long long t_ = pk_now(); \
            ts[i] += t_ - t_prev;                \
            t_prev = t_;                         \
        }                                        \
    } while (0)

/* this block's rows of the four row counts (pkw_plan.h), computed once */
struct pw_rng {
    int q0, q1, k0, k1, e0, e1, f0, f1;
};

__device__ __forceinline__ void pw_rows_of(const pw_rng &g, int i, int &r0, int &r1) {
    if (i == PW_Q) r0 = g.q0, r1 = g.q1;
    else if (i == PW_K || i == PW_V) r0 = g.k0, r1 = g.k1;
    else if (i == PW_G || i == PW_U) r0 = g.f0, r1 = g.f1;
    else r0 = g.e0, r1 = g.e1;
}

/* ---- copies into shared memory ---- */
/* Weight rows go by the bulk-copy (TMA) engine: ONE thread issues a block's
 * whole contiguous row range of a matrix, completion counted in bytes on
 * the phase's mbarrier. Session 4's per-thread 16-byte cp.async loop cost
 * 11% of the kernel's instructions and 15% of its warp time (ncu, H100).
 * What is not a whole 16-byte span (the < 16-byte tail of a row range, a
 * norm or bias vector not 16-byte aligned) goes by per-thread cp.async,
 * counted by the commit/wait groups as before. The bulk-copy and mbarrier
 * helpers are bulk.cuh's (shared with mmv_tall.cu). */

/* this block's rows of matrix i of layer W: the 16-byte span [*a0, *a0 + *n)
 * for its region at *sb, and the tail [a0 + n, *g1) (pkw_plan.h) */
__device__ __forceinline__ void pw_span(const pw_args &A, const pw_rng &g, const pw_layer &W, int i,
                                        unsigned char *smem, unsigned *sb, uintptr_t *a0, unsigned *n,
                                        uintptr_t *g1) {
    int r0, r1;
    pw_rows_of(g, i, r0, r1);
    *sb = cu_sa(smem + A.woff[i]);
    if (r1 <= r0) {
        *a0 = *g1 = 0;
        *n = 0;
        return;
    }
    const pk_mat &m = W.m[i];
    uintptr_t a1;
    pw_plan_copy((uintptr_t)m.w, m.nb1, r0, r1, a0, &a1, g1);
    *n = (unsigned)(a1 - *a0);
}

/* thread 0: the phase's bulk copies on mbar (after the arrival that
 * expects their bytes) and their tails by cp.async. ns: 1-3 matrices, plus
 * a norm vector of E floats when it is 16-byte aligned. */
__device__ __forceinline__ void pw_issue_bulk(const pw_args &A, const pw_rng &g, const pw_layer &W, const int *mats,
                                              int ns, const float *norm, float *norm_s, unsigned char *smem,
                                              unsigned mbar) {
    unsigned sb[3], n[3];
    uintptr_t a0[3], g1[3];
    unsigned tx = 0;
    for (int j = 0; j < ns; j++) {
        pw_span(A, g, W, mats[j], smem, &sb[j], &a0[j], &n[j], &g1[j]);
        tx += n[j];
    }
    const bool nb = norm && !((uintptr_t)norm & 15) && !(A.E & 3);
    if (nb) tx += (unsigned)A.E * 4;
    /* the block's generic reads of these regions (the phase's dots) are
     * before this thread in the CTA barrier; order them before the async
     * proxy's writes */
    cu_bulk_expect(mbar, tx);
    for (int j = 0; j < ns; j++) {
        if (n[j]) cu_bulk_g2s(sb[j], a0[j], n[j], mbar);
        /* the tail: one 16-byte cp.async that reads only g1 - a1 bytes (zero-fills the rest) */
        if (g1[j] > a0[j] + n[j])
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(sb[j] + n[j]), "l"(a0[j] + n[j]),
                         "r"((unsigned)(g1[j] - a0[j] - n[j]))
                         : "memory");
    }
    if (nb) cu_bulk_g2s(cu_sa(norm_s), (uintptr_t)norm, (unsigned)A.E * 4, mbar);
}

/* n floats g → s by 4-byte cp.async (unaligned vectors); zeros when g is
 * NULL (a plain store: its readers come after the group's wait and barrier
 * like the copies') */
__device__ __forceinline__ void pw_copy_f32(float *s, const float *g, int n) {
    if (!g) {
        for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = 0.0f;
        return;
    }
    const unsigned sb = cu_sa(s);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(sb + 4 * i), "l"(g + i) : "memory");
}

/* the norm vector when pw_issue_bulk does not take it (not 16-byte aligned) */
__device__ __forceinline__ void pw_copy_norm(const pw_args &A, float *s, const float *g) {
    if (g && (((uintptr_t)g & 15) || (A.E & 3))) pw_copy_f32(s, g, A.E);
}

/* row r0 + u of matrix i (this block's rows) in shared memory: base + u * nb1 */
__device__ __forceinline__ const uint8_t *pw_base(const pw_args &A, const pw_rng &g, const pw_layer &W, int i,
                                                  const unsigned char *smem) {
    int r0, r1;
    pw_rows_of(g, i, r0, r1);
    const pk_mat &m = W.m[i];
    return smem + A.woff[i] + ((uintptr_t)(m.w + (size_t)r0 * m.nb1) & 15);
}

/* phase ph (0 A, 1 C, 2 D, 3 E) of layer l: copies issued (bulk ones on
 * mbar[ph]), one cp.async group committed. A's copies carry attn_norm and
 * the block's q/k/v biases, D's ffn_norm: every input of a phase that
 * depends on no activation. Every thread calls it. */
__device__ __forceinline__ void pw_issue(const pw_args &A, const pw_rng &g, int l, int ph, unsigned char *smem,
                                         unsigned long long *mbar) {
    float *const sf = (float *)smem;
    if (l < A.n) {
        const pw_layer &W = A.L[l];
        const int mats[3] = {ph == 0 ? PW_Q : ph == 1 ? PW_O : ph == 2 ? PW_G : PW_D, ph == 0 ? PW_K : PW_U, PW_V};
        const int ns = ph == 0 ? 3 : ph == 2 ? 2 : 1;
        const float *norm = ph == 0 ? W.attn_norm : ph == 2 ? W.ffn_norm : NULL;
        float *norm_s = sf + (ph == 0 ? A.o_na : A.o_nf);
        /* the issuing thread: lane 0 of warp NW-1-ph (ISSUE_PAR 2: not the
         * warps that fetch an attention item's q/k/v, so A's refill does not
         * delay the item's polls) or of warp ph (1), so the launch's first
         * four issues (layer 0, before the PDL wait) run in parallel; warp 0
         * with LLORCH_CUDA_PKW_ISSUE_PAR=0 */
        const int iw = A.issue_par == 2 ? (int)(blockDim.x >> 5) - 1 - ph : A.issue_par ? ph : 0;
        if ((int)threadIdx.x == 32 * iw)
            pw_issue_bulk(A, g, W, mats, ns, norm, norm_s, smem, cu_sa(&mbar[ph]));
        if (norm) pw_copy_norm(A, norm_s, norm);
        if (ph == 0) {
            const int nq = g.q1 - g.q0, nk = g.k1 - g.k0;
            pw_copy_f32(sf + A.o_bias, W.bq ? W.bq + g.q0 : NULL, nq);
            pw_copy_f32(sf + A.o_bias + nq, W.bk ? W.bk + g.k0 : NULL, nk);
            pw_copy_f32(sf + A.o_bias + nq + nk, W.bv ? W.bv + g.k0 : NULL, nk);
        }
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
}

/* phase ph of layer l may read its region: the bulk copies (mbar[ph]
 * completes once per layer: parity l & 1) and this thread's cp.async group
 * (the 4th most recent) are in; the CTA barrier publishes the cp.async
 * bytes of the other threads */
__device__ __forceinline__ void pw_wait(unsigned long long *mbar, int ph, int l) {
    cu_mbar_wait(cu_sa(&mbar[ph]), (unsigned)l & 1u);
    asm volatile("cp.async.wait_group 3;" ::: "memory");
    __syncthreads();
}

/* ---- grid barrier: a count that only grows within a launch ---- */
/* Barrier k (1, 2, ...) of a launch: every block adds 1 (a release
 * reduction: no round trip) once its phase is done, then waits until the
 * count reaches k * nblk (acquire loads). Between the two the block issues
 * its next copies, so their issue cost hides in the wait. The count starts
 * at 0 (backend.cu zeroes it; persist.cu's barrier leaves it at 0), and
 * the launch's last block out puts it back (pw_exit). */
__device__ __forceinline__ void pw_arrive(unsigned *cnt) {
    __syncthreads(); /* the block's writes before thread 0's release */
    if (threadIdx.x == 0) asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(cnt) : "memory");
}

__device__ __forceinline__ void pw_await(const unsigned *cnt, unsigned target) {
    if (threadIdx.x == 0) {
        unsigned long long t0 = 0;
        for (unsigned i = 1; pk_ld_acquire(cnt) < target; i++) {
            if (i & 1023u) continue;
            if (!t0) t0 = pk_now();
            else if (pk_now() - t0 > PK_SPIN_TRAP_NS) __trap(); /* our bug: see pk_spin */
        }
    }
    __syncthreads(); /* the reads after it after thread 0's acquire */
}

/* after the launch's last barrier: the last of total arrivals resets the count */
__device__ __forceinline__ void pw_exit(unsigned *cnt, unsigned total) {
    if (threadIdx.x == 0 && atomicAdd(cnt, 1u) == total - 1) atomicExch(cnt, 0u);
}

/* after phase ph's dots: the block's reads of ph's region are done, so its
 * refill with layer l + 1's rows is issued; with barrier (the !LL kernel,
 * not past the last layer) inside a grid barrier, whose wait hides the
 * issue cost */
__device__ __forceinline__ void pw_next(const pw_args &A, const pw_rng &g, int l, int ph, unsigned char *smem,
                                        unsigned long long *mbar, bool barrier, unsigned &nbar) {
    if (barrier) {
        pw_arrive(A.bar);
        pw_issue(A, g, l + 1, ph, smem, mbar);
        pw_await(A.bar, ++nbar * gridDim.x);
    } else {
        __syncthreads(); /* the region's reads before its refill */
        pw_issue(A, g, l + 1, ph, smem, mbar);
    }
}

/* Cold steps out of line: the kernel's code size costs time (instruction
 * fetch; docs/PERF.md "A smaller kernel"), and this runs once per launch
 * and where a layer's rope factors change: the rope table entry (double
 * precision pow/sin/cos) */
__device__ __noinline__ void pw_rope_cs(const rope_k &p, int32_t ps, int i, const float *ff, float *c, float *s) {
    rope_cs(p, ps, i, ff, c, s);
}

/* ---- activation staging (fp32: the dots take unquantized activations) ---- */
/* xs = x (L2, 16-byte loads where x and E allow) * rmsnorm scale * gs (shared) */
__device__ __forceinline__ void pw_stage_norm(const float *x, const float *gs, int E, float eps, float *xs,
                                              float *red) {
    /* x NULL: xs holds the row already (pw_embed; the same sums and order) */
    float ss = 0.0f;
    const bool v4 = !(E & 3) && !((uintptr_t)x & 15);
    if (v4) {
        for (int i = threadIdx.x; i < E / 4; i += blockDim.x) {
            const float4 v = x ? __ldcg(reinterpret_cast<const float4 *>(x) + i) : reinterpret_cast<float4 *>(xs)[i];
            if (x) reinterpret_cast<float4 *>(xs)[i] = v;
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int i = threadIdx.x; i < E; i += blockDim.x) {
            const float v = x ? __ldcg(x + i) : xs[i];
            xs[i] = v;
            ss += v * v;
        }
    }
    const float scale = pk_rms_scale(ss, E, eps, red);
    /* each thread rescales the elements it stored itself */
    if (v4) {
        for (int i = threadIdx.x; i < E / 4; i += blockDim.x) {
            float4 v = reinterpret_cast<float4 *>(xs)[i];
            const float4 w = reinterpret_cast<const float4 *>(gs)[i];
            v.x = v.x * scale * w.x, v.y = v.y * scale * w.y, v.z = v.z * scale * w.z, v.w = v.w * scale * w.w;
            reinterpret_cast<float4 *>(xs)[i] = v;
        }
    } else {
        for (int i = threadIdx.x; i < E; i += blockDim.x) xs[i] = xs[i] * scale * gs[i];
    }
    __syncthreads();
}

/* x[r] += dot(row r of matrix i, the staged activation) for this block's
 * rows of x (o in C, down in E). The block alone writes these rows of x, so
 * it keeps them in shared memory (own) and never reads them back; out(u, y)
 * publishes row g.e0 + u's new value y. dot(row, tt, nt): team thread tt's
 * partial (pw_dotf against fp32 xs, or pw_dot8 against int8). */
template <class Dot, class Out>
__device__ __forceinline__ void pw_residual(const pw_args &A, const pw_rng &g, const pw_layer &W, int i,
                                            const unsigned char *smem, float *own, float2 *red, Dot dot, Out out) {
    const uint8_t *base = pw_base(A, g, W, i, smem);
    const pk_mat &m = W.m[i];
    pw_units(
        g.e1 - g.e0, red, [&](int u, int tt, int nt) { return make_float2(dot(base + (size_t)u * m.nb1, tt, nt), 0.0f); },
        [&](int u, float2 d) {
            const float y = own[u] + d.x;
            own[u] = y;
            out(u, y);
        });
}

/* E's staging of hb in bf16 pairs (hb16) straight into pw_x8's int8 layout
 * at out: item i (8 values, slots 4i..4i+3) is polled by lane i % 32 of
 * the warp that pw_q8_stage gives it, and quantized by pw_q8_item as soon
 * as the warp's items are in: ll_stage_h2 + CTA barrier + pw_q8_stage in
 * one pass, without the fp32 copy and one barrier (the same integers and
 * scales: pw_q8_item on the same floats). A thread's items (up to MAXI per
 * batch) are all polled together. K % 32 == 0; the caller syncs after. */
template <int MAXI>
__device__ __forceinline__ void pw_ll_stage_h2_q8(const ll_slot *src, int K, unsigned e, void *out,
                                                  unsigned sleep_ns) {
    int8_t *const xq = reinterpret_cast<int8_t *>(out);
    float4 *const xg = reinterpret_cast<float4 *>(xq + K);
    const int ni = K >> 3, nt = (int)blockDim.x, lane = (int)(threadIdx.x & 31);
    for (int wb0 = (int)(threadIdx.x & ~31u); wb0 < ni; wb0 += MAXI * nt) {
        ll_slot a[2 * MAXI], b[2 * MAXI];
        ll_poll<2 * MAXI>(src, e, a, b, [&](int k) {
            const int i = wb0 + (k >> 1) * nt + lane;
            return i < ni ? 2 * i + (k & 1) : -1; /* pair (2 slots) index: item i's pairs 2i, 2i + 1 */
        }, sleep_ns);
#pragma unroll
        for (int t = 0; t < MAXI; t++) {
            const int wb = wb0 + t * nt, i = wb + lane;
            if (wb >= ni) break; /* warp-uniform */
            const bool ok = i < ni;
            float v[8];
            const float2 v0 = ll_val_h2(a[2 * t]), v1 = ll_val_h2(b[2 * t]), v2 = ll_val_h2(a[2 * t + 1]),
                         v3 = ll_val_h2(b[2 * t + 1]);
            v[0] = v0.x, v[1] = v0.y, v[2] = v1.x, v[3] = v1.y, v[4] = v2.x, v[5] = v2.y, v[6] = v3.x, v[7] = v3.y;
            if (!ok)
#pragma unroll
                for (int k = 0; k < 8; k++) v[k] = 0.0f;
            pw_q8_item(v, i, ok, xq, xg);
        }
    }
}

/* LL staging (ll.cuh): xs [n] = the slots' values of epoch e, then a CTA
 * barrier; the rmsnorm form scales by gs (shared) like pw_stage_norm */
#define PW_LL_MAXP 5 /* pairs per thread per batch: Qwen's 4,864-wide hb at 512 threads in one batch */
__device__ __forceinline__ void pw_ll_copy(const ll_slot *src, int n, unsigned e, float *xs, unsigned sleep_ns) {
    (void)ll_stage<PW_LL_MAXP>(src, n, e, xs, sleep_ns);
    __syncthreads();
}
__device__ __forceinline__ void pw_ll_norm(const ll_slot *src, const float *gs, int E, float eps, unsigned e,
                                           float *xs, float *red, unsigned sleep_ns, __half *xh = NULL) {
    const float scale = pk_rms_scale(ll_stage<PW_LL_MAXP>(src, E, e, xs, sleep_ns), E, eps, red);
    /* each thread rescales the pairs it stored itself; with xh, into
     * pw_xh_stage's fp16 order instead (D on the tensor cores: one pass and
     * one CTA barrier less) */
    for (int i = threadIdx.x; i < E / 2; i += blockDim.x) {
        float2 v = reinterpret_cast<float2 *>(xs)[i];
        const float2 w = reinterpret_cast<const float2 *>(gs)[i];
        v.x = v.x * scale * w.x, v.y = v.y * scale * w.y;
        if (xh) {
            const int m = 2 * i, p = m & 31;
            const int pos = (m & ~31) + 8 * ((p & 15) >> 2) + 4 * (p >> 4) + (p & 3);
            *reinterpret_cast<__half2 *>(xh + pos) = __floats2half2_rn(v.x, v.y);
        } else {
            reinterpret_cast<float2 *>(xs)[i] = v;
        }
    }
    __syncthreads();
}

/* xs[0..E) = row A.tok[0] of A.embd (get_rows' values: Q8_0 d * q in
 * the same float product); NaN for an id outside the table. After the PDL
 * wait (the id comes from the previous step's head or an upload); the
 * caller's CTA barrier publishes xs. */
__device__ __forceinline__ void pw_embed(const pw_args &A, float *xs) {
    const int32_t tok = __ldcg(A.tok);
    const bool ok = tok >= 0 && tok < A.embd_rows;
    const uint8_t *r = A.embd + (size_t)(ok ? tok : 0) * A.embd_nb1;
    for (int i = threadIdx.x; i < A.E; i += blockDim.x) {
        float v = __int_as_float(0x7fc00000);
        if (ok) {
            if (A.embd_type == QT_Q8_0) {
                const uint8_t *b = r + (size_t)(i >> 5) * 34;
                v = (float)(int8_t)b[2 + (i & 31)] * h2f(ld_u16(b));
            } else if (A.embd_type == QT_F16) {
                v = h2f(reinterpret_cast<const uint16_t *>(r)[i]);
            } else {
                v = reinterpret_cast<const float *>(r)[i];
            }
        }
        xs[i] = v;
    }
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

/* NW warps per block (16: up to 128 registers; 32: 64), one block per SM.
 * LL (the default): activations pass between blocks in flagged slots
 * (ll.cuh), no grid barrier; a phase's staging polls the slots it reads.
 * !LL: five grid barriers per layer and plain activation buffers
 * (LLORCH_CUDA_PKW_LL=0, for comparison). */
template <int EPL, int NW, bool LL, unsigned FMT = PW_FMT_ALL>
__global__ void __launch_bounds__(NW * 32, 1) k_pw_layers(const __grid_constant__ pw_args A) {
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ float2 red2[NW], redm[NW * 8];
    __shared__ float redf[NW], rope_c[64], rope_s[64];
    __shared__ float hbuf[PW_HB_ROWS]; /* hb16: this block's hb rows before they are paired */
    float *const sf = (float *)smem;
    float *const xs = sf, *const na = sf + A.o_na, *const nf = sf + A.o_nf, *const bias = sf + A.o_bias;
    float *const own = sf + A.o_own;
    __half *const xh = reinterpret_cast<__half *>(sf + A.o_xh);
    const int Q = A.n_head * A.hd, KV = A.n_head_kv * A.hd;
    const unsigned nblk = gridDim.x;
    const unsigned long long t_in = A.st ? cu_now() : 0;
    const bool tm = A.timing && threadIdx.x == 0 && (A.timing == 2 || blockIdx.x == 0);
    /* the sums live in shared memory (a global read-modify-write per step
     * put an L2 round trip into every step it timed) and go out at exit */
    __shared__ unsigned long long ts[PW_NT], tabs[PW_NA];
    unsigned long long t_prev = tm ? pk_now() : 0;
    if (tm) {
        for (int i = 0; i < PW_NT; i++) ts[i] = 0;
        for (int i = 0; i < PW_NA; i++) tabs[i] = 0;
    }
    /* the block's row ranges live in shared memory: in registers they
     * would be live across the whole layer loop (spills at 64 registers) */
    /* the ranges and the mbarriers (one per phase region: bulk copies) by
     * the first lanes of four warps: the prologue is on every step's path
     * (nothing before it in the graph to overlap), and each of these
     * threads' first reads of the parameter block are constant-cache
     * misses: four warps take theirs in parallel */
    __shared__ pw_rng g;
    __shared__ __align__(8) unsigned long long mb[4];
    unsigned long long *const mbar = mb; /* addressed in place: 4 registers less (spills at 64) */
    if (threadIdx.x == 0) {
        pw_plan_range(blockIdx.x, nblk, Q, &g.q0, &g.q1);
        cu_mbar_init(mb, 4);
    } else if (threadIdx.x == 32) {
        pw_plan_range(blockIdx.x, nblk, KV, &g.k0, &g.k1);
    } else if (threadIdx.x == 64) {
        pw_plan_range(blockIdx.x, nblk, A.E, &g.e0, &g.e1);
    } else if (threadIdx.x == 96) {
        pw_plan_range(blockIdx.x, nblk, A.hb16 ? A.F / 2 : A.F, &g.f0, &g.f1);
        if (A.hb16) g.f0 *= 2, g.f1 *= 2; /* pairs of rows: one hb slot each */
    }
    __syncthreads();

    /* before the wait: every copy of layer 0 (weights depend on no kernel).
     * Not the position: the previous step's head advances it (backend.h
     * head), and without a graph in between that kernel may still run */
    for (int ph = 0; ph < 4; ph++) pw_issue(A, g, 0, ph, smem, mbar);
    const unsigned long long t_pre = A.st ? cu_now() : 0;
    pk_pdl_wait();
    const unsigned long long t_go = A.st ? cu_now() : 0; /* before the stamps' own L2 round trips */
    const int p0 = A.pos[0];
    cu_stamp_min(A.st, CU_ST_PW_PRE, t_pre);
    cu_stamp_min(A.st, CU_ST_PW_IN, t_in);
    cu_stamp_max(A.st, CU_ST_PW_IN_LAST, t_in);
    cu_stamp_min(A.st, CU_ST_PW_GO, t_go);
    if (A.embd) {
        pw_embed(A, xs);
        __syncthreads();
        for (int i = threadIdx.x; i < g.e1 - g.e0; i += blockDim.x) own[i] = xs[g.e0 + i];
    } else {
        for (int i = threadIdx.x; i < g.e1 - g.e0; i += blockDim.x) own[i] = __ldcg(A.x + g.e0 + i);
    }
    /* LL: this launch's generation (the previous launch's last block out
     * advanced it; read after the PDL wait, which orders us after it) */
    const unsigned gen = LL ? __ldcg(A.llh) : 0u;
    PW_T(0);

    /* attention splits: at most A.S, at least A.split_keys keys each */
    int S = (p0 + A.split_keys) / A.split_keys;
    S = S < A.S ? S : A.S;
    unsigned nbar = 0; /* barriers passed in this launch (!LL) */

    for (int l = 0; l < A.n; l++) {
        const pw_layer &W = A.L[l];
        if (l > 0 && W.ff != A.L[l - 1].ff && (int)threadIdx.x < W.rope.n_rot / 2) /* read in B, after barriers */
            pw_rope_cs(W.rope, p0, threadIdx.x, W.ff, &rope_c[threadIdx.x], &rope_s[threadIdx.x]);
        pw_prefetch_kv(A, W, p0);
        /* LL: this layer's slots (parity l & 1) and the previous layer's */
        ll_slot *const cur = A.ll + (size_t)(l & 1) * A.ll_par, *const prv = A.ll + (size_t)((l + 1) & 1) * A.ll_par;
        const unsigned eA = ll_epoch(gen, l, 0), eB = eA + 1, eC = eA + 2, eD = eA + 3, eE = eA + 4;

        /* ---- A: q/k/v rows (+ bias), not roped ---- */
        pw_wait(mbar, 0, l);
        PW_T(2);
        if (!LL || l == 0) pw_stage_norm(l == 0 && A.embd ? NULL : A.x, na, A.E, W.eps, xs, redf);
        else pw_ll_norm(prv + A.lo_xe, na, A.E, W.eps, eE - 5, xs, redf, A.ll_sleep);
        PW_T(1);
        PW_AT(8, 2);
        {
            const uint8_t *bqs = pw_base(A, g, W, PW_Q, smem), *bks = pw_base(A, g, W, PW_K, smem),
                          *bvs = pw_base(A, g, W, PW_V, smem);
            const int nq = g.q1 - g.q0, nk = g.k1 - g.k0;
            pw_units(
                nq + 2 * nk, red2,
                [&](int u, int tt, int nt) {
                    const int i = u < nq ? PW_Q : u < nq + nk ? PW_K : PW_V;
                    const uint8_t *row = i == PW_Q ? bqs + (size_t)u * W.m[PW_Q].nb1
                                         : i == PW_K ? bks + (size_t)(u - nq) * W.m[PW_K].nb1
                                                     : bvs + (size_t)(u - nq - nk) * W.m[PW_V].nb1;
                    return pw_dotf<0, FMT>(W.m[i].type, row, NULL, A.E, tt, nt, xs);
                },
                [&](int u, float2 d) {
                    const float y = d.x + bias[u];
                    if (LL) {
                        const unsigned o = u < nq ? A.lo_q + g.q0 + u
                                           : u < nq + nk ? A.lo_k + g.k0 + u - nq
                                                         : A.lo_v + g.k0 + u - nq - nk;
                        ll_put(cur + o, y, eA);
                    } else if (u < nq) A.q[g.q0 + u] = y;
                    else if (u < nq + nk) A.k[g.k0 + u - nq] = y;
                    else A.v[g.k0 + u - nq - nk] = y;
                });
        }
        PW_T(3);
        PW_AT(0, 1);
        /* A's refill issued after the attention items or after C's dots
         * instead measured no faster (docs/PERF.md, session 8); after the
         * items in only the blocks that have items: 0.8% slower (session 11) */
        pw_next(A, g, l, 0, smem, mbar, !LL, nbar);
        PW_T(4);

        /* ---- B: attention items ---- */
        for (int it = blockIdx.x; it < A.n_head * S; it += nblk) {
            /* layer 0's rope table, here where waiting for A's q/k/v hides
             * it (the same items every layer: S is fixed per launch) */
            if (l == 0 && it == (int)blockIdx.x && (int)threadIdx.x < W.rope.n_rot / 2)
                pw_rope_cs(W.rope, p0, threadIdx.x, W.ff, &rope_c[threadIdx.x], &rope_s[threadIdx.x]);
            /* the item's shared arrays are reused; publishes layer 0's rope
             * table. A later layer's first item needs neither (its table is
             * written before A; pw_next's barrier follows the previous
             * layer's item) where A's refill is issued by a warp that does
             * not fetch (ISSUE_PAR 2): the fetching warps start polling
             * while that warp issues */
            if (!LL || l == 0 || it != (int)blockIdx.x || A.issue_par != 2) __syncthreads();
            const int h = it % A.n_head, sp = it / A.n_head, grp = A.n_head / A.n_head_kv;
            if (LL) {
                const int kvh = h / grp;
                ar_item_t<EPL, NW>(
                    [&](int da, int db, float *o) {
                        /* this head's q and its kv head's k and v at dims da (and db) (epoch A): all the
                         * slots' polls in flight together */
                        const int n = db >= 0 ? 6 : 3;
                        const ll_slot *ps[6] = {cur + A.lo_q + h * A.hd + da, cur + A.lo_k + kvh * A.hd + da,
                                                cur + A.lo_v + kvh * A.hd + da, cur + A.lo_q + h * A.hd + db,
                                                cur + A.lo_k + kvh * A.hd + db, cur + A.lo_v + kvh * A.hd + db};
                        ll_slot w[6];
#pragma unroll
                        for (int i = 0; i < 6; i++)
                            if (i < n) w[i] = ll_ld(ps[i]);
                        unsigned np = 0;
                        unsigned long long t0 = 0;
                        for (;;) {
                            bool again = false;
#pragma unroll
                            for (int i = 0; i < 6; i++)
                                if (i < n && !ll_is(w[i], eA)) {
                                    again = true;
                                    w[i] = ll_ld(ps[i]);
                                }
                            if (!again) break;
                            ll_backoff(np, t0, A.ll_sleep);
                        }
#pragma unroll
                        for (int i = 0; i < 6; i++)
                            if (i < n) o[i] = ll_val(w[i]);
                    },
                    [&](int d, float o) { ll_put(cur + A.lo_att + h * A.hd + d, o, eB); }, p0, h, sp, A.n_head, grp,
                    A.hd, W.scale, S, W.rope, rope_c, rope_s, W.kc, W.vc, A.part, A.cnt,
                    [&](int k) { PW_AT(9 + k, 1); });
            } else {
                ar_item<EPL, NW>(A.q, A.k, A.v, p0, h, sp, A.n_head, grp, A.hd, W.scale, S, W.rope, rope_c, rope_s,
                                 W.kc, W.vc, A.att, A.part, A.cnt, NULL, NULL, NULL);
            }
        }
        PW_T(5);
        PW_AT(1, 1);
        if (!LL) {
            pw_arrive(A.bar);
            pw_await(A.bar, ++nbar * nblk);
        }
        PW_T(6);

        /* ---- C: x += att·Wo ---- */
        pw_wait(mbar, 1, l);
        PW_T(17);
        if (LL) pw_ll_copy(cur + A.lo_att, Q, eB, xs, A.ll_sleep);
        else pk_stage_copy(A.att, Q, xs);
        PW_T(7);
        PW_AT(2, 1);
        pw_residual(
            A, g, W, PW_O, smem, own, red2,
            [&](const uint8_t *row, int tt, int nt) { return pw_dotf<0, FMT>(W.m[PW_O].type, row, NULL, Q, tt, nt, xs).x; },
            [&](int u, float y) {
            if (LL) ll_put(cur + A.lo_xc + g.e0 + u, y, eC);
            else A.x[g.e0 + u] = y;
        });
        PW_T(8);
        PW_AT(3, 1);
        pw_next(A, g, l, 1, smem, mbar, !LL, nbar);
        PW_T(9);

        /* ---- D: hb = silu(xb·Wg) * (xb·Wu) ---- */
        if ((A.mma & 9) == 9) pw_mma_warm(); /* awake before the staging wait */
        pw_wait(mbar, 2, l);
        PW_T(18);
        /* D on the tensor cores (pw_gu_mma): Q5_0 gate and up */
        const bool dmma = (A.mma & 1) && W.m[PW_G].type == QT_Q5_0 && W.m[PW_U].type == QT_Q5_0;
        if (LL) pw_ll_norm(cur + A.lo_xc, nf, A.E, W.eps, eC, xs, redf, A.ll_sleep, dmma ? xh : NULL);
        else pw_stage_norm(A.x, nf, A.E, W.eps, xs, redf);
        PW_T(10);
        PW_AT(4, 1);
        {
            const pk_mat &mg = W.m[PW_G], &mu = W.m[PW_U];
            const uint8_t *bg = pw_base(A, g, W, PW_G, smem), *bu = pw_base(A, g, W, PW_U, smem);
            auto done = [&](int u, float2 d) {
                const float y = d.x / (1.0f + expf(-d.x)) * d.y;
                if (LL && A.hb16) hbuf[u] = y;
                else if (LL) ll_put(cur + A.lo_hb + g.f0 + u, y, eD);
                else A.hb[g.f0 + u] = y;
            };
            if (dmma) { /* tensor cores (pw_dot.cuh); LL staged xh already */
                if (!LL) {
                    pw_xh_stage(xs, A.E, xh);
                    __syncthreads();
                }
                pw_gu_mma(g.f1 - g.f0, bg, bu, mg.nb1, A.E, (const __half *)xh, redm, done, [&] { PW_T(16); });
            } else {
                pw_units(
                    g.f1 - g.f0, red2,
                    [&](int u, int tt, int nt) {
                        const uint8_t *ga = bg + (size_t)u * mg.nb1, *ua = bu + (size_t)u * mu.nb1;
                        if (mg.type == mu.type) return pw_dotf<1, FMT>(mg.type, ga, ua, A.E, tt, nt, xs);
                        return make_float2(pw_dotf<0, FMT>(mg.type, ga, NULL, A.E, tt, nt, xs).x,
                                           pw_dotf<0, FMT>(mu.type, ua, NULL, A.E, tt, nt, xs).x);
                    },
                    done);
            }
        }
        if (LL && A.hb16) { /* the rows in pairs, one slot each (g.f0 even) */
            __syncthreads();
            for (int t = threadIdx.x; t < (g.f1 - g.f0) / 2; t += blockDim.x)
                ll_put_h2(cur + A.lo_hb + g.f0 / 2 + t, hbuf[2 * t], hbuf[2 * t + 1], eD);
        }
        PW_T(11);
        PW_AT(5, 1);
        pw_next(A, g, l, 2, smem, mbar, !LL, nbar);
        PW_T(12);

        /* ---- E: x += hb·Wd ---- */
        /* the down rows against hb quantized per 32 (pw_dot8, at o_x8)
         * where their format allows */
        const int td = W.m[PW_D].type;
        const bool e8 = A.i8 && pw_k8_type(td, PW_I8_KQ) && !(A.F & 31);
        pw_wait(mbar, 3, l);
        PW_T(19);
        if (LL && A.hb16 && e8 && A.efuse) {
            pw_ll_stage_h2_q8<2>(cur + A.lo_hb, A.F, eD, sf + A.o_x8, A.ll_sleep);
            __syncthreads();
        } else if (LL && A.hb16) {
            ll_stage_h2<PW_LL_MAXP>(cur + A.lo_hb, A.F, eD, xs, A.ll_sleep);
            __syncthreads();
        } else if (LL) {
            pw_ll_copy(cur + A.lo_hb, A.F, eD, xs, A.ll_sleep);
        } else {
            pk_stage_copy(A.hb, A.F, xs);
        }
        if (e8 && !(LL && A.hb16 && A.efuse)) {
            (void)pw_q8_stage(xs, A.F, sf + A.o_x8);
            __syncthreads();
        }
        PW_T(13);
        PW_AT(6, 1);
        const bool last = l + 1 == A.n;
        pw_residual(
            A, g, W, PW_D, smem, own, red2,
            [&](const uint8_t *row, int tt, int nt) {
                return e8 ? pw_dot8<0, FMT & PW_I8_KQ>(td, row, NULL, A.F, tt, nt, pw_x8_at(sf + A.o_x8, A.F)).x
                          : pw_dotf<0, FMT>(td, row, NULL, A.F, tt, nt, xs).x;
            },
            [&](int u, float y) {
                if (!LL || last) A.x[g.e0 + u] = y; /* the launch's output (plain) */
                if (LL && !last) ll_put(cur + A.lo_xe + g.e0 + u, y, eE);
            });
        PW_T(14);
        PW_AT(7, 1);
        pw_next(A, g, l, 3, smem, mbar, !LL && !last, nbar); /* past the last layer: an empty group (uniform count) */
        PW_T(15);
    }
    asm volatile("cp.async.wait_all;" ::: "memory"); /* nothing may be in flight at exit */
    cu_stamp_max(A.st, CU_ST_PW_END, A.st ? cu_now() : 0);
    if (tm) {
        unsigned long long *const out = A.timing == 2 ? pw_bts[blockIdx.x] : pw_ts;
        for (int i = 0; i < PW_NT; i++) out[i] = ts[i];
        if (A.timing == 2)
            for (int i = 0; i < PW_NA; i++) pw_abs[blockIdx.x][i] = tabs[i];
    }
    if (LL) {
        /* the last block out advances the generation for the next launch */
        if (threadIdx.x == 0 && atomicAdd(A.llh + 1, 1u) == nblk - 1) {
            A.llh[1] = 0;
            A.llh[0] = gen + 1;
        }
    } else {
        pw_exit(A.bar, (nbar + 1) * nblk);
    }
}

/* ---- host ------------------------------------------------------------------------------------ */
extern "C" unsigned long llorch_cuda_pkw_launches; /* tests: did it run? */
unsigned long llorch_cuda_pkw_launches = 0;


#define PW_SMEM_MAX (227 * 1024) /* H100's opt-in shared memory per block (static included) */

void cu_pkw_init(void) {
/* the weights-in-shared-memory kernel: all that is left beside its static arrays */
    const void *pw[8] = {(const void *)k_pw_layers<2, 16, true>,  (const void *)k_pw_layers<4, 16, true>,
                         (const void *)k_pw_layers<2, 16, false>, (const void *)k_pw_layers<4, 16, false>,
                         (const void *)k_pw_layers<2, 32, false>, (const void *)k_pw_layers<4, 32, false>,
                         (const void *)k_pw_layers<2, 16, true, PW_FMT_Q4KM>,
                         (const void *)k_pw_layers<4, 16, true, PW_FMT_Q4KM>};
    for (int i = 0; i < 8; i++) {
        cudaFuncAttributes fa;
        if (cudaFuncGetAttributes(&fa, pw[i]) != cudaSuccess ||
            cudaFuncSetAttribute(pw[i], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)(PW_SMEM_MAX - fa.sharedSizeBytes)) != cudaSuccess)
            (void)cudaGetLastError();
    }
}

/* the per-step sums of the last timed launch (LLORCH_CUDA_PERSIST_TIMING=1) */
extern "C" const int llorch_cuda_pkw_nstamps = PW_NT; /* steps per block in the stamps below */
extern "C" int llorch_cuda_pkw_stamps(unsigned long long out[PW_NT]) {
    return cudaMemcpyFromSymbol(out, pw_ts, sizeof(unsigned long long) * PW_NT) == cudaSuccess ? 0 : -1;
}

/* the grid of the last launch, and (LLORCH_CUDA_PERSIST_TIMING=2) every
 * block's per-step sums: out [nblk][PW_NT], nblk <= the last grid */
extern "C" int llorch_cuda_pkw_last_grid;
int llorch_cuda_pkw_last_grid = 0;
extern "C" const int llorch_cuda_pkw_nabs = PW_NA;
extern "C" int llorch_cuda_pkw_block_abs(unsigned long long *out, int nblk) {
    if (nblk < 1 || nblk > PW_MAX_BLOCKS) return -1;
    return cudaMemcpyFromSymbol(out, pw_abs, sizeof(unsigned long long) * PW_NA * (size_t)nblk) == cudaSuccess ? 0
                                                                                                           : -1;
}
extern "C" int llorch_cuda_pkw_block_stamps(unsigned long long *out, int nblk) {
    if (nblk < 1 || nblk > PW_MAX_BLOCKS) return -1;
    return cudaMemcpyFromSymbol(out, pw_bts, sizeof(unsigned long long) * PW_NT * (size_t)nblk) == cudaSuccess ? 0
                                                                                                          : -1;
}

/* Every layer of b in one launch; 0, or -1 when not covered (nothing
 * enqueued): a layer outside pk_setup's cover, layers of different shapes,
 * head_dim % 32 != 0 (attn_rope.cuh), or regions that do not fit beside
 * the activation staging at 1 block per SM. */
/* Where LLORCH_CUDA_PERSIST=2 is set explicitly (A/B runs), say once on
 * stderr whether the kernel runs (and its grid) or why decode composes
 * instead; as the default it is quiet */
static int pw_said_no, pw_said_yes;
static int pw_verbose(void) { return getenv("LLORCH_CUDA_PERSIST") != NULL; }
static int pw_decline(const char *why) {
    if (!pw_said_no && pw_verbose())
        fprintf(stderr, "llorch cuda: LLORCH_CUDA_PERSIST=2 not used: %s (decode composes)\n", why);
    pw_said_no = 1;
    return -1;
}

int cu_pkw_decode_layers(cu_ctx *c, const eng_block_w *b, int n, float *x, const int32_t *pos,
                         const eng_block_tmp *t, const eng_w *embd, const int32_t *ids) {
    if (embd && ((embd->type != QT_F32 && embd->type != QT_F16 && embd->type != QT_Q8_0) || embd->ne0 != b[0].wq->ne0 ||
                 embd->ne1 > INT32_MAX || !ids || !pk_env_int("LLORCH_CUDA_PKW_EMBD", 1)))
        return -1; /* the engine runs get_rows, then decode_layers */
    if (n < 1 || n > PK_MAX_LAYERS) return pw_decline("layer count");
    if (b[0].head_dim % 32) return pw_decline("head_dim % 32 != 0");
    if (c->attn_unfused) return pw_decline("LLORCH_CUDA_ATTN_FUSED=0");
    static pw_args P; /* ~14 KB of kernel parameters, built here and copied by the launch */
    static const int rows_of[PW_MAT] = {0, 1, 1, 2, 3, 3, 2};   /* Q, KV, KV, E, F, F, E */
    size_t act = 0, nb1max[PW_MAT] = {0};
    unsigned fmts = 0, fmts2 = 0; /* the formats of every layer's matrices, and of its gate == up pairs (QT_* bits) */
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
        (void)sm_l; /* persist.cu's Q8 staging; this kernel stages fp32 (below) */
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
            fmts |= 1u << (ms[i].type & 31);
            if (i == PW_G && ms[PW_G].type == ms[PW_U].type) fmts2 |= 1u << (ms[i].type & 31);
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
    }
    const int R[4] = {P.n_head * P.hd, P.n_head_kv * P.hd, P.E, P.F};
    /* one block per SM, of 16 warps (up to 128 registers) or, with
     * LLORCH_CUDA_PKW_WARPS=32, 32 warps (64 registers) */
    const int nw = pk_env_int("LLORCH_CUDA_PKW_WARPS", 16) == 32 ? 32 : 16;
    /* flagged hand-offs (ll.cuh) instead of grid barriers: the default at
     * 16 warps; LLORCH_CUDA_PKW_LL=0 (or 32 warps) runs the barriers. Slots
     * per parity: q, k, v, att, hb, x after C, x after E, each a multiple of
     * 2 (16-byte pairs); every width even (ll_stage reads pairs) */
    int ll = pk_env_int("LLORCH_CUDA_PKW_LL", 1) != 0 && nw == 16 && c->pkw_ll;
    /* the instantiation with only the Q4_K_M formats' code where the layers
     * need no other (LLORCH_CUDA_PKW_FMT=0: the all-format kernel) */
    const int q4km = !(fmts & ~PW_FMT_Q4KM) && !(fmts2 & ~PW_FMT2_Q4KM) && pk_env_int("LLORCH_CUDA_PKW_FMT", 1) != 0;
    {
        unsigned o = 0;
        const unsigned w[7] = {(unsigned)R[0], (unsigned)R[1], (unsigned)R[1], (unsigned)R[0], (unsigned)R[3],
                               (unsigned)R[2], (unsigned)R[2]};
        unsigned *lo[7] = {&P.lo_q, &P.lo_k, &P.lo_v, &P.lo_att, &P.lo_hb, &P.lo_xc, &P.lo_xe};
        P.hb16 = pk_env_int("LLORCH_CUDA_PKW_HB16", 1) != 0 && !(P.F & 3) &&
                 2 * ((P.F / 2 + c->sm_count - 1) / c->sm_count) <= PW_HB_ROWS;
        for (int i = 0; i < 7; i++) {
            if (w[i] & 1) ll = 0;
            *lo[i] = o;
            o += ((i == 4 && P.hb16 ? w[i] / 2 : w[i]) + 1) & ~1u;
        }
        if (!ll) P.hb16 = 0;
        P.ll_par = o;
        if (2 * (size_t)o > CU_PKW_LL_SLOTS) ll = 0;
        P.ll = c->pkw_ll ? c->pkw_ll + CU_PKW_LL_HDR : NULL;
        P.llh = (unsigned *)c->pkw_ll;
        P.ll_sleep = (unsigned)pk_env_int("LLORCH_CUDA_PKW_LL_SLEEP", 0);
        P.split_keys = pk_env_int("LLORCH_CUDA_PKW_SPLIT_KEYS", PW_SPLIT_KEYS);
        if (P.split_keys < 1) P.split_keys = PW_SPLIT_KEYS;
        P.issue_par = pk_env_int("LLORCH_CUDA_PKW_ISSUE_PAR", 2);
        if (P.issue_par < 0 || P.issue_par > 2) P.issue_par = 2;
        P.efuse = pk_env_int("LLORCH_CUDA_PKW_E_FUSE", 1) != 0;
        P.mma = pk_env_int("LLORCH_CUDA_PKW_MMA", 9);
        P.i8 = pk_env_int("LLORCH_CUDA_PKW_I8", 1) != 0;
    }
    int nblk = 0;
    size_t smem = 0;
    {
        const int nb = c->sm_count;
        /* floats, each area a multiple of 4: xs [Kmax], attn_norm, ffn_norm,
         * the block's q/k/v biases, its rows of x */
        const unsigned r4 = 3, kmax = (unsigned)(P.Kmax + r4) & ~r4, e4 = (unsigned)(P.E + r4) & ~r4;
        const unsigned nbias = (unsigned)((R[0] + nb - 1) / nb + 2 * ((R[1] + nb - 1) / nb));
        P.o_na = kmax;
        P.o_nf = P.o_na + e4;
        P.o_bias = P.o_nf + e4;
        P.o_own = P.o_bias + ((nbias + r4) & ~r4);
        P.o_xh = P.o_own + (((unsigned)((P.E + nb - 1) / nb) + r4) & ~r4);
        P.o_x8 = P.o_xh + ((P.E + 7) >> 3) * 4;
        act = (size_t)(P.o_x8 + ((3 * kmax / 2 + 15) & ~15u) / 4) * 4;
        size_t off = (act + 15) & ~(size_t)15;
        for (int i = 0; i < PW_MAT; i++) {
            P.woff[i] = (unsigned)off;
            /* hb16: gate/up rows split in pairs (as pairs of rows: the same bound) */
            off += P.hb16 && rows_of[i] == 3 ? pw_plan_region(R[3] / 2, nb, 2 * nb1max[i])
                                             : pw_plan_region(R[rows_of[i]], nb, nb1max[i]);
        }
        const void *kfn = nw == 32 ? (epl == 2 ? (const void *)k_pw_layers<2, 32, false>
                                               : (const void *)k_pw_layers<4, 32, false>)
                          : ll && q4km ? (epl == 2 ? (const void *)k_pw_layers<2, 16, true, PW_FMT_Q4KM>
                                                   : (const void *)k_pw_layers<4, 16, true, PW_FMT_Q4KM>)
                          : ll ? (epl == 2 ? (const void *)k_pw_layers<2, 16, true> : (const void *)k_pw_layers<4, 16, true>)
                               : (epl == 2 ? (const void *)k_pw_layers<2, 16, false>
                                           : (const void *)k_pw_layers<4, 16, false>);
        if (off <= PW_SMEM_MAX && pk_occupancy_t(kfn, nw * 32, off) >= 1) {
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
    P.st = c->stamps;
    P.embd = embd ? (const uint8_t *)embd->data : NULL;
    P.embd_nb1 = embd ? embd->nb1 : 0;
    P.embd_type = embd ? embd->type : 0;
    P.embd_rows = embd ? (int)embd->ne1 : 0;
    P.tok = ids;
    P.timing = pk_env_int("LLORCH_CUDA_PERSIST_TIMING", 0);
    P.timing = P.timing == 1 || (P.timing == 2 && nblk <= PW_MAX_BLOCKS) ? P.timing : 0;
    llorch_cuda_pkw_last_grid = nblk;
    if (nw == 32) pk_enqueue(c, epl == 2 ? k_pw_layers<2, 32, false> : k_pw_layers<4, 32, false>, P, nblk, smem, 32 * 32);
    else if (ll && q4km)
        pk_enqueue(c, epl == 2 ? k_pw_layers<2, 16, true, PW_FMT_Q4KM> : k_pw_layers<4, 16, true, PW_FMT_Q4KM>, P, nblk,
                   smem, 16 * 32);
    else if (ll) pk_enqueue(c, epl == 2 ? k_pw_layers<2, 16, true> : k_pw_layers<4, 16, true>, P, nblk, smem, 16 * 32);
    else pk_enqueue(c, epl == 2 ? k_pw_layers<2, 16, false> : k_pw_layers<4, 16, false>, P, nblk, smem, 16 * 32);
    llorch_cuda_pkw_launches++;
    if (!pw_said_yes && pw_verbose())
        fprintf(stderr, "llorch cuda: LLORCH_CUDA_PERSIST=2: %d layers in one launch, %d blocks x %d threads, %zu B shared, %s\n",
                n, nblk, nw * 32, smem, ll ? "flagged hand-offs" : "grid barriers");
    pw_said_yes = 1;
    return 0;
}
