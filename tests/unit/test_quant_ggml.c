// test-libs: llorch_quant llorch_core -ldl
/* quant vs llama.cpp's own ggml: byte-exact quantizers and bit-exact
 * dequantizers, checked against libggml-base.so from the node-llama-cpp npm
 * package (the project's llama.cpp reference, see shared/models/README.md).
 * Looked up under $LLORCH_GGML_LIB, else
 * $LLORCH_SRC_DIR/tools/ref/node_modules/@node-llama-cpp/linux-x64/bins/
 * linux-x64/libggml-base.so; when neither exists the test reports SKIPPED
 * (exit 77), never passed. Install with:
 *   npm i -E --prefix tools/ref node-llama-cpp@3.21.1 */
#include <dlfcn.h>
#include <math.h>

#include "testutil.h"

#include "engine/quant.h"

static void *g_lib;

typedef void (*ggml_q_fn)(const float *x, void *y, int64_t k);
typedef void (*ggml_dq_fn)(const void *x, float *y, int64_t k);

static void *sym(const char *name) {
    void *p = dlsym(g_lib, name);
    if (!p) fail_msg("missing symbol %s", name);
    return p;
}

static void fill(float *x, int64_t n, uint64_t seed, float scale) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        float v = (tu_randf(&s) + tu_randf(&s) + tu_randf(&s)) * 0.6f;
        uint64_t r = tu_rng(&s);
        if ((r & 127) == 0) v *= 8.0f;      /* outliers */
        if ((r & 0x3f00) == 0x100) v = 0.0f; /* exact zeros */
        x[i] = v * scale;
    }
}

static const struct { int type; const char *q, *dq; } g_fmts[] = {
    {QT_Q4_0, "quantize_row_q4_0_ref", "dequantize_row_q4_0"},
    {QT_Q4_1, "quantize_row_q4_1_ref", "dequantize_row_q4_1"},
    {QT_Q5_0, "quantize_row_q5_0_ref", "dequantize_row_q5_0"},
    {QT_Q5_1, "quantize_row_q5_1_ref", "dequantize_row_q5_1"},
    {QT_Q8_0, "quantize_row_q8_0_ref", "dequantize_row_q8_0"},
    {QT_Q2_K, "quantize_row_q2_K_ref", "dequantize_row_q2_K"},
    {QT_Q3_K, "quantize_row_q3_K_ref", "dequantize_row_q3_K"},
    {QT_Q4_K, "quantize_row_q4_K_ref", "dequantize_row_q4_K"},
    {QT_Q5_K, "quantize_row_q5_K_ref", "dequantize_row_q5_K"},
    {QT_Q6_K, "quantize_row_q6_K_ref", "dequantize_row_q6_K"},
    {QT_MXFP4, "quantize_row_mxfp4_ref", "dequantize_row_mxfp4"},
};

/* Weight quantizers: identical bytes for several value scales and rows. */
static void test_quantize_bytes(void **st) {
    (void)st;
    const int64_t n = 2048;
    float *x = malloc(n * 4);
    uint8_t *a = malloc(n * 4), *b = malloc(n * 4);
    static const float scales[] = {1.0f, 0.02f, 3e-4f, 40.0f};
    for (size_t k = 0; k < sizeof g_fmts / sizeof g_fmts[0]; k++) {
        ggml_q_fn q = (ggml_q_fn)sym(g_fmts[k].q);
        const size_t rb = qt_row_bytes(g_fmts[k].type, n);
        for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
            fill(x, n, 100 * k + s, scales[s]);
            if (s == 3) memset(x + 256, 0, 256 * 4); /* a whole zero super-block */
            q(x, a, n);
            assert_int_equal(qt_quantize_row(g_fmts[k].type, x, b, n), 0);
            if (memcmp(a, b, rb)) {
                size_t i = 0;
                while (a[i] == b[i]) i++;
                fail_msg("%s scale %g: first differing byte %zu of %zu (ggml %02x, ours %02x)",
                         qt_info(g_fmts[k].type)->name, scales[s], i, rb, a[i], b[i]);
            }
        }
    }
    free(x);
    free(a);
    free(b);
}

/* Activation quantizers (Q8_1, Q8_K): identical bytes. */
static void test_act_bytes(void **st) {
    (void)st;
    const int64_t n = 1024;
    float x[1024];
    uint8_t a[2048], b[2048];
    fill(x, n, 9, 0.7f);
    ((ggml_q_fn)sym("quantize_row_q8_1_ref"))(x, a, n);
    qt_quantize_act(QT_Q8_1, x, b, n);
    assert_memory_equal(a, b, qt_row_bytes(QT_Q8_1, n));
    ((ggml_q_fn)sym("quantize_row_q8_K_ref"))(x, a, n);
    qt_quantize_act(QT_Q8_K, x, b, n);
    assert_memory_equal(a, b, qt_row_bytes(QT_Q8_K, n));
}

/* Dequantizers on random block bytes (every bit pattern, scales kept finite):
 * bit-identical floats. */
static void test_dequant_bits(void **st) {
    (void)st;
    const int64_t n = 4096;
    uint64_t s = 1234;
    uint8_t *q = malloc(n * 2);
    float *a = malloc(n * 4), *b = malloc(n * 4);
    for (size_t k = 0; k < sizeof g_fmts / sizeof g_fmts[0]; k++) {
        const int t = g_fmts[k].type;
        const size_t rb = qt_row_bytes(t, n), bytes = (size_t)qt_info(t)->bytes;
        for (size_t i = 0; i < rb; i++) q[i] = (uint8_t)tu_rng(&s);
        for (size_t blk = 0; blk < rb / bytes; blk++) { /* clear fp16 exponents 31 (inf/NaN) */
            uint8_t *p = q + blk * bytes;
            size_t off[2] = {0, 2}, nd = 0;
            if (t == QT_Q4_0 || t == QT_Q5_0 || t == QT_Q8_0) nd = 1;
            if (t == QT_Q4_1 || t == QT_Q5_1 || t == QT_Q4_K || t == QT_Q5_K) nd = 2;
            if (t == QT_Q2_K) { off[0] = 80; off[1] = 82; nd = 2; }
            if (t == QT_Q3_K) { off[0] = 108; nd = 1; }
            if (t == QT_Q6_K) { off[0] = 208; nd = 1; }
            for (size_t d = 0; d < nd; d++) p[off[d] + 1] &= 0xBF; /* exponent < 31 */
        }
        ((ggml_dq_fn)sym(g_fmts[k].dq))(q, a, n);
        qt_dequant_row(t, q, b, n);
        for (int64_t i = 0; i < n; i++) {
            uint32_t ua, ub;
            memcpy(&ua, &a[i], 4);
            memcpy(&ub, &b[i], 4);
            if (ua != ub) fail_msg("%s element %lld: ggml %a ours %a", qt_info(t)->name, (long long)i, a[i], b[i]);
        }
    }
    /* Q8_K (fp32 d) */
    blk_q8_K k8[2];
    for (size_t i = 0; i < sizeof k8; i++) ((uint8_t *)k8)[i] = (uint8_t)tu_rng(&s);
    k8[0].d = 0.0123f;
    k8[1].d = -7.5f;
    ((ggml_dq_fn)sym("dequantize_row_q8_K"))(k8, a, 512);
    qt_dequant_row(QT_Q8_K, k8, b, 512);
    assert_memory_equal(a, b, 512 * 4);
    free(q);
    free(a);
    free(b);
}

/* Scalar conversions against ggml's, over every half and many floats. */
typedef struct { uint16_t bits; } ggml_bf16;
static void test_conversions(void **st) {
    (void)st;
    float (*h2f)(uint16_t) = (float (*)(uint16_t))sym("ggml_fp16_to_fp32");
    uint16_t (*f2h)(float) = (uint16_t(*)(float))sym("ggml_fp32_to_fp16");
    ggml_bf16 (*f2b)(float) = (ggml_bf16(*)(float))sym("ggml_fp32_to_bf16");
    for (uint32_t h = 0; h < 0x10000; h++) {
        float a = h2f((uint16_t)h), b = qt_f16_to_f32((uint16_t)h);
        if (isnan(a)) assert_true(isnan(b));
        else assert_memory_equal(&a, &b, 4);
    }
    uint64_t s = 5;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = (uint32_t)tu_rng(&s);
        if (i & 1) u = (u & 0x87FFFFFFu) | 0x38000000u; /* near the half range */
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f)) continue;
        assert_int_equal(f2h(f), qt_f32_to_f16(f));
        assert_int_equal(f2b(f).bits, qt_f32_to_bf16(f));
    }
}

int main(void) {
    char path[1024];
    const char *env = getenv("LLORCH_GGML_LIB");
    if (env && *env) snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path, "%s/tools/ref/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so",
                 tu_env("LLORCH_SRC_DIR", "."));
    g_lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!g_lib) {
        printf("SKIPPED: ggml reference library not found (%s)\n", dlerror());
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_bytes),
        cmocka_unit_test(test_act_bytes),
        cmocka_unit_test(test_dequant_bits),
        cmocka_unit_test(test_conversions),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dlclose(g_lib);
    return rc;
}
