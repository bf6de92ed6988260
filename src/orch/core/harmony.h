/* harmony — the streaming channel parser for GPT-OSS replies (harmony
 * format). The worker streams the reply as text in which harmony's control
 * tokens appear spelled out (<|channel|>, <|message|>, <|start|>, <|end|> and
 * <|constrain|> render as text, as in llama.cpp; <|return|> and <|call|> end
 * the generation and are never sent). A reply after the generation prompt
 * `<|start|>assistant` looks like
 *     <|channel|>analysis<|message|>THINKING<|end|>
 *     <|start|>assistant<|channel|>final<|message|>ANSWER
 * The parser routes each message's text by its header:
 *     channel analysis (and unknown channels)  -> reasoning
 *     channel final, commentary, or none      -> content
 *     a header addressed to a recipient ("to=functions.x": a tool call;
 *     no tools are offered, so none is expected)  -> dropped
 * Control tokens never reach either output. Input may be split anywhere
 * (a marker across two chunks is held back until it is decided). Text that
 * never forms a header (a model that does not speak harmony) is content:
 * a header longer than HARMONY_HEADER_MAX bytes, or an unfinished first
 * header at the end. Known limit: the parser sees text, not token ids, so a
 * model that spells "<|end|>" with ordinary tokens is read as the control
 * token.
 *
 * The parser is a plain value (no heap, no pointers inside): it may be
 * copied or moved with the struct that holds it. */
#ifndef LLORCH_ORCH_HARMONY_H
#define LLORCH_ORCH_HARMONY_H

#include <stddef.h>

#define HARMONY_MARKER_MAX 13    /* strlen("<|constrain|>") */
#define HARMONY_HEADER_MAX 128   /* role/recipient text of one header */
#define HARMONY_CHANNEL_MAX 64   /* channel text of one header */

/* Receives routed text in order; reasoning = 1 for the reasoning channel.
 * n > 0; s is not NUL-terminated and only valid during the call. */
typedef void (*harmony_emit_fn)(void *ctx, int reasoning, const char *s, size_t n);

struct harmony_parser {
    int state;                       /* HM_HEADER | HM_BODY | HM_DONE (harmony.c) */
    int sink;                        /* HM_BODY: where the text goes */
    int part;                        /* HM_HEADER: which header part text belongs to */
    int seen_marker;                 /* any control token so far */
    int recipient;                   /* HM_HEADER: an earlier channel part named one (to=) */
    char hold[HARMONY_MARKER_MAX];   /* the undecided prefix of a marker */
    size_t nhold;
    char head[HARMONY_HEADER_MAX];   /* role and recipient ("assistant to=functions.x") */
    size_t nhead;
    char chan[HARMONY_CHANNEL_MAX];  /* "analysis", "commentary to=... json" */
    size_t nchan;
};

void harmony_init(struct harmony_parser *p);
/* Feeds n bytes of reply text; calls emit for what is decided. */
void harmony_feed(struct harmony_parser *p, const char *s, size_t n, harmony_emit_fn emit, void *ctx);
/* The reply ended: emits what was held back (a partial marker is text; an
 * unfinished first header with no control token is content). */
void harmony_finish(struct harmony_parser *p, harmony_emit_fn emit, void *ctx);

#endif
