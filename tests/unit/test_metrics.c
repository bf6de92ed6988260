// test-libs: llorch_net llorch_core
/* metrics: registry rendering and the exposition-text validator */
#include "testutil.h"

#include "common/metrics.h"

static void test_render(void **st) {
    (void)st;
    metrics_registry *r = metrics_new("component=\"worker\"");
    const char *outcome[] = {"outcome", NULL};
    metrics_family *req = metrics_counter(r, "worker_requests_total", "Requests by outcome", outcome);
    metrics_family *tok = metrics_counter(r, "worker_tokens_generated_total", "Tokens", NULL);
    metrics_family *vram = metrics_gauge(r, "worker_vram_bytes", "VRAM", NULL);
    double b[] = {10, 100, 1000};
    metrics_family *dur = metrics_histogram(r, "worker_inference_duration_ms", "Duration", NULL, b, 3);
    double fb[] = {0.05, 0.1, 2.5};
    assert_non_null(metrics_histogram(r, "frac_seconds", "fractional bounds", NULL, fb, 3));
    assert_non_null(req);
    assert_non_null(dur);
    assert_null(metrics_counter(r, "bad name", "x", NULL));
    double bad[] = {2, 1};
    assert_null(metrics_histogram(r, "h2", "x", NULL, bad, 2));

    struct util_sb sb;
    util_sb_init(&sb);
    metrics_render(r, &sb); /* empty: unlabelled families still show 0 */
    char err[256];
    int n = metrics_text_validate(sb.buf, err, sizeof err);
    assert_true(n > 0);
    assert_non_null(strstr(sb.buf, "worker_tokens_generated_total{component=\"worker\"} 0\n"));
    util_sb_free(&sb);

    const char *ok[] = {"ok"}, *q[] = {"we\"ird\\"};
    metrics_add(req, ok, 1);
    metrics_add(req, ok, 2);
    metrics_add(req, q, 1);
    metrics_add(tok, NULL, 42);
    metrics_set(vram, NULL, 1234567890123.0);
    metrics_observe(dur, NULL, 5);
    metrics_observe(dur, NULL, 50);
    metrics_observe(dur, NULL, 5000);
    assert_true(metrics_value(req, ok) == 3.0);
    assert_true(metrics_value(dur, NULL) == 3.0);
    util_sb_init(&sb);
    metrics_render(r, &sb);
    n = metrics_text_validate(sb.buf, err, sizeof err);
    if (n < 0) fail_msg("%s\n%s", err, sb.buf);
    assert_non_null(strstr(sb.buf, "# TYPE worker_requests_total counter\n"));
    assert_non_null(strstr(sb.buf, "worker_requests_total{component=\"worker\",outcome=\"ok\"} 3\n"));
    assert_non_null(strstr(sb.buf, "outcome=\"we\\\"ird\\\\\"} 1\n"));
    assert_non_null(strstr(sb.buf, "worker_vram_bytes{component=\"worker\"} 1234567890123\n"));
    assert_non_null(strstr(sb.buf, "worker_inference_duration_ms_bucket{component=\"worker\",le=\"10\"} 1\n"));
    /* bounds print in their shortest exact form, not 0.050000000000000003 */
    assert_non_null(strstr(sb.buf, "frac_seconds_bucket{component=\"worker\",le=\"0.05\"} 0\n"));
    assert_non_null(strstr(sb.buf, "frac_seconds_bucket{component=\"worker\",le=\"0.1\"} 0\n"));
    assert_non_null(strstr(sb.buf, "worker_inference_duration_ms_bucket{component=\"worker\",le=\"100\"} 2\n"));
    assert_non_null(strstr(sb.buf, "worker_inference_duration_ms_bucket{component=\"worker\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(sb.buf, "worker_inference_duration_ms_sum{component=\"worker\"} 5055\n"));
    assert_non_null(strstr(sb.buf, "worker_inference_duration_ms_count{component=\"worker\"} 3\n"));
    util_sb_free(&sb);
    metrics_free(r);
}

static void test_validator_rejects(void **st) {
    (void)st;
    char err[256];
    const char *bad[] = {
        "x 1\n",                                                 /* no TYPE */
        "# TYPE x counter\nx -1\n",                               /* negative counter */
        "# TYPE x gauge\nx{a=\"b} 1\n",                           /* unterminated label */
        "# TYPE x gauge\nx{a=b} 1\n",                             /* unquoted */
        "# TYPE x gauge\nx one\n",                                /* bad value */
        "# TYPE x gauge\nx 1",                                    /* no final newline */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n", /* not cumulative */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n", /* count mismatch */
        "# TYPE x gauge\n# TYPE x gauge\nx 1\n",                  /* two TYPE lines */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (metrics_text_validate(bad[i], err, sizeof err) >= 0) fail_msg("accepted bad text %zu", i);
    }
    assert_int_equal(metrics_text_validate("# HELP x y\n# TYPE x gauge\nx{a=\"1\",b=\"2\"} 1.5e3 1700000000000\n", err,
                                           sizeof err),
                     1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_validator_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
