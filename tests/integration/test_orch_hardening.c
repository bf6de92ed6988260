// test-libs: llorch_net llorch_core PkgConfig::JANSSON PkgConfig::SQLITE
/* orchestratord hardening, with real processes on loopback (harness:
 * test_orch_util.h): orchestratord with a real SQLite state file and a real
 * worker-cpud (stories260K); the test plays the pool (one device with no
 * room, so no second worker is ever started) unless said otherwise.
 *
 *   test_openai_stream_disconnect_cancels  an OpenAI streaming client that
 *       drops its connection mid-stream cancels its job (it has no job id to
 *       reconnect with); the worker is free for the next job and the job row
 *       says cancelled. The worker is frozen (SIGSTOP) when the client sees
 *       its first chunk, so the job cannot end on its own before the
 *       orchestrator has noticed the hang-up (its "cancel" log line).
 */
#include "test_orch_util.h"

/* ---- OpenAI stream: drop the connection at the first chunk ---------------------------- */
struct oai_drop {
    pid_t freeze_pid;   /* frozen at the first chunk */
    char job_id[40];    /* from the chunk id "cmpl-<job id>" */
    int chunks;
};
static int on_oai_drop(void *u, const sse_event *e) {
    struct oai_drop *d = u;
    d->chunks++;
    json_t *j = json_loadb(e->data, e->data_len, 0, NULL);
    const char *id = js(j, "id");
    const char *dash = strchr(id, '-');
    if (dash) snprintf(d->job_id, sizeof d->job_id, "%s", dash + 1);
    json_decref(j);
    freeze(d->freeze_pid);
    return 1; /* drop the connection */
}

static void test_openai_stream_disconnect_cancels(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    struct proc w, o;
    assert_int_equal(start_worker(&w, "w1"), 0);
    write_config(512, "1GB", NULL);
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    assert_int_equal(register_pool(o.base, "p1", 0), 200);
    const char *wid[] = { "w1" }, *uri[] = { w.base };
    assert_int_equal(heartbeat(o.base, "p1", 0, wid, uri, 1), 200);

    char url[256];
    snprintf(url, sizeof url, "%s/v1/completions", o.base);
    const char *body = "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":200,\"temperature\":0,"
                       "\"stream\":true}";
    http_client_req rq = { .method = "POST", .url = url, .body = body, .timeout_ms = 30000 };
    http_resp r = { 0 };
    char err[128];
    struct oai_drop d = { .freeze_pid = w.pid };
    http_client_sse(&rq, on_oai_drop, &d, &r, err, sizeof err);
    http_resp_free(&r);
    assert_int_equal(d.chunks, 1);
    assert_int_equal(strlen(d.job_id), 36);

    /* the orchestrator notices the hang-up while the worker is frozen */
    char needle[128];
    snprintf(needle, sizeof needle, "\"job_id\":\"%s\",\"reason\":\"client_gone\"", d.job_id);
    int seen = 0;
    for (uint64_t t0 = now_ms(); !seen && now_ms() - t0 < 15000; usleep(10000)) seen = file_has(o.log, needle);
    if (!seen) { dump(&o); fail_msg("no client_gone cancel for %s", d.job_id); }
    thaw(w.pid);

    /* the job ends cancelled (not completed: after the cancel no worker event is relayed) */
    if (!wait_status(o.base, d.job_id, "cancelled", 15000)) { dump(&o); fail_msg("job not cancelled"); }
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='cancelled' AND error_code='CANCELLED'",
                         d.job_id), 1);
    assert_true(q1f("SELECT tokens_out FROM jobs WHERE id='%s'", d.job_id) < 200);

    /* the worker's slot is free: it is ready again and runs the next job */
    assert_true(wait_worker_status(o.base, "w1", "ready", 15000));
    long st;
    char *id2 = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":4,\"temperature\":0}", &st);
    assert_int_equal(st, 202);
    struct evlist l = { 0 };
    events(o.base, id2, -1, &l);
    if (strcmp(last_name(&l), "end") != 0) { dump(&o); fail_msg("next job: %s %s", last_name(&l), l.code); }
    assert_int_equal(l.tokens, 4);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='completed' AND worker_id='w1'", id2), 1);
    ev_free(&l);
    free(id2);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
}

static int setup(void **s) {
    (void)s;
    return orch_util_setup("orch-hard");
}
static int teardown(void **s) {
    (void)s;
    return orch_util_teardown();
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_openai_stream_disconnect_cancels, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
