// test-libs: llorch_net PkgConfig::JANSSON
/* pool-managerd polls its workers' /health (worker_health.*): a real
 * worker-cpud (stories260K) started through the real pool-managerd, a test
 * orchestrator endpoint in this process recording what the pool reports.
 *
 *   hung (SIGSTOP): after worker_health.failures missed polls the pool's
 *     /v2/state says "failed" and a heartbeat listing it "failed" reaches the
 *     orchestrator at once (the heartbeat interval is 60 s, so only the early
 *     heartbeat a status change sends can carry it); resumed (SIGCONT), it is
 *     "ready" again, and reported so.
 *   dead (SIGKILL): it leaves the pool's state and the orchestrator gets
 *     POST /v2/internal/workers/failed with signal 9, exactly once.
 * Waits are polls with generous limits (ASan on a loaded 2-core box), and a
 * poll's own limit (1.5 s) is far above an idle worker's answer time, so the
 * healthy phase cannot miss twice in a row on a slow box (a hung worker is
 * still reported within ~3.5 s). */
#include "test_pool_util.h"


/* the status of worker id in the newest heartbeat that lists it ("" if none) */
static void last_reported(tp_orch *o, const char *id, char *out, size_t cap) {
    out[0] = 0;
    pthread_mutex_lock(&o->mu);
    for (int i = o->n - 1; i >= 0 && !out[0]; i--) {
        if (strcmp(o->rec[i].kind, "heartbeat")) continue;
        json_t *w = tp_worker(o->rec[i].body, id);
        if (w) snprintf(out, cap, "%s", tp_str(w, "status"));
    }
    pthread_mutex_unlock(&o->mu);
}

static int wait_reported(tp_orch *o, const char *id, const char *want, int ms) {
    char got[32];
    for (uint64_t t0 = tp_ms(); tp_ms() - t0 < (uint64_t)ms; usleep(20000)) {
        last_reported(o, id, got, sizeof got);
        if (!strcmp(got, want)) return 1;
    }
    return 0;
}

static void test_hung_and_dead_workers(void **st) {
    (void)st;
    tp_orch orch;
    tp_orch_start(&orch, 0);
    char ou[64];
    snprintf(ou, sizeof ou, "http://127.0.0.1:%d", orch.port);
    const char *args[] = { "--inventory", "host", "--orchestrator-url", ou, "--heartbeat-interval-ms", "60000",
                           "--worker-health-interval-ms", "200", "--worker-health-timeout-ms", "1500",
                           "--worker-health-failures", "2", "--pool-id", "pool-health", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, NULL);
    for (uint64_t t0 = tp_ms(); tp_orch_count(&orch, "register") == 0 && tp_ms() - t0 < 10000;) usleep(20000);
    assert_int_equal(tp_orch_count(&orch, "register"), 1);

    char ref[1200], body[1400], id[64];
    tp_model_ref(ref, sizeof ref, "stories260K.gguf");
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\",\"worker_type\":\"cpu\"}", ref);
    snprintf(id, sizeof id, "%s", tp_start_worker(&pool, body));
    assert_true(tp_wait_status(&pool, id, "ready", 60000));
    json_t *s = tp_state(&pool);
    pid_t pid = (pid_t)tp_int(tp_worker(s, id), "pid");
    json_decref(s);
    assert_true(pid > 0);
    /* healthy: polls keep it ready (a few poll periods) */
    usleep(1000 * 1000);
    assert_true(tp_wait_status(&pool, id, "ready", 1));

    /* hung */
    int hb_before = tp_orch_count(&orch, "heartbeat");
    kill(pid, SIGSTOP);
    if (!tp_wait_status(&pool, id, "failed", 20000)) {
        kill(pid, SIGCONT);
        fail_msg("a frozen worker was never marked failed");
    }
    if (!wait_reported(&orch, id, "failed", 10000)) {
        kill(pid, SIGCONT);
        fail_msg("the orchestrator never heard that the worker failed");
    }
    assert_true(tp_orch_count(&orch, "heartbeat") > hb_before);
    assert_int_equal(tp_orch_count(&orch, "failed"), 0); /* alive, so no exit report */

    /* resumed */
    kill(pid, SIGCONT);
    assert_true(tp_wait_status(&pool, id, "ready", 20000));
    assert_true(wait_reported(&orch, id, "ready", 10000));

    /* dead */
    kill(pid, SIGKILL);
    assert_true(tp_wait_status(&pool, id, "gone", 10000));
    for (uint64_t t0 = tp_ms(); tp_orch_count(&orch, "failed") == 0 && tp_ms() - t0 < 10000;) usleep(20000);
    usleep(600 * 1000); /* three more poll periods: no second report */
    assert_int_equal(tp_orch_count(&orch, "failed"), 1);
    pthread_mutex_lock(&orch.mu);
    for (int i = 0; i < orch.n; i++) {
        if (strcmp(orch.rec[i].kind, "failed")) continue;
        assert_string_equal(tp_str(orch.rec[i].body, "worker_id"), id);
        assert_int_equal(tp_int(orch.rec[i].body, "signal"), 9);
    }
    pthread_mutex_unlock(&orch.mu);

    int status = tp_pool_stop(&pool);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tp_orch_stop(&orch);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hung_and_dead_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
