/* http_stream — streamed (SSE) responses of http_server.h: a content-reader
 * callback that suspends the connection while the producer has nothing to
 * send, http_stream_write that resumes it, and the watcher thread that
 * notices clients leaving while their connection is suspended (MHD polls
 * no suspended socket). Locks: a stream's mutex may be taken while holding
 * the server's (watcher), never the other way round. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/http_internal.h"
#include "common/log.h"
#include "common/sse.h"
#include "common/util.h"

/* ---- streams -------------------------------------------------------------------- */

static void stream_unref(http_stream *st) {
    pthread_mutex_lock(&st->mu);
    int left = --st->refs;
    pthread_mutex_unlock(&st->mu);
    if (left == 0) {
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->cb_done);
        free(st->buf);
        free(st);
    }
}

/* Marks the stream gone and wakes MHD for it; returns whether the producer
 * must be told (caller calls notify_gone outside the lock). st->mu held. */
static int mark_gone_locked(http_stream *st) {
    st->gone = 1;
    if (st->conn && st->suspended) {
        st->suspended = 0;
        MHD_resume_connection(st->conn);
    }
    if (!st->gone_notified && !st->finished && st->on_gone) {
        st->gone_notified = 1;
        st->in_callback = 1;
        st->refs++; /* held across the callback */
        return 1;
    }
    return 0;
}

static void notify_gone(http_stream *st) {
    st->on_gone(st->user);
    pthread_mutex_lock(&st->mu);
    st->in_callback = 0;
    pthread_cond_broadcast(&st->cb_done);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

static void watch_fd(http_stream *st) {
    http_server *s = st->srv;
    if (!s || s->epfd < 0 || st->fd < 0) return;
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT, .data.u64 = st->id};
    int rc = epoll_ctl(s->epfd, EPOLL_CTL_ADD, st->fd, &ev);
    if (rc != 0 && errno == EEXIST) rc = epoll_ctl(s->epfd, EPOLL_CTL_MOD, st->fd, &ev);
    LOG_DEBUG(s->component, "watch", NULL, "stream %llu fd %d rc %d", (unsigned long long)st->id, st->fd, rc);
}

/* MHD thread: give MHD bytes, or suspend until the producer writes. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    http_stream *st = cls;
    pthread_mutex_lock(&st->mu);
    ssize_t rc;
    if (st->gone) {
        rc = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (st->len > st->off) {
        size_t n = UTIL_MIN(max, st->len - st->off);
        memcpy(out, st->buf + st->off, n);
        st->off += n;
        if (st->off == st->len) st->off = st->len = 0;
        rc = (ssize_t)n;
    } else if (st->finished) {
        st->eos = 1;
        rc = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        st->suspended = 1;
        MHD_suspend_connection(st->conn);
        watch_fd(st);
        rc = 0;
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* MHD: the response is destroyed (connection finished, either way). */
static void stream_release(void *cls) {
    http_stream *st = cls;
    http_server *s = st->srv;
    pthread_mutex_lock(&st->mu);
    int notify = 0;
    if (!st->eos) notify = mark_gone_locked(st);
    st->gone = 1;
    st->conn = NULL;
    st->suspended = 0;
    st->srv = NULL;
    pthread_mutex_unlock(&st->mu);
    if (s) {
        pthread_mutex_lock(&s->mu);
        if (st->prev) st->prev->next = st->next;
        else if (s->streams == st) s->streams = st->next;
        if (st->next) st->next->prev = st->prev;
        st->next = st->prev = NULL;
        s->n_streams--;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    if (notify) notify_gone(st);
    stream_unref(st);
}

void *http_watcher_main(void *arg) {
    http_server *s = arg;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(s->epfd, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == 0) return NULL; /* the eventfd: shutting down */
            uint64_t id = evs[i].data.u64;
            http_stream *hit = NULL;
            int notify = 0;
            pthread_mutex_lock(&s->mu);
            for (http_stream *st = s->streams; st; st = st->next)
                if (st->id == id) {
                    hit = st;
                    break;
                }
            if (hit) {
                pthread_mutex_lock(&hit->mu);
                if (hit->conn && !hit->eos) notify = mark_gone_locked(hit);
                pthread_mutex_unlock(&hit->mu);
            }
            pthread_mutex_unlock(&s->mu);
            if (hit) LOG_DEBUG(s->component, "client_gone", NULL, "stream %llu: client closed", (unsigned long long)id);
            if (notify) notify_gone(hit);
        }
    }
    return NULL;
}

int http_stream_write(http_stream *st, const char *data, size_t n) {
    if (!st) return HTTP_E_GONE;
    int notify = 0, rc = 0;
    pthread_mutex_lock(&st->mu);
    if (st->gone || !st->conn || st->finished) {
        rc = HTTP_E_GONE;
    } else if (st->len - st->off + n > st->limit) {
        notify = 0; /* the producer learns from the return code */
        st->gone_notified = 1;
        mark_gone_locked(st);
        rc = HTTP_E_GONE;
    } else {
        if (st->len + n > st->cap) {
            if (st->off) { /* compact first */
                memmove(st->buf, st->buf + st->off, st->len - st->off);
                st->len -= st->off;
                st->off = 0;
            }
            if (st->len + n > st->cap) {
                size_t nc = st->cap ? st->cap : 4096;
                while (nc < st->len + n) nc *= 2;
                char *nb = realloc(st->buf, nc);
                if (!nb) {
                    pthread_mutex_unlock(&st->mu);
                    return HTTP_E_NOMEM;
                }
                st->buf = nb;
                st->cap = nc;
            }
        }
        memcpy(st->buf + st->len, data, n);
        st->len += n;
        if (st->suspended) {
            st->suspended = 0;
            MHD_resume_connection(st->conn);
        }
    }
    pthread_mutex_unlock(&st->mu);
    if (notify) notify_gone(st);
    return rc;
}

int http_stream_sse(http_stream *st, int64_t id, const char *event, const char *data_json) {
    struct util_sb sb;
    util_sb_init(&sb);
    sse_format(&sb, id, event, data_json);
    int rc = sb.oom ? HTTP_E_NOMEM : http_stream_write(st, sb.buf, sb.len);
    util_sb_free(&sb);
    return rc;
}

int http_stream_gone(http_stream *st) {
    if (!st) return 1;
    pthread_mutex_lock(&st->mu);
    int g = st->gone || !st->conn;
    pthread_mutex_unlock(&st->mu);
    return g;
}

void http_stream_close(http_stream *st) {
    if (!st) return;
    pthread_mutex_lock(&st->mu);
    st->finished = 1;
    if (st->conn && st->suspended) {
        st->suspended = 0;
        MHD_resume_connection(st->conn);
    }
    /* after close returns, on_gone is neither running nor ever called again,
     * so the producer may free what on_gone's user points to */
    while (st->in_callback) pthread_cond_wait(&st->cb_done, &st->mu);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

http_stream *http_respond_stream(http_req *r, int status, const char *content_type, http_gone_fn on_gone,
                                 void *user) {
    if (r->responded) return NULL;
    http_server *s = r->srv;
    http_stream *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cb_done, NULL);
    st->srv = s;
    st->conn = r->conn;
    st->limit = s->o.stream_buffer_cap;
    st->on_gone = on_gone;
    st->user = user;
    st->refs = 2;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->fd = ci ? ci->connect_fd : -1;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, st,
                                                                  stream_release);
    if (!resp) {
        pthread_mutex_destroy(&st->mu);
        pthread_cond_destroy(&st->cb_done);
        free(st);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", content_type ? content_type : "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    http_add_headers(r, resp);
    pthread_mutex_lock(&s->mu);
    st->id = ++s->next_stream_id;
    st->next = s->streams;
    if (s->streams) s->streams->prev = st;
    s->streams = st;
    s->n_streams++;
    pthread_mutex_unlock(&s->mu);
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp); /* if queueing failed this runs stream_release */
    r->responded = 1;
    if (ok != MHD_YES) {
        stream_unref(st); /* the producer's reference: it never gets the handle */
        return NULL;
    }
    return st;
}

void http_streams_wake_all(http_server *s) {
    pthread_mutex_lock(&s->mu);
    for (http_stream *st = s->streams; st; st = st->next) {
        pthread_mutex_lock(&st->mu);
        st->gone = 1;
        if (st->conn && st->suspended) {
            st->suspended = 0;
            MHD_resume_connection(st->conn);
        }
        pthread_mutex_unlock(&st->mu);
    }
    pthread_mutex_unlock(&s->mu);
}
