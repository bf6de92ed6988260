/* sse — Server-Sent Events: formatting events for servers and an incremental
 * parser for clients (WHATWG "text/event-stream" rules).
 *
 * Formatting: sse_format appends
 *     id: <id>\nevent: <name>\ndata: <line>\n[data: <line>\n...]\n
 * to a string builder; a data payload containing newlines becomes several
 * data: lines (JSON produced by our own encoders never contains raw
 * newlines, so one line is the common case).
 *
 * Parsing: sse_parser_feed accepts arbitrary chunks (split anywhere, even
 * between \r and \n) and calls the callback once per dispatched event.
 * Lines end with \r\n, \n or \r. Comment lines (":...") are ignored; a
 * field's value has one leading space stripped; several data lines are joined
 * with \n; an event without "event:" is named "message". Every buffer is
 * capped (max_event_bytes): a stream that exceeds it is rejected, never grown
 * without bound. The parser owns its buffers; the event passed to the
 * callback is valid only during the call.
 */
#ifndef LLORCH_SSE_H
#define LLORCH_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

/* Appends one event. id < 0: no id line. event NULL: no event line. */
void sse_format(struct util_sb *sb, int64_t id, const char *event, const char *data);
/* Appends a comment line (": text\n\n"), e.g. a keep-alive. */
void sse_format_comment(struct util_sb *sb, const char *text);

typedef struct {
    const char *id;     /* last event id seen on the stream ("" when none) */
    const char *event;  /* "message" when the event had no event: field */
    const char *data;   /* NUL-terminated; data_len bytes */
    size_t data_len;
} sse_event;

/* Return non-zero to stop parsing: sse_parser_feed then returns SSE_E_ABORTED. */
typedef int (*sse_event_fn)(void *user, const sse_event *ev);

enum { SSE_E_TOO_LARGE = -1, SSE_E_ABORTED = -2, SSE_E_NOMEM = -3 };

typedef struct sse_parser sse_parser;

/* max_event_bytes: cap on one line and on one event's data (0 = 1 MiB). */
sse_parser *sse_parser_new(sse_event_fn fn, void *user, size_t max_event_bytes);
void sse_parser_free(sse_parser *p); /* NULL ok */
/* Returns 0, or a negative SSE_E_* code (the parser is then unusable). */
int sse_parser_feed(sse_parser *p, const char *buf, size_t n);
/* Number of events dispatched so far. */
uint64_t sse_parser_count(const sse_parser *p);

#endif
