/* store — the orchestrator's durable state in one SQLite file (SPEC §6).
 *
 * WAL journal, file mode 0600 (the -wal/-shm files inherit it), versioned
 * migrations applied at open inside one transaction, prepared parameterised
 * statements only. Every state transition is one transaction; dequeue +
 * dispatch is atomic (store_job_dispatch).
 *
 * Privacy rule (SPEC §6 Resolved): the request body of a job is stored in the
 * `queue` table only while the job is queued and is deleted in the same
 * transaction that dispatches (or ends) it. With persist_prompts = 0
 * ("state.persist_prompts: never") no body is ever written, and a restart
 * fails the still-queued jobs with ORCHESTRATOR_RESTARTED.
 *
 * Recovery (store_recover): jobs found dispatched or running at start failed
 * because the orchestrator died under them; they are marked failed with
 * ORCHESTRATOR_RESTARTED (not WORKER_FAILED: the worker did nothing wrong, and
 * the client must be able to tell the two apart). Queued jobs whose body is
 * present are handed back in queue order for the in-memory queue.
 *
 * Times are integer milliseconds since the epoch (caller-supplied, so tests
 * are deterministic). Thread-safe: one connection, serialised by a mutex.
 */
#ifndef LLORCH_ORCH_STORE_H
#define LLORCH_ORCH_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "orch/core/job.h"

struct store;

/* A job row. Strings are NUL-terminated and bounded (job.h limits). */
struct store_job {
    char id[JOB_ID_MAX + 1];
    char tenant[JOB_TENANT_MAX + 1];
    char session[JOB_SESSION_MAX + 1];
    enum job_status status;
    enum job_prio priority;
    char model_ref[JOB_MODEL_REF_MAX + 1];
    char prompt_hash[65];
    char params[4096];          /* JSON object: sampling params, never the prompt */
    uint64_t seed;
    char worker_id[JOB_WORKER_ID_MAX + 1];
    char pool_id[JOB_POOL_ID_MAX + 1];
    int64_t created_ms, queued_ms, dispatched_ms, started_ms, completed_ms; /* 0 = not yet */
    char outcome[32];           /* "completed", "failed", "cancelled", ... */
    char error_code[32];        /* SPEC §7 code or "" */
    int64_t tokens_in, tokens_out;
    int retry_count;
    char last_error[512];
};

#define STORE_SCHEMA_VERSION 2

/* Opens (creating with mode 0600) and migrates. persist_prompts: 1 = store a
 * queued job's body until dispatch (default), 0 = never. */
int store_open(const char *path, int persist_prompts, struct store **out, char *err, size_t errlen);
void store_close(struct store *s);
int store_schema_version(struct store *s);

/* New job: a jobs row (status queued) + its queue row, one transaction.
 * j->id, tenant, model_ref, priority, params, seed, prompt_hash, created_ms are
 * read; body (the request JSON, may be NULL) is kept only if persist_prompts.
 * Returns 0, -EEXIST (duplicate id), -EINVAL (oversized field), -ENOSPC (the
 * database or its disk is full: SQLITE_FULL; nothing was written) or -EIO. */
int store_job_insert(struct store *s, const struct store_job *j, const char *body, size_t body_len,
                     char *err, size_t errlen);
/* queued -> dispatched, queue row (and body) deleted, worker/pool recorded.
 * -ESTALE when the job is not queued (already dispatched, cancelled, ...). */
int store_job_dispatch(struct store *s, const char *id, const char *worker_id, const char *pool_id,
                       int64_t now_ms, char *err, size_t errlen);
/* dispatched -> running (the worker's `started` event). -ESTALE otherwise. */
int store_job_started(struct store *s, const char *id, int64_t tokens_in, int64_t now_ms, char *err,
                      size_t errlen);
/* dispatched|running -> queued again (retry before the first token):
 * retry_count++, last_error set, body re-stored if persist_prompts. */
int store_job_requeue(struct store *s, const char *id, const char *body, size_t body_len,
                      const char *last_error, int64_t now_ms, char *err, size_t errlen);
/* Any non-terminal -> completed|failed|cancelled; the queue row goes too.
 * error_code may be NULL. -ESTALE when already terminal (idempotent cancel
 * callers treat it as success). */
int store_job_finish(struct store *s, const char *id, enum job_status final, const char *error_code,
                     const char *last_error, int64_t tokens_in, int64_t tokens_out, int64_t now_ms,
                     char *err, size_t errlen);
/* 0 and *out, or -ENOENT. */
int store_job_get(struct store *s, const char *id, struct store_job *out);
/* The stored body of a queued job (malloc'd, caller frees): 0, -ENOENT (none). */
int store_queue_body(struct store *s, const char *id, char **body, size_t *len);

/* Restart recovery; see the header comment. For each queued job kept, in
 * queue order, calls cb (body is borrowed for the call). Returns the number of
 * jobs failed with ORCHESTRATOR_RESTARTED in *n_failed. */
typedef int (*store_recover_cb)(void *ctx, const struct store_job *job, const char *body, size_t body_len);
int store_recover(struct store *s, int64_t now_ms, store_recover_cb cb, void *ctx, int *n_requeued,
                  int *n_failed, char *err, size_t errlen);

/* SSE checkpoint: the last event id sent for a job and, once it ended, its
 * terminal event (name + JSON data; no generated text) so a reconnect after a
 * restart can replay it. */
int store_checkpoint_put(struct store *s, const char *job_id, int64_t last_event_id, const char *terminal_event,
                         const char *terminal_data, char *err, size_t errlen);
int store_checkpoint_get(struct store *s, const char *job_id, int64_t *last_event_id, char *event, size_t ecap,
                         char *data, size_t dcap);

/* Tenant quotas (platform mode). tokens_today resets when day (UTC yyyymmdd) changes. */
struct store_quota {
    int64_t max_concurrent;     /* -1 = unlimited */
    int64_t daily_tokens;       /* -1 = unlimited */
    int64_t tokens_today;
    int64_t day;
};
int store_quota_set(struct store *s, const char *tenant, int64_t max_concurrent, int64_t daily_tokens);
int store_quota_get(struct store *s, const char *tenant, int64_t day, struct store_quota *out); /* -ENOENT */
int store_quota_add_tokens(struct store *s, const char *tenant, int64_t day, int64_t tokens);

/* Small key/value table (effective config snapshot, instance id, ...). */
int store_config_put(struct store *s, const char *key, const char *value);
int store_config_get(struct store *s, const char *key, char *out, size_t cap); /* -ENOENT */

/* Placements made through the API (POST /v2/placements), kept until
 * DELETE so they survive a restart. put is idempotent (0 when already
 * there); del returns -ENOENT when there is none; list calls cb for each row
 * in creation order (cb's nonzero return stops it). */
int store_placement_put(struct store *s, const char *model_ref, const char *pool_id, int gpu_id, int64_t now_ms,
                        char *err, size_t errlen);
int store_placement_del(struct store *s, const char *model_ref, const char *pool_id, int gpu_id, char *err,
                        size_t errlen);
typedef int (*store_placement_cb)(void *ctx, const char *model_ref, const char *pool_id, int gpu_id);
int store_placement_list(struct store *s, store_placement_cb cb, void *ctx);

/* WAL checkpoint with truncation. Old WAL frames still hold the bodies of
 * jobs dispatched since the last checkpoint (secure_delete zeroes only the
 * live pages); the server calls this periodically (e.g. every 10 s) so a
 * dispatched prompt does not linger on disk. */
int store_maintenance(struct store *s);

/* Counts by status (index = enum job_status). */
int store_count_by_status(struct store *s, int64_t counts[JOB__STATUS_COUNT]);

#endif
