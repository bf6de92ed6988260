// test-libs: llorch_net llorch_core
/* sse: formatting, and the incremental parser fed every possible split */
#include "testutil.h"

#include "common/sse.h"

struct got {
    int n;
    char ev[8][32];
    char id[8][32];
    char data[8][256];
    int stop_after;
};

static int on_ev(void *u, const sse_event *e) {
    struct got *g = u;
    if (g->n < 8) {
        snprintf(g->ev[g->n], 32, "%s", e->event);
        snprintf(g->id[g->n], 32, "%s", e->id);
        snprintf(g->data[g->n], 256, "%s", e->data);
    }
    g->n++;
    return g->stop_after && g->n >= g->stop_after;
}

static void test_format(void **st) {
    (void)st;
    struct util_sb sb;
    util_sb_init(&sb);
    sse_format(&sb, 3, "token", "{\"t\":\"a\"}");
    sse_format(&sb, -1, NULL, "l1\nl2");
    sse_format_comment(&sb, "ka");
    assert_string_equal(sb.buf, "id: 3\nevent: token\ndata: {\"t\":\"a\"}\n\ndata: l1\ndata: l2\n\n: ka\n\n");
    util_sb_free(&sb);
}

static const char *STREAM = ": hello\r\n\r\nid: 1\r\nevent: started\r\ndata: {\"a\":1}\r\n\r\n"
                            "id: 2\nevent: token\ndata:x\ndata: y\n\n"
                            "retry: 10\rdata: z\r\r"
                            "event: end\ndata\n\n";

static void check(struct got *g) {
    assert_int_equal(g->n, 4);
    assert_string_equal(g->ev[0], "started");
    assert_string_equal(g->id[0], "1");
    assert_string_equal(g->data[0], "{\"a\":1}");
    assert_string_equal(g->ev[1], "token");
    assert_string_equal(g->data[1], "x\ny");
    assert_string_equal(g->ev[2], "message"); /* no event: field */
    assert_string_equal(g->id[2], "2");       /* last id persists */
    assert_string_equal(g->data[2], "z");
    assert_string_equal(g->ev[3], "end");
    assert_string_equal(g->data[3], "");
}

static void test_parse_all_splits(void **st) {
    (void)st;
    size_t n = strlen(STREAM);
    for (size_t cut = 0; cut <= n; cut++) {
        struct got g = {0};
        sse_parser *p = sse_parser_new(on_ev, &g, 0);
        assert_int_equal(sse_parser_feed(p, STREAM, cut), 0);
        assert_int_equal(sse_parser_feed(p, STREAM + cut, n - cut), 0);
        check(&g);
        assert_int_equal(sse_parser_count(p), 4);
        sse_parser_free(p);
    }
    /* byte at a time */
    struct got g = {0};
    sse_parser *p = sse_parser_new(on_ev, &g, 0);
    for (size_t i = 0; i < n; i++) assert_int_equal(sse_parser_feed(p, STREAM + i, 1), 0);
    check(&g);
    sse_parser_free(p);
}

static void test_caps_and_abort(void **st) {
    (void)st;
    struct got g = {0};
    sse_parser *p = sse_parser_new(on_ev, &g, 16);
    assert_int_equal(sse_parser_feed(p, "data: 0123456789abcdefXYZ", 25), SSE_E_TOO_LARGE);
    assert_int_equal(sse_parser_feed(p, "\n\n", 2), SSE_E_ABORTED); /* dead after an error */
    sse_parser_free(p);
    /* data over the cap across lines */
    p = sse_parser_new(on_ev, &g, 16);
    assert_int_equal(sse_parser_feed(p, "data: 0123456789\ndata: 0123456789\n", 34), SSE_E_TOO_LARGE);
    sse_parser_free(p);
    /* callback abort */
    struct got g2 = {.stop_after = 1};
    p = sse_parser_new(on_ev, &g2, 0);
    assert_int_equal(sse_parser_feed(p, "data: a\n\ndata: b\n\n", 18), SSE_E_ABORTED);
    assert_int_equal(g2.n, 1);
    sse_parser_free(p);
    sse_parser_free(NULL);
}

/* formatted events parse back to the same fields */
static void test_roundtrip(void **st) {
    (void)st;
    uint64_t seed = 7;
    for (int it = 0; it < 200; it++) {
        char data[64];
        int len = (int)(tu_rng(&seed) % 40);
        for (int i = 0; i < len; i++) data[i] = "ab\n{}\" :x"[tu_rng(&seed) % 9];
        data[len] = 0;
        struct util_sb sb;
        util_sb_init(&sb);
        sse_format(&sb, it, "token", data);
        struct got g = {0};
        sse_parser *p = sse_parser_new(on_ev, &g, 0);
        assert_int_equal(sse_parser_feed(p, sb.buf, sb.len), 0);
        assert_int_equal(g.n, 1);
        assert_string_equal(g.data[0], data);
        char idb[16];
        snprintf(idb, sizeof idb, "%d", it);
        assert_string_equal(g.id[0], idb);
        sse_parser_free(p);
        util_sb_free(&sb);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse_all_splits),
        cmocka_unit_test(test_caps_and_abort),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
