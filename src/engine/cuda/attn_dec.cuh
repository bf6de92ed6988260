/* attn_dec.cuh — the decode attention body (one (head, row, split) item of
 * flash-decoding over the fp16 KV cache) and the split merge, shared by
 * attention.cu's k_attn (one item per block) and persist.cu's persistent
 * decode kernel (items looped over by resident blocks). The math is
 * described in attention.cu. */
#ifndef LLORCH_CUDA_ATTN_DEC_CUH
#define LLORCH_CUDA_ATTN_DEC_CUH

#include "common.cuh"

/* merges the S splits of (row r, head h) from part: st(d, value) for each
 * dim d < hd (threads stride over d; with blockDim.x >= hd each thread owns
 * one dim, whole warps where hd % 32 == 0). The split partials are read
 * with L2-coherent loads (the merging block reads what other blocks of the
 * same grid wrote). */
template <class Store>
__device__ __forceinline__ void attn_combine(const float *part, int n_head, int hd, int S, int h, int r,
                                             const float *sinks, Store st) {
    const float *pp = part + (int64_t)(r * n_head + h) * S * (hd + 2);
    const float sk = sinks ? sinks[h] : -INFINITY;
    float M = sk;
    for (int sp = 0; sp < S; sp++) M = fmaxf(M, __ldcg(pp + sp * (hd + 2)));
    float L = sinks ? expf(sk - M) : 0.0f;
    for (int sp = 0; sp < S; sp++) {
        const float m = __ldcg(pp + sp * (hd + 2));
        if (m != -INFINITY) L += __ldcg(pp + sp * (hd + 2) + 1) * expf(m - M);
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float v = 0.0f;
        for (int sp = 0; sp < S; sp++) {
            const float m = __ldcg(pp + sp * (hd + 2));
            if (m != -INFINITY) v += __ldcg(pp + sp * (hd + 2) + 2 + d) * expf(m - M);
        }
        st(d, v / L);
    }
}

/* attn_combine into out [rows][n_head * hd] */
__device__ __forceinline__ void attn_combine_one(const float *part, int n_head, int hd, int S, float *out, int h, int r,
                                                 const float *sinks) {
    float *o = out + (int64_t)r * n_head * hd + (int64_t)h * hd;
    attn_combine(part, n_head, hd, S, h, r, sinks, [o](int d, float v) { o[d] = v; });
}

/* Online softmax: folds one key of score s and value vv (this lane's EPL
 * dims) into the running max m, sum l and accumulators acc. */
template <int EPL>
__device__ __forceinline__ void attn_fold(float s, const float vv[EPL], float &m, float &l, float acc[EPL]) {
    const float mn = fmaxf(m, s);
    const float corr = expf(m - mn), p = expf(s - mn);
    l = l * corr + p;
#pragma unroll
    for (int e = 0; e < EPL; e++) acc[e] = acc[e] * corr + p * vv[e];
    m = mn;
}

/* This lane's dims lane + 32 e of the query row qr [hd], times scale, into
 * qv; the accumulators zeroed (dims >= hd: 0) */
template <int EPL>
__device__ __forceinline__ void attn_q_load(const float *qr, int hd, float scale, int lane, float qv[EPL],
                                            float acc[EPL]) {
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        const int d = lane + 32 * e;
        qv[e] = d < hd ? qr[d] * scale : 0.0f;
        acc[e] = 0.0f;
    }
}

/* key row j's dims lane + 32 e of kv head kvh (fp16 cache rows kv_dim
 * wide) as floats; dims >= hd: 0 */
template <int EPL>
__device__ __forceinline__ void attn_row(const __half *c, int64_t j, int kv_dim, int kvh, int hd, int lane,
                                         float r[EPL]) {
    const __half *p = c + j * kv_dim + (int64_t)kvh * hd;
#pragma unroll
    for (int e = 0; e < EPL; e++) {
        const int d = lane + 32 * e;
        r[e] = d < hd ? __half2float(p[d]) : 0.0f;
    }
}

/* This warp's keys j = j0 + warp, j0 + warp + NW, ... < j1 of kv head kvh
 * from the fp16 caches (rows kv_dim wide), folded in increasing order; qv
 * is the scaled query, lane's dims lane + 32 e. The rows of AR_BATCH keys
 * are loaded before any of them is folded: one L2 round trip per batch
 * instead of per key (a key's dot, warp sum and fold wait for its row;
 * with one key at a time a warp's keys cost a round trip each, which made
 * the decode attention grow ~2.5 us per layer from position 0 to 127).
 * The same arithmetic in the same order as one key at a time. BATCH 1:
 * one key at a time (persist.cu's 64-register kernels, which would spill). */
#define AR_BATCH 4
template <int EPL, int NW, int BATCH = AR_BATCH>
__device__ __forceinline__ void attn_keys(const float qv[EPL], const __half *kc, const __half *vc, int kv_dim, int kvh,
                                          int hd, int j0, int j1, int warp, int lane, float &m, float &l,
                                          float acc[EPL]) {
    int j = j0 + warp;
    for (; BATCH > 1 && j + (BATCH - 1) * NW < j1; j += BATCH * NW) {
        float kf[BATCH][EPL], vf[BATCH][EPL];
#pragma unroll
        for (int u = 0; u < BATCH; u++) {
            attn_row<EPL>(kc, j + u * NW, kv_dim, kvh, hd, lane, kf[u]);
            attn_row<EPL>(vc, j + u * NW, kv_dim, kvh, hd, lane, vf[u]);
        }
#pragma unroll
        for (int u = 0; u < BATCH; u++) {
            float s = 0.0f;
#pragma unroll
            for (int e = 0; e < EPL; e++)
                if (lane + 32 * e < hd) s += qv[e] * kf[u][e];
            s = warp_sum(s);
            attn_fold<EPL>(s, vf[u], m, l, acc);
        }
    }
    for (; j < j1; j += NW) {
        float kf[EPL], vv[EPL];
        attn_row<EPL>(kc, j, kv_dim, kvh, hd, lane, kf);
        attn_row<EPL>(vc, j, kv_dim, kvh, hd, lane, vv);
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; e++)
            if (lane + 32 * e < hd) s += qv[e] * kf[e];
        s = warp_sum(s);
        attn_fold<EPL>(s, vv, m, l, acc);
    }
}

/* Merges the block's NW warps' (m, l, acc): M, L and each warp's factor f[w]
 * (0 for a warp that saw no key); returns the shared accumulators
 * [NW][EPL * 32] (row w: warp w's accumulator of dim d at [d]) that
 * attn_block_sum weighs. put(row) writes the calling lane's part of its
 * warp's accumulator into row (the layout of acc is the caller's). Every
 * thread calls it (__syncthreads inside); only threads < nuse get M, L and
 * f (the others' are 0: callers that use them only in threads < hd pass
 * hd, and the block's other warps skip the work). */
template <int EPL, int NW, class Put>
__device__ __forceinline__ const float (*attn_warp_merge_t(float m, float l, Put put, float &M, float &L,
                                                           float f[NW], int nuse = 1 << 30))[EPL * 32] {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __shared__ float sm_m[NW], sm_l[NW];
    __shared__ float sm_acc[NW][EPL * 32];
    if (lane == 0) {
        sm_m[warp] = m;
        sm_l[warp] = l;
    }
    put(sm_acc[warp]);
    __syncthreads();
    M = -INFINITY;
    L = 0.0f;
    if ((int)threadIdx.x >= nuse) {
#pragma unroll
        for (int w = 0; w < NW; w++) f[w] = 0.0f;
        return sm_acc;
    }
#pragma unroll
    for (int w = 0; w < NW; w++) M = fmaxf(M, sm_m[w]);
#pragma unroll
    for (int w = 0; w < NW; w++) {
        f[w] = sm_m[w] == -INFINITY ? 0.0f : expf(sm_m[w] - M);
        L += sm_l[w] * f[w];
    }
    return sm_acc;
}

/* attn_warp_merge_t for accumulators held as lane's dims lane + 32 e */
template <int EPL, int NW>
__device__ __forceinline__ const float (*attn_warp_merge(float m, float l, const float acc[EPL], float &M, float &L,
                                                         float f[NW]))[EPL * 32] {
    const int lane = threadIdx.x & 31;
    return attn_warp_merge_t<EPL, NW>(
        m, l,
        [&](float *row) {
#pragma unroll
            for (int e = 0; e < EPL; e++) row[lane + 32 * e] = acc[e];
        },
        M, L, f);
}

/* ---- lane groups: G = hd / 8 lanes per key ----------------------------------------
 * attn_keys gives each key a whole warp (lane holds dims lane + 32 e: 2-byte
 * loads, a 5-shuffle dot sum per key, one key per warp in flight per load).
 * For head_dim 32/64/128 the variant below gives a key G = hd / 8 lanes,
 * each holding 8 consecutive dims: one 16-byte load of K and one of V per
 * lane and key, 32 / G keys per warp per load, a dot summed in log2(G)
 * shuffles. Each lane group keeps its own online softmax (m, l, acc[8]);
 * attn_grp_merge folds the groups of a warp together, after which lanes
 * 0..G-1 hold the warp's accumulators of dims 8 lane .. 8 lane + 7. The
 * fp32 sums are the same terms in another order than attn_keys'. */

/* sum over the G lanes of a lane group (G a power of two, groups aligned) */
template <int G>
__device__ __forceinline__ float grp_sum(float v) {
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* 8 fp16 (one 16-byte word) as floats */
__device__ __forceinline__ void attn_h8(uint4 u, float f[8]) {
    const __half2 *h = (const __half2 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __half22float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

/* The scaled query's dims 8 (lane % G) .. +7 from qr [hd] into qv; the
 * accumulators zeroed */
template <int G>
__device__ __forceinline__ void attn_q_load_grp(const float *qr, float scale, int lane, float qv[8], float acc[8]) {
    const int d0 = 8 * (lane % G);
#pragma unroll
    for (int i = 0; i < 8; i++) {
        qv[i] = qr[d0 + i] * scale;
        acc[i] = 0.0f;
    }
}

/* One batch of attn_keys_grp's loads: for round u < R, the lane's 16-byte
 * words of key j = b + u * NW * KG + lane / G's K and V rows (zero past
 * j1); key jp (the row being written in this launch, -1: none) from k16/v16
 * (shared memory, hd halves) instead of the cache. The lane-group layout of
 * kv head kvh (cache rows kv_dim wide, head rows 16-byte aligned: hd % 8 ==
 * 0). */
template <int G, int NW, int R>
__device__ __forceinline__ void attn_grp_issue(const __half *kc, const __half *vc, int kv_dim, int kvh, int hd, int b,
                                               int j1, int lane, uint4 (&kp)[R], uint4 (&vp)[R], int jp = -1,
                                               const __half *k16 = NULL, const __half *v16 = NULL) {
    constexpr int STRIDE = NW * (32 / G);
    const int64_t off = (int64_t)kvh * hd + 8 * (lane % G);
#pragma unroll
    for (int u = 0; u < R; u++) {
        const int j = b + u * STRIDE + lane / G;
        kp[u] = vp[u] = make_uint4(0u, 0u, 0u, 0u);
        if (j == jp) {
            kp[u] = *(const uint4 *)(k16 + 8 * (lane % G));
            vp[u] = *(const uint4 *)(v16 + 8 * (lane % G));
        } else if (j < j1) {
            kp[u] = *(const uint4 *)(kc + (int64_t)j * kv_dim + off);
            vp[u] = *(const uint4 *)(vc + (int64_t)j * kv_dim + off);
        }
    }
}

/* Keys [j0, j1) of kv head kvh: lane group sg = lane / G of warp `warp`
 * takes keys j0 + warp * KG + sg + n * NW * KG (KG = 32 / G groups per warp),
 * in increasing order, folding them into its (m, l, acc); the loads of R
 * rounds (R keys per group) are issued before any is folded. kp/vp hold
 * the FIRST batch already (attn_grp_issue at b = j0 + warp * KG): the
 * caller issues it early, before it waits for the query, so at short
 * contexts (every key in the first batch) no cache load is left on the
 * path from the query to the output. Later batches take key jp from k16/v16
 * (attn_grp_issue). The loop bound is warp-uniform (the shuffles need every
 * lane), and so is a round's skip when it holds no key at all; a group
 * whose key is past j1 folds nothing. */
template <int G, int NW, int R = 2>
__device__ __forceinline__ void attn_keys_grp(const float qv[8], const __half *kc, const __half *vc, int kv_dim,
                                              int kvh, int hd, int j0, int j1, int warp, int lane, float &m, float &l,
                                              float acc[8], uint4 (&kp)[R], uint4 (&vp)[R], int jp = -1,
                                              const __half *k16 = NULL, const __half *v16 = NULL) {
    constexpr int KG = 32 / G, STRIDE = NW * KG;
    const int sg = lane / G;
    for (int b = j0 + warp * KG; b < j1; b += R * STRIDE) {
        if (b != j0 + warp * KG) attn_grp_issue<G, NW, R>(kc, vc, kv_dim, kvh, hd, b, j1, lane, kp, vp, jp, k16, v16);
#pragma unroll
        for (int u = 0; u < R; u++) {
            if (b + u * STRIDE >= j1) break; /* no group of this warp has a key in round u */
            float kf[8], vf[8];
            attn_h8(kp[u], kf);
            attn_h8(vp[u], vf);
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) s += qv[i] * kf[i];
            s = grp_sum<G>(s);
            if (b + u * STRIDE + sg < j1) attn_fold<8>(s, vf, m, l, acc);
        }
    }
}

/* folds the KG lane groups of the calling warp into one (m, l, acc), held by
 * every group (whole warp calls it) */
template <int G>
__device__ __forceinline__ void attn_grp_merge(float &m, float &l, float acc[8]) {
#pragma unroll
    for (int o = G; o < 32; o <<= 1) {
        const float mo = __shfl_xor_sync(0xffffffffu, m, o), lo = __shfl_xor_sync(0xffffffffu, l, o);
        const float mn = fmaxf(m, mo);
        const float a = mn == -INFINITY ? 0.0f : expf(m - mn), b = mn == -INFINITY ? 0.0f : expf(mo - mn);
        l = l * a + lo * b;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float ao = __shfl_xor_sync(0xffffffffu, acc[i], o);
            acc[i] = acc[i] * a + ao * b;
        }
        m = mn;
    }
}

/* st(d, sum over warps of sm_acc[w][d] * f[w]) for d < hd (threads stride) */
template <int EPL, int NW, class Store>
__device__ __forceinline__ void attn_block_sum(const float (*sm_acc)[EPL * 32], const float f[NW], int hd, Store st) {
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) v += sm_acc[w][d] * f[w];
        st(d, v);
    }
}

/* A split's end: writes its partial (M, L, the weighted accumulators) to
 * pp [hd + 2]; with cnt, counts the split on *cnt and returns true in the
 * block that counted last (every split's partial is then visible to it:
 * it merges, then resets *cnt to 0 for the next launch). */
template <int EPL, int NW>
__device__ __forceinline__ bool attn_split_publish(float *pp, float M, float L, const float f[NW],
                                                   const float (*sm_acc)[EPL * 32], int hd, unsigned *cnt, int S) {
    if (threadIdx.x == 0) {
        pp[0] = M;
        pp[1] = L;
    }
    attn_block_sum<EPL, NW>(sm_acc, f, hd, [pp](int d, float v) { pp[2 + d] = v; });
    if (!cnt) return false;
    __shared__ unsigned sh_last;
    __threadfence(); /* this block's partials before its count */
    __syncthreads();
    if (threadIdx.x == 0) sh_last = atomicAdd(cnt, 1u) == (unsigned)S - 1;
    __syncthreads();
    if (sh_last) __threadfence();
    return sh_last;
}

/* One (head h, query row r, split sp) item of decode attention, computed by
 * the NW warps of the calling block (every thread of the block calls it;
 * it uses __syncthreads). cnt != NULL (S > 1): the last split block of each
 * (row, head) to finish merges the partials itself (counter per (row, head),
 * zero between launches: the merging block resets it), so decode attention
 * is one launch. q and the cache are read with plain loads: callers that
 * wrote them in the same launch (persist.cu) separate the writes by a
 * grid-wide barrier. */
template <int EPL, int NW, int BATCH = AR_BATCH>
__device__ __forceinline__ void attn_dec_item(const float *q, int ld_q, const __half *kc, const __half *vc,
                                              const int32_t *pos, int n_head, int group, int hd, float scale, int S,
                                              float *out, float *part, unsigned *cnt, const float *sinks, int window,
                                              int h, int r, int sp) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int kv_dim = (n_head / group) * hd;
    const int kvh = h / group;
    const int n_keys = pos[r] + 1;
    const int lo = window > 0 && n_keys > window ? n_keys - window : 0; /* first key in the window */
    const int chunk = (n_keys - lo + S - 1) / S;
    const int k0 = lo + sp * chunk, k1 = min(n_keys, k0 + chunk);

    float qv[EPL], acc[EPL];
    attn_q_load<EPL>(q + (int64_t)r * ld_q + (int64_t)h * hd, hd, scale, lane, qv, acc);
    float m = -INFINITY, l = 0.0f;
    attn_keys<EPL, NW, BATCH>(qv, kc, vc, kv_dim, kvh, hd, k0, k1, warp, lane, m, l, acc);

    float M, L, f[NW];
    const float(*sm_acc)[EPL * 32] = attn_warp_merge<EPL, NW>(m, l, acc, M, L, f);
    if (S == 1 && sinks) { /* the sink joins the final softmax (S > 1: in the combine) */
        const float sk = sinks[h], Mp = fmaxf(M, sk), fs = expf(M - Mp);
        L = L * fs + expf(sk - Mp);
#pragma unroll
        for (int w = 0; w < NW; w++) f[w] *= fs;
    }
    if (S == 1) {
        float *o = out + (int64_t)r * n_head * hd + (int64_t)h * hd;
        attn_block_sum<EPL, NW>(sm_acc, f, hd, [o, L](int d, float v) { o[d] = v / L; });
    } else {
        float *pp = part + ((int64_t)(r * n_head + h) * S + sp) * (hd + 2);
        if (attn_split_publish<EPL, NW>(pp, M, L, f, sm_acc, hd, cnt ? &cnt[r * n_head + h] : NULL, S)) {
            attn_combine_one(part, n_head, hd, S, out, h, r, sinks);
            if (threadIdx.x == 0) cnt[r * n_head + h] = 0;
        }
    }
}


#endif
