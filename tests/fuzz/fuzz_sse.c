// test-libs: llorch_net llorch_core
/* libFuzzer target: the incremental SSE parser (clients parse what workers
 * and the orchestrator send, so a hostile or broken peer's bytes land here).
 * Invariants: never reads out of bounds (ASan); the same bytes fed whole and
 * fed in fuzzer-chosen pieces give the same events (ids, names, data, byte
 * for byte) and the same result code; no event exceeds the cap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/sse.h"
#include "common/util.h"

#define CAP 256

struct rec {
    struct util_sb sb; /* id \x1f event \x1f data \x1e ... */
    int n;
};

static int on_ev(void *u, const sse_event *e) {
    struct rec *r = u;
    if (e->data_len > CAP) abort();
    if (strlen(e->data) > e->data_len) abort(); /* NUL-terminated at data_len */
    util_sb_puts(&r->sb, e->id);
    util_sb_putc(&r->sb, '\x1f');
    util_sb_puts(&r->sb, e->event);
    util_sb_putc(&r->sb, '\x1f');
    util_sb_putn(&r->sb, e->data, e->data_len);
    util_sb_putc(&r->sb, '\x1e');
    r->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned step = data[0] % 17 + 1; /* piece size for the split run */
    const char *in = (const char *)data + 1;
    size_t n = size - 1;

    struct rec a = {0}, b = {0};
    util_sb_init(&a.sb);
    util_sb_init(&b.sb);
    sse_parser *p = sse_parser_new(on_ev, &a, CAP);
    int ra = sse_parser_feed(p, in, n);
    sse_parser_free(p);

    p = sse_parser_new(on_ev, &b, CAP);
    int rb = 0;
    for (size_t off = 0; off < n && rb == 0; off += step) {
        size_t k = n - off < step ? n - off : step;
        rb = sse_parser_feed(p, in + off, k);
    }
    sse_parser_free(p);

    if (ra != rb || a.n != b.n || a.sb.len != b.sb.len || (a.sb.len && memcmp(a.sb.buf, b.sb.buf, a.sb.len)))
        abort();
    util_sb_free(&a.sb);
    util_sb_free(&b.sb);
    return 0;
}
