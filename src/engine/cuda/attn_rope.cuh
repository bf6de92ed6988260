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
 * load(sq, sk, sv) puts the head's q row and its kv head's k and v rows
 * (hd floats each, not roped) into the shared arrays (every thread calls
 * it; a CTA barrier follows); store(d, o) writes output dim d (thread d).
 * kvh = h / group; the block with h % group == 0 and sp == 0 writes row p.
 * Every thread of the block calls it (__syncthreads inside); NW warps,
 * blockDim.x >= hd. The last split block of h merges (cnt[h], reset to 0
 * BEFORE the merged output is stored: a persistent caller's next layer
 * counts on cnt[h] again once it has seen that output). */
template <int EPL, int NW, class Load, class Store>
__device__ __forceinline__ void ar_item_t(Load load, Store store, int p, int h, int sp, int n_head, int group,
                                          int hd, float scale, int S, const rope_k &rp, const float *sc,
                                          const float *ss, __half *kc, __half *vc, float *part, unsigned *cnt) {
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int kv_dim = (n_head / group) * hd, kvh = h / group;
    const int n_keys = p + 1, half = rp.n_rot / 2;
    const int chunk = (n_keys + S - 1) / S;
    const int k0 = sp * chunk, k1 = min(n_keys, k0 + chunk), kh = min(k1, p); /* history keys [k0, kh) */
    __shared__ float sq[EPL * 32], sk[EPL * 32], sv[EPL * 32];
    constexpr bool GRP = EPL == 1 || EPL == 2 || EPL == 4; /* lane groups (step 3) */
    constexpr int G = GRP ? 4 * EPL : 32, KG = 32 / G, R = 2;

    /* 0. lane groups: the first batch of history K/V rows requested into
     * registers before the wait for q/k/v (the rows < p were written by
     * earlier steps: nothing in this launch writes them), so their L2
     * round trip overlaps the wait instead of following it */
    uint4 kp[R], vp[R];
    if (GRP) attn_grp_issue<G, NW, R>(kc, vc, kv_dim, kvh, hd, k0 + warp * KG, kh, lane, kp, vp);

    /* 1. q, k, v of this head into shared memory; rope; fp16 rounding of k, v */
    load(sq, sk, sv);
    __syncthreads();
    for (int i = tid; i < half; i += blockDim.x) {
        const float c = sc[i], s = ss[i];
        const int a = rp.neox ? i : 2 * i, b = rp.neox ? i + half : 2 * i + 1;
        const float q0 = sq[a], q1 = sq[b], x0 = sk[a], x1 = sk[b];
        sq[a] = q0 * c - q1 * s;
        sq[b] = q0 * s + q1 * c;
        sk[a] = x0 * c - x1 * s;
        sk[b] = x0 * s + x1 * c;
    }
    __syncthreads();
    /* 2. the one writer block of this kv head stores the row */
    const bool writer = h % group == 0 && sp == 0;
    for (int d = tid; d < hd; d += blockDim.x) {
        const __half khv = __float2half_rn(sk[d]), vhv = __float2half_rn(sv[d]);
        sk[d] = __half2float(khv);
        sv[d] = __half2float(vhv);
        if (writer) {
            kc[(int64_t)p * kv_dim + (int64_t)kvh * hd + d] = khv;
            vc[(int64_t)p * kv_dim + (int64_t)kvh * hd + d] = vhv;
        }
    }
    __syncthreads();

    /* 3. the attention over the history keys [k0, kh) from the cache, then
     * key p (the largest, so last in its owner's increasing order) from
     * shared memory by the warp / lane group whose turn it is. head_dim
     * 32/64/128 (hd == 32 * EPL): attn_dec.cuh's lane groups (the same
     * terms as attn_dec_item, summed in another order); 96: attn_dec_item's
     * body (each warp its keys in increasing order) */
    float m = -INFINITY, l = 0.0f, M, L, f[NW];
    const float(*sm_acc)[EPL * 32];
    if constexpr (GRP) {
        float qv[8], acc[8];
        attn_q_load_grp<G>(sq, scale, lane, qv, acc);
        attn_keys_grp<G, NW, R>(qv, kc, vc, kv_dim, kvh, hd, k0, kh, warp, lane, m, l, acc, kp, vp);
        const int slot = (p - k0) % (NW * KG);
        if (k1 == n_keys && p >= k0 && slot / KG == warp) { /* warp-uniform: the group sum needs the warp */
            const int d0 = 8 * (lane % G);
            float s = 0.0f, vv[8];
#pragma unroll
            for (int i = 0; i < 8; i++) {
                s += qv[i] * sk[d0 + i];
                vv[i] = sv[d0 + i];
            }
            s = grp_sum<G>(s);
            if (lane / G == slot % KG) attn_fold<8>(s, vv, m, l, acc);
        }
        attn_grp_merge<G>(m, l, acc);
        sm_acc = attn_warp_merge_t<EPL, NW>(
            m, l,
            [&](float *row) {
                if (lane < G) {
#pragma unroll
                    for (int i = 0; i < 8; i++) row[8 * lane + i] = acc[i];
                }
            },
            M, L, f);
    } else {
        float qv[EPL], acc[EPL];
        attn_q_load<EPL>(sq, hd, scale, lane, qv, acc);
        attn_keys<EPL, NW>(qv, kc, vc, kv_dim, kvh, hd, k0, kh, warp, lane, m, l, acc);
        if (k1 == n_keys && p >= k0 && (p - k0) % NW == warp) {
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
        sm_acc = attn_warp_merge<EPL, NW>(m, l, acc, M, L, f);
    }

    /* 4. merge the warps, then the splits (attn_dec_item's steps); the
     * head's output goes through ar_store (thread d owns dim d) */
    if (S == 1) {
        attn_block_sum<EPL, NW>(sm_acc, f, hd, [&](int d, float o) { store(d, o / L); });
        return;
    }
    float *pp = part + ((int64_t)h * S + sp) * (hd + 2);
    if (!attn_split_publish<EPL, NW>(pp, M, L, f, sm_acc, hd, &cnt[h], S)) return;
    if (tid == 0) {
        cnt[h] = 0;
        __threadfence(); /* the reset before any store of the merged output */
    }
    __syncthreads();
    attn_combine(part, n_head, hd, S, h, 0, NULL, store);
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
        [&](float *sq, float *sk, float *sv) {
            for (int d = threadIdx.x; d < hd; d += blockDim.x) {
                sq[d] = __ldcg(q + (int64_t)h * hd + d);
                sk[d] = __ldcg(k + (int64_t)kvh * hd + d);
                sv[d] = __ldcg(v + (int64_t)kvh * hd + d);
            }
        },
        [&](int d, float o) { ar_store(out, aq, ad, as, h, hd, d, o); }, p, h, sp, n_head, group, hd, scale, S, rp,
        sc, ss, kc, vc, part, cnt);
}

#endif
