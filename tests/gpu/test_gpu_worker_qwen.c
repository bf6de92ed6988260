// test-libs: llorch_net PkgConfig::JANSSON
/* test_gpu_worker_qwen — worker-orcd on a synthetic Qwen2.5-0.5B Q4_K_M
 * (issue 4, acceptance 3): the ready callback and /health report the CUDA
 * worker's facts (bespoke-cuda, vram-only, resident, quant_kind Q4_K_M, the
 * VRAM really in use, sm and CUDA runtime version), a greedy /execute streams
 * started → token* → end, and a seeded sampled run repeats exactly on the GPU.
 *
 * Runs only where tools/gpu-run.sh points LLORCH_GPU_QWEN_MODEL at the model
 * it generated (`llorch gguf make --preset qwen2.5-0.5b --type Q4_K_M`); exits
 * 77 (skip) elsewhere, as on CI which has no GPU. The generic worker contract
 * tests (tests/integration/test_worker*.c) run there too, against worker-orcd. */
#include "integration/test_worker_util.h"

static const char *model_path(void) { return getenv("LLORCH_GPU_QWEN_MODEL"); }

static tw_cb CB;
static tw_proc W;

static int setup(void **st) {
    (void)st;
    setenv("LLORCH_WORKER_BIN", "worker-orcd", 0);
    tw_cb_start(&CB, 200);
    const char *extra[] = {"--model-ref", "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF::file=synthetic-q4_k_m.gguf",
                           "--ctx-size", "4096", "--spawn-token", "tok-gpu", NULL};
    if (tw_spawn(&W, model_path(), CB.port, extra, 1) != 0) {
        tw_dump_log(&W);
        return -1;
    }
    if (tw_cb_wait(&CB, 1, 60000) != 0) {
        tw_dump_log(&W);
        return -1;
    }
    return 0;
}

static int teardown(void **st) {
    (void)st;
    tw_kill(&W);
    tw_cb_stop(&CB);
    return 0;
}

static json_t *get_json(const char *path) {
    http_resp r = {0};
    assert_int_equal(tw_get(&W, path, &r), 200);
    json_t *j = json_loads(r.body, 0, NULL);
    http_resp_free(&r);
    assert_non_null(j);
    return j;
}

static void test_ready_and_health(void **st) {
    (void)st;
    pthread_mutex_lock(&CB.mu);
    json_t *cb = json_incref(CB.body);
    pthread_mutex_unlock(&CB.mu);
    assert_string_equal(json_string_value(json_object_get(cb, "worker_type")), "bespoke-cuda");
    assert_string_equal(json_string_value(json_object_get(cb, "memory_architecture")), "vram-only");
    assert_string_equal(json_string_value(json_object_get(cb, "quant_kind")), "Q4_K_M");
    json_int_t mem = json_integer_value(json_object_get(cb, "memory_bytes"));
    assert_true(mem > 300ll * 1024 * 1024); /* ~0.49 GB of weights + KV at 4096 */
    assert_int_equal(json_integer_value(json_object_get(cb, "vram_bytes")), mem);
    json_decref(cb);

    json_t *h = get_json("/health");
    char *dump = json_dumps(h, JSON_COMPACT);
    print_message("health: %s\n", dump);
    free(dump);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "healthy");
    assert_true(json_is_true(json_object_get(h, "resident")));
    assert_string_equal(json_string_value(json_object_get(h, "memory_architecture")), "vram-only");
    assert_string_equal(json_string_value(json_object_get(h, "worker_type")), "bespoke-cuda");
    assert_string_equal(json_string_value(json_object_get(h, "quant_kind")), "Q4_K_M");
    assert_true(json_integer_value(json_object_get(h, "vram_bytes_used")) > 300ll * 1024 * 1024);
    assert_true(json_integer_value(json_object_get(h, "sm")) >= 90);
    assert_true(json_integer_value(json_object_get(h, "cuda_runtime_version")) >= 12000);
    assert_int_equal(json_integer_value(json_object_get(h, "context_length")), 4096);
    json_decref(h);
}

/* one /execute; returns the concatenated text (malloc'd) and checks the order */
static char *run(const char *body, int want_tokens) {
    tw_events e;
    tw_events_init(&e);
    http_resp r = {0};
    assert_int_equal(tw_execute(&W, body, NULL, &e, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(e.n >= 2);
    assert_string_equal(e.name[0], "started");
    int tokens = 0;
    for (int i = 1; i < e.n - 1; i++) {
        assert_true(!strcmp(e.name[i], "token") || !strcmp(e.name[i], "metrics"));
        if (!strcmp(e.name[i], "token")) tokens++;
        assert_true(e.ids[i] > e.ids[i - 1]);
    }
    assert_string_equal(tw_last(&e), "end");
    json_t *end = tw_last_data(&e);
    int out = (int)json_integer_value(json_object_get(end, "tokens_out"));
    const char *why = json_string_value(json_object_get(end, "stop_reason"));
    print_message("tokens_out=%d stop=%s decode_ms=%.2f first_token_ms=%.2f\n", out, why,
                  json_number_value(json_object_get(end, "decode_time_ms")),
                  json_number_value(json_object_get(end, "first_token_ms")));
    assert_true(out <= want_tokens && out >= 1);
    if (!strcmp(why, "max_tokens")) assert_int_equal(out, want_tokens);
    assert_true(tokens <= out);
    char *txt = strdup(tw_text(&e));
    http_resp_free(&r);
    tw_events_free(&e);
    return txt;
}

static void test_generate(void **st) {
    (void)st;
    free(run("{\"job_id\":\"g1\",\"prompt\":\"Hello, world\",\"max_tokens\":64,\"temperature\":0}", 64));
    /* same seed and parameters at temperature 0.8: same text run to run */
    const char *b = "{\"job_id\":\"s1\",\"prompt\":\"Tell me a story\",\"max_tokens\":48,"
                    "\"temperature\":0.8,\"top_k\":40,\"top_p\":0.95,\"seed\":1234}";
    char *a = run(b, 48);
    char *c = run(b, 48);
    assert_string_equal(a, c);
    free(a);
    free(c);
    json_t *h = get_json("/health");
    assert_true(json_is_true(json_object_get(h, "resident")));
    json_decref(h);
}

int main(void) {
    if (!model_path() || !*model_path()) {
        fprintf(stderr, "test_gpu_worker_qwen: LLORCH_GPU_QWEN_MODEL not set (GPU machine only): skip\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_and_health),
        cmocka_unit_test(test_generate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
