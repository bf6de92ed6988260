/* job — the vocabulary every orchestrator-core module shares: job status,
 * priority class, capability bits, and the bounds on ids. Pure; no state. */
#ifndef LLORCH_ORCH_JOB_H
#define LLORCH_ORCH_JOB_H

#include <stddef.h>

/* Lengths (without NUL). Every id from outside is checked against these. */
#define JOB_ID_MAX 64
#define JOB_TENANT_MAX 64
#define JOB_SESSION_MAX 128
#define JOB_MODEL_REF_MAX 512
#define JOB_POOL_ID_MAX 128
#define JOB_WORKER_ID_MAX 128

enum job_status {
    JOB_QUEUED = 0,
    JOB_DISPATCHED,
    JOB_RUNNING,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB__STATUS_COUNT
};

/* Interactive jobs are always served before batch jobs (SPEC §6). */
enum job_prio { JOB_PRIO_INTERACTIVE = 0, JOB_PRIO_BATCH = 1, JOB__PRIO_COUNT };

/* Capabilities (SPEC §2) as bits so a worker's set is one word. */
enum job_cap {
    CAP_TEXT_GEN = 1u << 0,
    CAP_IMAGE_GEN = 1u << 1,
    CAP_AUDIO_GEN = 1u << 2,
    CAP_EMBEDDING = 1u << 3,
    CAP_MULTIMODAL = 1u << 4,
};

const char *job_status_name(enum job_status s);   /* "queued", ...; "?" when out of range */
int job_status_parse(const char *s);              /* -1 when unknown */
int job_status_terminal(enum job_status s);       /* completed|failed|cancelled */
const char *job_prio_name(enum job_prio p);       /* "interactive" | "batch" */
int job_prio_parse(const char *s);                /* -1 when unknown */
/* One capability name -> bit; 0 when unknown (unknown capabilities are rejected). */
unsigned job_cap_parse(const char *s);
const char *job_cap_name(unsigned bit);           /* a single bit's name; NULL otherwise */
/* 1 when s is 1..max chars of [A-Za-z0-9_-.:] (ids we print, log and key on). */
int job_id_valid(const char *s, size_t max);

#endif
