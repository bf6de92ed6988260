/* job — see job.h */
#include "orch/core/job.h"

#include <string.h>

static const char *const status_names[JOB__STATUS_COUNT] = {
    "queued", "dispatched", "running", "completed", "failed", "cancelled",
};

const char *job_status_name(enum job_status s) {
    return (unsigned)s < JOB__STATUS_COUNT ? status_names[s] : "?";
}

int job_status_parse(const char *s) {
    for (int i = 0; s && i < JOB__STATUS_COUNT; i++)
        if (strcmp(s, status_names[i]) == 0) return i;
    return -1;
}

int job_status_terminal(enum job_status s) {
    return s == JOB_COMPLETED || s == JOB_FAILED || s == JOB_CANCELLED;
}

const char *job_prio_name(enum job_prio p) { return p == JOB_PRIO_BATCH ? "batch" : "interactive"; }

int job_prio_parse(const char *s) {
    if (!s) return -1;
    if (strcmp(s, "interactive") == 0) return JOB_PRIO_INTERACTIVE;
    if (strcmp(s, "batch") == 0) return JOB_PRIO_BATCH;
    return -1;
}

static const struct { const char *name; unsigned bit; } caps[] = {
    { "text-gen", CAP_TEXT_GEN },   { "image-gen", CAP_IMAGE_GEN },   { "audio-gen", CAP_AUDIO_GEN },
    { "embedding", CAP_EMBEDDING }, { "multimodal", CAP_MULTIMODAL },
};

unsigned job_cap_parse(const char *s) {
    for (size_t i = 0; s && i < sizeof caps / sizeof caps[0]; i++)
        if (strcmp(s, caps[i].name) == 0) return caps[i].bit;
    return 0;
}

const char *job_cap_name(unsigned bit) {
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if (caps[i].bit == bit) return caps[i].name;
    return NULL;
}

int job_id_valid(const char *s, size_t max) {
    if (!s || !*s) return 0;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                 c == '-' || c == '.' || c == ':';
        if (!ok || n >= max) return 0;
    }
    return 1;
}
