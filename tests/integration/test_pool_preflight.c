// test-libs: llorch_net llorch_gguf PkgConfig::JANSSON
/* pool-managerd preflight refusals and configuration (issue 5, acceptance 2).
 * GPUs here are the SIMULATED inventory (the documented test double for NVML
 * on a GPU-less machine); every start in this file is refused before any
 * process exists, which the test checks (no worker in state, no spawn counted). */
#include "test_pool_util.h"

#include "gguf/gguf.h"

static tp_pool pool;
static char dir[256];
static char mamba_path[400], text_path[400], cfg_path[400];

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* a tiny, well-formed GGUF whose architecture our engine does not run */
static void write_mamba(const char *path) {
    gguf_writer *w = gguf_writer_new();
    gguf_w_set_str(w, "general.architecture", "mamba");
    gguf_w_set_u32(w, "mamba.block_count", 2);
    gguf_w_set_u32(w, "mamba.embedding_length", 16);
    gguf_w_set_u32(w, "mamba.context_length", 256);
    static float data[16];
    int64_t ne[1] = { 16 };
    assert_true(gguf_w_add_tensor(w, "token_embd.weight", 0 /* F32 */, 1, ne, data, NULL, NULL) >= 0);
    char err[256];
    assert_int_equal(gguf_w_write(w, path, err, sizeof err), 0);
    gguf_writer_free(w);
}

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/llorch-pooltest-pf-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(mamba_path, sizeof mamba_path, "%s/mamba.gguf", dir);
    snprintf(text_path, sizeof text_path, "%s/notes.gguf", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/pool.yaml", dir);
    write_mamba(mamba_path);
    write_file(text_path, "this is not a GGUF file, just text pretending to be one\n");
    char bin[1024], yaml[4096];
    TU_BUILD(bin, "worker-cpud");
    char rb[1024];
    assert_non_null(realpath(bin, rb));
    /* The bespoke-cuda adapter needs a binary that passes the start-up checks;
     * worker-cpud stands in because no request here gets past preflight. */
    snprintf(yaml, sizeof yaml,
             "inventory: simulated\n"
             "inventory_simulated_devices: [\"SimGPU-small:8MiB\", \"SimGPU-big:4GiB\"]\n"
             "gpu_headroom_bytes: 1MiB\n"
             "adapters:\n"
             "  - name: cuda\n"
             "    type: bespoke-cuda\n"
             "    binary_path: %s\n"
             "    default: true\n"
             "  - name: cpu\n"
             "    type: cpu\n"
             "    binary_path: %s\n"
             "  - name: metal\n"
             "    type: apple-metal\n"
             "    binary_path: /nonexistent/worker-aarmd\n",
             rb, rb);
    write_file(cfg_path, yaml);
    const char *args[] = { "--config", cfg_path, NULL };
    tp_pool_start(&pool, args, NULL);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    int status = tp_pool_stop(&pool);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    return 0;
}

/* asserts the start is refused with code/status and nothing was spawned */
static json_t *refused(const char *body, long status, const char *code) {
    json_t *r = NULL;
    long st = tp_call(pool.url, "POST", "/v2/workers/start", body, &r);
    if (st != status || strcmp(tp_code(r), code))
        fail_msg("start %s: got %ld %s, want %ld %s", body, st, r ? json_dumps(r, 0) : "", status, code);
    json_t *s = tp_state(&pool);
    assert_int_equal(json_array_size(json_object_get(s, "workers")), 0);
    json_decref(s);
    assert_int_equal(tp_zombie_children(pool.pid), 0);
    return r;
}

/* refused() for the body {"model_ref":"<model's ref>"<more>}: more is the
 * further fields, each with its leading comma ("" for none) */
static json_t *refused_model(const char *model, const char *more, long status, const char *code) {
    char ref[1200], body[1400];
    tp_model_ref(ref, sizeof ref, model);
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\"%s}", ref, more);
    return refused(body, status, code);
}

static void test_state_says_simulated(void **st) {
    (void)st;
    json_t *s = tp_state(&pool);
    assert_string_equal(tp_str(s, "inventory"), "simulated");
    json_t *g0 = tp_device(s, 0), *g1 = tp_device(s, 1), *host = tp_device(s, -1);
    assert_non_null(g0);
    assert_non_null(g1);
    assert_non_null(host);
    assert_string_equal(tp_str(g0, "name"), "SimGPU-small");
    assert_int_equal(tp_int(g0, "total_bytes"), 8 << 20);
    assert_int_equal(tp_int(g1, "free_bytes"), 4ll << 30);
    assert_string_equal(tp_str(host, "kind"), "host");
    json_decref(s);
}

static void test_insufficient_vram(void **st) {
    (void)st;
    json_t *r = refused_model("llama-2-tiny-random.gguf", ",\"gpu_id\":0,\"worker_type\":\"bespoke-cuda\"", 503,
                              "INSUFFICIENT_VRAM");
    json_t *d = json_object_get(json_object_get(r, "error"), "details");
    json_int_t req = tp_int(d, "required"), avail = tp_int(d, "available");
    print_message("required %lld available %lld\n", (long long)req, (long long)avail);
    /* the model file alone is 1.7 MB; weights + KV + 10%% must exceed it */
    assert_true(req > 1750560);
    assert_true(req > avail);
    assert_int_equal(avail, (8 << 20) - (1 << 20)); /* free minus headroom */
    assert_int_equal(tp_int(d, "gpu"), 0);
    json_decref(r);
    /* nothing counted as spawned */
    http_resp resp;
    tp_get_metrics(&pool, &resp);
    assert_null(strstr(resp.body, "pool_mgr_adapter_spawns_total{"));
    assert_non_null(strstr(resp.body, "outcome=\"INSUFFICIENT_VRAM\"} 1"));
    http_resp_free(&resp);
}

static void test_gpu_not_found(void **st) {
    (void)st;
    json_decref(refused_model("stories260K.gguf", ",\"gpu_id\":7", 404, "GPU_NOT_FOUND"));
    json_decref(refused_model("stories260K.gguf", "", 404, "GPU_NOT_FOUND")); /* a GPU adapter without gpu_id */
}

static void test_adapter_not_found(void **st) {
    (void)st;
    json_decref(refused_model("stories260K.gguf", ",\"worker_type\":\"tpu-magic\"", 404, "ADAPTER_NOT_FOUND"));
}

static void test_platform_unsupported(void **st) {
    (void)st;
    json_decref(refused_model("stories260K.gguf", ",\"gpu_id\":0,\"worker_type\":\"apple-metal\"", 400,
                              "PLATFORM_UNSUPPORTED"));
}

static void test_model_refusals(void **st) {
    (void)st;
    char body[1400];
    json_decref(refused("{\"model_ref\":\"file:/nonexistent/model.gguf\",\"worker_type\":\"cpu\"}", 404,
                        "MODEL_NOT_FOUND"));
    snprintf(body, sizeof body, "{\"model_ref\":\"file:%s\",\"worker_type\":\"cpu\"}", text_path);
    json_decref(refused(body, 400, "MODEL_INCOMPATIBLE"));
    snprintf(body, sizeof body, "{\"model_ref\":\"file:%s\",\"worker_type\":\"cpu\"}", mamba_path);
    json_t *r = refused(body, 400, "MODEL_INCOMPATIBLE");
    char *dump = json_dumps(r, 0);
    int has = strstr(dump, "mamba") != NULL;
    free(dump);
    json_decref(r);
    assert_true(has);
    /* a directory is not a model file */
    snprintf(body, sizeof body, "{\"model_ref\":\"file:%s\",\"worker_type\":\"cpu\"}", dir);
    json_decref(refused(body, 404, "MODEL_NOT_FOUND"));
    json_decref(refused("{\"model_ref\":\"s3://bucket/x\",\"worker_type\":\"cpu\"}", 400, "INVALID_REQUEST"));
    json_decref(refused("{\"model_ref\":\"hf:../../etc::file=passwd\",\"worker_type\":\"cpu\"}", 400,
                        "INVALID_REQUEST"));
    json_decref(refused("{\"gpu_id\":0}", 400, "INVALID_REQUEST"));
    json_decref(refused("{\"model_ref\":\"file:/x\",\"gpu_id\":-3}", 400, "INVALID_REQUEST"));
    json_decref(refused("not json", 400, "INVALID_REQUEST"));
}

/* ---- configuration: bad values exit 2 naming the option -------------------------- */
static void expect_exit2(const char *const *args, const char *const *env, const char *needle) {
    char bin[1024], log[400];
    TU_BUILD(bin, "pool-managerd");
    snprintf(log, sizeof log, "%s/cfg.log", dir);
    const char *argv[32];
    int k = 0;
    argv[k++] = bin;
    for (int i = 0; args[i]; i++) argv[k++] = args[i];
    argv[k] = NULL;
    const char *envp[256];
    int e = 0;
    for (char **x = environ; *x && e < 200; x++) envp[e++] = *x;
    for (int i = 0; env && env[i]; i++) envp[e++] = env[i];
    envp[e] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, bin, &fa, NULL, (char *const *)argv, (char *const *)envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    uint64_t t0 = tp_ms();
    while (waitpid(pid, &status, WNOHANG) != pid) { /* a pool that starts anyway is a failure, not a hang */
        if (tp_ms() - t0 > 15000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("%s: pool-managerd started instead of exiting 2", needle);
        }
        usleep(20000);
    }
    char *text = NULL;
    size_t len;
    char err[128];
    assert_int_equal(util_read_file(log, 1 << 16, &text, &len, err, sizeof err), 0);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 2 && strstr(text, needle);
    if (!ok) print_error("%s: status %d, stderr: %s\n", needle, status, text);
    free(text);
    assert_true(ok);
}

static void test_config_errors(void **st) {
    (void)st;
    char cd[400], yaml[400];
    snprintf(cd, sizeof cd, "--cache-dir=%s/cache", dir);
    expect_exit2((const char *[]){ "--heartbeat-interval-ms", "soon", cd, NULL }, NULL, "heartbeat_interval_ms");
    expect_exit2((const char *[]){ "--inventory", "quantum", cd, NULL }, NULL, "inventory");
    expect_exit2((const char *[]){ "--inventory", "simulated", cd, NULL }, NULL, "inventory_simulated_devices");
    expect_exit2((const char *[]){ "--inventory", "simulated", "--simulated-devices", "gpu-without-size", cd, NULL },
                 NULL, "inventory_simulated_devices");
    expect_exit2((const char *[]){ "--bind", "nowhere", cd, NULL }, NULL, "bind");
    expect_exit2((const char *[]){ "--orchestrator-url", "ftp://x", cd, NULL }, NULL, "orchestrator.url");
    expect_exit2((const char *[]){ cd, NULL }, (const char *[]){ "LLORCH_POOL_ID=bad id!", NULL }, "pool_id");
    expect_exit2((const char *[]){ "--cache-dir", "/proc/version/sub", NULL }, NULL, "cache_dir");
    expect_exit2((const char *[]){ "--no-such-flag", "1", cd, NULL }, NULL, "no-such-flag");
    snprintf(yaml, sizeof yaml, "%s/bad-adapters.yaml", dir);
    write_file(yaml, "adapters:\n  - name: x\n    type: cpu\n    binary_path: relative/worker-cpud\n");
    expect_exit2((const char *[]){ "--config", yaml, cd, NULL }, NULL, "binary_path");
    write_file(yaml, "adapters:\n  - name: x\n    type: quantum\n");
    expect_exit2((const char *[]){ "--config", yaml, cd, NULL }, NULL, "adapters[0].type");
    char y2[800];
    chmod(text_path, 0644);
    snprintf(y2, sizeof y2, "adapters:\n  - name: x\n    type: cpu\n    binary_path: %s\n", text_path);
    write_file(yaml, y2);
    expect_exit2((const char *[]){ "--config", yaml, cd, NULL }, NULL, "not an executable");
    /* a binary others may write is refused (anyone could swap the worker) */
    char bin[1024], copy[400];
    TU_BUILD(bin, "worker-cpud");
    snprintf(copy, sizeof copy, "%s/worker-copy", dir);
    char cmd[3000];
    int cn = snprintf(cmd, sizeof cmd, "cp %s %s && chmod 0777 %s", bin, copy, copy);
    assert_true(cn > 0 && (size_t)cn < sizeof cmd);
    assert_int_equal(system(cmd), 0);
    snprintf(y2, sizeof y2, "adapters:\n  - name: x\n    type: cpu\n    binary_path: %s\n", copy);
    write_file(yaml, y2);
    expect_exit2((const char *[]){ "--config", yaml, cd, NULL }, NULL, "writable by group/others");
}

/* precedence: flag > env > file */
static void test_config_precedence(void **st) {
    (void)st;
    char yaml[400];
    snprintf(yaml, sizeof yaml, "%s/ids.yaml", dir);
    write_file(yaml, "pool_id: from-file\ninventory: host\n");
    struct { const char *flag; const char *env; const char *want; } cases[] = {
        { NULL, NULL, "from-file" }, { NULL, "LLORCH_POOL_ID=from-env", "from-env" },
        { "from-flag", "LLORCH_POOL_ID=from-env", "from-flag" } };
    for (int i = 0; i < 3; i++) {
        tp_pool p2;
        const char *args[] = { "--config", yaml, cases[i].flag ? "--pool-id" : NULL, cases[i].flag, NULL };
        const char *env[] = { cases[i].env, NULL };
        tp_pool_start(&p2, args, env);
        json_t *s = tp_state(&p2);
        assert_string_equal(tp_str(s, "pool_id"), cases[i].want);
        assert_string_equal(tp_str(s, "inventory"), "host");
        json_decref(s);
        assert_int_equal(tp_pool_stop(&p2), 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_says_simulated),
        cmocka_unit_test(test_insufficient_vram),
        cmocka_unit_test(test_gpu_not_found),
        cmocka_unit_test(test_adapter_not_found),
        cmocka_unit_test(test_platform_unsupported),
        cmocka_unit_test(test_model_refusals),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_precedence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
