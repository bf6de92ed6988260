/* err — see err.h */
#include "common/err.h"
#include "common/util.h"

#include <string.h>

static const struct {
    const char *name;
    int http;
    int retriable;
} err_table[ERR__COUNT] = {
    [ERR_OK] = {"OK", 200, 0},
    [ERR_INVALID_REQUEST] = {"INVALID_REQUEST", 400, 0},
    [ERR_MODEL_NOT_FOUND] = {"MODEL_NOT_FOUND", 404, 0},
    [ERR_CONTEXT_LENGTH_EXCEEDED] = {"CONTEXT_LENGTH_EXCEEDED", 400, 0},
    [ERR_QUEUE_FULL] = {"QUEUE_FULL", 429, 1},
    [ERR_QUOTA_EXCEEDED] = {"QUOTA_EXCEEDED", 429, 1},
    [ERR_UNAUTHORIZED] = {"UNAUTHORIZED", 401, 0},
    [ERR_FORBIDDEN] = {"FORBIDDEN", 403, 0},
    [ERR_NOT_FOUND] = {"NOT_FOUND", 404, 0},
    [ERR_CONFLICT] = {"CONFLICT", 409, 0},
    [ERR_INSUFFICIENT_VRAM] = {"INSUFFICIENT_VRAM", 503, 1},
    [ERR_MODEL_INCOMPATIBLE] = {"MODEL_INCOMPATIBLE", 400, 0},
    [ERR_MODEL_LOAD_FAILED] = {"MODEL_LOAD_FAILED", 500, 1},
    [ERR_GPU_NOT_FOUND] = {"GPU_NOT_FOUND", 404, 0},
    [ERR_ADAPTER_NOT_FOUND] = {"ADAPTER_NOT_FOUND", 404, 0},
    [ERR_PLATFORM_UNSUPPORTED] = {"PLATFORM_UNSUPPORTED", 400, 0},
    [ERR_WORKER_BUSY] = {"WORKER_BUSY", 503, 1},
    [ERR_VRAM_OOM] = {"VRAM_OOM", 503, 1},
    [ERR_CUDA_ERROR] = {"CUDA_ERROR", 500, 1},
    [ERR_DEADLINE_EXCEEDED] = {"DEADLINE_EXCEEDED", 504, 0},
    [ERR_CANCELLED] = {"CANCELLED", 499, 0},
    [ERR_WORKER_FAILED] = {"WORKER_FAILED", 503, 1},
    [ERR_POOL_UNAVAILABLE] = {"POOL_UNAVAILABLE", 503, 1},
    [ERR_NO_CAPACITY] = {"NO_CAPACITY", 503, 1},
    [ERR_ORCHESTRATOR_RESTARTED] = {"ORCHESTRATOR_RESTARTED", 503, 1},
    /* a model pull that does not fit the cache's disk (not in SPEC §7's
     * list: added, docs/API.md); not retriable as is: space must be freed */
    [ERR_INSUFFICIENT_STORAGE] = {"INSUFFICIENT_STORAGE", 507, 0},
    [ERR_INTERNAL] = {"INTERNAL", 500, 0},
};

const char *err_name(enum err_code c) {
    return ((unsigned)c < ERR__COUNT) ? err_table[c].name : "INTERNAL";
}

int err_http_status(enum err_code c) {
    return ((unsigned)c < ERR__COUNT) ? err_table[c].http : 500;
}

int err_retriable(enum err_code c) {
    return ((unsigned)c < ERR__COUNT) ? err_table[c].retriable : 0;
}

int err_parse(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < ERR__COUNT; i++)
        if (strcmp(err_table[i].name, name) == 0) return i;
    return -1;
}

size_t err_json_body(enum err_code c, const char *message, const char *details_json,
                     const char *correlation_id, char *out, size_t cap) {
    struct util_sb sb;
    util_sb_init_fixed(&sb, out, cap);
    util_sb_puts(&sb, "{\"error\":{\"code\":");
    util_sb_json_str(&sb, err_name(c));
    util_sb_puts(&sb, ",\"message\":");
    util_sb_json_str(&sb, message ? message : "");
    util_sb_puts(&sb, ",\"details\":");
    util_sb_puts(&sb, details_json && *details_json ? details_json : "{}");
    if (correlation_id && *correlation_id) {
        util_sb_puts(&sb, ",\"correlation_id\":");
        util_sb_json_str(&sb, correlation_id);
    }
    util_sb_puts(&sb, "}}");
    return sb.len;
}
