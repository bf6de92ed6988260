/* http_internal — private to the HTTP server's files (http_server.c,
 * http_stream.c): the structures behind the opaque handles of
 * http_server.h. Not for other modules. */
#ifndef LLORCH_HTTP_INTERNAL_H
#define LLORCH_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/http_server.h"

#define MAX_ROUTES 64
#define MAX_SEGS 16
#define MAX_PARAMS 8
#define MAX_HDRS 16

struct route {
    char method[16];
    char *segs[MAX_SEGS]; /* "{name}" segments are parameters */
    int nsegs;
    http_handler_fn fn;
    void *user;
};

struct http_server {
    http_server_opts o;
    char bind[64];
    char component[32];
    struct route routes[MAX_ROUTES];
    int nroutes;
    struct MHD_Daemon *d;
    int port;
    /* streams whose connection is still open (MHD holds a reference) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    http_stream *streams;
    int n_streams;
    /* requests MHD has handed us and not yet reported complete (their
     * response may still be unsent): http_server_drain waits for them too */
    int n_requests;
    uint64_t next_stream_id;
    /* watcher: epoll over suspended streams' sockets, EPOLLRDHUP only */
    int epfd, evfd;
    pthread_t watcher;
    int watcher_started;
    /* http_server_stop_accepting: from then on new requests are answered
     * 503 with this code and message (closing is read and written atomically;
     * code and message are written before it) */
    int closing;
    enum err_code closing_code;
    char closing_msg[96];
};

struct http_stream {
    pthread_mutex_t mu;
    http_server *srv;             /* NULL once MHD released the connection */
    struct MHD_Connection *conn;  /* NULL once MHD released the connection */
    uint64_t id;
    int fd;
    char *buf;                    /* pending bytes [off, len) */
    size_t len, off, cap, limit;
    int suspended, finished, gone, eos, gone_notified;
    int in_callback;              /* on_gone is running (close waits for it) */
    pthread_cond_t cb_done;
    int refs;                     /* producer + MHD response */
    http_gone_fn on_gone;
    void *user;
    http_stream *next, *prev;     /* server list, under srv->mu */
};

struct http_req {
    http_server *srv;
    struct MHD_Connection *conn;
    char method[16];
    char *path;
    char *body;
    size_t body_len, body_cap;
    int too_large, responded, handled;
    char params_name[MAX_PARAMS][32];
    char *params_val[MAX_PARAMS];
    int nparams;
    char *hdr_name[MAX_HDRS], *hdr_val[MAX_HDRS];
    int nhdrs;
    char cid[65];
};


/* http_server.c */
void http_add_headers(http_req *r, struct MHD_Response *resp);
/* http_stream.c */
void *http_watcher_main(void *arg);   /* the disconnect watcher thread */
void http_streams_wake_all(http_server *s); /* before MHD_stop_daemon */

#endif
