/* worker — internal header of the worker program (SPEC §3). One process,
 * one model, one job at a time. Built twice from the same sources:
 * worker-cpud (LLORCH_WORKER_CPU) and worker-orcd (LLORCH_WORKER_CUDA).
 *
 * Threads and what they own:
 *   main        args, model load, server start, ready callback; then waits
 *               for SIGTERM/SIGINT (sigtimedwait) and refreshes the cached
 *               health facts (residency, memory) every residency_interval_s.
 *   MHD threads the HTTP handlers (api.c): validate, hand a job to the job
 *               thread, answer. They never wait for the decode loop: /health
 *               reads atomics and a cache under a mutex held for a memcpy.
 *   job thread  (job.c) the only user of the session: prefill, decode,
 *               stream events, then frees the job.
 */
#ifndef LLORCH_WORKER_H
#define LLORCH_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/util.h"
#include "engine/engine.h"

#if defined(LLORCH_WORKER_CUDA)
#define WK_WORKER_TYPE "bespoke-cuda"
#define WK_MEMORY_ARCH "vram-only"
#define WK_BACKEND ENG_BACKEND_CUDA
#else
#define WK_WORKER_TYPE "cpu"
#define WK_MEMORY_ARCH "host"
#define WK_BACKEND ENG_BACKEND_CPU
#endif

#define WK_COMPONENT "worker"
#define WK_MAX_PROMPT_BYTES 32768
#define WK_MAX_STOPS 4
#define WK_MAX_STOP_TOKENS 32
#define WK_DEFAULT_MAX_TOKENS 2048

/* ---- command line (args.c) -------------------------------------------------------- */
typedef struct {
    const char *worker_id;
    const char *model_path;
    const char *model_ref;        /* NULL when not given */
    const char *callback_url;     /* NULL: no ready callback */
    const char *bind;             /* default 127.0.0.1 */
    const char *spawn_token;
    int gpu_device;               /* -1 when not given */
    int port;                     /* 0 = ephemeral */
    int ctx_size;                 /* 0 = the engine's default */
    int threads;                  /* CPU threads, 0 = all cores */
    int residency_interval_s;     /* default 60 */
    int debug_ids;                /* token events carry "ids" */
    int callback_attempts;        /* default 3 */
    uint64_t mem_limit_bytes;     /* test knob passed to the engine (ENG_E_OOM beyond) */
    int tokenizer;                /* enum eng_tokenizer: 0 auto (tokenizer.json beside the model wins), 1 gguf, 2 hf-json */
} wk_args;

/* Parses argv. Returns 0, 1 when help was printed, or -1 with a message. */
int wk_args_parse(int argc, char **argv, wk_args *a, char *err, size_t errlen);
void wk_args_usage(const char *prog);

/* ---- stop strings (stop.c) ------------------------------------------------------------ */
/* Holds back output text that could be the start of a stop string. */
typedef struct {
    const char *stops[WK_MAX_STOPS];
    size_t lens[WK_MAX_STOPS];
    int n;
    char *held;
    size_t held_len, held_cap;
} wk_stop;

void wk_stop_init(wk_stop *s, const char *const *stops, int n);
void wk_stop_free(wk_stop *s);
/* Appends complete UTF-8 text; appends the releasable text to out. Returns 1
 * when a stop string matched (out then has only the text before it). */
int wk_stop_push(wk_stop *s, const char *text, size_t n, struct util_sb *out);
/* End of generation: releases what was held. */
void wk_stop_flush(wk_stop *s, struct util_sb *out);

/* ---- jobs ------------------------------------------------------------------------------- */
enum wk_cancel { WK_RUN = 0, WK_CANCEL_REQUEST = 1, WK_CANCEL_GONE = 2, WK_CANCEL_SHUTDOWN = 3 };

typedef struct wk_job {
    char job_id[65];
    char cid[65];
    int32_t *prompt;              /* [n_prompt], owned */
    int n_prompt;
    int max_tokens;
    eng_sampling_params sp;
    char *stops[WK_MAX_STOPS];    /* owned */
    int n_stops;
    uint64_t deadline_ms;         /* epoch ms; 0 = none */
    uint64_t accept_ns;
    http_stream *st;
    atomic_int cancel;            /* enum wk_cancel */
} wk_job;

void wk_job_free(wk_job *j);

/* ---- the worker ------------------------------------------------------------------------ */
typedef struct {
    wk_args a;
    eng_model *model;
    eng_session *sess;
    const tok_vocab *vocab;
    eng_model_info info;          /* copy taken at startup (strings point into the model) */
    char model_name[256];         /* file base name */
    char uri[320];
    uint64_t start_ns;
    http_server *http;

    metrics_registry *metrics;
    metrics_family *m_requests, *m_tokens, *m_duration, *m_vram, *m_uptime;

    /* health cache: refreshed every residency_interval_s. The engine is
     * never used by two threads at once: the job thread holds engine_mu for
     * a whole job; the main thread refreshes only when it can take
     * engine_mu without waiting, else it sets refresh_req and the job
     * thread refreshes between two decode steps. */
    pthread_mutex_t engine_mu;
    atomic_int refresh_req;
    pthread_mutex_t health_mu;
    int resident;
    uint64_t memory_bytes;
    char resident_msg[256];

    /* the job slot */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wk_job *pending, *current;
    int quit;
    atomic_int busy;              /* 1 from accept until the stream is closed */
    atomic_int accepting;
    pthread_t job_thread;
} worker;

/* api.c */
int wk_api_start(worker *w, char *err, size_t errlen);
/* main.c: the graceful stop SIGTERM takes once serving, asked by POST
 * /shutdown (any thread; the main thread does the stopping). Unlike a
 * SIGTERM it never takes the during-startup exit: a worker that answered
 * the request is serving, even if its ready callback has not returned. */
void wk_request_stop(void);
/* health.c */
void wk_health_refresh(worker *w);        /* caller holds engine_mu */
void wk_health_tick(worker *w);           /* main thread: refresh now or ask the job thread */
/* job.c */
int wk_job_thread_start(worker *w);
void *wk_job_thread(void *arg);
/* validate.c: the job_id rule of SPEC §3.4: 1–64 chars of [A-Za-z0-9_-] */
int wk_valid_job_id(const char *s, size_t n);
/* validate.c: parses and validates an /execute body into a job (400s) */
int wk_validate_execute(worker *w, const char *body, size_t len, wk_job *j, enum err_code *code,
                        char *field, size_t fieldcap, char *msg, size_t msgcap, char *details, size_t dcap);
/* callback.c */
int wk_ready_callback(worker *w, char *err, size_t errlen);

#endif
