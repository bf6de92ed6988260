/* harmony — see harmony.h. A byte-level state machine: runs of text without
 * '<' are routed at once; from a '<' on, bytes are held while they can still
 * become a marker. */
#include "orch/core/harmony.h"

#include <string.h>

#include "common/util.h"

enum { HM_HEADER = 0, HM_BODY, HM_DONE };
enum { HM_CONTENT = 0, HM_REASONING, HM_DROP };
enum { HM_PART_HEAD = 0, HM_PART_CHAN, HM_PART_CONSTRAIN };
enum { MK_START = 0, MK_END, MK_MESSAGE, MK_CHANNEL, MK_CONSTRAIN, MK_RETURN, MK_CALL, MK__COUNT };

static const char *const markers[MK__COUNT] = { "<|start|>",     "<|end|>",    "<|message|>", "<|channel|>",
                                                "<|constrain|>", "<|return|>", "<|call|>" };

static void reset_header(struct harmony_parser *p) {
    p->state = HM_HEADER;
    p->part = HM_PART_HEAD;
    p->nhead = p->nchan = 0;
    p->recipient = 0;
}

void harmony_init(struct harmony_parser *p) {
    memset(p, 0, sizeof *p);
    reset_header(p); /* the prompt ended with <|start|>assistant: a header follows */
}

static void out(struct harmony_parser *p, const char *s, size_t n, harmony_emit_fn emit, void *ctx) {
    if (n && p->sink != HM_DROP) emit(ctx, p->sink == HM_REASONING, s, n);
}

/* header text that can no longer be a header: it was content all along */
static void header_to_content(struct harmony_parser *p, harmony_emit_fn emit, void *ctx) {
    p->state = HM_BODY;
    p->sink = HM_CONTENT;
    out(p, p->head, p->nhead, emit, ctx);
    out(p, p->chan, p->nchan, emit, ctx);
    p->nhead = p->nchan = 0;
}

static void text(struct harmony_parser *p, const char *s, size_t n, harmony_emit_fn emit, void *ctx) {
    if (n == 0) return;
    if (p->state == HM_BODY) {
        out(p, s, n, emit, ctx);
        return;
    }
    if (p->state != HM_HEADER || p->part == HM_PART_CONSTRAIN) return; /* done; a content type */
    char *buf = p->part == HM_PART_HEAD ? p->head : p->chan;
    size_t *len = p->part == HM_PART_HEAD ? &p->nhead : &p->nchan;
    size_t cap = p->part == HM_PART_HEAD ? sizeof p->head : sizeof p->chan;
    if (n <= cap - *len) {
        memcpy(buf + *len, s, n);
        *len += n;
        return;
    }
    header_to_content(p, emit, ctx);
    out(p, s, n, emit, ctx);
}

static int has_recipient(const char *s, size_t n) {
    for (size_t i = 0; i + 3 <= n; i++)
        if (!memcmp(s + i, "to=", 3) && (i == 0 || s[i - 1] == ' ')) return 1;
    return 0;
}

/* <|message|> ends a header: where does the body go? */
static int decide_sink(const struct harmony_parser *p) {
    if (p->recipient || has_recipient(p->head, p->nhead) || has_recipient(p->chan, p->nchan)) return HM_DROP;
    size_t w = 0;
    while (w < p->nchan && p->chan[w] != ' ' && p->chan[w] != '\n') w++;
    if (w == 0) return HM_CONTENT; /* no channel: the answer */
    if ((w == 5 && !memcmp(p->chan, "final", 5)) || (w == 10 && !memcmp(p->chan, "commentary", 10)))
        return HM_CONTENT; /* commentary without recipient: a preamble meant for the user */
    return HM_REASONING;
}

static void marker(struct harmony_parser *p, int mk) {
    p->seen_marker = 1;
    if (p->state == HM_DONE) return;
    switch (mk) {
    case MK_START:
    case MK_END:
        reset_header(p);
        break;
    case MK_CHANNEL:
        if (p->state != HM_HEADER) reset_header(p); /* a body without <|end|><|start|>: a new header */
        /* the channel is the text after the last <|channel|>: appending to an
         * earlier one would join text cut by a marker (and could join the
         * halves of a marker-like string, "<|constrain|" + ">") */
        p->part = HM_PART_CHAN;
        p->recipient |= has_recipient(p->chan, p->nchan);
        p->nchan = 0;
        break;
    case MK_CONSTRAIN:
        if (p->state == HM_HEADER) p->part = HM_PART_CONSTRAIN;
        break;
    case MK_MESSAGE:
        if (p->state == HM_HEADER) {
            p->sink = decide_sink(p);
            p->state = HM_BODY;
        }
        break;
    default: /* <|return|>, <|call|>: the end (the worker stops there; nothing after counts) */
        p->state = HM_DONE;
        break;
    }
}

/* 1: hold[0..nhold) is a prefix of some marker; *full = that marker when whole */
static int prefix_of_marker(const struct harmony_parser *p, int *full) {
    int any = 0;
    *full = -1;
    for (int i = 0; i < MK__COUNT; i++) {
        size_t l = strlen(markers[i]);
        if (p->nhold <= l && !memcmp(markers[i], p->hold, p->nhold)) {
            any = 1;
            if (p->nhold == l) *full = i;
        }
    }
    return any;
}

static void push_held(struct harmony_parser *p, char c, harmony_emit_fn emit, void *ctx) {
    if (p->nhold == 0 && c != '<') {
        text(p, &c, 1, emit, ctx);
        return;
    }
    LLORCH_ASSERT(p->nhold < sizeof p->hold);
    p->hold[p->nhold++] = c;
    int full;
    if (prefix_of_marker(p, &full)) {
        if (full >= 0) {
            p->nhold = 0;
            marker(p, full);
        }
        return;
    }
    /* not a marker: its '<' is text; what followed may start one */
    char rest[HARMONY_MARKER_MAX];
    size_t k = p->nhold - 1;
    memcpy(rest, p->hold + 1, k);
    p->nhold = 0;
    text(p, "<", 1, emit, ctx);
    for (size_t i = 0; i < k; i++) push_held(p, rest[i], emit, ctx);
}

void harmony_feed(struct harmony_parser *p, const char *s, size_t n, harmony_emit_fn emit, void *ctx) {
    size_t i = 0;
    while (i < n) {
        if (p->nhold == 0) {
            const char *lt = memchr(s + i, '<', n - i);
            size_t run = lt ? (size_t)(lt - (s + i)) : n - i;
            text(p, s + i, run, emit, ctx);
            i += run;
            if (i == n) break;
        }
        push_held(p, s[i++], emit, ctx);
    }
}

void harmony_finish(struct harmony_parser *p, harmony_emit_fn emit, void *ctx) {
    char rest[HARMONY_MARKER_MAX];
    size_t k = p->nhold;
    memcpy(rest, p->hold, k);
    p->nhold = 0;
    text(p, rest, k, emit, ctx); /* a marker cut off by the end is text */
    if (p->state == HM_HEADER && !p->seen_marker) header_to_content(p, emit, ctx);
    p->state = HM_DONE;
}
