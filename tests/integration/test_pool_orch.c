// test-libs: llorch_net PkgConfig::JANSSON
/* pool-managerd → orchestrator facts (issue 5, acceptance 6): registration
 * retried while the receiver is down, then heartbeats at the configured
 * interval with the full state and a timestamp (even when nothing changed),
 * bearer token on every call, and a receiver that goes away does not disturb
 * the pool. The receiver is a test orchestrator endpoint in this process that
 * records what arrives. */
#include "test_pool_util.h"

static void test_register_retry_and_heartbeats(void **st) {
    (void)st;
    int port = tp_free_port();
    char ou[64];
    snprintf(ou, sizeof ou, "http://127.0.0.1:%d", port);
    const char *args[] = { "--inventory", "host", "--orchestrator-url", ou, "--orchestrator-token", "tok-123",
                           "--heartbeat-interval-ms", "250", "--pool-id", "pool-hb", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, NULL);
    usleep(1200 * 1000); /* the receiver is down: registration keeps failing, the pool keeps serving */
    json_t *h = NULL;
    assert_int_equal(tp_call(pool.url, "GET", "/health", NULL, &h), 200);
    assert_false(json_is_true(json_object_get(h, "registered")));
    json_decref(h);

    tp_orch orch;
    tp_orch_start(&orch, port);
    uint64_t t0 = tp_ms();
    while (tp_orch_count(&orch, "register") == 0 && tp_ms() - t0 < 10000) usleep(20000);
    assert_int_equal(tp_orch_count(&orch, "register"), 1);
    /* a worker, so a later heartbeat must carry it */
    char id[64];
    snprintf(id, sizeof id, "%s", tp_start_model(&pool, "stories260K.gguf", ""));
    assert_true(tp_wait_status(&pool, id, "ready", 60000));
    uint64_t ready_at = tp_ms();
    while (tp_orch_count(&orch, "heartbeat") < 8 && tp_ms() - t0 < 20000) usleep(20000);
    assert_true(tp_orch_count(&orch, "heartbeat") >= 8);

    pthread_mutex_lock(&orch.mu);
    json_t *reg = NULL;
    uint64_t prev_at = 0;
    json_int_t prev_ts = 0;
    int nhb = 0, saw_worker = 0;
    uint64_t gaps[TP_MAX_REC];
    for (int i = 0; i < orch.n; i++) {
        tp_rec *r = &orch.rec[i];
        assert_string_equal(r->auth, "Bearer tok-123");
        if (!strcmp(r->kind, "register")) {
            reg = r->body;
            continue;
        }
        if (strcmp(r->kind, "heartbeat")) continue;
        assert_string_equal(r->path, "/v2/pools/pool-hb/heartbeat");
        assert_string_equal(tp_str(r->body, "pool_id"), "pool-hb");
        json_int_t ts = tp_int(r->body, "ts");
        assert_true(ts > prev_ts); /* fresh timestamp every time */
        prev_ts = ts;
        assert_true(json_array_size(json_object_get(r->body, "devices")) >= 1);
        assert_true(json_is_array(json_object_get(r->body, "workers")));
        if (prev_at) gaps[nhb - 1] = r->at_ms - prev_at;
        prev_at = r->at_ms;
        nhb++;
        if (r->at_ms > ready_at + 100) { /* full state: the ready worker is in it */
            json_t *w = tp_worker(r->body, id);
            assert_non_null(w);
            assert_string_equal(tp_str(w, "status"), "ready");
            assert_true(tp_int(w, "memory_bytes") > 0);
            saw_worker = 1;
        }
    }
    assert_non_null(reg);
    assert_string_equal(tp_str(reg, "pool_id"), "pool-hb");
    assert_string_equal(tp_str(reg, "endpoint"), pool.url);
    assert_true(json_array_size(json_object_get(reg, "devices")) >= 1);
    assert_true(json_array_size(json_object_get(reg, "adapters")) >= 1);
    assert_true(saw_worker);
    /* the interval: median gap near 250 ms (generous bounds for a loaded CI box) */
    int n = nhb - 1;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (gaps[j] < gaps[i]) { uint64_t t = gaps[i]; gaps[i] = gaps[j]; gaps[j] = t; }
    print_message("%d heartbeats, median gap %llu ms\n", nhb, (unsigned long long)gaps[n / 2]);
    assert_true(gaps[n / 2] >= 200 && gaps[n / 2] <= 1000);
    pthread_mutex_unlock(&orch.mu);

    /* an orchestrator that forgot the pool (404 to a heartbeat): the pool registers again */
    int regs = tp_orch_count(&orch, "register");
    pthread_mutex_lock(&orch.mu);
    orch.hb_status = 404;
    pthread_mutex_unlock(&orch.mu);
    t0 = tp_ms();
    while (tp_orch_count(&orch, "register") == regs && tp_ms() - t0 < 5000) usleep(20000);
    assert_int_equal(tp_orch_count(&orch, "register"), regs + 1);
    pthread_mutex_lock(&orch.mu);
    orch.hb_status = 0;
    pthread_mutex_unlock(&orch.mu);

    /* the receiver goes away: the pool does not mind */
    tp_orch_stop(&orch);
    usleep(800 * 1000);
    assert_int_equal(tp_call(pool.url, "GET", "/health", NULL, NULL), 200);
    json_t *s = tp_state(&pool);
    assert_non_null(tp_worker(s, id));
    json_decref(s);
    int status = tp_pool_stop(&pool);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_retry_and_heartbeats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
