/* admission — pure validation of a POST /v2/tasks body (SPEC §6, with the
 * field table of the worker's /execute, SPEC §3.4). No I/O, no state: the
 * API layer calls it, then enqueues.
 *
 * Rules:
 *   model        required; a catalog alias or model_ref (MODEL_NOT_FOUND when
 *                unknown), or an uncatalogued hf:/file: ref (context length =
 *                limits.default_context_length)
 *   prompt       required, non-empty, valid UTF-8 (no NUL), <= max_prompt_bytes
 *   max_tokens   >= 1; default 2048 capped by the context
 *   temperature  0..2   top_p 0..1   top_k 0..1000000   min_p 0..1
 *   repetition_penalty (0, 2]
 *   stop         <= 4 non-empty strings, each <= 256 bytes (the worker checks
 *                the precise 32-token bound with the model's tokenizer)
 *   seed         integer 0..2^64-1 (or its decimal string); generated when absent
 *   priority     interactive|batch (default interactive)
 *   session_id   1..128 chars [A-Za-z0-9_-.:]
 *   timeout_ms   1..limits.max_timeout_ms (default limits.default_timeout_ms)
 *   capability   a known capability the model declares (default text-gen)
 *   anything else: INVALID_REQUEST naming the unknown field (catches typos)
 * Context: the orchestrator has no tokenizer, so prompt tokens are estimated
 * conservatively as bytes + 2 (byte-level BPE and SPM byte fallback never
 * produce more than one token per byte; +2 for BOS and SPM's dummy prefix).
 * prompt_estimate + max_tokens > context_length -> CONTEXT_LENGTH_EXCEEDED.
 * This refuses some prompts that would fit; it never admits one that cannot.
 */
#ifndef LLORCH_ORCH_ADMISSION_H
#define LLORCH_ORCH_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

#include "orch/core/catalog.h"
#include "orch/core/job.h"

#define ADM_MAX_STOP 4
#define ADM_STOP_MAX_BYTES 256

struct adm_limits {
    int64_t default_timeout_ms;      /* 300000 */
    int64_t max_timeout_ms;          /* 1800000 */
    int64_t default_context_length;  /* for uncatalogued refs: 4096 */
    size_t max_prompt_bytes;         /* 32768 */
};

struct adm_task {
    const struct cat_model *model;   /* NULL for an uncatalogued ref (borrowed from the catalog) */
    char model_ref[JOB_MODEL_REF_MAX + 1];
    int64_t context_length;
    char *prompt;                    /* owned, NUL-terminated */
    size_t prompt_len;
    int64_t prompt_tokens_est;
    int64_t max_tokens;
    double temperature, top_p, min_p, repetition_penalty;
    int64_t top_k;
    char *stop[ADM_MAX_STOP];        /* owned */
    size_t nstop;
    uint64_t seed;
    int seed_given;
    enum job_prio prio;
    char session_id[JOB_SESSION_MAX + 1];
    int64_t timeout_ms;
    unsigned capability;             /* one CAP_* bit */
};

struct adm_error {
    int code;                        /* enum err_code */
    char field[32];                  /* "" when not about one field */
    char message[256];
};

/* seed_fn (may be NULL: getrandom) supplies the seed when none is given.
 * Returns 0, or <0 with e filled; out is zeroed/freed on failure. */
int adm_parse_task(const char *body, size_t len, const struct catalog *cat, const struct adm_limits *lim,
                   uint64_t (*seed_fn)(void), struct adm_task *out, struct adm_error *e);
void adm_task_free(struct adm_task *t);
/* The sampling parameters as a JSON object (jobs.params; never the prompt).
 * Returns the length, or <0 when cap is too small. */
int adm_params_json(const struct adm_task *t, char *out, size_t cap);
/* The worker's /execute body for this task and job id (malloc'd; NULL on OOM). */
char *adm_execute_body(const struct adm_task *t, const char *job_id);

#endif
