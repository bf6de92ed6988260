/* registry — what the orchestrator knows about pools, their devices and
 * workers, and the operator's placements (SPEC §5, §6). Pure data + rules;
 * no I/O. The HTTP layer turns register/heartbeat bodies into these structs.
 *
 * Rules held here:
 *   - a pool is available while its last accepted heartbeat (or registration)
 *     is at most heartbeat_interval_ms * missed_threshold old;
 *   - a heartbeat's URL id must equal its payload id (-EINVAL); an unknown pool
 *     must register first (-ENOENT); the token fingerprint must match the
 *     registration (-EPERM); a timestamp not newer than the last accepted one
 *     (replay) or outside [now - skew - window, now + skew] is refused (-ESTALE);
 *   - re-registering an existing pool id is refused (-EEXIST, CONFLICT) unless
 *     it presents the same token fingerprint (the same identity takes over);
 *   - a worker the orchestrator marked draining (being stopped) stays
 *     draining while heartbeats still report it ready or busy;
 *   - a worker is pinned when a placement names its model, pool and GPU; the
 *     eviction rules never pick a pinned worker.
 *
 * Concurrency: the registry is NOT internally locked; callers take
 * reg_lock()/reg_unlock() around every sequence (the scheduler decides under
 * the same lock, so a decision never sees a half-applied heartbeat).
 * Pointers returned by getters are valid until the next mutation.
 */
#ifndef LLORCH_ORCH_REGISTRY_H
#define LLORCH_ORCH_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "orch/core/job.h"

#define REG_MAX_DEVICES 32   /* GPUs + the host device per pool (pool-managerd reports up to 17) */
#define REG_MAX_WORKER_GPUS 8
#define REG_HOST_DEVICE (-1)   /* gpu_id of a pool's host-memory "device" */
#define REG_URI_MAX 255

struct reg_device {
    int gpu_id;                /* CUDA index, or REG_HOST_DEVICE */
    char name[64];
    uint64_t total_bytes;      /* as the pool reports */
    uint64_t free_bytes;       /* as the pool reports */
};

enum reg_worker_status { REG_W_STARTING = 0, REG_W_READY, REG_W_BUSY, REG_W_DRAINING, REG_W_FAILED };
const char *reg_worker_status_name(enum reg_worker_status s);
int reg_worker_status_parse(const char *s); /* -1 when unknown */

struct reg_worker {
    char id[JOB_WORKER_ID_MAX + 1];
    char pool_id[JOB_POOL_ID_MAX + 1];
    char model_ref[JOB_MODEL_REF_MAX + 1];
    char uri[REG_URI_MAX + 1];
    char worker_type[32];
    char memory_architecture[16];
    char arch[64];             /* the model's general.architecture ("" = not reported) */
    unsigned caps;             /* enum job_cap bits */
    uint64_t memory_bytes;     /* reported (ready) or estimated (starting) */
    int gpu_ids[REG_MAX_WORKER_GPUS];
    int ngpu;                  /* 0 = host-memory worker */
    int64_t context_length;
    enum reg_worker_status status;
    /* orchestrator-side (kept across heartbeats) */
    int active_jobs;           /* batch = 1: 0 or 1 */
    int64_t last_used_ms;      /* LRU eviction */
    int64_t created_ms;        /* first seen / commanded */
    int pool_idx;              /* index of its pool (internal) */
};

struct reg_pool {
    char id[JOB_POOL_ID_MAX + 1];
    char endpoint[REG_URI_MAX + 1];
    char token_fp[16];         /* 6-hex fingerprint of the pool's bearer token ("" = none) */
    struct reg_device dev[REG_MAX_DEVICES];
    int ndev;
    int64_t registered_ms;
    int64_t last_seen_ms;      /* orchestrator clock of the last accepted registration/heartbeat */
    int64_t last_ts_ms;        /* the pool's own timestamp of the last accepted heartbeat */
};

struct reg_placement {
    char model_ref[JOB_MODEL_REF_MAX + 1];
    char pool_id[JOB_POOL_ID_MAX + 1];
    int gpu_id;
    int64_t last_start_ms;     /* orchestrator-side: when a keep-loaded start was last commanded */
    int from_api;              /* orchestrator-side: made through POST /v2/placements (kept in the state file) */
};

struct reg_heartbeat {
    const char *pool_id;       /* from the payload */
    int64_t ts_ms;             /* the pool's timestamp */
    const char *token_fp;
    const struct reg_device *dev;
    int ndev;
    const struct reg_worker *workers;   /* full state: workers absent here are gone */
    size_t nworkers;
};

struct reg_opts {
    int64_t heartbeat_interval_ms;   /* 15000 */
    int missed_threshold;            /* 3 */
    int64_t max_clock_skew_ms;       /* tolerated pool/orchestrator clock difference; 30000 */
};

struct registry;

int reg_new(const struct reg_opts *o, struct registry **out);
void reg_free(struct registry *r);
void reg_lock(struct registry *r);
void reg_unlock(struct registry *r);

/* ---- pools ---- */
int reg_pool_register(struct registry *r, const struct reg_pool *facts, int64_t now_ms, char *err, size_t errlen);
int reg_pool_heartbeat(struct registry *r, const char *url_pool_id, const struct reg_heartbeat *hb, int64_t now_ms,
                       char *err, size_t errlen);
int reg_pool_remove(struct registry *r, const char *pool_id);   /* and its workers */
const struct reg_pool *reg_pool_get(const struct registry *r, const char *id);
size_t reg_pool_count(const struct registry *r);
const struct reg_pool *reg_pool_at(const struct registry *r, size_t i);
int reg_pool_available(const struct registry *r, const struct reg_pool *p, int64_t now_ms);
size_t reg_pools_available(const struct registry *r, int64_t now_ms);

/* ---- workers ---- */
/* Inserts or replaces the facts of a worker (orchestrator-side fields are kept
 * on replace). The pool must be registered (-ENOENT). */
int reg_worker_upsert(struct registry *r, const struct reg_worker *w, int64_t now_ms);
int reg_worker_remove(struct registry *r, const char *id);
struct reg_worker *reg_worker_get(struct registry *r, const char *id);
size_t reg_worker_count(const struct registry *r);
struct reg_worker *reg_worker_at(struct registry *r, size_t i);
int reg_worker_set_status(struct registry *r, const char *id, enum reg_worker_status st);
/* ready & idle -> busy (active_jobs 1): 0, -ENOENT, -EBUSY (not ready/idle). */
int reg_worker_acquire(struct registry *r, const char *id, int64_t now_ms);
/* busy -> ready, last_used = now. */
int reg_worker_release(struct registry *r, const char *id, int64_t now_ms);
/* The worker's pool (NULL if unknown). */
const struct reg_pool *reg_worker_pool(const struct registry *r, const struct reg_worker *w);
/* Counts by status (index = enum reg_worker_status, 5 entries). */
void reg_worker_counts(const struct registry *r, size_t counts[5]);

/* ---- placements ---- */
int reg_placement_add(struct registry *r, const char *model_ref, const char *pool_id, int gpu_id); /* -EEXIST */
int reg_placement_remove(struct registry *r, const char *model_ref, const char *pool_id, int gpu_id); /* -ENOENT */
size_t reg_placement_count(const struct registry *r);
const struct reg_placement *reg_placement_at(const struct registry *r, size_t i);
int reg_worker_pinned(const struct registry *r, const struct reg_worker *w);
struct reg_placement *reg_placement_at_mut(struct registry *r, size_t i);
/* 1 when a worker (any status but failed) of the placement's model sits on
 * its pool and device: the placement is satisfied or being satisfied. */
int reg_placement_served(const struct registry *r, const struct reg_placement *p);
/* 1 when any placement names this model (starts are then restricted to it). */
int reg_model_has_placement(const struct registry *r, const char *model_ref);

/* ---- memory ---- */
/* Free bytes of a device as the scheduler sees it: reported free minus the
 * estimates of this pool's STARTING workers on the device (not yet visible
 * in the pool's figures). Saturates at 0. */
uint64_t reg_device_room(const struct registry *r, const struct reg_pool *p, int dev_index);
/* The same for every device at once, in one pass over the workers (the
 * scheduler's hot path). Arrays are indexed [pool_index * REG_MAX_DEVICES +
 * dev_index] and need reg_pool_count() * REG_MAX_DEVICES entries:
 *   room[]    reported free minus pending STARTING estimates (saturating)
 *   workers[] workers (any status) placed on the device */
void reg_device_stats(const struct registry *r, uint64_t *room, int *workers);

#endif
