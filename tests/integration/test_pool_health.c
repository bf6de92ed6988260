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
 *   two hung at once: probes run concurrently, so two frozen workers are
 *     found by the same round and marked failed together (the results of a
 *     round are applied under one lock): the first /v2/state that shows one
 *     failed shows both. With probes one after another the second would
 *     still be ready for a whole timeout (10 s here) after the first failed.
 *     To have no round half before and half after the freeze, the pool is
 *     frozen first, at a moment when no thread of it is named "health-probe"
 *     (the poller's name while a round's probes are in flight; probe threads
 *     inherit it), then both workers, then the pool resumes.
 * Waits are polls with generous limits (ASan on a loaded 2-core box), and a
 * poll's own limit (1.5 s) is far above an idle worker's answer time, so the
 * healthy phase cannot miss twice in a row on a slow box (a hung worker is
 * still reported within ~3.5 s). */
#include "test_pool_util.h"

#include <dirent.h>

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

/* a test orchestrator and a pool (host inventory) reporting to it: heartbeats
 * every 60 s (so only a status change's early heartbeat comes within a test),
 * worker health polled every 200 ms with the given timeout and failures */
static void start_orch_and_pool(tp_orch *orch, tp_pool *pool, const char *timeout_ms, const char *failures,
                                const char *pool_id) {
    tp_orch_start(orch, 0);
    char ou[64];
    snprintf(ou, sizeof ou, "http://127.0.0.1:%d", orch->port);
    const char *args[] = { "--inventory", "host", "--orchestrator-url", ou, "--heartbeat-interval-ms", "60000",
                           "--worker-health-interval-ms", "200", "--worker-health-timeout-ms", timeout_ms,
                           "--worker-health-failures", failures, "--pool-id", pool_id, NULL };
    tp_pool_start(pool, args, NULL);
}
/* the pool exits 0 on its own stop; then the test orchestrator goes */
static void stop_orch_and_pool(tp_orch *orch, tp_pool *pool) {
    int status = tp_pool_stop(pool);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tp_orch_stop(orch);
}

static void test_hung_and_dead_workers(void **st) {
    (void)st;
    tp_orch orch;
    tp_pool pool;
    start_orch_and_pool(&orch, &pool, "1500", "2", "pool-health");
    for (uint64_t t0 = tp_ms(); tp_orch_count(&orch, "register") == 0 && tp_ms() - t0 < 10000;) usleep(20000);
    assert_int_equal(tp_orch_count(&orch, "register"), 1);

    char id[64];
    snprintf(id, sizeof id, "%s", tp_start_model(&pool, "stories260K.gguf", ",\"worker_type\":\"cpu\""));
    pid_t pid = tp_ready_pid(&pool, id, 60000);
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

    stop_orch_and_pool(&orch, &pool);
}

/* ---- two hung workers ------------------------------------------------------------ */
static void freeze(pid_t pid) {
    kill(pid, SIGSTOP);
    for (int i = 0; i < 5000 && !ts_all_stopped(pid); i++) usleep(1000);
    assert_true(ts_all_stopped(pid));
}
/* threads of pid named name */
static int threads_named(pid_t pid, const char *name) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char cp[384], comm[64] = "";
        snprintf(cp, sizeof cp, "%s/%s/comm", path, e->d_name);
        FILE *f = fopen(cp, "r");
        if (!f) continue;
        if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = 0;
        fclose(f);
        n += strcmp(comm, name) == 0;
    }
    closedir(d);
    return n;
}
static const char *status_in(json_t *s, const char *id) {
    json_t *w = tp_worker(s, id);
    return w ? tp_str(w, "status") : "gone";
}

static void test_two_hung_workers(void **st) {
    (void)st;
    tp_orch orch;
    tp_pool pool;
    start_orch_and_pool(&orch, &pool, "10000", "1", "pool-health2");
    char id[2][64];
    pid_t pid[2];
    const char *model[2] = { "stories260K.gguf", "llama-2-tiny-random.gguf" }; /* one worker per model and device */
    for (int i = 0; i < 2; i++)
        snprintf(id[i], sizeof id[i], "%s", tp_start_model(&pool, model[i], ",\"worker_type\":\"cpu\""));
    for (int i = 0; i < 2; i++) pid[i] = tp_ready_pid(&pool, id[i], 60000);
    json_t *s = NULL;

    /* the pool frozen between rounds, then both workers, then the pool resumed */
    int between = 0;
    for (int k = 0; k < 200 && !between; k++) {
        freeze(pool.pid);
        between = threads_named(pool.pid, "health-probe") == 0;
        if (!between) {
            kill(pool.pid, SIGCONT);
            usleep(30000);
        }
    }
    assert_true(between);
    freeze(pid[0]);
    freeze(pid[1]);
    kill(pool.pid, SIGCONT);

    /* the first state that shows a failed worker shows both (bound: a hang guard only) */
    const char *a = "", *b = "";
    for (uint64_t t0 = tp_ms(); tp_ms() - t0 < 60000; usleep(20000)) {
        s = tp_state(&pool);
        a = status_in(s, id[0]);
        b = status_in(s, id[1]);
        int any = !strcmp(a, "failed") || !strcmp(b, "failed");
        char sa[16], sb[16];
        snprintf(sa, sizeof sa, "%s", a);
        snprintf(sb, sizeof sb, "%s", b);
        json_decref(s);
        a = b = "";
        if (any) {
            kill(pid[0], SIGCONT);
            kill(pid[1], SIGCONT);
            if (strcmp(sa, "failed") || strcmp(sb, "failed"))
                fail_msg("one round should find both hung workers: %s is %s, %s is %s", id[0], sa, id[1], sb);
            a = "failed";
            break;
        }
    }
    kill(pid[0], SIGCONT);
    kill(pid[1], SIGCONT);
    assert_string_equal(a, "failed");
    /* and the orchestrator heard both */
    assert_true(wait_reported(&orch, id[0], "failed", 10000));
    assert_true(wait_reported(&orch, id[1], "failed", 10000));
    /* resumed: ready again */
    assert_true(tp_wait_status(&pool, id[0], "ready", 30000));
    assert_true(tp_wait_status(&pool, id[1], "ready", 30000));

    stop_orch_and_pool(&orch, &pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hung_and_dead_workers),
        cmocka_unit_test(test_two_hung_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
