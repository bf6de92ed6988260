// test-libs: llorch_core
/* common: error table, JSON error body, string builder, UTF-8 helpers */
#include "testutil.h"

#include "common/err.h"
#include "common/util.h"

static void test_err_table(void **st) {
    (void)st;
    assert_string_equal(err_name(ERR_QUEUE_FULL), "QUEUE_FULL");
    assert_int_equal(err_http_status(ERR_QUEUE_FULL), 429);
    assert_int_equal(err_http_status(ERR_CANCELLED), 499);
    assert_int_equal(err_parse("VRAM_OOM"), ERR_VRAM_OOM);
    assert_int_equal(err_parse("NOPE"), -1);
    for (int i = 1; i < ERR__COUNT; i++) assert_int_equal(err_parse(err_name(i)), i);
}

static void test_err_body(void **st) {
    (void)st;
    char buf[512];
    err_json_body(ERR_INVALID_REQUEST, "bad \"top_p\"", "{\"field\":\"top_p\"}", "abc-1", buf, sizeof buf);
    assert_string_equal(buf, "{\"error\":{\"code\":\"INVALID_REQUEST\",\"message\":\"bad \\\"top_p\\\"\","
                             "\"details\":{\"field\":\"top_p\"},\"correlation_id\":\"abc-1\"}}");
}

static void test_sb(void **st) {
    (void)st;
    char small[8];
    struct util_sb sb;
    util_sb_init_fixed(&sb, small, sizeof small);
    util_sb_puts(&sb, "0123456789");
    assert_int_equal(sb.len, 7);
    assert_true(sb.trunc);
    assert_string_equal(small, "0123456");
    util_sb_init(&sb);
    for (int i = 0; i < 1000; i++) util_sb_printf(&sb, "%d,", i);
    assert_int_equal(sb.len, 3890);
    util_sb_free(&sb);
    char j[64];
    util_sb_init_fixed(&sb, j, sizeof j);
    util_sb_json_strn(&sb, "a\n\x01\xff\xc3\xa9", 6);
    assert_string_equal(j, "\"a\\n\\u0001\\ufffd\xc3\xa9\"");
}

static void test_utf8(void **st) {
    (void)st;
    uint32_t cp = 0;
    assert_int_equal(util_utf8_decode("\xe2\x82\xac", 3, &cp), 3);
    assert_int_equal(cp, 0x20AC);
    assert_int_equal(util_utf8_decode("\xe2\x82", 2, &cp), 0);      /* incomplete */
    assert_int_equal(util_utf8_decode("\xc0\x80", 2, &cp), 0);      /* overlong */
    assert_int_equal(util_utf8_decode("\xed\xa0\x80", 3, &cp), 0);  /* surrogate */
    assert_int_equal(util_utf8_valid_prefix("ab\xf0\x9f\x98", 5), 2);
    char out[4];
    assert_int_equal(util_utf8_encode(0x1F600, out), 4);
    assert_memory_equal(out, "\xf0\x9f\x98\x80", 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_table), cmocka_unit_test(test_err_body),
        cmocka_unit_test(test_sb), cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
