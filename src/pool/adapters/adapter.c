/* adapter — shared adapter slots and the type table (see adapter.h). */
#include "pool/adapters/adapter.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/http_client.h"

const struct pool_adapter_ops *pool_adapter_ops_find(const char *type) {
    const struct pool_adapter_ops *all[] = { &pool_adapter_bespoke_cuda, &pool_adapter_cpu, &pool_adapter_llamacpp,
                                             &pool_adapter_apple_metal };
    for (size_t i = 0; type && i < UTIL_ARRAY_LEN(all); i++)
        if (!strcmp(all[i]->type, type)) return all[i];
    return NULL;
}

int pool_argv_add(struct pool_argv *a, const char *fmt, ...) {
    if (a->argc >= POOL_ARGV_MAX) return -E2BIG;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(a->buf + a->used, sizeof a->buf - a->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof a->buf - a->used) return -E2BIG;
    a->argv[a->argc++] = a->buf + a->used;
    a->argv[a->argc] = NULL;
    a->used += (size_t)n + 1;
    return 0;
}

/* Signals go only to a pid the watcher has not reaped yet (caller holds
 * pool.mu, which the watcher takes before setting reaped): no pid reuse race.
 * Stop is SIGCONT, then SIGTERM. A worker frozen by SIGSTOP (an operator, a
 * debugger, a test) would otherwise keep the SIGTERM pending and die only by
 * SIGKILL after the whole grace; continued, it shuts down cleanly (a running
 * worker ignores SIGCONT). SIGCONT goes first because its effect (resume,
 * pending stop signals dropped) happens when it is sent, before the worker
 * can have begun exiting. Sent after SIGTERM, it could reach a worker
 * already in its exit path, where a sanitizer's leak check stops the
 * process's threads with ptrace, and drop the SIGSTOP that check waits for. */
int pool_adapter_sig_stop(struct pool_worker *w) {
    if (w->reaped || w->pid <= 0) return -ESRCH;
    if (kill(w->pid, SIGCONT) != 0) return -errno;
    return kill(w->pid, SIGTERM) == 0 ? 0 : -errno;
}

int pool_adapter_sig_kill(struct pool_worker *w) {
    if (w->reaped || w->pid <= 0) return -ESRCH;
    return kill(w->pid, SIGKILL) == 0 ? 0 : -errno;
}

int pool_adapter_http_health(const struct pool_worker *w, char *err, size_t errlen) {
    if (!w->uri[0]) return util_fail(err, errlen, -EAGAIN, "worker has no uri yet");
    char url[300];
    snprintf(url, sizeof url, "%s/health", w->uri);
    http_client_req rq = { .url = url, .timeout_ms = 2000, .max_response_bytes = 64 * 1024 };
    http_resp r;
    int rc = http_client_do(&rq, &r, err, errlen);
    if (rc == 0 && r.status != 200) rc = util_fail(err, errlen, -EIO, "health answered %ld", r.status);
    http_resp_free(&r);
    return rc;
}

void pool_adapter_no_state(const struct pool_worker *w, struct util_sb *sb) {
    (void)w;
    (void)sb;
}

const char *pool_adapter_memarch(const struct pool_adapter *a) {
    return a->memory_architecture[0] ? a->memory_architecture : a->ops->memory_architecture;
}

void pool_adapter_metadata(const struct pool_adapter *a, struct util_sb *sb) {
    util_sb_puts(sb, "{\"name\":");
    util_sb_json_str(sb, a->name);
    util_sb_puts(sb, ",\"type\":");
    util_sb_json_str(sb, a->ops->type);
    util_sb_puts(sb, ",\"memory_architecture\":");
    util_sb_json_str(sb, pool_adapter_memarch(a));
    util_sb_puts(sb, ",\"binary_path\":");
    util_sb_json_str(sb, a->binary);
    util_sb_puts(sb, ",\"capabilities\":[");
    for (int i = 0; i < a->ncaps; i++) {
        if (i) util_sb_putc(sb, ',');
        util_sb_json_str(sb, a->capabilities[i]);
    }
    util_sb_printf(sb, "],\"default\":%s}", a->is_default ? "true" : "false");
}

/* The architectures our engine loads (src/engine/model.c's table). */
int pool_adapter_engine_arch(const char *arch) {
    return !strcmp(arch, "llama") || !strcmp(arch, "qwen2") || !strcmp(arch, "phi3");
}

int pool_adapter_check_binary(const char *path, const char *self_dir, char *err, size_t errlen) {
    if (!path || path[0] != '/') return util_fail(err, errlen, -EINVAL, "binary_path '%s' is not absolute", path ? path : "");
    struct stat st;
    if (stat(path, &st) != 0) return util_fail(err, errlen, -ENOENT, "binary_path '%s': %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
        return util_fail(err, errlen, -EACCES, "binary_path '%s' is not an executable file", path);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return util_fail(err, errlen, -EPERM, "binary_path '%s' is writable by group/others (mode %o)", path,
                         (unsigned)(st.st_mode & 07777));
    /* Writable by the pool's own user: refused, except for binaries installed
     * beside pool-managerd itself (the same trust as the pool binary; this is
     * how a build tree or a package lays them out). root writes everything,
     * so for root only the mode bits above count. */
    if (geteuid() != 0 && access(path, W_OK) == 0) {
        size_t n = strlen(self_dir);
        const char *slash = strrchr(path, '/');
        if (!(slash && (size_t)(slash - path) == n && strncmp(path, self_dir, n) == 0))
            return util_fail(err, errlen, -EPERM, "binary_path '%s' is writable by the pool process", path);
    }
    return 0;
}
