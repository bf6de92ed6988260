/* pool — internal header of pool-managerd (SPEC §5): the per-machine agent.
 * It decides nothing: it reports facts (inventory, workers) and executes the
 * orchestrator's commands (start, stop) after checking they can succeed.
 *
 * Modules and what they own:
 *   pool_config.c   the option table (llorch_config) and the adapters list
 *   inventory_*.c   devices: NVML via dlopen (read-only), the host (RAM), or
 *                   the simulated test double; a snapshot cache <= 100 ms old
 *   adapters/ (.c)  one const vtable per worker type (adapter.h)
 *   preflight.c     model/arch/memory/GPU checks before any spawn
 *   lifecycle.c     the worker table: spawn, ready, stop, exit detection,
 *                   accounting, failure reports (one watcher thread per worker)
 *   provision.c     model refs -> local files; hf: downloads with resume
 *   api.c           the HTTP control API
 *   heartbeat.c     registration + heartbeats to the orchestrator
 *   health.c        polls the workers' /health; marks unanswering ones failed
 *
 * Threads: main (waits for SIGTERM/SIGINT), MHD handler thread(s), one
 * watcher per worker, the heartbeat thread, the health poller, one thread per
 * running download.
 * All shared state (worker table, accounting, downloads) is under pool.mu.
 */
#ifndef LLORCH_POOL_H
#define LLORCH_POOL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/err.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "common/util.h"

#define POOL_COMPONENT "pool"
#define POOL_MAX_DEVICES 17          /* 16 GPUs + the host device */
#define POOL_HOST_DEVICE (-1)        /* gpu_id of the host-memory device */
#define POOL_MAX_GPUS_PER_WORKER 8
#define POOL_MAX_ADAPTERS 16
#define POOL_MAX_WORKERS 256
#define POOL_ID_MAX 64
#define POOL_REF_MAX 512
#define POOL_PATH_MAX 4096
#define POOL_TAIL_BYTES 4096         /* stderr tail kept for failure reports */

/* ---- config (pool_config.c) ----------------------------------------------- */
extern const struct cfg_opt pool_cfg_opts[];
extern const size_t pool_cfg_nopts;
extern const cfg_check_fn pool_cfg_check;

struct pool_adapter;  /* adapters/adapter.h */

/* ---- inventory (inventory*.c) --------------------------------------------- */
struct pool_device {
    int gpu_id;                  /* CUDA/NVML index, or POOL_HOST_DEVICE */
    char uuid[96];
    char name[96];
    int cc_major, cc_minor;      /* compute capability (0.0 for host) */
    uint64_t total_bytes, used_bytes, free_bytes;
    int util_pct;                /* -1 unknown */
    int temp_c;                  /* -1 unknown */
};

enum pool_inv_kind { POOL_INV_NVML, POOL_INV_HOST, POOL_INV_SIMULATED };

struct pool_inventory;
/* sim_specs: "NAME:BYTES" items (simulated only). Returns 0 or <0 + err. An
 * nvml inventory without NVML or GPUs degrades to host-only (logged). */
int pool_inv_open(enum pool_inv_kind kind, const char *const *sim_specs, size_t nsim, struct pool_inventory **out,
                  char *err, size_t errlen);
void pool_inv_close(struct pool_inventory *inv);
const char *pool_inv_source(const struct pool_inventory *inv);  /* "nvml" | "host" | "simulated" */
/* A snapshot no older than 100 ms (refreshed under the inventory's own lock):
 * the GPUs, then the host device last. Returns the count. */
int pool_inv_snapshot(struct pool_inventory *inv, struct pool_device *out, int cap);
/* Sets what the simulated double reports as used per gpu_id (called by the
 * lifecycle whenever accounting changes). No-op for real sources. */
void pool_inv_sim_account(struct pool_inventory *inv, int gpu_id, uint64_t used);

/* backends (inventory_nvml.c, inventory_host.c, inventory_sim.c) */
struct pool_nvml;
int pool_nvml_open(struct pool_nvml **out, char *err, size_t errlen); /* dlopen libnvidia-ml.so.1 */
int pool_nvml_read(struct pool_nvml *n, struct pool_device *out, int cap);
void pool_nvml_close(struct pool_nvml *n);
int pool_host_read(struct pool_device *out);  /* the host device from /proc/meminfo */
int pool_sim_parse(const char *spec, int gpu_id, struct pool_device *out, char *err, size_t errlen);

/* ---- workers --------------------------------------------------------------- */
enum pool_wstatus { PW_STARTING = 0, PW_READY, PW_BUSY, PW_DRAINING, PW_FAILED };
const char *pool_wstatus_name(enum pool_wstatus s);

struct pool_worker {
    char id[40];
    char token[65];                  /* per-worker spawn token (hex) */
    char model_ref[POOL_REF_MAX];
    char model_path[POOL_PATH_MAX];
    const struct pool_adapter *ad;   /* borrowed from pool.adapters */
    int gpu_ids[POOL_MAX_GPUS_PER_WORKER];
    int ngpu;                        /* 0 = host-memory worker */
    int64_t ctx;                     /* 0 = the worker's default */
    char capability[24];
    enum pool_wstatus status;
    uint64_t reserved_bytes;         /* preflight estimate, held while starting */
    uint64_t memory_bytes;           /* reported at ready (then what is accounted) */
    char uri[256];
    char worker_type[32];
    char memory_architecture[16];
    char arch[64];                   /* the model's general.architecture (preflight; "" = unknown) */
    char quant_kind[24];
    int64_t context_length;
    pid_t pid;
    int reaped;                      /* pid no longer ours to signal */
    int stop_requested;
    int provisioning;                /* waiting for its model's pull (no process yet, pid 0) */
    uint64_t started_ns, kill_at_ns; /* kill_at_ns: SIGKILL deadline after SIGTERM (0 = none) */
    char tail[POOL_TAIL_BYTES];      /* ring of the last stderr bytes */
    size_t tail_len, tail_pos;
    void *adapter_ctx;               /* owned by the adapter (llamacpp proxy) */
    pthread_t watcher;
    int health_misses;               /* consecutive failed /health polls (health.c) */
    int unhealthy;                   /* marked failed by health.c (not by an exit): may recover */
};

/* ---- downloads (provision.c) ----------------------------------------------- */
enum pool_dl_state { PDL_RUNNING = 0, PDL_DONE, PDL_FAILED };
struct pool_download {
    char model_ref[POOL_REF_MAX];
    char path[POOL_PATH_MAX];        /* final file */
    char sha256[65];
    enum pool_dl_state state;
    enum err_code error;
    char message[640];
    uint64_t bytes, total;           /* total 0 = unknown */
    int from_mirror;
    struct pool_download *next;
};

/* ---- the pool ---------------------------------------------------------------- */
struct pool {
    struct cfg *cfg;                 /* owned */
    char pool_id[POOL_ID_MAX + 1];
    char endpoint[300];              /* http://host:port, what the orchestrator calls */
    char cache_dir[POOL_PATH_MAX];
    uint64_t cache_reserve_bytes;    /* a pull must leave this much free on the cache's file system */
    char self_dir[POOL_PATH_MAX];    /* directory of the pool-managerd binary */
    const char *orch_url;            /* NULL = no orchestrator (standalone) */
    const char *orch_token;          /* NULL = none */
    int64_t hb_interval_ms;
    int64_t stop_grace_ms;
    int64_t start_timeout_ms;
    int64_t health_interval_ms;      /* worker /health poll period (0 = off) */
    int64_t health_timeout_ms;       /* one poll's limit */
    int health_failures;             /* consecutive misses before a worker is marked failed */
    uint64_t headroom_bytes;
    double headroom_pct;
    struct pool_inventory *inv;      /* owned */
    struct pool_adapter *adapters;   /* owned array */
    int nadapters;
    http_server *http;               /* owned */

    pthread_mutex_t start_mu;        /* preflight + spawn are one step (taken before mu) */
    pthread_mutex_t mu;              /* guards everything below */
    pthread_cond_t cv;               /* signalled on worker table changes */
    struct pool_worker *workers[POOL_MAX_WORKERS];
    int nworkers;
    struct pool_download *downloads;
    int shutting_down;
    int nthreads;                    /* detached threads that still use the pool (pool_thread_*) */
    int64_t test_watcher_lag_ms;     /* tests only: LLORCH_POOL_TEST_WATCHER_LAG_MS (lifecycle.c) */

    metrics_registry *metrics;
    metrics_family *m_vram_total, *m_vram_alloc, *m_workers, *m_starts, *m_spawns;

    pthread_t hb_thread;
    int hb_started;
    pthread_mutex_t hb_mu;
    pthread_cond_t hb_cv;
    int hb_stop;
    int hb_kick;                     /* send the next heartbeat now (hb_mu) */
    int registered;

    pthread_t health_thread;
    int health_started;
    pthread_mutex_t health_mu;
    pthread_cond_t health_cv;
    int health_stop;
};

/* pool_config.c: fills the pool's scalar settings and adapters from cfg. */
int pool_config_apply(struct pool *p, char *err, size_t errlen);

/* lifecycle.c */
int pool_lifecycle_init(struct pool *p);
/* Starts a worker that passed preflight. On success the worker is in the table
 * (STARTING, estimate reserved) and its id is in id_out. arch: the model's
 * general.architecture from preflight (reported in the state; may be NULL). */
int pool_worker_spawn(struct pool *p, const struct pool_adapter *ad, const char *model_ref, const char *model_path,
                      const int *gpu_ids, int ngpu, int64_t ctx, const char *capability, uint64_t estimate,
                      const char *arch, char id_out[40], char *err, size_t errlen);
/* A start whose hf: model is not local yet: the worker is recorded (starting,
 * provisioning, no process), the pull is started by the caller, and a thread
 * waits for it, runs preflight on the file and launches the worker into the
 * same record; a failure removes it and is reported like a worker failure. */
int pool_worker_start_provisioning(struct pool *p, const struct pool_adapter *ad, const char *model_ref,
                                   const int *gpu_ids, int ngpu, int64_t ctx, const char *capability, char id_out[40],
                                   char *err, size_t errlen);
/* The ready callback: body already parsed by api.c. Returns 0, or an error code
 * (nothing changes on failure). */
struct pool_ready {
    const char *worker_id, *model_ref, *spawn_token, *uri, *worker_type, *memory_architecture, *quant_kind;
    uint64_t memory_bytes;
    int64_t context_length;
};
enum err_code pool_worker_ready(struct pool *p, const struct pool_ready *r, char *msg, size_t msglen);
/* SIGTERM, then SIGKILL after the grace period (the watcher enforces it). */
enum err_code pool_worker_stop(struct pool *p, const char *id, char *msg, size_t msglen);
/* Bytes accounted on gpu_id (caller holds mu): a starting worker counts its
 * preflight estimate, a ready one what it reported.
 * which: POOL_ACC_ALL, POOL_ACC_STARTING (estimates of workers not ready yet:
 * memory no measurement shows yet), POOL_ACC_SETTLED (ready/busy/draining). */
enum { POOL_ACC_ALL = 0, POOL_ACC_STARTING = 1, POOL_ACC_SETTLED = 2 };
uint64_t pool_accounted_locked(struct pool *p, int gpu_id, int which);
/* Stops every worker and waits up to grace for them (shutdown). */
void pool_lifecycle_shutdown(struct pool *p);
/* Detached threads that use the pool (watchers, provisioning waits, pulls)
 * are counted in nthreads from before their creation to their very last
 * touch of the pool, so that main frees nothing a thread still reads.
 * begin/cancel: caller holds mu (cancel: the thread could not be created);
 * end: the thread's last act (takes mu). */
void pool_thread_begin_locked(struct pool *p);
void pool_thread_cancel_locked(struct pool *p);
void pool_thread_end(struct pool *p);
/* Waits up to ms for every counted thread to end; returns how many are left. */
/* Waits on p->cv (p->mu held by the caller) until *count is 0 or the
 * monotonic deadline (util_now_ns) passes, waking every 50 ms at least;
 * returns *count. */
int pool_wait_zero_locked(struct pool *p, const int *count, uint64_t deadline_ns);
int pool_threads_wait(struct pool *p, int64_t ms);
/* Appends the "workers":[...] array (caller holds mu). */
void pool_workers_json_locked(struct pool *p, struct util_sb *sb);
/* The whole state object {"pool_id","ts","inventory","devices","workers"}. */
void pool_state_json(struct pool *p, struct util_sb *sb);
void pool_devices_json(struct pool *p, const struct pool_device *d, int n, struct util_sb *sb);

/* preflight.c */
struct pool_start_req {
    const char *model_ref;
    const int *gpu_ids;
    int ngpu;
    const char *worker_type;         /* NULL = default adapter */
    const char *capability;          /* NULL = text-gen */
    int64_t ctx;                     /* 0 = model default capped at 4096 */
    int allow_pull;                  /* an hf: ref not local yet passes (out->needs_pull) */
    const struct pool_worker *self;  /* the provisioning worker itself: not a conflict */
};
struct pool_preflight {
    const struct pool_adapter *ad;
    char model_path[POOL_PATH_MAX];
    char arch[64];
    uint64_t estimate;               /* bytes */
    uint64_t available;              /* on the tightest device */
    int gpu;                         /* the tightest device */
    int64_t ctx;
    int needs_pull;                  /* ERR_OK but the model must be pulled first (checks after it not run) */
};
/* Returns ERR_OK or the code; msg and details_json (a JSON object or "") filled. */
enum err_code pool_preflight_run(struct pool *p, const struct pool_start_req *rq, struct pool_preflight *out,
                                 char *msg, size_t msglen, char *details, size_t dlen);
/* Pessimistic estimate of a GGUF model at ctx: weights + fp16 KV + 10 %. */
int pool_estimate_model(const char *path, int64_t *ctx_inout, char *arch, size_t archcap, uint64_t *bytes,
                        enum err_code *code, char *msg, size_t msglen);

/* provision.c */
/* Resolves a ref to a local file that exists: file: in place, hf: in the
 * mirror or cache. ERR_OK, or ERR_MODEL_NOT_FOUND / ERR_INVALID_REQUEST. */
enum err_code pool_model_resolve(struct pool *p, const char *ref, char *path, size_t cap, char *msg, size_t msglen);
/* Starts (or joins) a pull; returns the download (owned by the pool). */
enum err_code pool_model_pull(struct pool *p, const char *ref, char *msg, size_t msglen);
/* A pull's state (enum pool_dl_state), or -1 when there is none (caller holds mu);
 * a failed pull's code and message. */
int pool_download_state_locked(struct pool *p, const char *ref, enum err_code *code, char *msg, size_t msglen);
/* 1 when ref is a well-formed hf: ref (a pull could fetch it). */
int pool_model_is_hf(const char *ref);
/* {"model_ref","state","bytes","total","path","sha256","error"} of a pull (caller holds mu). */
int pool_download_json_locked(struct pool *p, const char *ref, struct util_sb *sb);
/* Hot-load: reads a cached model once in the background so the page cache
 * holds it when a worker loads it. ERR_OK once started. */
enum err_code pool_model_preload(struct pool *p, const char *ref, char *msg, size_t msglen);
void pool_provision_shutdown(struct pool *p);

/* api.c */
int pool_api_start(struct pool *p, const char *host, int port, char *err, size_t errlen);

/* heartbeat.c */
int pool_heartbeat_start(struct pool *p);
void pool_heartbeat_stop(struct pool *p);
/* Wakes the heartbeat thread to report now (a worker's status changed). */
void pool_heartbeat_kick(struct pool *p);
/* Posts a failure report (best effort; logged). Called by the watcher thread. */
void pool_report_failed(struct pool *p, const char *worker_id, int exit_code, int sig, uint64_t released,
                        const char *tail);
/* Common headers (Authorization) for calls to the orchestrator. */
void pool_orch_headers(struct pool *p, char auth[600], const char *hdrs[3]);

/* health.c */
int pool_health_start(struct pool *p);
/* Asks the poller to stop without waiting: a round in flight finishes its
 * probes (at most worker_health.timeout_ms) while shutdown stops the workers. */
void pool_health_request_stop(struct pool *p);
/* Asks and waits for the poller (and its probe threads) to end. */
void pool_health_stop(struct pool *p);

/* small helpers (lifecycle.c) */
void pool_random_hex(char *out, size_t nbytes);   /* out gets 2*nbytes hex + NUL */
int pool_parse_hostport(const char *s, char *host, size_t hcap, int *port);

#endif
