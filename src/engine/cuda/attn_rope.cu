/* attn_rope.cu — decode attention (one query row) that also does the rope of
 * q and k, the KV-cache store of k and v, and (optionally) the Q8_1
 * quantization of its output for the o mat-vec: rope_kv_store + attention
 * (+ mmv.cu's activation quantization) of b_decode_block in one launch.
 *
 * Grid (n_head, S), AR_WARPS warps per block, S the split of
 * attention.cu's decode path (same formula). Block (h, sp):
 *   0. before its PDL wait: the rope angles of pos (double, ~1 us) and L2
 *      requests for its split's K/V history rows (neither pos nor rows <
 *      pos is written by a kernel of the step), overlapping the previous
 *      kernel's tail (the first version, rope after the wait and key pos
 *      selected inside the key loop, lost 5% on Llama-2-7B; which of the
 *      two changes recovered it was not isolated: docs/PERF.md);
 *   1. loads q[h], k[kvh], v[kvh] (kvh = h / group), a rope pair per
 *      thread, ropes q and k in registers (rope.cuh's rope_cs: the values
 *      of k_rope_kv, both orderings, freq_factors, partial rotation: dims
 *      >= n_rot are not rotated), rounds k and v to fp16 as the cache
 *      stores them and puts the three rows into shared memory.
 *   2. exactly one block per kv head (h % group == 0, sp == 0) writes the
 *      roped k and v rows into the caches at row pos (for later tokens).
 *      No block of this launch reads cache row pos: the key at pos is taken
 *      from shared memory (the fp16-rounded values, so the scores equal the
 *      composition's that reads the row back), rows < pos from the cache.
 *      The write-after-read hazard of one block writing the row while
 *      another reads it therefore cannot occur.
 *   3. the attention body of attn_dec.cuh (same key order per warp, same
 *      warp merge, same split merge by the last block of the head), so the
 *      output equals k_attn's on the composition's q and cache.
 *   4. quant: the block that writes the head's output (the merging one)
 *      also writes it as Q8_1 (blocks of 32: q, d, s; head_dim % 32 == 0,
 *      so groups never straddle heads) into the mat-vec's activation
 *      scratch with common.cuh's cu_q8_group_v on the same floats, i.e. the
 *      integers k_quant_act would produce; the host registers the scratch
 *      in the activation cache (cu_attn_rope), so the o mat-vec skips its
 *      quantization launch.
 * Limits: one row, head_dim % 32 == 0 and <= 128, n_rot even <= head_dim,
 * no sinks or window (Llama/Qwen decode_block); else cu_attn_rope returns -1
 * and the caller composes rope_kv_store + attention. */
#include <math.h>

#include "attn_rope.cuh"

#define AR_WARPS 4

template <int EPL>
__global__ void __launch_bounds__(AR_WARPS * 32)
k_attn_rope(const float *q, const float *k, const float *v, const int32_t *pos, int n_head, int group, int hd,
            float scale, int S, rope_k rp, const float *ff, __half *kc, __half *vc, float *out, float *part,
            unsigned *cnt, int8_t *aq, float *ad, float *as) {
    const int h = blockIdx.x, sp = blockIdx.y, tid = threadIdx.x;
    const int kv_dim = (n_head / group) * hd, kvh = h / group;
    __shared__ float sc[EPL * 16], ss[EPL * 16];

    /* 0. before the PDL wait (nothing here is written by an earlier kernel
     * of the step: pos is uploaded before the graph, cache rows < pos by
     * earlier steps; persist.cu relies on the same): the rope angles
     * (double precision, ~1 us) and the L2 requests for this split's K/V
     * history rows, so both overlap the previous kernel's tail */
    const int p = pos[0], n_keys = p + 1;
    const int half = rp.n_rot / 2;
    for (int i = tid; i < half; i += blockDim.x) rope_cs(rp, p, i, ff, &sc[i], &ss[i]);
    const int chunk = (n_keys + S - 1) / S;
    const int k0 = sp * chunk, k1 = min(n_keys, k0 + chunk), kh = min(k1, p); /* history keys [k0, kh) */
    {
        const int lines = (hd * 2 + 127) / 128; /* 128-byte lines per head row */
        for (int t = tid; t < (kh - k0) * lines * 2; t += blockDim.x) {
            const int j = k0 + t / (lines * 2), li = t % (lines * 2);
            const __half *base = (li & 1) ? vc : kc;
            const char *a = (const char *)(base + (int64_t)j * kv_dim + (int64_t)kvh * hd) + 128 * (li >> 1);
            asm volatile("prefetch.global.L2 [%0];" ::"l"(a));
        }
    }
    cu_pdl_begin();
    /* 1-4: attn_rope.cuh (thread i < half reads sc[i]/ss[i], written above by itself) */
    ar_item<EPL, AR_WARPS>(q, k, v, p, h, sp, n_head, group, hd, scale, S, rp, sc, ss, kc, vc, out, part, cnt, aq,
                           ad, as);
}

/* rope_kv_store(q, k, v) + attention for one row, out [n_head*head_dim];
 * quant: also Q8_1 of out into the activation scratch, registered in the
 * mat-vec cache. Returns 0 when launched, -1 when the shape is not covered
 * (nothing enqueued). */
int cu_attn_rope(cu_ctx *c, const float *q, const float *k, const float *v, const int32_t *pos, int n_head,
                 int n_head_kv, int head_dim, const eng_rope *p, float scale, uint16_t *kc, uint16_t *vc, float *out,
                 int quant) {
    const int hd = head_dim;
    if (n_head <= 0 || n_head_kv <= 0 || n_head % n_head_kv || hd <= 0 || hd % 32 || hd > 32 * 4) return -1;
    if (p->n_rot <= 0 || p->n_rot % 2 || p->n_rot > hd || !c->attn_cnt || c->attn_unfused) return -1;
    const int want = (2 * c->sm_count + n_head - 1) / n_head;
    int S = want < 1 ? 1 : (want > 32 ? 32 : want);
    while (S > 1 && (size_t)n_head * S * (hd + 2) > CU_ATTN_SCRATCH_FLOATS) S--;
    if (S > 1 && n_head > CU_ATTN_MAX_CNT - 2) return -1; /* the last 2 counters: persist.cu's barrier */
    const int K = n_head * hd;
    quant = quant && !c->aq_off && K <= CU_ACT_MAX_K;
    const rope_k rk = cu_rope_params(p);
    c->aq_x = NULL;
    int8_t *aq = quant ? c->act_q : NULL;
    float *ad = quant ? c->act_d : NULL, *as = quant ? c->act_s : NULL;
    const dim3 grid((unsigned)n_head, (unsigned)S);
#define AR(E) cu_launch(c, grid, AR_WARPS * 32, 0, k_attn_rope<E>, q, k, v, pos, n_head, n_head / n_head_kv, hd, scale, S, rk, p->freq_factors, (__half *)kc, (__half *)vc, out, c->attn_part, c->attn_cnt, aq, ad, as)
    switch (hd / 32) {
    case 1: AR(1); break;
    case 2: AR(2); break;
    case 3: AR(3); break;
    default: AR(4); break;
    }
#undef AR
    if (LAUNCH_CHECK(c, "attn_rope")) return 0;
    if (quant) { /* the scratch now holds out as Q8_1 (mmv.cu's cache) */
        c->aq_x = out;
        c->aq_rows = 1;
        c->aq_K = K;
        c->aq_vdt = VDT_Q8_1;
    }
    return 0;
}

/* ---- test hooks (tests/gpu/test_cuda_ops.c) ------------------------------------------------ */
extern "C" int llorch_cuda_attn_rope(void *ctx, const float *q, const float *k, const float *v, const int32_t *pos,
                                     int n_head, int n_head_kv, int head_dim, const eng_rope *p, float scale,
                                     uint16_t *kc, uint16_t *vc, float *out, int quant) {
    return cu_attn_rope((cu_ctx *)ctx, q, k, v, pos, n_head, n_head_kv, head_dim, p, scale, kc, vc, out, quant);
}

/* copies the activation scratch's first row (q [K], d and s [K/32]) to the
 * host after the stream's work; requant: first quantizes x as Q8_1 with the
 * standalone launch (k_quant_act). Returns 1 when, before that, the cache
 * held x as Q8_1 of one row of K, 0 when not, -1 on a device error. */
extern "C" int llorch_cuda_act_q8(void *ctx, const float *x, int K, int requant, int8_t *q, float *d, float *s) {
    cu_ctx *c = (cu_ctx *)ctx;
    const int held = c->aq_x == x && c->aq_rows == 1 && c->aq_K == K && c->aq_vdt == VDT_Q8_1;
    if (requant) {
        c->aq_x = NULL;
        if (cu_act_quant(c, NULL, x, 1, K, VDT_Q8_1) != VDT_Q8_1) return -1;
    }
    if (cudaStreamSynchronize(c->stream) != cudaSuccess || c->err) return -1;
    if (cudaMemcpy(q, c->act_q, (size_t)K, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(d, c->act_d, (size_t)K / 32 * 4, cudaMemcpyDeviceToHost) != cudaSuccess ||
        cudaMemcpy(s, c->act_s, (size_t)K / 32 * 4, cudaMemcpyDeviceToHost) != cudaSuccess)
        return -1;
    return held;
}
