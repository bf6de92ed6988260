/* lifecycle — the worker table: spawn, ready, stop, exit detection,
 * accounting and failure reports (SPEC §5).
 *
 * One watcher thread per worker owns its process: it reads the worker's
 * stderr pipe (each line logged tagged with the worker id, the last
 * POOL_TAIL_BYTES kept for the failure report), reaps it with waitpid,
 * enforces the SIGKILL deadline after a stop and the start timeout, then
 * removes the worker, releases its accounting and reports an unrequested exit
 * to the orchestrator. EOF on the pipe comes the moment the process dies, so
 * an exit is noticed within milliseconds (well under SPEC's 5 s).
 *
 * Signals are sent only under pool.mu while the watcher has not reaped the
 * pid (w->reaped), so a recycled pid is never signalled.
 *
 * Watchers (and provisioning waits) are detached, and their work goes on
 * after their worker has left the table: adapter cleanup (w->ad lives in
 * pool.adapters), the exit log line, the failure report. Shutdown therefore
 * waits for the threads themselves (pool.nthreads, pool_threads_wait), not
 * only for the table to empty: main frees the pool right after, and a
 * watcher reading freed adapters was a use-after-free (under ASan its report
 * deadlocked with the exit-time leak check, so the pool never exited).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "pool/adapters/adapter.h"
#include "pool/pool.h"

extern char **environ;

const char *pool_wstatus_name(enum pool_wstatus s) {
    static const char *n[] = { "starting", "ready", "busy", "draining", "failed" };
    return (unsigned)s < UTIL_ARRAY_LEN(n) ? n[s] : "failed";
}

void pool_random_hex(char *out, size_t nbytes) {
    unsigned char b[64];
    LLORCH_ASSERT(nbytes <= sizeof b);
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(b + got, nbytes - got, 0);
        if (r > 0) got += (size_t)r;
        else if (errno != EINTR) LLORCH_ASSERT(!"getrandom failed");
    }
    for (size_t i = 0; i < nbytes; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int pool_lifecycle_init(struct pool *p) {
    pthread_mutex_init(&p->start_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    /* tests only: a watcher lingers this long after its worker left the
     * table, so a test can check that shutdown waits for it */
    const char *lag = getenv("LLORCH_POOL_TEST_WATCHER_LAG_MS");
    p->test_watcher_lag_ms = lag ? strtoll(lag, NULL, 10) : 0;
    if (p->test_watcher_lag_ms < 0 || p->test_watcher_lag_ms > 60000) p->test_watcher_lag_ms = 0;
    return 0;
}

/* ---- accounting (caller holds mu) ---------------------------------------------- */
static uint64_t worker_bytes(const struct pool_worker *w) {
    if (w->status == PW_STARTING || !w->memory_bytes) return w->reserved_bytes;
    return w->memory_bytes;
}

uint64_t pool_accounted_locked(struct pool *p, int gpu_id, int which) {
    uint64_t sum = 0;
    for (int i = 0; i < p->nworkers; i++) {
        const struct pool_worker *w = p->workers[i];
        int starting = w->status == PW_STARTING;
        if ((which == POOL_ACC_STARTING && !starting) || (which == POOL_ACC_SETTLED && starting)) continue;
        uint64_t b = worker_bytes(w);
        if (w->ngpu == 0) {
            if (gpu_id == POOL_HOST_DEVICE) sum += b;
        } else {
            for (int g = 0; g < w->ngpu; g++)
                if (w->gpu_ids[g] == gpu_id) sum += b / (uint64_t)w->ngpu;
        }
    }
    return sum;
}

/* The simulated double's "used" follows the settled accounting. */
static void sim_sync_locked(struct pool *p) {
    for (int g = 0; g < POOL_MAX_DEVICES - 1; g++)
        pool_inv_sim_account(p->inv, g, pool_accounted_locked(p, g, POOL_ACC_SETTLED));
}

/* ---- stderr capture ---------------------------------------------------------- */
static void tail_append(struct pool_worker *w, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        w->tail[w->tail_pos] = s[i];
        w->tail_pos = (w->tail_pos + 1) % POOL_TAIL_BYTES;
        if (w->tail_len < POOL_TAIL_BYTES) w->tail_len++;
    }
}

static void tail_copy(const struct pool_worker *w, char *out, size_t cap) {
    size_t n = w->tail_len < cap - 1 ? w->tail_len : cap - 1;
    size_t start = (w->tail_pos + POOL_TAIL_BYTES - n) % POOL_TAIL_BYTES;
    for (size_t i = 0; i < n; i++) out[i] = w->tail[(start + i) % POOL_TAIL_BYTES];
    out[n] = 0;
}

static void log_line(const char *wid, const char *line, size_t n) {
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    if (!n) return;
    struct util_sb sb;
    char buf[2600];
    util_sb_init_fixed(&sb, buf, sizeof buf);
    util_sb_puts(&sb, "\"worker_id\":");
    util_sb_json_str(&sb, wid);
    util_sb_puts(&sb, ",\"line\":");
    util_sb_json_strn(&sb, line, n > 2048 ? 2048 : n);
    LOG_KV(LOG_INFO, POOL_COMPONENT, "worker_stderr", NULL, "%s", buf);
}

/* ---- the watcher --------------------------------------------------------------- */
struct watch_args {
    struct pool *p;
    struct pool_worker *w;
    int fd;
};

static void remove_locked(struct pool *p, struct pool_worker *w) {
    for (int i = 0; i < p->nworkers; i++)
        if (p->workers[i] == w) {
            p->workers[i] = p->workers[--p->nworkers];
            break;
        }
    sim_sync_locked(p);
    pthread_cond_broadcast(&p->cv);
}

static void *watcher_main(void *arg) {
    struct watch_args a = *(struct watch_args *)arg;
    free(arg);
    struct pool *p = a.p;
    struct pool_worker *w = a.w;
    char id[40];
    snprintf(id, sizeof id, "%s", w->id);
    char line[2048];
    size_t llen = 0;
    int fd = a.fd, status = 0;
    for (;;) {
        /* deadlines: SIGKILL after the stop grace; kill a worker never ready */
        pthread_mutex_lock(&p->mu);
        uint64_t now = util_now_ns();
        if (w->kill_at_ns && now >= w->kill_at_ns) {
            LOG_KV(LOG_WARN, POOL_COMPONENT, "worker_kill", NULL, "\"worker_id\":\"%s\",\"reason\":\"stop grace over\"", id);
            w->ad->ops->kill(w);
            w->kill_at_ns = 0;
        }
        if (w->status == PW_STARTING && !w->stop_requested &&
            now - w->started_ns > (uint64_t)p->start_timeout_ms * 1000000ull) {
            LOG_KV(LOG_WARN, POOL_COMPONENT, "worker_kill", NULL, "\"worker_id\":\"%s\",\"reason\":\"start timeout\"", id);
            w->ad->ops->kill(w);
            w->started_ns = now; /* once */
        }
        pthread_mutex_unlock(&p->mu);
        if (fd >= 0) {
            struct pollfd pf = { .fd = fd, .events = POLLIN };
            int pr = poll(&pf, 1, 100);
            if (pr > 0) {
                char buf[4096];
                ssize_t r = read(fd, buf, sizeof buf);
                if (r > 0) {
                    pthread_mutex_lock(&p->mu);
                    tail_append(w, buf, (size_t)r);
                    pthread_mutex_unlock(&p->mu);
                    for (ssize_t i = 0; i < r; i++) {
                        if (llen < sizeof line) line[llen++] = buf[i];
                        if (buf[i] == '\n' || llen == sizeof line) {
                            log_line(id, line, llen);
                            llen = 0;
                        }
                    }
                } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                    log_line(id, line, llen);
                    llen = 0;
                    close(fd);
                    fd = -1;
                }
            }
            continue;
        }
        pid_t r = waitpid(w->pid, &status, WNOHANG);
        if (r == w->pid) break;
        if (r < 0 && errno != EINTR) { status = 0; break; } /* cannot happen: we own the child */
        usleep(20000);
    }
    if (fd >= 0) close(fd);

    /* reaped: release and remove atomically, then report */
    int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    char tail[POOL_TAIL_BYTES + 1];
    pthread_mutex_lock(&p->mu);
    w->reaped = 1;
    uint64_t released = worker_bytes(w);
    int requested = w->stop_requested;
    const char *prev = pool_wstatus_name(w->status);
    tail_copy(w, tail, sizeof tail);
    remove_locked(p, w);
    pthread_mutex_unlock(&p->mu);
    if (p->test_watcher_lag_ms) usleep((useconds_t)(p->test_watcher_lag_ms * 1000));
    if (w->ad->ops->cleanup) w->ad->ops->cleanup(w);
    LOG_KV(requested ? LOG_INFO : LOG_WARN, POOL_COMPONENT, requested ? "worker_stopped" : "worker_failed", NULL,
           "\"worker_id\":\"%s\",\"pid\":%d,\"exit_code\":%d,\"signal\":%d,\"released_bytes\":%llu,\"was\":\"%s\"", id,
           (int)w->pid, exit_code, sig, (unsigned long long)released, prev);
    if (!requested) pool_report_failed(p, id, exit_code, sig, released, tail);
    free(w);
    pool_thread_end(p); /* the last touch of p */
    return NULL;
}

/* ---- spawn ----------------------------------------------------------------------- */
static struct pool_worker *worker_alloc(const struct pool_adapter *ad, const char *model_ref, const char *model_path,
                                        const int *gpu_ids, int ngpu, int64_t ctx, const char *capability,
                                        uint64_t estimate) {
    struct pool_worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    char rnd[25];
    pool_random_hex(rnd, 8);
    snprintf(w->id, sizeof w->id, "w-%s", rnd);
    pool_random_hex(w->token, 32);
    snprintf(w->model_ref, sizeof w->model_ref, "%s", model_ref);
    snprintf(w->model_path, sizeof w->model_path, "%s", model_path);
    w->ad = ad;
    w->ngpu = ad->ops->uses_gpu ? ngpu : 0;
    for (int i = 0; i < w->ngpu; i++) w->gpu_ids[i] = gpu_ids[i];
    w->ctx = ctx;
    snprintf(w->capability, sizeof w->capability, "%s", capability ? capability : "text-gen");
    w->reserved_bytes = estimate;
    w->status = PW_STARTING;
    w->started_ns = util_now_ns();
    snprintf(w->worker_type, sizeof w->worker_type, "%s", ad->ops->type);
    snprintf(w->memory_architecture, sizeof w->memory_architecture, "%s", pool_adapter_memarch(ad));
    return w;
}

/* Starts w's process and its watcher (caller holds mu). in_table: w is
 * already in the worker table (a start that waited for provisioning). On
 * failure w is out of the table, its adapter state released; the caller
 * frees it. */
static int launch_locked(struct pool *p, struct pool_worker *w, int in_table, char *err, size_t errlen) {
    const struct pool_adapter *ad = w->ad;
    int rc;
    char cb[400];
    snprintf(cb, sizeof cb, "%s/v2/internal/workers/ready", p->endpoint);
    struct pool_spawn_args sa = { .worker_id = w->id, .model_path = w->model_path, .model_ref = w->model_ref,
                                  .spawn_token = w->token, .callback_url = cb, .gpu_ids = w->gpu_ids,
                                  .ngpu = w->ngpu, .ctx = w->ctx, .ctx_out = &w->adapter_ctx };
    struct pool_argv av;
    memset(&av, 0, sizeof av);
    int pfd[2] = { -1, -1 };
    if ((rc = ad->ops->spawn(ad, &sa, &av, err, errlen)) < 0) goto fail;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        rc = util_fail(err, errlen, -errno, "pipe: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    sigset_t none, defs;
    sigemptyset(&none);
    sigemptyset(&defs);
    sigaddset(&defs, SIGPIPE);
    sigaddset(&defs, SIGTERM);
    sigaddset(&defs, SIGINT);
    sigaddset(&defs, SIGCHLD);
    posix_spawnattr_setsigmask(&at, &none); /* the pool blocks SIGTERM/SIGINT; the worker must not inherit that */
    posix_spawnattr_setsigdefault(&at, &defs);
    posix_spawnattr_setpgroup(&at, 0); /* its own group: a ^C to the pool is the pool's to handle */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    w->started_ns = util_now_ns();
    rc = posix_spawn(&w->pid, av.argv[0], &fa, &at, av.argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(pfd[1]);
    pfd[1] = -1;
    metrics_add(p->m_spawns, (const char *[]){ ad->name, rc == 0 ? "ok" : "error" }, 1);
    if (rc != 0) {
        w->pid = 0;
        rc = util_fail(err, errlen, -rc, "spawn %s: %s", av.argv[0], strerror(rc));
        goto fail;
    }
    if (!in_table) p->workers[p->nworkers++] = w;
    in_table = 1;
    sim_sync_locked(p);
    struct watch_args *wa = malloc(sizeof *wa);
    int trc = -1;
    if (wa) {
        *wa = (struct watch_args){ .p = p, .w = w, .fd = pfd[0] };
        pool_thread_begin_locked(p);
        trc = pthread_create(&w->watcher, NULL, watcher_main, wa);
        if (trc == 0) {
            pthread_detach(w->watcher);
        } else {
            pool_thread_cancel_locked(p);
            free(wa);
        }
    }
    if (trc != 0) { /* no watcher: nobody could reap it; undo now */
        kill(w->pid, SIGKILL);
        waitpid(w->pid, NULL, 0);
        w->pid = 0;
        rc = util_fail(err, errlen, -EAGAIN, "cannot start the watcher thread");
        goto fail;
    }
    {
        char kv[POOL_REF_MAX + 256];
        struct util_sb sb;
        util_sb_init_fixed(&sb, kv, sizeof kv);
        util_sb_printf(&sb, "\"worker_id\":\"%s\",\"pid\":%d,\"adapter\":", w->id, (int)w->pid);
        util_sb_json_str(&sb, ad->name);
        util_sb_puts(&sb, ",\"model_ref\":");
        util_sb_json_str(&sb, w->model_ref);
        util_sb_printf(&sb, ",\"gpu\":%d,\"reserved_bytes\":%llu", w->ngpu ? w->gpu_ids[0] : POOL_HOST_DEVICE,
                       (unsigned long long)w->reserved_bytes);
        LOG_KV(LOG_INFO, POOL_COMPONENT, "worker_spawn", NULL, "%s", kv);
    }
    if (ad->ops->started) {
        char e2[256];
        if (ad->ops->started(p, w, e2, sizeof e2) < 0) { /* the watcher reaps it and reports the failure */
            LOG_KV(LOG_ERROR, POOL_COMPONENT, "worker_spawn", NULL, "\"worker_id\":\"%s\",\"error\":\"adapter\"", w->id);
            ad->ops->kill(w);
        }
    }
    return 0;
fail:
    if (pfd[0] >= 0) close(pfd[0]);
    if (pfd[1] >= 0) close(pfd[1]);
    if (in_table) remove_locked(p, w);
    if (ad->ops->cleanup) ad->ops->cleanup(w);
    return rc;
}

int pool_worker_spawn(struct pool *p, const struct pool_adapter *ad, const char *model_ref, const char *model_path,
                      const int *gpu_ids, int ngpu, int64_t ctx, const char *capability, uint64_t estimate,
                      const char *arch, char id_out[40], char *err, size_t errlen) {
    struct pool_worker *w = worker_alloc(ad, model_ref, model_path, gpu_ids, ngpu, ctx, capability, estimate);
    if (!w) return util_fail(err, errlen, -ENOMEM, "out of memory");
    snprintf(w->arch, sizeof w->arch, "%s", arch ? arch : "");
    pthread_mutex_lock(&p->mu);
    int rc = p->nworkers >= POOL_MAX_WORKERS || p->shutting_down
                 ? util_fail(err, errlen, -EBUSY, "worker table full or shutting down")
                 : launch_locked(p, w, 0, err, errlen);
    if (rc == 0) snprintf(id_out, 40, "%s", w->id);
    pthread_mutex_unlock(&p->mu);
    if (rc < 0) free(w);
    return rc;
}

/* ---- a start that waits for its model to be provisioned ------------------------- */
struct prov_args {
    struct pool *p;
    struct pool_worker *w;
};

static void prov_fail(struct pool *p, struct pool_worker *w, int report, enum err_code code, const char *msg) {
    pthread_mutex_lock(&p->mu);
    remove_locked(p, w);
    pthread_mutex_unlock(&p->mu);
    LOG_KV(LOG_WARN, POOL_COMPONENT, "worker_failed", NULL, "\"worker_id\":\"%s\",\"phase\":\"provisioning\",\"code\":\"%s\"",
           w->id, err_name(code));
    if (report) {
        char tail[400];
        snprintf(tail, sizeof tail, "provisioning failed: %s: %s", err_name(code), msg);
        pool_report_failed(p, w->id, -1, 0, 0, tail);
    }
    free(w);
}

static void prov_run(struct prov_args a) {
    struct pool *p = a.p;
    struct pool_worker *w = a.w;
    char msg[512] = "", det[512];
    enum err_code code = ERR_OK;
    for (;;) { /* wait for the pull (or a stop) */
        pthread_mutex_lock(&p->mu);
        int stop = w->stop_requested || p->shutting_down;
        int st = stop ? -1 : pool_download_state_locked(p, w->model_ref, &code, msg, sizeof msg);
        pthread_mutex_unlock(&p->mu);
        if (stop) {
            prov_fail(p, w, 0, ERR_CANCELLED, "stopped while provisioning");
            return;
        }
        if (st == PDL_DONE) break;
        if (st != PDL_RUNNING) {
            prov_fail(p, w, 1, st < 0 ? ERR_INTERNAL : code, st < 0 ? "the pull vanished" : msg);
            return;
        }
        usleep(50000);
    }
    /* the rest of preflight, now on the file; then launch into the same record */
    struct pool_start_req rq = { .model_ref = w->model_ref, .gpu_ids = w->gpu_ids, .ngpu = w->ngpu,
                                 .worker_type = w->ad->name, .capability = w->capability, .ctx = w->ctx, .self = w };
    struct pool_preflight pf;
    pthread_mutex_lock(&p->start_mu);
    code = pool_preflight_run(p, &rq, &pf, msg, sizeof msg, det, sizeof det);
    int rc = -1, tried = 0;
    if (code == ERR_OK) {
        pthread_mutex_lock(&p->mu);
        if (w->stop_requested || p->shutting_down) {
            code = ERR_CANCELLED;
            snprintf(msg, sizeof msg, "stopped while provisioning");
        } else {
            snprintf(w->model_path, sizeof w->model_path, "%s", pf.model_path);
            w->reserved_bytes = pf.estimate;
            w->ctx = pf.ctx;
            snprintf(w->arch, sizeof w->arch, "%s", pf.arch);
            w->provisioning = 0;
            tried = 1;
            rc = launch_locked(p, w, 1, msg, sizeof msg);
            if (rc < 0) code = ERR_INTERNAL;
        }
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->start_mu);
    metrics_add(p->m_starts, (const char *[]){ code == ERR_OK ? "ok" : err_name(code) }, 1);
    if (rc < 0 && code == ERR_OK) code = ERR_INTERNAL;
    if (rc < 0) {
        if (!tried) { /* still in the table: remove there */
            prov_fail(p, w, code != ERR_CANCELLED, code, msg);
        } else { /* launch_locked already took it out */
            char tail[600];
            snprintf(tail, sizeof tail, "start after provisioning failed: %s", msg);
            pool_report_failed(p, w->id, -1, 0, 0, tail);
            free(w);
        }
    }
}

static void *prov_main(void *arg) {
    struct prov_args a = *(struct prov_args *)arg;
    free(arg);
    prov_run(a);
    pool_thread_end(a.p); /* the last touch of the pool */
    return NULL;
}

int pool_worker_start_provisioning(struct pool *p, const struct pool_adapter *ad, const char *model_ref,
                                   const int *gpu_ids, int ngpu, int64_t ctx, const char *capability, char id_out[40],
                                   char *err, size_t errlen) {
    struct pool_worker *w = worker_alloc(ad, model_ref, "", gpu_ids, ngpu, ctx, capability, 0);
    struct prov_args *a = malloc(sizeof *a);
    if (!w || !a) {
        free(w);
        free(a);
        return util_fail(err, errlen, -ENOMEM, "out of memory");
    }
    w->provisioning = 1;
    *a = (struct prov_args){ .p = p, .w = w };
    pthread_mutex_lock(&p->mu);
    if (p->nworkers >= POOL_MAX_WORKERS || p->shutting_down) {
        pthread_mutex_unlock(&p->mu);
        free(w);
        free(a);
        return util_fail(err, errlen, -EBUSY, "worker table full or shutting down");
    }
    p->workers[p->nworkers++] = w;
    pthread_t t;
    pool_thread_begin_locked(p);
    if (pthread_create(&t, NULL, prov_main, a) != 0) {
        pool_thread_cancel_locked(p);
        remove_locked(p, w);
        pthread_mutex_unlock(&p->mu);
        free(w);
        free(a);
        return util_fail(err, errlen, -EAGAIN, "cannot start a thread");
    }
    pthread_detach(t);
    snprintf(id_out, 40, "%s", w->id);
    pthread_mutex_unlock(&p->mu);
    LOG_KV(LOG_INFO, POOL_COMPONENT, "worker_provisioning", NULL, "\"worker_id\":\"%s\"", id_out);
    return 0;
}

/* ---- ready, stop ----------------------------------------------------------------- */
static struct pool_worker *find_locked(struct pool *p, const char *id) {
    for (int i = 0; i < p->nworkers; i++)
        if (!strcmp(p->workers[i]->id, id)) return p->workers[i];
    return NULL;
}

static int ct_eq(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la && i < lb; i++) d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

enum err_code pool_worker_ready(struct pool *p, const struct pool_ready *r, char *msg, size_t msglen) {
    enum err_code code = ERR_OK;
    pthread_mutex_lock(&p->mu);
    struct pool_worker *w = find_locked(p, r->worker_id);
    if (!w) {
        code = ERR_NOT_FOUND;
        snprintf(msg, msglen, "no worker with that id is starting here");
    } else if (!r->spawn_token || !ct_eq(r->spawn_token, w->token)) {
        code = ERR_FORBIDDEN;
        snprintf(msg, msglen, "spawn token does not match");
    } else if (!r->model_ref || strcmp(r->model_ref, w->model_ref)) {
        code = ERR_CONFLICT;
        snprintf(msg, msglen, "model_ref is not the one this worker was started with");
    } else if (w->status != PW_STARTING) {
        code = ERR_CONFLICT;
        snprintf(msg, msglen, "worker is %s, not starting", pool_wstatus_name(w->status));
    } else {
        /* one step under the lock: ready + accounting move from estimate to report */
        snprintf(w->uri, sizeof w->uri, "%s", r->uri);
        if (r->worker_type) snprintf(w->worker_type, sizeof w->worker_type, "%s", r->worker_type);
        if (r->memory_architecture)
            snprintf(w->memory_architecture, sizeof w->memory_architecture, "%s", r->memory_architecture);
        if (r->quant_kind) snprintf(w->quant_kind, sizeof w->quant_kind, "%s", r->quant_kind);
        w->memory_bytes = r->memory_bytes;
        w->context_length = r->context_length;
        w->status = PW_READY;
        sim_sync_locked(p);
        pthread_cond_broadcast(&p->cv);
        LOG_KV(LOG_INFO, POOL_COMPONENT, "worker_ready", NULL,
               "\"worker_id\":\"%s\",\"uri\":\"%s\",\"memory_bytes\":%llu,\"estimate_bytes\":%llu", w->id, w->uri,
               (unsigned long long)w->memory_bytes, (unsigned long long)w->reserved_bytes);
    }
    pthread_mutex_unlock(&p->mu);
    if (code != ERR_OK)
        LOG_KV(LOG_WARN, POOL_COMPONENT, "ready_refused", NULL, "\"code\":\"%s\"", err_name(code));
    return code;
}

enum err_code pool_worker_stop(struct pool *p, const char *id, char *msg, size_t msglen) {
    pthread_mutex_lock(&p->mu);
    struct pool_worker *w = find_locked(p, id);
    if (!w) {
        pthread_mutex_unlock(&p->mu);
        snprintf(msg, msglen, "no such worker");
        return ERR_NOT_FOUND;
    }
    if (!w->stop_requested) {
        w->stop_requested = 1;
        w->status = PW_DRAINING;
        w->ad->ops->stop(w);
        w->kill_at_ns = util_now_ns() + (uint64_t)p->stop_grace_ms * 1000000ull;
        if (!w->kill_at_ns) w->kill_at_ns = 1;
        LOG_KV(LOG_INFO, POOL_COMPONENT, "worker_stop", NULL, "\"worker_id\":\"%s\",\"grace_ms\":%lld", id,
               (long long)p->stop_grace_ms);
    }
    pthread_mutex_unlock(&p->mu);
    return ERR_OK;
}

void pool_lifecycle_shutdown(struct pool *p) {
    pthread_mutex_lock(&p->mu);
    p->shutting_down = 1;
    char ids[POOL_MAX_WORKERS][40];
    int n = p->nworkers;
    for (int i = 0; i < n; i++) snprintf(ids[i], sizeof ids[i], "%s", p->workers[i]->id);
    pthread_mutex_unlock(&p->mu);
    char m[64];
    for (int i = 0; i < n; i++) pool_worker_stop(p, ids[i], m, sizeof m);
    /* the watchers enforce the grace (SIGKILL) and remove their workers */
    pthread_mutex_lock(&p->mu);
    int left = pool_wait_zero_locked(p, &p->nworkers, util_now_ns() + ((uint64_t)p->stop_grace_ms + 3000) * 1000000ull);
    pthread_mutex_unlock(&p->mu);
    if (left) LOG_ERROR(POOL_COMPONENT, "shutdown", NULL, "%d worker(s) did not exit", left);
}

/* ---- state JSON -------------------------------------------------------------------- */
void pool_workers_json_locked(struct pool *p, struct util_sb *sb) {
    util_sb_puts(sb, "[");
    for (int i = 0; i < p->nworkers; i++) {
        const struct pool_worker *w = p->workers[i];
        if (i) util_sb_putc(sb, ',');
        util_sb_puts(sb, "{\"worker_id\":");
        util_sb_json_str(sb, w->id);
        util_sb_puts(sb, ",\"worker_type\":");
        util_sb_json_str(sb, w->worker_type);
        util_sb_puts(sb, ",\"adapter\":");
        util_sb_json_str(sb, w->ad->name);
        util_sb_puts(sb, ",\"capabilities\":[");
        for (int c = 0; c < w->ad->ncaps; c++) {
            if (c) util_sb_putc(sb, ',');
            util_sb_json_str(sb, w->ad->capabilities[c]);
        }
        util_sb_puts(sb, "],\"memory_architecture\":");
        util_sb_json_str(sb, w->memory_architecture);
        util_sb_puts(sb, ",\"model_ref\":");
        util_sb_json_str(sb, w->model_ref);
        if (w->arch[0]) {
            util_sb_puts(sb, ",\"architecture\":");
            util_sb_json_str(sb, w->arch);
        }
        util_sb_puts(sb, ",\"gpu_ids\":[");
        for (int g = 0; g < w->ngpu; g++) util_sb_printf(sb, "%s%d", g ? "," : "", w->gpu_ids[g]);
        util_sb_printf(sb, "],\"memory_bytes\":%llu,\"reserved_bytes\":%llu,\"uri\":",
                       (unsigned long long)worker_bytes(w), (unsigned long long)w->reserved_bytes);
        util_sb_json_str(sb, w->uri);
        util_sb_printf(sb, ",\"status\":\"%s\",\"pid\":%d,\"context_length\":%lld,\"quant_kind\":",
                       pool_wstatus_name(w->status), (int)w->pid, (long long)w->context_length);
        util_sb_json_str(sb, w->quant_kind);
        util_sb_printf(sb, ",\"uptime_ms\":%llu,\"provisioning\":%s",
                       (unsigned long long)((util_now_ns() - w->started_ns) / 1000000ull),
                       w->provisioning ? "true" : "false");
        w->ad->ops->state(w, sb);
        util_sb_putc(sb, '}');
    }
    util_sb_puts(sb, "]");
}

void pool_devices_json(struct pool *p, const struct pool_device *d, int n, struct util_sb *sb) {
    util_sb_puts(sb, "[");
    for (int i = 0; i < n; i++) {
        const struct pool_device *x = &d[i];
        if (i) util_sb_putc(sb, ',');
        util_sb_printf(sb, "{\"gpu_id\":%d,\"kind\":\"%s\",\"uuid\":", x->gpu_id,
                       x->gpu_id == POOL_HOST_DEVICE ? "host" : "gpu");
        util_sb_json_str(sb, x->uuid);
        util_sb_puts(sb, ",\"name\":");
        util_sb_json_str(sb, x->name);
        util_sb_printf(sb,
                       ",\"compute_capability\":\"%d.%d\",\"total_bytes\":%llu,\"used_bytes\":%llu,\"free_bytes\":%llu,"
                       "\"allocated_bytes\":%llu,\"reserved_bytes\":%llu,\"utilization_pct\":%d,\"temperature_c\":%d}",
                       x->cc_major, x->cc_minor, (unsigned long long)x->total_bytes, (unsigned long long)x->used_bytes,
                       (unsigned long long)x->free_bytes,
                       (unsigned long long)pool_accounted_locked(p, x->gpu_id, POOL_ACC_ALL),
                       (unsigned long long)pool_accounted_locked(p, x->gpu_id, POOL_ACC_STARTING), x->util_pct,
                       x->temp_c);
    }
    util_sb_puts(sb, "]");
}

void pool_state_json(struct pool *p, struct util_sb *sb) {
    struct pool_device d[POOL_MAX_DEVICES];
    int n = pool_inv_snapshot(p->inv, d, POOL_MAX_DEVICES);
    char ts[40];
    util_time_rfc3339_ms(ts, sizeof ts);
    util_sb_puts(sb, "{\"pool_id\":");
    util_sb_json_str(sb, p->pool_id);
    util_sb_printf(sb, ",\"endpoint\":\"%s\",\"ts\":%llu,\"ts_rfc3339\":\"%s\",\"inventory\":\"%s\",\"devices\":",
                   p->endpoint, (unsigned long long)util_wall_ms(), ts, pool_inv_source(p->inv));
    pthread_mutex_lock(&p->mu);
    pool_devices_json(p, d, n, sb);
    util_sb_puts(sb, ",\"workers\":");
    pool_workers_json_locked(p, sb);
    pthread_mutex_unlock(&p->mu);
    util_sb_puts(sb, "}");
}
