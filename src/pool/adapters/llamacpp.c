/* llamacpp adapter — an external llama.cpp `llama-server` behind a
 * translating proxy, so the URI the pool reports speaks the standard worker
 * contract (SPEC §3.4; translation in llamacpp_proxy.c).
 *
 *   spawn    llama-server --model PATH --host 127.0.0.1 --port P --ctx-size N [config.args...]
 *            (P: a free loopback port picked here)
 *   started  a readiness thread polls llama-server's /health (503 while it
 *            loads) every 100 ms; once 200, it starts the proxy and marks the
 *            worker ready through the same path as a ready callback (with the
 *            worker's own spawn token), reporting the preflight estimate as
 *            its memory (llama-server reports none)
 *   cleanup  after the process is reaped: stop the thread and the proxy
 */
#include "pool/adapters/llamacpp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/http_client.h"
#include "common/log.h"

static int lcpp_platform_ok(char *err, size_t errlen) {
    (void)err;
    (void)errlen;
    return 0;
}

/* llama.cpp loads far more architectures than our engine; it refuses the
 * rest itself (the worker then exits and the failure is reported). */
static int lcpp_arch(const char *arch) {
    return arch[0] != 0;
}

static int free_port(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -errno;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    int port = -EADDRNOTAVAIL;
    if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(s, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(s);
    return port;
}

static int lcpp_spawn(const struct pool_adapter *a, const struct pool_spawn_args *s, struct pool_argv *o, char *err,
                      size_t errlen) {
    struct lcpp *L = calloc(1, sizeof *L);
    if (!L) return util_fail(err, errlen, -ENOMEM, "out of memory");
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    *s->ctx_out = L;
    L->upstream_port = free_port();
    if (L->upstream_port < 0) return util_fail(err, errlen, L->upstream_port, "no free port for llama-server");
    snprintf(L->upstream, sizeof L->upstream, "http://127.0.0.1:%d", L->upstream_port);
    snprintf(L->worker_id, sizeof L->worker_id, "%s", s->worker_id);
    snprintf(L->token, sizeof L->token, "%s", s->spawn_token);
    snprintf(L->model_ref, sizeof L->model_ref, "%s", s->model_ref);
    snprintf(L->memarch, sizeof L->memarch, "%s", pool_adapter_memarch(a));
    int rc = 0;
    rc |= pool_argv_add(o, "%s", a->binary);
    rc |= pool_argv_add(o, "--model");
    rc |= pool_argv_add(o, "%s", s->model_path);
    rc |= pool_argv_add(o, "--host");
    rc |= pool_argv_add(o, "127.0.0.1");
    rc |= pool_argv_add(o, "--port");
    rc |= pool_argv_add(o, "%d", L->upstream_port);
    if (s->ctx > 0) {
        rc |= pool_argv_add(o, "--ctx-size");
        rc |= pool_argv_add(o, "%lld", (long long)s->ctx);
    }
    /* config.args: extra flags, split on spaces (no shell is involved) */
    char extra[sizeof a->extra_args];
    snprintf(extra, sizeof extra, "%s", a->extra_args);
    char *save = NULL;
    for (char *t = strtok_r(extra, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) rc |= pool_argv_add(o, "%s", t);
    return rc ? util_fail(err, errlen, -E2BIG, "llama-server command line too long") : 0;
}

static void *ready_main(void *arg) {
    struct lcpp *L = arg;
    char url[128];
    snprintf(url, sizeof url, "%s/health", L->upstream);
    while (!atomic_load(&L->stop)) {
        http_client_req rq = { .url = url, .timeout_ms = 1000, .connect_timeout_ms = 500 };
        http_resp r;
        char e[128];
        int rc = http_client_do(&rq, &r, e, sizeof e);
        long st = rc == 0 ? r.status : 0;
        http_resp_free(&r);
        if (st == 200) break;
        usleep(100000);
    }
    if (atomic_load(&L->stop)) return NULL;
    char uri[128], err[256];
    if (lcpp_proxy_start(L, uri, sizeof uri, err, sizeof err) < 0) {
        LOG_KV(LOG_ERROR, POOL_COMPONENT, "llamacpp_proxy", NULL, "\"worker_id\":\"%s\",\"error\":\"start\"", L->worker_id);
        return NULL;
    }
    struct pool_ready rd = { .worker_id = L->worker_id, .model_ref = L->model_ref, .spawn_token = L->token, .uri = uri,
                             .worker_type = "llamacpp", .memory_architecture = L->memarch, .quant_kind = "",
                             .memory_bytes = L->estimate, .context_length = 0 };
    char msg[256];
    enum err_code c = pool_worker_ready(L->p, &rd, msg, sizeof msg);
    LOG_KV(LOG_INFO, POOL_COMPONENT, "llamacpp_ready", NULL, "\"worker_id\":\"%s\",\"uri\":\"%s\",\"upstream\":\"%s\",\"outcome\":\"%s\"",
           L->worker_id, uri, L->upstream, err_name(c));
    return NULL;
}

/* called by the lifecycle under pool.mu right after the process started */
static int lcpp_started(struct pool *p, struct pool_worker *w, char *err, size_t errlen) {
    struct lcpp *L = w->adapter_ctx;
    if (!L) return util_fail(err, errlen, -EINVAL, "no adapter state");
    L->p = p;
    L->estimate = w->reserved_bytes;
    L->start_ns = util_now_ns();
    if (pthread_create(&L->ready_thr, NULL, ready_main, L) != 0) return util_fail(err, errlen, -EAGAIN, "thread");
    L->ready_started = 1;
    return 0;
}

static void lcpp_cleanup(struct pool_worker *w) {
    struct lcpp *L = w->adapter_ctx;
    if (!L) return;
    atomic_store(&L->stop, 1);
    if (L->ready_started) pthread_join(L->ready_thr, NULL);
    lcpp_proxy_stop(L);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    free(L);
    w->adapter_ctx = NULL;
}

static void lcpp_state(const struct pool_worker *w, struct util_sb *sb) {
    const struct lcpp *L = w->adapter_ctx;
    if (L) util_sb_printf(sb, ",\"upstream\":\"%s\"", L->upstream);
}

const struct pool_adapter_ops pool_adapter_llamacpp = {
    .type = "llamacpp",
    .memory_architecture = "host",
    .default_binary = "llama-server",
    .uses_gpu = 0,
    .platform_ok = lcpp_platform_ok,
    .arch_supported = lcpp_arch,
    .spawn = lcpp_spawn,
    .started = lcpp_started,
    .health = pool_adapter_http_health,
    .stop = pool_adapter_sig_stop,
    .kill = pool_adapter_sig_kill,
    .state = lcpp_state,
    .metadata = pool_adapter_metadata,
    .cleanup = lcpp_cleanup,
};
