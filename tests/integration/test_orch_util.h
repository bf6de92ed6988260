/* test_orch_util — harness shared by the orchestrator integration tests
 * (test_orch_e2e.c, test_orch_acceptance.c, test_orch_policies.c, ...): real
 * orchestratord, pool-managerd and worker-cpud processes on loopback with
 * ephemeral ports, a real SQLite state file, real HTTP and SSE.
 *
 * What it gives a test file:
 *   - a scratch directory DIR_ with the state file DB and the orchestrator's
 *     YAML CFGF (orch_util_setup / orch_util_teardown; KEEP=1 keeps it);
 *   - child processes: spawn (waits for the "listening" line and takes the
 *     port from it), start_orch / start_worker / start_pool, stop, end_pid;
 *     every child is tracked and ended in teardown, also after a failed
 *     assertion (newest first, SIGTERM so a pool stops its own workers, then
 *     SIGKILL); freeze/thaw (SIGSTOP/SIGCONT, waiting until every thread is
 *     stopped) for deterministic timing without knobs in product code;
 *   - HTTP: req (bearer from g_auth when set), get_json, jstr, submit,
 *     status_of/status_is/wait_status, cancel;
 *   - SSE: events() collects a job's stream into an evlist (optional hook to
 *     drop the connection at a chosen event, Last-Event-ID to resume);
 *   - the test as a pool: register_pool / heartbeat / play_pool with real
 *     worker uris; or the real pool-managerd: start_pool, start_host_pool;
 *   - common steps: submit_ok (asserts 202), events_end (fails unless the
 *     stream ends with "end"), wait_worker_idle;
 *   - the state file: q1 / q1f / row_str (read-only connections).
 *
 * Header-only with static functions, so each test file stays one translation
 * unit; every function is static inline (no unused-function warnings). */
#ifndef TEST_ORCH_UTIL_H
#define TEST_ORCH_UTIL_H

#include "testutil.h"
#include "test_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/http_client.h"
#include "common/http_server.h"
#include "common/util.h"

extern char **environ;

struct proc { pid_t pid; int port; char base[96]; char log[300]; };

static char DIR_[64];                 /* scratch directory of the test */
static char DB[160], CFGF[160];       /* state file, orchestrator config */
static const char *g_auth;            /* "Authorization: Bearer ..." for the next requests, or NULL */
static int64_t g_ts;                  /* last heartbeat timestamp sent (strictly increasing) */

static inline uint64_t now_ms(void) { return util_now_ns() / 1000000ull; }
static inline const char *js(json_t *o, const char *k) { /* string member or "" */
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* ---- children ---------------------------------------------------------------------- */
static pid_t *g_children;   /* every child this test started, oldest first (grown as needed) */
static int g_nchildren, g_cchildren;
static pid_t g_frozen[8]; /* SIGSTOPped pids: thawed before they are ended */

/* records pid for teardown; no child may escape cleanup, so when the list
 * cannot grow the child is killed here and the test fails loudly */
static inline void track(pid_t pid) {
    if (g_nchildren == g_cchildren) {
        int nc = g_cchildren ? 2 * g_cchildren : 32;
        pid_t *n = realloc(g_children, (size_t)nc * sizeof *n);
        if (!n) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("track: out of memory recording child %d (killed it)", (int)pid);
        }
        g_children = n;
        g_cchildren = nc;
    }
    g_children[g_nchildren++] = pid;
}
/* 1 when pid has exited (reaped now or earlier) */
static inline int gone(pid_t pid) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD);
}
static inline void freeze(pid_t pid) {
    kill(pid, SIGSTOP);
    for (int i = 0; i < 2000 && !ts_all_stopped(pid); i++) usleep(1000);
    for (int i = 0; i < 8; i++)
        if (!g_frozen[i]) { g_frozen[i] = pid; break; }
}
static inline void thaw(pid_t pid) {
    kill(pid, SIGCONT);
    for (int i = 0; i < 8; i++)
        if (g_frozen[i] == pid) g_frozen[i] = 0;
}
/* SIGTERM (pools stop their workers), wait up to 20 s, then SIGKILL */
static inline void end_pid(pid_t pid) {
    if (pid <= 0 || gone(pid)) return;
    thaw(pid);
    kill(pid, SIGTERM);
    for (int k = 0; k < 2000 && !gone(pid); k++) usleep(10000);
    if (!gone(pid)) {
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
    }
}
/* every tracked child, newest first; frozen ones are thawed first */
static inline void reap_all(void) {
    for (int i = 0; i < 8; i++)
        if (g_frozen[i]) { kill(g_frozen[i], SIGCONT); g_frozen[i] = 0; }
    for (int i = g_nchildren - 1; i >= 0; i--) end_pid(g_children[i]);
    free(g_children);
    g_children = NULL;
    g_nchildren = g_cchildren = 0;
}

/* fork + exec with stdout on a pipe (its first "listening" line gives the
 * port, after the last ':'), stderr appended to DIR_/logname; the child dies
 * with the test (PDEATHSIG). 0 when listening, -1 otherwise. */
static inline int spawn(struct proc *p, const char *const *argv, const char *logname) {
    memset(p, 0, sizeof *p);
    snprintf(p->log, sizeof p->log, "%s/%s", DIR_, logname);
    int out[2];
    if (pipe(out)) return -1;
    int logfd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(out[1], 1);
        if (logfd >= 0) dup2(logfd, 2);
        close(out[0]);
        close(out[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    if (logfd >= 0) close(logfd);
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

/* sends sig (thawing first), waits up to 15 s, then SIGKILL */
static inline void stop(struct proc *p, int sig) {
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

/* ---- files ---------------------------------------------------------------------------- */
static inline void dump_file(const char *path) {
    FILE *f = fopen(path, "r");
    char line[2048];
    fprintf(stderr, "---- %s\n", path);
    while (f && fgets(line, sizeof line, f)) fputs(line, stderr);
    if (f) fclose(f);
}
static inline void dump(const struct proc *p) { dump_file(p->log); }
/* 1 when a line of the text file contains needle */
static inline int file_has(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int hit = 0;
    while (!hit && fgets(line, sizeof line, f)) hit = strstr(line, needle) != NULL;
    fclose(f);
    return hit;
}
/* 1 when the bytes of the (binary) file contain needle */
static inline int file_contains(const char *path, const char *needle) {
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
static inline void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- HTTP ------------------------------------------------------------------------------ */
/* status, or -1 when no answer came; *out (when given) owns the body */
static inline long req(const char *method, const char *base, const char *path, const char *body, char **out) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    const char *hdr[] = { g_auth, NULL };
    http_client_req rq = { .method = method, .url = url, .body = body, .headers = g_auth ? hdr : NULL,
                           .timeout_ms = 20000 };
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
static inline json_t *get_json(const char *base, const char *path) { /* 200 body parsed, else NULL */
    char *b = NULL;
    json_t *j = NULL;
    if (req("GET", base, path, NULL, &b) == 200) j = json_loads(b, 0, NULL);
    free(b);
    return j;
}
static inline char *jstr(const char *body, const char *k) { /* malloc'd string member or NULL */
    json_t *j = json_loads(body ? body : "", 0, NULL);
    json_t *v = json_object_get(j, k);
    char *s = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    json_decref(j);
    return s;
}
/* POST /v2/tasks; the job id (malloc'd) or NULL */
static inline char *submit(const char *orch, const char *body, long *status) {
    char *resp = NULL;
    *status = req("POST", orch, "/v2/tasks", body, &resp);
    char *id = jstr(resp, "job_id");
    free(resp);
    return id;
}
static inline char *status_of(const char *orch, const char *id) { /* malloc'd */
    char path[128], *resp = NULL;
    snprintf(path, sizeof path, "/v2/tasks/%s", id);
    req("GET", orch, path, NULL, &resp);
    char *s = jstr(resp, "status");
    free(resp);
    return s;
}
static inline int status_is(const char *orch, const char *id, const char *want) {
    char *s = status_of(orch, id);
    int ok = s && strcmp(s, want) == 0;
    free(s);
    return ok;
}
static inline int wait_status(const char *orch, const char *id, const char *want, int timeout_ms) {
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < (uint64_t)timeout_ms) {
        if (status_is(orch, id, want)) return 1;
        usleep(10000);
    }
    return status_is(orch, id, want);
}
static inline long cancel(const char *orch, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v2/tasks/%s", id);
    return req("DELETE", orch, path, NULL, NULL);
}

/* ---- SSE ------------------------------------------------------------------------------- */
struct ev { long long id; char name[16]; char *data; };
struct evlist {
    int n, cap;
    struct ev *v;                                     /* every event, in order (data owned) */
    int tokens;                                       /* token events */
    char code[32];                                    /* the last error event's code */
    char text[8192];                                  /* the token texts joined */
    int (*hook)(struct evlist *, const sse_event *); /* nonzero: drop the connection */
    pid_t pid;                                        /* for hooks */
    int arg;
};
static inline void ev_free(struct evlist *l) { /* also resets it for the next events() */
    for (int i = 0; i < l->n; i++) free(l->v[i].data);
    free(l->v);
    memset(l, 0, sizeof *l);
}
static inline int on_ev(void *u, const sse_event *e) {
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
/* GET a job's events after last_id (-1: from the start), appended to l;
 * returns http_client_sse's rc */
static inline int events(const char *orch, const char *id, long long last_id, struct evlist *l) {
    char url[256], lei[64];
    snprintf(url, sizeof url, "%s/v2/tasks/%s/events", orch, id);
    snprintf(lei, sizeof lei, "Last-Event-ID: %lld", last_id);
    const char *hdr[3];
    int nh = 0;
    if (g_auth) hdr[nh++] = g_auth;
    if (last_id >= 0) hdr[nh++] = lei;
    hdr[nh] = NULL;
    http_client_req rq = { .method = "GET", .url = url, .timeout_ms = 60000, .headers = nh ? hdr : NULL };
    http_resp r = { 0 };
    char err[128];
    int rc = http_client_sse(&rq, on_ev, l, &r, err, sizeof err);
    http_resp_free(&r);
    return rc;
}
static inline const char *last_name(const struct evlist *l) { return l->n ? l->v[l->n - 1].name : ""; }
static inline int count_name(const struct evlist *l, const char *name) {
    int k = 0;
    for (int i = 0; i < l->n; i++) k += strcmp(l->v[i].name, name) == 0;
    return k;
}
/* hook: freeze l->pid at the l->arg-th token and drop the connection */
static inline int hook_freeze_at_token(struct evlist *l, const sse_event *e) {
    if (strcmp(e->event, "token") == 0 && l->tokens >= l->arg) {
        freeze(l->pid);
        return 1;
    }
    return 0;
}

/* ---- SQLite (read-only connections to the state file) ------------------------------------ */
static inline long long q1(const char *sql) { /* first column of the first row; -1 none, -2 no file */
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
static inline long long q1f(const char *fmt, const char *id) {
    char sql[512];
    snprintf(sql, sizeof sql, fmt, id);
    return q1(sql);
}
/* column of the job row as a malloc'd string */
static inline char *row_str(const char *col, const char *id) {
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

/* ---- processes ---------------------------------------------------------------------------- */
/* absolute path of a program in the build dir (the pool wants absolute adapter binaries) */
static inline int build_bin(char *out, size_t cap, const char *name) {
    char b[PATH_MAX];
    TU_BUILD(b, name);
    (void)cap; /* out holds PATH_MAX */
    if (access(b, X_OK) != 0 || !realpath(b, out)) return -1;
    return 0;
}
/* stories260K as an absolute path without ".." (the catalog refuses others) */
static inline void model_path(char *out, size_t cap) {
    char m[256];
    TU_MODEL(m, "stories260K.gguf");
    if (!realpath(m, out)) snprintf(out, cap, "%s", m);
}
static inline int have_bins(int need_pool) {
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
/* worker-cpud on stories260K, 1 thread; 77 when the program or model is missing */
static inline int start_worker(struct proc *w, const char *id) {
    char bin[256], model[256], log[64];
    TU_BUILD(bin, "worker-cpud");
    TU_MODEL(model, "stories260K.gguf");
    if (access(bin, X_OK) != 0 || access(model, R_OK) != 0) return 77;
    const char *argv[] = { bin, "--worker-id", id, "--model", model, "--port", "0", "--threads", "1", NULL };
    snprintf(log, sizeof log, "worker-%s.log", id);
    return spawn(w, argv, log);
}
/* CFGF: catalog model "stories" (context ctx, memory_bytes mem unless NULL) + extra YAML */
static inline void write_config(int ctx, const char *mem, const char *extra_yaml) {
    char model[PATH_MAX];
    model_path(model, sizeof model);
    FILE *f = fopen(CFGF, "w");
    fprintf(f, "models:\n  stories:\n    model_ref: 'file:%s'\n    context_length: %d\n", model, ctx);
    if (mem) fprintf(f, "    memory_bytes: %s\n", mem);
    fputs(extra_yaml ? extra_yaml : "", f);
    fclose(f);
}
/* orchestratord --config CFGF --state DB on an ephemeral port, plus extra
 * flags (NULL-terminated, may be NULL); 77 when not built */
static inline int start_orch(struct proc *o, const char *logname, const char *const *extra) {
    char bin[PATH_MAX];
    if (build_bin(bin, sizeof bin, "orchestratord") < 0) return 77;
    const char *argv[32] = { bin, "--config", CFGF, "--bind", "127.0.0.1:0", "--state", DB };
    int n = 7;
    for (int i = 0; extra && extra[i] && n < 30; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    return spawn(o, argv, logname);
}

struct pool { pid_t pid; char url[96]; char log[300]; };

/* pool-managerd with args (NULL-terminated) after --bind 127.0.0.1:0,
 * --port-file, --cache-dir DIR_/<name>-cache, --stop-grace-ms 3000; logs to
 * DIR_/<name>.log; waits for its port file (fails the test if it exits). The
 * hub is never the real one. */
static inline void start_pool(struct pool *p, const char *name, const char *const *args) {
    memset(p, 0, sizeof *p);
    char bin[PATH_MAX], portf[300], cache[300];
    assert_int_equal(build_bin(bin, sizeof bin, "pool-managerd"), 0);
    snprintf(portf, sizeof portf, "%s/%s.port", DIR_, name);
    snprintf(cache, sizeof cache, "%s/%s-cache", DIR_, name);
    snprintf(p->log, sizeof p->log, "%s/%s.log", DIR_, name);
    unlink(portf);
    const char *argv[48];
    ts_pool_argv(argv, 48, bin, portf, cache, (const char *const[]){ "--stop-grace-ms", "3000", NULL }, args);
    const char *envp[256];
    int e = 0;
    envp[e++] = "LLORCH_HF_ENDPOINT=http://127.0.0.1:9"; /* never the real hub */
    for (char **x = environ; *x && e < 254; x++) envp[e++] = *x;
    envp[e] = NULL;
    p->pid = ts_spawn_logged(bin, argv, envp, p->log, 0);
    track(p->pid);
    char what[96];
    snprintf(what, sizeof what, "pool-managerd %s", name);
    int port = ts_wait_port_file(portf, p->pid, p->log, what, 30000);
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d", port);
}

/* ---- the test as a pool (register + heartbeats listing real workers) -------------------- */
/* one host device (gpu_id -1) of 8 GB with free_bytes free */
static inline long register_pool(const char *orch, const char *pool, long long free_bytes) {
    char body[320];
    snprintf(body, sizeof body, "{\"pool_id\":\"%s\",\"endpoint\":\"http://127.0.0.1:9\",\"devices\":[{\"gpu_id\":-1,"
                                "\"total_bytes\":8000000000,\"free_bytes\":%lld}]}", pool, free_bytes);
    return req("POST", orch, "/v2/pools/register", body, NULL);
}
/* a heartbeat (strictly increasing ts) listing n ready stories260K workers */
static inline long heartbeat(const char *orch, const char *pool, long long free_bytes, const char **wids,
                             const char **uris, int n) {
    char model[PATH_MAX];
    model_path(model, sizeof model);
    struct util_sb sb;
    util_sb_init(&sb);
    int64_t ts = (int64_t)util_wall_ms();
    if (ts <= g_ts) ts = g_ts + 1;
    g_ts = ts;
    util_sb_printf(&sb, "{\"pool_id\":\"%s\",\"ts\":%lld,\"devices\":[{\"gpu_id\":-1,\"total_bytes\":8000000000,"
                        "\"free_bytes\":%lld}],\"workers\":[", pool, (long long)ts, free_bytes);
    for (int i = 0; i < n; i++)
        util_sb_printf(&sb, "%s{\"worker_id\":\"%s\",\"model_ref\":\"file:%s\",\"uri\":\"%s\",\"status\":\"ready\","
                            "\"capabilities\":[\"text-gen\"],\"memory_bytes\":1000000}",
                       i ? "," : "", wids[i], model, uris[i]);
    util_sb_puts(&sb, "]}");
    char path[96];
    snprintf(path, sizeof path, "/v2/pools/%s/heartbeat", pool);
    long st = req("POST", orch, path, sb.buf, NULL);
    util_sb_free(&sb);
    return st;
}

/* register (free_bytes free) + one heartbeat listing the one ready worker wid
 * at uri; the first status that is not 200, else 200 */
static inline long play_pool(const char *orch, const char *pool, long long free_bytes, const char *wid,
                             const char *uri) {
    long st = register_pool(orch, pool, free_bytes);
    if (st != 200) return st;
    const char *wids[] = { wid }, *uris[] = { uri };
    return heartbeat(orch, pool, free_bytes, wids, uris, 1);
}
/* the real pool-managerd (host inventory, cpu adapter) registering itself
 * with orch as pool_id, pool token "pt", heartbeats every hb_ms */
static inline void start_host_pool(struct pool *p, const char *orch, const char *pool_id, int hb_ms) {
    char hb[16];
    snprintf(hb, sizeof hb, "%d", hb_ms);
    start_pool(p, "pool", (const char *[]){ "--inventory", "host", "--orchestrator-url", orch, "--orchestrator-token",
                                            "pt", "--heartbeat-interval-ms", hb, "--pool-id", pool_id, NULL });
}

/* ---- common steps of a test ------------------------------------------------------------------ */
/* POST /v2/tasks that must be accepted (202); the job id (malloc'd) */
static inline char *submit_ok(const char *orch, const char *body) {
    long st;
    char *id = submit(orch, body, &st);
    assert_int_equal(st, 202);
    return id;
}
/* the job's events from the start into l (reset first); fails the test,
 * dumping o's log, unless the stream ended with "end"; what names the job */
static inline void events_end(const struct proc *o, const char *id, struct evlist *l, const char *what) {
    ev_free(l);
    events(o->base, id, -1, l);
    if (strcmp(last_name(l), "end")) {
        dump(o);
        fail_msg("%s ended with '%s' %s", what, last_name(l), l->code);
    }
}
/* polls the worker's GET /health until it answers 200 with "busy":false */
static inline int wait_worker_idle(const char *worker, int timeout_ms) {
    for (int i = 0; i < timeout_ms / 10; i++) {
        char *h = NULL;
        int idle = req("GET", worker, "/health", NULL, &h) == 200 && h && strstr(h, "\"busy\":false");
        free(h);
        if (idle) return 1;
        usleep(10000);
    }
    return 0;
}

/* ---- the test as a pool that obeys start/stop commands -------------------------------------
 * An HTTP server in the test process answering /v2/workers/start (202 with
 * worker "w-new", or INSUFFICIENT_VRAM when answer != 202) and
 * /v2/workers/stop, recording what the orchestrator commanded. */

struct fake_pool {
    http_server *srv;
    int port;
    pthread_mutex_t mu;
    int starts, stops;
    char start_body[512];
    char stopped[64];
    int answer;                /* status for /v2/workers/start */
};

static inline void fp_start(http_req *r, void *u) {
    struct fake_pool *f = u;
    size_t len;
    const char *b = http_req_body(r, &len);
    pthread_mutex_lock(&f->mu);
    f->starts++;
    snprintf(f->start_body, sizeof f->start_body, "%.*s", (int)len, b);
    int ans = f->answer;
    pthread_mutex_unlock(&f->mu);
    if (ans == 202) http_respond_json(r, 202, "{\"worker_id\":\"w-new\",\"status\":\"starting\"}");
    else http_respond_error(r, ERR_INSUFFICIENT_VRAM, "no room", NULL);
}

static inline void fp_stop(http_req *r, void *u) {
    struct fake_pool *f = u;
    size_t len;
    const char *b = http_req_body(r, &len);
    char *w = jstr(b, "worker_id");
    pthread_mutex_lock(&f->mu);
    f->stops++;
    snprintf(f->stopped, sizeof f->stopped, "%s", w ? w : "");
    pthread_mutex_unlock(&f->mu);
    free(w);
    http_respond_json(r, 202, "{}");
}

static inline void fake_pool_start(struct fake_pool *f, int answer) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->answer = answer;
    http_server_opts o = { .port = 0, .component = "test-pool" };
    char err[128];
    assert_int_equal(http_server_new(&o, &f->srv, err, sizeof err), 0);
    http_server_route(f->srv, "POST", "/v2/workers/start", fp_start, f);
    http_server_route(f->srv, "POST", "/v2/workers/stop", fp_stop, f);
    assert_int_equal(http_server_start(f->srv, err, sizeof err), 0);
    f->port = http_server_port(f->srv);
}

static inline int fp_count(struct fake_pool *f, int stops) {
    pthread_mutex_lock(&f->mu);
    int n = stops ? f->stops : f->starts;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static inline int wait_for(struct fake_pool *f, int stops, int n) {
    for (int i = 0; i < 500 && fp_count(f, stops) < n; i++) usleep(10000);
    return fp_count(f, stops);
}

/* ---- the orchestrator's and the pool's views ------------------------------------------------ */
/* polls GET /v2/pools until pool_id's "available" is want */
static inline int wait_pool_available(const char *orch, const char *pool_id, int want, int timeout_ms) {
    uint64_t t0 = now_ms();
    do {
        char *pools = NULL;
        int got = -1;
        if (req("GET", orch, "/v2/pools", NULL, &pools) == 200 && pools) {
            json_t *j = json_loads(pools, 0, NULL);
            json_t *arr = json_is_array(j) ? j : json_object_get(j, "pools");
            for (size_t i = 0; i < json_array_size(arr); i++) {
                json_t *p = json_array_get(arr, i);
                if (strcmp(js(p, "pool_id"), pool_id) == 0) got = json_is_true(json_object_get(p, "available"));
            }
            json_decref(j);
        }
        free(pools);
        if (got == want) return 1;
        usleep(10000);
    } while (now_ms() - t0 < (uint64_t)timeout_ms);
    return 0;
}
/* polls GET /v2/workers until worker wid has the status */
static inline int wait_worker_status(const char *orch, const char *wid, const char *want, int timeout_ms) {
    uint64_t t0 = now_ms();
    do {
        int ok = 0;
        json_t *j = get_json(orch, "/v2/workers");
        json_t *ws = json_object_get(j, "workers");
        for (size_t i = 0; i < json_array_size(ws); i++) {
            json_t *w = json_array_get(ws, i);
            if (!strcmp(js(w, "worker_id"), wid) && !strcmp(js(w, "status"), want)) ok = 1;
        }
        json_decref(j);
        if (ok) return 1;
        usleep(10000);
    } while (now_ms() - t0 < (uint64_t)timeout_ms);
    return 0;
}
/* the pid of worker wid from the pool's /v2/state (0 when absent) */
static inline pid_t pool_worker_pid(const char *pool_url, const char *wid) {
    pid_t pid = 0;
    json_t *j = get_json(pool_url, "/v2/state");
    json_t *ws = json_object_get(j, "workers");
    for (size_t i = 0; i < json_array_size(ws); i++) {
        json_t *w = json_array_get(ws, i);
        if (strcmp(js(w, "worker_id"), wid) == 0) pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    }
    json_decref(j);
    return pid;
}
/* the job ids of the "dispatch" log lines, in order */
static inline int dispatch_order(const char *log, char ids[][37], int max) {
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

/* ---- cmocka fixtures ------------------------------------------------------------------------ */
/* a fresh scratch directory /tmp/llorch-<tag>-XXXXXX with DB and CFGF in it */
static inline int orch_util_setup(const char *tag) {
    snprintf(DIR_, sizeof DIR_, "/tmp/llorch-%s-XXXXXX", tag);
    if (!mkdtemp(DIR_)) return -1;
    snprintf(DB, sizeof DB, "%s/state.db", DIR_);
    snprintf(CFGF, sizeof CFGF, "%s/orch.yaml", DIR_);
    g_ts = 0;
    g_auth = NULL;
    return 0;
}
/* ends every child, removes the scratch directory unless KEEP is set */
static inline int orch_util_teardown(void) {
    reap_all();
    g_auth = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "%s rm -rf %s", getenv("KEEP") ? "true" : "", DIR_);
    if (system(cmd)) { /* best effort */ }
    return 0;
}

#endif
