// test-libs: llorch_orchcore llorch_core
/* libFuzzer target: the harmony reply parser (src/orch/core/harmony.c).
 *
 * Input: byte 0 picks a cut point (as a fraction of the rest), the rest is
 * the reply text the worker would stream.
 *
 * Invariants:
 *   - the outputs (reasoning, content, and the order of their runs) are the
 *     same fed whole, cut in two at the chosen point, and byte by byte;
 *   - no emitted piece contains a whole control token (<|start|>, <|end|>,
 *     <|message|>, <|channel|>, <|constrain|>, <|return|>, <|call|>);
 *   - the outputs are no longer than the input;
 *   - always: no crash, leak or UB. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "orch/core/harmony.h"

#define FZ_NAME "fuzz_harmony"
#include "fuzz_check.h"

struct out {
    struct util_sb r, c, order;
};

static int has_marker(const char *s, size_t n) {
    static const char *const mk[] = { "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>",
                                      "<|return|>", "<|call|>" };
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof mk / sizeof mk[0]; k++) {
            size_t l = strlen(mk[k]);
            if (l <= n - i && !memcmp(s + i, mk[k], l)) return 1;
        }
    return 0;
}

static void emit(void *ctx, int reasoning, const char *s, size_t n) {
    struct out *o = ctx;
    CHECK(n > 0 && !has_marker(s, n));
    util_sb_putn(reasoning ? &o->r : &o->c, s, n);
    char k = reasoning ? 'R' : 'C';
    if (!o->order.len || o->order.buf[o->order.len - 1] != k) util_sb_putc(&o->order, k);
}

static void parse(const char *s, size_t n, size_t step, size_t cut, struct out *o) {
    memset(o, 0, sizeof *o);
    util_sb_init(&o->r);
    util_sb_init(&o->c);
    util_sb_init(&o->order);
    struct harmony_parser p;
    harmony_init(&p);
    if (step) {
        for (size_t i = 0; i < n; i += step) harmony_feed(&p, s + i, n - i < step ? n - i : step, emit, o);
    } else {
        harmony_feed(&p, s, cut, emit, o);
        harmony_feed(&p, s + cut, n - cut, emit, o);
    }
    harmony_finish(&p, emit, o);
    CHECK(!o->r.oom && !o->c.oom && !o->order.oom);
    CHECK(o->r.len + o->c.len <= n);
}

static int same(const struct util_sb *a, const struct util_sb *b) {
    return a->len == b->len && (a->len == 0 || !memcmp(a->buf, b->buf, a->len));
}

static void out_free(struct out *o) {
    util_sb_free(&o->r);
    util_sb_free(&o->c);
    util_sb_free(&o->order);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 16384) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1, cut = n * data[0] / 255;
    struct out whole, two, bytes;
    parse(s, n, n ? n : 1, 0, &whole);
    parse(s, n, 0, cut, &two);
    parse(s, n, 1, 0, &bytes);
    CHECK(same(&whole.r, &two.r) && same(&whole.c, &two.c) && same(&whole.order, &two.order));
    CHECK(same(&whole.r, &bytes.r) && same(&whole.c, &bytes.c) && same(&whole.order, &bytes.order));
    out_free(&whole);
    out_free(&two);
    out_free(&bytes);
    return 0;
}
