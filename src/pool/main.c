/* pool-managerd — the per-machine agent (SPEC §5).
 *
 *   pool-managerd [--config FILE] [--bind HOST:PORT] [--pool-id ID]
 *                 [--orchestrator-url URL] [--orchestrator-token T] [--cache-dir DIR]
 *                 [--heartbeat-interval-ms N] [--inventory nvml|host|simulated] ...
 *
 * Exit codes: 0 after SIGTERM/SIGINT (workers stopped first), 2 invalid
 * configuration (message on stderr), 1 could not start (bind failed, ...).
 * main owns the process: signals are blocked in every thread and taken here
 * with sigwait; exit() is called only here.
 *
 * Shutdown order: stop accepting; ask the health poller to stop (a round in
 * flight must not delay the workers' SIGTERM by a probe timeout); stop the
 * heartbeat; stop the workers (SIGCONT + SIGTERM, SIGKILL after the grace,
 * lifecycle.c); join the poller; let pulls end; then wait for every detached
 * thread that uses the pool (watchers finish after their worker left the
 * table) before freeing it. Threads still running after that bound (a
 * worker that survived SIGKILL, a report stuck on the network) keep the pool:
 * it is left to the OS rather than freed under them.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "pool/adapters/adapter.h"
#include "pool/pool.h"

/* how long main waits for the pool's detached threads after the workers have gone */
#define POOL_THREADS_WAIT_MS 5000

/* the pool and its option table when threads still used them at exit: kept
 * (and reachable for the leak checker) instead of freed */
static struct pool *volatile pool_kept;
static struct cfg_opt *volatile pool_kept_opts;

static const struct cfg_opt extra_opts[] = {
    { .key = "port_file", .type = CFG_STRING, .flag = "--port-file", .env = "",
      .help = "write the bound port here once listening (tests, supervisors)" },
};

static int write_port_file(const char *path, int port) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -errno;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0) return -EIO;
    return rename(tmp, path) == 0 ? 0 : -errno;
}

int main(int argc, char **argv) {
    log_init();
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* before any thread: all inherit it */
    signal(SIGPIPE, SIG_IGN);

    /* the option table: pool options + main's own */
    size_t n = pool_cfg_nopts + UTIL_ARRAY_LEN(extra_opts);
    struct cfg_opt *tab = calloc(n, sizeof *tab);
    if (!tab) return 1;
    memcpy(tab, pool_cfg_opts, pool_cfg_nopts * sizeof *tab);
    memcpy(tab + pool_cfg_nopts, extra_opts, sizeof extra_opts);

    struct pool *p = calloc(1, sizeof *p);
    if (!p) return 1;
    char err[512];
    int code = 0;
    int rc = cfg_load(tab, n, argc, argv, NULL, pool_cfg_check, &p->cfg, err, sizeof err);
    if (rc == CFG_HELP) {
        printf("usage: pool-managerd [--config FILE] [options]\n");
        cfg_usage(tab, n, stdout);
        goto out;
    }
    if (rc < 0) {
        fprintf(stderr, "pool-managerd: %s\n", err);
        code = 2;
        goto out;
    }
    log_set_level(log_level_parse(cfg_str(p->cfg, "log.level")));
    if (getenv("LLORCH_LOG_LEVEL")) log_init();

    char exe[POOL_PATH_MAX];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0) {
        fprintf(stderr, "pool-managerd: cannot read /proc/self/exe\n");
        code = 1;
        goto out;
    }
    exe[el] = 0;
    char *slash = strrchr(exe, '/');
    *slash = 0;
    snprintf(p->self_dir, sizeof p->self_dir, "%s", exe[0] ? exe : "/");

    pool_lifecycle_init(p);
    if (pool_config_apply(p, err, sizeof err) < 0) {
        fprintf(stderr, "pool-managerd: %s\n", err);
        code = 2;
        goto out;
    }
    p->metrics = metrics_new("component=\"pool-managerd\"");
    p->m_vram_total = metrics_gauge(p->metrics, "pool_mgr_gpu_vram_total_bytes", "Device memory", (const char *[]){ "gpu_id", NULL });
    p->m_vram_alloc = metrics_gauge(p->metrics, "pool_mgr_gpu_vram_allocated_bytes",
                                    "Memory accounted to this pool's workers", (const char *[]){ "gpu_id", NULL });
    p->m_workers = metrics_gauge(p->metrics, "pool_mgr_workers_total", "Workers by status", (const char *[]){ "status", NULL });
    p->m_starts = metrics_counter(p->metrics, "pool_mgr_worker_starts_total", "Start commands by outcome",
                                  (const char *[]){ "outcome", NULL });
    p->m_spawns = metrics_counter(p->metrics, "pool_mgr_adapter_spawns_total", "Process spawns by adapter",
                                  (const char *[]){ "adapter_name", "outcome", NULL });

    char host[256];
    int port;
    pool_parse_hostport(cfg_str(p->cfg, "bind"), host, sizeof host, &port);
    if (pool_api_start(p, host, port, err, sizeof err) < 0) {
        fprintf(stderr, "pool-managerd: cannot listen on %s: %s\n", cfg_str(p->cfg, "bind"), err);
        code = 1;
        goto out;
    }
    port = http_server_port(p->http);
    const char *adv = cfg_str(p->cfg, "advertise_url");
    const char *chost = (!strcmp(host, "0.0.0.0") || !strcmp(host, "::")) ? "127.0.0.1" : host;
    if (adv && *adv) snprintf(p->endpoint, sizeof p->endpoint, "%s", adv);
    else if (strchr(chost, ':')) snprintf(p->endpoint, sizeof p->endpoint, "http://[%s]:%d", chost, port);
    else snprintf(p->endpoint, sizeof p->endpoint, "http://%s:%d", chost, port);
    const char *pf = cfg_str(p->cfg, "port_file");
    if (pf && *pf && write_port_file(pf, port) < 0) {
        fprintf(stderr, "pool-managerd: cannot write --port-file %s\n", pf);
        code = 1;
        goto out;
    }
    LOG_KV(LOG_INFO, POOL_COMPONENT, "listening", NULL,
           "\"pool_id\":\"%s\",\"endpoint\":\"%s\",\"port\":%d,\"inventory\":\"%s\",\"adapters\":%d,\"cache_dir\":\"%s\"",
           p->pool_id, p->endpoint, port, pool_inv_source(p->inv), p->nadapters, p->cache_dir);
    pool_heartbeat_start(p);
    pool_health_start(p);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {}
    LOG_INFO(POOL_COMPONENT, "shutdown", NULL, "signal %d: stopping workers", sig);
    http_server_stop_accepting(p->http, ERR_POOL_UNAVAILABLE, "pool-managerd is shutting down");
    pool_health_request_stop(p);
    pool_heartbeat_stop(p);
    pool_lifecycle_shutdown(p);
    pool_health_stop(p);
    pool_provision_shutdown(p);
    int left = pool_threads_wait(p, POOL_THREADS_WAIT_MS);
    if (left) {
        LOG_ERROR(POOL_COMPONENT, "shutdown", NULL, "%d thread(s) still use the pool: exiting without freeing it", left);
        pool_kept = p;
        pool_kept_opts = tab; /* the settings may point into it */
        return 0;
    }
    http_server_drain(p->http, 1000); /* answers already given reach their clients */
out:
    http_server_free(p->http);
    pool_inv_close(p->inv);
    metrics_free(p->metrics);
    free(p->adapters);
    cfg_free(p->cfg);
    free(tab);
    free(p);
    return code;
}
