/* http_client — blocking HTTP requests on libcurl (one easy handle per call),
 * for callbacks, health probes, tests and simple relays.
 *
 * http_client_do: request → status + whole body (capped).
 * http_client_sse: request → when the answer is 2xx text/event-stream, each
 *   event is parsed incrementally (sse.h) and handed to the callback as it
 *   arrives; any other answer is collected into out->body like http_client_do.
 *   The callback returning non-zero closes the connection at once (the
 *   server sees a client disconnect) and the call returns HTTPC_E_ABORTED.
 *
 * Thread-safe (curl_global_init runs once; no signals). One thread per
 * concurrent call: a relay of thousands of streams should drive curl's multi
 * interface instead (not provided here yet).
 */
#ifndef LLORCH_HTTP_CLIENT_H
#define LLORCH_HTTP_CLIENT_H

#include <stddef.h>

#include "common/sse.h"

enum {
    HTTPC_E_INVAL = -1,
    HTTPC_E_CONNECT = -2,   /* refused, unreachable, DNS */
    HTTPC_E_TIMEOUT = -3,
    HTTPC_E_TOO_LARGE = -4, /* response body or SSE event over the cap */
    HTTPC_E_ABORTED = -5,   /* the SSE callback asked to stop */
    HTTPC_E_IO = -6,        /* connection broke, protocol error */
    HTTPC_E_NOMEM = -7,
};

typedef struct {
    const char *method;           /* NULL: GET, or POST when body != NULL */
    const char *url;
    const char *const *headers;   /* NULL-terminated "Name: value" lines, or NULL */
    const char *body;             /* may be NULL */
    size_t body_len;              /* 0 with body != NULL: strlen(body) */
    const char *content_type;     /* NULL: application/json when there is a body */
    long connect_timeout_ms;      /* 0: 2000 */
    long timeout_ms;              /* whole transfer; 0: 10000 for http_client_do, none for SSE */
    size_t max_response_bytes;    /* 0: 16 MiB (SSE: cap per event) */
    long idle_timeout_ms;         /* abort (HTTPC_E_TIMEOUT) when no byte arrives for this long; 0: never.
                                     Whole seconds (rounded up): libcurl's low-speed check */
} http_client_req;

typedef struct {
    long status;                  /* 0 when no response arrived */
    char *body;                   /* malloc'd, NUL-terminated ("" when empty) */
    size_t len;
    char content_type[128];
    char correlation_id[65];      /* X-Correlation-Id response header, if any */
} http_resp;

int http_client_do(const http_client_req *rq, http_resp *out, char *err, size_t errlen);
int http_client_sse(const http_client_req *rq, sse_event_fn fn, void *user, http_resp *out, char *err,
                    size_t errlen);
void http_resp_free(http_resp *r); /* NULL ok; leaves a zeroed struct */

#endif
