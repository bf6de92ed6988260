/* model — GGUF → hyperparameters + the weight table, per architecture, with
 * every check done before any backend memory is touched; then binding the
 * weights to the backend (in place on the CPU, chunked upload elsewhere).
 *
 * Architectures (general.architecture): llama (incl. Mistral-style), qwen2
 * (Q/K/V biases, usually tied output), phi3 (fused attn_qkv and gate|up in
 * ffn_up; separate q/k/v accepted too, as llama.cpp does). RoPE ordering as
 * llama.cpp's llama_model_rope_type: llama = normal (adjacent pairs), qwen2
 * and phi3 = NeoX (halves). gpt-oss (llama.cpp's openai-moe): Q/K/V/O
 * biases, per-head attention sinks, post_attention_norm, a router
 * (ffn_gate_inp + bias) over expert_count experts of which
 * expert_used_count run per token (3-D ffn_{gate,up,down}_exps + 2-D
 * biases), sliding-window attention on even layers, NeoX RoPE with YaRN.
 * Anything else is refused by name.
 *
 * The file is hostile: every count is range-checked, every tensor's shape and
 * type compared with what the hyperparameters imply, and a wrong one refused
 * with a message naming the tensor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/util.h"
#include "engine/engine_int.h"
#include "engine/quant.h"

/* ---- file type names (llama.cpp's LLAMA_FTYPE_*) ------------------------------ */
static const char *ftype_name(int ft) {
    static const char *names[] = {
        [0] = "F32",      [1] = "F16",       [2] = "Q4_0",     [3] = "Q4_1",    [7] = "Q8_0",
        [8] = "Q5_0",     [9] = "Q5_1",      [10] = "Q2_K",    [11] = "Q3_K_S", [12] = "Q3_K_M",
        [13] = "Q3_K_L",  [14] = "Q4_K_S",   [15] = "Q4_K_M",  [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K",    [19] = "IQ2_XXS",  [20] = "IQ2_XS",  [21] = "Q2_K_S", [22] = "IQ3_XS",
        [23] = "IQ3_XXS", [24] = "IQ1_S",    [25] = "IQ4_NL",  [26] = "IQ3_S", [27] = "IQ3_M",
        [28] = "IQ2_S",   [29] = "IQ2_M",    [30] = "IQ4_XS",  [31] = "IQ1_M", [32] = "BF16",
        [36] = "TQ1_0",   [37] = "TQ2_0",    [38] = "MXFP4",
    };
    ft &= ~1024; /* LLAMA_FTYPE_GUESSED */
    if (ft < 0 || ft >= (int)UTIL_ARRAY_LEN(names)) return NULL;
    return names[ft];
}

/* ---- hyperparameters ------------------------------------------------------------- */
typedef struct {
    eng_model *m;
    char *err;
    size_t errlen;
} pctx;

static int key_u32(pctx *c, const char *suffix, int required, uint32_t def, uint32_t lo, uint32_t hi, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->m->hp.arch_name, suffix);
    uint32_t v = def;
    int rc = gguf_get_u32(c->m->g, key, &v);
    if (rc == -ENOENT) {
        if (required) return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: missing key %s", key);
        v = def;
    } else if (rc) {
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: key %s: not a single unsigned integer", key);
    }
    if (v < lo || v > hi)
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: key %s = %u is out of range [%u, %u]", key, v, lo, hi);
    *out = (int)v;
    return 0;
}

static int key_f32(pctx *c, const char *suffix, int required, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->m->hp.arch_name, suffix);
    float v = def;
    int rc = gguf_get_f32(c->m->g, key, &v);
    if (rc == -ENOENT) {
        if (required) return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: missing key %s", key);
        v = def;
    } else if (rc) {
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: key %s: not a float", key);
    }
    if (!(v == v) || v > 1e30f || v < -1e30f)
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: key %s is not finite", key);
    *out = v;
    return 0;
}

/* gpt-oss: experts and the sliding window (llama.cpp requires all four keys) */
static int read_hparams_moe(pctx *c) {
    eng_hparams *hp = &c->m->hp;
    int rc;
    if ((rc = key_u32(c, "expert_count", 1, 0, 1, ENG_MOE_MAX_EXPERTS, &hp->n_expert)) ||
        (rc = key_u32(c, "expert_used_count", 1, 0, 1, ENG_MOE_MAX_USED, &hp->n_expert_used)) ||
        (rc = key_u32(c, "expert_feed_forward_length", 1, 0, 1, 1u << 20, &hp->n_ff_exp)) ||
        (rc = key_u32(c, "attention.sliding_window", 1, 0, 1, 1u << 24, &hp->n_swa)))
        return rc;
    if (hp->n_expert_used > hp->n_expert)
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: gpt-oss.expert_used_count %d exceeds expert_count %d",
                         hp->n_expert_used, hp->n_expert);
    return 0;
}

static int read_hparams(pctx *c) {
    eng_model *m = c->m;
    eng_hparams *hp = &m->hp;
    gguf_str s;
    if (gguf_get_str(m->g, "general.architecture", &s))
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: missing general.architecture");
    gguf_str_copy(s, hp->arch_name, sizeof hp->arch_name);
    if (gguf_str_eq(s, "llama")) hp->arch = ENG_ARCH_LLAMA;
    else if (gguf_str_eq(s, "qwen2")) hp->arch = ENG_ARCH_QWEN2;
    else if (gguf_str_eq(s, "phi3")) hp->arch = ENG_ARCH_PHI3;
    else if (gguf_str_eq(s, "gpt-oss")) hp->arch = ENG_ARCH_GPT_OSS;
    else {
        char name[64];
        gguf_str_copy(s, name, sizeof name);
        return util_fail(c->err, c->errlen, ENG_E_UNSUPPORTED,
                         "model: architecture '%s' is not supported (supported: llama, qwen2, phi3, gpt-oss)", name);
    }
    int rc;
    if ((rc = key_u32(c, "context_length", 1, 0, 1, 1u << 24, &hp->n_ctx_train)) ||
        (rc = key_u32(c, "embedding_length", 1, 0, 1, 65536, &hp->n_embd)) ||
        (rc = key_u32(c, "block_count", 1, 0, 1, 1024, &hp->n_layer)) ||
        (rc = key_u32(c, "feed_forward_length", 1, 0, 1, 1u << 20, &hp->n_ff)) ||
        (rc = key_u32(c, "attention.head_count", 1, 0, 1, 4096, &hp->n_head)))
        return rc;
    if ((rc = key_u32(c, "attention.head_count_kv", 0, (uint32_t)hp->n_head, 1, 4096, &hp->n_head_kv))) return rc;
    if (hp->n_head % hp->n_head_kv)
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: head_count %d is not a multiple of head_count_kv %d",
                         hp->n_head, hp->n_head_kv);
    int def_hd = hp->n_embd / hp->n_head, hd_v;
    if ((rc = key_u32(c, "attention.key_length", 0, (uint32_t)def_hd, 1, 512, &hp->head_dim))) return rc;
    if ((rc = key_u32(c, "attention.value_length", 0, (uint32_t)hp->head_dim, 1, 512, &hd_v))) return rc;
    if (hd_v != hp->head_dim)
        return util_fail(c->err, c->errlen, ENG_E_UNSUPPORTED, "model: key_length %d != value_length %d",
                         hp->head_dim, hd_v);
    if (hp->head_dim < 2 || (hp->head_dim & 1))
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: head dimension %d must be even", hp->head_dim);
    hp->q_dim = hp->n_head * hp->head_dim;
    hp->kv_dim = hp->n_head_kv * hp->head_dim;
    if ((rc = key_f32(c, "attention.layer_norm_rms_epsilon", 1, 0, &hp->eps))) return rc;
    if (!(hp->eps > 0.0f) || hp->eps > 1.0f)
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: rms epsilon %g out of range", (double)hp->eps);

    eng_rope *r = &hp->rope;
    memset(r, 0, sizeof *r);
    if ((rc = key_u32(c, "rope.dimension_count", 0, (uint32_t)hp->head_dim, 2, (uint32_t)hp->head_dim, &r->n_rot)))
        return rc;
    if (r->n_rot & 1) return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: rope.dimension_count %d is odd", r->n_rot);
    r->neox = hp->arch != ENG_ARCH_LLAMA;
    if ((rc = key_f32(c, "rope.freq_base", 0, 10000.0f, &r->freq_base))) return rc;
    if (!(r->freq_base > 1.0f))
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: rope.freq_base %g out of range", (double)r->freq_base);
    r->freq_scale = 1.0f;
    r->attn_factor = 1.0f;
    r->ext_factor = 0.0f;
    r->beta_fast = 32.0f;
    r->beta_slow = 1.0f;
    r->n_ctx_orig = hp->n_ctx_train;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", hp->arch_name);
    gguf_str st = {0};
    int scaling_yarn = 0;
    if (gguf_get_str(m->g, key, &st) == 0) {
        if (gguf_str_eq(st, "yarn")) scaling_yarn = 1;
        else if (!gguf_str_eq(st, "none") && !gguf_str_eq(st, "linear") && !gguf_str_eq(st, "longrope")) {
            char nm[32];
            return util_fail(c->err, c->errlen, ENG_E_UNSUPPORTED, "model: rope scaling '%s' is not supported",
                             gguf_str_copy(st, nm, sizeof nm));
        }
        if (gguf_str_eq(st, "none")) goto scaling_done;
    }
    {
        float factor = 0.0f;
        if ((rc = key_f32(c, "rope.scaling.factor", 0, 0.0f, &factor))) return rc;
        if (factor < 0.0f) return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: negative rope.scaling.factor");
        if (factor > 0.0f) r->freq_scale = 1.0f / factor;
        if ((rc = key_f32(c, "rope.scaling.attn_factor", 0, 1.0f, &r->attn_factor))) return rc;
        if ((rc = key_u32(c, "rope.scaling.original_context_length", 0, (uint32_t)hp->n_ctx_train, 1, 1u << 24,
                          &r->n_ctx_orig)))
            return rc;
        if (scaling_yarn) r->ext_factor = 1.0f;
    }
scaling_done:;

    uint32_t ft;
    hp->ftype = gguf_get_u32(m->g, "general.file_type", &ft) == 0 ? (int)ft : -1;
    if (hp->arch == ENG_ARCH_GPT_OSS) return read_hparams_moe(c);
    return 0;
}

/* ---- tensors ------------------------------------------------------------------------- */
enum { T_MAT = 0, T_VEC = 1, T_EMB = 2 };

static int add_ref(pctx *c, const gguf_tensor *t, eng_w *w, const float **f) {
    eng_model *m = c->m;
    int cap = 8 + 24 * m->hp.n_layer;
    if (m->n_refs >= cap) return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: too many tensors");
    m->refs[m->n_refs++] = (eng_wref){t, w, f};
    return 0;
}

/* Finds `name`; absent → 0 with *found = 0 (an error when required). Checks
 * dims ne0 x ne1 (ne1 = 1 for vectors) and the type, then records where its
 * backend pointer goes. */
static int want3(pctx *c, const char *name, int kind, int64_t ne0, int64_t ne1, int64_t ne2, int required, eng_w *w,
                 const float **f, int *found);
static int want(pctx *c, const char *name, int kind, int64_t ne0, int64_t ne1, int required, eng_w *w,
                const float **f, int *found) {
    return want3(c, name, kind, ne0, ne1, 1, required, w, f, found);
}

/* the same for a stack of ne2 matrices (MoE experts) */
static int want3(pctx *c, const char *name, int kind, int64_t ne0, int64_t ne1, int64_t ne2, int required, eng_w *w,
                 const float **f, int *found) {
    const gguf_tensor *t = gguf_find_tensor(c->m->g, name);
    if (found) *found = t != NULL;
    if (!t) {
        if (required) return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: missing tensor '%s'", name);
        return 0;
    }
    int64_t ne[4] = {t->ne[0], t->n_dims > 1 ? t->ne[1] : 1, t->n_dims > 2 ? t->ne[2] : 1,
                     t->n_dims > 3 ? t->ne[3] : 1};
    if (ne[0] != ne0 || ne[1] != ne1 || ne[2] != ne2 || ne[3] != 1)
        return util_fail(c->err, c->errlen, ENG_E_INVAL,
                         "model: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", name,
                         (long long)ne[0], (long long)ne[1], (long long)ne[2], (long long)ne[3], (long long)ne0,
                         (long long)ne1, (long long)ne2);
    const qt_info_t *ti = qt_info(t->type);
    if (!ti)
        return util_fail(c->err, c->errlen, ENG_E_UNSUPPORTED, "model: tensor '%s' has unknown type %d", name,
                         t->type);
    if (kind == T_VEC) {
        if (t->type != QT_F32)
            return util_fail(c->err, c->errlen, ENG_E_UNSUPPORTED, "model: tensor '%s' must be F32, is %s", name,
                             ti->name);
    } else {
        if (kind == T_MAT && ti->vec_dot_type < 0)
            return util_fail(c->err, c->errlen, ENG_E_UNSUPPORTED,
                             "model: tensor '%s' has type %s, which has no matrix product", name, ti->name);
        size_t rb = qt_row_bytes(t->type, ne0);
        if (rb == 0)
            return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: tensor '%s': row of %lld is not whole %s blocks",
                             name, (long long)ne0, ti->name);
        if ((uint64_t)rb * (uint64_t)ne1 * (uint64_t)ne2 != t->nbytes)
            return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: tensor '%s': size mismatch", name);
        w->type = t->type;
        w->ne0 = ne0;
        w->ne1 = ne1;
        w->ne2 = ne2;
        w->nb1 = rb;
        w->nb2 = rb * (size_t)ne1;
    }
    return add_ref(c, t, w, f);
}

/* gpt-oss blocks, in llama.cpp's names and shapes (every tensor required) */
static int read_layers_moe(pctx *c) {
    eng_model *m = c->m;
    const eng_hparams *hp = &m->hp;
    const int E = hp->n_embd, Q = hp->q_dim, KV = hp->kv_dim, F = hp->n_ff_exp, X = hp->n_expert;
    int rc;
    for (int l = 0; l < hp->n_layer; l++) {
        eng_layer *L = &m->layers[l];
        char n[96];
#define NM(s) (snprintf(n, sizeof n, "blk.%d." s, l), n)
        if ((rc = want(c, NM("attn_norm.weight"), T_VEC, E, 1, 1, NULL, &L->attn_norm, NULL)) ||
            (rc = want(c, NM("attn_q.weight"), T_MAT, E, Q, 1, &L->wq, NULL, NULL)) ||
            (rc = want(c, NM("attn_k.weight"), T_MAT, E, KV, 1, &L->wk, NULL, NULL)) ||
            (rc = want(c, NM("attn_v.weight"), T_MAT, E, KV, 1, &L->wv, NULL, NULL)) ||
            (rc = want(c, NM("attn_q.bias"), T_VEC, Q, 1, 1, NULL, &L->bq, NULL)) ||
            (rc = want(c, NM("attn_k.bias"), T_VEC, KV, 1, 1, NULL, &L->bk, NULL)) ||
            (rc = want(c, NM("attn_v.bias"), T_VEC, KV, 1, 1, NULL, &L->bv, NULL)) ||
            (rc = want(c, NM("attn_output.weight"), T_MAT, Q, E, 1, &L->wo, NULL, NULL)) ||
            (rc = want(c, NM("attn_output.bias"), T_VEC, E, 1, 1, NULL, &L->bo, NULL)) ||
            (rc = want(c, NM("attn_sinks.weight"), T_VEC, hp->n_head, 1, 1, NULL, &L->sinks, NULL)) ||
            (rc = want(c, NM("post_attention_norm.weight"), T_VEC, E, 1, 1, NULL, &L->ffn_norm, NULL)) ||
            (rc = want(c, NM("ffn_gate_inp.weight"), T_MAT, E, X, 1, &L->w_router, NULL, NULL)) ||
            (rc = want(c, NM("ffn_gate_inp.bias"), T_VEC, X, 1, 1, NULL, &L->b_router, NULL)) ||
            (rc = want3(c, NM("ffn_gate_exps.weight"), T_MAT, E, F, X, 1, &L->w_gate_exps, NULL, NULL)) ||
            (rc = want3(c, NM("ffn_up_exps.weight"), T_MAT, E, F, X, 1, &L->w_up_exps, NULL, NULL)) ||
            (rc = want3(c, NM("ffn_down_exps.weight"), T_MAT, F, E, X, 1, &L->w_down_exps, NULL, NULL)) ||
            (rc = want(c, NM("ffn_gate_exps.bias"), T_VEC, F, X, 1, NULL, &L->b_gate_exps, NULL)) ||
            (rc = want(c, NM("ffn_up_exps.bias"), T_VEC, F, X, 1, NULL, &L->b_up_exps, NULL)) ||
            (rc = want(c, NM("ffn_down_exps.bias"), T_VEC, E, X, 1, NULL, &L->b_down_exps, NULL)))
            return rc;
#undef NM
        /* llama.cpp: swa pattern 2, dense last: layers 0, 2, 4, ... slide */
        L->swa = (l % 2 == 0) ? hp->n_swa : 0;
    }
    return 0;
}

static int read_tensors(pctx *c) {
    eng_model *m = c->m;
    eng_hparams *hp = &m->hp;
    const gguf_tensor *te = gguf_find_tensor(m->g, "token_embd.weight");
    if (!te) return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: missing tensor 'token_embd.weight'");
    if (te->n_dims != 2 || te->ne[1] < 1 || te->ne[1] > (1 << 22))
        return util_fail(c->err, c->errlen, ENG_E_INVAL, "model: tensor 'token_embd.weight' has a bad shape");
    hp->n_vocab = (int)te->ne[1];
    const int E = hp->n_embd, V = hp->n_vocab, F = hp->n_ff, Q = hp->q_dim, KV = hp->kv_dim;
    int rc, found;

    m->refs = calloc((size_t)(8 + 24 * hp->n_layer), sizeof *m->refs);
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->refs || !m->layers) return util_fail(c->err, c->errlen, ENG_E_OOM, "model: out of memory");

    if ((rc = want(c, "token_embd.weight", T_EMB, E, V, 1, &m->tok_embd, NULL, NULL))) return rc;
    if ((rc = want(c, "output_norm.weight", T_VEC, E, 1, 1, NULL, &m->output_norm, NULL))) return rc;
    if ((rc = want(c, "output.weight", T_MAT, E, V, 0, &m->output, NULL, &found))) return rc;
    if (!found) {
        const qt_info_t *ti = qt_info(m->tok_embd.type);
        if (!ti || ti->vec_dot_type < 0)
            return util_fail(c->err, c->errlen, ENG_E_UNSUPPORTED,
                             "model: tied output: token_embd type has no matrix product");
        m->output = m->tok_embd; /* tied: data pointer resolved after binding */
    }
    if (hp->arch == ENG_ARCH_GPT_OSS) return read_layers_moe(c);
    if (gguf_find_tensor(m->g, "blk.0.ffn_gate_inp.weight"))
        return util_fail(c->err, c->errlen, ENG_E_UNSUPPORTED,
                         "model: mixture-of-experts %s models are not supported", hp->arch_name);

    for (int l = 0; l < hp->n_layer; l++) {
        eng_layer *L = &m->layers[l];
        char n[96];
#define NM(s) (snprintf(n, sizeof n, "blk.%d." s, l), n)
        if ((rc = want(c, NM("attn_norm.weight"), T_VEC, E, 1, 1, NULL, &L->attn_norm, NULL))) return rc;
        if ((rc = want(c, NM("attn_qkv.weight"), T_MAT, E, Q + 2 * KV, 0, &L->wqkv, NULL, &found))) return rc;
        if (found) {
            if ((rc = want(c, NM("attn_qkv.bias"), T_VEC, Q + 2 * KV, 1, 0, NULL, &L->bqkv, NULL))) return rc;
        } else {
            if ((rc = want(c, NM("attn_q.weight"), T_MAT, E, Q, 1, &L->wq, NULL, NULL)) ||
                (rc = want(c, NM("attn_k.weight"), T_MAT, E, KV, 1, &L->wk, NULL, NULL)) ||
                (rc = want(c, NM("attn_v.weight"), T_MAT, E, KV, 1, &L->wv, NULL, NULL)) ||
                (rc = want(c, NM("attn_q.bias"), T_VEC, Q, 1, hp->arch == ENG_ARCH_QWEN2, NULL, &L->bq, NULL)) ||
                (rc = want(c, NM("attn_k.bias"), T_VEC, KV, 1, hp->arch == ENG_ARCH_QWEN2, NULL, &L->bk, NULL)) ||
                (rc = want(c, NM("attn_v.bias"), T_VEC, KV, 1, hp->arch == ENG_ARCH_QWEN2, NULL, &L->bv, NULL)))
                return rc;
        }
        if ((rc = want(c, NM("attn_output.weight"), T_MAT, Q, E, 1, &L->wo, NULL, NULL)) ||
            (rc = want(c, NM("ffn_norm.weight"), T_VEC, E, 1, 1, NULL, &L->ffn_norm, NULL)) ||
            (rc = want(c, NM("ffn_down.weight"), T_MAT, F, E, 1, &L->w_down, NULL, NULL)))
            return rc;
        if ((rc = want(c, NM("ffn_gate.weight"), T_MAT, E, F, hp->arch != ENG_ARCH_PHI3, &L->w_gate, NULL, &found)))
            return rc;
        if ((rc = want(c, NM("ffn_up.weight"), T_MAT, E, found ? F : 2 * F, 1, &L->w_up, NULL, NULL))) return rc;
        /* rope frequency factors: llama3 rope_freqs (shared), phi3 long/short */
        const char *rf = gguf_find_tensor(m->g, "rope_freqs.weight") ? "rope_freqs.weight" : NULL;
        if (!rf && hp->arch == ENG_ARCH_PHI3) {
            /* llama.cpp: long factors when the context exceeds the original one */
            rf = m->n_ctx > hp->rope.n_ctx_orig ? "rope_factors_long.weight" : "rope_factors_short.weight";
            if (!gguf_find_tensor(m->g, rf)) rf = NULL;
        }
        if (rf && (rc = want(c, rf, T_VEC, hp->rope.n_rot / 2, 1, 1, NULL, &L->rope_freqs, NULL))) return rc;
#undef NM
    }
    return 0;
}

static void pick_quant_kind(eng_model *m) {
    eng_hparams *hp = &m->hp;
    const char *nm = hp->ftype >= 0 ? ftype_name(hp->ftype) : NULL;
    if (nm) {
        snprintf(hp->quant_kind, sizeof hp->quant_kind, "%s", nm);
        return;
    }
    /* no (known) file type: the type holding the most matrix bytes */
    uint64_t bytes[QT__MAX] = {0};
    for (int i = 0; i < m->n_refs; i++)
        if (m->refs[i].w && m->refs[i].t->type >= 0 && m->refs[i].t->type < QT__MAX)
            bytes[m->refs[i].t->type] += m->refs[i].t->nbytes;
    int best = QT_F32;
    for (int t = 0; t < QT__MAX; t++)
        if (bytes[t] > bytes[best]) best = t;
    const char *tn = gguf_type_name(best);
    snprintf(hp->quant_kind, sizeof hp->quant_kind, "%s", tn ? tn : "F32");
}

int eng_model_parse(eng_model *m, char *err, size_t errlen) {
    pctx c = {m, err, errlen};
    int rc = read_hparams(&c);
    if (rc) return rc;
    if (m->n_ctx <= 0) m->n_ctx = m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    if ((rc = read_tensors(&c))) return rc;
    pick_quant_kind(m);
    /* distinct bytes bound (a tied output is the same tensor twice) */
    m->weight_bytes = 0;
    for (int i = 0; i < m->n_refs; i++) {
        int dup = 0;
        for (int j = 0; j < i && !dup; j++) dup = m->refs[j].t == m->refs[i].t;
        if (!dup) m->weight_bytes += m->refs[i].t->nbytes;
    }
    return 0;
}

/* ---- binding ----------------------------------------------------------------------------- */
static void set_ptr(eng_model *m, const gguf_tensor *t, const void *p) {
    for (int i = 0; i < m->n_refs; i++) {
        if (m->refs[i].t != t) continue;
        if (m->refs[i].w) m->refs[i].w->data = p;
        if (m->refs[i].f) *m->refs[i].f = p;
    }
}

typedef struct {
    const eng_load_opts *o;
    uint64_t total;
    int next; /* next percent mark to report: 0, 25, 50, 75, 100 */
} progress_t;

static void progress(progress_t *p, uint64_t done) {
    while (p->next <= 100 && (p->total == 0 ? 1 : done * 100 >= (uint64_t)p->next * p->total)) {
        if (p->o && p->o->progress) p->o->progress(p->o->progress_user, p->next, done, p->total);
        p->next += 25;
    }
}

int eng_model_bind(eng_model *m, const eng_load_opts *o, char *err, size_t errlen) {
    const eng_backend_ops *ops = m->be.ops;
    if (m->hp.arch == ENG_ARCH_GPT_OSS &&
        (!ops->moe_route || !ops->matmul_id || !ops->swiglu_oai || !ops->moe_sum || !ops->attention_ext))
        return util_fail(err, errlen, ENG_E_UNSUPPORTED,
                         "model: gpt-oss needs mixture-of-experts and attention-sink ops that the %s backend does "
                         "not have (use the CPU backend)",
                         ops->name);
    progress_t pr = {o, m->weight_bytes, 0};
    progress(&pr, 0);
    if (ops->weights_in_place) {
        for (int i = 0; i < m->n_refs; i++) set_ptr(m, m->refs[i].t, m->refs[i].t->data);
        if (m->output.data == NULL) m->output.data = m->tok_embd.data;
        progress(&pr, m->weight_bytes);
        return 0;
    }
    /* one allocation, each tensor at a 256-byte aligned offset */
    uint64_t total = 0;
    for (int i = 0; i < m->n_refs; i++) {
        int dup = 0;
        for (int j = 0; j < i && !dup; j++) dup = m->refs[j].t == m->refs[i].t;
        if (!dup) total += (m->refs[i].t->nbytes + 255) / 256 * 256;
    }
    int rc = ops->alloc(m->be.ctx, (size_t)total, &m->wbuf);
    if (rc) {
        m->wbuf = NULL;
        return util_fail(err, errlen, ENG_E_OOM, "model: cannot allocate %llu bytes of %s memory for the weights",
                         (unsigned long long)total, ops->name);
    }
    size_t chunk = o && o->upload_chunk_bytes ? o->upload_chunk_bytes : (1u << 20);
    uint64_t off = 0, done = 0;
    const long page = 4096;
    for (int i = 0; i < m->n_refs; i++) {
        const gguf_tensor *t = m->refs[i].t;
        int dup = 0;
        for (int j = 0; j < i && !dup; j++) dup = m->refs[j].t == t;
        if (dup) continue;
        char *dst = (char *)m->wbuf + off;
        for (uint64_t b = 0; b < t->nbytes; b += chunk) {
            size_t n = t->nbytes - b < chunk ? (size_t)(t->nbytes - b) : chunk;
            if ((rc = ops->upload(m->be.ctx, dst + b, (const char *)t->data + b, n)))
                return util_fail(err, errlen, ENG_E_BACKEND, "model: upload of '%s' failed (%d)", t->name, rc);
            /* the mapped pages are not needed on the host any more: keep RSS flat */
            uintptr_t s = ((uintptr_t)t->data + b + page - 1) & ~(uintptr_t)(page - 1);
            uintptr_t e = ((uintptr_t)t->data + b + n) & ~(uintptr_t)(page - 1);
            if (e > s) madvise((void *)s, e - s, MADV_DONTNEED);
            done += n;
            progress(&pr, done);
        }
        set_ptr(m, t, dst);
        off += (t->nbytes + 255) / 256 * 256;
    }
    if (m->output.data == NULL) m->output.data = m->tok_embd.data;
    if ((rc = ops->sync(m->be.ctx)))
        return util_fail(err, errlen, ENG_E_BACKEND, "model: device error while uploading weights (%d)", rc);
    progress(&pr, m->weight_bytes);
    return 0;
}
