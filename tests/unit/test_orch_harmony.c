// test-libs: llorch_orchcore llorch_core
/* harmony reply parser (src/orch/core/harmony.c): channel routing, control
 * tokens never in the output, and the same output however the text is cut
 * (token by token as the worker streams, at every byte boundary, every pair
 * of boundaries, byte by byte). */
#include "testutil.h"

#include "common/util.h"
#include "orch/core/harmony.h"

#include <string.h>

/* what the parser emitted: both outputs plus the order of kind changes */
struct got {
    struct util_sb r, c;
    char order[64]; /* 'R' / 'C' per run of one kind */
    size_t norder;
};

static void emit(void *ctx, int reasoning, const char *s, size_t n) {
    struct got *g = ctx;
    assert_true(n > 0);
    util_sb_putn(reasoning ? &g->r : &g->c, s, n);
    char k = reasoning ? 'R' : 'C';
    if ((g->norder == 0 || g->order[g->norder - 1] != k) && g->norder + 1 < sizeof g->order) g->order[g->norder++] = k;
}

static void got_init(struct got *g) {
    memset(g, 0, sizeof *g);
    util_sb_init(&g->r);
    util_sb_init(&g->c);
}
static void got_free(struct got *g) {
    util_sb_free(&g->r);
    util_sb_free(&g->c);
}
static const char *str(const struct util_sb *sb) { return sb->len ? sb->buf : ""; }

/* feeds s cut at the given offsets (ascending), then finishes */
static void parse_cuts(const char *s, const size_t *cuts, size_t ncut, struct got *g) {
    struct harmony_parser p;
    harmony_init(&p);
    size_t at = 0, n = strlen(s);
    for (size_t i = 0; i <= ncut; i++) {
        size_t to = i < ncut ? cuts[i] : n;
        harmony_feed(&p, s + at, to - at, emit, g);
        at = to;
    }
    harmony_finish(&p, emit, g);
}

static void check_one(const char *s, const size_t *cuts, size_t ncut, const char *want_r, const char *want_c,
                      const char *want_order) {
    struct got g;
    got_init(&g);
    parse_cuts(s, cuts, ncut, &g);
    if (strcmp(str(&g.r), want_r) || strcmp(str(&g.c), want_c) || strcmp(g.order, want_order))
        fail_msg("input '%s' cut %zu times (first at %zu): reasoning '%s' content '%s' order %s", s, ncut,
                 ncut ? cuts[0] : 0, str(&g.r), str(&g.c), g.order);
    static const char *const markers[] = { "<|start|>",     "<|end|>",    "<|message|>", "<|channel|>",
                                           "<|constrain|>", "<|return|>", "<|call|>" };
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++) {
        assert_null(strstr(str(&g.c), markers[i]));
        assert_null(strstr(str(&g.r), markers[i]));
    }
    got_free(&g);
}

/* whole; at every boundary; at every pair of boundaries; byte by byte */
static void check(const char *s, const char *want_r, const char *want_c, const char *want_order) {
    size_t n = strlen(s);
    check_one(s, NULL, 0, want_r, want_c, want_order);
    for (size_t i = 0; i <= n; i++) check_one(s, &i, 1, want_r, want_c, want_order);
    for (size_t i = 0; i <= n; i++)
        for (size_t j = i; j <= n; j++) check_one(s, (size_t[]){ i, j }, 2, want_r, want_c, want_order);
    size_t *all = malloc(n * sizeof *all);
    for (size_t i = 0; i < n; i++) all[i] = i;
    check_one(s, all, n, want_r, want_c, want_order);
    free(all);
}

static void test_channels(void **s) {
    (void)s;
    /* the usual reply: analysis, then the final answer (<|return|> is EOG: never sent) */
    check("<|channel|>analysis<|message|>User greets. Reply.<|end|><|start|>assistant<|channel|>final<|message|>"
          "Hello! How can I help?",
          "User greets. Reply.", "Hello! How can I help?", "RC");
    /* final only; reasoning only (max_tokens hit while thinking) */
    check("<|channel|>final<|message|>42", "", "42", "C");
    check("<|channel|>analysis<|message|>Hmm, 6*7", "Hmm, 6*7", "", "R");
    /* a header with no channel: the answer */
    check("<|message|>plain", "", "plain", "C");
    /* a commentary preamble is for the user; a message to a recipient (tool
     * call) is neither, nor is its content type */
    check("<|channel|>commentary<|message|>Let me check.<|end|><|start|>assistant to=functions.get_weather"
          "<|channel|>commentary <|constrain|>json<|message|>{\"city\":\"SF\"}<|call|>",
          "", "Let me check.", "C");
    check("<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}<|end|>"
          "<|start|>assistant<|channel|>final<|message|>done",
          "", "done", "C");
    /* unknown channels are not for the user */
    check("<|channel|>scratch<|message|>x<|end|><|start|>assistant<|channel|>final<|message|>y", "x", "y", "RC");
    /* a missing <|end|><|start|> between messages */
    check("<|channel|>analysis<|message|>think<|channel|>final<|message|>answer", "think", "answer", "RC");
    /* a second <|channel|> in one header: the channel is the text after the
     * last one, and a recipient named before it still makes a tool call */
    check("<|channel|>scratch<|channel|>final<|message|>y", "", "y", "C");
    check("<|channel|>commentary to=functions.f<|channel|>final<|message|>{}<|end|>", "", "", "");
    /* found by fuzz_harmony: text cut by a marker ("<|constrain|" <|channel|> ">")
     * is never joined into a marker when an overlong header turns out to be content */
    check("@<|channel|>commentary to=functions.f <|constrain|<|channel|>><|constrssage|>\x10p{\"a\":1lain te}x"
          "0123456789012345678901234567890123456789012345678901234567890123456789",
          "", "@><|constrssage|>\x10p{\"a\":1lain te}x0123456789012345678901234567890123456789012345678901234567890123456789",
          "C");
    /* nothing after <|return|> counts */
    check("<|channel|>final<|message|>a<|return|>b", "", "a", "C");
    /* text that only looks like a marker is text; "to=" in a body is text */
    check("<|channel|>final<|message|>if a<b and <|x|> or <<|end|>", "", "if a<b and <|x|> or <", "C");
    check("<|channel|>final<|message|>go to=there", "", "go to=there", "C");
    /* a marker cut off by the end is text */
    check("<|channel|>final<|message|>x<|en", "", "x<|en", "C");
    /* analysis, final, analysis again: the order is kept */
    check("<|channel|>analysis<|message|>a<|end|><|start|>assistant<|channel|>final<|message|>b<|end|>"
          "<|start|>assistant<|channel|>analysis<|message|>c",
          "ac", "b", "RCR");
}

static void test_not_harmony(void **s) {
    (void)s;
    /* a model that does not speak harmony: its text is the content */
    check("Once upon a time", "", "Once upon a time", "C");
    check("a < b", "", "a < b", "C");
    check("", "", "", "");
    /* a header that never ends (after a control token): dropped, never content */
    check("<|channel|>analysis", "", "", "");
    /* a "header" longer than any real one is content (control tokens removed) */
    char big[400];
    memset(big, 'w', 300);
    big[300] = 0;
    check(big, "", big, "C");
    strcpy(big, "<|start|>");
    memset(big + 9, 'v', 200);
    strcpy(big + 209, "<|message|>z");
    char want[300];
    memset(want, 'v', 200);
    strcpy(want + 200, "z");
    check(big, "", want, "C");
}

/* token by token, as worker-cpud streams a gpt-oss reply (one piece per
 * event; the control tokens arrive whole); each feed's output is what one
 * SSE chunk would carry */
static void test_token_stream(void **s) {
    (void)s;
    static const char *const toks[] = { "<|channel|>", "analysis", "<|message|>", "The", " user", " says", " hi",
                                        ".", "<|end|>", "<|start|>", "assistant", "<|channel|>", "final",
                                        "<|message|>", "Hi", "!", " \xe2\x9c\x8b", NULL };
    static const char *const want[][2] = { { "", "" }, { "", "" }, { "", "" }, { "The", "" }, { " user", "" },
                                           { " says", "" }, { " hi", "" }, { ".", "" }, { "", "" }, { "", "" },
                                           { "", "" }, { "", "" }, { "", "" }, { "", "" }, { "", "Hi" },
                                           { "", "!" }, { "", " \xe2\x9c\x8b" } };
    struct harmony_parser p;
    harmony_init(&p);
    for (int i = 0; toks[i]; i++) {
        struct got g;
        got_init(&g);
        harmony_feed(&p, toks[i], strlen(toks[i]), emit, &g);
        assert_string_equal(str(&g.r), want[i][0]);
        assert_string_equal(str(&g.c), want[i][1]);
        got_free(&g);
    }
    struct got g;
    got_init(&g);
    harmony_finish(&p, emit, &g);
    assert_int_equal(g.r.len + g.c.len, 0);
    got_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_not_harmony),
        cmocka_unit_test(test_token_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
