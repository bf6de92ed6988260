/* catalog — the orchestrator's model catalog (config key `models`, SPEC §6):
 * alias -> model_ref, context_length, capabilities, optional memory estimate
 * and placements. Accepted YAML shapes (both read with the generic cfg_node
 * API):
 *     models:                         models:
 *       qwen:                           - alias: qwen
 *         model_ref: hf:Qwen/...          model_ref: hf:Qwen/...
 *         context_length: 32768           context_length: 32768
 *         capabilities: [text-gen]        placements: [{pool_id: p1, gpu_id: 0}]
 *         memory_bytes: 600MiB
 *         chat_template: chatml       (chatml|phi3|llama2|llama3|harmony; when absent:
 *                                      from the model's architecture, else guessed)
 * Model refs: `hf:{org}/{repo}[@rev]::file={path}` or `file:/absolute/path`.
 */
#ifndef LLORCH_ORCH_CATALOG_H
#define LLORCH_ORCH_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "orch/core/job.h"

#define CAT_MAX_PLACEMENTS 16

struct cat_placement {
    char pool_id[JOB_POOL_ID_MAX + 1];
    int gpu_id;                       /* -1 = host memory */
};

struct cat_model {
    char alias[JOB_ID_MAX + 1];
    char model_ref[JOB_MODEL_REF_MAX + 1];
    int64_t context_length;
    unsigned caps;                    /* CAP_* bits; text-gen when not given */
    uint64_t memory_bytes;            /* estimate for scheduling; 0 = unknown */
    int chat_template;                /* enum chat_template: given, or guessed from the ref */
    int chat_template_set;            /* 1: given by the operator (wins over the model's architecture) */
    struct cat_placement placements[CAT_MAX_PLACEMENTS];
    int nplacements;
};

struct catalog;

/* models may be NULL (an empty catalog). Errors name the entry and field. */
int cat_from_tree(const struct cfg_node *models, struct catalog **out, char *err, size_t errlen);
void cat_free(struct catalog *c);
size_t cat_count(const struct catalog *c);
const struct cat_model *cat_at(const struct catalog *c, size_t i);
/* By alias first, then by model_ref. NULL when unknown. */
const struct cat_model *cat_find(const struct catalog *c, const char *name);
/* 1 when ref is a syntactically valid hf: or file: reference. */
int cat_ref_valid(const char *ref);

#endif
