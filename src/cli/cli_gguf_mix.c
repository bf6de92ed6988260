/* cli_gguf_mix — llama.cpp's file types and its per-tensor type choice.
 *
 * Written from a reading of llama.cpp src/llama-quant.cpp (the copy bundled
 * with node-llama-cpp 3.21.1: llama_tensor_get_type_impl, tensor_type_fallback,
 * tensor_allows_quantization, llama_ftype_get_default_type) for dense models:
 * no experts, no imatrix, not Falcon, not a 70B. Only the branches that can
 * fire for the file types in the table below are kept.
 *
 * llama.cpp walks the tensors sorted by layer (weight_name_comparer), so the
 * i-th attn_v / ffn_down it sees is layer i; callers present them by layer. */
#include <string.h>
#include <strings.h>

#include "cli/cli_gguf_int.h"

enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q2_K = 10,
       T_Q3_K = 11, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_IQ4_NL = 20, T_IQ4_XS = 23, T_BF16 = 30,
       T_TQ1_0 = 34, T_TQ2_0 = 35, T_MXFP4 = 39 };

enum { F_ALL_F32 = 0, F_F16 = 1, F_Q4_0 = 2, F_Q4_1 = 3, F_Q8_0 = 7, F_Q5_0 = 8, F_Q5_1 = 9, F_Q2_K = 10,
       F_Q3_K_S = 11, F_Q3_K_M = 12, F_Q3_K_L = 13, F_Q4_K_S = 14, F_Q4_K_M = 15, F_Q5_K_S = 16, F_Q5_K_M = 17,
       F_Q6_K = 18, F_Q2_K_S = 21, F_IQ4_NL = 25, F_IQ4_XS = 30, F_BF16 = 32, F_TQ1_0 = 36, F_TQ2_0 = 37,
       F_MXFP4_MOE = 38 };

static const mix_ftype_t ftypes[] = {
    {"F32", F_ALL_F32, T_F32},     {"F16", F_F16, T_F16},         {"BF16", F_BF16, T_BF16},
    {"Q4_0", F_Q4_0, T_Q4_0},      {"Q4_1", F_Q4_1, T_Q4_1},      {"Q5_0", F_Q5_0, T_Q5_0},
    {"Q5_1", F_Q5_1, T_Q5_1},      {"Q8_0", F_Q8_0, T_Q8_0},      {"Q2_K", F_Q2_K, T_Q2_K},
    {"Q2_K_S", F_Q2_K_S, T_Q2_K},  {"Q3_K_S", F_Q3_K_S, T_Q3_K},  {"Q3_K_M", F_Q3_K_M, T_Q3_K},
    {"Q3_K_L", F_Q3_K_L, T_Q3_K},  {"Q4_K_S", F_Q4_K_S, T_Q4_K},  {"Q4_K_M", F_Q4_K_M, T_Q4_K},
    {"Q5_K_S", F_Q5_K_S, T_Q5_K},  {"Q5_K_M", F_Q5_K_M, T_Q5_K},  {"Q6_K", F_Q6_K, T_Q6_K},
    {"IQ4_NL", F_IQ4_NL, T_IQ4_NL}, {"IQ4_XS", F_IQ4_XS, T_IQ4_XS}, {"TQ1_0", F_TQ1_0, T_TQ1_0},
    {"TQ2_0", F_TQ2_0, T_TQ2_0},   {"MXFP4_MOE", F_MXFP4_MOE, T_MXFP4},
};

const mix_ftype_t *mix_ftype_by_name(const char *name) {
    if (!name) return NULL;
    if (!strcasecmp(name, "MXFP4")) name = "MXFP4_MOE"; /* llama-quantize's alias */
    if (!strcasecmp(name, "Q4_K")) name = "Q4_K_M";     /* likewise */
    if (!strcasecmp(name, "Q5_K")) name = "Q5_K_M";
    if (!strcasecmp(name, "Q3_K")) name = "Q3_K_M";
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (!strcasecmp(ftypes[i].name, name)) return &ftypes[i];
    return NULL;
}

const mix_ftype_t *mix_ftype_by_id(int ftype) {
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (ftypes[i].ftype == ftype) return &ftypes[i];
    return NULL;
}

enum cat { C_TOKEN_EMBD, C_ATTN_Q, C_ATTN_V, C_ATTN_K, C_ATTN_QKV, C_ATTN_KV_B, C_ATTN_OUT, C_FFN_UP, C_FFN_GATE,
           C_FFN_DOWN, C_OUTPUT, C_OTHER };

static enum cat category(const char *n) {
    if (!strcmp(n, "output.weight")) return C_OUTPUT;
    if (!strcmp(n, "token_embd.weight") || !strcmp(n, "per_layer_token_embd.weight")) return C_TOKEN_EMBD;
    if (strstr(n, "attn_qkv.weight")) return C_ATTN_QKV;
    if (strstr(n, "attn_kv_b.weight")) return C_ATTN_KV_B;
    if (strstr(n, "attn_v.weight")) return C_ATTN_V;
    if (strstr(n, "attn_k.weight")) return C_ATTN_K;
    if (strstr(n, "attn_q.weight")) return C_ATTN_Q;
    if (strstr(n, "attn_output.weight")) return C_ATTN_OUT;
    if (strstr(n, "ffn_up")) return C_FFN_UP;
    if (strstr(n, "ffn_gate")) return C_FFN_GATE;
    if (strstr(n, "ffn_down")) return C_FFN_DOWN;
    return C_OTHER;
}

static int is_attn_v(enum cat c) { return c == C_ATTN_V || c == C_ATTN_QKV || c == C_ATTN_KV_B; }

int mix_quantizable(const char *name, int n_dims) {
    size_t n = strlen(name);
    if (n_dims < 2) return 0;
    if (n < 6 || strcmp(name + n - 6, "weight")) return 0;
    if (strstr(name, "_norm.weight") || strstr(name, "ffn_gate_inp.weight")) return 0;
    if (strstr(name, "position_embd") || strstr(name, "token_types")) return 0;
    return 1;
}

void mix_init(mix_state *st, const mix_ftype_t *ft, int n_layer, int n_gqa, const char *const *names, int n) {
    memset(st, 0, sizeof *st);
    st->ft = ft;
    st->n_layer = n_layer;
    st->n_gqa = n_gqa;
    for (int i = 0; i < n; i++) {
        enum cat c = category(names[i]);
        if (is_attn_v(c)) st->n_attn_v++;
        if (c == C_OUTPUT) st->has_output = 1;
    }
}

static int blck(int type) {
    int b = 0;
    return gguf_type_block(type, &b, NULL) == 0 ? b : 1;
}

static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int is_quantized(int type) {
    return type != T_F32 && type != T_F16 && type != T_BF16 && type != 24 && type != 25 && type != 26 &&
           type != 27 && type != 28;
}

/* llama_tensor_get_type_impl, dense-model branches */
static int rules(mix_state *st, int t, const char *name, const int64_t *ne, enum cat c) {
    const int f = st->ft->ftype;
    (void)name;
    if (c == C_OUTPUT || (!st->has_output && c == C_TOKEN_EMBD)) {
        if (f == F_MXFP4_MOE) t = T_Q8_0;
        else if (st->arch_falcon || ne[0] % blck(t) != 0) t = T_Q8_0;
        else if (t != T_Q8_0) t = T_Q6_K;
    } else if (f == F_MXFP4_MOE) {
        t = ne[2] > 1 ? T_MXFP4 : T_Q8_0;
    } else if (c == C_TOKEN_EMBD) {
        if (f == F_TQ1_0 || f == F_TQ2_0) t = T_Q4_K;
    } else if (is_attn_v(c)) {
        if (f == F_Q2_K) t = st->n_gqa >= 4 ? T_Q4_K : T_Q3_K;
        else if (f == F_Q2_K_S && st->n_gqa >= 4) t = T_Q4_K;
        else if (f == F_Q3_K_M) t = st->i_attn_v < 2 ? T_Q5_K : T_Q4_K;
        else if (f == F_Q3_K_L) t = T_Q5_K;
        else if ((f == F_IQ4_NL || f == F_IQ4_XS) && st->n_gqa >= 4) t = T_Q5_K;
        else if ((f == F_Q4_K_M || f == F_Q5_K_M) && more_bits(st->i_attn_v, st->n_attn_v)) t = T_Q6_K;
        else if (f == F_Q4_K_S && st->i_attn_v < 4) t = T_Q5_K;
        st->i_attn_v++;
    } else if (c == C_FFN_DOWN) {
        int i = st->i_ffn_down, n = st->n_layer;
        if (f == F_Q2_K) t = T_Q3_K;
        else if (f == F_Q2_K_S) { if (i < n / 8) t = T_Q4_K; }
        else if (f == F_Q3_K_M) t = i < n / 16 ? T_Q5_K : T_Q4_K;
        else if (f == F_Q3_K_L) t = T_Q5_K;
        else if (f == F_Q4_K_M) { if (more_bits(i, n)) t = T_Q6_K; }
        else if (i < n / 8 && (f == F_IQ4_NL || f == F_IQ4_XS)) t = T_Q5_K;
        else if (f == F_Q5_K_M && more_bits(i, n)) t = T_Q6_K;
        else if (f == F_Q4_K_S && i < n / 8) t = T_Q5_K;
        st->i_ffn_down++;
    } else if (c == C_ATTN_OUT) {
        if (f == F_Q2_K) t = T_Q3_K;
        else if (f == F_Q3_K_M) t = T_Q4_K;
        else if (f == F_Q3_K_L) t = T_Q5_K;
    } else if (c == C_FFN_GATE) {
        st->i_ffn_gate++;
    } else if (c == C_FFN_UP) {
        st->i_ffn_up++;
    }
    return t;
}

/* tensor_type_fallback: ne[0] must be a whole number of blocks */
static int fallback(mix_state *st, int t, int64_t ncols) {
    if (ncols % blck(t) == 0) return t;
    st->n_fallback++;
    int r = t;
    switch (t) {
    case T_IQ4_XS: r = T_IQ4_NL; break;
    case T_Q2_K: case T_Q3_K: case T_TQ1_0: case T_TQ2_0: r = T_Q4_0; break;
    case T_Q4_K: r = T_Q5_0; break;
    case T_Q5_K: r = T_Q5_1; break;
    case T_Q6_K: r = T_Q8_0; break;
    default: break; /* 32-element blocks: nothing smaller; F16 below */
    }
    if (ncols % blck(r) != 0) r = T_F16;
    return r;
}

int mix_tensor_type(mix_state *st, const char *name, int n_dims, const int64_t *ne, int src_type) {
    if (!mix_quantizable(name, n_dims)) return src_type;
    int t = st->ft->base;
    if (!is_quantized(t)) return t;
    if (!st->pure) t = rules(st, t, name, ne, category(name));
    return fallback(st, t, ne[0]);
}
