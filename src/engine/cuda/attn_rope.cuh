/* attn_rope.cuh — one (head, split) item of the decode attention of ONE
 * query row that also ropes q and k, stores the row at pos into the K/V
 * caches and (optionally) quantizes the head's output as Q8_1. Shared by
 * attn_rope.cu's k_attn_rope (one item per block) and persist.cu's
 * weights-in-shared-memory decode kernel (items looped over by resident
 * blocks); attn_rope.cu's top comment gives the steps and why no block
 * reads the cache row being written. */
#ifndef LLORCH_CUDA_ATTN_ROPE_CUH
#define LLORCH_CUDA_ATTN_ROPE_CUH

#include "attn_dec.cuh"
#include "rope.cuh"

/* the output value v of dim d (thread d) of head h: stored, and quantized by
 * whole warps (d < hd is warp-uniform: hd % 32 == 0) */
__device__ __forceinline__ void ar_store(float *out, int8_t *aq, float *ad, float *as, int h, int hd, int d,
                                         float v) {
    out[(int64_t)h * hd + d] = v;
    if (aq) {
        const int i = h * hd + d;
        cu_q8_group_v(v, threadIdx.x & 31, aq + (i & ~31), ad + i / 32, as + i / 32);
    }
}

/* Item (h, sp) of S splits at position p (keys 0..p). sc/ss: the rope cos/sin
 * of p for pairs 0..n_rot/2-1 (rope.cuh rope_cs), visible to every thread.
 * fetch(da, db, o): the head's q and its kv head's k and v (not roped) at
 * dim da into o[0..2] and, when db >= 0, at dim db into o[3..5]; called by
 * one thread per dim pair (rope pair, or a dim past n_rot alone), which
 * ropes, rounds k and v to fp16 and stores them itself, so one CTA barrier
 * publishes them. store(d, o) writes output dim d (thread d). kvh = h /
 * group; the block with h % group == 0 and sp == 0 writes row p. Every
 * thread of the block calls it (__syncthreads inside); NW warps, blockDim.x
 * >= hd. The last split block of h merges (cnt[h], reset to 0 BEFORE the
 * merged output is stored: a persistent caller's next layer counts on
 * cnt[h] again once it has seen that output). */
/* mark(k): diagnostics (pkw.cu's per-block timing): k = 0 q/k/v staged,
 * 3 the keys folded (lane groups: before their merge), 1 the warps' states
 * ready to merge, 2 the item's end; every thread calls it */
struct ar_nomark {
    __device__ __forceinline__ void operator()(int) const {}
};
template <int EPL, int NW, class Fetch, class Store, class Mark = ar_nomark>
__device__ __forceinline__ void ar_item_t(Fetch fetch, Store store, int p, int h, int sp, int n_head, int group,
                                          int hd, float scale, int S, const rope_k &rp, const float *sc,
                                          const float *ss, __half *kc, __half *vc, float *part, unsigned *cnt,
                                          Mark mark = Mark()) {
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int kv_dim = (n_head / group) * hd, kvh = h / group;
    const int n_keys = p + 1, half = rp.n_rot / 2;
    const int chunk = (n_keys + S - 1) / S;
    const int k0 = sp * chunk, k1 = min(n_keys, k0 + chunk), kh = min(k1, p); /* history keys [k0, kh) */
    __shared__ float sq[EPL * 32], sk[EPL * 32], sv[EPL * 32];
    __shared__ __align__(16) __half sk16[EPL * 32], sv16[EPL * 32]; /* row p as the cache holds it */
    constexpr bool GRP = EPL == 1 || EPL == 2 || EPL == 4; /* lane groups (step 3) */
    constexpr int G = GRP ? 4 * EPL : 32, KG = 32 / G, R = 2;

    /* 0. lane groups: the first batch of history K/V rows requested into
     * registers before the wait for q/k/v (the rows < p were written by
     * earlier steps: nothing in this launch writes them), so their L2
     * round trip overlaps the wait instead of following it */
    uint4 kp[R], vp[R];
    if (GRP) attn_grp_issue<G, NW, R>(kc, vc, kv_dim, kvh, hd, k0 + warp * KG, kh, lane, kp, vp);

    /* 1. q, k, v of this head: thread t < half takes rope pair t (dims a, b),
     * thread half + i dim n_rot + i (not rotated); each ropes q and k,
     * rounds k and v to fp16 (the cache's values: the scores use them as
     * the composition, which reads the row back, does) and stores them; the
     * one writer block of this kv head stores row p into the caches */
    const bool writer = h % group == 0 && sp == 0;
    if (tid < half + hd - rp.n_rot) {
        const bool pair = tid < half;
        const int da = pair ? (rp.neox ? tid : 2 * tid) : rp.n_rot + tid - half;
        const int db = pair ? (rp.neox ? tid + half : 2 * tid + 1) : -1;
        float o[6];
        fetch(da, db, o);
        if (pair) {
            const float c = sc[tid], sn = ss[tid];
            const float q0 = o[0], q1 = o[3], x0 = o[1], x1 = o[4];
            o[0] = q0 * c - q1 * sn;
            o[3] = q0 * sn + q1 * c;
            o[1] = x0 * c - x1 * sn;
            o[4] = x0 * sn + x1 * c;
        }
#pragma unroll
        for (int t = 0; t < 2; t++) {
            const int d = t ? db : da;
            if (d < 0) break;
            const __half khv = __float2half_rn(o[3 * t + 1]), vhv = __float2half_rn(o[3 * t + 2]);
            sq[d] = o[3 * t];
            sk[d] = __half2float(khv);
            sv[d] = __half2float(vhv);
            sk16[d] = khv;
            sv16[d] = vhv;
            if (writer) {
                kc[(int64_t)p * kv_dim + (int64_t)kvh * hd + d] = khv;
                vc[(int64_t)p * kv_dim + (int64_t)kvh * hd + d] = vhv;
            }
        }
    }
    __syncthreads();
    mark(0);

    /* 3. the attention over keys [k0, k1): history rows from the cache, key
     * p (when this split holds it: the largest, so last in its owner's
     * increasing order) from shared memory. head_dim 32/64/128 (hd == 32 *
     * EPL): attn_dec.cuh's lane groups (the same terms as attn_dec_item,
     * summed in another order), key p put into the batch that holds it;
     * 96: attn_dec_item's body (each warp its keys in increasing order),
     * key p folded after them by the warp whose turn it is */
    float m = -INFINITY, l = 0.0f, M, L, f[NW];
    const float(*sm_acc)[EPL * 32];
    const int jp = k1 == n_keys && p >= k0 ? p : -1; /* key p, when this split holds it */
    if constexpr (GRP) {
        float qv[8], acc[8];
        attn_q_load_grp<G>(sq, scale, lane, qv, acc);
        /* the preloaded first batch stops at kh: key p joins it here when it
         * falls in it (a later batch takes it from shared memory itself) */
#pragma unroll
        for (int u = 0; u < R; u++)
            if (k0 + warp * KG + u * NW * KG + lane / G == jp) {
                kp[u] = *(const uint4 *)(sk16 + 8 * (lane % G));
                vp[u] = *(const uint4 *)(sv16 + 8 * (lane % G));
            }
        attn_keys_grp<G, NW, R>(qv, kc, vc, kv_dim, kvh, hd, k0, k1, warp, lane, m, l, acc, kp, vp, jp, sk16, sv16);
        mark(3);
        if (k0 + warp * KG < k1) attn_grp_merge<G>(m, l, acc); /* a warp without keys holds (-inf, 0, 0) */
        mark(1);
        sm_acc = attn_warp_merge_t<EPL, NW>(
            m, l,
            [&](float *row) {
                if (lane < G) {
#pragma unroll
                    for (int i = 0; i < 8; i++) row[8 * lane + i] = acc[i];
                }
            },
            M, L, f, hd);
    } else {
        float qv[EPL], acc[EPL];
        attn_q_load<EPL>(sq, hd, scale, lane, qv, acc);
        attn_keys<EPL, NW>(qv, kc, vc, kv_dim, kvh, hd, k0, kh, warp, lane, m, l, acc);
        if (jp >= 0 && (p - k0) % NW == warp) {
            float s = 0.0f, vv[EPL];
#pragma unroll
            for (int e = 0; e < EPL; e++) {
                const int d = lane + 32 * e;
                if (d < hd) s += qv[e] * sk[d];
            }
            s = warp_sum(s);
#pragma unroll
            for (int e = 0; e < EPL; e++) {
                const int d = lane + 32 * e;
                vv[e] = d < hd ? sv[d] : 0.0f;
            }
            attn_fold<EPL>(s, vv, m, l, acc);
        }
        mark(1);
        sm_acc = attn_warp_merge<EPL, NW>(m, l, acc, M, L, f);
    }

    /* 4. merge the warps, then the splits (attn_dec_item's steps); the
     * head's output goes through ar_store (thread d owns dim d) */
    if (S == 1) {
        attn_block_sum<EPL, NW>(sm_acc, f, hd, [&](int d, float o) { store(d, o / L); });
        mark(2);
        return;
    }
    float *pp = part + ((int64_t)h * S + sp) * (hd + 2);
    if (!attn_split_publish<EPL, NW>(pp, M, L, f, sm_acc, hd, &cnt[h], S)) {
        mark(2);
        return;
    }
    if (tid == 0) {
        cnt[h] = 0;
        __threadfence(); /* the reset before any store of the merged output */
    }
    __syncthreads();
    attn_combine(part, n_head, hd, S, h, 0, NULL, store);
    mark(2);
}

/* the item with q/k/v read from global memory (L2-coherent loads: a
 * persistent caller wrote them in the same launch, before a grid barrier)
 * and the output through ar_store (q [n_head*hd], k/v [n_kv*hd]) */
template <int EPL, int NW>
__device__ __forceinline__ void ar_item(const float *q, const float *k, const float *v, int p, int h, int sp,
                                        int n_head, int group, int hd, float scale, int S, const rope_k &rp,
                                        const float *sc, const float *ss, __half *kc, __half *vc, float *out,
                                        float *part, unsigned *cnt, int8_t *aq, float *ad, float *as) {
    const int kvh = h / group;
    ar_item_t<EPL, NW>(
        [&](int da, int db, float *o) {
            o[0] = __ldcg(q + (int64_t)h * hd + da);
            o[1] = __ldcg(k + (int64_t)kvh * hd + da);
            o[2] = __ldcg(v + (int64_t)kvh * hd + da);
            if (db >= 0) {
                o[3] = __ldcg(q + (int64_t)h * hd + db);
                o[4] = __ldcg(k + (int64_t)kvh * hd + db);
                o[5] = __ldcg(v + (int64_t)kvh * hd + db);
            }
        },
        [&](int d, float o) { ar_store(out, aq, ad, as, h, hd, d, o); }, p, h, sp, n_head, group, hd, scale, S, rp,
        sc, ss, kc, vc, part, cnt);
}

#endif
