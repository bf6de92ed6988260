/* cli_gguf_make — `llorch gguf make`: synthetic GGUF models at real
 * hyperparameters (SPEC §4) with seeded random weights, a real or synthetic
 * vocabulary, and llama.cpp's per-tensor type mix. Architectures: llama,
 * qwen2 (QKV biases), phi3 (fused qkv and gate+up), gpt-oss (biases, sinks,
 * router and 3-D expert tensors), in llama.cpp's tensor names and shapes.
 *
 * Weights: rows of N(0, 1/sqrt(n_in)) (Irwin-Hall sum of four uniforms from
 * splitmix64: no libm, so the bytes are the same on every machine), norms
 * 1 ± 0.1, biases N(0, 0.02), token_embd/output N(0, 2/sqrt(n_embd)) so
 * logits have std ≈ 2 and next-token distributions are neither flat nor
 * one-hot. Each row draws from its own stream (seed, tensor name, row), so
 * values do not depend on which other tensors exist, their type (a Q8_0 and
 * an F16 file of one seed hold the same underlying weights) or the number of
 * threads filling the rows.
 *
 * Data is produced tensor by tensor through the writer's fill callback:
 * memory is one float row per thread plus the largest tensor. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli_gguf_int.h"
#include "common/util.h"
#include "engine/quant.h"

struct hparams {
    const char *preset, *arch, *name;
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    int64_t n_vocab; /* 0: from the vocabulary source */
    int n_ctx;
    float rope_base, eps;
    int qkv_bias, tied;
    /* mixture of experts (gpt-oss): experts per layer, used per token,
     * expert FFN width, sliding window of the SWA layers, YaRN factor and
     * original context (0: none) */
    int n_expert, n_expert_used, n_ff_exp, swa;
    float yarn_factor;
    int yarn_orig_ctx;
};

/* SPEC §4. The tiny preset: widths multiples of 256 so K-quants apply. */
static const struct hparams presets[] = {
    {"tiny", "llama", "llorch-tiny", 256, 4, 4, 2, 64, 768, 0, 2048, 10000.f, 1e-5f, 0, 0, 0, 0, 0, 0, 0.f, 0},
    {"qwen2.5-0.5b", "qwen2", "Qwen2.5-0.5B-Instruct (synthetic)", 896, 24, 14, 2, 64, 4864, 151936, 32768, 1e6f, 1e-6f,
     1, 0, 0, 0, 0, 0, 0.f, 0},
    {"phi-3-mini", "phi3", "Phi-3-mini-4k-instruct (synthetic)", 3072, 32, 32, 32, 96, 8192, 32064, 4096, 10000.f,
     1e-5f, 0, 0, 0, 0, 0, 0, 0.f, 0},
    {"llama-2-7b", "llama", "Llama-2-7B (synthetic)", 4096, 32, 32, 32, 128, 11008, 32000, 4096, 10000.f, 1e-5f, 0, 0, 0, 0, 0, 0, 0.f, 0},
    {"gpt-oss-20b", "gpt-oss", "gpt-oss-20b (synthetic)", 2880, 24, 64, 8, 64, 2880, 201088, 131072, 150000.f, 1e-5f, 1,
     0, 32, 4, 2880, 128, 32.f, 4096},
};

enum init_kind { INIT_MATRIX, INIT_EMBED, INIT_NORM, INIT_BIAS, INIT_SINK };

struct tdesc {
    char name[64];
    int n_dims, type, src_type;
    int64_t ne[4];
    enum init_kind init;
};

struct make_ctx {
    struct tdesc *t;
    int n_t, cap_t;
    uint64_t seed;
    int n_embd;
    float *row; /* threads x row_cap floats: one scratch row per worker */
    int64_t row_cap;
    int threads;
    const char *err_tensor;
    int err_code, err_type;
};

static int add_t3(struct make_ctx *m, const char *name, enum init_kind init, int n_dims, int64_t ne0, int64_t ne1,
                  int64_t ne2) {
    if (m->n_t == m->cap_t) {
        int cap = m->cap_t ? m->cap_t * 2 : 64;
        struct tdesc *p = realloc(m->t, (size_t)cap * sizeof *p);
        if (!p) return -ENOMEM;
        m->t = p;
        m->cap_t = cap;
    }
    struct tdesc *d = &m->t[m->n_t++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->n_dims = n_dims;
    d->ne[0] = ne0;
    d->ne[1] = n_dims > 1 ? ne1 : 1;
    d->ne[2] = n_dims > 2 ? ne2 : 1;
    d->ne[3] = 1;
    d->init = init;
    d->src_type = 0; /* F32 source for everything */
    return 0;
}

static int add_t(struct make_ctx *m, const char *name, enum init_kind init, int n_dims, int64_t ne0, int64_t ne1) {
    return add_t3(m, name, init, n_dims, ne0, ne1, 1);
}

/* gpt-oss (llama.cpp's openai-moe): attention with biases and per-head
 * sinks, a post-attention norm, a router and n_expert experts per layer */
static int build_layer_moe(struct make_ctx *m, const struct hparams *h, int l) {
    const int64_t E = h->n_embd, Q = (int64_t)h->n_head * h->head_dim, KV = (int64_t)h->n_head_kv * h->head_dim,
                  F = h->n_ff_exp, X = h->n_expert;
    char b[64];
    int rc = 0;
#define T3(suffix, init, nd, a, bb, c) (snprintf(b, sizeof b, "blk.%d." suffix, l), rc = rc ? rc : add_t3(m, b, init, nd, a, bb, c))
    T3("attn_norm.weight", INIT_NORM, 1, E, 1, 1);
    T3("attn_q.weight", INIT_MATRIX, 2, E, Q, 1);
    T3("attn_q.bias", INIT_BIAS, 1, Q, 1, 1);
    T3("attn_k.weight", INIT_MATRIX, 2, E, KV, 1);
    T3("attn_k.bias", INIT_BIAS, 1, KV, 1, 1);
    T3("attn_v.weight", INIT_MATRIX, 2, E, KV, 1);
    T3("attn_v.bias", INIT_BIAS, 1, KV, 1, 1);
    T3("attn_output.weight", INIT_MATRIX, 2, Q, E, 1);
    T3("attn_output.bias", INIT_BIAS, 1, E, 1, 1);
    T3("attn_sinks.weight", INIT_SINK, 1, h->n_head, 1, 1);
    T3("post_attention_norm.weight", INIT_NORM, 1, E, 1, 1);
    T3("ffn_gate_inp.weight", INIT_MATRIX, 2, E, X, 1);
    T3("ffn_gate_inp.bias", INIT_BIAS, 1, X, 1, 1);
    T3("ffn_gate_exps.weight", INIT_MATRIX, 3, E, F, X);
    T3("ffn_gate_exps.bias", INIT_BIAS, 2, F, X, 1);
    T3("ffn_up_exps.weight", INIT_MATRIX, 3, E, F, X);
    T3("ffn_up_exps.bias", INIT_BIAS, 2, F, X, 1);
    T3("ffn_down_exps.weight", INIT_MATRIX, 3, F, E, X);
    T3("ffn_down_exps.bias", INIT_BIAS, 2, E, X, 1);
#undef T3
    return rc;
}

/* the tensor list in llama.cpp's names, layer by layer */
static int build_tensors(struct make_ctx *m, const struct hparams *h) {
    const int64_t E = h->n_embd, Q = (int64_t)h->n_head * h->head_dim, KV = (int64_t)h->n_head_kv * h->head_dim,
                  F = h->n_ff, V = h->n_vocab;
    int phi3 = !strcmp(h->arch, "phi3");
    char b[64];
    int rc = add_t(m, "token_embd.weight", INIT_EMBED, 2, E, V);
    for (int l = 0; l < h->n_layer && !rc; l++) {
        if (h->n_expert) {
            rc = build_layer_moe(m, h, l);
            continue;
        }
#define T(suffix, init, nd, a, bb) (snprintf(b, sizeof b, "blk.%d." suffix, l), rc = rc ? rc : add_t(m, b, init, nd, a, bb))
        T("attn_norm.weight", INIT_NORM, 1, E, 1);
        if (phi3) {
            T("attn_qkv.weight", INIT_MATRIX, 2, E, Q + 2 * KV);
        } else {
            T("attn_q.weight", INIT_MATRIX, 2, E, Q);
            if (h->qkv_bias) T("attn_q.bias", INIT_BIAS, 1, Q, 1);
            T("attn_k.weight", INIT_MATRIX, 2, E, KV);
            if (h->qkv_bias) T("attn_k.bias", INIT_BIAS, 1, KV, 1);
            T("attn_v.weight", INIT_MATRIX, 2, E, KV);
            if (h->qkv_bias) T("attn_v.bias", INIT_BIAS, 1, KV, 1);
        }
        T("attn_output.weight", INIT_MATRIX, 2, Q, E);
        T("ffn_norm.weight", INIT_NORM, 1, E, 1);
        if (phi3) {
            T("ffn_up.weight", INIT_MATRIX, 2, E, 2 * F);
        } else {
            T("ffn_gate.weight", INIT_MATRIX, 2, E, F);
            T("ffn_up.weight", INIT_MATRIX, 2, E, F);
        }
        T("ffn_down.weight", INIT_MATRIX, 2, F, E);
#undef T
    }
    rc = rc ? rc : add_t(m, "output_norm.weight", INIT_NORM, 1, E, 1);
    if (!h->tied && !rc) rc = add_t(m, "output.weight", INIT_EMBED, 2, E, V);
    return rc;
}

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* ~N(0,1): Irwin-Hall of 4 uniforms in [-1,1), variance 4/3 → scaled */
static float gauss(uint64_t *s) {
    float acc = 0;
    for (int i = 0; i < 4; i++) acc += (float)((cg_rng(s) >> 40) * (1.0 / 8388608.0)) - 1.0f;
    return acc * 0.8660254f;
}

/* sqrt is correctly rounded by IEEE 754 (unlike exp/log/cos), so this is
 * the same on every machine */
static float inv_sqrt(int64_t n) { return (float)(1.0 / sqrt((double)n)); }

/* one tensor being filled: rows [r0, r1) of it per worker */
struct fill_job {
    struct make_ctx *m;
    const struct tdesc *d;
    uint8_t *dst;
    size_t rb;
    float scale, mean;
};

/* Row r draws from its own stream (seed, tensor name, row), so the values do
 * not depend on how rows are split over threads. */
static int fill_rows(void *ctx, int tid, int64_t r0, int64_t r1) {
    struct fill_job *j = ctx;
    const int64_t ne0 = j->d->ne[0];
    float *row = j->m->row + (size_t)tid * (size_t)j->m->row_cap;
    const uint64_t base = j->m->seed ^ hash_name(j->d->name);
    for (int64_t r = r0; r < r1; r++) {
        uint64_t s = base ^ ((uint64_t)r * 0xd1b54a32d192ed03ull);
        s = cg_rng(&s);
        for (int64_t i = 0; i < ne0; i++) row[i] = j->mean + j->scale * gauss(&s);
        int rc = qt_quantize_row(j->d->type, row, j->dst + (size_t)r * j->rb, ne0);
        if (rc) return rc;
    }
    return 0;
}

static int fill_tensor(void *user, int64_t ti, void *dst, uint64_t nbytes) {
    struct make_ctx *m = user;
    const struct tdesc *d = &m->t[ti];
    const int64_t ne0 = d->ne[0], rows = d->ne[1] * d->ne[2] * d->ne[3];
    const size_t rb = qt_row_bytes(d->type, ne0);
    if (rb == 0 || rb * (uint64_t)rows != nbytes) return -EINVAL;
    struct fill_job j = {m, d, dst, rb,
                         d->init == INIT_MATRIX ? inv_sqrt(ne0) : d->init == INIT_EMBED ? 2.0f * inv_sqrt(m->n_embd)
                         : d->init == INIT_NORM ? 0.1f : d->init == INIT_SINK ? 1.0f : 0.02f,
                         d->init == INIT_NORM ? 1.0f : 0.0f};
    int rc = cg_parallel_rows(rows, m->threads, fill_rows, &j);
    if (rc) {
        m->err_tensor = d->name;
        m->err_code = rc;
        m->err_type = d->type;
    }
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: llorch gguf make --preset tiny|qwen2.5-0.5b|phi-3-mini|llama-2-7b|gpt-oss-20b [--arch llama|qwen2|phi3|gpt-oss]\n"
            "                        [--type F32|F16|BF16|Q8_0|Q4_0|Q4_1|Q5_0|Q5_1|Q2_K|Q3_K_M|Q4_K_M|Q4_K_S|Q5_K_M|Q6_K|MXFP4|...]\n"
            "                        [--seed N] [--vocab-from FILE.gguf | --vocab-json tokenizer.json [--pre NAME]]\n"
            "                        [--n-vocab N] [--n-ctx N] [--layers N] [--tied | --untied] [--pure] [--threads N]\n"
            "                        [--swa N] (gpt-oss: sliding window of the even layers)\n"
            "                        [--dry-run] -o OUT.gguf\n"
            "  --type takes llama.cpp file types (Q4_K_M = its mix of Q4_K/Q6_K/fall-backs); MXFP4 is\n"
            "  llama.cpp's MXFP4_MOE (dense tensors become Q8_0) unless --pure puts every weight in the type.\n"
            "  --dry-run prints the tensor table (name, type, shape) and writes nothing.\n");
}

int cli_gguf_make(int argc, char **argv) {
    const char *preset = "tiny", *arch = NULL, *type = "F16", *vocab_from = NULL, *vocab_json = NULL, *pre = NULL,
               *out = NULL;
    uint64_t seed = 1;
    int64_t n_vocab_flag = 0;
    int n_ctx = 0, layers = 0, tied = -1, dry = 0, pure = 0, threads = 0, swa = 0;
    static const struct option opts[] = {
        {"preset", required_argument, 0, 'p'}, {"arch", required_argument, 0, 'a'},
        {"type", required_argument, 0, 't'},   {"seed", required_argument, 0, 's'},
        {"vocab-from", required_argument, 0, 'V'}, {"vocab-json", required_argument, 0, 'J'},
        {"pre", required_argument, 0, 'P'},    {"n-ctx", required_argument, 0, 'c'},
        {"n-vocab", required_argument, 0, 'N'}, {"layers", required_argument, 0, 'L'},
        {"tied", no_argument, 0, 'T'},         {"untied", no_argument, 0, 'U'},
        {"dry-run", no_argument, 0, 'D'},      {"output", required_argument, 0, 'o'},
        {"pure", no_argument, 0, 'R'},         {"threads", required_argument, 0, 'j'},
        {"swa", required_argument, 0, 'W'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': preset = optarg; break;
        case 'a': arch = optarg; break;
        case 't': type = optarg; break;
        case 's': seed = strtoull(optarg, &end, 0); if (*end || !*optarg) goto bad; break;
        case 'V': vocab_from = optarg; break;
        case 'J': vocab_json = optarg; break;
        case 'P': pre = optarg; break;
        case 'c': n_ctx = (int)strtol(optarg, &end, 0); if (*end || n_ctx <= 0) goto bad; break;
        case 'N': n_vocab_flag = strtoll(optarg, &end, 0); if (*end || n_vocab_flag < 1 || n_vocab_flag > 10000000) goto bad; break;
        case 'L': layers = (int)strtol(optarg, &end, 0); if (*end || layers <= 0 || layers > 512) goto bad; break;
        case 'T': tied = 1; break;
        case 'U': tied = 0; break;
        case 'D': dry = 1; break;
        case 'R': pure = 1; break;
        case 'j': threads = (int)strtol(optarg, &end, 0); if (*end || threads < 1) goto bad; break;
        case 'W': swa = (int)strtol(optarg, &end, 0); if (*end || swa <= 0) goto bad; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        default: goto bad;
        }
    }
    if (optind != argc || (!out && !dry) || (vocab_from && vocab_json)) goto bad;

    struct hparams h;
    const struct hparams *hp = NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].preset, preset)) hp = &presets[i];
    if (!hp) {
        fprintf(stderr, "llorch gguf make: unknown preset '%s'\n", preset);
        goto bad;
    }
    h = *hp;
    if (arch) {
        if (strcmp(h.preset, "tiny") != 0 && strcmp(arch, h.arch) != 0) {
            fprintf(stderr, "llorch gguf make: preset %s is arch %s; --arch only applies to the tiny preset\n",
                    h.preset, h.arch);
            return 2;
        }
        if (strcmp(arch, "llama") && strcmp(arch, "qwen2") && strcmp(arch, "phi3") && strcmp(arch, "gpt-oss")) {
            fprintf(stderr, "llorch gguf make: unknown arch '%s' (llama, qwen2, phi3, gpt-oss)\n", arch);
            return 2;
        }
        h.arch = arch;
        if (!strcmp(arch, "qwen2")) { /* tiny qwen2: QKV bias, tied embeddings, Qwen's rope/eps */
            h.qkv_bias = 1, h.tied = 1, h.rope_base = 1e6f, h.eps = 1e-6f;
        }
        if (!strcmp(arch, "phi3")) h.n_head_kv = h.n_head; /* Phi-3-mini has no GQA */
        if (!strcmp(arch, "gpt-oss")) { /* 4 experts of width 256, 2 used; SWA 128; YaRN as the real one */
            h.qkv_bias = 1, h.rope_base = 150000.f, h.n_expert = 4, h.n_expert_used = 2, h.n_ff_exp = 256;
            h.swa = 128, h.yarn_factor = 32.f, h.yarn_orig_ctx = 4096;
        }
    }
    if (tied >= 0) h.tied = tied;
    if (n_ctx) h.n_ctx = n_ctx;
    if (layers) h.n_layer = layers;
    if (swa) {
        if (!h.n_expert) {
            fprintf(stderr, "llorch gguf make: --swa applies to gpt-oss only\n");
            return 2;
        }
        h.swa = swa;
    }
    const mix_ftype_t *ft = mix_ftype_by_name(type);
    if (!ft) {
        fprintf(stderr, "llorch gguf make: unknown --type '%s'\n", type);
        return 2;
    }

    char err[512] = "";
    int rc = 0;
    gguf_writer *w = gguf_writer_new();
    struct make_ctx m = {0};
    const char **names = NULL;
    if (!w) {
        fprintf(stderr, "llorch gguf make: out of memory\n");
        return 1;
    }
    /* vocabulary first: it decides n_vocab for the tiny preset */
    int64_t nv = 0, want = n_vocab_flag ? n_vocab_flag : h.n_vocab;
    if (vocab_json) rc = vocab_from_json(w, vocab_json, pre, want, &nv, err, sizeof err);
    else if (vocab_from) rc = vocab_from_gguf(w, vocab_from, &nv, err, sizeof err);
    else rc = vocab_synthetic(w, want ? want : 512, err, sizeof err), nv = want ? want : 512;
    if (rc) goto fail;
    if (vocab_from && want && nv != want) {
        rc = util_fail(err, sizeof err, -EINVAL, "%s has %lld tokens; preset %s needs %lld", vocab_from,
                       (long long)nv, h.preset, (long long)want);
        goto fail;
    }
    h.n_vocab = nv;

    char key[128];
    const char *a = h.arch;
#define KEY(k) (snprintf(key, sizeof key, "%s." k, a), key)
    rc |= gguf_w_set_str(w, "general.architecture", a);
    rc |= gguf_w_set_str(w, "general.name", h.name);
    rc |= gguf_w_set_u32(w, "general.file_type", (uint32_t)ft->ftype);
    rc |= gguf_w_set_u32(w, "general.quantization_version", 2);
    rc |= gguf_w_set_u32(w, KEY("context_length"), (uint32_t)h.n_ctx);
    rc |= gguf_w_set_u32(w, KEY("embedding_length"), (uint32_t)h.n_embd);
    rc |= gguf_w_set_u32(w, KEY("block_count"), (uint32_t)h.n_layer);
    rc |= gguf_w_set_u32(w, KEY("feed_forward_length"), (uint32_t)h.n_ff);
    rc |= gguf_w_set_u32(w, KEY("attention.head_count"), (uint32_t)h.n_head);
    rc |= gguf_w_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)h.n_head_kv);
    rc |= gguf_w_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), h.eps);
    rc |= gguf_w_set_f32(w, KEY("rope.freq_base"), h.rope_base);
    rc |= gguf_w_set_u32(w, KEY("rope.dimension_count"), (uint32_t)h.head_dim);
    if (h.head_dim * h.n_head != h.n_embd) {
        rc |= gguf_w_set_u32(w, KEY("attention.key_length"), (uint32_t)h.head_dim);
        rc |= gguf_w_set_u32(w, KEY("attention.value_length"), (uint32_t)h.head_dim);
    }
    if (!strcmp(a, "llama")) rc |= gguf_w_set_u32(w, KEY("vocab_size"), (uint32_t)h.n_vocab);
    if (h.n_expert) {
        rc |= gguf_w_set_u32(w, KEY("expert_count"), (uint32_t)h.n_expert);
        rc |= gguf_w_set_u32(w, KEY("expert_used_count"), (uint32_t)h.n_expert_used);
        rc |= gguf_w_set_u32(w, KEY("expert_feed_forward_length"), (uint32_t)h.n_ff_exp);
    }
    if (h.swa) rc |= gguf_w_set_u32(w, KEY("attention.sliding_window"), (uint32_t)h.swa);
    if (h.yarn_factor > 0) {
        rc |= gguf_w_set_str(w, KEY("rope.scaling.type"), "yarn");
        rc |= gguf_w_set_f32(w, KEY("rope.scaling.factor"), h.yarn_factor);
        rc |= gguf_w_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)h.yarn_orig_ctx);
    }
#undef KEY
    if (rc) {
        rc = util_fail(err, sizeof err, -ENOMEM, "cannot store metadata");
        goto fail;
    }

    m.seed = seed;
    m.n_embd = h.n_embd;
    if ((rc = build_tensors(&m, &h))) {
        rc = util_fail(err, sizeof err, rc, "out of memory");
        goto fail;
    }
    names = malloc((size_t)m.n_t * sizeof *names);
    if (!names) {
        rc = util_fail(err, sizeof err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < m.n_t; i++) names[i] = m.t[i].name;
    mix_state st;
    mix_init(&st, ft, h.n_layer, h.n_head / h.n_head_kv, names, m.n_t);
    st.pure = pure;
    m.threads = threads ? (threads < CG_MAX_THREADS ? threads : CG_MAX_THREADS) : cg_threads_default();
    for (int i = 0; i < m.n_t; i++) {
        struct tdesc *d = &m.t[i];
        d->type = mix_tensor_type(&st, d->name, d->n_dims, d->ne, d->src_type);
        if (d->ne[0] > m.row_cap) m.row_cap = d->ne[0];
    }
    if (dry) {
        for (int i = 0; i < m.n_t; i++) {
            const struct tdesc *d = &m.t[i];
            printf("%s\t%s\t%lld", d->name, gguf_type_name(d->type), (long long)d->ne[0]);
            for (int k = 1; k < d->n_dims; k++) printf("x%lld", (long long)d->ne[k]);
            printf("\n");
        }
        goto done;
    }
    for (int i = 0; i < m.n_t; i++) {
        const qt_info_t *qi = qt_info(m.t[i].type);
        if (!qi || !qi->can_quantize) {
            rc = util_fail(err, sizeof err, -ENOTSUP,
                           "tensor '%s' needs type %s, which has no quantizer in this build "
                           "(qt_quantize_row returns -ENOTSUP)",
                           m.t[i].name, gguf_type_name(m.t[i].type));
            goto fail;
        }
    }
    m.row = malloc((size_t)m.row_cap * (size_t)m.threads * sizeof *m.row);
    if (!m.row) {
        rc = util_fail(err, sizeof err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < m.n_t; i++) {
        int64_t ti = gguf_w_add_tensor(w, m.t[i].name, m.t[i].type, m.t[i].n_dims, m.t[i].ne, NULL, fill_tensor, &m);
        if (ti < 0) {
            rc = util_fail(err, sizeof err, (int)ti, "tensor '%s': cannot add (%d)", m.t[i].name, (int)ti);
            goto fail;
        }
    }
    rc = gguf_w_write(w, out, err, sizeof err);
    if (rc && m.err_tensor)
        snprintf(err, sizeof err, "tensor '%s': quantizing to %s failed (%d%s)", m.err_tensor,
                 gguf_type_name(m.err_type), m.err_code, m.err_code == -ENOTSUP ? ": no quantizer" : "");
    if (rc) goto fail;
    {
        uint64_t bytes = 0;
        for (int i = 0; i < m.n_t; i++) bytes += gguf_type_nbytes(m.t[i].type, m.t[i].n_dims, m.t[i].ne);
        printf("wrote %s: %s %s, %d tensors, %llu tensor bytes, vocab %lld, seed %llu\n", out, h.arch, ft->name, m.n_t,
               (unsigned long long)bytes, (long long)h.n_vocab, (unsigned long long)seed);
    }
done:
    gguf_writer_free(w);
    free(m.t);
    free(m.row);
    free(names);
    return 0;
fail:
    fprintf(stderr, "llorch gguf make: %s\n", err[0] ? err : "failed");
    gguf_writer_free(w);
    free(m.t);
    free(m.row);
    free(names);
    return 1;
bad:
    usage(stderr);
    return 2;
}
