// test-libs: llorch_net llorch_core PkgConfig::JANSSON PkgConfig::SQLITE PkgConfig::MHD
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
 *   test_openai_json_disconnect_while_queued  the same for a non-streamed
 *       completion whose client gives up while the job still waits in the
 *       queue (no worker anywhere): the job ends cancelled at once and leaves
 *       the queue, instead of waiting for capacity nobody will read.
 *   test_placement_survives_restart  a placement made through POST
 *       /v2/placements is in the state file, and after orchestratord restarts
 *       on that file GET /v2/placements lists it (source "api") and the
 *       scheduler honours it: with no job at all it commands a worker start
 *       on exactly that GPU of the pool (the test plays a two-GPU pool that
 *       records the commands), and the worker there is pinned. DELETE
 *       removes it for good (gone after another restart).
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

static void test_openai_json_disconnect_while_queued(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    write_config(512, "1GB", NULL);
    struct proc o;
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    assert_int_equal(register_pool(o.base, "p1", 0), 200);
    assert_int_equal(heartbeat(o.base, "p1", 0, NULL, NULL, 0), 200); /* no worker: the job waits */
    char url[256];
    snprintf(url, sizeof url, "%s/v1/completions", o.base);
    http_client_req rq = { .method = "POST", .url = url, .timeout_ms = 500,
                           .body = "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":8}" };
    http_resp r = { 0 };
    char err[128];
    assert_true(http_client_do(&rq, &r, err, sizeof err) != 0); /* gave up: no answer in 500 ms */
    http_resp_free(&r);
    /* the one job there is: cancelled, out of the queue; within 10 s, before
     * the first keep-alive write (15 s idle) could notice the hang-up: the
     * stream's on_gone callback must */
    int done = 0;
    for (uint64_t t0 = now_ms(); !done && now_ms() - t0 < 10000; usleep(20000))
        done = q1("SELECT count(*) FROM jobs WHERE status='cancelled' AND error_code='CANCELLED'") == 1;
    if (!done) { dump(&o); fail_msg("the abandoned queued job was not cancelled"); }
    assert_int_equal(q1("SELECT count(*) FROM jobs"), 1);
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    assert_true(file_has(o.log, "\"reason\":\"client_gone\""));
    char *h = NULL;
    assert_int_equal(req("GET", o.base, "/health", NULL, &h), 200);
    assert_non_null(strstr(h, "\"queue_depth\":0"));
    free(h);
    stop(&o, SIGTERM);
}

/* the test as pool p1 with GPUs 0 and 1 at the fake pool's endpoint */
static long register_two_gpus(const char *orch, int port) {
    char body[512];
    snprintf(body, sizeof body, "{\"pool_id\":\"p1\",\"endpoint\":\"http://127.0.0.1:%d\",\"devices\":["
                                "{\"gpu_id\":0,\"total_bytes\":8000000000,\"free_bytes\":6000000000},"
                                "{\"gpu_id\":1,\"total_bytes\":8000000000,\"free_bytes\":6000000000}]}", port);
    return req("POST", orch, "/v2/pools/register", body, NULL);
}
/* a heartbeat listing worker w-new ready on GPU 1 */
static long heartbeat_w_new_on_gpu1(const char *orch) {
    char model[PATH_MAX], body[PATH_MAX + 1024];
    model_path(model, sizeof model);
    int64_t ts = (int64_t)util_wall_ms();
    if (ts <= g_ts) ts = g_ts + 1;
    g_ts = ts;
    snprintf(body, sizeof body, "{\"pool_id\":\"p1\",\"ts\":%lld,\"devices\":["
                                "{\"gpu_id\":0,\"total_bytes\":8000000000,\"free_bytes\":6000000000},"
                                "{\"gpu_id\":1,\"total_bytes\":8000000000,\"free_bytes\":5000000000}],"
                                "\"workers\":[{\"worker_id\":\"w-new\",\"model_ref\":\"file:%s\",\"uri\":\"http://127.0.0.1:9\","
                                "\"status\":\"ready\",\"capabilities\":[\"text-gen\"],\"memory_bytes\":1000000,"
                                "\"gpu_ids\":[1]}]}", (long long)ts, model);
    return req("POST", orch, "/v2/pools/p1/heartbeat", body, NULL);
}
/* the placements GET /v2/placements lists, as "model_ref|pool|gpu|source" lines */
static void placements(const char *orch, char *out, size_t cap) {
    out[0] = 0;
    json_t *j = get_json(orch, "/v2/placements");
    json_t *a = json_object_get(j, "placements");
    assert_true(json_is_array(a));
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *p = json_array_get(a, i);
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s|%s|%lld|%s\n", js(p, "model_ref"), js(p, "pool_id"),
                 (long long)json_integer_value(json_object_get(p, "gpu_id")), js(p, "source"));
    }
    json_decref(j);
}

static void test_placement_survives_restart(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    struct fake_pool f;
    fake_pool_start(&f, 202);
    char model[PATH_MAX], want[PATH_MAX + 64], got[4096];
    model_path(model, sizeof model);
    snprintf(want, sizeof want, "file:%s|p1|1|api\n", model);
    write_config(256, "1GB", NULL);
    struct proc o;
    assert_int_equal(start_orch(&o, "orch1.log", NULL), 0);
    assert_int_equal(register_two_gpus(o.base, f.port), 200);
    assert_int_equal(req("POST", o.base, "/v2/placements", "{\"model\":\"stories\",\"pool_id\":\"p1\",\"gpu_id\":1}",
                         NULL), 201);
    placements(o.base, got, sizeof got);
    assert_string_equal(got, want);
    assert_int_equal(wait_for(&f, 0, 1), 1); /* kept loaded: a start on GPU 1 */
    assert_non_null(strstr(f.start_body, "\"gpu_id\":1"));
    stop(&o, SIGTERM);
    assert_int_equal(q1("SELECT count(*) FROM placements WHERE pool_id='p1' AND gpu_id=1"), 1);

    /* restart on the same state file: the placement is back before the pool is */
    pthread_mutex_lock(&f.mu);
    f.starts = 0;
    f.start_body[0] = 0;
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(start_orch(&o, "orch2.log", NULL), 0);
    placements(o.base, got, sizeof got);
    assert_string_equal(got, want);
    assert_int_equal(fp_count(&f, 0), 0);
    /* the pool comes back: with no job at all, a start on GPU 1, never GPU 0 */
    assert_int_equal(register_two_gpus(o.base, f.port), 200);
    if (wait_for(&f, 0, 1) != 1) { dump(&o); fail_msg("no keep-loaded start after the restart"); }
    assert_non_null(strstr(f.start_body, "\"gpu_id\":1"));
    assert_non_null(strstr(f.start_body, "stories260K.gguf"));
    /* the worker on GPU 1 is pinned */
    assert_int_equal(heartbeat_w_new_on_gpu1(o.base), 200);
    json_t *w = NULL;
    for (uint64_t t0 = now_ms(); now_ms() - t0 < 10000; usleep(20000)) {
        json_t *all = get_json(o.base, "/v2/workers");
        json_t *ws = json_object_get(all, "workers");
        for (size_t i = 0; i < json_array_size(ws); i++)
            if (!strcmp(js(json_array_get(ws, i), "worker_id"), "w-new") &&
                !strcmp(js(json_array_get(ws, i), "status"), "ready"))
                w = json_incref(json_array_get(ws, i));
        json_decref(all);
        if (w) break;
    }
    assert_non_null(w);
    assert_true(json_is_true(json_object_get(w, "pinned")));
    json_decref(w);

    /* DELETE removes it from the state file too */
    assert_int_equal(req("DELETE", o.base, "/v2/placements", "{\"model\":\"stories\",\"pool_id\":\"p1\",\"gpu_id\":1}",
                         NULL), 200);
    stop(&o, SIGTERM);
    assert_int_equal(q1("SELECT count(*) FROM placements"), 0);
    assert_int_equal(start_orch(&o, "orch3.log", NULL), 0);
    placements(o.base, got, sizeof got);
    assert_string_equal(got, "");
    stop(&o, SIGTERM);
    http_server_free(f.srv);
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
        cmocka_unit_test_setup_teardown(test_openai_json_disconnect_while_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement_survives_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
