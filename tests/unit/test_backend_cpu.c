// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* CPU backend: every op of backend.h against a naive double-precision
 * computation on random inputs with odd sizes, at 1 and 3 threads; matmul
 * and get_rows for every weight format quant.c can quantize. This file is
 * also the template for the CUDA backend's parity tests. */
#include "testutil.h"
#include "ref_attention.h"

#include <errno.h>
#include <math.h>

#include "engine/backend.h"
#include "engine/quant.h"

static eng_backend mkbe(int threads, uint64_t limit) {
    eng_backend b;
    char err[256];
    assert_int_equal(eng_backend_cpu_new(threads, limit, &b, err, sizeof err), 0);
    return b;
}

static float *randv(uint64_t *r, size_t n, float scale) {
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = tu_randf(r) * scale;
    return v;
}

static void test_memory(void **st) {
    (void)st;
    eng_backend b = mkbe(1, 10000);
    const eng_backend_ops *B = b.ops;
    assert_string_equal(B->name, "cpu");
    assert_string_equal(B->memory_architecture, "host");
    assert_int_equal(B->weights_in_place, 1);
    void *p = NULL, *q = NULL, *z = NULL;
    assert_int_equal(B->alloc(b.ctx, 6000, &p), 0);
    assert_int_equal((uintptr_t)p % 256, 0);
    assert_int_equal(B->mem_used(b.ctx), 6000);
    assert_int_equal(B->alloc(b.ctx, 5000, &q), -ENOMEM);
    assert_null(q);
    assert_int_equal(B->alloc(b.ctx, 4000, &z), 0);
    assert_int_equal(B->mem_used(b.ctx), 10000);
    char why[64];
    assert_int_equal(B->is_resident(b.ctx, p, why, sizeof why), 1);
    memset(p, 0x5a, 6000);
    assert_int_equal(B->zero(b.ctx, p, 6000), 0);
    for (int i = 0; i < 6000; i++) assert_int_equal(((unsigned char *)p)[i], 0);
    float src[3] = {1, 2, 3}, dst[3];
    assert_int_equal(B->upload(b.ctx, p, src, sizeof src), 0);
    assert_int_equal(B->download(b.ctx, dst, p, sizeof dst), 0);
    assert_memory_equal(src, dst, sizeof src);
    B->free(b.ctx, p);
    B->free(b.ctx, NULL);
    assert_int_equal(B->mem_used(b.ctx), 4000);
    B->free(b.ctx, z);
    assert_int_equal(B->mem_used(b.ctx), 0);
    assert_int_equal(B->sync(b.ctx), 0);
    B->destroy(b.ctx);
}

/* quantized weight [ne1][ne0] of `type` from random floats; also returns its dequantized copy */
static void *mkweight(int type, int64_t ne0, int64_t ne1, uint64_t *r, eng_w *w, float **deq) {
    size_t rb = qt_row_bytes(type, ne0);
    assert_true(rb > 0);
    char *data = malloc(rb * (size_t)ne1);
    *deq = malloc((size_t)(ne0 * ne1) * sizeof(float));
    float *src = randv(r, (size_t)ne0, 1.0f);
    for (int64_t o = 0; o < ne1; o++) {
        for (int64_t i = 0; i < ne0; i++) src[i] = tu_randf(r);
        assert_int_equal(qt_quantize_row(type, src, data + o * rb, ne0), 0);
        qt_dequant_row(type, data + o * rb, *deq + o * ne0, ne0);
    }
    free(src);
    w->data = data;
    w->type = type;
    w->ne0 = ne0;
    w->ne1 = ne1;
    w->ne2 = 1;
    w->nb1 = rb;
    w->nb2 = rb * (size_t)ne1;
    return data;
}

static int n_matmul_types_tested;

static void matmul_type(int type, int threads) {
    const qt_info_t *ti = qt_info(type);
    uint64_t r = 1000 + (uint64_t)type;
    const int64_t ne0 = ti->blck == 1 ? 67 : ti->blck * 3, ne1 = 37;
    eng_w w;
    float *deq;
    void *data = mkweight(type, ne0, ne1, &r, &w, &deq);
    eng_backend b = mkbe(threads, 0);
    const int vdt = ti->vec_dot_type;
    const size_t xrb = qt_row_bytes(vdt, ne0);
    float *xd = malloc((size_t)ne0 * sizeof *xd);
    void *xq = malloc(xrb);
    const int rows_list[3] = {1, 3, 5};
    for (int ri = 0; ri < 3; ri++) {
        const int rows = rows_list[ri];
        float *x = randv(&r, (size_t)(rows * ne0), 2.0f);
        float *y = malloc((size_t)(rows * ne1) * sizeof *y);
        b.ops->matmul(b.ctx, &w, x, y, rows);
        assert_int_equal(b.ops->sync(b.ctx), 0);
        for (int rr = 0; rr < rows; rr++) {
            const float *xr = x + rr * ne0;
            /* the activation as the dot sees it (quantized to vec_dot_type) */
            if (vdt == QT_F32) memcpy(xd, xr, (size_t)ne0 * sizeof *xd);
            else {
                qt_quantize_act(vdt, xr, xq, ne0);
                qt_dequant_row(vdt, xq, xd, ne0);
            }
            for (int64_t o = 0; o < ne1; o++) {
                double exact = 0, seen = 0, mag = 0;
                for (int64_t i = 0; i < ne0; i++) {
                    exact += (double)deq[o * ne0 + i] * xr[i];
                    seen += (double)deq[o * ne0 + i] * xd[i];
                    mag += fabs((double)deq[o * ne0 + i] * xr[i]);
                }
                const double got = y[rr * ne1 + o];
                /* tight: same quantized activation (Q8_1 also carries an fp16
                 * rounded block sum that the min term uses); loose: the f32 product */
                const double tight = vdt == QT_Q8_1 ? 2e-3 : 1e-4;
                if (fabs(got - seen) > tight * mag + 1e-5 || fabs(got - exact) > 0.02 * mag + 1e-4)
                    fail_msg("matmul %s threads %d rows %d: y[%d][%lld] = %g, want %g (f32 %g)", ti->name, threads,
                             rows, rr, (long long)o, got, seen, exact);
            }
        }
        free(x);
        free(y);
    }
    free(xd);
    free(xq);
    free(data);
    free(deq);
    b.ops->destroy(b.ctx);
    n_matmul_types_tested++;
}

static void test_matmul_all_types(void **st) {
    (void)st;
    n_matmul_types_tested = 0;
    for (int t = 0; t < QT__MAX; t++) {
        const qt_info_t *ti = qt_info(t);
        if (!ti || ti->vec_dot_type < 0 || !ti->can_quantize) continue;
        matmul_type(t, 1);
        matmul_type(t, 3);
    }
    /* F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, MXFP4 */
    assert_true(n_matmul_types_tested >= 2 * 14);
}

/* Prefill must not change any output's float additions: the multi-row
 * kernels (8 and 4 activation rows per weight row: Q4_0/Q5_0/Q8_0 with Q8_0
 * activations, Q4_K/Q5_K/Q6_K with Q8_K) give each output exactly what the
 * one-row path (decode) gives, bit for bit. 13 rows = a group of 8, one of 4
 * and one left over; ne1 37 (Q4_0's repacked path needs a multiple of 8) and
 * 40. F32 only at a width that is not a multiple of 8 (172, as stories260K's
 * ffn_down): at the others llama.cpp itself sums several rows through
 * tinyBLAS and one row through ggml_vec_dot_f32, and so do we. */
static void test_matmul_rows_bitwise(void **st) {
    (void)st;
    int tested = 0;
    for (int t = 0; t < QT__MAX; t++) {
        const qt_info_t *ti = qt_info(t);
        if (!ti || ti->vec_dot_type < 0 || !ti->can_quantize) continue;
        for (int threads = 1; threads <= 2; threads++)
            for (int64_t ne1 = 37; ne1 <= 40; ne1 += 3) {
                uint64_t r = 77 + (uint64_t)t;
                const int64_t ne0 = t == QT_F32 ? 172 : 768, rows = 13;
                eng_w w;
                float *deq;
                void *data = mkweight(t, ne0, ne1, &r, &w, &deq);
                eng_backend b = mkbe(threads, 0);
                float *x = randv(&r, (size_t)(rows * ne0), 2.0f);
                float *y = malloc((size_t)(rows * ne1) * sizeof *y), *y1 = malloc((size_t)ne1 * sizeof *y1);
                b.ops->matmul(b.ctx, &w, x, y, (int)rows);
                assert_int_equal(b.ops->sync(b.ctx), 0);
                for (int64_t rr = 0; rr < rows; rr++) {
                    b.ops->matmul(b.ctx, &w, x + rr * ne0, y1, 1);
                    assert_int_equal(b.ops->sync(b.ctx), 0);
                    for (int64_t o = 0; o < ne1; o++)
                        if (memcmp(&y[rr * ne1 + o], &y1[o], sizeof(float)) != 0)
                            fail_msg("matmul %s threads %d ne1 %lld: row %lld of %lld, y[%lld] = %a, one row %a",
                                     ti->name, threads, (long long)ne1, (long long)rr, (long long)rows, (long long)o,
                                     y[rr * ne1 + o], y1[o]);
                }
                free(x);
                free(y);
                free(y1);
                free(data);
                free(deq);
                b.ops->destroy(b.ctx);
                tested++;
            }
    }
    assert_true(tested >= 4 * 13);
}

static void test_get_rows_all_types(void **st) {
    (void)st;
    int tested = 0;
    for (int t = 0; t < QT__MAX; t++) {
        const qt_info_t *ti = qt_info(t);
        if (!ti || !ti->can_quantize) continue;
        uint64_t r = 77 + (uint64_t)t;
        const int64_t ne0 = ti->blck == 1 ? 45 : ti->blck * 3, ne1 = 29;
        eng_w w;
        float *deq;
        void *data = mkweight(t, ne0, ne1, &r, &w, &deq);
        eng_backend b = mkbe(3, 0);
        int32_t ids[7] = {28, 0, 5, 5, 17, 1, 28};
        float *out = malloc(7 * (size_t)ne0 * sizeof *out);
        b.ops->get_rows(b.ctx, &w, ids, 7, out);
        assert_int_equal(b.ops->sync(b.ctx), 0);
        for (int i = 0; i < 7; i++)
            for (int64_t j = 0; j < ne0; j++)
                if (out[i * ne0 + j] != deq[ids[i] * ne0 + j])
                    fail_msg("get_rows %s: row %d elem %lld", ti->name, i, (long long)j);
        /* an id out of range is latched, never read */
        int32_t bad[1] = {29};
        b.ops->get_rows(b.ctx, &w, bad, 1, out);
        assert_int_equal(b.ops->sync(b.ctx), -EINVAL);
        assert_int_equal(b.ops->sync(b.ctx), 0);
        free(out);
        free(data);
        free(deq);
        b.ops->destroy(b.ctx);
        tested++;
    }
    assert_true(tested >= 14);
}

static void test_rmsnorm(void **st) {
    (void)st;
    uint64_t r = 5;
    const int rows = 7, dim = 333;
    float *x = randv(&r, rows * dim, 3.0f), *g = randv(&r, dim, 1.5f);
    float *y = malloc(rows * dim * sizeof *y), *y2 = malloc(rows * dim * sizeof *y2);
    for (int th = 1; th <= 3; th += 2) {
        eng_backend b = mkbe(th, 0);
        b.ops->rmsnorm(b.ctx, x, g, y, rows, dim, 1e-5f);
        b.ops->rmsnorm(b.ctx, x, NULL, y2, rows, dim, 1e-5f);
        for (int rr = 0; rr < rows; rr++) {
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += (double)x[rr * dim + i] * x[rr * dim + i];
            double sc = 1.0 / sqrt(ss / dim + 1e-5);
            for (int i = 0; i < dim; i++) {
                assert_float_equal(y[rr * dim + i], x[rr * dim + i] * sc * g[i], 1e-5 * (1 + fabs(x[rr * dim + i] * sc * g[i])));
                assert_float_equal(y2[rr * dim + i], x[rr * dim + i] * sc, 1e-5 * (1 + fabs(x[rr * dim + i] * sc)));
            }
        }
        /* in place */
        float *xc = malloc(rows * dim * sizeof *xc);
        memcpy(xc, x, rows * dim * sizeof *xc);
        b.ops->rmsnorm(b.ctx, xc, g, xc, rows, dim, 1e-5f);
        assert_memory_equal(xc, y, rows * dim * sizeof *xc);
        free(xc);
        b.ops->destroy(b.ctx);
    }
    free(x);
    free(g);
    free(y);
    free(y2);
}

static void test_add_bias_add(void **st) {
    (void)st;
    uint64_t r = 6;
    const int rows = 5, dim = 19, ld = 31;
    float *y = randv(&r, rows * ld, 1.0f), *b0 = randv(&r, dim, 1.0f), *y0 = malloc(rows * ld * sizeof *y0);
    memcpy(y0, y, rows * ld * sizeof *y0);
    eng_backend b = mkbe(3, 0);
    b.ops->add_bias(b.ctx, y, ld, b0, rows, dim);
    for (int rr = 0; rr < rows; rr++)
        for (int i = 0; i < ld; i++)
            assert_true(y[rr * ld + i] == (i < dim ? y0[rr * ld + i] + b0[i] : y0[rr * ld + i]));
    float *a = randv(&r, 101, 1.0f), *c = randv(&r, 101, 1.0f), *c0 = malloc(101 * sizeof *c0);
    memcpy(c0, c, 101 * sizeof *c0);
    b.ops->add(b.ctx, c, a, 101);
    for (int i = 0; i < 101; i++) assert_true(c[i] == c0[i] + a[i]);
    b.ops->destroy(b.ctx);
    free(y);
    free(b0);
    free(y0);
    free(a);
    free(c);
    free(c0);
}

/* rope reference in double, ggml semantics incl. YaRN */
static void rope_ref(double *x, int pos, int n_rot, const eng_rope *p, int neox) {
    double corr0 = 0, corr1 = 0;
    if (p->ext_factor != 0) {
        double cd_fast = n_rot * log(p->n_ctx_orig / (p->beta_fast * 2 * M_PI)) / (2 * log(p->freq_base));
        double cd_slow = n_rot * log(p->n_ctx_orig / (p->beta_slow * 2 * M_PI)) / (2 * log(p->freq_base));
        corr0 = fmax(0, floor(cd_fast));
        corr1 = fmin(n_rot - 1, ceil(cd_slow));
    }
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        double th_e = pos * pow(p->freq_base, -(double)i0 / n_rot);
        if (p->freq_factors) th_e /= p->freq_factors[i0 / 2];
        double th_i = p->freq_scale * th_e, th = th_i, ms = p->attn_factor;
        if (p->ext_factor != 0) {
            double y = (i0 / 2 - corr0) / fmax(0.001, corr1 - corr0);
            double mix = (1 - fmin(1, fmax(0, y))) * p->ext_factor;
            th = th_i * (1 - mix) + th_e * mix;
            ms *= 1 + 0.1 * log(1 / p->freq_scale);
        }
        int j0 = neox ? i0 / 2 : i0, j1 = neox ? i0 / 2 + n_rot / 2 : i0 + 1;
        double a = x[j0], b = x[j1];
        x[j0] = a * cos(th) * ms - b * sin(th) * ms;
        x[j1] = a * sin(th) * ms + b * cos(th) * ms;
    }
}

static void rope_case(int neox, int n_rot, const float *ff, float freq_scale, float ext) {
    uint64_t r = 9;
    const int rows = 4, n_head = 3, hd = 20, ld = 70;
    int32_t pos[4] = {0, 7, 100, 3};
    eng_rope p = {n_rot, neox, 10000.0f, freq_scale, ff, ext, 1.0f, 32.0f, 1.0f, 512};
    float *x = randv(&r, rows * ld, 1.0f), *x0 = malloc(rows * ld * sizeof *x0);
    memcpy(x0, x, rows * ld * sizeof *x0);
    eng_backend b = mkbe(3, 0);
    b.ops->rope(b.ctx, x, ld, pos, rows, n_head, hd, &p);
    assert_int_equal(b.ops->sync(b.ctx), 0);
    for (int rr = 0; rr < rows; rr++) {
        for (int h = 0; h < n_head; h++) {
            double ref[20];
            for (int i = 0; i < hd; i++) ref[i] = x0[rr * ld + h * hd + i];
            rope_ref(ref, pos[rr], n_rot, &p, neox);
            for (int i = 0; i < hd; i++)
                if (fabs(x[rr * ld + h * hd + i] - ref[i]) > 2e-4)
                    fail_msg("rope neox %d n_rot %d row %d head %d dim %d: %g vs %g", neox, n_rot, rr, h, i,
                             x[rr * ld + h * hd + i], ref[i]);
        }
        for (int i = n_head * hd; i < ld; i++) assert_true(x[rr * ld + i] == x0[rr * ld + i]); /* beyond heads */
    }
    b.ops->destroy(b.ctx);
    free(x);
    free(x0);
}

static void test_rope(void **st) {
    (void)st;
    float ff[10] = {1, 1.5f, 2, 3, 1, 1, 4, 8, 1, 2};
    rope_case(0, 20, NULL, 1.0f, 0);
    rope_case(1, 20, NULL, 1.0f, 0);
    rope_case(0, 12, NULL, 1.0f, 0); /* partial rotation */
    rope_case(1, 12, NULL, 1.0f, 0);
    rope_case(1, 20, ff, 1.0f, 0);   /* frequency factors */
    rope_case(0, 20, NULL, 0.25f, 0); /* linear scaling */
    rope_case(1, 20, NULL, 0.25f, 1.0f); /* YaRN */
}

static void test_kv_store(void **st) {
    (void)st;
    uint64_t r = 10;
    const int rows = 3, kv = 21, ld = 50, n_ctx = 9;
    int32_t pos[3] = {4, 0, 8};
    float *k = randv(&r, rows * ld, 4.0f), *v = randv(&r, rows * ld, 4.0f);
    uint16_t kc[9 * 21], vc[9 * 21];
    memset(kc, 0xff, sizeof kc);
    memset(vc, 0xff, sizeof vc);
    eng_backend b = mkbe(1, 0);
    b.ops->kv_store(b.ctx, kc, vc, k, v, ld, pos, rows, kv);
    for (int t = 0; t < n_ctx; t++) {
        int rr = -1;
        for (int i = 0; i < rows; i++)
            if (pos[i] == t) rr = i;
        for (int i = 0; i < kv; i++) {
            if (rr < 0) {
                assert_int_equal(kc[t * kv + i], 0xffff);
                continue;
            }
            assert_int_equal(kc[t * kv + i], qt_f32_to_f16(k[rr * ld + i]));
            assert_int_equal(vc[t * kv + i], qt_f32_to_f16(v[rr * ld + i]));
        }
    }
    b.ops->destroy(b.ctx);
    free(k);
    free(v);
}

/* The CPU attention is llama.cpp's CPU flash attention: q rounded to fp16
 * (the reference does that too), the softmax-weighted sum of v accumulated
 * in an fp16 vector (one rounding, relative 2^-11, per key: up to 151 here),
 * so it is checked against the exact double result to 4e-3, not 1e-5. */
#define ATT_TOL 4e-3

static void attention_case(int hd, int n_head, int n_head_kv, int threads) {
    uint64_t r = 11 + (uint64_t)hd;
    const int rows = 4, n_ctx = 160, kv = n_head_kv * hd, ld_q = n_head * hd + 5;
    int32_t pos[4] = {0, 63, 64, 150}; /* one key, a full block, a block boundary, several blocks */
    float *q = randv(&r, rows * ld_q, 1.0f);
    uint16_t *kc = malloc(n_ctx * kv * sizeof *kc), *vc = malloc(n_ctx * kv * sizeof *vc);
    for (int i = 0; i < n_ctx * kv; i++) {
        kc[i] = qt_f32_to_f16(tu_randf(&r) * 2);
        vc[i] = qt_f32_to_f16(tu_randf(&r) * 2);
    }
    float *out = malloc(rows * n_head * hd * sizeof *out);
    const float scale = 1.0f / sqrtf((float)hd);
    eng_backend b = mkbe(threads, 0);
    b.ops->attention(b.ctx, q, ld_q, kc, vc, pos, rows, n_head, n_head_kv, hd, scale, out);
    assert_int_equal(b.ops->sync(b.ctx), 0);
    double *s = malloc(n_ctx * sizeof *s), *o = malloc(hd * sizeof *o);
    for (int rr = 0; rr < rows; rr++) {
        for (int h = 0; h < n_head; h++) {
            int kvh = h / (n_head / n_head_kv);
            ref_attention_row(q + rr * ld_q + h * hd, kc, vc, kv, kvh * hd, hd, 0, pos[rr], scale, NULL, s, o);
            for (int i = 0; i < hd; i++) {
                float got = out[rr * n_head * hd + h * hd + i];
                if (fabs(got - o[i]) > ATT_TOL * (1 + fabs(o[i])))
                    fail_msg("attention hd %d row %d head %d dim %d: %g vs %g", hd, rr, h, i, got, o[i]);
            }
        }
    }
    free(o);
    b.ops->destroy(b.ctx);
    free(q);
    free(kc);
    free(vc);
    free(out);
    free(s);
}

static void test_attention(void **st) {
    (void)st;
    attention_case(20, 6, 2, 1); /* GQA 3:1, head dim not a multiple of 8 */
    attention_case(20, 6, 2, 3);
    attention_case(64, 4, 4, 3); /* MHA */
    attention_case(8, 3, 1, 2);  /* MQA */
}

static void test_swiglu(void **st) {
    (void)st;
    uint64_t r = 12;
    const int rows = 3, dim = 45, ld = 90;
    float *gu = randv(&r, rows * ld, 5.0f), *out = malloc(rows * dim * sizeof *out);
    eng_backend b = mkbe(3, 0);
    b.ops->swiglu(b.ctx, gu, gu + dim, ld, out, rows, dim); /* fused layout: gate | up */
    for (int rr = 0; rr < rows; rr++)
        for (int i = 0; i < dim; i++) {
            double g = gu[rr * ld + i], u = gu[rr * ld + dim + i];
            double want = g / (1 + exp(-g)) * u;
            assert_float_equal(out[rr * dim + i], want, 1e-5 * (1 + fabs(want)));
        }
    b.ops->destroy(b.ctx);
    free(gu);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_matmul_all_types),
        cmocka_unit_test(test_matmul_rows_bitwise),
        cmocka_unit_test(test_get_rows_all_types),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_add_bias_add),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_kv_store),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_swiglu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
