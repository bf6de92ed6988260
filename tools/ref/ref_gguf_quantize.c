/* ref_gguf_quantize.c — quantize a GGUF file with llama.cpp itself
 * (llama_model_quantize from node-llama-cpp 3.21.1's libllama), to get
 * ground truth for llama.cpp's per-tensor type choices.
 *
 * Build (headers from the llama.cpp source node-llama-cpp bundles):
 *   git clone -q tools/ref/node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llcpp
 *   B=tools/ref/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
 *   gcc -O2 tools/ref/ref_gguf_quantize.c -I/tmp/llcpp/include -I/tmp/llcpp/ggml/include \
 *       $B/libllama.v0.4.0.so $B/libggml.v0.4.0.so $B/libggml-base.so -Wl,-rpath,$PWD/$B -o /tmp/ref_quantize
 * Run: /tmp/ref_quantize IN.gguf OUT.gguf FTYPE_NUMBER (LLAMA_FTYPE_*, e.g. 15 = Q4_K_M) */
#include <stdio.h>
#include <stdlib.h>

#include "llama.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s IN.gguf OUT.gguf FTYPE\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = (enum llama_ftype)atoi(argv[3]);
    p.nthread = 2;
    p.allow_requantize = true;
    uint32_t rc = llama_model_quantize(argv[1], argv[2], &p);
    llama_backend_free();
    if (rc) fprintf(stderr, "llama_model_quantize failed (%u)\n", rc);
    return rc ? 1 : 0;
}
