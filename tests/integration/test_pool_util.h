/* test_pool_util — harness for the pool-managerd integration tests: runs the
 * real pool-managerd (which spawns real worker-cpud processes) on loopback
 * with ephemeral ports, talks to its API, and runs a TEST ORCHESTRATOR
 * endpoint in the test process: a small HTTP server that records pool
 * registrations, heartbeats and worker failure reports (it is not the
 * orchestrator; it only records what the pool sends). Header-only: each test
 * file stays one translation unit. */
#ifndef TEST_POOL_UTIL_H
#define TEST_POOL_UTIL_H

#include "testutil.h"
#include "test_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/http_client.h"
#include "common/http_server.h"
#include "common/util.h"

extern char **environ;

static inline uint64_t tp_ms(void) { return util_now_ns() / 1000000ull; }

/* ---- test orchestrator endpoint --------------------------------------------- */
#define TP_MAX_REC 512
typedef struct {
    char kind[16];        /* register | heartbeat | failed */
    char path[128];
    char auth[128];
    uint64_t at_ms;       /* monotonic receipt time */
    json_t *body;
} tp_rec;

typedef struct {
    http_server *srv;
    int port;
    pthread_mutex_t mu;
    tp_rec rec[TP_MAX_REC];
    int n;
    int hb_status;        /* answer to heartbeats (0 = 200); 404 = "register again" */
} tp_orch;

static inline void tp_orch_record(http_req *r, tp_orch *o, const char *kind) {
    size_t n;
    const char *b = http_req_body(r, &n);
    json_t *j = json_loadb(b, n, 0, NULL);
    const char *a = http_req_header(r, "Authorization");
    pthread_mutex_lock(&o->mu);
    if (o->n < TP_MAX_REC) {
        tp_rec *x = &o->rec[o->n++];
        snprintf(x->kind, sizeof x->kind, "%s", kind);
        snprintf(x->path, sizeof x->path, "%s", http_req_path(r));
        snprintf(x->auth, sizeof x->auth, "%s", a ? a : "");
        x->at_ms = tp_ms();
        x->body = j;
    } else {
        json_decref(j);
    }
    int hs = !strcmp(kind, "heartbeat") && o->hb_status ? o->hb_status : 200;
    pthread_mutex_unlock(&o->mu);
    if (hs == 200) http_respond_json(r, 200, "{\"status\":\"ok\"}");
    else http_respond_error(r, ERR_NOT_FOUND, "unknown pool", NULL);
}
static inline void tp_h_reg(http_req *r, void *u) { tp_orch_record(r, u, "register"); }
static inline void tp_h_hb(http_req *r, void *u) { tp_orch_record(r, u, "heartbeat"); }
static inline void tp_h_failed(http_req *r, void *u) { tp_orch_record(r, u, "failed"); }

/* port 0 = ephemeral */
static inline void tp_orch_start(tp_orch *o, int port) {
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
    http_server_opts so = { .bind = "127.0.0.1", .port = port, .component = "test-orch" };
    char err[256];
    assert_int_equal(http_server_new(&so, &o->srv, err, sizeof err), 0);
    http_server_route(o->srv, "POST", "/v2/pools/register", tp_h_reg, o);
    http_server_route(o->srv, "POST", "/v2/pools/{id}/heartbeat", tp_h_hb, o);
    http_server_route(o->srv, "POST", "/v2/internal/workers/failed", tp_h_failed, o);
    assert_int_equal(http_server_start(o->srv, err, sizeof err), 0);
    o->port = http_server_port(o->srv);
}

static inline void tp_orch_stop(tp_orch *o) {
    http_server_free(o->srv);
    o->srv = NULL;
    for (int i = 0; i < o->n; i++) json_decref(o->rec[i].body);
    o->n = 0;
}

static inline int tp_orch_count(tp_orch *o, const char *kind) {
    pthread_mutex_lock(&o->mu);
    int c = 0;
    for (int i = 0; i < o->n; i++) c += !strcmp(o->rec[i].kind, kind);
    pthread_mutex_unlock(&o->mu);
    return c;
}

/* a free TCP port on 127.0.0.1 (bound then released) */
static inline int tp_free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

/* ---- the pool process -------------------------------------------------------- */
typedef struct {
    pid_t pid;
    int port;
    char url[64];
    char dir[256];        /* scratch dir: cache, port file, log */
    char log[300];
} tp_pool;

/* Starts pool-managerd with extra args (NULL-terminated) and extra env
 * ("NAME=value", NULL-terminated, may be NULL); waits for its port file. */
static inline void tp_pool_start(tp_pool *p, const char *const *args, const char *const *env) {
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/llorch-pooltest-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    char bin[1024], portf[400], cache[400];
    TU_BUILD(bin, "pool-managerd");
    snprintf(portf, sizeof portf, "%s/port", p->dir);
    snprintf(cache, sizeof cache, "%s/cache", p->dir);
    snprintf(p->log, sizeof p->log, "%s/pool.log", p->dir);
    const char *argv[64];
    ts_pool_argv(argv, 64, bin, portf, cache, args, NULL);
    /* the test's variables first (getenv takes the first match), and a hub
     * that refuses connections last, so no test ever reaches the real one */
    const char *envp[256];
    int e = 0;
    for (int i = 0; env && env[i] && e < 50; i++) envp[e++] = env[i];
    for (char **x = environ; *x && e < 250; x++) envp[e++] = *x;
    envp[e++] = "LLORCH_HF_ENDPOINT=http://127.0.0.1:9";
    envp[e] = NULL;
    p->pid = ts_spawn_logged(bin, argv, envp, p->log, 1);
    p->port = ts_wait_port_file(portf, p->pid, p->log, "pool-managerd", 20000);
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", p->port);
}

/* SIGTERM and wait; returns the exit status (asserts it exits within 30 s:
 * a hang guard, not a measurement). Keeps p->dir (the log) for the caller. */
static inline int tp_pool_wait_stop(tp_pool *p) {
    if (p->pid <= 0) return -1;
    kill(p->pid, SIGTERM);
    int st = 0;
    uint64_t t0 = tp_ms();
    while (waitpid(p->pid, &st, WNOHANG) == 0) {
        if (tp_ms() - t0 > 30000) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            fail_msg("pool-managerd did not exit on SIGTERM");
        }
        usleep(20000);
    }
    p->pid = 0;
    return st;
}

/* removes p->dir (unless TP_KEEP is set) */
static inline void tp_pool_rm(tp_pool *p) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", p->dir);
    if (getenv("TP_KEEP") == NULL && system(cmd)) {}
}

/* tp_pool_wait_stop, then tp_pool_rm; returns the exit status */
static inline int tp_pool_stop(tp_pool *p) {
    if (p->pid <= 0) return -1;
    const int st = tp_pool_wait_stop(p);
    tp_pool_rm(p);
    return st;
}

/* ---- HTTP ----------------------------------------------------------------------- */
/* Returns the status; *out (may be NULL) gets the parsed body (caller decrefs). */
static inline long tp_call(const char *base, const char *method, const char *path, const char *body, json_t **out) {
    char url[2048];
    int un = snprintf(url, sizeof url, "%s%s", base, path);
    assert_true(un > 0 && (size_t)un < sizeof url);
    http_client_req rq = { .method = method, .url = url, .body = body, .timeout_ms = 10000 };
    http_resp r;
    char err[256];
    int rc = http_client_do(&rq, &r, err, sizeof err);
    long st = rc == 0 ? r.status : 0;
    if (out) *out = rc == 0 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    http_resp_free(&r);
    return st;
}

static inline json_t *tp_state(tp_pool *p) {
    json_t *j = NULL;
    assert_int_equal(tp_call(p->url, "GET", "/v2/state", NULL, &j), 200);
    assert_non_null(j);
    return j;
}

static inline json_t *tp_worker(json_t *state, const char *id) {
    json_t *ws = json_object_get(state, "workers");
    for (size_t i = 0; i < json_array_size(ws); i++) {
        json_t *w = json_array_get(ws, i);
        if (!strcmp(json_string_value(json_object_get(w, "worker_id")), id)) return w;
    }
    return NULL;
}

static inline json_t *tp_device(json_t *state, int gpu_id) {
    json_t *ds = json_object_get(state, "devices");
    for (size_t i = 0; i < json_array_size(ds); i++) {
        json_t *d = json_array_get(ds, i);
        if (json_integer_value(json_object_get(d, "gpu_id")) == gpu_id) return d;
    }
    return NULL;
}

static inline json_int_t tp_int(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }
static inline const char *tp_str(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* error code of an error body */
static inline const char *tp_code(json_t *body) {
    return tp_str(json_object_get(body, "error"), "code");
}

/* Waits (up to ms) until worker id has the given status ("gone" = absent). */
static inline int tp_wait_status(tp_pool *p, const char *id, const char *status, int ms) {
    uint64_t t0 = tp_ms();
    for (;;) {
        json_t *s = tp_state(p);
        json_t *w = tp_worker(s, id);
        int ok = !strcmp(status, "gone") ? w == NULL : (w && !strcmp(tp_str(w, "status"), status));
        json_decref(s);
        if (ok) return 1;
        if ((int)(tp_ms() - t0) > ms) return 0;
        usleep(20000);
    }
}

/* POST /v2/workers/start; returns the worker id (static buffer) or asserts. */
static inline const char *tp_start_worker(tp_pool *p, const char *body) {
    static char id[64];
    json_t *j = NULL;
    long st = tp_call(p->url, "POST", "/v2/workers/start", body, &j);
    if (st != 202) fail_msg("start answered %ld: %s", st, j ? json_dumps(j, 0) : "(no body)");
    assert_string_equal(tp_str(j, "status"), "starting");
    snprintf(id, sizeof id, "%s", tp_str(j, "worker_id"));
    json_decref(j);
    return id;
}

static inline int tp_pid_exists(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    struct stat st;
    return stat(path, &st) == 0;
}

/* processes whose parent is `parent` and whose state is Z (scans /proc) */
static inline int tp_zombie_children(pid_t parent) {
    int z = 0;
    FILE *ls = popen("ls /proc", "r");
    if (!ls) return 0;
    char name[64];
    while (fscanf(ls, "%63s", name) == 1) {
        if (name[0] < '0' || name[0] > '9') continue;
        char sp[96], buf[512];
        snprintf(sp, sizeof sp, "/proc/%s/stat", name);
        FILE *g = fopen(sp, "r");
        if (!g) continue;
        if (fgets(buf, sizeof buf, g)) {
            char *rp = strrchr(buf, ')');
            char state = 0;
            int ppid = 0;
            if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == (int)parent && state == 'Z') z++;
        }
        fclose(g);
    }
    pclose(ls);
    return z;
}

static inline const char *tp_model_ref(char *buf, size_t cap, const char *name) {
    char p[1024], rp[1024];
    TU_MODEL(p, name);
    if (!realpath(p, rp)) snprintf(rp, sizeof rp, "%s", p);
    snprintf(buf, cap, "file:%s", rp);
    return buf;
}

/* tp_start_worker with the body {"model_ref":"<model's ref>"<more>}: more is
 * the further fields, each with its leading comma ("" for none) */
static inline const char *tp_start_model(tp_pool *p, const char *model, const char *more) {
    char ref[1200], body[1400];
    tp_model_ref(ref, sizeof ref, model);
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\"%s}", ref, more);
    return tp_start_worker(p, body);
}

/* GET /metrics into out (asserts it answers 200); the caller frees out */
static inline void tp_get_metrics(tp_pool *p, http_resp *out) {
    char url[128], err[256];
    snprintf(url, sizeof url, "%s/metrics", p->url);
    http_client_req rq = { .url = url };
    assert_int_equal(http_client_do(&rq, out, err, sizeof err), 0);
    assert_int_equal(out->status, 200);
}

/* waits (asserts) up to ms for worker id to be ready; its pid from the
 * pool's state (asserted > 0) */
static inline pid_t tp_ready_pid(tp_pool *p, const char *id, int ms) {
    assert_true(tp_wait_status(p, id, "ready", ms));
    json_t *s = tp_state(p);
    pid_t pid = (pid_t)tp_int(tp_worker(s, id), "pid");
    json_decref(s);
    assert_true(pid > 0);
    return pid;
}

#endif
