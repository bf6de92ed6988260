/* gguf_types — ggml tensor type ids → (name, elements per block, bytes per
 * block). Kept here, not taken from quant.h, so the reader has no dependency
 * on the quantization library. Sizes follow ggml's block structs (ggml-common.h):
 * e.g. Q4_K = 2 fp16 + 12 scale bytes + 128 nibble bytes = 144 B per 256. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include "gguf/gguf.h"

struct type_row {
    const char *name; /* NULL: id not defined (removed from ggml) */
    int blck, bytes;
};

static const struct type_row types[40] = {
    [0] = {"F32", 1, 4},        [1] = {"F16", 1, 2},
    [2] = {"Q4_0", 32, 18},     [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},     [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},     [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},   [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144},  [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},  [15] = {"Q8_K", 256, 292},
    [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},  [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},  [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},        [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},       [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},       [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},
    [34] = {"TQ1_0", 256, 54},  [35] = {"TQ2_0", 256, 66},
    [39] = {"MXFP4", 32, 17},
};

int gguf_type_block(int type, int *blck, int *bytes) {
    if (type < 0 || type >= (int)(sizeof types / sizeof types[0]) || !types[type].name) return -EINVAL;
    if (blck) *blck = types[type].blck;
    if (bytes) *bytes = types[type].bytes;
    return 0;
}

const char *gguf_type_name(int type) {
    if (type < 0 || type >= (int)(sizeof types / sizeof types[0])) return NULL;
    return types[type].name;
}

int gguf_type_parse(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < (int)(sizeof types / sizeof types[0]); i++)
        if (types[i].name && !strcasecmp(types[i].name, name)) return i;
    return -1;
}

uint64_t gguf_type_nbytes(int type, int n_dims, const int64_t *ne) {
    int blck, bytes;
    if (gguf_type_block(type, &blck, &bytes) != 0) return 0;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || ne[0] < 0 || ne[0] % blck) return 0;
    uint64_t total = (uint64_t)(ne[0] / blck) * (uint64_t)bytes;
    for (int d = 1; d < n_dims; d++) {
        if (ne[d] < 0) return 0;
        if (__builtin_mul_overflow(total, (uint64_t)ne[d], &total)) return 0;
    }
    if (total > (uint64_t)INT64_MAX) return 0;
    return total;
}
