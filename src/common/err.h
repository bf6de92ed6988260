/* err — the system's stable error codes (SPEC §7) with their HTTP statuses,
 * and the JSON error body every component returns:
 *   {"error":{"code":"UPPER_SNAKE","message":"…","details":{…},"correlation_id":"…"}}
 */
#ifndef LLORCH_ERR_H
#define LLORCH_ERR_H

#include <stddef.h>

enum err_code {
    ERR_OK = 0,
    ERR_INVALID_REQUEST,
    ERR_MODEL_NOT_FOUND,
    ERR_CONTEXT_LENGTH_EXCEEDED,
    ERR_QUEUE_FULL,
    ERR_QUOTA_EXCEEDED,
    ERR_UNAUTHORIZED,
    ERR_FORBIDDEN,
    ERR_NOT_FOUND,
    ERR_CONFLICT,
    ERR_INSUFFICIENT_VRAM,
    ERR_MODEL_INCOMPATIBLE,
    ERR_MODEL_LOAD_FAILED,
    ERR_GPU_NOT_FOUND,
    ERR_ADAPTER_NOT_FOUND,
    ERR_PLATFORM_UNSUPPORTED,
    ERR_WORKER_BUSY,
    ERR_VRAM_OOM,
    ERR_CUDA_ERROR,
    ERR_DEADLINE_EXCEEDED,
    ERR_CANCELLED,
    ERR_WORKER_FAILED,
    ERR_POOL_UNAVAILABLE,
    ERR_NO_CAPACITY,
    ERR_ORCHESTRATOR_RESTARTED,
    ERR_INSUFFICIENT_STORAGE,
    ERR_INTERNAL,
    ERR__COUNT
};

const char *err_name(enum err_code c);        /* "INVALID_REQUEST"; "INTERNAL" for out of range */
int err_http_status(enum err_code c);         /* 400, 404, 429, ... */
int err_retriable(enum err_code c);           /* 1 when a client may retry as is */
/* Parses a code name; returns -1 when unknown. */
int err_parse(const char *name);
/* Writes the JSON error body into out[cap] (details_json may be NULL: raw JSON object text).
 * Returns the length written (truncated bodies stay valid JSON only if cap is ample: 1 KiB+). */
size_t err_json_body(enum err_code c, const char *message, const char *details_json,
                     const char *correlation_id, char *out, size_t cap);

#endif
