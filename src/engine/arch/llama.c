/* llama — the forward pass of the Llama-style family (llama, qwen2, phi3),
 * written once against the backend ops.
 *
 * Per chunk of n <= n_batch tokens at positions n_past..n_past+n-1:
 *   x = token_embd[toks]
 *   per layer:  xb = rmsnorm(x) * attn_norm
 *               q, k, v = xb·Wq, xb·Wk, xb·Wv (+ biases)   or one fused xb·Wqkv (phi3)
 *               rope(q), rope(k); k, v → fp16 cache rows pos
 *               att = softmax(q·K^T / sqrt(head_dim)) V   (causal, GQA)
 *               x += att·Wo
 *               xb = rmsnorm(x) * ffn_norm
 *               x += (silu(xb·Wgate) * (xb·Wup))·Wdown    (phi3: gate|up fused, gate first)
 *   logits = (rmsnorm(x) * output_norm)·Wout for the last row (or every row)
 * When only the last row's logits are wanted, the last layer's residual and
 * feed-forward run on that row alone (as in llama.cpp).
 *
 * Where the backend has the optional fused ops (backend.h), q/k/v (+ biases),
 * rope + K/V store, the two residual matmuls and gate/up + SwiGLU are issued
 * as one op each; each is exactly the composition of the primitives above
 * (the CPU runs it so: bitwise-equal logits), and LLORCH_NO_FUSED=1 forces
 * the primitives (A/B runs; also when dumping tensors). A single-token step
 * (decode) issues all layers as one decode_layers op (= decode_block per
 * layer, the composition of exactly those ops) when the backend has it;
 * CUDA can run it as persistent launches (cuda/persist.cu, opt-in).
 *
 * arch/eval.c runs these layers inside one eval: a single-token step
 * (decode) is bracketed by record_begin/record_end so a backend can capture
 * it once and replay it: token id and position are uploaded to backend
 * buffers before, and every op reads them from there.
 * The record key is the session's own (eng_session.rec_key): a recording
 * holds that session's buffer pointers and must never replay for another.
 *
 * Debug (tests/tools only): LLORCH_DUMP_TENSORS=FILE appends every
 * intermediate activation of each eval to FILE, named and laid out as
 * llama.cpp's eval callback sees them (tools/ref/ref_dump_tensors.c writes
 * llama.cpp's side; tools/ref/cmp_dump.py compares the two op by op;
 * arch/dump.c writes). It syncs after every op; meant for the CPU backend
 * and single evals.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "engine/engine_int.h"

/* LLORCH_NO_FUSED=1: never use the backend's optional fused ops (A/B runs and
 * the fused-vs-primitives tests); read at every eval, so a test can flip it */
static int fused_allowed(void) {
    const char *e = getenv("LLORCH_NO_FUSED");
    return !(e && !strcmp(e, "1"));
}

/* layer l of s's model as decode_block arguments (its weights, s's caches) */
static void block_args(const eng_session *s, int l, float scale, eng_block_w *bw) {
    const eng_hparams *hp = &s->m->hp;
    const eng_layer *L = &s->m->layers[l];
    const size_t KV = (size_t)hp->kv_dim;
    *bw = (eng_block_w){
        .attn_norm = L->attn_norm, .ffn_norm = L->ffn_norm,
        .wq = &L->wq, .wk = &L->wk, .wv = &L->wv,
        .bq = L->bq, .bk = L->bk, .bv = L->bv,
        .wo = &L->wo, .w_gate = &L->w_gate, .w_up = &L->w_up, .w_down = &L->w_down,
        .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim,
        .eps = hp->eps, .scale = scale, .rope = hp->rope,
        .k_cache = s->k_cache + (size_t)l * s->n_ctx * KV, .v_cache = s->v_cache + (size_t)l * s->n_ctx * KV,
    };
    bw->rope.freq_factors = L->rope_freqs;
}

static void issue_layers(eng_session *s, int n, int mode, int fused) {
    const eng_model *m = s->m;
    const eng_hparams *hp = &m->hp;
    const eng_backend_ops *B = m->be.ops;
    void *bc = m->be.ctx;
    const int E = hp->n_embd, Q = hp->q_dim, KV = hp->kv_dim, F = hp->n_ff;
    const float scale = 1.0f / sqrtf((float)hp->head_dim);
    /* optional fused ops (backend.h): each is exactly its primitives' composition */
    const int f_mmn = fused && B->matmul_n, f_mma = fused && B->matmul_add;
    const int f_swi = fused && B->matmul_swiglu, f_rkv = fused && B->rope_kv_store;
    /* one decode row, every other fused op present (the block's composition uses them) */
    const int f_blk = fused && n == 1 && B->decode_block && f_mmn && f_mma && f_swi && f_rkv &&
                      KV == hp->n_head_kv * hp->head_dim && Q == hp->n_head * hp->head_dim;

    /* decode: every layer as one decode_layers op where each layer can be a
     * decode_block (the same composition, backend.h), with the embedding
     * lookup in the same op where the backend has decode_layers_embd */
    int all_blk = f_blk && B->decode_layers;
    for (int l = 0; all_blk && l < hp->n_layer; l++) all_blk = !m->layers[l].wqkv.data && m->layers[l].w_gate.data;
    if (all_blk) {
        eng_block_w bw[hp->n_layer];
        for (int l = 0; l < hp->n_layer; l++) block_args(s, l, scale, &bw[l]);
        const eng_block_tmp bt = {
            .xb = s->xb, .q = s->qkv, .k = s->qkv + Q, .v = s->qkv + Q + KV,
            .att = s->att, .tmp = s->tmp, .gu = s->gu, .hb = s->hb,
        };
        if (B->decode_layers_embd &&
            B->decode_layers_embd(bc, &m->tok_embd, s->toks_dev, bw, hp->n_layer, s->x, s->pos_dev, &bt) == 0)
            return;
        B->get_rows(bc, &m->tok_embd, s->toks_dev, n, s->x);
        B->decode_layers(bc, bw, hp->n_layer, s->x, s->pos_dev, &bt);
        return;
    }
    B->get_rows(bc, &m->tok_embd, s->toks_dev, n, s->x);
    eng_dump(s, "embd", -1, "GET_ROWS", s->x, n, E, E);
    for (int l = 0; l < hp->n_layer; l++) {
        const eng_layer *L = &m->layers[l];
        uint16_t *kc = s->k_cache + (size_t)l * s->n_ctx * KV;
        uint16_t *vc = s->v_cache + (size_t)l * s->n_ctx * KV;

        /* decode: the whole block as one op where the backend has it (the
         * same composition as below, backend.h decode_block) */
        if (f_blk && !L->wqkv.data && L->w_gate.data) {
            eng_block_w bw;
            block_args(s, l, scale, &bw);
            const eng_block_tmp bt = {
                .xb = s->xb, .q = s->qkv, .k = s->qkv + Q, .v = s->qkv + Q + KV,
                .att = s->att, .tmp = s->tmp, .gu = s->gu, .hb = s->hb,
            };
            B->decode_block(bc, &bw, s->x, s->pos_dev, &bt);
            continue;
        }

        /* attention */
        B->rmsnorm(bc, s->x, L->attn_norm, s->xb, n, E, hp->eps);
        eng_dump(s, "attn_norm", l, "MUL", s->xb, n, E, E);
        float *q, *k, *v;
        int ldq, ldkv;
        if (L->wqkv.data) {
            const int W = Q + 2 * KV;
            B->matmul(bc, &L->wqkv, s->xb, s->qkv, n);
            if (L->bqkv) B->add_bias(bc, s->qkv, W, L->bqkv, n, W);
            q = s->qkv;
            k = s->qkv + Q;
            v = s->qkv + Q + KV;
            ldq = ldkv = W;
        } else {
            q = s->qkv;
            k = q + (size_t)n * Q;
            v = k + (size_t)n * KV;
            ldq = Q;
            ldkv = KV;
            if (f_mmn) {
                const eng_w *ws[3] = {&L->wq, &L->wk, &L->wv};
                const float *bs[3] = {L->bq, L->bk, L->bv};
                float *ys[3] = {q, k, v};
                B->matmul_n(bc, 3, ws, bs, s->xb, ys, n);
            } else {
                B->matmul(bc, &L->wq, s->xb, q, n);
                B->matmul(bc, &L->wk, s->xb, k, n);
                B->matmul(bc, &L->wv, s->xb, v, n);
                if (L->bq) B->add_bias(bc, q, Q, L->bq, n, Q);
                if (L->bk) B->add_bias(bc, k, KV, L->bk, n, KV);
                if (L->bv) B->add_bias(bc, v, KV, L->bv, n, KV);
            }
        }
        eng_dump(s, "Qcur", l, "MUL_MAT", q, n, Q, ldq);
        eng_dump(s, "Kcur", l, "MUL_MAT", k, n, KV, ldkv);
        eng_dump(s, "Vcur", l, "MUL_MAT", v, n, KV, ldkv);
        eng_rope rp = hp->rope;
        rp.freq_factors = L->rope_freqs;
        if (f_rkv && KV == hp->n_head_kv * hp->head_dim) {
            B->rope_kv_store(bc, q, ldq, k, v, ldkv, s->pos_dev, n, hp->n_head, hp->n_head_kv, hp->head_dim, &rp, kc,
                             vc);
            eng_dump(s, "Qcur", l, "ROPE", q, n, Q, ldq);
            eng_dump(s, "Kcur", l, "ROPE", k, n, KV, ldkv);
        } else {
            B->rope(bc, q, ldq, s->pos_dev, n, hp->n_head, hp->head_dim, &rp);
            B->rope(bc, k, ldkv, s->pos_dev, n, hp->n_head_kv, hp->head_dim, &rp);
            eng_dump(s, "Qcur", l, "ROPE", q, n, Q, ldq);
            eng_dump(s, "Kcur", l, "ROPE", k, n, KV, ldkv);
            B->kv_store(bc, kc, vc, k, v, ldkv, s->pos_dev, n, KV);
        }
        B->attention(bc, q, ldq, kc, vc, s->pos_dev, n, hp->n_head, hp->n_head_kv, hp->head_dim, scale, s->att);
        eng_dump(s, "kqv_out", l, "RESHAPE", s->att, n, Q, Q);
        const int no = (mode == ENG_LOGITS_LAST && l == hp->n_layer - 1) ? 1 : n;
        float *x = s->x + (size_t)(n - no) * E;
        if (f_mma && no == n) {
            /* x += att·Wo in one op (the attn_out dump is not available) */
            B->matmul_add(bc, &L->wo, s->att, x, s->tmp, n);
        } else {
            B->matmul(bc, &L->wo, s->att, s->tmp, n);
            eng_dump(s, "attn_out", l, "MUL_MAT", s->tmp, n, E, E);
            B->add(bc, x, s->tmp + (size_t)(n - no) * E, (int64_t)no * E);
        }
        /* Only the last row is wanted after the last layer's attention when
         * only the last logits are: as llama.cpp does, the residual and the
         * feed-forward of that layer run on that row alone (its matmuls then
         * take the single-row path, as llama.cpp's do). */
        eng_dump(s, "ffn_inp", l, "ADD", x, no, E, E);

        /* feed-forward */
        B->rmsnorm(bc, x, L->ffn_norm, s->xb, no, E, hp->eps);
        eng_dump(s, "ffn_norm", l, "MUL", s->xb, no, E, E);
        if (L->w_gate.data && f_swi) {
            B->matmul_swiglu(bc, &L->w_gate, &L->w_up, s->xb, s->hb, s->gu, no);
        } else if (L->w_gate.data) {
            float *g = s->gu, *u = s->gu + (size_t)no * F;
            B->matmul(bc, &L->w_gate, s->xb, g, no);
            B->matmul(bc, &L->w_up, s->xb, u, no);
            eng_dump(s, "ffn_gate", l, "MUL_MAT", g, no, F, F);
            eng_dump(s, "ffn_up", l, "MUL_MAT", u, no, F, F);
            B->swiglu(bc, g, u, F, s->hb, no, F);
        } else {
            B->matmul(bc, &L->w_up, s->xb, s->gu, no);
            B->swiglu(bc, s->gu, s->gu + F, 2 * F, s->hb, no, F);
        }
        eng_dump(s, "ffn_swiglu", l, "SWIGLU", s->hb, no, F, F);
        if (f_mma) {
            B->matmul_add(bc, &L->w_down, s->hb, x, s->tmp, no);
        } else {
            B->matmul(bc, &L->w_down, s->hb, s->tmp, no);
            eng_dump(s, "ffn_out", l, "MUL_MAT", s->tmp, no, E, E);
            B->add(bc, x, s->tmp, (int64_t)no * E);
        }
        eng_dump(s, "l_out", l, "ADD", x, no, E, E);
    }
}

/* the dump needs every intermediate: primitives only */
static void layers(eng_session *s, int n, int mode) { issue_layers(s, n, mode, fused_allowed() && !eng_dump_enabled()); }

int eng_llama_forward(eng_session *s, const int32_t *toks, int n, int mode, char *err, size_t errlen) {
    return eng_eval_run(s, toks, n, mode, layers, err, errlen);
}
