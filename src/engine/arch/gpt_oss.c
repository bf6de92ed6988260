/* gpt_oss — the forward pass of gpt-oss (llama.cpp's openai-moe graph),
 * written once against the backend ops (CPU only for now: the engine
 * refuses gpt-oss on a backend without the MoE / sink ops).
 *
 * Per chunk of n <= n_batch tokens at positions n_past..n_past+n-1:
 *   x = token_embd[toks]
 *   per layer l:
 *     xb = rmsnorm(x) * attn_norm
 *     q, k, v = xb·Wq + bq, xb·Wk + bk, xb·Wv + bv
 *     rope(q), rope(k)   (NeoX halves, YaRN); k, v → fp16 cache rows pos
 *     att = softmax over [q·K^T / sqrt(head_dim), sink_h] of V, the sink
 *           column having no value; even layers see only the last n_swa
 *           positions (sliding window), odd layers everything
 *     x += att·Wo + bo
 *     xb = rmsnorm(x) * post_attention_norm
 *     router = xb·Wr + br;  ids = top-k(router);  w = softmax(router[ids])
 *     per selected expert e (slot j):
 *        h_j = swiglu_oai(xb·Wgate_e + bgate_e, xb·Wup_e + bup_e)
 *              (gate clamped above at 7, up to [-7, 7], alpha 1.702)
 *        d_j = h_j·Wdown_e + bdown_e
 *     x += sum_j w_j d_j
 *   logits = (rmsnorm(x) * output_norm)·Wout
 * Unlike arch/llama.c, the last layer runs on every row even when only the
 * last row's logits are wanted, as llama.cpp's gpt-oss graph does here
 * (bit-exactness; see issue_layers).
 *
 * The session's KV cache holds n_ctx rows for every layer, sliding or not
 * (simple; llama.cpp keeps a smaller ring for the sliding layers).
 *
 * MoE scratch (s->moe, eng_moe_scratch_floats) for B = n_batch rows,
 * K = experts used, X = experts, F = expert width, E = n_embd:
 *   router [B][X] | w [B][K] | ids [B][K] int32 | gate, up, act [B][K][F] | down [B][K][E]
 *
 * LLORCH_DUMP_TENSORS=FILE (debug) appends the intermediate activations in
 * llama.cpp's names through arch/dump.c, as arch/llama.c does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/engine_int.h"

/* llama.cpp's LLM_FFN_SWIGLU_OAI_MOE constants */
#define OAI_ALPHA 1.702f
#define OAI_LIMIT 7.0f

size_t eng_moe_scratch_floats(const eng_hparams *hp, int n_batch) {
    if (hp->arch != ENG_ARCH_GPT_OSS) return 0;
    const size_t B = (size_t)n_batch, K = (size_t)hp->n_expert_used;
    return B * ((size_t)hp->n_expert + 2 * K + 3 * K * (size_t)hp->n_ff_exp + K * (size_t)hp->n_embd);
}

/* the mixture-of-experts block on rows xb[0..no) → out[0..no) */
static void issue_moe(eng_session *s, const eng_layer *L, int l, int no, float *out) {
    const eng_model *m = s->m;
    const eng_hparams *hp = &m->hp;
    const eng_backend_ops *B = m->be.ops;
    void *bc = m->be.ctx;
    const int X = hp->n_expert, K = hp->n_expert_used, F = hp->n_ff_exp, E = hp->n_embd;
    const size_t Bn = (size_t)s->n_batch;
    float *router = s->moe, *w = router + Bn * X;
    int32_t *ids = (int32_t *)(w + Bn * K);
    float *gate = (float *)(ids + Bn * K), *up = gate + Bn * K * F, *act = up + Bn * K * F, *down = act + Bn * K * F;

    B->matmul(bc, &L->w_router, s->xb, router, no);
    B->add_bias(bc, router, X, L->b_router, no, X);
    eng_dump(s, "ffn_moe_probs", l, "ADD", router, no, X, X);
    B->moe_route(bc, router, no, X, K, ids, w);
    eng_dump(s, "ffn_moe_weights_softmax", l, "RESHAPE", w, no, K, K);
    B->matmul_id(bc, &L->w_up_exps, s->xb, 1, ids, K, L->b_up_exps, up, no);
    B->matmul_id(bc, &L->w_gate_exps, s->xb, 1, ids, K, L->b_gate_exps, gate, no);
    eng_dump(s, "ffn_moe_up_biased", l, "ADD_ID", up, no * K, F, F);
    eng_dump(s, "ffn_moe_gate_biased", l, "ADD_ID", gate, no * K, F, F);
    B->swiglu_oai(bc, gate, up, act, (int64_t)no * K * F, OAI_ALPHA, OAI_LIMIT);
    eng_dump(s, "ffn_moe_swiglu_oai", l, "SWIGLU_OAI", act, no * K, F, F);
    B->matmul_id(bc, &L->w_down_exps, act, K, ids, K, L->b_down_exps, down, no);
    eng_dump(s, "ffn_moe_down_biased", l, "ADD_ID", down, no * K, E, E);
    B->moe_sum(bc, down, w, no, K, E, out);
    eng_dump(s, "ffn_moe_out", l, "ADD", out, no, E, E);
}

static void issue_layers(eng_session *s, int n) {
    const eng_model *m = s->m;
    const eng_hparams *hp = &m->hp;
    const eng_backend_ops *B = m->be.ops;
    void *bc = m->be.ctx;
    const int E = hp->n_embd, Q = hp->q_dim, KV = hp->kv_dim;
    const float scale = 1.0f / sqrtf((float)hp->head_dim);

    B->get_rows(bc, &m->tok_embd, s->toks_dev, n, s->x);
    eng_dump(s, "embd", -1, "GET_ROWS", s->x, n, E, E);
    for (int l = 0; l < hp->n_layer; l++) {
        const eng_layer *L = &m->layers[l];
        uint16_t *kc = s->k_cache + (size_t)l * s->n_ctx * KV;
        uint16_t *vc = s->v_cache + (size_t)l * s->n_ctx * KV;

        /* attention */
        B->rmsnorm(bc, s->x, L->attn_norm, s->xb, n, E, hp->eps);
        eng_dump(s, "attn_norm", l, "MUL", s->xb, n, E, E);
        float *q = s->qkv, *k = q + (size_t)n * Q, *v = k + (size_t)n * KV;
        B->matmul(bc, &L->wq, s->xb, q, n);
        B->add_bias(bc, q, Q, L->bq, n, Q);
        B->matmul(bc, &L->wk, s->xb, k, n);
        B->add_bias(bc, k, KV, L->bk, n, KV);
        B->matmul(bc, &L->wv, s->xb, v, n);
        B->add_bias(bc, v, KV, L->bv, n, KV);
        eng_dump(s, "Qcur", l, "ADD", q, n, Q, Q);
        eng_dump(s, "Kcur", l, "ADD", k, n, KV, KV);
        eng_dump(s, "Vcur", l, "ADD", v, n, KV, KV);
        B->rope(bc, q, Q, s->pos_dev, n, hp->n_head, hp->head_dim, &hp->rope);
        B->rope(bc, k, KV, s->pos_dev, n, hp->n_head_kv, hp->head_dim, &hp->rope);
        eng_dump(s, "Qcur", l, "ROPE", q, n, Q, Q);
        eng_dump(s, "Kcur", l, "ROPE", k, n, KV, KV);
        B->kv_store(bc, kc, vc, k, v, KV, s->pos_dev, n, KV);
        B->attention_ext(bc, q, Q, kc, vc, s->pos_dev, n, hp->n_head, hp->n_head_kv, hp->head_dim, scale, L->sinks,
                         L->swa, s->att);
        eng_dump(s, "kqv_out", l, "RESHAPE", s->att, n, Q, Q);
        B->matmul(bc, &L->wo, s->att, s->tmp, n);
        B->add_bias(bc, s->tmp, E, L->bo, n, E);
        eng_dump(s, "attn_out", l, "ADD", s->tmp, n, E, E);
        /* Every row runs the whole last layer, though only the last one's
         * logits may be wanted: llama.cpp's gpt-oss graph (this build) does
         * the same, and the F32 router sums one row in another order than
         * several (vec_dot vs tinyBLAS), so the last-row shortcut of
         * arch/llama.c would cost bit-exactness for ~1/n_layer of a prefill. */
        float *x = s->x;
        B->add(bc, x, s->tmp, (int64_t)n * E);
        eng_dump(s, "ffn_inp", l, "ADD", x, n, E, E);

        /* mixture of experts */
        B->rmsnorm(bc, x, L->ffn_norm, s->xb, n, E, hp->eps);
        eng_dump(s, "attn_post_norm", l, "MUL", s->xb, n, E, E);
        issue_moe(s, L, l, n, s->tmp);
        B->add(bc, x, s->tmp, (int64_t)n * E);
        eng_dump(s, "l_out", l, "ADD", x, n, E, E);
    }
}

static void layers(eng_session *s, int n, int mode) {
    (void)mode;
    issue_layers(s, n);
}

/* a decode step is recorded and replayed as for arch/llama.c (CUDA graph:
 * every op reads ids, positions and routing from device memory) */
int eng_gpt_oss_forward(eng_session *s, const int32_t *toks, int n, int mode, char *err, size_t errlen) {
    LLORCH_ASSERT(s->moe && s->m->be.ops->moe_route && s->m->be.ops->matmul_id && s->m->be.ops->swiglu_oai &&
                  s->m->be.ops->moe_sum && s->m->be.ops->attention_ext);
    return eng_eval_run(s, toks, n, mode, layers, err, errlen);
}
