/* worker main — SPEC §3.2 startup sequence and the SIGTERM path.
 *   1. parse + check flags (exit 1 on anything wrong, before anything else)
 *   2. device init + model validation + load (engine; progress logged at
 *      0/25/50/75/100 %), then the session (KV cache + scratch for ctx)
 *   3. start the HTTP server, THEN send the ready callback (exit 3 if it fails)
 *   4. wait for SIGTERM/SIGINT (POST /shutdown: wk_request_stop, the same
 *      path, also when it arrives before the ready callback returned), refreshing
 *      the health cache on a timer
 *   5. stop accepting, end the running job with error CANCELLED, drain the
 *      stream, free everything, exit 0 (well within SPEC's 5 s).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "worker/worker.h"

static worker W; /* the process has exactly one worker */

/* ---- signals ------------------------------------------------------------------------
 * SIGTERM/SIGINT are blocked in every thread and taken by one thread with
 * sigwait. Once the worker serves, a signal wakes the main thread for the
 * graceful path. During startup (a model load cannot be interrupted and may
 * take seconds) nothing is served yet, so the signal thread ends the process
 * at once: the OS and the driver release every allocation. */
static sigset_t sig_set;
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv; /* CLOCK_MONOTONIC */
static int stop_sig;           /* the signal received (0 = none), under stop_mu */
static int serving;            /* startup finished, under stop_mu */

static void *signal_thread(void *arg) {
    (void)arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&sig_set, &sig) != 0) continue;
        pthread_mutex_lock(&stop_mu);
        stop_sig = sig;
        int up = serving;
        pthread_cond_broadcast(&stop_cv);
        pthread_mutex_unlock(&stop_mu);
        LOG_KV(LOG_INFO, WK_COMPONENT, "signal", NULL, "\"signal\":%d,\"during_startup\":%s", sig, up ? "false" : "true");
        if (!up) _exit(0);
    }
    return NULL;
}

void wk_request_stop(void) {
    pthread_mutex_lock(&stop_mu);
    if (!stop_sig) stop_sig = SIGTERM;
    pthread_cond_broadcast(&stop_cv);
    pthread_mutex_unlock(&stop_mu);
}

/* Waits up to secs for a stop signal; returns it, or 0 on timeout. */
static int wait_stop(int secs) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += secs;
    pthread_mutex_lock(&stop_mu);
    int rc = 0;
    while (!stop_sig && rc == 0) rc = pthread_cond_timedwait(&stop_cv, &stop_mu, &ts);
    int sig = stop_sig;
    pthread_mutex_unlock(&stop_mu);
    return sig;
}

static void on_progress(void *user, int percent, uint64_t done, uint64_t total) {
    (void)user;
    LOG_KV(LOG_INFO, WK_COMPONENT, "model_load_progress", NULL, "\"percent\":%d,\"bytes_done\":%llu,\"bytes_total\":%llu",
           percent, (unsigned long long)done, (unsigned long long)total);
}

static void fatal(const char *what, const char *msg) {
    fprintf(stderr, "worker: %s: %s\n", what, msg);
    LOG_ERROR(WK_COMPONENT, "startup_failed", NULL, "%s: %s", what, msg);
}

static void make_uri(worker *w) {
    const char *host = w->a.bind;
    char hn[256];
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) {
        if (gethostname(hn, sizeof hn) == 0) {
            hn[sizeof hn - 1] = 0;
            host = hn;
        } else {
            host = "127.0.0.1";
        }
    }
    if (strchr(host, ':')) snprintf(w->uri, sizeof w->uri, "http://[%s]:%d", host, http_server_port(w->http));
    else snprintf(w->uri, sizeof w->uri, "http://%s:%d", host, http_server_port(w->http));
}

static int shutdown_worker(worker *w, int job_thread_running) {
    uint64_t t0 = util_now_ns();
    LOG_INFO(WK_COMPONENT, "shutdown_start", NULL, "stopping: no new connections, cancelling the running job");
    atomic_store(&w->accepting, 0);
    if (w->http) http_server_stop_accepting(w->http, ERR_WORKER_BUSY, "worker is shutting down");
    int joined = 1;
    if (job_thread_running) {
        pthread_mutex_lock(&w->mu);
        w->quit = 1;
        if (w->current) atomic_store(&w->current->cancel, WK_CANCEL_SHUTDOWN);
        if (w->pending) atomic_store(&w->pending->cancel, WK_CANCEL_SHUTDOWN);
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 3;
        joined = pthread_timedjoin_np(w->job_thread, NULL, &ts) == 0;
        if (!joined) LOG_ERROR(WK_COMPONENT, "shutdown_stuck", NULL, "the job thread did not stop within 3 s");
    }
    if (w->http) {
        http_server_drain(w->http, 1000); /* let the terminal event reach the client */
        http_server_free(w->http);
        w->http = NULL;
    }
    if (joined) { /* a stuck job thread still uses the session: leave it to the OS */
        eng_session_free(w->sess);
        eng_model_free(w->model);
        metrics_free(w->metrics);
    }
    LOG_KV(LOG_INFO, WK_COMPONENT, "shutdown_complete", NULL, "\"shutdown_ms\":%.1f", (double)(util_now_ns() - t0) / 1e6);
    return 0;
}

int main(int argc, char **argv) {
    log_init();
    worker *w = &W;
    char err[512];
    int pr = wk_args_parse(argc, argv, &w->a, err, sizeof err);
    if (pr == 1) {
        wk_args_usage(argv[0]);
        return 0;
    }
    if (pr < 0) {
        fprintf(stderr, "worker: error: %s\n", err);
        wk_args_usage(argv[0]);
        return 1;
    }
    /* signals (see above): blocked before any thread exists, so every
     * thread inherits the mask and only the signal thread takes them */
    sigemptyset(&sig_set);
    sigaddset(&sig_set, SIGTERM);
    sigaddset(&sig_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sig_set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t sig_th;
    if (pthread_create(&sig_th, NULL, signal_thread, NULL) != 0) {
        fprintf(stderr, "worker: cannot start the signal thread\n");
        return 1;
    }
    pthread_detach(sig_th);

    w->start_ns = util_now_ns();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_mutex_init(&w->health_mu, NULL);
    pthread_mutex_init(&w->engine_mu, NULL);
    atomic_init(&w->refresh_req, 0);
    atomic_init(&w->busy, 0);
    atomic_init(&w->accepting, 0);
    const char *base = strrchr(w->a.model_path, '/');
    snprintf(w->model_name, sizeof w->model_name, "%s", base ? base + 1 : w->a.model_path);
    LOG_KV(LOG_INFO, WK_COMPONENT, "worker_starting", NULL,
           "\"worker_id\":\"%s\",\"worker_type\":\"" WK_WORKER_TYPE "\",\"gpu_device\":%d,\"pid\":%d",
           w->a.worker_id, w->a.gpu_device, (int)getpid());

    /* 1-3: device, validation, load */
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.backend = WK_BACKEND;
    o.device = w->a.gpu_device >= 0 ? w->a.gpu_device : 0;
    o.n_threads = w->a.threads;
    o.n_ctx = w->a.ctx_size;
    o.mem_limit_bytes = w->a.mem_limit_bytes;
    o.tokenizer = (enum eng_tokenizer)w->a.tokenizer;
    o.progress = on_progress;
    int rc = eng_model_load(w->a.model_path, &o, &w->model, err, sizeof err);
    if (rc < 0) {
        fatal(rc == ENG_E_NO_DEVICE ? "device" : "startup", err);
        return 1;
    }
    w->vocab = eng_model_vocab(w->model);
    /* 4: KV cache + scratch for the whole context, now */
    rc = eng_session_new(w->model, &w->sess, err, sizeof err);
    if (rc < 0) {
        fatal("session", err);
        eng_model_free(w->model);
        return 1;
    }
    w->info = *eng_model_get_info(w->model);
    w->resident = 1;
    wk_health_refresh(w);
    LOG_KV(LOG_INFO, WK_COMPONENT, "model_loaded", NULL,
           "\"arch\":\"%s\",\"quant_kind\":\"%s\",\"n_ctx\":%d,\"n_vocab\":%d,\"memory_bytes\":%llu", w->info.arch,
           w->info.quant_kind, eng_session_n_ctx(w->sess), tok_n_vocab(w->vocab),
           (unsigned long long)w->memory_bytes);

    w->metrics = metrics_new("component=\"worker\"");
    const char *outcome[] = {"outcome", NULL};
    static const double bounds[] = {10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000};
    w->m_requests = metrics_counter(w->metrics, "worker_requests_total", "Execute requests by outcome", outcome);
    w->m_tokens = metrics_counter(w->metrics, "worker_tokens_generated_total", "Tokens generated", NULL);
    w->m_duration = metrics_histogram(w->metrics, "worker_inference_duration_ms",
                                      "Time from accepting an execute request to its terminal event", NULL, bounds,
                                      (int)UTIL_ARRAY_LEN(bounds));
    w->m_vram = metrics_gauge(w->metrics, "worker_vram_bytes", "VRAM held by this worker (0 for host memory)", NULL);
    w->m_uptime = metrics_gauge(w->metrics, "worker_uptime_seconds", "Seconds since the process started", NULL);

    if (wk_job_thread_start(w) != 0) {
        fatal("startup", "cannot start the job thread");
        return 1;
    }
    /* 5: server first, then the callback */
    atomic_store(&w->accepting, 1);
    if (wk_api_start(w, err, sizeof err) != 0) {
        fatal("http", err);
        shutdown_worker(w, 1);
        return 1;
    }
    make_uri(w);
    LOG_KV(LOG_INFO, WK_COMPONENT, "server_listening", NULL, "\"port\":%d,\"uri\":\"%s\"", http_server_port(w->http),
           w->uri);
    printf("listening %s\n", w->uri);
    fflush(stdout);
    if (w->a.callback_url && wk_ready_callback(w, err, sizeof err) != 0) {
        fatal("ready callback", err);
        shutdown_worker(w, 1);
        return 3;
    }
    LOG_KV(LOG_INFO, WK_COMPONENT, "ready", NULL, "\"uri\":\"%s\",\"startup_ms\":%.1f", w->uri,
           (double)(util_now_ns() - w->start_ns) / 1e6);

    pthread_mutex_lock(&stop_mu);
    serving = 1; /* from now on a signal takes the graceful path */
    pthread_mutex_unlock(&stop_mu);

    /* wait for a signal; refresh the health cache on the timer */
    while (!wait_stop(w->a.residency_interval_s)) wk_health_tick(w);
    return shutdown_worker(w, 1);
}
