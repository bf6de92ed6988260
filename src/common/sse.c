/* sse — see sse.h. */
#include "common/sse.h"

#include <stdlib.h>
#include <string.h>

/* ---- formatting ------------------------------------------------------------ */

void sse_format(struct util_sb *sb, int64_t id, const char *event, const char *data) {
    if (id >= 0) util_sb_printf(sb, "id: %lld\n", (long long)id);
    if (event) {
        util_sb_puts(sb, "event: ");
        util_sb_puts(sb, event);
        util_sb_putc(sb, '\n');
    }
    const char *p = data ? data : "";
    for (;;) {
        size_t n = strcspn(p, "\r\n");
        util_sb_puts(sb, "data: ");
        util_sb_putn(sb, p, n);
        util_sb_putc(sb, '\n');
        p += n;
        if (!*p) break;
        if (p[0] == '\r' && p[1] == '\n') p++;
        p++;
    }
    util_sb_putc(sb, '\n');
}

void sse_format_comment(struct util_sb *sb, const char *text) {
    util_sb_puts(sb, ": ");
    util_sb_puts(sb, text ? text : "");
    util_sb_puts(sb, "\n\n");
}

/* ---- parser ---------------------------------------------------------------- */

struct sse_parser {
    sse_event_fn fn;
    void *user;
    size_t cap;
    char *line;         /* current line, [cap + 1] */
    size_t line_len;
    char *data;         /* accumulated data of the pending event, [cap + 1] */
    size_t data_len;
    int has_data;
    char event[128];
    char id[128];
    int last_cr;        /* previous chunk ended with \r: skip a leading \n */
    int dead;
    uint64_t count;
};

sse_parser *sse_parser_new(sse_event_fn fn, void *user, size_t max_event_bytes) {
    sse_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->fn = fn;
    p->user = user;
    p->cap = max_event_bytes ? max_event_bytes : (1u << 20);
    p->line = malloc(p->cap + 1);
    p->data = malloc(p->cap + 1);
    if (!p->line || !p->data) {
        sse_parser_free(p);
        return NULL;
    }
    return p;
}

void sse_parser_free(sse_parser *p) {
    if (!p) return;
    free(p->line);
    free(p->data);
    free(p);
}

uint64_t sse_parser_count(const sse_parser *p) { return p ? p->count : 0; }

static void copy_field(char *dst, size_t cap, const char *v, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = 0;
}

static int dispatch(sse_parser *p) {
    if (!p->has_data) { /* per spec: no data → no event; the type resets */
        p->event[0] = 0;
        return 0;
    }
    p->data[p->data_len] = 0;
    sse_event ev = {p->id, p->event[0] ? p->event : "message", p->data, p->data_len};
    p->count++;
    int rc = p->fn ? p->fn(p->user, &ev) : 0;
    p->data_len = 0;
    p->has_data = 0;
    p->event[0] = 0;
    return rc ? SSE_E_ABORTED : 0;
}

static int process_line(sse_parser *p) {
    char *l = p->line;
    size_t n = p->line_len;
    p->line_len = 0;
    if (n == 0) return dispatch(p);
    if (l[0] == ':') return 0; /* comment */
    size_t fl = 0;
    while (fl < n && l[fl] != ':') fl++;
    const char *v = l + fl;
    size_t vn = 0;
    if (fl < n) {
        v = l + fl + 1;
        vn = n - fl - 1;
        if (vn && *v == ' ') {
            v++;
            vn--;
        }
    }
    if (fl == 4 && memcmp(l, "data", 4) == 0) {
        size_t need = p->data_len + (p->has_data ? 1 : 0) + vn;
        if (need > p->cap) return SSE_E_TOO_LARGE;
        if (p->has_data) p->data[p->data_len++] = '\n';
        memcpy(p->data + p->data_len, v, vn);
        p->data_len += vn;
        p->has_data = 1;
    } else if (fl == 5 && memcmp(l, "event", 5) == 0) {
        copy_field(p->event, sizeof p->event, v, vn);
    } else if (fl == 2 && memcmp(l, "id", 2) == 0) {
        if (!memchr(v, 0, vn)) copy_field(p->id, sizeof p->id, v, vn);
    } /* "retry" and unknown fields are ignored */
    return 0;
}

int sse_parser_feed(sse_parser *p, const char *buf, size_t n) {
    if (p->dead) return SSE_E_ABORTED;
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (p->last_cr) {
            p->last_cr = 0;
            if (c == '\n') continue;
        }
        if (c == '\r' || c == '\n') {
            p->last_cr = (c == '\r');
            int rc = process_line(p);
            if (rc) {
                p->dead = 1;
                return rc;
            }
            continue;
        }
        if (p->line_len >= p->cap) {
            p->dead = 1;
            return SSE_E_TOO_LARGE;
        }
        p->line[p->line_len++] = c;
    }
    return 0;
}
