/* test_worker_util — harness for the worker integration tests: spawns the
 * real worker-cpud on a real model with --port 0, runs a callback server of
 * its own that records the ready callback (and fetches /health from the
 * reported uri inside the callback handler), and collects SSE events.
 * Header-only so each test file stays one translation unit.
 *
 * On the GPU machine the same tests run against worker-orcd: set
 * LLORCH_WORKER_BIN=worker-orcd (the harness then passes --gpu 0 and the
 * tests expect bespoke-cuda / vram-only facts), with LD_LIBRARY_PATH,
 * LLORCH_BUILD_DIR and LLORCH_MODELS_DIR pointing into a bundle of the
 * binaries, their shared libraries and the two models (as
 * tools/gpu-bundle.sh makes for the engine tests). */
#ifndef TEST_WORKER_UTIL_H
#define TEST_WORKER_UTIL_H

#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/http_client.h"
#include "common/http_server.h"
#include "common/util.h"

/* ---- callback server --------------------------------------------------------- */
typedef struct {
    http_server *srv;
    int port;
    int answer;                 /* status to answer the ready callback with */
    int delay_ms;               /* wait this long before answering */
    int started;                /* handler entries (atomic) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_calls;
    json_t *body;               /* the last ready body */
    long health_status;         /* GET <uri>/health from inside the handler */
    char health_body[4096];
} tw_cb;

static inline void tw_on_ready(http_req *r, void *u) {
    tw_cb *cb = u;
    __atomic_add_fetch(&cb->started, 1, __ATOMIC_SEQ_CST);
    if (cb->delay_ms) usleep((useconds_t)cb->delay_ms * 1000);
    size_t n;
    const char *b = http_req_body(r, &n);
    json_t *j = json_loadb(b, n, 0, NULL);
    long hs = 0;
    char hb[4096] = "";
    json_t *uri = j ? json_object_get(j, "uri") : NULL;
    if (json_is_string(uri)) { /* server-first: the worker must already answer */
        char url[512];
        snprintf(url, sizeof url, "%s/health", json_string_value(uri));
        http_client_req rq = {.url = url, .timeout_ms = 3000};
        http_resp resp;
        char err[256];
        if (http_client_do(&rq, &resp, err, sizeof err) == 0) {
            hs = resp.status;
            snprintf(hb, sizeof hb, "%s", resp.body);
        }
        http_resp_free(&resp);
    }
    pthread_mutex_lock(&cb->mu);
    if (cb->body) json_decref(cb->body);
    cb->body = j;
    cb->health_status = hs;
    snprintf(cb->health_body, sizeof cb->health_body, "%s", hb);
    cb->n_calls++;
    pthread_cond_broadcast(&cb->cv);
    pthread_mutex_unlock(&cb->mu);
    http_respond_json(r, cb->answer, cb->answer < 300 ? "{\"ok\":true}" : "{\"error\":{\"code\":\"FORBIDDEN\"}}");
}

static inline void tw_cb_start(tw_cb *cb, int answer) {
    memset(cb, 0, sizeof *cb);
    pthread_mutex_init(&cb->mu, NULL);
    pthread_cond_init(&cb->cv, NULL);
    cb->answer = answer;
    http_server_opts o = {.port = 0, .component = "test-callback"};
    char err[256];
    assert_int_equal(http_server_new(&o, &cb->srv, err, sizeof err), 0);
    http_server_route(cb->srv, "POST", "/v2/internal/workers/ready", tw_on_ready, cb);
    if (http_server_start(cb->srv, err, sizeof err)) fail_msg("callback server: %s", err);
    cb->port = http_server_port(cb->srv);
}

static inline void tw_cb_stop(tw_cb *cb) {
    http_server_free(cb->srv);
    if (cb->body) json_decref(cb->body);
    cb->body = NULL;
}

/* waits until n_calls >= n; returns 0 on success */
static inline int tw_cb_wait(tw_cb *cb, int n, int timeout_ms) {
    uint64_t end = util_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    pthread_mutex_lock(&cb->mu);
    while (cb->n_calls < n && util_now_ns() < end) {
        pthread_mutex_unlock(&cb->mu);
        usleep(5000);
        pthread_mutex_lock(&cb->mu);
    }
    int ok = cb->n_calls >= n;
    pthread_mutex_unlock(&cb->mu);
    return ok ? 0 : -1;
}

/* ---- worker process ------------------------------------------------------------ */
/* The program under test: worker-cpud, or the one LLORCH_WORKER_BIN names
 * (e.g. worker-orcd on the GPU machine; then the tests expect the CUDA
 * worker's facts and pass --gpu 0). */
static inline const char *tw_bin_name(void) { return tu_env("LLORCH_WORKER_BIN", "worker-cpud"); }
static inline int tw_is_cuda(void) { return strstr(tw_bin_name(), "orcd") != NULL; }

typedef struct {
    pid_t pid;
    int port;
    char base[128];
    char log[512];
    int exited, status;
} tw_proc;

/* Starts worker-cpud with the given extra args (NULL-terminated). When
 * cb_port > 0 the callback goes there. Waits for "listening <uri>" on stdout
 * (wait_listen) and returns the port in p->port. */
static inline int tw_spawn(tw_proc *p, const char *model, int cb_port, const char *const *extra, int wait_listen) {
    memset(p, 0, sizeof *p);
    char bin[512], mpath[512];
    TU_BUILD(bin, tw_bin_name());
    if (model[0] == '/') snprintf(mpath, sizeof mpath, "%s", model);
    else TU_MODEL(mpath, model);
    static int seq;
    snprintf(p->log, sizeof p->log, "%s/worker-test-%d-%d.log", tu_env("LLORCH_BUILD_DIR", "."), (int)getpid(), seq++);
    char cburl[256];
    snprintf(cburl, sizeof cburl, "http://127.0.0.1:%d/v2/internal/workers/ready", cb_port);
    const char *argv[48];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--worker-id";
    argv[n++] = "w-test";
    argv[n++] = "--model";
    argv[n++] = mpath;
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = tw_is_cuda() ? "--gpu" : "--threads";
    argv[n++] = tw_is_cuda() ? "0" : "1";
    if (cb_port > 0) {
        argv[n++] = "--callback-url";
        argv[n++] = cburl;
    }
    for (int i = 0; extra && extra[i] && n < 46; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    int out[2];
    if (pipe(out)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        FILE *f = fopen(p->log, "w");
        if (f) dup2(fileno(f), 2);
        close(out[0]);
        close(out[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    p->pid = pid;
    if (!wait_listen) {
        close(out[0]);
        return 0;
    }
    FILE *f = fdopen(out[0], "r");
    char line[512];
    int ok = -1;
    if (f && fgets(line, sizeof line, f)) {
        char *c = strrchr(line, ':');
        if (strncmp(line, "listening ", 10) == 0 && c) {
            p->port = atoi(c + 1);
            snprintf(p->base, sizeof p->base, "http://127.0.0.1:%d", p->port);
            ok = 0;
        }
    }
    if (f) fclose(f);
    return ok;
}

/* Waits for exit up to timeout_ms; returns the wait status or -1 on timeout. */
static inline int tw_wait_exit(tw_proc *p, int timeout_ms) {
    uint64_t end = util_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (!p->exited) {
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->exited = 1;
            p->status = st;
            break;
        }
        if (util_now_ns() > end) return -1;
        usleep(5000);
    }
    return p->status;
}

static inline void tw_kill(tw_proc *p) {
    if (p->pid > 0 && !p->exited) {
        kill(p->pid, SIGTERM);
        if (tw_wait_exit(p, 5000) < 0) {
            kill(p->pid, SIGKILL);
            tw_wait_exit(p, 5000);
        }
    }
}

static inline void tw_dump_log(const tw_proc *p) {
    FILE *f = fopen(p->log, "r");
    if (!f) return;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 200) fprintf(stderr, "  worker| %s", line);
    fclose(f);
}

/* ---- SSE collection ---------------------------------------------------------------- */
#define TW_MAX_EV 4096
typedef struct tw_events tw_events;
typedef int (*tw_hook)(tw_events *e, const char *name, json_t *data); /* non-zero aborts */
struct tw_events {
    int n;
    char name[TW_MAX_EV][16];
    json_t *data[TW_MAX_EV];
    long ids[TW_MAX_EV];
    int bad_json;
    tw_hook hook;
    void *user;
    uint64_t first_token_ns, terminal_ns;
    struct util_sb text;        /* concatenated token "t" */
};

static inline int tw_on_event(void *u, const sse_event *ev) {
    tw_events *e = u;
    json_t *d = json_loads(ev->data, 0, NULL);
    if (!d) e->bad_json++;
    if (e->n < TW_MAX_EV) {
        snprintf(e->name[e->n], 16, "%s", ev->event);
        e->data[e->n] = d;
        e->ids[e->n] = atol(ev->id);
        e->n++;
    } else {
        json_decref(d);
        return 1;
    }
    if (!strcmp(ev->event, "token")) {
        if (!e->first_token_ns) e->first_token_ns = util_now_ns();
        json_t *t = json_object_get(d, "t");
        if (json_is_string(t)) util_sb_putn(&e->text, json_string_value(t), json_string_length(t));
    }
    if (!strcmp(ev->event, "end") || !strcmp(ev->event, "error")) e->terminal_ns = util_now_ns();
    return e->hook ? e->hook(e, ev->event, d) : 0;
}

static inline void tw_events_init(tw_events *e) {
    memset(e, 0, sizeof *e);
    util_sb_init(&e->text);
}
static inline void tw_events_free(tw_events *e) {
    for (int i = 0; i < e->n; i++) json_decref(e->data[i]);
    util_sb_free(&e->text);
    e->n = 0;
}
static inline const char *tw_text(tw_events *e) { return e->text.buf ? e->text.buf : ""; }
static inline const char *tw_last(tw_events *e) { return e->n ? e->name[e->n - 1] : ""; }
static inline json_t *tw_last_data(tw_events *e) { return e->n ? e->data[e->n - 1] : NULL; }

/* POST /execute; returns the client rc; out gets the status and (non-SSE) body. */
static inline int tw_execute(const tw_proc *p, const char *body, const char *const *headers, tw_events *e, http_resp *out) {
    char url[256], err[256];
    snprintf(url, sizeof url, "%s/execute", p->base);
    http_client_req rq = {.url = url, .body = body, .headers = headers, .timeout_ms = 60000};
    return http_client_sse(&rq, tw_on_event, e, out, err, sizeof err);
}

/* Runs one job on p to its terminal event: e (initialised here) collects the
 * events, the caller frees them. Asserts the request went through; returns
 * its HTTP status. */
static inline long tw_run(const tw_proc *p, const char *body, tw_events *e) {
    tw_events_init(e);
    http_resp r;
    assert_int_equal(tw_execute(p, body, NULL, e, &r), 0);
    long status = r.status;
    http_resp_free(&r);
    return status;
}

static inline long tw_get(const tw_proc *p, const char *path, http_resp *out) {
    char url[256], err[256];
    snprintf(url, sizeof url, "%s%s", p->base, path);
    http_client_req rq = {.url = url, .timeout_ms = 5000};
    if (http_client_do(&rq, out, err, sizeof err)) fail_msg("GET %s: %s", path, err);
    return out->status;
}

static inline long tw_post(const tw_proc *p, const char *path, const char *body, http_resp *out) {
    char url[256], err[256];
    snprintf(url, sizeof url, "%s%s", p->base, path);
    http_client_req rq = {.url = url, .body = body, .timeout_ms = 5000};
    if (http_client_do(&rq, out, err, sizeof err)) fail_msg("POST %s: %s", path, err);
    return out->status;
}

/* the error code of a JSON error body */
static inline const char *tw_err_code(json_t *j) {
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}
static inline const char *tw_err_field(json_t *j) {
    return json_string_value(json_object_get(json_object_get(json_object_get(j, "error"), "details"), "field"));
}

#endif
