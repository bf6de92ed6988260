// test-libs: llorch_orchcore llorch_config llorch_core
/* libFuzzer target: POST /v2/tasks bodies through admission (hostile JSON),
 * then the serialisations an admitted task goes through (params JSON, the
 * worker's /execute body, which must parse back). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_catalog.h"
#include "orch/core/admission.h"

static struct catalog *CAT;
static uint64_t seed(void) { return 1; }

static void init(void) {
    CAT = fz_catalog("fuzz_orch_admission",
                     "models:\n  qwen: {model_ref: 'hf:Qwen/Q::file=q.gguf', context_length: 128}\n"
                     "  emb: {model_ref: 'file:/m/e.gguf', context_length: 64, capabilities: [embedding]}\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!CAT) init();
    struct adm_limits lim = { .default_timeout_ms = 1000, .max_timeout_ms = 5000, .default_context_length = 256,
                              .max_prompt_bytes = 4096 };
    struct adm_task t;
    struct adm_error e;
    if (adm_parse_task((const char *)data, size, CAT, &lim, seed, &t, &e) == 0) {
        if (t.prompt_tokens_est + t.max_tokens > t.context_length || t.max_tokens < 1) abort();
        char params[4096];
        if (adm_params_json(&t, params, sizeof params) < 0) abort();
        char *body = adm_execute_body(&t, "job-1");
        if (!body) abort();
        json_t *j = json_loads(body, JSON_DECODE_INT_AS_REAL, NULL);
        if (!j) abort(); /* the worker must always get valid JSON */
        json_decref(j);
        free(body);
        adm_task_free(&t);
    } else if (e.code <= 0 || !e.message[0]) {
        abort(); /* every refusal carries a code and a message */
    }
    return 0;
}
