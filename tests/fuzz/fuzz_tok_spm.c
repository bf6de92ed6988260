// test-libs: llorch_tok llorch_gguf llorch_core
/* libFuzzer target: SPM encode/decode on arbitrary bytes with the real
 * stories260K (512) and Llama-2 (32000) vocabularies (LLORCH_MODELS_DIR or
 * ../shared/models seen from the repo root or the build dir); a small
 * synthetic SPM vocabulary with all 256 byte tokens stands in when the model
 * files are not found. Invariants: fuzz_tok_common.h; here, in addition,
 * valid UTF-8 always round-trips (space prefix added, then removed; unknown
 * characters fall back to byte tokens). Invalid UTF-8 need not: as in
 * llama.cpp, a stray lead byte swallows the following bytes into one symbol,
 * which may include an escaped space (U+2581) that then decodes as itself.
 * Text that itself contains U+2581 decodes it as a space (same in llama.cpp). */
#include <stdint.h>

#include "fuzz_tok_common.h"

static tok_vocab *g_v[2];

static tok_vocab *synthetic_spm(void) {
    static const char *const words[] = {"\xe2\x96\x81", "\xe2\x96\x81t", "he", "\xe2\x96\x81the", "in", "ing",
                                        "\xe4\xbd\xa0"};
    return ft_synthetic_spm(words, sizeof words / sizeof words[0]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_v[0] = ft_load_model("stories260K.gguf");
    g_v[1] = ft_load_model("llama-2-tiny-random.gguf");
    if (!g_v[0]) {
        fprintf(stderr, "fuzz_tok_spm: stories260K.gguf not found; using a synthetic SPM vocabulary\n");
        g_v[0] = synthetic_spm();
    }
    if (!g_v[1]) g_v[1] = g_v[0];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 4096) return 0;
    tok_vocab *v = g_v[(data[0] >> 3) & 1];
    const char *text = (const char *)data + 1;
    int plain = util_utf8_valid(text, size - 1) && !memmem(text, size - 1, "\xe2\x96\x81", 3);
    ft_check(v, data, size, plain);
    return 0;
}
