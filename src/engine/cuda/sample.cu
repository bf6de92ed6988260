/* sample.cu — the SPEC §3.4 sampling pipeline on the device; only the token
 * id comes back (4 bytes). It computes exactly the host reference's function
 * (engine/sampler.c): same filter order, the same total order (logit desc, id
 * asc), the same "cut" representation of the surviving prefix, the draw in
 * ascending id order with double-precision exp and the host's uniform.
 * Summation order differs (parallel), so a draw that lands within rounding of
 * a boundary may pick the neighbour; everything else is exact.
 *
 * Three samplers, one function:
 *   - greedy (t <= 0): k_argmax, many blocks reading the logits in place;
 *   - sampled (t > 0): the many-block sampler (section "the many-block
 *     sampler" below): a prep pass (penalty, temperature, max, argmax), up to
 *     three histogram passes over the ordered float key that narrow the
 *     range holding the top-k / top-p cut (counts, or fixed-point masses
 *     with a proven margin), a compaction of the top prefix (or of the bins
 *     that can hold the cut) and ONE block that sorts those <= 16,384
 *     candidates in shared memory and finishes exactly like the host; the
 *     plain temperature / min-p draw is one many-block pass;
 *   - k_sample, one block of 1024 threads doing everything (the previous
 *     sampler): LLORCH_CUDA_ARGMAX=0 for every request, and the many-block
 *     sampler's gated fallback where its candidates do not fit (more than
 *     16,384 tied logits at the cut, top-k above 16,384 with top-p).
 * Why: k_sample ran all of it on one SM, 8 radix passes over all 151,936
 * logits for top-k 40 + top-p 0.95, ~0.7 ms per call against a ~0.58 ms
 * greedy decode step (docs/PERF.md, "the sampled decode path"). The
 * many-block passes read the 600 KB of logits from L2 in ~1-3 us each; the
 * finishing block sorts tens to a few thousand candidates instead of
 * scanning the vocabulary.
 *
 * k_sample: copy → repetition penalty (thread 0, <= 64 tokens) → temperature
 *   (t <= 0: argmax) → top-k (radix select on the ordered float bits: 4 passes
 *   of 8 bits, counts) → max → top-p (the same radix select weighted by
 *   exp(w - max)) → min-p → draw (per-thread contiguous id segments, block
 *   scan of their masses, one thread walks the segment that crosses u*Z).
 *   exp(w - max) is computed once per survivor of the top-k cut into e (the
 *   scratch beside w) and read by top-p and the draw; the radix passes add to
 *   their buckets once per warp and bucket.
 * Division by the temperature / penalty uses __fdiv_rn: fast-math must not
 * change a logit the host would compute exactly. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "argmax.cuh"
#include "common.cuh"

#define SB 1024

struct samp_params {
    int n, nh;
    float temp, pen, top_p, log_min_p;
    int top_k;
    double u;
};

/* the many-block sampler's constants and state (its kernels: below k_argmax) */
#define SP_NT 256                /* threads of the many-block kernels */
#define SP_PER 8                 /* contiguous logits per thread */
#define SP_CH (SP_NT * SP_PER)   /* logits per block */
#define SP_NBIN 2048
#define SP_MAXB 1024             /* blocks: n_vocab <= 2,097,152 (else k_sample) */
#define SP_CMAX 16384            /* largest prefix k_sp_finish sorts (128 KB of shared memory) */
#define SP_CSMALL 2048           /* compact at once up to this; refine above it while levels remain */
#define SP_FB 1024               /* threads of k_sp_finish */
#define SP_FP 0x1p40             /* fixed-point scale of the level masses */

enum { PH_DONE = 0, PH_LEVEL, PH_COMPACT, PH_DRAW, PH_FALLBACK };
enum { SEL_K = 1, SEL_P = 2 };

struct samp_st {
    int phase, level, sel;
    float maxw;
    int amax;                    /* argmax of w (lowest id; 0 when nothing is comparable) */
    uint32_t lo;                 /* PH_LEVEL: the level's key range starts here */
    uint32_t clo, chi;           /* PH_COMPACT: survivors with clo <= key <= chi */
    int interval;                /* PH_COMPACT: chi < the top key: k_sp_finish only finds the cut */
    unsigned long long aw, ac;   /* weight / count of the survivors above the level's range */
    unsigned long long ahc;      /* PH_COMPACT: survivors above chi (interval) */
    float cut_w;                 /* PH_DRAW: the cut (host sampler.c), {-inf, INT_MAX}: none */
    int cut_id;
    double T, z;                 /* target (top-k: k; top-p: p * z), z of top-p alone */
    unsigned ctr;                /* last-block election, zero between kernels */
    int cnt;                     /* compaction slots, zero between calls */
};
struct samp_ext {
    samp_st st;
    unsigned hc[SP_NBIN];        /* level counts, zero between kernels */
    unsigned long long hm[SP_NBIN]; /* level fixed-point masses, zero between kernels */
    float pmax[SP_MAXB], pav[SP_MAXB];
    int pnf[SP_MAXB], pai[SP_MAXB], plast[SP_MAXB];
    double pz[SP_MAXB];
    unsigned long long cand[SP_CMAX]; /* (key << 32) | ~id */
};


/* monotone key of a float (larger float → larger key); -0 folded onto +0 */
__device__ __forceinline__ uint32_t fkey(float v) {
    if (v == 0.0f) v = 0.0f;
    const uint32_t u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float fkey_inv(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

struct cut_t {
    float w;
    int id;
};
__device__ __forceinline__ bool survives(float v, int i, cut_t c) {
    if (!(v > -INFINITY)) return false;
    return v > c.w || (v == c.w && i <= c.id);
}

/* block reductions (all threads call; result in every thread); NT the
 * block's threads */
template <int NT, class T>
__device__ T sp_sum(T v, T *sh) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    T t = 0;
    for (int i = 0; i < NT / 32; i++) t += sh[i];
    __syncthreads();
    return t;
}
template <int NT> __device__ double sp_sum_d(double v, double *sh) { return sp_sum<NT, double>(v, sh); }
template <int NT> __device__ int sp_sum_i(int v, int *sh) { return sp_sum<NT, int>(v, sh); }
__device__ double block_sum_d(double v, double *sh) { return sp_sum_d<SB>(v, sh); }
template <int NT>
__device__ float sp_max_f(float v, float *sh) {
    v = warp_max(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int i = 0; i < NT / 32; i++) t = fmaxf(t, sh[i]);
    __syncthreads();
    return t;
}
__device__ float block_max_f(float v, float *sh) { return sp_max_f<SB>(v, sh); }
/* exclusive scan of one double per thread (thread order; any block size, sh
 * >= its warps; the one-block and the many-block samplers share it) */
__device__ double block_exscan_d(double v, double *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double inc = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const double t = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += t;
    }
    __syncthreads();
    if (lane == 31) sh[warp] = inc;
    __syncthreads();
    double base = 0.0;
    for (int i = 0; i < warp; i++) base += sh[i];
    __syncthreads();
    return base + inc - v;
}

/* argmax, lowest id on ties, NaN ignored, 0 when nothing is comparable */
__device__ int block_argmax(const float *w, int n, float *shv, int *shi) {
    float bv = 0.0f;
    int bi = -1;
    for (int i = threadIdx.x; i < n; i += SB) {
        const float v = w[i];
        if (v != v) continue;
        if (bi < 0 || v > bv) {
            bv = v;
            bi = i;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float v2 = __shfl_xor_sync(0xffffffffu, bv, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
        if (i2 >= 0 && (bi < 0 || v2 > bv || (v2 == bv && i2 < bi))) {
            bv = v2;
            bi = i2;
        }
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
        shv[threadIdx.x >> 5] = bv;
        shi[threadIdx.x >> 5] = bi;
    }
    __syncthreads();
    float v = 0.0f;
    int id = -1;
    for (int k = 0; k < SB / 32; k++) {
        if (shi[k] >= 0 && (id < 0 || shv[k] > v || (shv[k] == v && shi[k] < id))) {
            v = shv[k];
            id = shi[k];
        }
    }
    __syncthreads();
    return id < 0 ? 0 : id;
}

/* Radix select over survivors of `cut`, descending by key: the key K where
 * weight(key > K) < need <= weight(key >= K); weight = 1 or e = exp(w - maxw).
 * *above = weight(key > K). Returns K; 0 when need exceeds the total. */
__device__ uint32_t radix_select(const float *w, const double *e, int n, cut_t cut, bool mass, double need,
                                 double *above, double *hist, uint32_t *shsel, double *shabove) {
    uint32_t prefix = 0, pmask = 0;
    double ab = 0.0;
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        for (int b = threadIdx.x; b < 256; b += SB) hist[b] = 0.0;
        __syncthreads();
        /* warp-aggregated: the lanes of a warp whose keys fall in one bucket
         * add once (their sum, in lane order). The 256 buckets of a pass are
         * few and crowded (pass 0 is the sign and top exponent bits), and a
         * double atomic on shared memory is a compare-and-swap loop: one per
         * element was ~2 ms per sample on 151,936 logits (H100, worker
         * test), one per warp and bucket is ~32x fewer. The counts (mass
         * false) are exact either way; masses were already summed in atomic
         * order. */
        const int lane = threadIdx.x & 31;
        for (int i0 = (int)threadIdx.x - lane; i0 < n; i0 += SB) {
            const int i = i0 + lane;
            bool ok = i < n;
            float v = 0.0f;
            uint32_t k = 0;
            if (ok) {
                v = w[i];
                ok = survives(v, i, cut);
                if (ok) {
                    k = fkey(v);
                    ok = (k & pmask) == prefix;
                }
            }
            const unsigned act = __ballot_sync(0xffffffffu, ok);
            if (!ok) continue;
            const unsigned bin = (k >> shift) & 255u, grp = __match_any_sync(act, bin);
            double x = 1.0;
            if (mass) {
                x = e[i];
                double sum = 0.0;
                for (unsigned m = grp; m; m &= m - 1) sum += __shfl_sync(grp, x, __ffs(m) - 1);
                x = sum;
            } else {
                x = (double)__popc(grp);
            }
            if (lane == __ffs(grp) - 1) atomicAdd(&hist[bin], x);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            uint32_t sel = 0;
            bool found = false;
            for (int b = 255; b >= 0; b--) {
                if (ab + hist[b] >= need && hist[b] > 0.0) {
                    sel = (uint32_t)b;
                    found = true;
                    break;
                }
                ab += hist[b];
            }
            if (!found) { /* rounding: take the lowest non-empty bucket */
                for (int b = 0; b < 256; b++)
                    if (hist[b] > 0.0) {
                        sel = (uint32_t)b;
                        ab -= hist[b];
                        break;
                    }
            }
            *shsel = sel;
            *shabove = ab;
        }
        __syncthreads();
        prefix |= *shsel << shift;
        pmask |= 255u << shift;
        ab = *shabove;
        __syncthreads();
    }
    *above = ab;
    return prefix;
}

/* the j-th (1-based) smallest id among survivors of cut with key == K;
 * returns -1 when there are fewer than j */
__device__ int nth_tied_id(const float *w, int n, cut_t cut, uint32_t K, int j, double *shd, int *shres) {
    const int seg = (n + SB - 1) / SB;
    const int a = threadIdx.x * seg, b = min(n, a + seg);
    int cnt = 0;
    for (int i = a; i < b; i++)
        if (survives(w[i], i, cut) && fkey(w[i]) == K) cnt++;
    const double pre = block_exscan_d((double)cnt, shd);
    if (threadIdx.x == 0) *shres = -1;
    __syncthreads();
    if (pre < j && pre + cnt >= j) {
        int c = (int)pre;
        for (int i = a; i < b; i++)
            if (survives(w[i], i, cut) && fkey(w[i]) == K && ++c == j) {
                *shres = i;
                break;
            }
    }
    __syncthreads();
    const int r = *shres;
    __syncthreads();
    return r;
}

/* gate: NULL (the one-block sampler alone) or the many-block sampler's state:
 * then it runs only when that state asks for it (PH_FALLBACK) */
__global__ void __launch_bounds__(SB) k_sample(const float *logits, float *w, double *e, const int32_t *hist,
                                               samp_params p, int32_t *out, const samp_st *gate) {
    cu_pdl_begin();
    if (gate && gate->phase != PH_FALLBACK) return;
    __shared__ double shd[256 + 32];
    __shared__ float shf[32];
    __shared__ int shi[32];
    __shared__ uint32_t shsel;
    __shared__ double shab;
    __shared__ int shres;
    const int n = p.n;

    for (int i = threadIdx.x; i < n; i += SB) w[i] = logits[i];
    __syncthreads();
    /* 1. repetition penalty, once per distinct token */
    if (threadIdx.x == 0 && p.pen != 1.0f && p.pen > 0.0f) {
        for (int i = 0; i < p.nh; i++) {
            const int t = hist[i];
            if (t < 0 || t >= n) continue;
            bool seen = false;
            for (int j = 0; j < i && !seen; j++) seen = hist[j] == t;
            if (seen) continue;
            w[t] = w[t] <= 0.0f ? w[t] * p.pen : __fdiv_rn(w[t], p.pen);
        }
    }
    __syncthreads();
    /* 2. temperature */
    if (!(p.temp > 0.0f)) {
        const int id = block_argmax(w, n, shf, shi);
        if (threadIdx.x == 0) *out = id;
        return;
    }
    for (int i = threadIdx.x; i < n; i += SB) w[i] = __fdiv_rn(w[i], p.temp);
    __syncthreads();

    cut_t cut = {-INFINITY, 0x7fffffff};
    /* 3. top-k */
    if (p.top_k > 0 && p.top_k < n) {
        double nf = 0.0;
        for (int i = threadIdx.x; i < n; i += SB) nf += (w[i] > -INFINITY) ? 1.0 : 0.0;
        nf = block_sum_d(nf, shd);
        if (nf == 0.0) {
            const int id = block_argmax(w, n, shf, shi);
            if (threadIdx.x == 0) *out = id;
            return;
        }
        if (nf >= (double)p.top_k) {
            double above;
            const uint32_t K = radix_select(w, NULL, n, cut, false, (double)p.top_k, &above, shd, &shsel, &shab);
            const int id = nth_tied_id(w, n, cut, K, p.top_k - (int)above, shd, &shres);
            cut.w = fkey_inv(K);
            cut.id = id < 0 ? 0x7fffffff : id;
        }
    }
    /* max over all logits */
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < n; i += SB) mx = fmaxf(mx, w[i]);
    const float maxw = block_max_f(mx, shf);
    if (!(maxw > -INFINITY) || maxw == INFINITY) {
        const int id = block_argmax(w, n, shf, shi);
        if (threadIdx.x == 0) *out = id;
        return;
    }
    /* e[i] = exp(w[i] - maxw) in double, once, for the survivors of the
     * top-k cut (later cuts only narrow it): top-p's sum and radix passes
     * and the draw read it (each computed the same exp again, up to 6 per
     * logit; ncu, H100) */
    for (int i = threadIdx.x; i < n; i += SB)
        if (survives(w[i], i, cut)) e[i] = exp((double)w[i] - (double)maxw);
    __syncthreads();
    /* 4. top-p */
    if (p.top_p < 1.0f) {
        double z = 0.0;
        for (int i = threadIdx.x; i < n; i += SB)
            if (survives(w[i], i, cut)) z += e[i];
        z = block_sum_d(z, shd);
        if (z > 0.0) {
            const double target = (double)p.top_p * z;
            double above;
            const uint32_t K = radix_select(w, e, n, cut, true, target, &above, shd, &shsel, &shab);
            const float v = fkey_inv(K);
            const double ev = exp((double)v - (double)maxw);
            double jj = ceil((target - above) / ev);
            int j = jj < 1.0 ? 1 : (int)fmin(jj, 2147483647.0);
            int id = nth_tied_id(w, n, cut, K, j, shd, &shres);
            if (id < 0) { /* rounding: the last tied survivor */
                for (int jj2 = j - 1; jj2 >= 1 && id < 0; jj2--) id = nth_tied_id(w, n, cut, K, jj2, shd, &shres);
            }
            if (id >= 0) {
                cut.w = v;
                cut.id = id;
            }
        }
    }
    /* 5. min-p (threshold computed like the host: float maxw + logf(min_p)) */
    if (p.log_min_p > -INFINITY) {
        float thr = maxw + p.log_min_p;
        if (thr > maxw) thr = maxw;
        const cut_t m = {thr, 0x7fffffff};
        if (cut.w != m.w) cut = cut.w > m.w ? cut : m;
        else cut = cut.id < m.id ? cut : m;
    }
    /* 6. draw in ascending id order */
    const int seg = (n + SB - 1) / SB;
    const int a = threadIdx.x * seg, b = min(n, a + seg);
    double local = 0.0;
    int last = -1;
    for (int i = a; i < b; i++)
        if (survives(w[i], i, cut)) {
            local += e[i];
            last = i;
        }
    const double pre = block_exscan_d(local, shd);
    const double z = block_sum_d(local, shd);
    /* last survivor overall */
    int lastall = last;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) lastall = max(lastall, __shfl_xor_sync(0xffffffffu, lastall, o));
    if ((threadIdx.x & 31) == 0) shi[threadIdx.x >> 5] = lastall;
    if (threadIdx.x == 0) shres = 0x7fffffff;
    __syncthreads();
    lastall = -1;
    for (int k = 0; k < SB / 32; k++) lastall = max(lastall, shi[k]);
    if (lastall < 0) {
        __syncthreads();
        const int id = block_argmax(w, n, shf, shi);
        if (threadIdx.x == 0) *out = id;
        return;
    }
    const double target = p.u * z;
    if (local > 0.0 && pre + local > target && pre <= target) {
        double cum = pre;
        for (int i = a; i < b; i++)
            if (survives(w[i], i, cut)) {
                cum += e[i];
                if (cum > target) {
                    atomicMin(&shres, i); /* min over (rare) rounding-double hits */
                    break;
                }
            }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int r = shres;
        if (r == 0x7fffffff) r = lastall;
        *out = r;
    }
}

/* Greedy fast path (temperature <= 0): argmax over the logits read in place
 * by many blocks (k_sample copies them and scans with one block). Same
 * function as block_argmax after the repetition penalty: NaN skipped, ties
 * to the lower id, 0 when nothing survives; the penalty is applied on the
 * fly to the (<= 64) history ids. Each block writes its (value, id); the last
 * block to finish (counter, reset by it) merges them and writes the id.
 * Default for greedy requests; LLORCH_CUDA_ARGMAX=0 falls back to k_sample
 * (test_cuda_ops checks both against the host sampler). */
#define ARGMAX_B 256
#define ARGMAX_MAXB 256
__global__ void __launch_bounds__(ARGMAX_B) k_argmax(const float *logits, int n, const int32_t *hist, int nh, float pen,
                                                     float *pv, int *pi, unsigned *cnt, int32_t *out) {
    cu_pdl_begin();
    __shared__ int shh[ENG_REPEAT_LAST_N];
    __shared__ float shv[ARGMAX_B / 32];
    __shared__ int shi[ARGMAX_B / 32];
    __shared__ unsigned sh_last;
    for (int k = threadIdx.x; k < nh; k += ARGMAX_B) shh[k] = hist[k];
    __syncthreads();
    float bv = 0.0f;
    int bi = -1;
    for (int i = blockIdx.x * ARGMAX_B + threadIdx.x; i < n; i += gridDim.x * ARGMAX_B) {
        float v = logits[i];
        for (int k = 0; k < nh; k++)
            if (shh[k] == i) {
                v = v <= 0.0f ? v * pen : __fdiv_rn(v, pen);
                break;
            }
        if (v != v) continue;
        am_merge(bv, bi, v, i);
    }
    am_block_all<ARGMAX_B>(bv, bi, shv, shi);
    if (!am_grid<ARGMAX_B>(bv, bi, pv, pi, cnt, shv, shi, &sh_last)) return;
    if (threadIdx.x == 0) *out = bi < 0 ? 0 : bi;
}

/* ==== the many-block sampler (sampled requests; LLORCH_CUDA_ARGMAX=0: k_sample) ====
 *
 * Kernels, launched back to back on the stream; each reads the phase the
 * previous one left in samp_ext.st and does nothing when it is not its turn,
 * so one fixed sequence serves every case (graph-safe: no host sync, no
 * allocation; every counter and histogram is zero again when a kernel that
 * used it ends):
 *   k_sp_prep     many blocks: w = penalty / temperature (written to the
 *                 scratch), block max, finite count, argmax; the last block
 *                 merges them and picks the phase (argmax fallbacks like the
 *                 host, top-k, top-p, or the plain draw).
 *   k_sp_level x3 many blocks: a histogram of the ordered float key in one
 *                 key range (2048 / 2048 / 1024 bins: 11 + 11 + 10 bits),
 *                 counts (top-k) or fixed-point masses (top-p alone, floor
 *                 of exp(w - max) * 2^40, with z summed in double at level
 *                 0). The last block finds the highest bin B whose
 *                 cumulative weight from the top reaches the target (masses:
 *                 a lower bound reaching target + 1e-9 z, so the exact cut
 *                 is surely at or above B): every survivor with key >= B's
 *                 low key is then a PREFIX of the total order that holds the
 *                 cut. Prefix <= SP_CSMALL: compact it; else refine inside
 *                 B while that can shrink the prefix or the interval (below);
 *                 then the prefix if <= SP_CMAX, else the interval, else
 *                 the fallback.
 *   k_sp_compact  many blocks: the prefix's (key, id) pairs into the scratch.
 *   k_sp_finish   one block: sorts the prefix in shared memory (bitonic,
 *                 logit desc, id asc: the host's total order) and finishes
 *                 exactly as the host does: top-k position, top-p cum in
 *                 sorted order, min-p, then the survivors re-sorted by id and
 *                 the draw in ascending id order (interval: the cut only).
 *   k_sp_draw     many blocks: the draw where k_sp_finish did not draw
 *                 (temperature / min-p only, or an interval's cut): per-block
 *                 masses of the survivors in id order, the last block finds
 *                 the block where u * z falls and walks it.
 *   k_sample      one block (the previous sampler), gated: runs only when
 *                 neither fits SP_CMAX (more than 16,384 tied logits at the
 *                 cut; top-k above 16,384 together with top-p).
 * Interval mode: where the prefix exceeds SP_CMAX but the bins that can hold
 * the cut ([B, H]: H the highest bin whose UPPER bound reaches T - eps; H = B
 * for counts) do not, only those are compacted; k_sp_compact's blocks also sum
 * the mass above them, the levels counted them, k_sp_finish finds the exact
 * cut and k_sp_draw draws over all logits with it (and min-p).
 * Sums are in a different order than the host's (per block, per thread
 * segment, then blocks), the documented boundary caveat. The fixed-point
 * masses only choose the candidates: floor(e * 2^40) bounds each element's
 * mass from below and floor + 1 from above, summed exactly in integers; the
 * margin 1e-9 z covers the double sums' rounding (< n 2^-53 z), so the cut
 * the finishing block computes is always among the candidates. */
/* block reductions of the NT-thread kernels (all threads call): sp_sum_d
 * and sp_sum_i are above, beside the one-block sampler's block_sum_d */
__device__ unsigned long long sp_exscan_u64(unsigned long long v, unsigned long long *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    unsigned long long inc = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned long long t = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += t;
    }
    __syncthreads();
    if (lane == 31) sh[warp] = inc;
    __syncthreads();
    unsigned long long base = 0;
    for (int i = 0; i < warp; i++) base += sh[i];
    __syncthreads();
    return base + inc - v;
}
/* the thread's SP_PER contiguous logits of the block's chunk; -inf past n */
__device__ __forceinline__ void sp_load(const float *w, int n, int i0, float *v) {
    if (i0 + SP_PER <= n) {
        const float4 a = __ldcg((const float4 *)(w + i0)), b = __ldcg((const float4 *)(w + i0 + 4));
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
        v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    } else {
#pragma unroll
        for (int j = 0; j < SP_PER; j++) v[j] = i0 + j < n ? __ldcg(w + i0 + j) : -INFINITY;
    }
}

/* ---- prep: w, max, finite count, argmax; the phase ------------------------------- */
__global__ void __launch_bounds__(SP_NT) k_sp_prep(const float *logits, float *w, const int32_t *hist, samp_params p,
                                                   samp_ext *x, int32_t *out) {
    cu_pdl_begin();
    __shared__ __align__(16) float sv[SP_CH];
    __shared__ float shv[SP_NT / 32];
    __shared__ int shi[SP_NT / 32];
    __shared__ unsigned sh_last;
    const int n = p.n, base = blockIdx.x * SP_CH, cnt = min(SP_CH, n - base);
    for (int i = threadIdx.x; i < cnt; i += SP_NT) sv[i] = logits[base + i];
    __syncthreads();
    /* 1. repetition penalty, once per distinct token of this block's chunk */
    if (p.pen != 1.0f && p.pen > 0.0f && (int)threadIdx.x < p.nh) {
        const int k = threadIdx.x, t = hist[k];
        bool first = t >= base && t < base + cnt;
        for (int j = 0; j < k && first; j++) first = hist[j] != t;
        if (first) {
            const float v = sv[t - base];
            sv[t - base] = v <= 0.0f ? v * p.pen : __fdiv_rn(v, p.pen);
        }
    }
    __syncthreads();
    /* 2. temperature; the thread's 8 contiguous logits */
    const int a = threadIdx.x * SP_PER;
    float v[SP_PER];
    if (a + SP_PER <= cnt) {
        const float4 q0 = *(const float4 *)(sv + a), q1 = *(const float4 *)(sv + a + 4);
        v[0] = q0.x; v[1] = q0.y; v[2] = q0.z; v[3] = q0.w;
        v[4] = q1.x; v[5] = q1.y; v[6] = q1.z; v[7] = q1.w;
    } else {
#pragma unroll
        for (int j = 0; j < SP_PER; j++) v[j] = a + j < cnt ? sv[a + j] : 0.0f;
    }
    float mx = -INFINITY, av = 0.0f;
    int nf = 0, ai = -1;
#pragma unroll
    for (int j = 0; j < SP_PER; j++) {
        if (a + j >= cnt) break;
        const float t = __fdiv_rn(v[j], p.temp);
        v[j] = t;
        mx = fmaxf(mx, t);
        nf += t > -INFINITY;
        am_merge(av, ai, t != t ? 0.0f : t, t != t ? -1 : base + a + j);
    }
    if (a + SP_PER <= cnt) {
        *(float4 *)(w + base + a) = make_float4(v[0], v[1], v[2], v[3]);
        *(float4 *)(w + base + a + 4) = make_float4(v[4], v[5], v[6], v[7]);
    } else {
        for (int j = 0; j < SP_PER && a + j < cnt; j++) w[base + a + j] = v[j];
    }
    mx = sp_max_f<SP_NT>(mx, shv);
    nf = sp_sum_i<SP_NT>(nf, shi);
    am_block_all<SP_NT>(av, ai, shv, shi);
    if (threadIdx.x == 0) {
        x->pmax[blockIdx.x] = mx;
        x->pnf[blockIdx.x] = nf;
        x->pav[blockIdx.x] = av;
        x->pai[blockIdx.x] = ai;
    }
    if (!cu_last_block(&x->st.ctr, &sh_last)) return;
    /* the last block: merge the blocks (max, count and argmax do not depend
     * on the order) and choose the phase */
    mx = -INFINITY;
    nf = 0;
    av = 0.0f;
    ai = -1;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += SP_NT) {
        mx = fmaxf(mx, __ldcg(x->pmax + b));
        nf += __ldcg(x->pnf + b);
        am_merge(av, ai, __ldcg(x->pav + b), __ldcg(x->pai + b));
    }
    mx = sp_max_f<SP_NT>(mx, shv);
    nf = sp_sum_i<SP_NT>(nf, shi);
    am_block_all<SP_NT>(av, ai, shv, shi);
    if (threadIdx.x == 0) {
        samp_st *s = &x->st;
        s->ctr = 0;
        s->maxw = mx;
        s->amax = ai < 0 ? 0 : ai;
        s->level = 0;
        s->lo = 0;
        s->aw = s->ac = 0;
        s->sel = 0;
        s->cut_w = -INFINITY;
        s->cut_id = 0x7fffffff;
        /* nothing finite (top-k's empty heap, the host's -inf max) or a +inf
         * logit: the argmax, as the host returns */
        if (nf == 0 || !(mx > -INFINITY) || mx == INFINITY) {
            *out = s->amax;
            s->phase = PH_DONE;
        } else if (p.top_k > 0 && p.top_k < n && nf >= p.top_k) {
            s->sel = SEL_K;
            s->T = (double)p.top_k;
            s->phase = PH_LEVEL;
        } else if (p.top_p < 1.0f) {
            /* top-p over every finite logit (top-k off, or fewer finite
             * than k: the host's cut stays open) */
            s->sel = SEL_P;
            s->phase = PH_LEVEL;
        } else {
            s->phase = PH_DRAW;
        }
    }
}

/* ---- a level: histogram of the key in [lo, lo + width) ------------------------------ */
__global__ void __launch_bounds__(SP_NT) k_sp_level(const float *w, samp_params p, samp_ext *x, int L) {
    cu_pdl_begin();
    __shared__ unsigned hc[SP_NBIN];
    __shared__ unsigned long long hm[SP_NBIN];
    __shared__ unsigned long long wx[SP_NT];
    __shared__ double shd[SP_NT / 32];
    __shared__ unsigned long long shu[SP_NT / 32];
    __shared__ unsigned sh_last;
    __shared__ int sh_b, sh_ne, sh_h;
    __shared__ unsigned long long sh_hc;
    __shared__ unsigned long long sh_aw, sh_ac, sh_pc, sh_naw, sh_nac, sh_npc;
    __shared__ double sh_z;
    if (x->st.phase != PH_LEVEL || x->st.level != L) return;
    const bool mass = x->st.sel == SEL_P;
    const int shift = L == 0 ? 21 : L == 1 ? 10 : 0, nbins = L == 2 ? 1024 : SP_NBIN;
    const unsigned long long width = (unsigned long long)nbins << shift;
    const uint32_t lo = x->st.lo;
    const float maxw = x->st.maxw;
    const int n = p.n, lane = threadIdx.x & 31;
    for (int b = threadIdx.x; b < nbins; b += SP_NT) {
        hc[b] = 0;
        hm[b] = 0;
    }
    __syncthreads();
    const int i0 = blockIdx.x * SP_CH + threadIdx.x * SP_PER;
    float v[SP_PER];
    sp_load(w, n, i0, v);
    double zs = 0.0;
#pragma unroll
    for (int j = 0; j < SP_PER; j++) {
        /* every lane runs every j (the warp-wide match and shuffles) */
        bool ok = v[j] > -INFINITY; /* false for NaN and past n */
        const unsigned long long d = (unsigned long long)fkey(v[j]) - lo;
        ok = ok && d < width;
        const unsigned bin = ok ? (unsigned)(d >> shift) : 0xffffffffu;
        unsigned long long E = 0;
        if (mass && ok) {
            const double e = exp((double)v[j] - (double)maxw);
            zs += e;
            E = __double2ull_rz(e * SP_FP);
        }
        /* one shared atomic per warp and bin */
        const unsigned grp = __match_any_sync(0xffffffffu, bin);
        const bool lead = ok && lane == __ffs(grp) - 1;
        if (mass) {
            wx[threadIdx.x] = E;
            __syncwarp();
            if (lead) {
                unsigned long long s = 0;
                for (unsigned m = grp; m; m &= m - 1) s += wx[(threadIdx.x & ~31u) + __ffs(m) - 1];
                atomicAdd(&hm[bin], s);
            }
            __syncwarp();
        }
        if (lead) atomicAdd(&hc[bin], (unsigned)__popc(grp));
    }
    __syncthreads();
    for (int b = threadIdx.x; b < nbins; b += SP_NT)
        if (hc[b]) {
            atomicAdd(&x->hc[b], hc[b]);
            if (mass) atomicAdd(&x->hm[b], hm[b]);
        }
    if (mass && L == 0) {
        zs = sp_sum_d<SP_NT>(zs, shd);
        if (threadIdx.x == 0) x->pz[blockIdx.x] = zs;
    }
    if (!cu_last_block(&x->st.ctr, &sh_last)) return;

    /* the last block: the bin of the cut (the block partials into shared
     * memory first: one dependent L2 read per block would be ~0.3 us each) */
    double *spz = (double *)hm; /* this block's bins are flushed */
    if (mass && L == 0)
        for (int b = threadIdx.x; b < (int)gridDim.x; b += SP_NT) spz[b] = __ldcg(x->pz + b);
    __syncthreads();
    if (threadIdx.x == 0) {
        double z = x->st.z;
        if (mass && L == 0) {
            z = 0.0;
            for (int b = 0; b < (int)gridDim.x; b++) z += spz[b];
        }
        sh_z = z;
        sh_b = -1;
        sh_ne = 0x7fffffff;
        sh_h = -1;
    }
    __syncthreads();
    const double z = sh_z;
    const double T = mass ? (L == 0 ? (double)p.top_p * z : x->st.T) : x->st.T;
    /* masses: a lower bound of the mass from the top must reach T + eps, so
     * the exact (double) cum surely reaches T inside the prefix */
    const double thr = mass ? T + 1e-9 * z : T, scale = mass ? 1.0 / SP_FP : 1.0;
    /* thread t owns 8 bins, descending: t's first is nbins - 1 - 8t */
    unsigned long long W[8], C[8], sw = 0, sc = 0, su = 0;
#pragma unroll
    for (int q = 0; q < 8; q++) {
        const int b = nbins - 1 - 8 * (int)threadIdx.x - q;
        W[q] = C[q] = 0;
        if (b >= 0) {
            C[q] = __ldcg(x->hc + b);
            W[q] = mass ? __ldcg(x->hm + b) : C[q];
        }
        sw += W[q];
        sc += C[q];
        su += mass ? W[q] + C[q] : W[q];
    }
    /* upper bounds (masses): each survivor's mass < (its floor + 1) units; the
     * cut is not in a bin above the highest one whose upper bound reaches
     * T - eps */
    const double thu = mass ? T - 1e-9 * z : T;
    const unsigned long long aw0 = x->st.aw, ac0 = x->st.ac;
    unsigned long long cw = aw0 + sp_exscan_u64(sw, shu), cc = ac0 + sp_exscan_u64(sc, shu);
    unsigned long long cu = (mass ? aw0 + ac0 : aw0) + sp_exscan_u64(su, shu);
    int myb = -1, mne = 0x7fffffff, myh = -1;
    unsigned long long maw = 0, mac = 0, mpc = 0, naw = 0, nac = 0, npc = 0, mhc = 0;
#pragma unroll
    for (int q = 0; q < 8; q++) {
        const int b = nbins - 1 - 8 * (int)threadIdx.x - q;
        if (b < 0) break;
        const unsigned long long pw = cw, pcn = cc;
        cw += W[q];
        cc += C[q];
        cu += mass ? W[q] + C[q] : W[q];
        if (myh < 0 && C[q] > 0 && (double)cu * scale >= thu) {
            myh = b;
            mhc = pcn;
        }
        if (myb < 0 && C[q] > 0 && (double)cw * scale >= thr) {
            myb = b;
            maw = pw;
            mac = pcn;
            mpc = cc;
        }
        if (C[q] > 0) { /* the lowest non-empty bin (the last one seen) */
            mne = b;
            naw = pw;
            nac = pcn;
            npc = cc;
        }
    }
    if (myb >= 0) atomicMax(&sh_b, myb);
    if (mne != 0x7fffffff) atomicMin(&sh_ne, mne);
    if (myh >= 0) atomicMax(&sh_h, myh);
    __syncthreads();
    if (myh >= 0 && myh == sh_h) sh_hc = mhc;
    if (myb >= 0 && myb == sh_b) {
        sh_aw = maw;
        sh_ac = mac;
        sh_pc = mpc;
    }
    if (mne != 0x7fffffff && mne == sh_ne) {
        sh_naw = naw;
        sh_nac = nac;
        sh_npc = npc;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        samp_st *s = &x->st;
        int B = sh_b;
        unsigned long long aw = sh_aw, ac = sh_ac, pc = sh_pc;
        if (B < 0 && sh_ne != 0x7fffffff) { /* target beyond the bound: everything */
            B = sh_ne;
            aw = sh_naw;
            ac = sh_nac;
            pc = sh_npc;
        }
        if (mass && L == 0) {
            s->z = z;
            s->T = T;
        }
        /* the cut lies in bins [B, H]: H = B for counts; for masses the
         * highest bin whose upper bound reaches T - eps (none: the range's
         * top, conservatively) */
        int H = sh_h;
        unsigned long long hc = sh_hc;
        if (H < B) {
            H = nbins - 1;
            hc = ac0;
        }
        s->interval = 0;
        s->chi = 0xffffffffu;
        if (B < 0) {
            s->phase = PH_FALLBACK; /* nothing counted (cannot happen: nf >= 1) */
        } else {
            const uint32_t nlo = lo + ((uint32_t)B << shift);
            const uint32_t nhi = (uint32_t)((unsigned long long)lo + ((unsigned long long)(H + 1) << shift) - 1);
            const unsigned long long ic = pc - hc; /* survivors in bins [B, H] */
            const bool more = L < 2, one = H == B;
            /* the interval needs the draw over all logits afterwards, so
             * top-k's interval only without top-p */
            const bool iok = !(s->sel == SEL_K && p.top_p < 1.0f);
            if (pc <= SP_CSMALL) {
                s->phase = PH_COMPACT; /* the prefix: k_sp_finish does everything */
                s->clo = nlo;
            } else if (more && one && (ac < SP_CMAX || (iok && ic > SP_CSMALL))) {
                s->phase = PH_LEVEL; /* refine inside B: the prefix or the interval may shrink */
                s->level = L + 1;
                s->lo = nlo;
                s->aw = aw;
                s->ac = ac;
            } else if (pc <= SP_CMAX) {
                s->phase = PH_COMPACT;
                s->clo = nlo;
            } else if (iok && ic <= SP_CMAX) {
                s->phase = PH_COMPACT;
                s->clo = nlo;
                s->chi = nhi;
                s->interval = 1;
                s->ahc = hc;
            } else {
                s->phase = PH_FALLBACK;
            }
        }
        s->ctr = 0;
    }
    __syncthreads(); /* every read of x->hc / x->hm above is done */
    for (int b = threadIdx.x; b < nbins; b += SP_NT) {
        x->hc[b] = 0;
        x->hm[b] = 0;
    }
}

/* ---- compaction of the prefix (key >= clo) ----------------------------------------- */
__global__ void __launch_bounds__(SP_NT) k_sp_compact(const float *w, samp_params p, samp_ext *x) {
    cu_pdl_begin();
    __shared__ double shd[SP_NT / 32];
    if (x->st.phase != PH_COMPACT) return;
    const uint32_t clo = x->st.clo, chi = x->st.chi;
    const float maxw = x->st.maxw;
    const int lane = threadIdx.x & 31, i0 = blockIdx.x * SP_CH + threadIdx.x * SP_PER;
    float v[SP_PER];
    sp_load(w, p.n, i0, v);
    double above = 0.0; /* interval: the mass of the survivors above chi, this block's part */
#pragma unroll
    for (int j = 0; j < SP_PER; j++) {
        const uint32_t k = fkey(v[j]);
        if (v[j] > -INFINITY && k > chi) above += exp((double)v[j] - (double)maxw);
        const bool ok = v[j] > -INFINITY && k >= clo && k <= chi;
        const unsigned bal = __ballot_sync(0xffffffffu, ok);
        if (!bal) continue; /* warp-uniform */
        int slot = 0;
        if (lane == __ffs(bal) - 1) slot = atomicAdd(&x->st.cnt, __popc(bal));
        slot = __shfl_sync(0xffffffffu, slot, __ffs(bal) - 1) + __popc(bal & ((1u << lane) - 1u));
        if (ok && slot < SP_CMAX)
            x->cand[slot] = ((unsigned long long)k << 32) | (uint32_t)~(uint32_t)(i0 + j);
    }
    if (x->st.interval) { /* uniform */
        above = sp_sum_d<SP_NT>(above, shd);
        if (threadIdx.x == 0) x->pz[blockIdx.x] = above;
    }
}

/* ---- the finish: sort the prefix, cut, draw ----------------------------------------- */
__device__ __forceinline__ double sp_e(unsigned long long s, bool idfirst, float maxw) {
    const float v = fkey_inv(idfirst ? (uint32_t)s : (uint32_t)(s >> 32));
    return exp((double)v - (double)maxw);
}
__device__ __forceinline__ int sp_id(unsigned long long s, bool idfirst) {
    return idfirst ? (int)(s >> 32) : (int)~(uint32_t)s;
}
/* bitonic sort of s[0, P), P a power of two; desc: descending */
__device__ void sp_bitonic(unsigned long long *s, int P, bool desc) {
    for (int k = 2; k <= P; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int t = threadIdx.x; t < P / 2; t += SP_FB) {
                const int lo = ((t & ~(j - 1)) << 1) | (t & (j - 1)), hi = lo + j;
                const bool dn = ((lo & k) == 0) == desc; /* want s[lo] >= s[hi] */
                const unsigned long long A = s[lo], B = s[hi];
                if (dn ? A < B : A > B) {
                    s[lo] = B;
                    s[hi] = A;
                }
            }
            __syncthreads();
        }
}
/* sum of e over s[0, cnt) (per-thread segments, then the block) */
__device__ double sp_mass(const unsigned long long *s, int cnt, bool idfirst, float maxw, double *shd) {
    const int seg = (cnt + SP_FB - 1) / SP_FB, a = threadIdx.x * seg, b = min(cnt, a + seg);
    double l = 0.0;
    for (int i = a; i < b; i++) l += sp_e(s[i], idfirst, maxw);
    return sp_sum_d<SP_FB>(l, shd);
}
/* the first position of s[0, cnt) where the running sum of e reaches T
 * (strict: exceeds T); -1 when none */
__device__ int sp_cross(const unsigned long long *s, int cnt, bool idfirst, float maxw, double start, double T,
                        bool strict, double *shd, int *shres) {
    const int seg = (cnt + SP_FB - 1) / SP_FB, a = threadIdx.x * seg, b = min(cnt, a + seg);
    double l = 0.0;
    for (int i = a; i < b; i++) l += sp_e(s[i], idfirst, maxw);
    if (threadIdx.x == 0) *shres = 0x7fffffff;
    double c = start + block_exscan_d(l, shd); /* its __syncthreads publish *shres */
    for (int i = a; i < b; i++) {
        c += sp_e(s[i], idfirst, maxw);
        if (strict ? c > T : c >= T) {
            atomicMin(shres, i);
            break;
        }
    }
    __syncthreads();
    const int r = *shres;
    __syncthreads();
    return r == 0x7fffffff ? -1 : r;
}
__global__ void __launch_bounds__(SP_FB) k_sp_finish(samp_params p, samp_ext *x, int nb, int32_t *out) {
    cu_pdl_begin();
    extern __shared__ unsigned long long sk[]; /* [SP_CMAX] */
    __shared__ double shd[SP_FB / 32];
    __shared__ int shi[SP_FB / 32];
    __shared__ int shres;
    if (x->st.phase != PH_COMPACT) return;
    const int m = x->st.cnt, sel = x->st.sel, iv = x->st.interval;
    const float maxw = x->st.maxw;
    const double Tp = x->st.T;
    /* interval: the survivors above it, counted by the levels, their mass
     * summed by k_sp_compact's blocks (in block order here) */
    const int ka = iv ? (int)x->st.ahc : 0;
    double above = 0.0;
    if (iv)
        for (int b = 0; b < nb; b++) above += __ldcg(x->pz + b);
    __syncthreads(); /* every thread has read the state */
    if (threadIdx.x == 0) x->st.cnt = 0;
    if (m <= 0 || m > SP_CMAX || (sel == SEL_K && (p.top_k - ka > m || p.top_k - ka < 1))) {
        if (threadIdx.x == 0) x->st.phase = PH_FALLBACK;
        return;
    }
    int P = 1;
    while (P < m) P <<= 1;
    for (int i = threadIdx.x; i < P; i += SP_FB) sk[i] = i < m ? __ldcg(x->cand + i) : 0ull;
    __syncthreads();
    sp_bitonic(sk, P, true); /* the total order: key desc, id asc */
    /* 3.-4. the cut position in the sorted prefix */
    int cut;
    if (sel == SEL_K) {
        const int kp = p.top_k - 1 - ka;
        cut = kp;
        if (p.top_p < 1.0f) { /* never with an interval */
            const double z = sp_mass(sk, kp + 1, false, maxw, shd);
            const int r = sp_cross(sk, kp + 1, false, maxw, 0.0, (double)p.top_p * z, false, shd, &shres);
            cut = r < 0 ? kp : r;
        }
    } else {
        const int r = sp_cross(sk, m, false, maxw, above, Tp, false, shd, &shres);
        cut = r < 0 ? m - 1 : r;
    }
    if (iv) { /* the cut only; k_sp_draw applies min-p and draws over all logits */
        if (threadIdx.x == 0) {
            x->st.cut_w = fkey_inv((uint32_t)(sk[cut] >> 32));
            x->st.cut_id = (int)~(uint32_t)sk[cut];
            x->st.phase = PH_DRAW;
        }
        return;
    }
    /* 5. min-p: the survivors with w >= max + log(min_p) are a prefix too */
    int s = cut + 1;
    if (p.log_min_p > -INFINITY) {
        float thr = maxw + p.log_min_p;
        if (thr > maxw) thr = maxw;
        int c = 0;
        for (int i = threadIdx.x; i < s; i += SP_FB) c += fkey_inv((uint32_t)(sk[i] >> 32)) >= thr;
        c = sp_sum_i<SP_FB>(c, shi);
        s = min(s, c);
    }
    /* 6. the survivors by ascending id, the draw */
    int P2 = 1;
    while (P2 < s) P2 <<= 1;
    __syncthreads();
    for (int i = threadIdx.x; i < P2; i += SP_FB) {
        const unsigned long long q = sk[i];
        sk[i] = i < s ? ((unsigned long long)~(uint32_t)q << 32) | (q >> 32) : ~0ull;
    }
    __syncthreads();
    sp_bitonic(sk, P2, false);
    const double z = sp_mass(sk, s, true, maxw, shd);
    const int r = sp_cross(sk, s, true, maxw, 0.0, p.u * z, true, shd, &shres);
    if (threadIdx.x == 0) {
        *out = sp_id(sk[r < 0 ? s - 1 : r], true);
        x->st.phase = PH_DONE;
    }
}

/* ---- the plain draw (no top-k / top-p cut): min-p at most --------------------------- */
__global__ void __launch_bounds__(SP_NT) k_sp_draw(const float *w, samp_params p, samp_ext *x, int32_t *out) {
    cu_pdl_begin();
    __shared__ double shd[SP_NT / 32];
    __shared__ int shi[SP_NT / 32];
    __shared__ unsigned sh_last;
    __shared__ int sh_b, shres, sh_last_id;
    __shared__ double sh_base, sh_target;
    __shared__ double spz[SP_MAXB];
    __shared__ int spl[SP_MAXB];
    if (x->st.phase != PH_DRAW) return;
    const float maxw = x->st.maxw, cw = x->st.cut_w;
    const int cid = x->st.cut_id;
    float thr = -INFINITY;
    if (p.log_min_p > -INFINITY) {
        thr = maxw + p.log_min_p;
        if (thr > maxw) thr = maxw;
    }
    const int n = p.n;
#define SP_SURV(v, i) ((v) > -INFINITY && (v) >= thr && ((v) > cw || ((v) == cw && (i) <= cid)))
    int i0 = blockIdx.x * SP_CH + threadIdx.x * SP_PER;
    float v[SP_PER];
    sp_load(w, n, i0, v);
    double l = 0.0;
    int last = -1;
#pragma unroll
    for (int j = 0; j < SP_PER; j++)
        if (SP_SURV(v[j], i0 + j)) {
            l += exp((double)v[j] - (double)maxw);
            last = i0 + j;
        }
    const double bs = sp_sum_d<SP_NT>(l, shd);
    int bl = last;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) bl = max(bl, __shfl_xor_sync(0xffffffffu, bl, o));
    if ((threadIdx.x & 31) == 0) shi[threadIdx.x >> 5] = bl;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 0; k < SP_NT / 32; k++) bl = max(bl, shi[k]);
        x->pz[blockIdx.x] = bs;
        x->plast[blockIdx.x] = bl;
    }
    if (!cu_last_block(&x->st.ctr, &sh_last)) return;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += SP_NT) {
        spz[b] = __ldcg(x->pz + b);
        spl[b] = __ldcg(x->plast + b);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double z = 0.0;
        int la = -1;
        for (int b = 0; b < (int)gridDim.x; b++) {
            z += spz[b];
            la = max(la, spl[b]);
        }
        const double target = p.u * z;
        double c = 0.0;
        int bs2 = -1;
        for (int b = 0; b < (int)gridDim.x; b++) {
            const double c2 = c + spz[b];
            if (c2 > target) {
                bs2 = b;
                break;
            }
            c = c2;
        }
        sh_b = bs2;
        sh_base = c;
        sh_target = target;
        sh_last_id = la;
        shres = 0x7fffffff;
    }
    __syncthreads();
    const int B = sh_b;
    if (B >= 0) { /* walk block B's chunk in id order (uniform branch) */
        i0 = B * SP_CH + threadIdx.x * SP_PER;
        sp_load(w, n, i0, v);
        double e[SP_PER];
        l = 0.0;
#pragma unroll
        for (int j = 0; j < SP_PER; j++) {
            e[j] = SP_SURV(v[j], i0 + j) ? exp((double)v[j] - (double)maxw) : 0.0;
            l += e[j];
        }
        double c = sh_base + block_exscan_d(l, shd);
        const double target = sh_target;
#pragma unroll
        for (int j = 0; j < SP_PER; j++)
            if (SP_SURV(v[j], i0 + j)) {
                c += e[j];
                if (c > target) {
                    atomicMin(&shres, i0 + j);
                    break;
                }
            }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        int r = shres;
        if (r == 0x7fffffff) r = B >= 0 ? spl[B] : sh_last_id;
        if (r < 0) r = x->st.amax; /* no survivor (cannot happen with a finite max) */
        *out = r;
        x->st.phase = PH_DONE;
        x->st.ctr = 0;
    }
#undef SP_SURV
}

/* the sampler's scratch: the working logits w [cap] floats, then e [cap]
 * doubles (8-byte aligned; k_sample's), then the many-block sampler's
 * samp_ext (256-byte aligned, zeroed once: its counters and histograms are
 * zero again after every kernel that uses them) */
#define SAMP_EXT_OFF(cap) \
    ((((((size_t)(cap) * sizeof(float) + 7) & ~(size_t)7) + (size_t)(cap) * sizeof(double)) + 255) & ~(size_t)255)
#define SAMP_BYTES(cap) (SAMP_EXT_OFF(cap) + sizeof(samp_ext))
static double *samp_e(float *w, int cap) {
    return (double *)(((uintptr_t)(w + cap) + 7) & ~(uintptr_t)7);
}
static samp_ext *samp_x(float *w, int cap) { return (samp_ext *)((char *)w + SAMP_EXT_OFF(cap)); }

int cu_sample(cu_ctx *c, const float *logits, int n_vocab, const eng_sample_args *a, int32_t *dev_token,
              int32_t *host_token) {
    c->samp_pending = NULL;
    if (n_vocab <= 0) return -EINVAL;
    if (c->err) return -EIO;
    if (c->samp_cap < n_vocab) {
        if (c->capturing) return -EBUSY; /* never allocate inside a capture */
        if (c->samp_w) {
            cudaFree(c->samp_w);
            c->internal_bytes -= SAMP_BYTES(c->samp_cap);
            c->samp_w = NULL;
            c->samp_cap = 0;
        }
        void *p;
        if (cu_mem_internal(c, SAMP_BYTES(n_vocab), &p)) return -ENOMEM;
        c->samp_w = (float *)p;
        c->samp_cap = n_vocab;
        if (CUDA_CHECK(c, cudaMemsetAsync(samp_x(c->samp_w, n_vocab), 0, sizeof(samp_ext), c->stream)) ||
            CUDA_CHECK(c, cudaFuncSetAttribute(k_sp_finish, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)(SP_CMAX * sizeof(unsigned long long)))))
            return -EIO;
    }
    samp_params p;
    p.n = n_vocab;
    p.nh = a->n_history < 0 ? 0 : (a->n_history > ENG_REPEAT_LAST_N ? ENG_REPEAT_LAST_N : a->n_history);
    p.temp = a->p.temperature;
    p.pen = a->p.repeat_penalty;
    p.top_p = a->p.top_p;
    p.top_k = a->p.top_k;
    p.log_min_p = a->p.min_p > 0.0f ? logf(a->p.min_p) : -INFINITY;
    p.u = a->uniform;
    int32_t *dst = dev_token ? dev_token : c->samp_out;
    const int pen_on = p.pen != 1.0f && p.pen > 0.0f;
    if (!(p.temp > 0.0f) && c->samp_red && c->samp_fast) {
        int nh = 0;
        if (pen_on && p.nh > 0 && a->history) {
            nh = p.nh;
            if (CUDA_CHECK(c, cudaMemcpyAsync(c->samp_hist, a->history + (a->n_history - p.nh), (size_t)nh * 4,
                                              cudaMemcpyHostToDevice, c->stream)))
                return -EIO;
        }
        int nb = (int)cu_div_up(n_vocab, 4 * ARGMAX_B);
        if (nb > ARGMAX_MAXB) nb = ARGMAX_MAXB;
        float *pv = (float *)c->samp_red;
        int *pi = (int *)(c->samp_red + ARGMAX_MAXB);
        unsigned *cnt = (unsigned *)(c->samp_red + 2 * ARGMAX_MAXB);
        cu_launch(c, nb, ARGMAX_B, 0, k_argmax, logits, n_vocab, (const int32_t *)c->samp_hist, nh, p.pen, pv, pi, cnt,
                  dst);
        if (LAUNCH_CHECK(c, "sample_argmax")) return -EIO;
    } else {
    if (p.nh > 0 && a->history) {
        /* the window holds the last 64 accepted tokens, oldest first */
        const int32_t *h = a->history + (a->n_history - p.nh);
        if (CUDA_CHECK(c, cudaMemcpyAsync(c->samp_hist, h, (size_t)p.nh * 4, cudaMemcpyHostToDevice, c->stream)))
            return -EIO;
    } else {
        p.nh = 0;
    }
    const int nb = (int)cu_div_up(n_vocab, SP_CH);
    if (p.temp > 0.0f && c->samp_fast && nb <= SP_MAXB) {
        /* the many-block sampler: a fixed sequence, each kernel gated by the
         * phase the one before left (see the section's comment) */
        samp_ext *x = samp_x(c->samp_w, c->samp_cap);
        const int cut = (p.top_k > 0 && p.top_k < n_vocab) || p.top_p < 1.0f;
        cu_launch(c, nb, SP_NT, 0, k_sp_prep, logits, c->samp_w, (const int32_t *)c->samp_hist, p, x, dst);
        if (cut) {
            for (int L = 0; L < 3; L++) cu_launch(c, nb, SP_NT, 0, k_sp_level, (const float *)c->samp_w, p, x, L);
            cu_launch(c, nb, SP_NT, 0, k_sp_compact, (const float *)c->samp_w, p, x);
            cu_launch(c, 1, SP_FB, SP_CMAX * sizeof(unsigned long long), k_sp_finish, p, x, nb, dst);
        }
        cu_launch(c, nb, SP_NT, 0, k_sp_draw, (const float *)c->samp_w, p, x, dst);
        if (cut)
            cu_launch(c, 1, SB, 0, k_sample, logits, c->samp_w, samp_e(c->samp_w, c->samp_cap), c->samp_hist, p, dst,
                      (const samp_st *)&x->st);
        if (LAUNCH_CHECK(c, "sample_many")) return -EIO;
    } else {
        cu_launch(c, 1, SB, 0, k_sample, logits, c->samp_w, samp_e(c->samp_w, c->samp_cap), c->samp_hist, p, dst,
                  (const samp_st *)NULL);
        if (LAUNCH_CHECK(c, "sample")) return -EIO;
    }
    }
    return cu_sample_ready(c, dst, host_token);
}

/* backend.h sample_ready; also cu_sample's end: host_token NULL marks this
 * point of the stream for read_token, else the id is read now (a 4-byte
 * copy and a sync of the stream) */
int cu_sample_ready(cu_ctx *c, const int32_t *dev_token, int32_t *host_token) {
    c->samp_pending = NULL;
    if (c->err) return -EIO;
    if (!host_token) {
        if (CUDA_CHECK(c, cudaEventRecord(c->samp_ev, c->stream))) return -EIO;
        c->samp_pending = dev_token;
        return 0;
    }
    int32_t tok = 0;
    if (CUDA_CHECK(c, cudaMemcpyAsync(&tok, dev_token, 4, cudaMemcpyDeviceToHost, c->stream))) return -EIO;
    if (CUDA_CHECK(c, cudaStreamSynchronize(c->stream))) return -EIO;
    *host_token = tok;
    return 0;
}

/* backend.h read_token: the side stream waits for the event cu_sample
 * recorded after its kernel, copies the 4 bytes into the caller's (pageable)
 * int and is synchronized alone; the main stream keeps running whatever was
 * enqueued after the sample. */
int cu_read_token(cu_ctx *c, const int32_t *dev_token, int32_t *host_token) {
    const int32_t *src = c->samp_pending;
    c->samp_pending = NULL;
    if (c->err) return -EIO;
    if (!src || (dev_token && dev_token != src)) return -EINVAL;
    int32_t tok = 0;
    if (CUDA_CHECK(c, cudaStreamWaitEvent(c->side, c->samp_ev, 0))) return -EIO;
    if (CUDA_CHECK(c, cudaMemcpyAsync(&tok, src, 4, cudaMemcpyDeviceToHost, c->side))) return -EIO;
    if (CUDA_CHECK(c, cudaStreamSynchronize(c->side))) return -EIO;
    *host_token = tok;
    return 0;
}
