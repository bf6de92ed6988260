// test-libs: llorch_tok llorch_gguf llorch_core
/* libFuzzer target: tok_load_gguf on arbitrary GGUF images (the vocabulary
 * metadata of a model file is hostile input). A load either fails with a
 * message, or gives a vocab on which every accessor, encode (all flag
 * combinations, a few fixed texts), piece and decode stay in range. Seeds:
 * small vocab-only GGUFs (SPM with byte tokens, BPE per pre-tokenizer, the
 * stories260K tokenizer metadata). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static const char *const k_texts[] = {
    "Hello world! I'm here.", "  <s>x</s> <|im_start|>user\nhi<|im_end|>", "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80",
    "\xff\xc0\x80 abc", "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_ctx *g = NULL;
    char err[256];
    if (gguf_open_mem(data, size, &g, err, sizeof err) != 0) return 0;
    tok_vocab *v = NULL;
    err[0] = 0;
    if (tok_load_gguf(g, &v, err, sizeof err) != 0) {
        if (!err[0] || v) abort(); /* a refusal always says why and returns nothing */
        gguf_close(g);
        return 0;
    }
    gguf_close(g); /* the vocab must not depend on the mapping */
    int32_t n = tok_n_vocab(v);
    if (n <= 0) abort();
    if (tok_bos(v) < -1 || tok_bos(v) >= n || tok_eos(v) < -1 || tok_eos(v) >= n) abort();
    if ((tok_add_bos(v) && tok_bos(v) < 0) || (tok_add_eos(v) && tok_eos(v) < 0)) abort();
    for (int32_t i = 0; i < n && i < 4096; i++) {
        if (!tok_text(v, i)) abort();
        char pc[8];
        if (tok_piece(v, i, 1, pc, sizeof pc) < 0) abort();
    }
    int32_t ids[512];
    for (size_t t = 0; t < sizeof k_texts / sizeof k_texts[0]; t++) {
        for (int f = 0; f < 4; f++) {
            int k = tok_encode(v, k_texts[t], strlen(k_texts[t]), f & 1, f >> 1, ids, 512);
            if (k < 0 || k > 512) abort();
            for (int i = 0; i < k; i++)
                if (ids[i] < 0 || ids[i] >= n) abort();
            char out[2048];
            if (tok_decode(v, ids, k, f >> 1, out, sizeof out) < 0) abort();
        }
    }
    tok_free(v);
    return 0;
}
