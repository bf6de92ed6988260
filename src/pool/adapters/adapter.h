/* adapter — one worker type as a small const vtable (SPEC §2, §5).
 *
 * The lifecycle owns processes (spawn, pipes, reaping); an adapter says what
 * to run and how to talk to it. A configured adapter (struct pool_adapter)
 * pairs an ops table with its config entry: name, binary, capabilities,
 * platform, memory architecture, default flag, free-form config map.
 */
#ifndef LLORCH_POOL_ADAPTER_H
#define LLORCH_POOL_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "pool/pool.h"

#define POOL_ARGV_MAX 40

/* What a spawn needs; strings borrowed for the call. */
struct pool_spawn_args {
    const char *worker_id, *model_path, *model_ref, *spawn_token, *callback_url;
    const int *gpu_ids;
    int ngpu;
    int64_t ctx;                 /* 0 = worker default */
    void **ctx_out;              /* the adapter may store its private state here (w->adapter_ctx) */
};

/* argv built into caller storage: argv[] point into buf. */
struct pool_argv {
    char *argv[POOL_ARGV_MAX + 1];
    int argc;
    char buf[8192];
    size_t used;
};
int pool_argv_add(struct pool_argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct pool_adapter_ops {
    const char *type;                /* "cpu", "bespoke-cuda", "llamacpp", "apple-metal" */
    const char *memory_architecture; /* "host", "vram-only", "unified", "" (from config) */
    const char *default_binary;      /* looked up next to pool-managerd when binary_path is absent */
    int uses_gpu;                    /* needs gpu_id(s); accounted on GPUs, else on the host device */
    /* 0 when this platform can run the worker type; else PLATFORM_UNSUPPORTED's message. */
    int (*platform_ok)(char *err, size_t errlen);
    /* 1 when the adapter's engine loads general.architecture = arch. */
    int (*arch_supported)(const char *arch);
    /* spawn: the command line (and, for llamacpp, its private setup). */
    int (*spawn)(const struct pool_adapter *a, const struct pool_spawn_args *s, struct pool_argv *out,
                 char *err, size_t errlen);
    /* after the process started: adapters without a ready callback of their own
     * (llamacpp) start their watcher here; NULL = the worker calls back itself. */
    int (*started)(struct pool *p, struct pool_worker *w, char *err, size_t errlen);
    /* health: GET {uri}/health answered 200 (0) or not (<0). */
    int (*health)(const struct pool_worker *w, char *err, size_t errlen);
    /* stop(grace): ask the worker to stop (SIGTERM); the lifecycle escalates. */
    int (*stop)(struct pool_worker *w);
    /* kill: SIGKILL now. */
    int (*kill)(struct pool_worker *w);
    /* state: the adapter's own fields appended to the worker's state JSON ("" when none). */
    void (*state)(const struct pool_worker *w, struct util_sb *sb);
    /* metadata: {"type","memory_architecture","binary",...} of the adapter. */
    void (*metadata)(const struct pool_adapter *a, struct util_sb *sb);
    /* release whatever started() made (called once the process is reaped). */
    void (*cleanup)(struct pool_worker *w);
};

struct pool_adapter {
    const struct pool_adapter_ops *ops;
    char name[64];
    char binary[POOL_PATH_MAX];      /* absolute; validated at start */
    char capabilities[8][24];
    int ncaps;
    char platform[32];
    char memory_architecture[16];    /* config override (llamacpp), else ops' */
    int is_default;
    char extra_args[1024];           /* config.args: extra flags, space separated (llamacpp) */
};

const struct pool_adapter_ops *pool_adapter_ops_find(const char *type);
extern const struct pool_adapter_ops pool_adapter_cpu, pool_adapter_bespoke_cuda, pool_adapter_llamacpp,
    pool_adapter_apple_metal;

/* The slots a worker of our own engine (cpu, bespoke-cuda, apple-metal) fills
 * alike: it calls back when ready (no started/cleanup), answers GET /health,
 * stops by signals and has no state of its own. Written last in the ops'
 * initializer, after the slots that differ. */
#define POOL_ADAPTER_ENGINE_WORKER_SLOTS \
    .started = NULL,                      \
    .health = pool_adapter_http_health,   \
    .stop = pool_adapter_sig_stop,        \
    .kill = pool_adapter_sig_kill,        \
    .state = pool_adapter_no_state,       \
    .metadata = pool_adapter_metadata,    \
    .cleanup = NULL

/* shared slots (adapter.c) */
int pool_adapter_sig_stop(struct pool_worker *w);
int pool_adapter_sig_kill(struct pool_worker *w);
int pool_adapter_http_health(const struct pool_worker *w, char *err, size_t errlen);
void pool_adapter_no_state(const struct pool_worker *w, struct util_sb *sb);
void pool_adapter_metadata(const struct pool_adapter *a, struct util_sb *sb);
int pool_adapter_engine_arch(const char *arch);  /* llama, qwen2, phi3 (the engine's table) */
const char *pool_adapter_memarch(const struct pool_adapter *a);
/* absolute, executable, not writable by others (and by us unless it sits beside pool-managerd) */
int pool_adapter_check_binary(const char *path, const char *self_dir, char *err, size_t errlen);

#endif
