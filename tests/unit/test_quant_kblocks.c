// test-libs: llorch_quant llorch_core
/* quant: hand-built K-quant super-blocks. The test packs chosen codes and
 * scales into bytes with its own encoder, written from the format
 * definitions (bit positions per element, not the library's loops), and
 * checks every dequantized element against d*scale*code (- dmin*min) computed
 * here. Includes the extremes: zero and negative d/dmin, 6-bit scales 0 and
 * 63, Q3_K scales -32 and 31, Q6_K codes -32/31 and scales -128/127. */
#include <math.h>

#include "testutil.h"

#include "engine/quant.h"

static uint16_t h(float f) { return qt_f32_to_f16(f); }
static float hf(uint16_t v) { return qt_f16_to_f32(v); }

static void set_bits(uint8_t *p, int bit0, int nbits, int v) {
    for (int b = 0; b < nbits; b++) {
        int bit = bit0 + b;
        if ((v >> b) & 1) p[bit / 8] |= (uint8_t)(1u << (bit % 8));
        else p[bit / 8] &= (uint8_t)~(1u << (bit % 8));
    }
}

/* 2-bit code of element e (Q2_K, Q3_K): byte 32*(e/128) + e%32, bits 2*((e%128)/32) */
static void put2(uint8_t *qs, int e, int v) { set_bits(qs + 32 * (e / 128) + e % 32, 2 * ((e % 128) / 32), 2, v); }

struct kcase {
    float d, dmin;
    int fill; /* 0 random, 1 all max, 2 all min */
};
static const struct kcase g_cases[] = {
    {0.5f, 0.25f, 0}, {-0.125f, 2.0f, 0}, {1.5f, -0.75f, 1}, {0.0f, 0.0f, 0}, {0.0625f, 1.0f, 2}, {3.0f, 0.0f, 0},
};

static void test_q2_K(void **st) {
    (void)st;
    uint64_t s = 11;
    for (size_t c = 0; c < sizeof g_cases / sizeof g_cases[0]; c++) {
        blk_q2_K b;
        memset(&b, 0, sizeof b);
        int code[256], sc[16], mn[16];
        for (int j = 0; j < 16; j++) {
            sc[j] = g_cases[c].fill == 1 ? 15 : g_cases[c].fill == 2 ? 0 : (int)(tu_rng(&s) % 16);
            mn[j] = g_cases[c].fill == 1 ? 15 : g_cases[c].fill == 2 ? 0 : (int)(tu_rng(&s) % 16);
            b.scales[j] = (uint8_t)(sc[j] | mn[j] << 4);
        }
        for (int e = 0; e < 256; e++) {
            code[e] = g_cases[c].fill == 1 ? 3 : g_cases[c].fill == 2 ? 0 : (int)(tu_rng(&s) % 4);
            put2(b.qs, e, code[e]);
        }
        b.d = h(g_cases[c].d);
        b.dmin = h(g_cases[c].dmin);
        float y[256];
        qt_dequant_row(QT_Q2_K, &b, y, 256);
        for (int e = 0; e < 256; e++) {
            float want = hf(b.d) * (float)sc[e / 16] * (float)code[e] - hf(b.dmin) * (float)mn[e / 16];
            if (y[e] != want) fail_msg("case %zu e %d: %g != %g", c, e, y[e], want);
        }
    }
}

static void test_q3_K(void **st) {
    (void)st;
    uint64_t s = 12;
    for (size_t c = 0; c < sizeof g_cases / sizeof g_cases[0]; c++) {
        blk_q3_K b;
        memset(&b, 0, sizeof b);
        int v[256], sc[16];
        for (int j = 0; j < 16; j++) {
            sc[j] = g_cases[c].fill == 1 ? 31 : g_cases[c].fill == 2 ? -32 : (int)(tu_rng(&s) % 64) - 32;
            int u = sc[j] + 32; /* stored 6-bit */
            set_bits(b.scales + (j < 8 ? j : j - 8), j < 8 ? 0 : 4, 4, u & 0xF);
            set_bits(b.scales + 8 + j % 4, 2 * (j / 4), 2, u >> 4);
        }
        for (int e = 0; e < 256; e++) {
            v[e] = g_cases[c].fill == 1 ? 3 : g_cases[c].fill == 2 ? -4 : (int)(tu_rng(&s) % 8) - 4;
            int u = v[e] + 4; /* 3-bit: low 2 in qs, bit 2 in hmask[e%32] bit e/32 */
            put2(b.qs, e, u & 3);
            set_bits(b.hmask + e % 32, e / 32, 1, u >> 2);
        }
        b.d = h(g_cases[c].d);
        float y[256];
        qt_dequant_row(QT_Q3_K, &b, y, 256);
        for (int e = 0; e < 256; e++) {
            float want = hf(b.d) * (float)sc[e / 16] * (float)v[e];
            if (y[e] != want) fail_msg("case %zu e %d: %g != %g", c, e, y[e], want);
        }
    }
    /* one literal block: scale bytes for j=0 -> 6-bit 0 (value -32), hmask clear
     * -> code 0 decodes as -4: y = d * -32 * -4 */
    blk_q3_K b;
    memset(&b, 0, sizeof b);
    b.d = h(0.5f);
    float y[256];
    qt_dequant_row(QT_Q3_K, &b, y, 256);
    for (int e = 0; e < 256; e++) assert_true(y[e] == 64.0f);
}

/* Q4_K/Q5_K 6-bit scale j and min j into the 12 scale bytes */
static void put_scale_min(uint8_t *q, int j, int sc, int m) {
    if (j < 4) {
        set_bits(q + j, 0, 6, sc);
        set_bits(q + j + 4, 0, 6, m);
    } else {
        set_bits(q + j + 4, 0, 4, sc & 0xF);
        set_bits(q + j + 4, 4, 4, m & 0xF);
        set_bits(q + j - 4, 6, 2, sc >> 4);
        set_bits(q + j, 6, 2, m >> 4);
    }
}

static void test_q4_q5_K(void **st) {
    (void)st;
    uint64_t s = 13;
    for (int five = 0; five < 2; five++) {
        for (size_t c = 0; c < sizeof g_cases / sizeof g_cases[0]; c++) {
            blk_q5_K b5;
            blk_q4_K b4;
            memset(&b5, 0, sizeof b5);
            memset(&b4, 0, sizeof b4);
            uint8_t *scales = five ? b5.scales : b4.scales, *qs = five ? b5.qs : b4.qs;
            int code[256], sc[8], mn[8];
            const int qmax = five ? 31 : 15;
            for (int j = 0; j < 8; j++) {
                sc[j] = g_cases[c].fill == 1 ? 63 : g_cases[c].fill == 2 ? 0 : (int)(tu_rng(&s) % 64);
                mn[j] = g_cases[c].fill == 1 ? 63 : g_cases[c].fill == 2 ? 0 : (int)(tu_rng(&s) % 64);
                if (g_cases[c].fill == 0 && j == 3) sc[j] = 63, mn[j] = 0; /* mixed extremes across the packing seam */
                if (g_cases[c].fill == 0 && j == 4) sc[j] = 0, mn[j] = 63;
                put_scale_min(scales, j, sc[j], mn[j]);
            }
            for (int e = 0; e < 256; e++) {
                code[e] = g_cases[c].fill == 1 ? qmax : g_cases[c].fill == 2 ? 0 : (int)(tu_rng(&s) % (unsigned)(qmax + 1));
                /* element e: chunk e/64; low nibble of qs[32*(e/64) + e%32] when e%64 < 32, else high */
                const int hi = (e % 64) >= 32;
                set_bits(qs + 32 * (e / 64) + e % 32, hi ? 4 : 0, 4, code[e] & 0xF);
                if (five) set_bits(b5.qh + e % 32, 2 * (e / 64) + hi, 1, code[e] >> 4);
            }
            const uint16_t d = h(g_cases[c].d), dmin = h(g_cases[c].dmin);
            if (five) b5.d = d, b5.dmin = dmin;
            else b4.d = d, b4.dmin = dmin;
            float y[256];
            qt_dequant_row(five ? QT_Q5_K : QT_Q4_K, five ? (void *)&b5 : (void *)&b4, y, 256);
            for (int e = 0; e < 256; e++) {
                float want = hf(d) * (float)sc[e / 32] * (float)code[e] - hf(dmin) * (float)mn[e / 32];
                if (y[e] != want) fail_msg("Q%d_K case %zu e %d: %g != %g", five ? 5 : 4, c, e, y[e], want);
            }
        }
    }
    /* literal bytes: scales[0] = 0xC1 -> sc0 = 1 (low 6 bits), and its top 2
     * bits (3) are bits 4-5 of sc4; scales[8] = 0x2A -> sc4 low 4 = 0xA, m4 low 4 = 2 */
    blk_q4_K b;
    memset(&b, 0, sizeof b);
    b.scales[0] = 0xC1;
    b.scales[8] = 0x2A;
    b.scales[4] = 0x80; /* m0 = 0, top bits of m4 = 2 -> m4 = 0x22 */
    memset(b.qs, 0x11, sizeof b.qs);
    b.d = h(1.0f);
    b.dmin = h(1.0f);
    float y[256];
    qt_dequant_row(QT_Q4_K, &b, y, 256);
    assert_true(y[0] == 1.0f);                   /* sc0 = 1, m0 = 0, q = 1 */
    assert_true(y[32] == 0.0f);                  /* sc1 = 0 */
    assert_true(y[128] == 0x3A * 1.0f - 0x22);   /* sc4 = 0x3A, m4 = 0x22 */
}

static void test_q6_K(void **st) {
    (void)st;
    uint64_t s = 14;
    for (size_t c = 0; c < sizeof g_cases / sizeof g_cases[0]; c++) {
        blk_q6_K b;
        memset(&b, 0, sizeof b);
        int v[256], sc[16];
        for (int j = 0; j < 16; j++) {
            sc[j] = g_cases[c].fill == 1 ? 127 : g_cases[c].fill == 2 ? -128 : (int)(tu_rng(&s) % 256) - 128;
            b.scales[j] = (int8_t)sc[j];
        }
        for (int e = 0; e < 256; e++) {
            v[e] = g_cases[c].fill == 1 ? 31 : g_cases[c].fill == 2 ? -32 : (int)(tu_rng(&s) % 64) - 32;
            if (g_cases[c].fill == 0 && e % 37 == 0) v[e] = e % 2 ? 31 : -32;
            const int u = v[e] + 32, hh = e / 128, k = (e % 128) / 32, l = e % 32;
            /* low 4 bits: k=0 ql[l] lo, k=1 ql[32+l] lo, k=2 ql[l] hi, k=3 ql[32+l] hi (per 128-half) */
            set_bits(b.ql + 64 * hh + (k & 1) * 32 + l, (k >> 1) * 4, 4, u & 0xF);
            set_bits(b.qh + 32 * hh + l, 2 * k, 2, u >> 4);
        }
        b.d = h(g_cases[c].d);
        float y[256];
        qt_dequant_row(QT_Q6_K, &b, y, 256);
        for (int e = 0; e < 256; e++) {
            float want = hf(b.d) * (float)sc[e / 16] * (float)v[e];
            if (y[e] != want) fail_msg("case %zu e %d: %g != %g", c, e, y[e], want);
        }
    }
    /* literal: all-zero bytes are code 0 -> -32; scale -128, d = 1/64 -> 64 */
    blk_q6_K b;
    memset(&b, 0, sizeof b);
    memset(b.scales, 0x80, 16);
    b.d = h(1.0f / 64);
    float y[256];
    qt_dequant_row(QT_Q6_K, &b, y, 256);
    for (int e = 0; e < 256; e++) assert_true(y[e] == 64.0f);
}

/* The K-quant dots on these hand-built blocks equal sum(dequant(w) * y) for
 * activations that are exact in Q8_K (integers with amax 127 -> d = 1). */
static void test_kdots_exact(void **st) {
    (void)st;
    static const int types[] = {QT_Q2_K, QT_Q3_K, QT_Q4_K, QT_Q5_K, QT_Q6_K};
    uint64_t s = 15;
    float x[512], w[512];
    for (int i = 0; i < 512; i++) x[i] = (float)((int)(tu_rng(&s) % 255) - 127);
    x[0] = -127.0f;
    x[256] = -127.0f;
    blk_q8_K a[2];
    qt_quantize_act(QT_Q8_K, x, a, 512);
    assert_true(a[0].d == 1.0f && a[1].d == 1.0f);
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const int t = types[k];
        const size_t rb = qt_row_bytes(t, 512);
        uint8_t *q = malloc(rb);
        for (size_t i = 0; i < rb; i++) q[i] = (uint8_t)tu_rng(&s);
        /* d = 1/16 and dmin = 1/32 in every block: every partial sum stays exact in float */
        const size_t bytes = (size_t)qt_info(t)->bytes;
        for (int blk = 0; blk < 2; blk++) {
            uint8_t *p = q + blk * bytes;
            uint16_t d = h(1.0f / 16), dm = h(1.0f / 32);
            if (t == QT_Q2_K) memcpy(p + 80, &d, 2), memcpy(p + 82, &dm, 2);
            if (t == QT_Q3_K) memcpy(p + 108, &d, 2);
            if (t == QT_Q4_K || t == QT_Q5_K) memcpy(p, &d, 2), memcpy(p + 2, &dm, 2);
            if (t == QT_Q6_K) memcpy(p + 208, &d, 2);
        }
        qt_dequant_row(t, q, w, 512);
        double want = 0;
        for (int i = 0; i < 512; i++) want += (double)w[i] * x[i];
        assert_true(fabs(want) < 1 << 23); /* exact in float */
        assert_true(qt_vec_dot_ref(t, q, a, 512) == (float)want);
        assert_true(qt_vec_dot(t, q, a, 512) == (float)want);
        free(q);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q2_K),
        cmocka_unit_test(test_q3_K),
        cmocka_unit_test(test_q4_q5_K),
        cmocka_unit_test(test_q6_K),
        cmocka_unit_test(test_kdots_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
