// test-libs: llorch_quant llorch_core
/* quant: the 8-lane AVX2 scale search of Q2_K/Q4_K/Q5_K/Q6_K must produce the
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
        case 6: x[i] = g * 1e-17f; break; /* tiny and huge, but no inf/NaN inside the search */
        case 7: x[i] = g * 1e8f; break;
        case 10: x[i] = (float)((i * 7) % 5 - 2) * 0.5f; break; /* exact +-ties of the largest magnitude */
        default: x[i] = (i & 1) ? g : -g * 0.01f; break;
        }
    }
}

static void test_simd_equals_scalar(void **st) {
    (void)st;
    static const int types[] = {QT_Q2_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};
    const int64_t n = 8192;
    float *x = malloc(n * 4);
    uint8_t *a = malloc(n), *b = malloc(n);
    uint64_t s = 2024;
    for (int kind = 0; kind <= 10; kind++) {
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
    assert_int_equal(qt__kquant_scalar(QT_Q3_K, x, b, 256), -1);
    free(x);
    free(a);
    free(b);
}

/* The AVX2 activation quantizers must write the scalar ones' bytes. */
static void test_act_simd_equals_scalar(void **st) {
    (void)st;
    static const int types[] = {QT_Q8_0, QT_Q8_1, QT_Q8_K, QT_F16, QT_F32};
    const int64_t n = 4096;
    float *x = malloc(n * 4);
    uint8_t *a = malloc(n * 4), *b = malloc(n * 4);
    uint64_t s = 99;
    for (int kind = 0; kind <= 12; kind++) {
        if (kind <= 9) gen(x, (int)n, kind, &s);
        if (kind == 12) /* whole blocks of tiny values: 1/d and -127/max overflow to inf */
            for (int64_t i = 0; i < n; i++) x[i] = ldexpf(tu_randf(&s), -120 - (int)((i / 256) % 30));
        if (kind == 10) /* exact .5 ties: amax 127 -> d = 1 */
            for (int64_t i = 0; i < n; i++) x[i] = i % 32 == 0 ? 127.0f : (float)((int)(i % 200) - 100) + 0.5f;
        if (kind == 11) { /* non-finite values, subnormals, ties at equal magnitude */
            gen(x, (int)n, 0, &s);
            x[3] = NAN; x[70] = INFINITY; x[300] = -INFINITY; x[600] = 1e-40f; x[601] = -1e-45f;
            x[1024] = -2.0f; x[1030] = 2.0f; x[1040] = -2.0f; /* first of equal |max| wins */
            for (int i = 1100; i < 1180; i++) x[i] = ldexpf(1.0f + (float)i / 4096, -15 - i % 12); /* f16 subnormal range */
        }
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
            const size_t rb = qt_row_bytes(types[k], n);
            memset(a, 0x11, rb);
            memset(b, 0x22, rb);
            qt_quantize_act(types[k], x, a, n);
            qt__act_ref(types[k], x, b, n);
            if (memcmp(a, b, rb)) {
                size_t i = 0;
                while (a[i] == b[i]) i++;
                fail_msg("%s kind %d: byte %zu differs (%02x vs %02x)", qt_info(types[k])->name, kind, i, a[i], b[i]);
            }
        }
    }
    free(x);
    free(a);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simd_equals_scalar),
        cmocka_unit_test(test_act_simd_equals_scalar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
