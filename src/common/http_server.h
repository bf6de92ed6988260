/* http_server — the HTTP/1.1 server every llama-orch service embeds
 * (worker, pool-managerd, orchestratord), on libmicrohttpd.
 *
 * Threading: MHD's internal polling thread(s) (epoll; `threads` > 1 gives a
 * pool of polling threads). Handlers run ON a polling thread, so a handler
 * must answer quickly (validate, queue work, respond) and never block on
 * long work; long work runs elsewhere and talks back through a stream.
 *
 * Requests: the body is read into a per-request buffer capped at
 * max_body_bytes. A request whose Content-Length exceeds the cap is answered
 * 413 as soon as its headers arrive, without reading the body (the connection
 * is then closed); a chunked body that grows past the cap is discarded as it
 * arrives (never buffered) and answered 413. Request line + headers are
 * capped by max_header_bytes (MHD answers 431/414 itself). Idle connections
 * time out after conn_timeout_s (streams excepted, see below).
 *
 * Routing: exact method + path patterns; a segment "{name}" matches one
 * non-empty path segment, read back with http_req_param. Unknown path → 404
 * NOT_FOUND, known path with another method → 405.
 *
 * Responses: every handler must answer exactly once through http_respond*,
 * or start a stream with http_respond_stream; a handler that does neither
 * gets a 500 INTERNAL. http_req_correlation_id gives the request's
 * X-Correlation-Id (validated ^[A-Za-z0-9-]{1,64}$, else a fresh UUIDv4);
 * once asked for, every response of that request echoes it as a header.
 *
 * Streams (SSE): http_respond_stream returns a handle a producer thread owns
 * and writes into. Design choice: MHD's content-reader callback + connection
 * suspend/resume. When the stream has no pending bytes the reader suspends
 * the connection (it costs no thread and no polling); http_stream_write
 * appends to the stream's buffer and resumes it. MHD does not watch
 * suspended sockets, so one "watcher" thread per server holds every
 * suspended stream's socket in an epoll set for EPOLLRDHUP only: a client
 * that goes away is noticed within milliseconds, even mid-prefill when
 * nothing is being written. Then http_stream_write starts returning
 * HTTP_E_GONE and the on_gone callback (if any) runs once, on a server
 * thread (keep it tiny: set a flag, signal a condvar).
 * Limits: a client that half-closes its socket (shutdown(SHUT_WR)) counts as
 * gone; suspended streams do not time out (a producer that never writes keeps
 * its connection); a stream's pending bytes are capped (stream_buffer_cap):
 * a client that reads slower than the producer writes past that cap is
 * disconnected (write returns HTTP_E_GONE). Per stream the server holds one
 * small struct and its buffer; 1,000+ concurrent streams need no threads
 * (raise max_connections and the fd limit for more than ~4,000).
 *
 * Lifetimes: http_server_free stops the daemon; streams still held by their
 * producers stay valid (writes return HTTP_E_GONE) until http_stream_close.
 */
#ifndef LLORCH_HTTP_SERVER_H
#define LLORCH_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct http_server http_server;
typedef struct http_req http_req;
typedef struct http_stream http_stream;

enum { HTTP_E_INVAL = -1, HTTP_E_BIND = -2, HTTP_E_NOMEM = -3, HTTP_E_GONE = -4, HTTP_E_STATE = -5 };

typedef struct {
    const char *bind;          /* IPv4/IPv6 literal or "localhost"; NULL = "127.0.0.1" */
    int port;                  /* 0 = an ephemeral port (read it with http_server_port) */
    size_t max_body_bytes;     /* 0 = 1 MiB */
    size_t max_header_bytes;   /* per-connection memory for request line + headers; 0 = 32 KiB */
    unsigned conn_timeout_s;   /* idle connection timeout; 0 = 30 s */
    unsigned threads;          /* polling threads; 0 = 1 */
    unsigned max_connections;  /* 0 = 4096 */
    size_t stream_buffer_cap;  /* pending bytes per stream before the client counts as gone; 0 = 8 MiB */
    const char *component;     /* log component name; NULL = "http" */
} http_server_opts;

typedef void (*http_handler_fn)(http_req *req, void *user);

int http_server_new(const http_server_opts *o, http_server **out, char *err, size_t errlen);
/* Routes must be added before http_server_start. pattern like "/v2/tasks/{id}". */
int http_server_route(http_server *s, const char *method, const char *pattern, http_handler_fn fn, void *user);
int http_server_start(http_server *s, char *err, size_t errlen);
int http_server_port(const http_server *s);
/* Shutdown: from now on every new request is answered 503 with code and
 * message (a stable error, e.g. WORKER_BUSY, so a client retries
 * elsewhere); requests and streams already running are served on. The
 * listening socket closes at http_server_free. (It used to be closed here
 * with MHD_quiesce_daemon, which on an epoll daemon with its own thread
 * races MHD's event loop and can abort the process: libmicrohttpd 0.9.75
 * panics "Failed to remove listen FD from epoll set", seen in
 * pool-managerd's shutdown under ASan.) */
void http_server_stop_accepting(http_server *s, enum err_code code, const char *message);
/* Waits up to timeout_ms until no stream is being delivered and every
 * request's response has been sent (so a handler that answers and then
 * starts a shutdown, like a worker's POST /shutdown, has its answer
 * delivered before http_server_free closes the connection). 0 when idle
 * (or s is NULL). */
int http_server_drain(http_server *s, int timeout_ms);
/* Number of streams whose connection is still open. */
int http_server_n_streams(http_server *s);
void http_server_free(http_server *s); /* NULL ok; closes every connection */

/* ---- request (valid only during the handler call) ----------------------------- */
const char *http_req_method(const http_req *r);
const char *http_req_path(const http_req *r);
const char *http_req_header(const http_req *r, const char *name);  /* case-insensitive; NULL if absent */
const char *http_req_query(const http_req *r, const char *name);
const char *http_req_param(const http_req *r, const char *name);   /* path parameter */
/* The body, NUL-terminated (a body containing NUL bytes has len > strlen). */
const char *http_req_body(const http_req *r, size_t *len);
const char *http_req_correlation_id(http_req *r);
/* Extra response header (copied); at most 16 per request. */
void http_req_set_header(http_req *r, const char *name, const char *value);

/* ---- responses ------------------------------------------------------------------- */
int http_respond(http_req *r, int status, const char *content_type, const char *body, size_t len);
int http_respond_json(http_req *r, int status, const char *json);
/* The SPEC error body with err_http_status(code); details_json may be NULL. */
int http_respond_error(http_req *r, enum err_code code, const char *message, const char *details_json);
/* Same with an explicit HTTP status (413, 405, ...). */
int http_respond_error_status(http_req *r, int status, enum err_code code, const char *message,
                              const char *details_json);

typedef void (*http_gone_fn)(void *user);
/* Starts a streamed response (status + headers are sent at once). Returns the
 * producer's handle (NULL on OOM: the request then gets a 500). on_gone may be
 * NULL. The producer must call http_stream_close exactly once. */
http_stream *http_respond_stream(http_req *r, int status, const char *content_type, http_gone_fn on_gone,
                                 void *user);
/* Queues bytes for the client. 0, or HTTP_E_GONE once the client has gone
 * (or the server stopped). Thread-safe; never blocks on the network. */
int http_stream_write(http_stream *st, const char *data, size_t n);
/* One SSE event (sse_format) — id < 0: none. */
int http_stream_sse(http_stream *st, int64_t id, const char *event, const char *data_json);
int http_stream_gone(http_stream *st);
/* Ends the response after the pending bytes and drops the producer's handle.
 * When it returns, on_gone is not running and will never be called: the
 * producer may free on_gone's user data. (So on_gone must not call it.) */
void http_stream_close(http_stream *st); /* NULL ok */

/* ---- helpers ---------------------------------------------------------------------- */
/* ^[A-Za-z0-9-]{1,64}$ */
int http_valid_correlation_id(const char *s);
/* Random UUIDv4 into out[37]. */
void http_uuid4(char out[37]);
/* Parses an RFC 3339 timestamp ("2026-11-27T03:24:32.123Z", offsets
 * allowed) or epoch milliseconds ("1795748672123"). 0 on success. */
int http_parse_time_ms(const char *s, uint64_t *epoch_ms);

#endif
