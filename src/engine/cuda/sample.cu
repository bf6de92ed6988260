/* sample.cu — the SPEC §3.4 sampling pipeline on the device; only the token
 * id comes back (4 bytes). It computes exactly the host reference's function
 * (engine/sampler.c): same filter order, the same total order (logit desc, id
 * asc), the same "cut" representation of the surviving prefix, the draw in
 * ascending id order with double-precision exp and the host's uniform.
 * Summation order differs (parallel), so a draw that lands within rounding of
 * a boundary may pick the neighbour; everything else is exact.
 *
 * One block of 1024 threads does it all (the vocabulary is ~10^5 floats):
 *   copy → repetition penalty (thread 0, <= 64 tokens) → temperature
 *   (t <= 0: argmax) → top-k (radix select on the ordered float bits: 4 passes
 *   of 8 bits, counts) → max → top-p (the same radix select weighted by
 *   exp(w - max)) → min-p → draw (per-thread contiguous id segments, block
 *   scan of their masses, one thread walks the segment that crosses u*Z).
 * exp(w - max) is computed once per survivor of the top-k cut into e (the
 * scratch beside w) and read by top-p and the draw; the radix passes add to
 * their buckets once per warp and bucket. Measured (H100, 151,936 logits):
 * ~0.7 ms per call with top-k 40 + top-p 0.95, ~0.2 ms at temperature alone:
 * one SM does it all (docs/PERF.md, "the sampled decode path").
 * Division by the temperature / penalty uses __fdiv_rn: fast-math must not
 * change a logit the host would compute exactly. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common.cuh"

#define SB 1024

struct samp_params {
    int n, nh;
    float temp, pen, top_p, log_min_p;
    int top_k;
    double u;
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

/* block reductions (all threads call; result in every thread) */
__device__ double block_sum_d(double v, double *sh) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    double t = 0.0;
    for (int i = 0; i < SB / 32; i++) t += sh[i];
    __syncthreads();
    return t;
}
__device__ float block_max_f(float v, float *sh) {
    v = warp_max(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int i = 0; i < SB / 32; i++) t = fmaxf(t, sh[i]);
    __syncthreads();
    return t;
}
/* exclusive scan of one double per thread (thread order) */
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

__global__ void __launch_bounds__(SB) k_sample(const float *logits, float *w, double *e, const int32_t *hist,
                                               samp_params p, int32_t *out) {
    cu_pdl_begin();
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
__device__ __forceinline__ void am_merge(float &bv, int &bi, float v2, int i2) {
    if (i2 >= 0 && (bi < 0 || v2 > bv || (v2 == bv && i2 < bi))) {
        bv = v2;
        bi = i2;
    }
}
__device__ __forceinline__ void am_block(float &bv, int &bi, float *shv, int *shi) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float v2 = __shfl_xor_sync(0xffffffffu, bv, o);
        const int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
        am_merge(bv, bi, v2, i2);
    }
    if ((threadIdx.x & 31) == 0) {
        shv[threadIdx.x >> 5] = bv;
        shi[threadIdx.x >> 5] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0)
        for (int k = 1; k < ARGMAX_B / 32; k++) am_merge(bv, bi, shv[k], shi[k]);
}
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
    am_block(bv, bi, shv, shi);
    if (threadIdx.x == 0) {
        pv[blockIdx.x] = bv;
        pi[blockIdx.x] = bi;
        __threadfence();
        sh_last = atomicAdd(cnt, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!sh_last) return;
    __threadfence();
    bv = 0.0f;
    bi = -1;
    for (int b = threadIdx.x; b < (int)gridDim.x; b += ARGMAX_B) am_merge(bv, bi, __ldcg(pv + b), __ldcg(pi + b));
    __syncthreads();
    am_block(bv, bi, shv, shi);
    if (threadIdx.x == 0) {
        *out = bi < 0 ? 0 : bi;
        *cnt = 0;
    }
}

/* the sampler's scratch: the working logits w [cap] floats, then e [cap]
 * doubles (8-byte aligned) */
#define SAMP_BYTES(cap) ((((size_t)(cap) * sizeof(float) + 7) & ~(size_t)7) + (size_t)(cap) * sizeof(double))
static double *samp_e(float *w, int cap) {
    return (double *)(((uintptr_t)(w + cap) + 7) & ~(uintptr_t)7);
}

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
    cu_launch(c, 1, SB, 0, k_sample, logits, c->samp_w, samp_e(c->samp_w, c->samp_cap), c->samp_hist, p, dst);
    if (LAUNCH_CHECK(c, "sample")) return -EIO;
    }
    if (!host_token) {
        /* enqueue only: mark this point for read_token (cu_read_token) */
        if (CUDA_CHECK(c, cudaEventRecord(c->samp_ev, c->stream))) return -EIO;
        c->samp_pending = dst;
        return 0;
    }
    int32_t tok = 0;
    if (CUDA_CHECK(c, cudaMemcpyAsync(&tok, dst, 4, cudaMemcpyDeviceToHost, c->stream))) return -EIO;
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
