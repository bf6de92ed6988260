/* queue — the orchestrator's in-memory admission queue (SPEC §6).
 *
 * Two classes: every interactive job is served before any batch job; FIFO
 * within a class. Bounded: capacity -1 = unbounded, else a push beyond
 * `capacity` queued jobs fails with -ENOSPC (the API maps it to 429
 * QUEUE_FULL). Operations: push, pop, cancel (remove by id) are O(1)
 * amortised (hash index + doubly linked lists); position is O(log n)
 * (a Fenwick tree of live slots per class). pop_first(pred) scans in
 * service order and is O(k) for k skipped jobs (jobs waiting for capacity,
 * retry backoff or a tenant quota stay in place).
 *
 * Thread-safe (one mutex). The queue stores an opaque data pointer per job
 * and never frees it; predicates run under the lock and must not call back
 * into the queue. The durable copy of the queue lives in the store.
 */
#ifndef LLORCH_ORCH_QUEUE_H
#define LLORCH_ORCH_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "orch/core/job.h"

struct queue;

int queue_new(int64_t capacity, struct queue **out);
void queue_free(struct queue *q);  /* accepts NULL; data pointers are not freed */

/* Appends; *position (may be NULL) gets the 0-based service position.
 * -EINVAL bad id/prio, -EEXIST id already queued, -ENOSPC full. */
int queue_push(struct queue *q, const char *id, enum job_prio prio, void *data, int64_t *position);
/* Removes the next job in service order. -ENOENT when empty. id_out has
 * JOB_ID_MAX+1 bytes; data/prio may be NULL. */
int queue_pop(struct queue *q, char *id_out, void **data, enum job_prio *prio);
/* 1 = take this job, 0 = leave it queued and look further. */
typedef int (*queue_pred_fn)(void *ctx, const char *id, enum job_prio prio, void *data);
/* Removes the first job in service order that pred accepts; -ENOENT if none. */
int queue_pop_first(struct queue *q, queue_pred_fn pred, void *ctx, char *id_out, void **data, enum job_prio *prio);
/* Cancel of a queued job: removes it; 0 and *data, or -ENOENT. */
int queue_remove(struct queue *q, const char *id, void **data);
/* 0-based position in service order (interactive ahead of batch), or -ENOENT. */
int64_t queue_position(struct queue *q, const char *id);
/* Jobs queued in a class (prio < 0: all). */
size_t queue_len(struct queue *q, int prio);
int64_t queue_capacity(struct queue *q);

#endif
