// test-libs: llorch_quant llorch_core
/* quant: type table, fp16/bf16/E8M0 conversions, and hand-built blocks of the
 * 32-element formats (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, MXFP4)
 * with expected values written from the format definitions, plus their
 * quantizers on inputs whose exact bytes are known. */
#include <errno.h>
#include <math.h>

#include "testutil.h"

#include "engine/quant.h"

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_table(void **st) {
    (void)st;
    static const struct { int id; const char *name; int blck, bytes, vdt, q; } want[] = {
        {QT_F32, "f32", 1, 4, QT_F32, 1},         {QT_F16, "f16", 1, 2, QT_F16, 1},
        {QT_BF16, "bf16", 1, 2, QT_F32, 1},       {QT_Q4_0, "q4_0", 32, 18, QT_Q8_0, 1},
        {QT_Q4_1, "q4_1", 32, 20, QT_Q8_1, 1},    {QT_Q5_0, "q5_0", 32, 22, QT_Q8_0, 1},
        {QT_Q5_1, "q5_1", 32, 24, QT_Q8_1, 1},    {QT_Q8_0, "q8_0", 32, 34, QT_Q8_0, 1},
        {QT_Q8_1, "q8_1", 32, 36, -1, 0},         {QT_Q2_K, "q2_K", 256, 84, QT_Q8_K, 1},
        {QT_Q3_K, "q3_K", 256, 110, QT_Q8_K, 1},  {QT_Q4_K, "q4_K", 256, 144, QT_Q8_K, 1},
        {QT_Q5_K, "q5_K", 256, 176, QT_Q8_K, 1},  {QT_Q6_K, "q6_K", 256, 210, QT_Q8_K, 1},
        {QT_Q8_K, "q8_K", 256, 292, -1, 0},       {QT_I8, "i8", 1, 1, -1, 0},
        {QT_I16, "i16", 1, 2, -1, 0},             {QT_I32, "i32", 1, 4, -1, 0},
        {QT_MXFP4, "mxfp4", 32, 17, QT_Q8_0, 1},
    };
    int known = 0;
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        const qt_info_t *in = qt_info(want[k].id);
        assert_non_null(in);
        assert_string_equal(in->name, want[k].name);
        assert_int_equal(in->blck, want[k].blck);
        assert_int_equal(in->bytes, want[k].bytes);
        assert_int_equal(in->vec_dot_type, want[k].vdt);
        assert_int_equal(in->can_quantize, want[k].q);
        assert_int_equal(qt_row_bytes(want[k].id, 4096), (size_t)(4096 / want[k].blck * want[k].bytes));
        assert_int_equal(qt_row_bytes(want[k].id, 0), 0);
        if (want[k].blck > 1) assert_int_equal(qt_row_bytes(want[k].id, want[k].blck + 1), 0);
    }
    for (int t = -3; t < 64; t++) known += qt_info(t) != NULL;
    assert_int_equal(known, (int)(sizeof want / sizeof want[0]));
    assert_null(qt_info(4));  /* removed Q4_2 */
    assert_null(qt_info(16)); /* IQ2_XXS: not supported */
    assert_null(qt_info(-1));
    assert_null(qt_info(QT__MAX));
    assert_int_equal(qt_row_bytes(4, 32), 0);
    assert_int_equal(qt_row_bytes(QT_Q4_0, -32), 0);
    assert_int_equal(qt_row_bytes(QT_Q4_K, 896), 0); /* Qwen 896-wide rows: not K-quantizable */
    assert_int_equal(qt_row_bytes(QT_Q5_0, 896), 896 / 32 * 22);
    /* hostile sizes never wrap */
    assert_int_equal(qt_row_bytes(QT_F32, INT64_MAX / 4 + 1), 0);
    assert_int_equal(qt_row_bytes(QT_F32, INT64_MAX / 4), (size_t)(INT64_MAX / 4) * 4);
    assert_int_equal(qt_row_bytes(QT_Q8_0, INT64_MAX / 32 * 32), 0);   /* 34 B per 32: exceeds */
    assert_int_equal(qt_row_bytes(QT_Q8_K, INT64_MAX / 256 * 256), 0); /* 292 B per 256 */
    assert_int_equal(qt_row_bytes(QT_Q4_0, INT64_MAX / 32 * 32), (size_t)(INT64_MAX / 32) * 18);
    assert_int_equal(qt_row_bytes(QT_F16, (int64_t)1 << 62), 0); /* 2^63 bytes > INT64_MAX */
    assert_int_equal(qt_row_bytes(QT_F16, (int64_t)1 << 61), (size_t)1 << 62);
    float x[32] = {0};
    uint8_t buf[64];
    assert_int_equal(qt_quantize_row(QT_Q8_K, x, buf, 32), -ENOTSUP);
    assert_int_equal(qt_quantize_row(QT_I32, x, buf, 1), -ENOTSUP);
    assert_int_equal(qt_quantize_row(17, x, buf, 32), -ENOTSUP);
    assert_int_equal(qt_quantize_row(QT_Q4_0, x, buf, 31), -EINVAL);
}

static void test_f16(void **st) {
    (void)st;
    /* decode: exact values from the IEEE half definition */
    assert_true(qt_f16_to_f32(0x3C00) == 1.0f);
    assert_true(qt_f16_to_f32(0xC000) == -2.0f);
    assert_true(qt_f16_to_f32(0x7BFF) == 65504.0f);
    assert_true(qt_f16_to_f32(0x0400) == ldexpf(1, -14)); /* smallest normal */
    assert_true(qt_f16_to_f32(0x0001) == ldexpf(1, -24)); /* smallest subnormal */
    assert_true(qt_f16_to_f32(0x03FF) == ldexpf(1023, -24));
    assert_true(qt_f16_to_f32(0x8001) == -ldexpf(1, -24));
    assert_int_equal(fbits(qt_f16_to_f32(0x8000)), 0x80000000u);
    assert_true(isinf(qt_f16_to_f32(0x7C00)) && qt_f16_to_f32(0x7C00) > 0);
    assert_true(isinf(qt_f16_to_f32(0xFC00)) && qt_f16_to_f32(0xFC00) < 0);
    assert_true(isnan(qt_f16_to_f32(0x7E00)));
    assert_true(isnan(qt_f16_to_f32(0x7C01)));
    /* every finite half round-trips exactly, NaNs stay NaN */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = qt_f16_to_f32((uint16_t)h);
        uint16_t back = qt_f32_to_f16(f);
        if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) {
            assert_true(isnan(f));
            assert_true((back & 0x7C00) == 0x7C00 && (back & 0x3FF));
        } else {
            assert_int_equal(back, h);
        }
    }
    /* encode: round to nearest even at every boundary */
    assert_int_equal(qt_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3C00);                   /* tie -> even */
    assert_int_equal(qt_f32_to_f16(1.0f + 3 * ldexpf(1, -11)), 0x3C02);               /* tie -> even (up) */
    assert_int_equal(qt_f32_to_f16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)), 0x3C01); /* above tie */
    assert_int_equal(qt_f32_to_f16(65504.0f), 0x7BFF);
    assert_int_equal(qt_f32_to_f16(65519.0f), 0x7BFF);
    assert_int_equal(qt_f32_to_f16(65520.0f), 0x7C00); /* tie at max rounds to inf */
    assert_int_equal(qt_f32_to_f16(1e10f), 0x7C00);
    assert_int_equal(qt_f32_to_f16(-INFINITY), 0xFC00);
    assert_int_equal(qt_f32_to_f16(ldexpf(1, -25)), 0x0000);                 /* tie -> 0 */
    assert_int_equal(qt_f32_to_f16(ldexpf(1, -25) * 1.0001f), 0x0001);
    assert_int_equal(qt_f32_to_f16(ldexpf(3, -25)), 0x0002);                 /* 1.5 ulp -> even 2 */
    assert_int_equal(qt_f32_to_f16(-ldexpf(1, -24)), 0x8001);
    assert_int_equal(qt_f32_to_f16(ldexpf(1, -14) - ldexpf(1, -25)), 0x0400); /* rounds up into normal */
    assert_int_equal(qt_f32_to_f16(1e-30f), 0x0000);
    assert_int_equal(qt_f32_to_f16(-0.0f), 0x8000);
    uint16_t nan = qt_f32_to_f16(NAN);
    assert_true((nan & 0x7C00) == 0x7C00 && (nan & 0x3FF));
}

static void test_bf16_e8m0(void **st) {
    (void)st;
    assert_true(qt_bf16_to_f32(0x3F80) == 1.0f);
    assert_true(qt_bf16_to_f32(0xC040) == -3.0f);
    assert_true(qt_bf16_to_f32(0x0001) == ldexpf(1, -133)); /* subnormal kept */
    assert_int_equal(qt_f32_to_bf16(1.0f), 0x3F80);
    assert_int_equal(qt_f32_to_bf16(bitsf(0x3F808000)), 0x3F80); /* tie -> even */
    assert_int_equal(qt_f32_to_bf16(bitsf(0x3F818000)), 0x3F82); /* tie -> even (up) */
    assert_int_equal(qt_f32_to_bf16(bitsf(0x3F808001)), 0x3F81);
    assert_int_equal(qt_f32_to_bf16(bitsf(0x7F7FFFFF)), 0x7F80); /* FLT_MAX rounds to inf */
    assert_int_equal(qt_f32_to_bf16(INFINITY), 0x7F80);
    assert_int_equal(qt_f32_to_bf16(bitsf(0x7F800001)), 0x7FC0); /* sNaN quieted, stays NaN */
    assert_int_equal(qt_f32_to_bf16(bitsf(0x00010000)), 0x0001);
    /* E8M0 as ggml's HALF variant: 2^(e-128) */
    assert_true(qt_e8m0_to_f32(128) == 1.0f);
    assert_true(qt_e8m0_to_f32(127) == 0.5f);
    assert_true(qt_e8m0_to_f32(130) == 4.0f);
    assert_true(qt_e8m0_to_f32(0) == ldexpf(1, -128));
    assert_true(qt_e8m0_to_f32(1) == ldexpf(1, -127));
    assert_true(qt_e8m0_to_f32(2) == ldexpf(1, -126));
    assert_true(qt_e8m0_to_f32(254) == ldexpf(1, 126));
    assert_true(qt_e8m0_to_f32(255) == ldexpf(1, 127)); /* not NaN in ggml's half variant */
}

static void put16(uint16_t *dst, uint16_t v) { *dst = v; }

static void test_q4_0_q8_0_blocks(void **st) {
    (void)st;
    float y[64];
    /* two Q4_0 blocks: d=0.5 with nibbles k (low) and 15-k (high); d=-2 with 0/15 extremes */
    blk_q4_0 b[2];
    put16(&b[0].d, 0x3800); /* 0.5 */
    for (int j = 0; j < 16; j++) b[0].qs[j] = (uint8_t)(j | (15 - j) << 4);
    put16(&b[1].d, 0xC000); /* -2 */
    for (int j = 0; j < 16; j++) b[1].qs[j] = (uint8_t)(j % 2 ? 0x0F : 0xF0);
    qt_dequant_row(QT_Q4_0, b, y, 64);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == (float)(j - 8) * 0.5f);
        assert_true(y[16 + j] == (float)(7 - j) * 0.5f);
        assert_true(y[32 + j] == (j % 2 ? 7 * -2.0f : -8 * -2.0f));
        assert_true(y[48 + j] == (j % 2 ? -8 * -2.0f : 7 * -2.0f));
    }
    /* zero scale gives exact zeros whatever the nibbles */
    put16(&b[0].d, 0x0000);
    qt_dequant_row(QT_Q4_0, b, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == 0.0f);

    blk_q8_0 c;
    put16(&c.d, 0x3400); /* 0.25 */
    for (int j = 0; j < 32; j++) c.qs[j] = (int8_t)(j == 0 ? -128 : j == 1 ? 127 : j - 16);
    qt_dequant_row(QT_Q8_0, &c, y, 32);
    assert_true(y[0] == -32.0f);
    assert_true(y[1] == 31.75f);
    for (int j = 2; j < 32; j++) assert_true(y[j] == (float)(j - 16) * 0.25f);
}

static void test_q4_1_q5_blocks(void **st) {
    (void)st;
    float y[32];
    blk_q4_1 a;
    put16(&a.d, 0x3C00);  /* 1 */
    put16(&a.m, 0xC500);  /* -5 */
    for (int j = 0; j < 16; j++) a.qs[j] = (uint8_t)(j | (15 - j) << 4);
    qt_dequant_row(QT_Q4_1, &a, y, 32);
    for (int j = 0; j < 16; j++) {
        assert_true(y[j] == (float)j - 5.0f);
        assert_true(y[16 + j] == (float)(15 - j) - 5.0f);
    }
    /* Q5_0: qh bit j is bit 4 of element j; value - 16 */
    blk_q5_0 b;
    put16(&b.d, 0x4000); /* 2 */
    const uint32_t qh = 0xA5F0C381u;
    b.qh[0] = 0x81; b.qh[1] = 0xC3; b.qh[2] = 0xF0; b.qh[3] = 0xA5;
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)((j * 7) & 15) | (uint8_t)(((j * 3) & 15) << 4);
    qt_dequant_row(QT_Q5_0, &b, y, 32);
    for (int j = 0; j < 16; j++) {
        int v0 = ((j * 7) & 15) + (int)((qh >> j) & 1) * 16 - 16;
        int v1 = ((j * 3) & 15) + (int)((qh >> (j + 16)) & 1) * 16 - 16;
        assert_true(y[j] == (float)v0 * 2.0f);
        assert_true(y[16 + j] == (float)v1 * 2.0f);
    }
    /* extremes: all bits set -> 31-16 = 15; none -> -16 */
    memset(b.qs, 0xFF, 16);
    memset(b.qh, 0xFF, 4);
    qt_dequant_row(QT_Q5_0, &b, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == 30.0f);
    memset(b.qs, 0, 16);
    memset(b.qh, 0, 4);
    qt_dequant_row(QT_Q5_0, &b, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == -32.0f);

    blk_q5_1 c;
    put16(&c.d, 0x3800);  /* 0.5 */
    put16(&c.m, 0x4200);  /* 3 */
    c.qh[0] = 0x81; c.qh[1] = 0xC3; c.qh[2] = 0xF0; c.qh[3] = 0xA5;
    for (int j = 0; j < 16; j++) c.qs[j] = (uint8_t)((j * 5) & 15) | (uint8_t)(((j * 11) & 15) << 4);
    qt_dequant_row(QT_Q5_1, &c, y, 32);
    for (int j = 0; j < 16; j++) {
        int v0 = ((j * 5) & 15) + (int)((qh >> j) & 1) * 16;
        int v1 = ((j * 11) & 15) + (int)((qh >> (j + 16)) & 1) * 16;
        assert_true(y[j] == (float)v0 * 0.5f + 3.0f);
        assert_true(y[16 + j] == (float)v1 * 0.5f + 3.0f);
    }
}

static void test_mxfp4_blocks(void **st) {
    (void)st;
    static const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    float y[32];
    blk_mxfp4 b;
    for (int j = 0; j < 16; j++) b.qs[j] = (uint8_t)(j | (15 - j) << 4);
    const struct { uint8_t e; float scale; } es[] = {
        {127, 1.0f}, {128, 2.0f}, {120, ldexpf(1, -7)}, {0, ldexpf(1, -127)}, {254, ldexpf(1, 127)}, {255, ldexpf(1, 128)},
    };
    for (size_t k = 0; k < sizeof es / sizeof es[0]; k++) {
        b.e = es[k].e;
        qt_dequant_row(QT_MXFP4, &b, y, 32);
        for (int j = 0; j < 16; j++) {
            /* OCP MX: e2m1 value * 2^(e-127); e=255 follows ggml (2^128 = inf in float) */
            float w0 = e2m1[j] * es[k].scale, w1 = e2m1[15 - j] * es[k].scale;
            if (es[k].e == 255) { /* ggml computes 2*e2m1 * 2^127: finite for |v| <= 0.5*2 */
                w0 = e2m1[j] * 2.0f * ldexpf(1, 127);
                w1 = e2m1[15 - j] * 2.0f * ldexpf(1, 127);
            }
            assert_true(y[j] == w0 || (isinf(y[j]) && isinf(w0) && (y[j] > 0) == (w0 > 0)));
            assert_true(y[16 + j] == w1 || (isinf(y[16 + j]) && isinf(w1) && (y[16 + j] > 0) == (w1 > 0)));
        }
    }
}

/* Q8_1 / Q8_K (activation formats) and the integer types decode too. */
static void test_act_and_int_blocks(void **st) {
    (void)st;
    float y[256];
    blk_q8_1 a;
    put16(&a.d, 0xB800); /* -0.5 */
    put16(&a.s, 0x7C00); /* s is not used by dequantization */
    for (int j = 0; j < 32; j++) a.qs[j] = (int8_t)(j * 8 - 128);
    qt_dequant_row(QT_Q8_1, &a, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == (float)(j * 8 - 128) * -0.5f);
    blk_q8_K k;
    k.d = 0.125f;
    for (int j = 0; j < 256; j++) k.qs[j] = (int8_t)(j - 128);
    memset(k.bsums, 0, sizeof k.bsums);
    qt_dequant_row(QT_Q8_K, &k, y, 256);
    for (int j = 0; j < 256; j++) assert_true(y[j] == (float)(j - 128) * 0.125f);
    const int8_t i8[4] = {-128, -1, 0, 127};
    qt_dequant_row(QT_I8, i8, y, 4);
    assert_true(y[0] == -128.0f && y[1] == -1.0f && y[2] == 0.0f && y[3] == 127.0f);
    const int16_t i16[3] = {-32768, 12345, 32767};
    qt_dequant_row(QT_I16, i16, y, 3);
    assert_true(y[0] == -32768.0f && y[1] == 12345.0f && y[2] == 32767.0f);
    const int32_t i32[3] = {-2147483647 - 1, 16777217, 7};
    qt_dequant_row(QT_I32, i32, y, 3);
    assert_true(y[0] == -2147483648.0f && y[1] == 16777216.0f && y[2] == 7.0f); /* nearest float */
    const uint16_t f16[4] = {0x3C00, 0x8001, 0x7C00, 0xC500};
    qt_dequant_row(QT_F16, f16, y, 4);
    assert_true(y[0] == 1.0f && y[1] == -ldexpf(1, -24) && isinf(y[2]) && y[3] == -5.0f);
}

/* Quantizers on inputs whose bytes follow directly from the algorithm. */
static void test_quantize_exact(void **st) {
    (void)st;
    float x[32];
    /* Q4_0: max-magnitude value -8 -> d = 1, q = x + 8 */
    for (int j = 0; j < 32; j++) x[j] = (float)((j % 16) - 8);
    blk_q4_0 q4;
    assert_int_equal(qt_quantize_row(QT_Q4_0, x, &q4, 32), 0);
    assert_int_equal(q4.d, 0x3C00);
    for (int j = 0; j < 16; j++) assert_int_equal(q4.qs[j], (j % 16) | (j % 16) << 4);
    /* positive extreme: max = +8 -> d = -1, q = 8 - x, clamped to 15 at x=-8 */
    x[0] = 8.0f;
    assert_int_equal(qt_quantize_row(QT_Q4_0, x, &q4, 32), 0);
    assert_int_equal(q4.d, 0xBC00);
    assert_int_equal(q4.qs[0] & 0xF, 0);         /* 8 * -1 + 8 */
    assert_int_equal(q4.qs[1] & 0xF, 15);        /* -7 -> 15 */
    assert_int_equal(q4.qs[0] >> 4, 15);         /* x[16] = -8 -> 16 -> clamped 15 */
    /* all zero -> d = 0/-8 = -0.0 (ggml stores the negative zero), q = 8 */
    memset(x, 0, sizeof x);
    assert_int_equal(qt_quantize_row(QT_Q4_0, x, &q4, 32), 0);
    assert_int_equal(q4.d, 0x8000);
    for (int j = 0; j < 16; j++) assert_int_equal(q4.qs[j], 0x88);
    /* Q8_0: amax 127 -> d = 1, exact integers; halves round away from zero */
    for (int j = 0; j < 32; j++) x[j] = (float)(j * 8 - 127);
    x[31] = 127.0f;
    blk_q8_0 q8;
    assert_int_equal(qt_quantize_row(QT_Q8_0, x, &q8, 32), 0);
    assert_int_equal(q8.d, 0x3C00);
    for (int j = 0; j < 31; j++) assert_int_equal(q8.qs[j], j * 8 - 127);
    x[0] = 2.5f;
    x[1] = -2.5f;
    assert_int_equal(qt_quantize_row(QT_Q8_0, x, &q8, 32), 0);
    assert_int_equal(q8.qs[0], 3);
    assert_int_equal(q8.qs[1], -3);
    /* Q8_1 activation: s = d * sum(q) */
    blk_q8_1 a1;
    for (int j = 0; j < 32; j++) x[j] = j < 16 ? 127.0f : -1.0f;
    qt_quantize_act(QT_Q8_1, x, &a1, 32);
    assert_int_equal(a1.d, 0x3C00);
    assert_int_equal(a1.s, qt_f32_to_f16(16 * 127 - 16));
    /* Q4_1: min 0, max 15 -> d = 1, m = 0, q = x */
    for (int j = 0; j < 32; j++) x[j] = (float)(j % 16);
    blk_q4_1 q41;
    assert_int_equal(qt_quantize_row(QT_Q4_1, x, &q41, 32), 0);
    assert_int_equal(q41.d, 0x3C00);
    assert_int_equal(q41.m, 0);
    for (int j = 0; j < 16; j++) assert_int_equal(q41.qs[j], j | j << 4);
    /* Q5_0: max -16 -> d = 1, q = x + 16; bit 4 into qh */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16);
    blk_q5_0 q50;
    assert_int_equal(qt_quantize_row(QT_Q5_0, x, &q50, 32), 0);
    assert_int_equal(q50.d, 0x3C00);
    for (int j = 0; j < 16; j++) assert_int_equal(q50.qs[j], (j & 15) | ((j + 16) & 15) << 4);
    assert_int_equal(q50.qh[0] | q50.qh[1] << 8, 0x0000); /* elements 0..15: values 0..15 */
    assert_int_equal(q50.qh[2] | q50.qh[3] << 8, 0xFFFF); /* elements 16..31: 16..31 */
    /* Q5_1: min -1, max 30 -> d = 1, m = -1 */
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 1);
    blk_q5_1 q51;
    assert_int_equal(qt_quantize_row(QT_Q5_1, x, &q51, 32), 0);
    assert_int_equal(q51.d, 0x3C00);
    assert_int_equal(q51.m, 0xBC00);
    for (int j = 0; j < 16; j++) assert_int_equal(q51.qs[j], (j & 15) | ((j + 16) & 15) << 4);
    assert_int_equal(q51.qh[2] | q51.qh[3] << 8, 0xFFFF);
    /* MXFP4: amax 6 -> e = floor(log2 6) - 2 + 127 = 127 (scale 0.5 on the doubled table) */
    static const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, 0, -0.5f, -1, -1.5f, -2, -3, -4, -6};
    for (int j = 0; j < 32; j++) x[j] = e2m1[j % 16];
    blk_mxfp4 m4;
    assert_int_equal(qt_quantize_row(QT_MXFP4, x, &m4, 32), 0);
    assert_int_equal(m4.e, 127);
    for (int j = 0; j < 16; j++) assert_int_equal(m4.qs[j], (j == 8 ? 0 : j) | (j == 8 ? 0 : j) << 4); /* -0 -> +0 */
    x[0] = 1.25f; /* between 1 and 1.5: tie -> first index (1.0, index 2) */
    x[1] = 5.0f;  /* between 4 and 6: tie -> 4 (index 6) */
    assert_int_equal(qt_quantize_row(QT_MXFP4, x, &m4, 32), 0);
    assert_int_equal(m4.qs[0] & 0xF, 2);
    assert_int_equal(m4.qs[1] & 0xF, 6);
    memset(x, 0, sizeof x);
    assert_int_equal(qt_quantize_row(QT_MXFP4, x, &m4, 32), 0);
    assert_int_equal(m4.e, 0);
    /* F16/BF16 rows */
    uint16_t h[32];
    for (int j = 0; j < 32; j++) x[j] = (float)j * 0.5f;
    assert_int_equal(qt_quantize_row(QT_F16, x, h, 32), 0);
    for (int j = 0; j < 32; j++) assert_int_equal(h[j], qt_f32_to_f16((float)j * 0.5f));
    assert_int_equal(h[2], 0x3C00);
    assert_int_equal(qt_quantize_row(QT_BF16, x, h, 32), 0);
    assert_int_equal(h[2], 0x3F80);
    float y[32];
    qt_dequant_row(QT_BF16, h, y, 32);
    for (int j = 0; j < 32; j++) assert_true(y[j] == (float)j * 0.5f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_bf16_e8m0),
        cmocka_unit_test(test_q4_0_q8_0_blocks),
        cmocka_unit_test(test_q4_1_q5_blocks),
        cmocka_unit_test(test_mxfp4_blocks),
        cmocka_unit_test(test_act_and_int_blocks),
        cmocka_unit_test(test_quantize_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
