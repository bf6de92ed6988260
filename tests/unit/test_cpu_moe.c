// test-libs: llorch_engine llorch_quant llorch_tok llorch_gguf llorch_core
/* CPU backend, gpt-oss ops (backend.h's gpt-oss block): moe_route,
 * matmul_id, swiglu_oai, moe_sum and attention_ext (sinks, sliding window)
 * against naive double-precision computations, at 1 and 3 threads. The
 * whole forward pass is compared with llama.cpp in test_engine_gptoss. */
#include "testutil.h"
#include "ref_attention.h"

#include <math.h>

#include "engine/backend.h"
#include "engine/quant.h"

static eng_backend mkbe(int threads) {
    eng_backend b;
    char err[256];
    assert_int_equal(eng_backend_cpu_new(threads, 0, &b, err, sizeof err), 0);
    return b;
}

static void test_moe_route(void **st) {
    (void)st;
    eng_backend b = mkbe(1);
    /* row 0: distinct; row 1: a tie between experts 1 and 4 (lower index first) */
    const float logits[2][6] = {{0.5f, -1.0f, 2.0f, 1.5f, -3.0f, 0.0f}, {0.0f, 3.0f, -1.0f, 1.0f, 3.0f, 2.0f}};
    int32_t ids[2][3];
    float w[2][3];
    b.ops->moe_route(b.ctx, &logits[0][0], 2, 6, 3, &ids[0][0], &w[0][0]);
    assert_int_equal(b.ops->sync(b.ctx), 0);
    const int32_t want[2][3] = {{2, 3, 0}, {1, 4, 5}};
    for (int r = 0; r < 2; r++) {
        double z = 0;
        for (int j = 0; j < 3; j++) z += exp((double)logits[r][want[r][j]] - logits[r][want[r][0]]);
        for (int j = 0; j < 3; j++) {
            assert_int_equal(ids[r][j], want[r][j]);
            double p = exp((double)logits[r][want[r][j]] - logits[r][want[r][0]]) / z;
            assert_float_equal(w[r][j], p, 1e-6);
        }
    }
    /* k > n_expert is our bug: latched */
    b.ops->moe_route(b.ctx, &logits[0][0], 1, 2, 3, &ids[0][0], &w[0][0]);
    assert_int_not_equal(b.ops->sync(b.ctx), 0);
    b.ops->destroy(b.ctx);
}

/* matmul_id == the plain matmul of the selected expert's matrix, bitwise
 * (same kernel), with the bias added; both input layouts (n_x 1 and k) */
static void matmul_id_case(int type, int threads) {
    uint64_t r = 5 + (uint64_t)type;
    const int ne0 = 64, ne1 = 24, X = 5, K = 3, rows = 7;
    const size_t rb = qt_row_bytes(type, ne0);
    char *wd = malloc(rb * ne1 * X);
    float *row = malloc(ne0 * sizeof *row);
    for (int i = 0; i < ne1 * X; i++) {
        for (int j = 0; j < ne0; j++) row[j] = tu_randf(&r);
        assert_int_equal(qt_quantize_row(type, row, wd + (size_t)i * rb, ne0), 0);
    }
    eng_w w = {wd, type, ne0, ne1, X, rb, rb * ne1};
    float *bias = malloc(X * ne1 * sizeof *bias), *x = malloc(rows * K * ne0 * sizeof *x);
    for (int i = 0; i < X * ne1; i++) bias[i] = tu_randf(&r);
    for (int i = 0; i < rows * K * ne0; i++) x[i] = tu_randf(&r);
    int32_t ids[7 * 3];
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < K; j++) ids[i * K + j] = (int32_t)((i * 2 + j * 3) % X); /* distinct per row */
    float *y = malloc(rows * K * ne1 * sizeof *y), *ref = malloc(ne1 * sizeof *ref);
    eng_backend b = mkbe(threads);
    for (int n_x = 1; n_x <= K; n_x += K - 1) {
        b.ops->matmul_id(b.ctx, &w, x, n_x, ids, K, bias, y, rows);
        assert_int_equal(b.ops->sync(b.ctx), 0);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < K; j++) {
                eng_w we = w;
                we.data = wd + (size_t)ids[i * K + j] * w.nb2;
                we.ne2 = 1;
                b.ops->matmul(b.ctx, &we, x + (size_t)(i * n_x + (n_x == 1 ? 0 : j)) * ne0, ref, 1);
                for (int o = 0; o < ne1; o++)
                    assert_true(y[(i * K + j) * ne1 + o] == ref[o] + bias[ids[i * K + j] * ne1 + o]);
            }
    }
    /* an expert id out of range is refused (latched), not read */
    ids[3] = X;
    b.ops->matmul_id(b.ctx, &w, x, 1, ids, K, NULL, y, rows);
    assert_int_not_equal(b.ops->sync(b.ctx), 0);
    b.ops->destroy(b.ctx);
    free(wd);
    free(row);
    free(bias);
    free(x);
    free(y);
    free(ref);
}

static void test_matmul_id(void **st) {
    (void)st;
    matmul_id_case(QT_MXFP4, 1);
    matmul_id_case(QT_MXFP4, 3);
    matmul_id_case(QT_Q8_0, 3);
    matmul_id_case(QT_F16, 2);
}

static void test_swiglu_oai_and_sum(void **st) {
    (void)st;
    uint64_t r = 9;
    const int n = 1000;
    float *g = malloc(n * sizeof *g), *u = malloc(n * sizeof *u), *o = malloc(n * sizeof *o);
    for (int i = 0; i < n; i++) {
        g[i] = tu_randf(&r) * 12; /* beyond the clamp of 7 both ways */
        u[i] = tu_randf(&r) * 12;
    }
    eng_backend b = mkbe(3);
    b.ops->swiglu_oai(b.ctx, g, u, o, n, 1.702f, 7.0f);
    assert_int_equal(b.ops->sync(b.ctx), 0);
    for (int i = 0; i < n; i++) {
        double x = g[i] < 7 ? g[i] : 7, y = u[i] < -7 ? -7 : u[i] > 7 ? 7 : u[i];
        double want = x / (1 + exp(-1.702 * x)) * (y + 1);
        assert_float_equal(o[i], want, 1e-5 * (1 + fabs(want)));
    }
    /* moe_sum: rows 3, k 4, dim 5 */
    float e[3 * 4 * 5], w[3 * 4], out[3 * 5];
    for (int i = 0; i < 60; i++) e[i] = tu_randf(&r);
    for (int i = 0; i < 12; i++) w[i] = tu_randf(&r);
    b.ops->moe_sum(b.ctx, e, w, 3, 4, 5, out);
    for (int rr = 0; rr < 3; rr++)
        for (int i = 0; i < 5; i++) {
            double s = 0;
            for (int j = 0; j < 4; j++) s += (double)w[rr * 4 + j] * e[(rr * 4 + j) * 5 + i];
            assert_float_equal(out[rr * 5 + i], s, 1e-6);
        }
    b.ops->destroy(b.ctx);
    free(g);
    free(u);
    free(o);
}

/* attention_ext against exact attention with a sink logit and a window;
 * tolerance as test_backend_cpu's attention (fp16 q and accumulator) */
#define ATT_TOL 4e-3
static void attention_ext_case(int hd, int n_head, int n_head_kv, int window, int with_sinks, int threads) {
    uint64_t r = 17 + (uint64_t)hd + (uint64_t)window;
    const int rows = 5, n_ctx = 160, kv = n_head_kv * hd, ld_q = n_head * hd + 3;
    int32_t pos[5] = {0, 5, 16, 17, 150}; /* inside, at and past the window */
    float *q = malloc(rows * ld_q * sizeof *q), sinks[8];
    for (int i = 0; i < rows * ld_q; i++) q[i] = tu_randf(&r);
    for (int h = 0; h < n_head; h++) sinks[h] = tu_randf(&r) * 3;
    uint16_t *kc = malloc(n_ctx * kv * sizeof *kc), *vc = malloc(n_ctx * kv * sizeof *vc);
    for (int i = 0; i < n_ctx * kv; i++) {
        kc[i] = qt_f32_to_f16(tu_randf(&r) * 2);
        vc[i] = qt_f32_to_f16(tu_randf(&r) * 2);
    }
    float *out = malloc(rows * n_head * hd * sizeof *out);
    const float scale = 1.0f / sqrtf((float)hd);
    eng_backend b = mkbe(threads);
    b.ops->attention_ext(b.ctx, q, ld_q, kc, vc, pos, rows, n_head, n_head_kv, hd, scale, with_sinks ? sinks : NULL,
                         window, out);
    assert_int_equal(b.ops->sync(b.ctx), 0);
    double s[160], o[64];
    assert_true(hd <= 64);
    for (int rr = 0; rr < rows; rr++)
        for (int h = 0; h < n_head; h++) {
            const int kvh = h / (n_head / n_head_kv);
            const int t0 = window && pos[rr] + 1 > window ? pos[rr] + 1 - window : 0;
            ref_attention_row(q + rr * ld_q + h * hd, kc, vc, kv, kvh * hd, hd, t0, pos[rr], scale,
                              with_sinks ? &sinks[h] : NULL, s, o);
            for (int i = 0; i < hd; i++) {
                const float got = out[rr * n_head * hd + h * hd + i];
                if (fabs(got - o[i]) > ATT_TOL * (1 + fabs(o[i])))
                    fail_msg("attention_ext hd %d window %d sinks %d row %d head %d dim %d: %g vs %g", hd, window,
                             with_sinks, rr, h, i, got, o[i]);
            }
        }
    b.ops->destroy(b.ctx);
    free(q);
    free(kc);
    free(vc);
    free(out);
}

static void test_attention_ext(void **st) {
    (void)st;
    attention_ext_case(64, 4, 2, 16, 1, 1);
    attention_ext_case(64, 4, 2, 16, 1, 3);
    attention_ext_case(20, 6, 3, 0, 1, 2); /* sinks, full attention */
    attention_ext_case(20, 6, 3, 7, 0, 2); /* window, no sinks */
    attention_ext_case(8, 3, 1, 1, 1, 1);  /* window of one: the key itself and the sink */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moe_route),
        cmocka_unit_test(test_matmul_id),
        cmocka_unit_test(test_swiglu_oai_and_sum),
        cmocka_unit_test(test_attention_ext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
