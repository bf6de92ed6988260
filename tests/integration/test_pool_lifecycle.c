// test-libs: llorch_net PkgConfig::JANSSON
/* pool-managerd worker lifecycle, with real processes on loopback (issue 5,
 * acceptance 1, 3, 4): the real pool spawns the real worker-cpud on
 * stories260K; a test orchestrator endpoint in this process records what the
 * pool reports. */
#include "test_pool_util.h"

static tp_orch orch;
static tp_pool pool;

static int setup(void **st) {
    (void)st;
    tp_orch_start(&orch, 0);
    char ou[64];
    snprintf(ou, sizeof ou, "http://127.0.0.1:%d", orch.port);
    const char *args[] = { "--inventory", "host", "--orchestrator-url", ou, "--orchestrator-token", "pool-secret",
                           "--heartbeat-interval-ms", "200", "--stop-grace-ms", "5000", "--pool-id", "pool-lc", NULL };
    tp_pool_start(&pool, args, NULL);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    int status = tp_pool_stop(&pool);
    tp_orch_stop(&orch);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return 0;
}

static const char *start_stories(void) { return tp_start_model(&pool, "stories260K.gguf", ""); }

/* 1. start → ready with memory accounted → stop → accounting zero, no process */
static void test_start_ready_stop(void **st) {
    (void)st;
    char id[64];
    snprintf(id, sizeof id, "%s", start_stories());
    json_t *s = tp_state(&pool);
    json_t *w = tp_worker(s, id);
    assert_non_null(w);
    /* starting: the preflight estimate is held on the host device */
    if (!strcmp(tp_str(w, "status"), "starting")) assert_true(tp_int(tp_device(s, -1), "allocated_bytes") > 0);
    json_decref(s);
    assert_true(tp_wait_status(&pool, id, "ready", 60000));
    s = tp_state(&pool);
    w = tp_worker(s, id);
    assert_string_equal(tp_str(w, "worker_type"), "cpu");
    assert_string_equal(tp_str(w, "memory_architecture"), "host");
    assert_true(strncmp(tp_str(w, "uri"), "http://127.0.0.1:", 17) == 0);
    json_int_t mem = tp_int(w, "memory_bytes");
    pid_t pid = (pid_t)tp_int(w, "pid");
    assert_true(mem > 0);
    assert_true(pid > 0 && tp_pid_exists(pid));
    /* accounting: the host device carries exactly what the worker reported */
    assert_int_equal(tp_int(tp_device(s, -1), "allocated_bytes"), mem);
    assert_int_equal(tp_int(tp_device(s, -1), "reserved_bytes"), 0);
    /* the worker really answers at the uri the pool reports */
    char uri[300];
    snprintf(uri, sizeof uri, "%s", tp_str(w, "uri"));
    json_decref(s);
    json_t *h = NULL;
    assert_int_equal(tp_call(uri, "GET", "/health", NULL, &h), 200);
    assert_string_equal(tp_str(h, "worker_id"), id);
    json_decref(h);

    /* stop */
    char path[128];
    snprintf(path, sizeof path, "/v2/workers/%s/stop", id);
    json_t *r = NULL;
    assert_int_equal(tp_call(pool.url, "POST", path, "{}", &r), 202);
    assert_string_equal(tp_str(r, "status"), "draining");
    json_decref(r);
    assert_true(tp_wait_status(&pool, id, "gone", 15000));
    s = tp_state(&pool);
    assert_int_equal(tp_int(tp_device(s, -1), "allocated_bytes"), 0);
    assert_int_equal(json_array_size(json_object_get(s, "workers")), 0);
    json_decref(s);
    assert_false(tp_pid_exists(pid)); /* reaped: not even a zombie */
    assert_int_equal(tp_zombie_children(pool.pid), 0);
    /* a requested stop is not a failure */
    assert_int_equal(tp_orch_count(&orch, "failed"), 0);
    /* the worker's stderr went into the pool log, line by line, tagged with its id */
    char *log = NULL;
    size_t llen;
    char err[128], tag[128];
    assert_int_equal(util_read_file(pool.log, 64 << 20, &log, &llen, err, sizeof err), 0);
    snprintf(tag, sizeof tag, "\"event\":\"worker_stderr\",\"worker_id\":\"%s\",\"line\":", id);
    int found = strstr(log, tag) != NULL;
    free(log);
    assert_true(found);
    /* stopping it again: unknown now */
    assert_int_equal(tp_call(pool.url, "POST", path, "{}", &r), 404);
    json_decref(r);
}

/* 3. kill -9: gone within 5 s, accounting released, failure report with the signal */
static void test_kill9(void **st) {
    (void)st;
    char id[64];
    snprintf(id, sizeof id, "%s", start_stories());
    assert_true(tp_wait_status(&pool, id, "ready", 60000));
    json_t *s = tp_state(&pool);
    pid_t pid = (pid_t)tp_int(tp_worker(s, id), "pid");
    json_int_t mem = tp_int(tp_worker(s, id), "memory_bytes");
    json_decref(s);
    int before = tp_orch_count(&orch, "failed");
    uint64_t t0 = tp_ms();
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_true(tp_wait_status(&pool, id, "gone", 5000));
    uint64_t gone_ms = tp_ms() - t0;
    print_message("worker gone from state %llu ms after SIGKILL\n", (unsigned long long)gone_ms);
    s = tp_state(&pool);
    assert_int_equal(tp_int(tp_device(s, -1), "allocated_bytes"), 0);
    json_decref(s);
    assert_false(tp_pid_exists(pid));
    assert_int_equal(tp_zombie_children(pool.pid), 0);
    /* the failure report reached the test orchestrator endpoint */
    json_t *rep = NULL;
    while (tp_ms() - t0 < 5000) {
        pthread_mutex_lock(&orch.mu);
        for (int i = 0; i < orch.n; i++)
            if (!strcmp(orch.rec[i].kind, "failed") && !strcmp(tp_str(orch.rec[i].body, "worker_id"), id))
                rep = orch.rec[i].body;
        pthread_mutex_unlock(&orch.mu);
        if (rep) break;
        usleep(20000);
    }
    assert_non_null(rep);
    assert_int_equal(tp_orch_count(&orch, "failed"), before + 1);
    assert_int_equal(tp_int(rep, "signal"), SIGKILL);
    assert_int_equal(tp_int(rep, "exit_code"), -1);
    assert_int_equal(tp_int(rep, "vram_released"), mem);
    assert_true(json_is_string(json_object_get(rep, "stderr_tail")));
    /* the worker logs JSON lines on stderr: the tail holds some of them */
    assert_non_null(strstr(tp_str(rep, "stderr_tail"), "\"component\""));
    pthread_mutex_lock(&orch.mu);
    for (int i = 0; i < orch.n; i++)
        if (!strcmp(orch.rec[i].kind, "failed")) assert_string_equal(orch.rec[i].auth, "Bearer pool-secret");
    pthread_mutex_unlock(&orch.mu);
}

/* the spawn token, read from the worker's command line (we run as its user) */
static void token_of(pid_t pid, char *out, size_t cap) {
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    out[0] = 0;
    for (size_t i = 0; i < n;) {
        const char *a = buf + i;
        size_t l = strlen(a);
        if (!strcmp(a, "--spawn-token") && i + l + 1 < n) snprintf(out, cap, "%s", a + l + 1);
        i += l + 1;
    }
    assert_true(out[0]);
}

static void ready_body(char *out, size_t cap, const char *id, const char *token, const char *model) {
    snprintf(out, cap,
             "{\"worker_id\":\"%s\",\"model_ref\":\"%s\",\"uri\":\"http://127.0.0.1:1\",\"worker_type\":\"cpu\","
             "\"memory_architecture\":\"host\",\"memory_bytes\":999,\"vram_bytes\":0,\"capabilities\":[\"text-gen\"],"
             "\"gpu_ids\":[],\"quant_kind\":\"F32\",\"context_length\":64,\"spawn_token\":\"%s\"}",
             id, model, token);
}

/* the worker entry without the fields that move by themselves */
static char *stable(json_t *w) {
    json_t *c = json_deep_copy(w);
    json_object_del(c, "uptime_ms");
    char *s = json_dumps(c, JSON_SORT_KEYS);
    json_decref(c);
    return s;
}

/* 4. forged ready callbacks are refused and change nothing */
static void test_forged_ready(void **st) {
    (void)st;
    char id[64], ref[1200], tok[128], body[4096];
    snprintf(id, sizeof id, "%s", start_stories());
    tp_model_ref(ref, sizeof ref, "stories260K.gguf");
    assert_true(tp_wait_status(&pool, id, "ready", 60000));
    json_t *s = tp_state(&pool);
    json_t *w = tp_worker(s, id);
    pid_t pid = (pid_t)tp_int(w, "pid");
    char *before = stable(w);
    char dev_before[64];
    snprintf(dev_before, sizeof dev_before, "%lld", (long long)tp_int(tp_device(s, -1), "allocated_bytes"));
    json_decref(s);
    token_of(pid, tok, sizeof tok);

    struct { const char *id, *tok, *model; long status; const char *code; } cases[] = {
        { id, "0000000000000000000000000000000000000000000000000000000000000000", ref, 403, "FORBIDDEN" },
        { "w-0123456789abcdef", tok, ref, 404, "NOT_FOUND" },
        { id, tok, "file:/tmp/other-model.gguf", 409, "CONFLICT" },
        { id, tok, ref, 409, "CONFLICT" },  /* even the right triple: a replay after ready */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ready_body(body, sizeof body, cases[i].id, cases[i].tok, cases[i].model);
        json_t *r = NULL;
        long stc = tp_call(pool.url, "POST", "/v2/internal/workers/ready", body, &r);
        assert_int_equal(stc, cases[i].status);
        assert_string_equal(tp_code(r), cases[i].code);
        json_decref(r);
        s = tp_state(&pool);
        char *after = stable(tp_worker(s, id));
        assert_string_equal(after, before);
        char dev_after[64];
        snprintf(dev_after, sizeof dev_after, "%lld", (long long)tp_int(tp_device(s, -1), "allocated_bytes"));
        assert_string_equal(dev_after, dev_before);
        free(after);
        json_decref(s);
    }
    /* malformed bodies too */
    json_t *r = NULL;
    assert_int_equal(tp_call(pool.url, "POST", "/v2/internal/workers/ready", "{\"worker_id\":1}", &r), 400);
    json_decref(r);
    free(before);
    char path[128];
    snprintf(path, sizeof path, "/v2/workers/%s/stop", id);
    assert_int_equal(tp_call(pool.url, "POST", path, "{}", NULL), 202);
    assert_true(tp_wait_status(&pool, id, "gone", 15000));
}

/* stop through the orchestrator's form (body), and the pool's metrics */
static void test_stop_body_and_metrics(void **st) {
    (void)st;
    char id[64], body[128];
    snprintf(id, sizeof id, "%s", start_stories());
    assert_true(tp_wait_status(&pool, id, "ready", 60000));
    snprintf(body, sizeof body, "{\"worker_id\":\"%s\"}", id);
    assert_int_equal(tp_call(pool.url, "POST", "/v2/workers/stop", body, NULL), 202);
    assert_true(tp_wait_status(&pool, id, "gone", 15000));
    http_resp resp;
    tp_get_metrics(&pool, &resp);
    assert_non_null(strstr(resp.body, "pool_mgr_worker_starts_total{component=\"pool-managerd\",outcome=\"ok\"}"));
    assert_non_null(strstr(resp.body, "pool_mgr_adapter_spawns_total"));
    assert_non_null(strstr(resp.body, "pool_mgr_gpu_vram_total_bytes"));
    assert_non_null(strstr(resp.body, "pool_mgr_gpu_vram_allocated_bytes{component=\"pool-managerd\",gpu_id=\"-1\"} 0"));
    assert_non_null(strstr(resp.body, "pool_mgr_workers_total"));
    http_resp_free(&resp);
    json_t *h = NULL;
    assert_int_equal(tp_call(pool.url, "GET", "/health", NULL, &h), 200);
    assert_string_equal(tp_str(h, "status"), "healthy");
    json_decref(h);
}

/* the pool's own SIGTERM stops its workers first (no orphan) */
static void test_shutdown_stops_workers(void **st) {
    (void)st;
    char id[64];
    snprintf(id, sizeof id, "%s", start_stories());
    pid_t pid = tp_ready_pid(&pool, id, 60000);
    int status = tp_pool_stop(&pool);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(tp_pid_exists(pid));
    /* restart for teardown */
    char ou[64];
    snprintf(ou, sizeof ou, "http://127.0.0.1:%d", orch.port);
    const char *args[] = { "--inventory", "host", "--orchestrator-url", ou, NULL };
    tp_pool_start(&pool, args, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_ready_stop),
        cmocka_unit_test(test_kill9),
        cmocka_unit_test(test_forged_ready),
        cmocka_unit_test(test_stop_body_and_metrics),
        cmocka_unit_test(test_shutdown_stops_workers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
