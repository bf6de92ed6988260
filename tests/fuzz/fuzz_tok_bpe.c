// test-libs: llorch_tok llorch_gguf llorch_core
/* libFuzzer target: byte-level BPE encode/decode on arbitrary bytes, one
 * synthetic vocabulary per pre-tokenizer (gpt-2, llama-bpe, qwen2, gpt-4o):
 * all 256 byte-level tokens, merges that spell common English/CJK pieces
 * (every merge result is a token), and special tokens (control and
 * user-defined). Invariants: fuzz_tok_common.h; here, in addition, valid
 * UTF-8 round-trips for qwen2 and gpt-4o (no clean-up of spaces), because
 * every byte is a token. */
#include <stdint.h>

#include "fuzz_tok_common.h"

static tok_vocab *g_v[4];
static const char *const k_pre[4] = {"gpt-2", "llama-bpe", "qwen2", "gpt-4o"};

/* GPT-2 byte-level code point of byte b, UTF-8 encoded */
static void byte_char(unsigned b, char *out) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    unsigned cp = printable ? b : b <= 0x20 ? 256 + b : b <= 0xA0 ? 256 + 33 + (b - 0x7F) : 256 + 67;
    int k = util_utf8_encode(cp, out);
    out[k] = 0;
}

static tok_vocab *synthetic_bpe(const char *pre) {
    enum { MAXT = 1024 };
    static char pool[MAXT][64];
    static char mpool[MAXT][130];
    const char *t[MAXT], *m[MAXT];
    int32_t ty[MAXT];
    int n = 0, nm = 0;
    for (unsigned b = 0; b < 256; b++) {
        byte_char(b, pool[n]);
        t[n] = pool[n], ty[n] = 1, n++;
    }
    /* words spelled left to right: prefix + next byte-level char is a merge */
    const char *words[] = {" the", "the", " and", "ing", " of", " to", "hello", " world", "   ", "\n\n", "123",
                           " \xe4\xbd\xa0\xe5\xa5\xbd", "'s", " don't", "..."};
    for (size_t wi = 0; wi < sizeof words / sizeof words[0]; wi++) {
        const unsigned char *wd = (const unsigned char *)words[wi];
        char prefix[64] = "";
        for (size_t i = 0; wd[i]; i++) {
            char c[8];
            byte_char(wd[i], c);
            if (i > 0) {
                char merged[64];
                snprintf(merged, sizeof merged, "%s%s", prefix, c);
                int have = 0;
                for (int j = 0; j < n; j++) have |= !strcmp(t[j], merged);
                if (!have) {
                    snprintf(mpool[nm], sizeof mpool[nm], "%s %s", prefix, c);
                    m[nm] = mpool[nm], nm++;
                    snprintf(pool[n], sizeof pool[n], "%s", merged);
                    t[n] = pool[n], ty[n] = 1, n++;
                }
                snprintf(prefix, sizeof prefix, "%s", merged);
            } else {
                snprintf(prefix, sizeof prefix, "%s", c);
            }
        }
    }
    const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>"};
    for (int i = 0; i < 4; i++) t[n] = specials[i], ty[n] = i < 3 ? 3 : 4, n++;
    gguf_writer *w = gguf_writer_new();
    gguf_w_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_w_set_str(w, "tokenizer.ggml.pre", pre);
    gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, (uint64_t)n);
    gguf_w_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_I32, ty, (uint64_t)n);
    gguf_w_set_arr_str(w, "tokenizer.ggml.merges", m, NULL, (uint64_t)nm);
    gguf_w_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n - 4));
    gguf_w_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 2));
    return ft_load_writer(w);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    for (int i = 0; i < 4; i++) g_v[i] = synthetic_bpe(k_pre[i]);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    int k = (data[0] >> 3) & 3;
    int valid = util_utf8_valid((const char *)data + 1, size - 1);
    ft_check(g_v[k], data, size, valid && k >= 2);
    return 0;
}
