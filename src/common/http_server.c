/* http_server — see http_server.h for the model. This file: the daemon's
 * lifecycle, request bodies and caps, routing and plain responses. Streams
 * are in http_stream.c, small helpers in http_util.c. */
#include "common/http_server.h"
#include "common/http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* ---- request accessors --------------------------------------------------------------- */

const char *http_req_method(const http_req *r) { return r->method; }
const char *http_req_path(const http_req *r) { return r->path; }
const char *http_req_header(const http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}
const char *http_req_query(const http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}
const char *http_req_param(const http_req *r, const char *name) {
    for (int i = 0; i < r->nparams; i++)
        if (strcmp(r->params_name[i], name) == 0) return r->params_val[i];
    return NULL;
}
const char *http_req_body(const http_req *r, size_t *len) {
    if (len) *len = r->body_len;
    return r->body ? r->body : "";
}

const char *http_req_correlation_id(http_req *r) {
    if (!r->cid[0]) {
        const char *h = http_req_header(r, "X-Correlation-Id");
        if (http_valid_correlation_id(h)) snprintf(r->cid, sizeof r->cid, "%s", h);
        else http_uuid4(r->cid);
    }
    return r->cid;
}

void http_req_set_header(http_req *r, const char *name, const char *value) {
    if (r->nhdrs >= MAX_HDRS || !name || !value) return;
    r->hdr_name[r->nhdrs] = strdup(name);
    r->hdr_val[r->nhdrs] = strdup(value);
    if (!r->hdr_name[r->nhdrs] || !r->hdr_val[r->nhdrs]) {
        free(r->hdr_name[r->nhdrs]);
        free(r->hdr_val[r->nhdrs]);
        return;
    }
    r->nhdrs++;
}

void http_add_headers(http_req *r, struct MHD_Response *resp) {
    for (int i = 0; i < r->nhdrs; i++) MHD_add_response_header(resp, r->hdr_name[i], r->hdr_val[i]);
    /* every response carries the correlation id: the client's when valid,
     * else a fresh UUIDv4 (Conventions in docs/API.md) */
    MHD_add_response_header(resp, "X-Correlation-Id", http_req_correlation_id(r));
}

/* ---- responses ----------------------------------------------------------------------- */

int http_respond(http_req *r, int status, const char *content_type, const char *body, size_t len) {
    if (r->responded) return HTTP_E_STATE;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)(body ? body : ""),
                                                                MHD_RESPMEM_MUST_COPY);
    if (!resp) return HTTP_E_NOMEM;
    if (content_type) MHD_add_response_header(resp, "Content-Type", content_type);
    http_add_headers(r, resp);
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->responded = 1;
    return ok == MHD_YES ? 0 : HTTP_E_STATE;
}

int http_respond_json(http_req *r, int status, const char *json) {
    return http_respond(r, status, "application/json", json, strlen(json));
}

int http_respond_error_status(http_req *r, int status, enum err_code code, const char *message,
                              const char *details_json) {
    char body[4096];
    size_t n = err_json_body(code, message, details_json, http_req_correlation_id(r), body, sizeof body);
    return http_respond(r, status, "application/json", body, n);
}

int http_respond_error(http_req *r, enum err_code code, const char *message, const char *details_json) {
    return http_respond_error_status(r, err_http_status(code), code, message, details_json);
}

/* ---- routing ------------------------------------------------------------------------- */

static int split_path(char *p, char **segs, int max) {
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(p, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (n == max) return -1;
        segs[n++] = t;
    }
    return n;
}

int http_server_route(http_server *s, const char *method, const char *pattern, http_handler_fn fn, void *user) {
    if (!s || !method || !pattern || !fn || s->nroutes == MAX_ROUTES || s->d || strlen(method) >= 16)
        return HTTP_E_INVAL;
    struct route *rt = &s->routes[s->nroutes];
    char *copy = strdup(pattern);
    if (!copy) return HTTP_E_NOMEM;
    char *segs[MAX_SEGS];
    int n = split_path(copy, segs, MAX_SEGS);
    if (n < 0) {
        free(copy);
        return HTTP_E_INVAL;
    }
    for (int i = 0; i < n; i++) rt->segs[i] = strdup(segs[i]);
    free(copy);
    rt->nsegs = n;
    snprintf(rt->method, sizeof rt->method, "%s", method);
    rt->fn = fn;
    rt->user = user;
    s->nroutes++;
    return 0;
}

/* 0 = no match, 1 = path matches; fills params on a match */
static int route_match(const struct route *rt, char **segs, int n, http_req *r) {
    if (rt->nsegs != n) return 0;
    int np = 0;
    for (int i = 0; i < n; i++) {
        const char *p = rt->segs[i];
        size_t pl = strlen(p);
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (r && np < MAX_PARAMS) np++;
            continue;
        }
        if (strcmp(p, segs[i]) != 0) return 0;
    }
    if (r) {
        r->nparams = 0;
        for (int i = 0; i < n && r->nparams < MAX_PARAMS; i++) {
            const char *p = rt->segs[i];
            size_t pl = strlen(p);
            if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
                snprintf(r->params_name[r->nparams], sizeof r->params_name[0], "%.*s", (int)(pl - 2), p + 1);
                r->params_val[r->nparams] = strdup(segs[i]);
                r->nparams++;
            }
        }
    }
    return 1;
}

static void dispatch(http_req *r) {
    http_server *s = r->srv;
    char *copy = strdup(r->path);
    char *segs[MAX_SEGS];
    int n = copy ? split_path(copy, segs, MAX_SEGS) : -1;
    const struct route *hit = NULL;
    int path_known = 0;
    for (int i = 0; n >= 0 && i < s->nroutes; i++) {
        if (!route_match(&s->routes[i], segs, n, NULL)) continue;
        path_known = 1;
        if (strcmp(s->routes[i].method, r->method) == 0 ||
            (strcmp(r->method, "HEAD") == 0 && strcmp(s->routes[i].method, "GET") == 0)) {
            hit = &s->routes[i];
            break;
        }
    }
    if (hit) route_match(hit, segs, n, r);
    free(copy);
    if (!hit) {
        if (path_known) http_respond_error_status(r, 405, ERR_INVALID_REQUEST, "method not allowed", NULL);
        else http_respond_error(r, ERR_NOT_FOUND, "no such endpoint", NULL);
        return;
    }
    hit->fn(r, hit->user);
    if (!r->responded) {
        LOG_ERROR(s->component, "handler_no_response", r->cid, "%s %s: handler gave no response", r->method, r->path);
        http_respond_error(r, ERR_INTERNAL, "handler gave no response", NULL);
    }
}

/* ---- MHD callbacks ---------------------------------------------------------------------- */

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    http_server *s = cls;
    http_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s;
        r->conn = c;
        snprintf(r->method, sizeof r->method, "%s", method);
        r->path = strdup(url ? url : "/");
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        s->n_requests++;
        pthread_mutex_unlock(&s->mu);
        if (!r->path) return MHD_NO;
        if (__atomic_load_n(&s->closing, __ATOMIC_ACQUIRE)) { /* shutting down: answered before any body */
            http_respond_error_status(r, 503, s->closing_code, s->closing_msg, NULL);
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *e;
            errno = 0;
            unsigned long long v = strtoull(cl, &e, 10);
            if (errno || *e || v > s->o.max_body_bytes) {
                /* answered before the body is read: MHD then reads no body and closes */
                char msg[128];
                snprintf(msg, sizeof msg, "request body larger than %zu bytes", s->o.max_body_bytes);
                http_respond_error_status(r, 413, ERR_INVALID_REQUEST, msg, NULL);
                LOG_WARN(s->component, "body_too_large", r->cid, "%s %s: Content-Length %s", r->method, r->path, cl);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->responded && !r->too_large) {
            size_t n = *upload_size;
            if (r->body_len + n > s->o.max_body_bytes) {
                r->too_large = 1; /* discard the rest as it arrives */
                free(r->body);
                r->body = NULL;
                r->body_len = r->body_cap = 0;
            } else {
                if (r->body_len + n + 1 > r->body_cap) {
                    size_t nc = r->body_cap ? r->body_cap : 1024;
                    while (nc < r->body_len + n + 1) nc *= 2;
                    char *nb = realloc(r->body, nc);
                    if (!nb) return MHD_NO;
                    r->body = nb;
                    r->body_cap = nc;
                }
                memcpy(r->body + r->body_len, upload, n);
                r->body_len += n;
                r->body[r->body_len] = 0;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->responded || r->handled) return MHD_YES;
    r->handled = 1;
    if (r->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes", s->o.max_body_bytes);
        http_respond_error_status(r, 413, ERR_INVALID_REQUEST, msg, NULL);
        return MHD_YES;
    }
    dispatch(r);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    http_server *s = cls;
    (void)c;
    (void)toe;
    http_req *r = *con_cls;
    if (!r) return;
    pthread_mutex_lock(&s->mu);
    s->n_requests--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(r->path);
    free(r->body);
    for (int i = 0; i < r->nparams; i++) free(r->params_val[i]);
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdr_name[i]);
        free(r->hdr_val[i]);
    }
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    http_server *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    LOG_DEBUG(s->component, "mhd", NULL, "%s", msg);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int http_server_new(const http_server_opts *o, http_server **out, char *err, size_t errlen) {
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    if (!s) return util_fail(err, errlen, HTTP_E_NOMEM, "out of memory");
    if (o) s->o = *o;
    if (!s->o.max_body_bytes) s->o.max_body_bytes = 1u << 20;
    if (!s->o.max_header_bytes) s->o.max_header_bytes = 32u << 10;
    if (!s->o.conn_timeout_s) s->o.conn_timeout_s = 30;
    if (!s->o.threads) s->o.threads = 1;
    if (!s->o.max_connections) s->o.max_connections = 4096;
    if (!s->o.stream_buffer_cap) s->o.stream_buffer_cap = 8u << 20;
    snprintf(s->bind, sizeof s->bind, "%s", s->o.bind ? s->o.bind : "127.0.0.1");
    snprintf(s->component, sizeof s->component, "%s", s->o.component ? s->o.component : "http");
    s->o.bind = s->bind;
    s->o.component = s->component;
    if (s->o.port < 0 || s->o.port > 65535) {
        free(s);
        return util_fail(err, errlen, HTTP_E_INVAL, "port %d out of range", o ? o->port : -1);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->epfd = s->evfd = -1;
    *out = s;
    return 0;
}

int http_server_start(http_server *s, char *err, size_t errlen) {
    if (s->d) return util_fail(err, errlen, HTTP_E_STATE, "already started");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    const char *b = strcmp(s->bind, "localhost") == 0 ? "127.0.0.1" : s->bind;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, b, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)s->o.port);
    } else if (inet_pton(AF_INET6, b, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)s->o.port);
        flags |= MHD_USE_IPv6;
    } else {
        return util_fail(err, errlen, HTTP_E_INVAL, "bind address '%s' is not an IP literal", s->bind);
    }
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->epfd < 0 || s->evfd < 0) return util_fail(err, errlen, HTTP_E_NOMEM, "epoll: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &ev);
    if (pthread_create(&s->watcher, NULL, http_watcher_main, s) != 0)
        return util_fail(err, errlen, HTTP_E_NOMEM, "cannot start the watcher thread");
    s->watcher_started = 1;
    struct MHD_OptionItem opts[12];
    int no = 0;
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, s}; /* first: MHD asks */
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, s->o.conn_timeout_s, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)s->o.max_header_bytes, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, s->o.max_connections, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s};
    if (s->o.threads > 1) opts[no++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, s->o.threads, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!s->d)
        return util_fail(err, errlen, HTTP_E_BIND, "cannot listen on %s:%d (in use, or not an address of this host)",
                         s->bind, s->o.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : s->o.port;
    return 0;
}

int http_server_port(const http_server *s) { return s ? s->port : 0; }

void http_server_stop_accepting(http_server *s, enum err_code code, const char *message) {
    if (!s) return;
    s->closing_code = code;
    snprintf(s->closing_msg, sizeof s->closing_msg, "%s", message ? message : "shutting down");
    __atomic_store_n(&s->closing, 1, __ATOMIC_RELEASE);
}

int http_server_n_streams(http_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_streams;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int http_server_drain(http_server *s, int timeout_ms) {
    if (!s) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while ((s->n_streams > 0 || s->n_requests > 0) && rc == 0) rc = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    int left = s->n_streams + s->n_requests;
    pthread_mutex_unlock(&s->mu);
    return left ? -1 : 0;
}

void http_server_free(http_server *s) {
    if (!s) return;
    if (s->d) {
        http_streams_wake_all(s); /* so MHD can close their connections */
        MHD_stop_daemon(s->d);
        s->d = NULL;
    }
    if (s->watcher_started) {
        uint64_t one = 1;
        if (write(s->evfd, &one, sizeof one) < 0) { /* cannot happen for an eventfd below its max */ }
        pthread_join(s->watcher, NULL);
    }
    if (s->epfd >= 0) close(s->epfd);
    if (s->evfd >= 0) close(s->evfd);
    for (int i = 0; i < s->nroutes; i++)
        for (int j = 0; j < s->routes[i].nsegs; j++) free(s->routes[i].segs[j]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
