/* orch — orchestratord's process state, shared by main.c (startup), api.c
 * (HTTP handlers), jobs.c (job table, event log, SSE fan-out) and dispatch.c
 * (the dispatcher thread, relay threads, pool commands). The rules live in
 * src/orch/core (llorch_orchcore); this layer only wires them to HTTP.
 *
 * Locking: o->mu guards the job table, every job's fields, event logs and
 * subscriber lists. Order: o->mu, then the queue's lock (inside queue_*),
 * then reg_lock. HTTP calls to pools/workers are never made holding o->mu.
 * o->gone_mu is a leaf lock (nothing is taken while holding it).
 * o->place_mu serialises the API's placement changes (POST/DELETE
 * /v2/placements): taken before reg_lock, never while holding o->mu or
 * reg_lock, and held across the state-file write so that the registry and
 * the file see the same changes in the same order while the write itself
 * runs without the registry lock.
 */
#ifndef LLORCH_ORCH_H
#define LLORCH_ORCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/config.h"
#include "common/http_server.h"
#include "common/metrics.h"
#include "orch/core/admission.h"
#include "orch/core/catalog.h"
#include "orch/core/harmony.h"
#include "orch/core/orch_config.h"
#include "orch/core/queue.h"
#include "orch/core/registry.h"
#include "orch/core/sched.h"
#include "orch/core/store.h"

#define ORCH_COMPONENT "orchestratord"

struct oevent {
    int64_t id;                /* SSE id: 0, 1, 2, ... per job */
    char *event;               /* "queued", "started", "token", "metrics", "end", "error" */
    char *data;                /* JSON */
};

/* A live listener of a job's events. SSE_V2 gets every event as is; the
 * OpenAI kinds translate token/end/error events (openai.c). */
enum osub_kind { OSUB_SSE_V2 = 0, OSUB_OAI_STREAM, OSUB_OAI_JSON };
struct osub {
    http_stream *st;
    enum osub_kind kind;
    int chat;                  /* chat.completion(.chunk) vs text_completion */
    int sent_role;             /* chat stream: the first delta carries the role */
    char model[JOB_ID_MAX + JOB_MODEL_REF_MAX + 2];
    int64_t created_s;
    struct util_sb text;       /* OSUB_OAI_JSON: the completion (harmony: the final channel) so far */
    int harmony;               /* chat reply in harmony format: split by channel (openai.c) */
    struct harmony_parser hp;  /* harmony: the reply's channel state */
    struct util_sb reasoning;  /* OSUB_OAI_JSON + harmony: the analysis channel so far */
};

struct ojob {
    struct ojob *hnext;        /* job table chain */
    struct orch *orch;         /* owner (for the OpenAI subscriber's on_gone callback) */
    char id[37];
    char tenant[JOB_TENANT_MAX + 1];
    char cid[65];
    struct adm_task task;      /* owns the prompt while the job lives (retries need it) */
    char *req_body;            /* the client's body, re-stored on requeue (persist_prompts) */
    size_t req_len;
    enum job_status status;
    int attempts;              /* dispatches so far */
    int starts;                /* worker starts commanded for this job */
    char start_error[32];      /* the pool's last refusal code (INSUFFICIENT_VRAM, ...) */
    int64_t created_ms, deadline_ms, not_before_ms, wait_since_ms, cancel_at_ms, finished_ms;
    char worker_id[JOB_WORKER_ID_MAX + 1];
    char pool_id[JOB_POOL_ID_MAX + 1];
    char worker_uri[REG_URI_MAX + 1];
    int64_t tokens_in, tokens_out;
    int cancel_requested;
    int timed_out;             /* the cancel came from the job's own deadline */
    int relay_running;
    /* event log (kept in memory for reconnects while the job lives) */
    struct oevent *ev;
    size_t nev, cev;
    int started_emitted;       /* a retried job shows one `started` */
    int term_emitted;          /* the one terminal event (end|error) is in the log */
    int terminal;              /* finished: store updated, subscribers closed */
    /* the finish could not be written (the state disk full, ...): kept in
     * memory and written again by orch_job_store_retry; fin_code/fin_msg
     * are what it writes (status, tokens, finished_ms are the job's) */
    int store_pending;
    char fin_code[32];
    char *fin_msg;
    int64_t last_event_ms;     /* for SSE keep-alive comments */
    /* live subscribers */
    struct osub *subs;
    size_t nsubs, csubs;
};

struct orch {
    struct cfg *cfg;
    struct orch_settings st;
    struct catalog *cat;
    struct store *store;
    struct queue *queue;
    struct registry *reg;
    struct sched *sched;
    http_server *http;
    metrics_registry *metrics;
    metrics_family *m_queue_depth, *m_enqueued, *m_dispatched, *m_sched_ms, *m_pools, *m_workers;
    metrics_family *m_policy_fallbacks; /* Lua policy failures answered by the built-in policy */

    pthread_mutex_t mu;
    pthread_cond_t wake;       /* the dispatcher waits on it */
    pthread_cond_t relay_done; /* signalled when a relay thread ends */
    int relays;                /* relay threads running (o->mu) */
    struct ojob **buckets;     /* job table */
    size_t nbuckets, njobs;
    atomic_int stopping;
    pthread_t dispatcher;
    int dispatcher_started;
    int64_t started_ms;
    int64_t store_retry_ms;    /* the last orch_job_store_retry pass */
    size_t n_store_pending;    /* jobs with store_pending set (the pass scans only when > 0) */
    /* jobs whose OpenAI client went away, to be cancelled by the dispatcher
     * (gone_mu; filled from the HTTP server's watcher thread, which must
     * not wait for o->mu: a thread holding o->mu may be closing that very
     * stream, and http_stream_close waits for the callback) */
    pthread_mutex_t gone_mu;
    char (*gone)[37];
    pthread_mutex_t place_mu;  /* API placement changes, one at a time (see above) */
    size_t ngone, cgone;
};

/* ---- jobs.c (caller holds o->mu unless said otherwise) ---- */
struct ojob *orch_job_new(struct orch *o, const char *id);  /* inserted into the table */
struct ojob *orch_job_find(struct orch *o, const char *id);
void orch_job_free_all(struct orch *o);
/* Appends an event to the log and writes it to every subscriber; a terminal
 * event (end, error) closes the subscribers. */
void orch_job_emit(struct orch *o, struct ojob *j, const char *event, const char *data_json);
/* Adds a subscriber (takes the stream and the text buffers; on failure,
 * -ENOMEM, closes the stream, frees the buffers and logs). A caller whose
 * client has no other way to read the job (OpenAI facade) cancels it then. */
int orch_job_subscribe(struct orch *o, struct ojob *j, const struct osub *sub);
/* Admission + enqueue shared by /v2/tasks and the OpenAI facade. On success
 * *jout is the new job (o->mu held by the caller) and *pos its position.
 * On failure returns <0 with e filled (code: admission codes, QUEUE_FULL,
 * INTERNAL). */
int orch_submit(struct orch *o, const char *tenant, const char *cid, const char *body, size_t len, struct ojob **jout,
                int64_t *pos, struct adm_error *e);
/* Marks a job terminal in the store, the log and the subscribers. code may be NULL. */
void orch_job_finish(struct orch *o, struct ojob *j, enum job_status st, const char *code, const char *message);
/* Same, with the worker's own terminal event (e.g. "end") relayed after the store update. */
void orch_job_finish_with(struct orch *o, struct ojob *j, enum job_status st, const char *code, const char *message,
                          const char *event, const char *data);
/* Writes an SSE comment to the subscribers of jobs silent for idle_ms (a
 * queued job can wait minutes; proxies drop silent connections) and drops
 * subscribers that have gone. */
void orch_job_keepalive(struct orch *o, int64_t now_ms, int64_t idle_ms);
/* Drops finished jobs older than keep_ms from memory (the store keeps them;
 * a job whose finish is not in the store yet stays). */
void orch_job_gc(struct orch *o, int64_t now_ms, int64_t keep_ms);
/* Writes again, at most once a second, the finishes that could not be
 * written (store_pending), oldest table order first, stopping at the first
 * that fails again (the disk is still full). Caller holds o->mu. */
void orch_job_store_retry(struct orch *o, int64_t now_ms);
/* Cancels j (idempotent; caller holds o->mu): a queued job ends CANCELLED
 * now (returns 1); a dispatched or running one is marked (its relay aborts
 * at the next worker event, the dispatcher ends it after
 * cancellation_deadline_ms regardless) and its worker's uri is copied into
 * uri_out, for the caller to POST /cancel there once o->mu is dropped
 * (orch_cancel_on_worker); uri_out is "" when there is nothing to send. */
int orch_job_cancel(struct orch *o, struct ojob *j, const char *why, char uri_out[REG_URI_MAX + 1]);
/* Records that the only client of job `id` went away (OpenAI facade: it has
 * no way to reconnect); the dispatcher cancels the job. Any lock state
 * except gone_mu held. */
void orch_job_note_gone(struct orch *o, const char *id);
/* http_gone_fn for OpenAI subscribers (user: the struct ojob). */
void orch_job_client_gone(void *user);
/* Cancels the jobs noted gone; worker uris to POST /cancel to are written
 * to uris/ids (up to max; caller holds o->mu). Returns how many. */
int orch_job_cancel_gone(struct orch *o, char (*uris)[REG_URI_MAX + 1], char (*ids)[37], int max);
/* Status JSON of GET /v2/tasks/{id} (malloc'd). */
char *orch_job_status_json(struct orch *o, struct ojob *j);

/* UTC day as yyyymmdd (tenant daily token budgets). */
int64_t orch_day(int64_t epoch_ms);

/* ---- dispatch.c ---- */
int orch_dispatcher_start(struct orch *o);
void orch_dispatcher_stop(struct orch *o);
/* Waits up to timeout_ms for the relay threads to end; returns how many are
 * still running (the caller must then not free what they use). */
int orch_relays_wait(struct orch *o, int timeout_ms);
void orch_wake(struct orch *o);                       /* any lock state */
/* Asks the job's worker to cancel (detached thread; no lock needed). */
void orch_cancel_on_worker(struct orch *o, const char *worker_uri, const char *job_id);

/* ---- openai.c ---- */
int orch_openai_routes(struct orch *o);
/* Writes one event to an OpenAI subscriber; returns 1 when the subscriber is
 * done (close it), 0 to keep it, <0 when its client is gone. */
int orch_openai_event(struct orch *o, struct ojob *j, struct osub *sub, const char *event, const char *data);

/* ---- api.c ---- */
int orch_api_routes(struct orch *o);
/* client auth shared with the OpenAI facade: tenant into out; 0 ok, else answered */
int orch_client_auth(struct orch *o, http_req *r, char tenant[JOB_TENANT_MAX + 1]);
/* The SPEC error body for an admission/enqueue failure (details name the field). */
void orch_respond_adm_error(struct orch *o, http_req *r, const struct adm_error *e);
/* A client listing (GET): authenticates (0; -1 when it answered 401 itself)
 * and starts sb (owned by the caller from then on) with head, e.g.
 * "{\"models\":[" */
int orch_list_begin(struct orch *o, http_req *r, struct util_sb *sb, const char *head);
/* Closes the listing orch_list_begin opened ("]}") and answers 200 with it
 * (orch_respond_sb: frees sb). */
void orch_list_end(http_req *r, struct util_sb *sb);
/* Answers status with sb's JSON ("{}" when empty; 500 when sb ran out of
 * memory) and frees sb. */
void orch_respond_sb(http_req *r, int status, struct util_sb *sb);
/* 6-hex fingerprint of a bearer token ("" for none). */
void orch_token_fp(const char *token, char out[16]);

#endif
