// test-libs: llorch_net llorch_core
/* json_util: strict typed extraction for request validation */
#include "testutil.h"

#include "common/json_util.h"

static json_t *obj(const char *s) {
    ju_err e;
    json_t *o = ju_parse_object(s, strlen(s), &e);
    if (!o) fail_msg("%s", e.message);
    return o;
}

static void test_parse(void **st) {
    (void)st;
    ju_err e;
    assert_null(ju_parse_object("[1]", 3, &e));
    assert_string_equal(e.field, "body");
    assert_null(ju_parse_object("{\"a\":1,\"a\":2}", 13, &e)); /* duplicate keys */
    assert_null(ju_parse_object("{\"a\":\"\xff\"}", 9, &e));   /* invalid UTF-8 */
    assert_null(ju_parse_object("", 0, &e));
    char d[128];
    ju_fail(&e, "x\"y", "bad");
    ju_err_details(&e, d, sizeof d);
    assert_string_equal(d, "{\"field\":\"x\\\"y\"}");
}

static void test_getters(void **st) {
    (void)st;
    json_t *o = obj("{\"s\":\"abc\",\"i\":5,\"f\":2.0,\"g\":2.5,\"b\":true,\"n\":null,\"big\":\"18446744073709551615\","
                    "\"neg\":-1,\"a\":[1,2]}");
    ju_err e;
    const char *s;
    size_t sl;
    int64_t i;
    uint64_t u;
    double d;
    int b;
    json_t *a;
    assert_int_equal(ju_string(o, "s", 1, 0, &s, &sl, &e), 1);
    assert_int_equal(sl, 3);
    assert_int_equal(ju_string(o, "s", 1, 2, &s, &sl, &e), -1);
    assert_int_equal(ju_string(o, "i", 1, 0, &s, &sl, &e), -1);
    assert_string_equal(e.field, "i");
    assert_int_equal(ju_string(o, "n", 0, 0, &s, &sl, &e), 0); /* null = absent */
    assert_int_equal(ju_string(o, "n", 1, 0, &s, &sl, &e), -1);
    assert_int_equal(ju_int(o, "i", 1, 0, 10, &i, &e), 1);
    assert_int_equal(i, 5);
    assert_int_equal(ju_int(o, "i", 1, 6, 10, &i, &e), -1);
    assert_int_equal(ju_int(o, "f", 1, 0, 10, &i, &e), 1); /* 2.0 is an integer */
    assert_int_equal(ju_int(o, "g", 1, 0, 10, &i, &e), -1);
    assert_int_equal(ju_int(o, "b", 1, 0, 10, &i, &e), -1);
    assert_int_equal(ju_uint64(o, "big", 1, &u, &e), 1);
    assert_true(u == UINT64_MAX);
    assert_int_equal(ju_uint64(o, "neg", 1, &u, &e), -1);
    assert_int_equal(ju_uint64(o, "i", 1, &u, &e), 1);
    assert_int_equal(ju_number(o, "g", 1, 0, 2.5, 0, &d, &e), 1);
    assert_int_equal(ju_number(o, "g", 1, 0, 2.4, 0, &d, &e), -1);
    assert_int_equal(ju_number(o, "i", 1, 5, 6, 1, &d, &e), -1); /* open lower bound */
    assert_int_equal(ju_number(o, "s", 1, 0, 1, 0, &d, &e), -1);
    assert_int_equal(ju_bool(o, "b", 1, &b, &e), 1);
    assert_true(b);
    assert_int_equal(ju_bool(o, "i", 1, &b, &e), -1);
    assert_int_equal(ju_array(o, "a", 1, 2, &a, &e), 1);
    assert_int_equal(ju_array(o, "a", 1, 1, &a, &e), -1);
    assert_int_equal(ju_array(o, "missing", 0, 1, &a, &e), 0);
    assert_int_equal(ju_array(o, "missing", 1, 1, &a, &e), -1);
    assert_non_null(strstr(e.message, "missing"));
    json_decref(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
