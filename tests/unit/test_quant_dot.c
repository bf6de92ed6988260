// test-libs: llorch_quant llorch_core
/* quant: quantize -> dequantize round-trip error per format on random rows,
 * and vec-dot agreement: SIMD (qt_vec_dot) vs scalar reference
 * (qt_vec_dot_ref) vs a double-precision dot of the dequantized rows, over
 * several row lengths. Bounds are set from what each format can represent,
 * tight enough that a broken quantizer or a mis-unpacked kernel fails. */
#include <math.h>

#include "testutil.h"

#include "engine/quant.h"

/* roughly Gaussian: sum of 4 uniforms, plus an occasional outlier as real
 * weight rows have */
static void fill(float *x, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        float v = (tu_randf(&s) + tu_randf(&s) + tu_randf(&s) + tu_randf(&s)) * 0.5f;
        if ((tu_rng(&s) & 255) == 0) v *= 6.0f;
        x[i] = v * 0.02f;
    }
}

static double rel_rmse(const float *a, const float *b, int64_t n) {
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)a[i] * a[i];
    }
    return sqrt(e / r);
}

static void test_roundtrip(void **st) {
    (void)st;
    static const struct { int type; double bound; } fmts[] = {
        /* measured on this distribution x ~1.2: F16 .00021 BF16 .0017 Q8_0 .0064
         * Q4_0 .106 Q4_1 .082 Q5_0 .051 Q5_1 .040 Q2_K .311 Q3_K .172 Q4_K .077
         * Q5_K .040 Q6_K .021 MXFP4 .128 (the 1/256 6x outliers widen every
         * block scale they land in) */
        {QT_F16, 0.0003},  {QT_BF16, 0.0022}, {QT_Q8_0, 0.008},  {QT_Q4_0, 0.125},  {QT_Q4_1, 0.10},
        {QT_Q5_0, 0.062},  {QT_Q5_1, 0.05},   {QT_Q2_K, 0.37},   {QT_Q3_K, 0.21},   {QT_Q4_K, 0.092},
        {QT_Q5_K, 0.048},  {QT_Q6_K, 0.025},  {QT_MXFP4, 0.155},
    };
    const int64_t n = 4096;
    int fails = 0;
    double err[QT__MAX] = {0};
    float *x = malloc(n * 4), *y = malloc(n * 4);
    void *q = malloc(n * 4 + 1024);
    fill(x, n, 42);
    for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
        const int t = fmts[k].type;
        memset(q, 0xA5, n * 4 + 1024);
        assert_int_equal(qt_quantize_row(t, x, q, n), 0);
        /* writes exactly qt_row_bytes */
        assert_int_equal(((uint8_t *)q)[qt_row_bytes(t, n)], 0xA5);
        qt_dequant_row(t, q, y, n);
        double e = rel_rmse(x, y, n);
        print_message("  %-6s rel rmse %.5f (bound %.4f)\n", qt_info(t)->name, e, fmts[k].bound);
        fails += e >= fmts[k].bound;
        err[t] = e;
        /* determinism: same bytes again */
        void *q2 = malloc(qt_row_bytes(t, n));
        assert_int_equal(qt_quantize_row(t, x, q2, n), 0);
        assert_memory_equal(q, q2, qt_row_bytes(t, n));
        free(q2);
        /* quantizing the dequantized row is a fixed point for the symmetric
         * 8-bit format (every value is already on the grid) */
        if (t == QT_Q8_0) {
            void *q3 = malloc(qt_row_bytes(t, n));
            assert_int_equal(qt_quantize_row(t, y, q3, n), 0);
            float *y3 = malloc(n * 4);
            qt_dequant_row(t, q3, y3, n);
            assert_true(rel_rmse(y, y3, n) < 1e-3);
            free(y3);
            free(q3);
        }
    }
    assert_int_equal(fails, 0);
    /* orderings a sloppy quantizer breaks: the K-quants' scale/min search must
     * beat plain min/max at the same bit width, and more bits must help */
    assert_true(err[QT_Q4_K] < err[QT_Q4_1]);
    assert_true(err[QT_Q5_K] < err[QT_Q5_1]);
    assert_true(err[QT_Q6_K] < 0.6 * err[QT_Q5_K]);
    assert_true(err[QT_Q5_K] < 0.6 * err[QT_Q4_K]);
    assert_true(err[QT_Q4_K] < 0.6 * err[QT_Q3_K]);
    assert_true(err[QT_Q3_K] < 0.6 * err[QT_Q2_K]);
    assert_true(err[QT_Q5_0] < 0.6 * err[QT_Q4_0]);
    assert_true(err[QT_Q8_0] < 0.4 * err[QT_Q6_K]);
    /* all-zero rows decode to exact zeros for every quantizer */
    memset(x, 0, n * 4);
    for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
        assert_int_equal(qt_quantize_row(fmts[k].type, x, q, 512), 0);
        qt_dequant_row(fmts[k].type, q, y, 512);
        for (int i = 0; i < 512; i++) assert_true(y[i] == 0.0f);
    }
    /* non-finite input (a hostile source file): every quantizer must stay
     * defined (this runs under UBSan in the ASan build) and finite blocks
     * elsewhere in the row are unaffected */
    fill(x, n, 43);
    x[5] = NAN;
    x[300] = INFINITY;
    x[700] = -INFINITY;
    x[1000] = 3e38f;
    for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++) {
        assert_int_equal(qt_quantize_row(fmts[k].type, x, q, n), 0);
        qt_dequant_row(fmts[k].type, q, y, n);
        assert_true(rel_rmse(x + 2048, y + 2048, 2048) < fmts[k].bound * 1.5);
    }
    qt_quantize_act(QT_Q8_0, x, q, n);
    qt_quantize_act(QT_Q8_1, x, q, n);
    qt_quantize_act(QT_Q8_K, x, q, n);
    free(x);
    free(y);
    free(q);
}

/* Activation quantizers: Q8_0/Q8_1/Q8_K exact invariants */
static void test_act(void **st) {
    (void)st;
    const int64_t n = 512;
    float x[512];
    fill(x, n, 7);
    blk_q8_1 a1[16];
    qt_quantize_act(QT_Q8_1, x, a1, n);
    for (int b = 0; b < 16; b++) {
        int sum = 0;
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            sum += a1[b].qs[j];
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
        }
        /* s uses the unrounded d = amax/127, as ggml does */
        assert_int_equal(a1[b].d, qt_f32_to_f16(amax / 127));
        assert_int_equal(a1[b].s, qt_f32_to_f16((float)sum * (amax / 127)));
    }
    blk_q8_K ak[2];
    qt_quantize_act(QT_Q8_K, x, ak, n);
    for (int b = 0; b < 2; b++) {
        int hit = 0;
        for (int k = 0; k < 16; k++) {
            int sum = 0;
            for (int j = 0; j < 16; j++) sum += ak[b].qs[16 * k + j];
            assert_int_equal(ak[b].bsums[k], sum);
        }
        for (int j = 0; j < 256; j++) {
            assert_true(ak[b].qs[j] >= -127 && ak[b].qs[j] <= 127);
            hit |= ak[b].qs[j] == -127 || ak[b].qs[j] == 127;
            assert_true(fabsf(ak[b].d * ak[b].qs[j] - x[256 * b + j]) <= fabsf(ak[b].d) * 0.5f + 1e-9f);
        }
        assert_true(hit); /* the largest magnitude maps to +-127 */
    }
    float y[512];
    qt_dequant_row(QT_Q8_K, ak, y, n);
    print_message("  q8_K rel rmse %.5f\n", rel_rmse(x, y, n));
    assert_true(rel_rmse(x, y, n) < 0.009); /* measured .0071: 256-wide blocks */
    uint16_t h[512];
    qt_quantize_act(QT_F16, x, h, n);
    for (int i = 0; i < n; i++) assert_int_equal(h[i], qt_f32_to_f16(x[i]));
    float f[512];
    qt_quantize_act(QT_F32, x, f, n);
    assert_memory_equal(f, x, sizeof f);
}

static void check_dot(int t, int64_t n, uint64_t seed) {
    const int vdt = qt_info(t)->vec_dot_type;
    float *w = malloc(n * 4), *x = malloc(n * 4), *wd = malloc(n * 4), *xd = malloc(n * 4);
    void *wq = malloc(qt_row_bytes(t, n)), *xq = malloc(qt_row_bytes(vdt, n));
    fill(w, n, seed);
    fill(x, n, seed ^ 0x5555);
    for (int64_t i = 0; i < n; i++) x[i] *= 50.0f; /* activations larger than weights */
    assert_int_equal(qt_quantize_row(t, w, wq, n), 0);
    qt_quantize_act(vdt, x, xq, n);
    qt_dequant_row(t, wq, wd, n);
    qt_dequant_row(vdt, xq, xd, n);
    double ref = 0, mag = 0, exact = 0, emag = 0;
    for (int64_t i = 0; i < n; i++) {
        ref += (double)wd[i] * xd[i];
        mag += fabs((double)wd[i] * xd[i]);
        exact += (double)w[i] * x[i];
        emag += fabs((double)w[i] * x[i]);
    }
    const float fast = qt_vec_dot(t, wq, xq, n), slow = qt_vec_dot_ref(t, wq, xq, n);
    /* all three compute the same sum of the same products; only float rounding
     * (products of fp16 scales, accumulation order) separates them. Q4_1/Q5_1
     * add m * s per block, s being fp16(d_unrounded * sum): allow its rounding. */
    double tol = 2e-5 * mag + 1e-6;
    if (t == QT_Q4_1 || t == QT_Q5_1) {
        const size_t wb = (size_t)qt_info(t)->bytes;
        const blk_q8_1 *xb = xq;
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t m;
            memcpy(&m, (const uint8_t *)wq + b * wb + 2, 2);
            tol += 2e-3 * fabs((double)qt_f16_to_f32(m) * qt_f16_to_f32(xb[b].s));
        }
    }
    assert_true(fabs(fast - slow) <= 1e-5 * mag + 1e-7);
    if (fabs(fast - ref) > tol || fabs(slow - ref) > tol)
        print_message("  %s n=%lld: simd %.7g ref %.7g deq %.7g (tol %.3g)\n", qt_info(t)->name, (long long)n, fast, slow,
                      ref, tol);
    assert_true(fabs(fast - ref) <= tol);
    assert_true(fabs(slow - ref) <= tol);
    /* and the quantized dot is near the true one (loose, format-dependent) */
    assert_true(fabs(fast - exact) <= 0.2 * emag / sqrt((double)n) * 4 + 0.05 * fabs(exact) + 1e-4);
    free(w);
    free(x);
    free(wd);
    free(xd);
    free(wq);
    free(xq);
}

static void test_dots(void **st) {
    (void)st;
    static const int types[] = {QT_F32,  QT_F16,  QT_BF16, QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1,
                                QT_Q8_0, QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_MXFP4};
    static const int64_t lens32[] = {32, 96, 256, 4096, 11008};
    static const int64_t lens256[] = {256, 512, 4096, 11008};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const int t = types[k];
        const int blk = qt_info(t)->blck;
        const int64_t *lens = blk == 256 ? lens256 : lens32;
        const size_t nl = blk == 256 ? 4 : 5;
        for (size_t l = 0; l < nl; l++) check_dot(t, lens[l], 1000 + 17 * k + l);
        if (blk == 1) check_dot(t, 7, 99 + k); /* fp rows need not be multiples of 8 */
    }
}

/* Hostile-but-valid weight bytes (every bit pattern is a legal block): SIMD
 * and reference must agree on random bytes too, e.g. Q8_0 weights of -128,
 * Q6_K scales of -128, Q3_K/Q4_K scales at their 6-bit extremes. */
static void test_dots_random_bytes(void **st) {
    (void)st;
    static const int types[] = {QT_Q4_0, QT_Q4_1, QT_Q5_0, QT_Q5_1, QT_Q8_0, QT_Q2_K,
                                QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K, QT_MXFP4};
    const int64_t n = 1024;
    uint64_t s = 77;
    float x[1024], wd[1024], xd[1024];
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const int t = types[k], vdt = qt_info(t)->vec_dot_type;
        const size_t nb = qt_row_bytes(t, n);
        uint8_t *wq = malloc(nb);
        void *xq = malloc(qt_row_bytes(vdt, n));
        for (size_t i = 0; i < nb; i++) wq[i] = (uint8_t)tu_rng(&s);
        /* keep the fp16 scales finite and modest: set each block's scale fields */
        const int bytes = qt_info(t)->bytes;
        for (size_t b = 0; b < nb / (size_t)bytes; b++) {
            uint8_t *blk = wq + b * bytes;
            uint16_t d = (uint16_t)(0x2000 + (tu_rng(&s) & 0x0FFF)) | (uint16_t)((tu_rng(&s) & 1) << 15);
            switch (t) {
            case QT_Q4_0: case QT_Q5_0: case QT_Q8_0: memcpy(blk, &d, 2); break;
            case QT_Q4_1: case QT_Q5_1: case QT_Q4_K: case QT_Q5_K: memcpy(blk, &d, 2); memcpy(blk + 2, &d, 2); break;
            case QT_Q2_K: memcpy(blk + 80, &d, 2); memcpy(blk + 82, &d, 2); break;
            case QT_Q3_K: memcpy(blk + 108, &d, 2); break;
            case QT_Q6_K: memcpy(blk + 208, &d, 2); break;
            case QT_MXFP4: blk[0] = (uint8_t)(100 + (tu_rng(&s) % 40)); break;
            default: break;
            }
        }
        fill(x, n, 5 + k);
        qt_quantize_act(vdt, x, xq, n);
        qt_dequant_row(t, wq, wd, n);
        qt_dequant_row(vdt, xq, xd, n);
        double ref = 0, mag = 0;
        for (int64_t i = 0; i < n; i++) {
            ref += (double)wd[i] * xd[i];
            mag += fabs((double)wd[i] * xd[i]);
        }
        const float fast = qt_vec_dot(t, wq, xq, n), slow = qt_vec_dot_ref(t, wq, xq, n);
        if (fabs(fast - ref) > 2e-5 * mag || fabs(slow - ref) > 2e-5 * mag)
            print_message("  %s: simd %.7g ref %.7g deq %.7g\n", qt_info(t)->name, fast, slow, ref);
        assert_true(fabs(fast - ref) <= 2e-5 * mag);
        assert_true(fabs(slow - ref) <= 2e-5 * mag);
        free(wq);
        free(xq);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_act),
        cmocka_unit_test(test_dots),
        cmocka_unit_test(test_dots_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
