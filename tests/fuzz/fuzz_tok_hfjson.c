// test-libs: llorch_tok llorch_gguf llorch_core
/* libFuzzer target: tok_load_hf_json_mem on arbitrary bytes (a tokenizer.json
 * beside a model is hostile input), through the JSON reader and the hf-json
 * loader. A load either fails with a message and no vocab, or gives a vocab on
 * which every accessor, encode (all flag combinations, a few fixed texts and
 * the tail of the input), piece and decode stay in range. Seeds: small
 * tokenizer.json files of each supported shape (GPT-2 ByteLevel, Qwen2 /
 * Llama-3 / o200k Split + ByteLevel, NFC, TemplateProcessing, array merges). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

static const char *const k_texts[] = {
    "Hello world! I'm here.", "<|end|>x<tool> ab  ab\n\n", "caf\x65\xcc\x81 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80",
    "\xff\xc0\x80 abc", "",
};

static void check_text(tok_vocab *v, const char *t, size_t len) {
    int32_t n_vocab = tok_n_vocab(v);
    int32_t ids[512];
    for (int f = 0; f < 4; f++) {
        int k = tok_encode(v, t, len, f & 1, f >> 1, ids, 512);
        if (k < 0) abort(); /* any bytes tokenize */
        if (k > 512) k = 512;
        for (int i = 0; i < k; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        char out[4096];
        if (tok_decode(v, ids, k, f >> 1, out, sizeof out) < 0) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    err[0] = 0;
    tok_vocab *v = NULL;
    /* bit 0 of the last byte: pad the vocabulary a little (the engine's n_pad) */
    struct tok_hf_opts o = {size && (data[size - 1] & 1) ? 300 : 0, NULL};
    if (tok_load_hf_json_mem((const char *)data, size, &o, &v, err, sizeof err) != 0) {
        if (!err[0] || v) abort(); /* a refusal always says why and returns nothing */
        return 0;
    }
    int32_t n = tok_n_vocab(v);
    if (n <= 0 || n < o.n_pad) abort();
    if (strcmp(tok_kind_name(v), "hf-json") != 0) abort();
    if (tok_bos(v) < -1 || tok_bos(v) >= n || tok_eos(v) < -1 || tok_eos(v) >= n) abort();
    if ((tok_add_bos(v) && tok_bos(v) < 0) || (tok_add_eos(v) && tok_eos(v) < 0)) abort();
    for (int32_t i = 0; i < n && i < 4096; i++) {
        if (!tok_text(v, i)) abort();
        char pc[8];
        if (tok_piece(v, i, 1, pc, sizeof pc) < 0) abort();
    }
    for (size_t t = 0; t < sizeof k_texts / sizeof k_texts[0]; t++) check_text(v, k_texts[t], strlen(k_texts[t]));
    check_text(v, (const char *)data + size - (size < 64 ? size : 64), size < 64 ? size : 64);
    tok_free(v);
    return 0;
}
