// test-libs: llorch_net PkgConfig::JANSSON
/* pool-managerd's shutdown (SIGTERM) with live workers: the real pool, real
 * worker-cpud processes, the pool's own log read back after it exited.
 *
 *   watchers outlive the table: a worker's watcher thread still works after
 *     its worker has left the table (adapter cleanup, the `worker_stopped`
 *     line). Shutdown used to wait only for the table to empty, so main freed
 *     the pool (its adapters) under a watcher: a use-after-free that, under
 *     ASan, deadlocked the report with the exit-time leak check and the pool
 *     never exited. LLORCH_POOL_TEST_WATCHER_LAG_MS=400 makes each watcher
 *     linger 400 ms right there; the pool must still log every
 *     `worker_stopped` (a watcher's last line) and exit 0. Before the fix
 *     the process ended inside that window and the lines were missing.
 *   a frozen worker: one of two workers is SIGSTOPped when the pool gets
 *     SIGTERM, with health probes against it (timeout 10 s) in flight. The
 *     pool sends SIGCONT then SIGTERM, so the frozen worker shuts down
 *     cleanly (exit code 0, no signal) instead of dying by SIGKILL after the
 *     grace, and no probe round holds the workers' SIGTERM back. Both
 *     processes are gone after the pool exits 0.
 *   a watcher past the bound: with the lag at 8 s, longer than the 5 s the
 *     pool waits for its threads, the pool says so ("thread(s) still use the
 *     pool") and exits 0 without freeing what the watcher still uses: no
 *     sanitizer report (use-after-free, leak) in its log.
 * The 30 s limit in tp_pool_wait_stop is a hang guard, not a measurement. */
#include "test_pool_util.h"

/* the first log line with this event (and worker_id, when wid) as JSON, or NULL; caller decrefs */
static json_t *log_event(const tp_pool *p, const char *event, const char *wid) {
    FILE *f = fopen(p->log, "r");
    assert_non_null(f);
    char line[8192];
    json_t *hit = NULL;
    while (!hit && fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j) continue;
        if (!strcmp(tp_str(j, "event"), event) && (!wid || !strcmp(tp_str(j, "worker_id"), wid))) hit = j;
        else json_decref(j);
    }
    fclose(f);
    return hit;
}

/* 1 when the log has a line with this event */
static int logged(const tp_pool *p, const char *event) {
    json_t *e = log_event(p, event, NULL);
    int has = e != NULL;
    json_decref(e);
    return has;
}

/* starts a cpu worker on the model and waits until it is ready; id and pid out */
static void start_ready(tp_pool *pool, const char *model, char id[64], pid_t *pid) {
    snprintf(id, 64, "%s", tp_start_model(pool, model, ",\"worker_type\":\"cpu\""));
    *pid = tp_ready_pid(pool, id, 60000);
}

/* two ready cpu workers, one per model (so one per device) */
static void start_two_ready(tp_pool *pool, char id[2][64], pid_t pid[2]) {
    start_ready(pool, "stories260K.gguf", id[0], &pid[0]);
    start_ready(pool, "llama-2-tiny-random.gguf", id[1], &pid[1]);
}

/* worker id left cleanly: its watcher logged worker_stopped with exit code 0 and no signal */
static void assert_stopped_cleanly(const tp_pool *pool, const char *id) {
    json_t *e = log_event(pool, "worker_stopped", id);
    if (!e) fail_msg("no worker_stopped line for %s: its watcher did not finish before the pool exited", id);
    json_int_t code = tp_int(e, "exit_code"), sig = tp_int(e, "signal");
    json_decref(e);
    if (code != 0 || sig != 0) fail_msg("%s: exit_code %lld, signal %lld", id, (long long)code, (long long)sig);
}

static void test_watchers_outlive_the_table(void **st) {
    (void)st;
    const char *args[] = { "--inventory", "host", "--pool-id", "pool-shutdown", NULL };
    const char *env[] = { "LLORCH_POOL_TEST_WATCHER_LAG_MS=400", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, env);
    char id[2][64];
    pid_t pid[2];
    start_two_ready(&pool, id, pid);

    int status = tp_pool_wait_stop(&pool);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int i = 0; i < 2; i++) {
        assert_stopped_cleanly(&pool, id[i]);
        assert_false(tp_pid_exists(pid[i]));
    }
    assert_true(logged(&pool, "shutdown")); /* the "signal 15" line */
    tp_pool_rm(&pool);
}

static void test_frozen_worker_at_shutdown(void **st) {
    (void)st;
    const char *args[] = { "--inventory", "host", "--pool-id", "pool-shutdown2", "--worker-health-interval-ms", "200",
                           "--worker-health-timeout-ms", "10000", "--worker-health-failures", "1", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, NULL);
    char id[2][64];
    pid_t pid[2];
    start_two_ready(&pool, id, pid);

    /* frozen, found hung by a round, and the next round's probe is in flight */
    kill(pid[0], SIGSTOP);
    if (!tp_wait_status(&pool, id[0], "failed", 30000)) {
        kill(pid[0], SIGCONT);
        fail_msg("a frozen worker was never marked failed");
    }
    usleep(500 * 1000);

    int status = tp_pool_wait_stop(&pool);
    if (tp_pid_exists(pid[0])) kill(pid[0], SIGCONT); /* only a failed run leaves it (the pool would have) */
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_stopped_cleanly(&pool, id[0]); /* continued, it acted on SIGTERM */
    assert_stopped_cleanly(&pool, id[1]);
    assert_false(logged(&pool, "worker_kill")); /* nobody needed SIGKILL */
    for (int i = 0; i < 2; i++) assert_false(tp_pid_exists(pid[i]));
    tp_pool_rm(&pool);
}

static void test_watcher_past_the_bound(void **st) {
    (void)st;
    const char *args[] = { "--inventory", "host", "--pool-id", "pool-shutdown3", NULL };
    const char *env[] = { "LLORCH_POOL_TEST_WATCHER_LAG_MS=8000", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, env);
    char id[64];
    pid_t pid;
    start_ready(&pool, "stories260K.gguf", id, &pid);

    int status = tp_pool_wait_stop(&pool);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(tp_pid_exists(pid)); /* the worker itself was reaped */
    assert_true(logged(&pool, "shutdown"));
    char cmd[400];
    snprintf(cmd, sizeof cmd, "grep -q 'still use the pool' %s", pool.log);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "grep -q 'Sanitizer' %s", pool.log);
    assert_int_not_equal(system(cmd), 0);
    tp_pool_rm(&pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watchers_outlive_the_table),
        cmocka_unit_test(test_frozen_worker_at_shutdown),
        cmocka_unit_test(test_watcher_past_the_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
