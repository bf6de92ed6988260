/* mmv_tall_reg.cu — one-row mat-vec of a tall Q8_0 matrix (the vocabulary
 * projection: Qwen2.5-0.5B's 896 x 151,936 Q8_0, 952-byte rows, 144.6 MB
 * per token) with the activation held in registers and the weights read as
 * aligned 8-byte words: LLORCH_CUDA_MMV_TALL=3 (neighbour words loaded
 * again; the default since session 6: 51.8 us vs v1's 74.8) or =2
 * (neighbour words by shuffle). The same kernel with HEAD = 1 is the decode
 * head (backend.h head, session 9): the output norm, this mat-vec and the
 * greedy choice in one launch (see mr_head below).
 *
 * Floor: 144.6 MB / ~3.0 TB/s (measured D2D copy) = 48 us. v1 takes ~79 us
 * (1.8 TB/s), mmv_tall.cu (=1, bulk copies to shared memory) ~114 us.
 *
 * Why v1 stalls (a model, not a profile): Little's law is not its problem.
 * v1 runs 64 warps per SM with a whole row (952 B) of loads in flight per
 * warp (~60 KB per SM against the ~35 KB that 3 TB/s x ~1.5 us / 132 SMs
 * needs). Its problem is the L1/LSU ("MIO") request rate: per 8 weights a
 * lane issues FIVE 2-byte weight loads (d + 4 halves, the quants are only
 * 2-byte aligned) and THREE activation loads, and each warp-wide load spans
 * 8 blocks (272 B, 3-4 cache lines -> 3-4 L1 wavefronts). That is ~79
 * wavefronts per 952-byte row, ~12 bytes per wavefront, while 3 TB/s needs
 * ~13 bytes per SM clock: the L1 pipeline, not HBM, sets v1's speed.
 * mmv_tall.cu (=1) moved the weights by TMA but kept the same 2-byte reads
 * from shared memory (the same pipeline) plus a CTA barrier per chunk:
 * consistent with it being slower.
 *
 * This kernel cuts the requests per row ~2.5x and keeps v1's arithmetic:
 *  - persistent grid (exactly the resident blocks, 8 warps each); warp gw
 *    owns rows gw, gw + nwarps, ...; the NEXT row's loads are issued before
 *    the current row's math (2 rows = 1.9 KB in flight per warp, ~32 warps
 *    per SM -> up to ~60 KB per SM);
 *  - lane l keeps v1's units u = l + 32k (block b = l/4 + 8k, sub s = l%4);
 *    since 952 = 0 mod 8 a unit's position mod 8 is the same in every row,
 *    so its 8 activation bytes and d_x stay in REGISTERS for all rows
 *    (no activation loads per row) and its byte shift is a per-lane
 *    constant;
 *  - weights: lane (b, s) loads the aligned 8-byte word w0(b) + s (w0 = the
 *    word holding block b's d); its 8 quants start at byte a + 2 of that
 *    word (a = 34b mod 8 in {0,2,4,6}) and run into the next word, word
 *    w0 + s + 1, which is lane l+1's word (s < 3) or one extra word (s = 3).
 *    =2: the next word by __shfl_down (2 shuffles) and s = 3 lanes load the
 *        extra word: per 8 blocks 2 loads (~3 wavefronts each) + 3 shuffles;
 *    =3: every lane loads its next word itself (the same sectors as its
 *        neighbour's load, L1 hits if L1 serves in-flight sectors):
 *        2 loads + 1 shuffle per 8 blocks.
 *    d_w comes from the group's first lane (1 shuffle of a 16-bit value).
 *    Per row: ~36 (=2) / ~28 (=3) MIO operations instead of ~79.
 *  - the same integer dot per unit, (float)sumi * (d_w * d_x) accumulated
 *    per lane in u order, then warp_sum: y is bit-identical to v1
 *    (tests/gpu test_matmul_tall asserts it).
 *  - the first row's weights are requested before the PDL wait (weights
 *    depend on no kernel); x's activations after it.
 *
 * Prediction (H100, kernel bench, graph of 50 calls over 2 weight copies):
 * =2 ~55-58 us (2.5-2.6 TB/s), =3 ~52-56 us (2.6-2.8 TB/s) if L1 merges
 * the duplicate in-flight sectors, else no better than =2. Both are bound
 * by HBM + latency (in flight per SM) rather than by L1 requests: at
 * ~28-36 MIO ops per row and 1,151 rows per SM they need ~18-24 us of
 * L1 pipeline time against the 48 us floor.
 *
 * Scope: Q8_0 only, one activation row, row bytes a multiple of 8 (K % 128
 * == 0), 8-aligned data, K <= 2048 (up to 8 units per lane); anything else
 * returns -1 and v1 runs. */
#include <stdlib.h>
#include <string.h>

#include "argmax.cuh"
#include "common.cuh"
#include "quants.cuh"
#include "stamps.cuh"

#define MR_WARPS 8
#define MR_FULL 0xffffffffu

/* row r's words into m[k] (lane's word w0 + s) and e[k] (word w0 + s + 1:
 * every lane when DUP, only s == 3 lanes otherwise); lanes without a unit
 * at k read nothing */
template <int NK, int DUP>
__device__ __forceinline__ void mr_load(const uint2 *row, int wm, int s, unsigned valid, uint2 *m, uint2 *e) {
#pragma unroll
    for (int k = 0; k < NK; k++) {
        m[k] = make_uint2(0u, 0u);
        e[k] = make_uint2(0u, 0u);
        if (valid >> k & 1u) {
            const uint2 *p = row + wm + 34 * k; /* 8 blocks = 272 bytes = 34 words per k */
            m[k] = __ldg(p);
            if (DUP || s == 3) e[k] = __ldg(p + 1);
        }
    }
}

/* one row's dot from the loaded words; every lane calls it (shuffles) */
template <int NK, int DUP>
__device__ __forceinline__ float mr_row(const uint2 *m, const uint2 *e, int lane, int s, int a, unsigned valid,
                                        const int *x0, const int *x1, const float *dx) {
    const unsigned shb = 8u * (unsigned)(a + 2); /* the unit's first quant, in bits from word m: 16..64 */
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < NK; k++) {
        uint2 nx;
        if (DUP) {
            nx = e[k];
        } else {
            nx.x = __shfl_down_sync(MR_FULL, m[k].x, 1);
            nx.y = __shfl_down_sync(MR_FULL, m[k].y, 1);
            if (s == 3) nx = e[k];
        }
        /* block's d: bytes a, a + 1 of the group's first word */
        const uint32_t dsrc = (a < 4 ? m[k].x : m[k].y) >> (8 * (a & 3));
        const uint32_t d16 = __shfl_sync(MR_FULL, dsrc, lane & ~3) & 0xFFFFu;
        const uint64_t M = (uint64_t)m[k].x | ((uint64_t)m[k].y << 32);
        const uint64_t N = (uint64_t)nx.x | ((uint64_t)nx.y << 32);
        const uint64_t q = shb == 64u ? N : (M >> shb) | (N << (64u - shb));
        const int sumi = dp4a((int)(uint32_t)q, x0[k], dp4a((int)(uint32_t)(q >> 32), x1[k], 0));
        /* v1's expression (qfmt<QT_Q8_0>::dot), v1's order */
        if (valid >> k & 1u) acc += (float)sumi * (h2f((uint16_t)d16) * dx[k]);
    }
    return warp_sum(acc);
}

/* The decode head's part (HEAD = 1, mr_head): instead of reading x already
 * normalized and quantized (rmsnorm, then k_quant_act, two launches before
 * this one), every block normalizes the raw residual row itself with the
 * split rmsnorm's own code (cu_rms_scale256: the same bits), quantizes it
 * like k_quant_act (cu_q8_group_v) into shared memory and reads its lanes'
 * units from there; and every warp keeps the greedy choice of its rows
 * (argmax.cuh's order, NaN skipped), merged per block and, by the last
 * block to finish, over the grid. So logits are bit-identical to rmsnorm +
 * matmul, and the id equals k_argmax's over them without the penalty. */
struct mr_head {
    const float *x;     /* [K] the residual row (K = 8 x units) */
    const float *g;     /* [K] the output norm's weights; NULL: none */
    float eps;
    float *pv;          /* [gridDim] per-block best value */
    int *pi;            /* [gridDim] per-block best id */
    unsigned *cnt;      /* 0 between launches (the last block resets it) */
    int32_t *tok_next;  /* [0] = the choice (the next decode step's input) */
    int32_t *ring;      /* [pos & 1] = the choice, pos = pos_io[pos_i] */
    int32_t *pos_io;    /* then pos_io[0] = pos + 1 */
    int pos_i;
    cu_stamps *st;      /* LLORCH_CUDA_STAMPS=1, else NULL */
    unsigned long long *key; /* the choice as am_key (0 between launches); NULL: the pairs (pv, pi) */
};

/* The heads keep the mat-vec's occupancy (NK 4: 64 registers, 4 blocks per
 * SM; NK 8: 2): their norm and argmax would otherwise take registers */
template <int NK, int DUP, int HEAD>
__global__ void __launch_bounds__(MR_WARPS * 32, HEAD ? (NK == 4 ? 4 : 2) : 1)
k_mmv_tall_q8(const uint8_t *w, int nbw, int ne1, int units, const int8_t *aq, const float *ad, float *y, mr_head h) {
    const int lane = threadIdx.x & 31, g = lane >> 2, s = lane & 3;
    const int a = (2 * g) & 7;                 /* 34b mod 8 for b = g + 8k */
    const int wm = ((34 * g) >> 3) + s;        /* lane's word in the row at k = 0 */
    const int nwarps = (int)gridDim.x * MR_WARPS;
    int row = (int)blockIdx.x * MR_WARPS + (int)(threadIdx.x >> 5);
    const unsigned long long t_in = HEAD && h.st ? cu_now() : 0;
    unsigned valid = 0;
#pragma unroll
    for (int k = 0; k < NK; k++)
        if (lane + 32 * k < units) valid |= 1u << k;
    const uint2 *W = (const uint2 *)w;
    uint2 m[NK], e[NK];
    if (row < ne1) mr_load<NK, DUP>(W + (size_t)row * nbw, wm, s, valid, m, e);
    /* HEAD: the output norm's weights of this thread's elements (group grp
     * = warp + 8k, K / 32 <= 8 NK groups) requested before the wait too:
     * read once per step, they are rarely still in L2 */
    const int K = 8 * units;
    float gv[HEAD ? NK : 1];
    if (HEAD)
#pragma unroll
        for (int k = 0; k < NK; k++) {
            const int grp = (int)(threadIdx.x >> 5) + MR_WARPS * k;
            gv[k] = h.g && grp < K / 32 ? __ldg(h.g + 32 * grp + lane) : 1.0f;
        }
    cu_pdl_begin(); /* x (HEAD: the residual row; else its quantization) is complete from here */
    __shared__ __align__(16) int8_t xq_s[HEAD ? 32 * NK * 8 : 8];
    __shared__ float xd_s[HEAD ? NK * 8 : 1];
    __shared__ float shv[MR_WARPS];
    __shared__ int shi[MR_WARPS];
    __shared__ unsigned sh_last;
    /* stamps: x ready in this block, this step's ring slot (in shared
     * memory: registers live across the loop would cost occupancy) */
    __shared__ unsigned long long sh_tx;
    __shared__ unsigned sh_sti;
    if (HEAD) {
        const unsigned long long t_go = h.st ? cu_now() : 0; /* before the stamps' own L2 round trips */
        cu_stamp_min(h.st, CU_ST_HD_IN, t_in);
        cu_stamp_min(h.st, CU_ST_HD_GO, t_go);
        if (h.st && threadIdx.x == 0) sh_sti = __ldcg(&h.st->step) % CU_ST_STEPS;
        const float scale = cu_rms_scale256(h.x, K, h.eps, shv);
#pragma unroll
        for (int k = 0; k < NK; k++) {
            const int grp = (int)(threadIdx.x >> 5) + MR_WARPS * k;
            if (grp >= K / 32) break; /* warp-uniform */
            const int i = 32 * grp + lane;
            const float v = h.g ? h.x[i] * scale * gv[k] : h.x[i] * scale; /* k_rmsnorm_split's expression */
            cu_q8_group_v(v, lane, xq_s + 32 * grp, xd_s + grp, NULL);
        }
        __syncthreads();
        if (h.st && threadIdx.x == 0) sh_tx = cu_now();
        aq = xq_s;
        ad = xd_s;
    } else if (row >= ne1) {
        return;
    }
    int x0[NK], x1[NK];
    float dx[NK];
#pragma unroll
    for (int k = 0; k < NK; k++) {
        x0[k] = x1[k] = 0;
        dx[k] = 0.0f;
        if (valid >> k & 1u) {
            const int b = g + 8 * k;
            const int2 xv = *(const int2 *)(aq + 32 * b + 8 * s);
            x0[k] = xv.x;
            x1[k] = xv.y;
            dx[k] = ad[b];
        }
    }
    float bv = 0.0f; /* HEAD: the warp's best (value, id) so far, the same in every lane */
    int bi = -1;
    if (row < ne1)
        for (;;) {
            const int nrow = row + nwarps;
            uint2 mn[NK], en[NK];
            if (nrow < ne1) mr_load<NK, DUP>(W + (size_t)nrow * nbw, wm, s, valid, mn, en);
            const float v = mr_row<NK, DUP>(m, e, lane, s, a, valid, x0, x1, dx);
            if (lane == 0) y[row] = v;
            if (HEAD && v == v) am_merge(bv, bi, v, row);
            if (nrow >= ne1) break;
            row = nrow;
#pragma unroll
            for (int k = 0; k < NK; k++) {
                m[k] = mn[k];
                e[k] = en[k];
            }
        }
    if (!HEAD) return;
    if (h.st && threadIdx.x == 0) { /* reductions: nothing waits for them */
        const unsigned long long t_loop = cu_now();
        atomicMin(&h.st->mn[sh_sti][CU_ST_HD_NORM], sh_tx);
        atomicMax(&h.st->mx[sh_sti][CU_ST_HD_NORM_LAST], sh_tx);
        atomicMin(&h.st->mn[sh_sti][CU_ST_HD_LOOP], t_loop);
        atomicMax(&h.st->mx[sh_sti][CU_ST_HD_LOOP_LAST], t_loop);
    }
    if (h.key) {
        /* every warp's choice into one 64-bit maximum (a reduction nothing
         * waits for), then the grid's count; the last block takes the
         * maximum and zeroes it for the next launch: no pairs to merge */
        if (lane == 0) {
            if (bi >= 0) atomicMax(h.key, am_key(bv, bi));
            __threadfence(); /* this warp's maximum before the block's count */
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            if (atomicAdd(h.cnt, 1u) != gridDim.x - 1) return;
            *h.cnt = 0;
            __threadfence();
            bi = am_key_id(atomicExch(h.key, 0ull));
        } else {
            return;
        }
    } else {
        am_block_all<MR_WARPS * 32>(bv, bi, shv, shi);
        if (!am_grid<MR_WARPS * 32>(bv, bi, h.pv, h.pi, h.cnt, shv, shi, &sh_last)) return;
    }
    if (threadIdx.x == 0) {
        const int tok = bi < 0 ? 0 : bi; /* k_argmax's answer when nothing survives */
        h.tok_next[0] = tok;
        const int pos = h.pos_io[h.pos_i];
        h.ring[pos & 1] = tok;
        h.pos_io[0] = pos + 1;
        cu_stamp_max(h.st, CU_ST_HD_END, h.st ? cu_now() : 0);
        cu_stamp_next(h.st);
    }
}

/* resident blocks per SM of one instantiation, asked once; 0: cannot run */
template <int NK, int DUP, int HEAD>
static int mr_per_sm() {
    static int per_sm = -1;
    if (per_sm < 0) {
        int n = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, k_mmv_tall_q8<NK, DUP, HEAD>, MR_WARPS * 32, 0) !=
                cudaSuccess ||
            n < 1) {
            (void)cudaGetLastError();
            n = 0;
        }
        per_sm = n;
    }
    return per_sm;
}

template <int NK, int DUP, int HEAD>
static int mr_launch(cu_ctx *c, const eng_w *w, float *y, int units, const mr_head *h) {
    const int per_sm = mr_per_sm<NK, DUP, HEAD>();
    if (per_sm == 0) return -1;
    unsigned grid = (unsigned)(per_sm * c->sm_count);
    const unsigned need = cu_div_up(w->ne1, MR_WARPS);
    if (grid > need) grid = need;
    if (HEAD && grid > CU_HEAD_MAXB) grid = CU_HEAD_MAXB;
    cu_launch(c, grid, MR_WARPS * 32, 0, k_mmv_tall_q8<NK, DUP, HEAD>, (const uint8_t *)w->data, (int)(w->nb1 / 8),
              (int)w->ne1, units, (const int8_t *)c->act_q, (const float *)c->act_d, y, h ? *h : mr_head{});
    return 0;
}

/* the shapes this file covers: Q8_0, K % 128 == 0, K <= 2048, 8-aligned;
 * units (4 per 32-block) into *units, else -1 */
static int mr_shape(const eng_w *w, int *units) {
    if (w->type != QT_Q8_0 || w->ne0 % 128 || w->ne0 > 2048 || ((uintptr_t)w->data & 7)) return -1;
    const int nblk = (int)(w->ne0 / 32);
    if (w->nb1 != (size_t)nblk * 34 || w->ne1 > INT32_MAX / 2) return -1;
    *units = 4 * nblk;
    return 0;
}

int cu_mmv_tall_reg(cu_ctx *c, const eng_w *w, float *y, int dup) {
    int units;
    if (mr_shape(w, &units)) return -1;
    if (units <= 128) return dup ? mr_launch<4, 1, 0>(c, w, y, units, NULL) : mr_launch<4, 0, 0>(c, w, y, units, NULL);
    return dup ? mr_launch<8, 1, 0>(c, w, y, units, NULL) : mr_launch<8, 0, 0>(c, w, y, units, NULL);
}

int cu_head(cu_ctx *c, const float *x, const float *g, float eps, const eng_w *w, float *logits, int32_t *tok_next,
            int32_t *ring, int32_t *pos_io, int pos_i) {
    int units;
    /* only where matmul takes this file's kernel too (tall matrices, the
     * default LLORCH_CUDA_MMV_TALL): elsewhere its logits would not be
     * rmsnorm + matmul's bits */
    const char *mt = getenv("LLORCH_CUDA_MMV_TALL"), *mv = getenv("LLORCH_CUDA_MMV");
    if (!c->head_on || (mt && mt[0] && strcmp(mt, "3")) || (mv && atoi(mv) == 1) || w->ne1 < CU_MMV_TALL_ROWS ||
        mr_shape(w, &units) || !tok_next || !ring || !pos_io || pos_i < 0)
        return -1;
    float *pv = (float *)c->head_red;
    const mr_head h = {x, g, eps, pv, (int *)(pv + CU_HEAD_MAXB), (unsigned *)(pv + 2 * CU_HEAD_MAXB),
                       tok_next, ring, pos_io, pos_i, c->stamps,
                       c->head_amax ? (unsigned long long *)(pv + 2 * CU_HEAD_MAXB + 2) : NULL};
    const int rc =
        units <= 128 ? mr_launch<4, 1, 1>(c, w, logits, units, &h) : mr_launch<8, 1, 1>(c, w, logits, units, &h);
    if (rc == 0) (void)LAUNCH_CHECK(c, "head"); /* a failed launch is latched: the next sync or read reports it */
    return rc;
}

/* test hook (tests/gpu/test_cuda_ops.c test_head): the head's choice by the
 * 64-bit maximum (on) or the pairs (off); returns the previous setting */
extern "C" int llorch_cuda_head_amax(void *ctx, int on) {
    cu_ctx *c = (cu_ctx *)ctx;
    const int was = c->head_amax;
    c->head_amax = on;
    return was;
}
