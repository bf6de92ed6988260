/* sched — the placement/dispatch decision for one job (SPEC §6 Scheduling).
 *
 * Given the job (model, capability, memory estimate) and the registry, in
 * this order:
 *   1. DISPATCH to a ready, idle worker on an available pool that serves the
 *      model and the capability, chosen by the policy;
 *   2. WAIT when such a worker is starting (it will be ready soon) or when
 *      busy workers serve the model and no device has room without eviction;
 *   3. START a worker on a pool device with room for the pessimistic estimate
 *      (est_bytes + 10 %), restricted to the model's placements when it has
 *      any; the device is chosen by the policy;
 *   4. START after evicting the least-recently-used idle unpinned worker
 *      whose memory makes room (when eviction is enabled);
 *   5. otherwise WAIT (capacity may free up; the caller fails the job with
 *      NO_CAPACITY once it has waited sched_opts.no_capacity_ms), or REJECT
 *      with NO_CAPACITY at once when no device anywhere is large enough.
 *
 * Policies choose among the candidates of steps 1 and 3:
 *   least-loaded   worker: the pool with the lowest busy/total ratio, then the
 *                  least recently used; device: fewest workers, then most room
 *   most-vram-free the candidate whose device has the most room
 *   round-robin    rotates over candidates ordered by id
 *   lua:<path>     a sandboxed Lua 5.4 function (sched_lua.c); any failure
 *                  (error, over time budget, over memory cap, bad return)
 *                  falls back to least-loaded and counts a fallback.
 *
 * Every decision is logged (event "schedule") with its inputs (WAIT at
 * DEBUG: a waiting job is re-decided on every dispatcher pass). Not
 * thread-safe by itself: call under reg_lock (the round-robin cursor and the
 * Lua state are per-sched; one scheduler thread is the intended use).
 */
#ifndef LLORCH_ORCH_SCHED_H
#define LLORCH_ORCH_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "orch/core/registry.h"

enum sched_policy { SCHED_LEAST_LOADED = 0, SCHED_MOST_VRAM_FREE, SCHED_ROUND_ROBIN, SCHED_LUA };

struct sched_opts {
    const char *policy;          /* "least-loaded" | "most-vram-free" | "round-robin" | "lua:<path>" */
    int eviction;                /* 1 = evict the LRU idle unpinned worker when needed */
    uint64_t headroom_bytes;     /* kept free on every device */
    int64_t lua_budget_ms;       /* 50 */
    size_t lua_mem_cap;          /* bytes; 8 MiB default when 0 */
    int64_t no_capacity_ms;      /* how long a job may WAIT before NO_CAPACITY (caller enforces) */
};

struct sched_job {
    const char *job_id;
    const char *model_ref;
    unsigned capability;         /* one CAP_* bit; 0 = text-gen */
    uint64_t est_bytes;          /* memory estimate of a worker for this model (weights + KV) */
    int64_t context_length;
    enum job_prio prio;
};

enum sched_action { SCHED_DISPATCH = 0, SCHED_START, SCHED_WAIT, SCHED_REJECT };
const char *sched_action_name(enum sched_action a);

struct sched_decision {
    enum sched_action action;
    char worker_id[JOB_WORKER_ID_MAX + 1];   /* DISPATCH */
    char pool_id[JOB_POOL_ID_MAX + 1];       /* DISPATCH, START */
    int gpu_id;                              /* START: device to start on (REG_HOST_DEVICE = host) */
    uint64_t need_bytes;                     /* START: pessimistic estimate reserved */
    char evict_worker_id[JOB_WORKER_ID_MAX + 1]; /* START: stop this one first ("" = none) */
    int error_code;                          /* REJECT: enum err_code (NO_CAPACITY, POOL_UNAVAILABLE) */
    int used_fallback;                       /* the Lua policy failed this time */
    size_t n_candidates;
    size_t n_busy;                           /* busy workers serving the model (a START is then a scale-out) */
    char reason[160];
};

struct sched_stats {
    uint64_t decisions;
    uint64_t lua_calls;
    uint64_t lua_fallbacks;
    char last_fallback[160];
};

struct sched;

/* Loads the policy (a Lua script is compiled and run once here: a script
 * that fails to load is a configuration error, not a fallback). */
int sched_new(const struct sched_opts *o, struct sched **out, char *err, size_t errlen);
void sched_free(struct sched *s);
/* Replaces the policy with a Lua script given as text (tests, embedded
 * policies); same sandbox and limits as lua:<path>. */
int sched_set_lua_text(struct sched *s, const char *text, char *err, size_t errlen);
enum sched_policy sched_policy(const struct sched *s);

/* Decides for one job. now_ms drives pool availability. Caller holds reg_lock.
 * Pure with respect to the registry: it reserves nothing (the caller applies
 * the decision: reg_worker_acquire, or a STARTING worker record). */
int sched_decide(struct sched *s, struct registry *r, const struct sched_job *job, int64_t now_ms,
                 struct sched_decision *d);
void sched_get_stats(const struct sched *s, struct sched_stats *out);

/* The pessimistic memory need for est bytes: est + 10 %, rounded up. */
uint64_t sched_need_bytes(uint64_t est);

#endif
