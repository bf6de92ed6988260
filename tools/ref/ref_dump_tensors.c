/* ref_dump_tensors.c — dumps every intermediate tensor llama.cpp (node-llama-cpp
 * 3.21.1's prebuilt CPU libraries) computes for one prompt, through the eval
 * callback (llama_context_params.cb_eval), to compare the engine op by op
 * (the engine side: LLORCH_DUMP_TENSORS, src/engine/arch/llama.c).
 * Context set up as tools/ref/ref_greedy.mjs gets it from node-llama-cpp:
 * flash attention "auto" (REF_NO_FA=1: disabled), n_batch = n_ubatch,
 * 1 thread, F16 KV cache.
 *
 * Build (headers from the llama.cpp source node-llama-cpp bundles):
 *   git clone -q tools/ref/node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llcpp
 *   B=tools/ref/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   gcc -O2 tools/ref/ref_dump_tensors.c -I/tmp/llcpp/include -I/tmp/llcpp/ggml/include \
 *       $B/libllama.v0.4.0.so $B/libggml.v0.4.0.so $B/libggml-base.so -Wl,-rpath,$PWD/$B -o /tmp/ref_dump
 * Run: /tmp/ref_dump MODEL.gguf OUT.txt BACKEND_DIR ID... [-- ID...]
 *   (BACKEND_DIR = $B, where the libggml-cpu-*.so variants are; each "--"
 *   starts a further llama_decode of the ids after it, e.g. one greedy step)
 * Output: per tensor a line "T <name> <op> <type> ne0 ne1 ne2 ne3", then one
 * line of its values as float hex (%a), row-major over ne0 fastest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

static FILE *out;

static float get_val(const char *base, enum ggml_type t) {
    if (t == GGML_TYPE_F32) return *(const float *)base;
    if (t == GGML_TYPE_F16) return ggml_fp16_to_fp32(*(const ggml_fp16_t *)base);
    if (t == GGML_TYPE_I32) return (float)*(const int32_t *)base;
    return 0;
}

static bool cb(struct ggml_tensor *t, bool ask, void *ud) {
    (void)ud;
    if (ask) return true;
    if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_F16 && t->type != GGML_TYPE_I32) {
        fprintf(out, "T %s %s %s %lld %lld %lld %lld (not dumped)\n", t->name, ggml_op_desc(t), ggml_type_name(t->type),
                (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
        return true;
    }
    size_t nb = ggml_nbytes(t);
    char *buf = malloc(nb);
    ggml_backend_tensor_get(t, buf, 0, nb);
    fprintf(out, "T %s %s %s %lld %lld %lld %lld\n", t->name, ggml_op_desc(t), ggml_type_name(t->type),
            (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    for (int64_t i3 = 0; i3 < t->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < t->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < t->ne[1]; i1++)
                for (int64_t i0 = 0; i0 < t->ne[0]; i0++) {
                    size_t off = i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3];
                    fprintf(out, "%a ", (double)get_val(buf + off, t->type));
                }
    fputc('\n', out);
    free(buf);
    return true;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL OUT BACKEND_DIR ID... [-- ID...]\n", argv[0]);
        return 2;
    }
    out = fopen(argv[2], "w");
    if (!out) return 1;
    ggml_backend_load_all_from_path(argv[3]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512;
    cp.n_batch = cp.n_ubatch = 512;
    cp.n_threads = cp.n_threads_batch = 1;
    cp.flash_attn_type = getenv("REF_NO_FA") ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.cb_eval = cb;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    int pos = 0;
    for (int a = 4; a < argc;) {
        llama_token ids[256];
        int n = 0;
        while (a < argc && strcmp(argv[a], "--")) ids[n++] = atoi(argv[a++]);
        a++;
        struct llama_batch b = llama_batch_init(n, 0, 1);
        for (int i = 0; i < n; i++) {
            b.token[i] = ids[i];
            b.pos[i] = pos + i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = i == n - 1;
        }
        b.n_tokens = n;
        fprintf(out, "B %d %d\n", pos, n);
        if (llama_decode(ctx, b)) return 1;
        pos += n;
        const float *l = llama_get_logits_ith(ctx, -1);
        fprintf(out, "T logits_out - f32 %d 1 1 1\n", llama_vocab_n_tokens(llama_model_get_vocab(model)));
        for (int i = 0; i < llama_vocab_n_tokens(llama_model_get_vocab(model)); i++) fprintf(out, "%a ", (double)l[i]);
        fputc('\n', out);
        llama_batch_free(b);
    }
    fclose(out);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
