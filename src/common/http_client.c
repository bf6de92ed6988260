/* http_client — see http_client.h. */
#include "common/http_client.h"

#include <curl/curl.h>
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

struct xfer {
    http_resp *out;
    size_t cap;          /* body cap */
    size_t alloc;
    int too_large;
    /* SSE mode */
    sse_event_fn fn;
    void *user;
    sse_parser *parser;
    int sse_active;      /* decided at the first body byte */
    int decided;
    int aborted, parse_err;
    CURL *h;
};

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
    struct xfer *x = ud;
    size_t len = size * n;
    const char *name = "X-Correlation-Id:";
    size_t nl = strlen(name);
    if (len > nl && strncasecmp(buf, name, nl) == 0) {
        const char *v = buf + nl;
        size_t vl = len - nl;
        while (vl && (*v == ' ' || *v == '\t')) v++, vl--;
        while (vl && isspace((unsigned char)v[vl - 1])) vl--;
        if (vl < sizeof x->out->correlation_id) {
            memcpy(x->out->correlation_id, v, vl);
            x->out->correlation_id[vl] = 0;
        }
    }
    return len;
}

static int append_body(struct xfer *x, const char *p, size_t n) {
    http_resp *o = x->out;
    if (o->len + n > x->cap) {
        x->too_large = 1;
        return -1;
    }
    if (o->len + n + 1 > x->alloc) {
        size_t na = x->alloc ? x->alloc : 4096;
        while (na < o->len + n + 1) na *= 2;
        char *nb = realloc(o->body, na);
        if (!nb) return -1;
        o->body = nb;
        x->alloc = na;
    }
    memcpy(o->body + o->len, p, n);
    o->len += n;
    o->body[o->len] = 0;
    return 0;
}

static void decide(struct xfer *x) {
    if (x->decided) return;
    x->decided = 1;
    long st = 0;
    char *ct = NULL;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st);
    curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ct);
    x->out->status = st;
    if (ct) snprintf(x->out->content_type, sizeof x->out->content_type, "%s", ct);
    if (x->fn && st >= 200 && st < 300 && ct && strncasecmp(ct, "text/event-stream", 17) == 0) {
        x->parser = sse_parser_new(x->fn, x->user, x->cap);
        x->sse_active = x->parser != NULL;
    }
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud) {
    struct xfer *x = ud;
    size_t len = size * n;
    decide(x);
    if (x->sse_active) {
        int rc = sse_parser_feed(x->parser, buf, len);
        if (rc == SSE_E_ABORTED) {
            x->aborted = 1;
            return 0;
        }
        if (rc) {
            x->parse_err = rc;
            return 0;
        }
        return len;
    }
    return append_body(x, buf, len) ? 0 : len;
}

static int run(const http_client_req *rq, struct xfer *x, int sse, char *err, size_t errlen) {
    pthread_once(&curl_once, curl_init_once);
    http_resp *out = x->out;
    memset(out, 0, sizeof *out);
    if (!rq || !rq->url) return util_fail(err, errlen, HTTPC_E_INVAL, "no url");
    CURL *h = curl_easy_init();
    if (!h) return util_fail(err, errlen, HTTPC_E_NOMEM, "curl_easy_init failed");
    x->h = h;
    x->cap = rq->max_response_bytes ? rq->max_response_bytes : (16u << 20);
    struct curl_slist *hl = NULL;
    for (const char *const *hp = rq->headers; hp && *hp; hp++) hl = curl_slist_append(hl, *hp);
    size_t blen = rq->body ? (rq->body_len ? rq->body_len : strlen(rq->body)) : 0;
    const char *method = rq->method ? rq->method : (rq->body ? "POST" : "GET");
    if (rq->body) {
        char ct[160];
        snprintf(ct, sizeof ct, "Content-Type: %s", rq->content_type ? rq->content_type : "application/json");
        hl = curl_slist_append(hl, ct);
        hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    if (strcmp(method, "GET") != 0 && !(strcmp(method, "POST") == 0 && rq->body))
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (sse) hl = curl_slist_append(hl, "Accept: text/event-stream");
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, rq->connect_timeout_ms ? rq->connect_timeout_ms : 2000L);
    long to = rq->timeout_ms ? rq->timeout_ms : (sse ? 0L : 10000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, to);
    if (rq->idle_timeout_ms > 0) {
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (rq->idle_timeout_ms + 999) / 1000);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    CURLcode cc = curl_easy_perform(h);
    decide(x);
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    out->status = st;
    int rc = 0;
    if (x->aborted) rc = HTTPC_E_ABORTED;
    else if (x->too_large || x->parse_err == SSE_E_TOO_LARGE) rc = util_fail(err, errlen, HTTPC_E_TOO_LARGE, "response over %zu bytes", x->cap);
    else if (cc == CURLE_OK) rc = 0;
    else if (cc == CURLE_OPERATION_TIMEDOUT) rc = util_fail(err, errlen, HTTPC_E_TIMEOUT, "%s: %s", rq->url, curl_easy_strerror(cc));
    else if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_URL_MALFORMAT ||
             cc == CURLE_UNSUPPORTED_PROTOCOL)
        rc = util_fail(err, errlen, cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ? HTTPC_E_INVAL : HTTPC_E_CONNECT,
                       "%s: %s", rq->url, curl_easy_strerror(cc));
    else if (cc == CURLE_OUT_OF_MEMORY) rc = util_fail(err, errlen, HTTPC_E_NOMEM, "out of memory");
    else rc = util_fail(err, errlen, HTTPC_E_IO, "%s: %s", rq->url, curl_easy_strerror(cc));
    if (!out->body) {
        out->body = calloc(1, 1);
        if (!out->body && rc == 0) rc = util_fail(err, errlen, HTTPC_E_NOMEM, "out of memory");
    }
    sse_parser_free(x->parser);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return rc;
}

int http_client_do(const http_client_req *rq, http_resp *out, char *err, size_t errlen) {
    struct xfer x = {.out = out};
    return run(rq, &x, 0, err, errlen);
}

int http_client_sse(const http_client_req *rq, sse_event_fn fn, void *user, http_resp *out, char *err,
                    size_t errlen) {
    struct xfer x = {.out = out, .fn = fn, .user = user};
    return run(rq, &x, 1, err, errlen);
}

void http_resp_free(http_resp *r) {
    if (!r) return;
    free(r->body);
    memset(r, 0, sizeof *r);
}
