// test-libs: llorch_quant llorch_core
/* quant: the 8-lane AVX2 scale search of Q2_K/Q4_K/Q5_K must produce the
 * same bytes as the scalar search (which is ggml's algorithm step for step)
 * on every kind of sub-block: random, one-signed, constant (max == min,
 * the early-return lane), single spikes, zeros, tiny and huge magnitudes,
 * and lanes of different kinds side by side in one vector. */
#include <math.h>

#include "testutil.h"

#include "engine/quant.h"
#include "engine/quant_impl.h"

static void gen(float *x, int n, int kind, uint64_t *s) {
    for (int i = 0; i < n; i++) {
        float g = tu_randf(s) + tu_randf(s) + tu_randf(s);
        /* the kind changes every 16 or 32 elements so lanes differ */
        int k = kind == 9 ? (int)((i / 16) % 9) : kind;
        switch (k) {
        case 0: x[i] = g; break;
        case 1: x[i] = fabsf(g) + 0.5f; break;          /* all positive: min clamps to 0 */
        case 2: x[i] = -fabsf(g) - 0.1f; break;         /* all negative */
        case 3: x[i] = (i / 16) % 2 ? 0.75f : -0.3f; break; /* constant (negative: max == min) */
        case 4: x[i] = (i % 32) == 7 ? 3.0f : 0.0f; break; /* one spike */
        case 5: x[i] = 0.0f; break;
        case 6: x[i] = g * 1e-30f; break;
        case 7: x[i] = g * 1e30f; break;
        default: x[i] = (i & 1) ? g : -g * 0.01f; break;
        }
    }
}

static void test_simd_equals_scalar(void **st) {
    (void)st;
    static const int types[] = {QT_Q2_K, QT_Q4_K, QT_Q5_K};
    const int64_t n = 8192;
    float *x = malloc(n * 4);
    uint8_t *a = malloc(n), *b = malloc(n);
    uint64_t s = 2024;
    for (int kind = 0; kind <= 9; kind++) {
        for (int rep = 0; rep < 12; rep++) {
            gen(x, (int)n, kind, &s);
            for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
                const size_t rb = qt_row_bytes(types[k], n);
                assert_int_equal(qt_quantize_row(types[k], x, a, n), 0);
                assert_int_equal(qt__kquant_scalar(types[k], x, b, n), 0);
                if (memcmp(a, b, rb)) fail_msg("%s kind %d rep %d differs", qt_info(types[k])->name, kind, rep);
            }
        }
    }
    assert_int_equal(qt__kquant_scalar(QT_Q6_K, x, b, 256), -1);
    free(x);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_equals_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
