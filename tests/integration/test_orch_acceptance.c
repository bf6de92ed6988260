// test-libs: llorch_net llorch_core PkgConfig::JANSSON PkgConfig::SQLITE PkgConfig::MHD
/* Issue 6 (orchestratord) acceptance points 1-7, each as written, with real
 * processes: orchestratord + worker-cpud (stories260K), and the real
 * pool-managerd (host inventory, cpu adapter) where workers are started by a
 * pool (points 1, 5, 7). Where no worker start is involved (2, 3, 4, 6) the
 * test plays the pool (register + one heartbeat listing a real worker-cpud,
 * a device with no room so no second worker is ever started).
 *
 * Determinism without sleeps or knobs in product code: a worker is frozen
 * with SIGSTOP (and the test waits until every thread of it is stopped:
 * kill() only queues the signal) to keep it "busy", to hold a dispatched
 * request before its first token, or to stop its stream at a known point
 * (after the client saw a token); SIGCONT thaws it. The harness is a trimmed
 * copy of test_orch_e2e.c's. Every child is tracked and ended in teardown,
 * also when an assertion fails (frozen ones get SIGCONT first).
 *
 *   1. test_flow_text_and_row          submit → queued → started → token* → end;
 *                                      text == the worker's own greedy /execute;
 *                                      job row complete; no prompt in the DB files
 *   2. test_priorities                 1 busy worker, 5 batch then 5 interactive
 *   3. test_reconnect_last_event_id    dropped streams + Last-Event-ID == the
 *                                      uninterrupted stream; terminal after the end
 *   4. test_cancel_queued_and_running  CANCELLED both, deadline, worker freed, idempotent
 *   5. test_worker_killed              kill -9 before the first token → retried on a
 *                                      new worker (retry logged with its delay);
 *                                      after tokens → WORKER_FAILED
 *   6. test_orch_killed_with_queue     kill -9 orchestratord with 20 queued + 1
 *                                      running; restart: the 20 complete in order,
 *                                      the running one ORCHESTRATOR_RESTARTED
 *   7. test_pool_heartbeat_exclusion   a silent pool is excluded after
 *                                      interval × threshold, included again */
#include "testutil.h"

#include "common/http_client.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct proc { pid_t pid; int port; char base[96]; char log[256]; };

static char DIR_[64], DB[128], CFGF[128];

/* ---- children ---------------------------------------------------------------------- */
static pid_t g_children[32];
static int g_nchildren;
static pid_t g_frozen[8]; /* SIGSTOPped pids: thawed in teardown */
static void track(pid_t pid) {
    if (g_nchildren < 32) g_children[g_nchildren++] = pid;
}
/* 1 when every thread of pid is stopped: kill() only queues SIGSTOP, and a
 * thread woken by other means can run on until the group stop reaches it */
static int all_stopped(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return 1; /* gone */
    int all = 1;
    struct dirent *e;
    while ((e = readdir(d)) && all) {
        if (e->d_name[0] == '.') continue;
        char sp[384], buf[512];
        snprintf(sp, sizeof sp, "%s/%s/stat", path, e->d_name);
        FILE *f = fopen(sp, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *c = strrchr(buf, ')');
        if (c && c[1] == ' ' && c[2] != 'T' && c[2] != 't' && c[2] != 'Z' && c[2] != 'X') all = 0;
    }
    closedir(d);
    return all;
}
static void freeze(pid_t pid) {
    kill(pid, SIGSTOP);
    for (int i = 0; i < 2000 && !all_stopped(pid); i++) usleep(1000);
    for (int i = 0; i < 8; i++)
        if (!g_frozen[i]) { g_frozen[i] = pid; break; }
}
static void thaw(pid_t pid) {
    kill(pid, SIGCONT);
    for (int i = 0; i < 8; i++)
        if (g_frozen[i] == pid) g_frozen[i] = 0;
}
static void reap_all(void) {
    for (int i = 0; i < 8; i++)
        if (g_frozen[i]) { kill(g_frozen[i], SIGCONT); g_frozen[i] = 0; }
    for (int i = 0; i < g_nchildren; i++) { /* SIGTERM first: pool-managerd stops its own workers */
        int st;
        if (g_children[i] <= 0 || waitpid(g_children[i], &st, WNOHANG) != 0) continue;
        kill(g_children[i], SIGTERM);
        for (int k = 0; k < 1500 && waitpid(g_children[i], &st, WNOHANG) == 0; k++) usleep(10000);
        if (kill(g_children[i], 0) == 0) {
            kill(g_children[i], SIGKILL);
            waitpid(g_children[i], &st, 0);
        }
    }
    g_nchildren = 0;
}

static const char *sv(json_t *v) { return json_is_string(v) ? json_string_value(v) : ""; }
static uint64_t now_ms(void) { return util_now_ns() / 1000000ull; }

/* starts argv; waits for its "listening" stdout line; port from the last ':' */
static int spawn(struct proc *p, const char *const *argv, const char *logname) {
    memset(p, 0, sizeof *p);
    snprintf(p->log, sizeof p->log, "%s/%s", DIR_, logname);
    int out[2];
    if (pipe(out)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(out[1], 1);
        FILE *f = fopen(p->log, "a");
        if (f) dup2(fileno(f), 2);
        close(out[0]);
        close(out[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    p->pid = pid;
    track(pid);
    FILE *f = fdopen(out[0], "r");
    char line[256];
    int ok = -1;
    if (f && fgets(line, sizeof line, f) && strstr(line, "listening")) {
        char *c = strrchr(line, ':');
        if (c) {
            p->port = atoi(c + 1);
            snprintf(p->base, sizeof p->base, "http://127.0.0.1:%d", p->port);
            ok = 0;
        }
    }
    if (f) fclose(f);
    return ok;
}

static void stop(struct proc *p, int sig) {
    if (p->pid <= 0) return;
    thaw(p->pid);
    kill(p->pid, sig);
    int st;
    for (int i = 0; i < 1500; i++) {
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) { p->pid = 0; return; }
        usleep(10000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &st, 0);
    p->pid = 0;
}

static void dump_file(const char *path) {
    FILE *f = fopen(path, "r");
    char line[1024];
    fprintf(stderr, "---- %s\n", path);
    while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
    if (f) fclose(f);
}

/* ---- HTTP ------------------------------------------------------------------------------ */
static long req(const char *method, const char *base, const char *path, const char *body, char **out) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    http_client_req rq = { .method = method, .url = url, .body = body };
    http_resp r = { 0 };
    char err[256];
    if (http_client_do(&rq, &r, err, sizeof err) != 0) {
        if (out) *out = NULL;
        return -1;
    }
    if (out) { *out = r.body; r.body = NULL; }
    long st = r.status;
    http_resp_free(&r);
    return st;
}

static char *jstr(const char *body, const char *k1) {
    json_t *j = json_loads(body ? body : "", 0, NULL);
    json_t *v = json_object_get(j, k1);
    char *s = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    json_decref(j);
    return s;
}

static char *submit(const char *orch, const char *body, long *status) {
    char *resp = NULL;
    *status = req("POST", orch, "/v2/tasks", body, &resp);
    char *id = jstr(resp, "job_id");
    free(resp);
    return id;
}

static int status_is(const char *orch, const char *id, const char *want) {
    char path[128], *resp = NULL;
    snprintf(path, sizeof path, "/v2/tasks/%s", id);
    req("GET", orch, path, NULL, &resp);
    char *s = jstr(resp, "status");
    int ok = s && strcmp(s, want) == 0;
    free(s);
    free(resp);
    return ok;
}

static int wait_status(const char *orch, const char *id, const char *want, int timeout_ms) {
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < (uint64_t)timeout_ms) {
        if (status_is(orch, id, want)) return 1;
        usleep(10000);
    }
    return status_is(orch, id, want);
}

static long cancel(const char *orch, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v2/tasks/%s", id);
    return req("DELETE", orch, path, NULL, NULL);
}

/* ---- SSE ------------------------------------------------------------------------------- */
struct ev { long long id; char name[16]; char *data; };
struct evlist {
    int n, cap;
    struct ev *v;
    int tokens;
    char code[32];
    char text[8192];
    int (*hook)(struct evlist *, const sse_event *); /* nonzero: drop the connection */
    pid_t pid;                                        /* for hooks */
    int arg;
};
static void ev_free(struct evlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i].data);
    free(l->v);
    memset(l, 0, sizeof *l);
}
static int on_ev(void *u, const sse_event *e) {
    struct evlist *l = u;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    struct ev *x = &l->v[l->n++];
    x->id = atoll(e->id);
    snprintf(x->name, sizeof x->name, "%s", e->event);
    x->data = strndup(e->data, e->data_len);
    json_t *d = json_loadb(e->data, e->data_len, 0, NULL);
    if (strcmp(e->event, "token") == 0) {
        l->tokens++;
        const char *t = json_string_value(json_object_get(d, "t"));
        if (t) strncat(l->text, t, sizeof l->text - strlen(l->text) - 1);
    } else if (strcmp(e->event, "error") == 0) {
        const char *c = json_string_value(json_object_get(d, "code"));
        snprintf(l->code, sizeof l->code, "%s", c ? c : "");
    }
    json_decref(d);
    return l->hook ? l->hook(l, e) : 0;
}
/* GET events after last_id (-1: from the start); returns http_client_sse's rc */
static int events(const char *orch, const char *id, long long last_id, struct evlist *l) {
    char url[256], lei[64];
    snprintf(url, sizeof url, "%s/v2/tasks/%s/events", orch, id);
    snprintf(lei, sizeof lei, "Last-Event-ID: %lld", last_id);
    const char *hdr[] = { lei, NULL };
    http_client_req rq = { .method = "GET", .url = url, .timeout_ms = 60000, .headers = last_id >= 0 ? hdr : NULL };
    http_resp r = { 0 };
    char err[128];
    int rc = http_client_sse(&rq, on_ev, l, &r, err, sizeof err);
    http_resp_free(&r);
    return rc;
}
static const char *last_name(const struct evlist *l) { return l->n ? l->v[l->n - 1].name : ""; }
static int count_name(const struct evlist *l, const char *name) {
    int k = 0;
    for (int i = 0; i < l->n; i++) k += strcmp(l->v[i].name, name) == 0;
    return k;
}
/* hook: freeze l->pid at the l->arg-th token and drop the connection */
static int hook_freeze_at_token(struct evlist *l, const sse_event *e) {
    if (strcmp(e->event, "token") == 0 && l->tokens >= l->arg) {
        freeze(l->pid);
        return 1;
    }
    return 0;
}

/* ---- SQLite ------------------------------------------------------------------------------ */
static long long q1(const char *sql) {
    sqlite3 *db;
    if (sqlite3_open_v2(DB, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return -2;
    sqlite3_busy_timeout(db, 2000);
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}
static long long q1f(const char *fmt, const char *id) {
    char sql[512];
    snprintf(sql, sizeof sql, fmt, id);
    return q1(sql);
}

/* ---- processes -------------------------------------------------------------------------- */
static void model_path(char *out, size_t cap) { /* file: refs must be absolute */
    char m[256];
    TU_MODEL(m, "stories260K.gguf");
    if (!realpath(m, out)) snprintf(out, cap, "%s", m);
}

static int have_bins(int need_pool) {
    char b[256], m[256];
    TU_MODEL(m, "stories260K.gguf");
    if (access(m, R_OK) != 0) return 0;
    TU_BUILD(b, "orchestratord");
    if (access(b, X_OK) != 0) return 0;
    TU_BUILD(b, "worker-cpud");
    if (access(b, X_OK) != 0) return 0;
    TU_BUILD(b, "pool-managerd");
    return !need_pool || access(b, X_OK) == 0;
}

static int start_worker(struct proc *w, const char *id) {
    char bin[256], model[256], log[64];
    TU_BUILD(bin, "worker-cpud");
    TU_MODEL(model, "stories260K.gguf");
    const char *argv[] = { bin, "--worker-id", id, "--model", model, "--port", "0", "--threads", "1", NULL };
    snprintf(log, sizeof log, "worker-%s.log", id);
    return spawn(w, argv, log);
}

/* catalog "stories" (context 512) + extra YAML */
static void write_config(const char *mem, const char *extra_yaml) {
    char model[PATH_MAX];
    model_path(model, sizeof model);
    FILE *f = fopen(CFGF, "w");
    fprintf(f, "models:\n  stories:\n    model_ref: 'file:%s'\n    context_length: 512\n    memory_bytes: %s\n%s", model,
            mem, extra_yaml ? extra_yaml : "");
    fclose(f);
}

static int start_orch(struct proc *o, const char *logname, const char *const *extra) {
    char bin[256];
    TU_BUILD(bin, "orchestratord");
    const char *argv[32] = { bin, "--config", CFGF, "--bind", "127.0.0.1:0", "--state", DB };
    int n = 7;
    for (int i = 0; extra && extra[i] && n < 30; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    return spawn(o, argv, logname);
}

/* the test as the pool: one device with no room (no worker is ever started),
 * listing the given real workers as ready */
static int64_t g_ts;
static long play_pool(const char *orch, const char *pool, const char *wid, const char *uri) {
    char model[PATH_MAX], body[PATH_MAX + 1024];
    model_path(model, sizeof model);
    snprintf(body, sizeof body, "{\"pool_id\":\"%s\",\"endpoint\":\"http://127.0.0.1:9\",\"devices\":[{\"gpu_id\":-1,"
                                "\"total_bytes\":8000000000,\"free_bytes\":0}]}", pool);
    long st = req("POST", orch, "/v2/pools/register", body, NULL);
    if (st != 200) return st;
    int64_t ts = (int64_t)util_wall_ms();
    if (ts <= g_ts) ts = g_ts + 1;
    g_ts = ts;
    snprintf(body, sizeof body, "{\"pool_id\":\"%s\",\"ts\":%lld,\"devices\":[{\"gpu_id\":-1,\"total_bytes\":8000000000,"
                                "\"free_bytes\":0}],\"workers\":[{\"worker_id\":\"%s\",\"model_ref\":\"file:%s\","
                                "\"uri\":\"%s\",\"status\":\"ready\",\"capabilities\":[\"text-gen\"],"
                                "\"memory_bytes\":1000000}]}", pool, (long long)ts, wid, model, uri);
    char path[96];
    snprintf(path, sizeof path, "/v2/pools/%s/heartbeat", pool);
    return req("POST", orch, path, body, NULL);
}

/* the real pool-managerd (host inventory, cpu adapter); returns its URL in pool_url */
static pid_t start_pool(const char *orch, const char *pool_id, int hb_ms, char *pool_url, size_t cap) {
    char pbin[256], cache[128], portf[128], plog[128], hb[16];
    TU_BUILD(pbin, "pool-managerd");
    snprintf(cache, sizeof cache, "%s/cache", DIR_);
    snprintf(portf, sizeof portf, "%s/pool.port", DIR_);
    snprintf(plog, sizeof plog, "%s/pool.log", DIR_);
    snprintf(hb, sizeof hb, "%d", hb_ms);
    unlink(portf);
    pid_t pool = fork();
    if (pool < 0) return -1;
    if (pool == 0) {
        int fd = open(plog, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execl(pbin, pbin, "--inventory", "host", "--orchestrator-url", orch, "--orchestrator-token", "pt",
              "--heartbeat-interval-ms", hb, "--bind", "127.0.0.1:0", "--port-file", portf, "--cache-dir", cache,
              "--pool-id", pool_id, (char *)NULL);
        _exit(127);
    }
    track(pool);
    int port = 0;
    for (int i = 0; i < 3000 && port <= 0; i++) {
        FILE *f = fopen(portf, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
        if (port <= 0) usleep(10000);
    }
    snprintf(pool_url, cap, "http://127.0.0.1:%d", port);
    return port > 0 ? pool : -1;
}

static const char *POOL_YAML = "heartbeat: {interval_ms: 300, missed_threshold: 3}\n"
                               "auth: {pool_tokens: [pt]}\ndeployment: lab\n";

static int wait_pool_available(const char *orch, const char *pool_id, int want, int timeout_ms) {
    char needle[128];
    snprintf(needle, sizeof needle, "\"pool_id\":\"%s\"", pool_id);
    uint64_t t0 = now_ms();
    do {
        char *pools = NULL;
        int got = -1;
        if (req("GET", orch, "/v2/pools", NULL, &pools) == 200 && pools) {
            json_t *j = json_loads(pools, 0, NULL);
            json_t *arr = json_is_array(j) ? j : json_object_get(j, "pools");
            for (size_t i = 0; i < json_array_size(arr); i++) {
                json_t *p = json_array_get(arr, i);
                if (strcmp(sv(json_object_get(p, "pool_id")), pool_id) == 0)
                    got = json_is_true(json_object_get(p, "available"));
            }
            json_decref(j);
        }
        free(pools);
        if (got == want) return 1;
        usleep(10000);
    } while (now_ms() - t0 < (uint64_t)timeout_ms);
    return 0;
}

/* the pid of worker wid from the pool's /v2/state */
static pid_t pool_worker_pid(const char *pool_url, const char *wid) {
    char *s = NULL;
    pid_t pid = 0;
    if (req("GET", pool_url, "/v2/state", NULL, &s) == 200 && s) {
        json_t *j = json_loads(s, 0, NULL);
        json_t *ws = json_object_get(j, "workers");
        for (size_t i = 0; i < json_array_size(ws); i++) {
            json_t *w = json_array_get(ws, i);
            if (strcmp(sv(json_object_get(w, "worker_id")), wid) == 0)
                pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
        }
        json_decref(j);
    }
    free(s);
    return pid;
}

/* polls GET /v2/workers until worker wid has the status */
static int wait_worker_status(const char *orch, const char *wid, const char *want, int timeout_ms) {
    uint64_t t0 = now_ms();
    do {
        char *wk = NULL;
        int ok = 0;
        if (req("GET", orch, "/v2/workers", NULL, &wk) == 200 && wk) {
            json_t *j = json_loads(wk, 0, NULL);
            json_t *ws = json_object_get(j, "workers");
            for (size_t i = 0; i < json_array_size(ws); i++) {
                json_t *w = json_array_get(ws, i);
                if (!strcmp(sv(json_object_get(w, "worker_id")), wid) && !strcmp(sv(json_object_get(w, "status")), want))
                    ok = 1;
            }
            json_decref(j);
        }
        free(wk);
        if (ok) return 1;
        usleep(10000);
    } while (now_ms() - t0 < (uint64_t)timeout_ms);
    return 0;
}

/* column of the job row as a malloc'd string */
static char *row_str(const char *col, const char *id) {
    sqlite3 *db;
    char *out = NULL, sql[256];
    if (sqlite3_open_v2(DB, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return NULL;
    sqlite3_busy_timeout(db, 2000);
    snprintf(sql, sizeof sql, "SELECT %s FROM jobs WHERE id=?1", col);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            out = strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/* the job ids of the "dispatch" log lines, in order */
static int dispatch_order(const char *log, char ids[][37], int max) {
    FILE *f = fopen(log, "r");
    char line[2048];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"event\":\"dispatch\"")) continue;
        char *p = strstr(line, "\"job_id\":\"");
        if (!p || n >= max) continue;
        snprintf(ids[n++], 37, "%.36s", p + 10);
    }
    if (f) fclose(f);
    return n;
}

static int file_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t nl = strlen(needle), cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    int found = 0;
    for (size_t i = 0; i + nl <= len && !found; i++) found = memcmp(buf + i, needle, nl) == 0;
    free(buf);
    return found;
}

static int setup(void **s) {
    (void)s;
    snprintf(DIR_, sizeof DIR_, "/tmp/llorch-orch-acc-XXXXXX");
    if (!mkdtemp(DIR_)) return -1;
    snprintf(DB, sizeof DB, "%s/state.db", DIR_);
    snprintf(CFGF, sizeof CFGF, "%s/orch.yaml", DIR_);
    g_ts = 0;
    return 0;
}
static int teardown(void **s) {
    (void)s;
    reap_all();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "%s rm -rf %s", getenv("KEEP") ? "true" : "", DIR_);
    if (system(cmd)) { /* best effort */ }
    return 0;
}

/* ===== 1 =============================================================================== */
static void test_flow_text_and_row(void **s) {
    (void)s;
    if (!have_bins(1)) skip();
    write_config("50MB", POOL_YAML);
    struct proc o;
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    char pool_url[96];
    assert_true(start_pool(o.base, "box1", 300, pool_url, sizeof pool_url) > 0);
    if (!wait_pool_available(o.base, "box1", 1, 30000)) { dump_file(o.log); fail_msg("the pool never registered"); }
    const char *secret = "Once upon a time there was a zebrasecretword";
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"stories\",\"prompt\":\"%s\",\"max_tokens\":16,\"temperature\":0}", secret);
    long st;
    char *id = submit(o.base, body, &st);
    assert_int_equal(st, 202);
    struct evlist l = { 0 };
    events(o.base, id, -1, &l);
    if (strcmp(last_name(&l), "end")) { dump_file(o.log); fail_msg("job ended with '%s' %s", last_name(&l), l.code); }
    /* queued → started → token* → end, ids 0,1,2,... */
    assert_string_equal(l.v[0].name, "queued");
    assert_string_equal(l.v[1].name, "started");
    for (int i = 0; i < l.n; i++) {
        assert_int_equal(l.v[i].id, i);
        if (i >= 2 && i < l.n - 1) assert_true(!strcmp(l.v[i].name, "token") || !strcmp(l.v[i].name, "metrics"));
    }
    assert_int_equal(l.tokens, 16);
    /* the worker the pool started, asked directly: the same greedy text */
    char *row_w = row_str("worker_id", id);
    assert_non_null(row_w);
    char *wk = NULL;
    assert_int_equal(req("GET", o.base, "/v2/workers", NULL, &wk), 200);
    json_t *wj = json_loads(wk, 0, NULL);
    const char *uri = NULL;
    json_t *ws = json_object_get(wj, "workers");
    for (size_t i = 0; i < json_array_size(ws); i++)
        if (!strcmp(sv(json_object_get(json_array_get(ws, i), "worker_id")), row_w))
            uri = json_string_value(json_object_get(json_array_get(ws, i), "uri"));
    assert_non_null(uri);
    char url[256];
    snprintf(url, sizeof url, "%s/execute", uri);
    snprintf(body, sizeof body, "{\"job_id\":\"direct-1\",\"prompt\":\"%s\",\"max_tokens\":16,\"temperature\":0}", secret);
    http_client_req rq = { .method = "POST", .url = url, .body = body, .timeout_ms = 60000 };
    http_resp r = { 0 };
    char err[128];
    struct evlist d = { 0 };
    assert_int_equal(http_client_sse(&rq, on_ev, &d, &r, err, sizeof err), 0);
    http_resp_free(&r);
    json_decref(wj);
    free(wk);
    assert_string_equal(last_name(&d), "end");
    assert_true(strlen(l.text) > 0);
    assert_string_equal(l.text, d.text);
    /* the job row: every timestamp in order, worker and pool, tokens in/out */
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='completed' AND pool_id='box1' "
                         "AND worker_id IS NOT NULL AND worker_id<>'' AND tokens_in>0 AND tokens_out=16 "
                         "AND created_ms>0 AND queued_ms>=created_ms AND dispatched_ms>=queued_ms "
                         "AND started_ms>=dispatched_ms AND completed_ms>=started_ms AND outcome IS NOT NULL",
                         id), 1);
    assert_true(pool_worker_pid(pool_url, row_w) > 0); /* a worker of that pool */
    free(row_w);
    /* no prompt anywhere: after a clean stop the state files hold no trace of it */
    stop(&o, SIGTERM);
    char f[160];
    const char *sfx[] = { "", "-wal", "-shm", "-journal" };
    for (int i = 0; i < 4; i++) {
        snprintf(f, sizeof f, "%s%s", DB, sfx[i]);
        if (file_contains(f, "zebrasecretword")) fail_msg("the prompt is in %s", f);
    }
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    if (file_contains(o.log, "zebrasecretword")) fail_msg("the prompt is in the orchestrator's log");
    ev_free(&l);
    ev_free(&d);
    free(id);
}

/* ===== 2 =============================================================================== */
static void test_priorities(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    struct proc w, o;
    assert_int_equal(start_worker(&w, "w1"), 0);
    write_config("1GB", "retry: {initial_delay_ms: 50, max_delay_ms: 200}\n");
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    assert_int_equal(play_pool(o.base, "p1", "w1", w.base), 200);
    /* the only worker busy: its job is dispatched to it while it is frozen */
    freeze(w.pid);
    long st;
    char *blocker = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":4}", &st);
    assert_int_equal(st, 202);
    assert_true(wait_status(o.base, blocker, "dispatched", 20000));
    char *b[5], *in[5];
    for (int i = 0; i < 5; i++) {
        b[i] = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Batch\",\"max_tokens\":2,\"priority\":\"batch\"}", &st);
        assert_int_equal(st, 202);
    }
    for (int i = 0; i < 5; i++) {
        in[i] = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Inter\",\"max_tokens\":2,\"priority\":\"interactive\"}",
                       &st);
        assert_int_equal(st, 202);
    }
    for (int i = 0; i < 5; i++) {
        assert_true(status_is(o.base, b[i], "queued"));
        assert_true(status_is(o.base, in[i], "queued"));
    }
    thaw(w.pid);
    struct evlist l = { 0 };
    for (int i = 0; i < 5; i++) {
        events(o.base, b[i], -1, &l);
        if (strcmp(last_name(&l), "end")) { dump_file(o.log); fail_msg("batch job %d: %s", i, l.code); }
        ev_free(&l);
        events(o.base, in[i], -1, &l);
        assert_string_equal(last_name(&l), "end");
        ev_free(&l);
    }
    /* dispatch order (the orchestrator's log, exact): blocker, in0..4, b0..4 */
    char ids[32][37];
    int n = dispatch_order(o.log, ids, 32);
    assert_int_equal(n, 11);
    assert_string_equal(ids[0], blocker);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(ids[1 + i], in[i]);
        assert_string_equal(ids[6 + i], b[i]);
    }
    /* and the rows agree: every interactive started no later than any batch */
    assert_true(q1("SELECT max(started_ms) FROM jobs WHERE priority='interactive'") <=
                q1("SELECT min(started_ms) FROM jobs WHERE priority='batch'"));
    for (int i = 0; i < 5; i++) { free(b[i]); free(in[i]); }
    free(blocker);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
}

/* ===== 3 =============================================================================== */
struct reader { const char *orch, *id; struct evlist l; };
static void *reader_main(void *a) {
    struct reader *r = a;
    events(r->orch, r->id, -1, &r->l);
    return NULL;
}

static void test_reconnect_last_event_id(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    struct proc w, o;
    assert_int_equal(start_worker(&w, "w1"), 0);
    write_config("1GB", NULL);
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    assert_int_equal(play_pool(o.base, "p1", "w1", w.base), 200);
    long st;
    char *id = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":300,"
                              "\"temperature\":0.8,\"seed\":42}", &st);
    assert_int_equal(st, 202);
    /* an uninterrupted reader, connected all along */
    struct reader full = { .orch = o.base, .id = id };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &full), 0);
    /* connection 1: freeze the worker at the 3rd token and drop (mid-job) */
    struct evlist c1 = { .hook = hook_freeze_at_token, .pid = w.pid, .arg = 3 };
    events(o.base, id, -1, &c1);
    int live = status_is(o.base, id, "running");
    thaw(w.pid);
    /* connection 2: resumes live, freezes again 5 tokens later and drops */
    struct evlist c2 = { .hook = hook_freeze_at_token, .pid = w.pid, .arg = 5 };
    events(o.base, id, c1.v[c1.n - 1].id, &c2);
    thaw(w.pid);
    /* the job ends with no client connected; connection 3 gets the rest and the terminal event */
    assert_true(wait_status(o.base, id, "completed", 60000));
    struct evlist c3 = { 0 };
    long long last = c2.n ? c2.v[c2.n - 1].id : c1.v[c1.n - 1].id;
    events(o.base, id, last, &c3);
    pthread_join(th, NULL);
    print_message("stream of %d events; drops after %d and %d more (job still running at drop 1: %d)\n", full.l.n, c1.n,
                  c2.n, live);
    assert_string_equal(last_name(&full.l), "end");
    assert_string_equal(last_name(&c3), "end");
    assert_int_equal(count_name(&full.l, "end"), 1);
    /* concatenation == the uninterrupted stream: same ids (strictly increasing), names, payloads */
    struct evlist *parts[] = { &c1, &c2, &c3 };
    int k = 0;
    long long prev = -1;
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < parts[p]->n; i++, k++) {
            struct ev *x = &parts[p]->v[i];
            assert_true(k < full.l.n);
            assert_true(x->id > prev);
            prev = x->id;
            assert_int_equal(x->id, full.l.v[k].id);
            assert_string_equal(x->name, full.l.v[k].name);
            assert_string_equal(x->data, full.l.v[k].data);
        }
    assert_int_equal(k, full.l.n);
    /* a reconnect after the end with an earlier Last-Event-ID replays up to and including the terminal event */
    struct evlist c4 = { 0 };
    events(o.base, id, full.l.v[full.l.n - 2].id, &c4);
    assert_int_equal(c4.n, 1);
    assert_string_equal(c4.v[0].name, "end");
    assert_int_equal(c4.v[0].id, full.l.v[full.l.n - 1].id);
    /* and an unknown job is 404 */
    assert_int_equal(req("GET", o.base, "/v2/tasks/00000000-0000-4000-8000-000000000000/events", NULL, NULL), 404);
    ev_free(&full.l);
    ev_free(&c1);
    ev_free(&c2);
    ev_free(&c3);
    ev_free(&c4);
    free(id);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
}

/* ===== 4 =============================================================================== */
static void test_cancel_queued_and_running(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    struct proc w, o;
    assert_int_equal(start_worker(&w, "w1"), 0);
    write_config("1GB", "timeout: {cancellation_deadline_ms: 2000}\nretry: {initial_delay_ms: 50, max_delay_ms: 200}\n");
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    assert_int_equal(play_pool(o.base, "p1", "w1", w.base), 200);
    long st;
    /* R runs: frozen after its first token (the worker stays frozen: it cannot honour /cancel) */
    char *run = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":400,"
                               "\"temperature\":0.8,\"seed\":3}", &st);
    assert_int_equal(st, 202);
    struct evlist l = { .hook = hook_freeze_at_token, .pid = w.pid, .arg = 1 };
    events(o.base, run, -1, &l);
    ev_free(&l);
    assert_true(status_is(o.base, run, "running"));
    /* Q waits behind it */
    char *q = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Twice\",\"max_tokens\":2}", &st);
    assert_int_equal(st, 202);
    assert_true(status_is(o.base, q, "queued"));
    /* the queued one ends at once */
    assert_int_equal(cancel(o.base, q), 202);
    assert_true(status_is(o.base, q, "cancelled"));
    assert_int_equal(cancel(o.base, q), 202); /* harmless */
    /* the running one: within the deadline (2 s) even though the worker never answers */
    uint64_t t0 = now_ms();
    assert_int_equal(cancel(o.base, run), 202);
    assert_int_equal(cancel(o.base, run), 202);
    assert_true(wait_status(o.base, run, "cancelled", 15000));
    uint64_t took = now_ms() - t0;
    print_message("running job cancelled after %llu ms (deadline 2000 ms)\n", (unsigned long long)took);
    assert_true(took <= 2000 + 1500); /* the deadline + one dispatcher pass, generous for ASan */
    assert_int_equal(cancel(o.base, run), 202);
    /* state: cancelled, one terminal event each */
    const char *both[] = { q, run };
    for (int i = 0; i < 2; i++) {
        assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='cancelled' AND error_code='CANCELLED'",
                             both[i]), 1);
        struct evlist e = { 0 };
        events(o.base, both[i], -1, &e);
        assert_int_equal(count_name(&e, "error") + count_name(&e, "end"), 1);
        assert_string_equal(last_name(&e), "error");
        assert_string_equal(e.code, "CANCELLED");
        ev_free(&e);
    }
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    /* the worker is freed: thawed, it serves the next job (the same worker, the only one) */
    thaw(w.pid);
    char *next = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Thrice\",\"max_tokens\":3}", &st);
    assert_int_equal(st, 202);
    events(o.base, next, -1, &l);
    if (strcmp(last_name(&l), "end")) { dump_file(o.log); fail_msg("next job: %s", l.code); }
    ev_free(&l);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='completed' AND worker_id='w1'", next), 1);
    /* and the worker reports itself idle */
    char *h = NULL;
    assert_int_equal(req("GET", w.base, "/health", NULL, &h), 200);
    assert_non_null(strstr(h, "\"busy\":false"));
    free(h);
    /* a running job on a worker that answers: cancelled well inside the deadline,
     * the worker idle again */
    char *run2 = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":400,"
                                "\"temperature\":0.8,\"seed\":4}", &st);
    assert_int_equal(st, 202);
    struct evlist l2 = { .hook = hook_freeze_at_token, .pid = w.pid, .arg = 1 };
    events(o.base, run2, -1, &l2);
    ev_free(&l2);
    assert_true(status_is(o.base, run2, "running"));
    t0 = now_ms();
    assert_int_equal(cancel(o.base, run2), 202);
    thaw(w.pid);
    assert_true(wait_status(o.base, run2, "cancelled", 15000));
    took = now_ms() - t0;
    print_message("running job on a live worker cancelled after %llu ms\n", (unsigned long long)took);
    assert_true(took < 2000);
    events(o.base, run2, -1, &l2);
    assert_string_equal(l2.code, "CANCELLED");
    assert_int_equal(count_name(&l2, "error") + count_name(&l2, "end"), 1);
    ev_free(&l2);
    int idle = 0;
    for (int i = 0; i < 1000 && !idle; i++) {
        h = NULL;
        idle = req("GET", w.base, "/health", NULL, &h) == 200 && h && strstr(h, "\"busy\":false");
        free(h);
        if (!idle) usleep(10000);
    }
    assert_true(idle);
    free(run2);
    free(next);
    free(run);
    free(q);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
}

/* hook: at the l->arg-th token, freeze the worker serving g_job (from its row
 * and the pool's state) and drop the connection; its pid goes to l->pid */
static const char *g_pool_url, *g_job;
static int hook_freeze_serving_worker(struct evlist *l, const sse_event *e) {
    if (strcmp(e->event, "token") != 0 || l->tokens < l->arg) return 0;
    char *wid = row_str("worker_id", g_job);
    l->pid = wid ? pool_worker_pid(g_pool_url, wid) : 0;
    free(wid);
    if (l->pid > 0) freeze(l->pid);
    return 1;
}

/* ===== 5 =============================================================================== */
static void test_worker_killed(void **s) {
    (void)s;
    if (!have_bins(1)) skip();
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%sretry: {initial_delay_ms: 200, max_delay_ms: 1000}\n", POOL_YAML);
    write_config("50MB", yaml);
    struct proc o;
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    char pool_url[96];
    assert_true(start_pool(o.base, "box1", 300, pool_url, sizeof pool_url) > 0);
    if (!wait_pool_available(o.base, "box1", 1, 30000)) { dump_file(o.log); fail_msg("the pool never registered"); }
    long st;
    /* a first job makes the pool start worker W1 */
    char *warm = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":2}", &st);
    assert_int_equal(st, 202);
    struct evlist l = { 0 };
    events(o.base, warm, -1, &l);
    if (strcmp(last_name(&l), "end")) { dump_file(o.log); fail_msg("warm-up job: %s", l.code); }
    ev_free(&l);
    char *w1 = row_str("worker_id", warm);
    assert_non_null(w1);
    pid_t p1 = pool_worker_pid(pool_url, w1);
    assert_true(p1 > 0);
    assert_true(wait_worker_status(o.base, w1, "ready", 20000)); /* released: the next job goes to it */

    /* (a) before the first token: W1 frozen, the job dispatched to it (the
     * request sits in its socket), then kill -9 */
    freeze(p1);
    char *j = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}",
                     &st);
    assert_int_equal(st, 202);
    if (!wait_status(o.base, j, "dispatched", 20000)) {
        char path[128], *resp = NULL;
        snprintf(path, sizeof path, "/v2/tasks/%s", j);
        req("GET", o.base, path, NULL, &resp);
        print_error("job %s never seen dispatched: %s\n", j, resp ? resp : "?");
        char cmd[160];
        snprintf(cmd, sizeof cmd, "cat /proc/%d/stat >&2; grep -h . %s/pool.log | tail -30 >&2", (int)p1, DIR_);
        if (system(cmd)) {}
        free(resp);
        dump_file(o.log);
        fail();
    }
    char *wd = row_str("worker_id", j);
    assert_non_null(wd);
    assert_string_equal(wd, w1);
    free(wd);
    usleep(200000); /* let the relay's request reach the frozen worker's socket */
    kill(p1, SIGKILL);
    thaw(p1);
    events(o.base, j, -1, &l);
    if (strcmp(last_name(&l), "end")) { dump_file(o.log); fail_msg("job after the kill: %s", l.code); }
    assert_int_equal(count_name(&l, "started"), 1);
    assert_int_equal(l.tokens, 8);
    ev_free(&l);
    char *w2 = row_str("worker_id", j);
    assert_non_null(w2);
    assert_string_not_equal(w2, w1); /* a new worker */
    assert_true(q1f("SELECT retry_count FROM jobs WHERE id='%s' AND status='completed'", j) >= 1);
    /* the backoff is in the log: a retry event with its delay for this job */
    FILE *f = fopen(o.log, "r");
    char line[2048];
    int retry_logged = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "\"event\":\"retry\"") && strstr(line, j) && strstr(line, "\"delay_ms\":")) retry_logged = 1;
    if (f) fclose(f);
    if (!retry_logged) { dump_file(o.log); fail_msg("no retry with delay_ms logged for %s", j); }

    /* (b) after tokens were sent: freeze the worker once the client saw a token, then kill -9 */
    char *k = NULL;
    int hit = 0;
    pid_t p2 = 0;
    for (int attempt = 0; attempt < 5 && !hit; attempt++) {
        free(k);
        k = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":400,"
                           "\"temperature\":0.8,\"seed\":11}", &st);
        assert_int_equal(st, 202);
        g_pool_url = pool_url;
        g_job = k;
        struct evlist c = { .hook = hook_freeze_serving_worker, .arg = 1 };
        events(o.base, k, -1, &c);
        p2 = c.pid;
        ev_free(&c);
        assert_true(p2 > 0);
        if (status_is(o.base, k, "running")) hit = 1;
        else thaw(p2); /* it finished before the freeze: try again */
    }
    assert_true(hit);
    kill(p2, SIGKILL);
    thaw(p2);
    events(o.base, k, -1, &l);
    assert_string_equal(last_name(&l), "error");
    assert_string_equal(l.code, "WORKER_FAILED");
    assert_true(l.tokens >= 1);
    assert_int_equal(count_name(&l, "error"), 1);
    ev_free(&l);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='failed' AND error_code='WORKER_FAILED' "
                         "AND retry_count=0", k), 1);
    free(k);
    free(j);
    free(w1);
    free(w2);
    free(warm);
    stop(&o, SIGTERM);
}

/* ===== 6 =============================================================================== */
static void test_orch_killed_with_queue(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    struct proc w, o;
    assert_int_equal(start_worker(&w, "w1"), 0);
    write_config("1GB", "retry: {initial_delay_ms: 50, max_delay_ms: 200}\n");
    assert_int_equal(start_orch(&o, "orch1.log", NULL), 0);
    assert_int_equal(play_pool(o.base, "p1", "w1", w.base), 200);
    long st;
    char *run = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":400,"
                               "\"temperature\":0.8,\"seed\":5}", &st);
    assert_int_equal(st, 202);
    struct evlist l = { .hook = hook_freeze_at_token, .pid = w.pid, .arg = 1 };
    events(o.base, run, -1, &l);
    ev_free(&l);
    assert_true(status_is(o.base, run, "running"));
    char *q[20];
    for (int i = 0; i < 20; i++) {
        char body[160];
        snprintf(body, sizeof body, "{\"model\":\"stories\",\"prompt\":\"Job %d\",\"max_tokens\":2,\"priority\":\"%s\"}",
                 i, i % 3 ? "interactive" : "batch");
        q[i] = submit(o.base, body, &st);
        assert_int_equal(st, 202);
    }
    assert_int_equal(q1("SELECT count(*) FROM queue"), 20);
    stop(&o, SIGKILL);
    /* the worker sees its client gone and ends the job; wait until it is idle
     * (a busy answer would only be a retry, but then the order would tell less) */
    thaw(w.pid);
    int idle = 0;
    for (int i = 0; i < 3000 && !idle; i++) {
        char *h = NULL;
        idle = req("GET", w.base, "/health", NULL, &h) == 200 && h && strstr(h, "\"busy\":false");
        free(h);
        if (!idle) usleep(10000);
    }
    assert_true(idle);
    assert_int_equal(start_orch(&o, "orch2.log", NULL), 0);
    /* the running one: failed with the stable code, its terminal event replayed */
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='failed' "
                         "AND error_code='ORCHESTRATOR_RESTARTED'", run), 1);
    events(o.base, run, -1, &l);
    assert_string_equal(last_name(&l), "error");
    assert_string_equal(l.code, "ORCHESTRATOR_RESTARTED");
    ev_free(&l);
    for (int i = 0; i < 20; i++) assert_true(status_is(o.base, q[i], "queued"));
    /* the pool comes back (it re-registers with a restarted orchestrator) */
    assert_int_equal(play_pool(o.base, "p1", "w1", w.base), 200);
    for (int i = 0; i < 20; i++) {
        events(o.base, q[i], -1, &l);
        if (strcmp(last_name(&l), "end")) { dump_file(o.log); fail_msg("job %d: %s", i, l.code); }
        assert_int_equal(count_name(&l, "started"), 1);
        assert_int_equal(count_name(&l, "end"), 1);
        ev_free(&l);
    }
    /* in order: interactive ones in submission order, then the batch ones (the queue's
     * service order, kept across the restart); each dispatched exactly once */
    char want[20][37], got[40][37];
    int nw = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < 20; i++)
            if ((pass == 0) == (i % 3 != 0)) snprintf(want[nw++], 37, "%s", q[i]);
    int n = dispatch_order(o.log, got, 40);
    assert_int_equal(n, 20);
    for (int i = 0; i < 20; i++) assert_string_equal(got[i], want[i]);
    /* nothing lost or duplicated in the state file */
    assert_int_equal(q1("SELECT count(*) FROM jobs"), 21);
    assert_int_equal(q1("SELECT count(DISTINCT id) FROM jobs"), 21);
    assert_int_equal(q1("SELECT count(*) FROM jobs WHERE status='completed' AND tokens_out=2 AND retry_count=0"), 20);
    assert_int_equal(q1("SELECT count(*) FROM jobs WHERE status='failed'"), 1);
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    for (int i = 0; i < 20; i++) free(q[i]);
    free(run);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
}

/* ===== 7 =============================================================================== */
static void test_pool_heartbeat_exclusion(void **s) {
    (void)s;
    if (!have_bins(1)) skip();
    write_config("50MB", POOL_YAML); /* interval 300 ms × threshold 3 */
    struct proc o;
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    char pool_url[96];
    pid_t pool = start_pool(o.base, "box1", 300, pool_url, sizeof pool_url);
    assert_true(pool > 0);
    if (!wait_pool_available(o.base, "box1", 1, 30000)) { dump_file(o.log); fail_msg("the pool never registered"); }
    long st;
    char *warm = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":2}", &st);
    assert_int_equal(st, 202);
    struct evlist l = { 0 };
    events(o.base, warm, -1, &l);
    assert_string_equal(last_name(&l), "end");
    ev_free(&l);
    /* the pool goes silent (frozen; its worker keeps running) */
    uint64_t t0 = now_ms();
    freeze(pool);
    if (!wait_pool_available(o.base, "box1", 0, 20000)) fail_msg("a silent pool stays available");
    uint64_t gone = now_ms() - t0;
    print_message("excluded %llu ms after the last chance to heartbeat (interval 300 × 3)\n", (unsigned long long)gone);
    assert_true(gone >= 900 - 300 - 100); /* not before interval × threshold from its last heartbeat */
    /* excluded from scheduling: a job for its (idle, alive) worker waits */
    char *j = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":2}", &st);
    assert_int_equal(st, 202);
    uint64_t t1 = now_ms();
    while (now_ms() - t1 < 1000) {
        assert_true(status_is(o.base, j, "queued"));
        usleep(50000);
    }
    /* it heartbeats again: included, and the job runs there */
    thaw(pool);
    assert_true(wait_pool_available(o.base, "box1", 1, 20000));
    events(o.base, j, -1, &l);
    if (strcmp(last_name(&l), "end")) { dump_file(o.log); fail_msg("job after the pool came back: %s", l.code); }
    ev_free(&l);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='completed' AND pool_id='box1'", j), 1);
    free(j);
    free(warm);
    stop(&o, SIGTERM);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flow_text_and_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_priorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_last_event_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_and_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orch_killed_with_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_heartbeat_exclusion, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
