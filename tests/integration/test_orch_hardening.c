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
 *       In both disconnect tests stream.keepalive_ms is 1 h, so only the
 *       stream's hang-up callback can notice the client went away (a
 *       keep-alive write failing would be the other way); the tests' wait
 *       bounds only guard against a hang.
 *   test_keepalive_setting  stream.keepalive_ms is what an idle stream
 *       waits for its `: keep-alive` comment: at 200 ms, a raw reader of a
 *       queued job's /v2/tasks/{id}/events sees five of them.
 *   test_harness_tracks_many_children  the harness's child list grows: 40
 *       tracked children (more than its first 32 slots) are all ended and
 *       reaped by reap_all.
 *   test_placement_survives_restart  a placement made through POST
 *       /v2/placements is in the state file, and after orchestratord restarts
 *       on that file GET /v2/placements lists it (source "api") and the
 *       scheduler honours it: with no job at all it commands a worker start
 *       on exactly that GPU of the pool (the test plays a two-GPU pool that
 *       records the commands), and the worker there is pinned. DELETE
 *       removes it for good (gone after another restart).
 *   test_placements_concurrent_match_store  four clients POST and DELETE the
 *       same two placements at once (600 changes). The state-file write runs
 *       outside the registry lock, serialised with the registry change by
 *       the orchestrator's placement lock; if the two could interleave
 *       differently, the file would end with rows the registry does not have
 *       or the other way round. Asserted: every answer is one the API
 *       documents, the rows in the `placements` table are exactly the "api"
 *       placements GET /v2/placements lists, and a restart on that file lists
 *       the same ones again.
 */
#include "test_orch_util.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

/* stream.keepalive_ms far above every wait of these tests: a keep-alive
 * write can never be what notices a hang-up */
#define NO_KEEPALIVE "stream:\n  keepalive_ms: 1h\n"

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
    write_config(512, "1GB", NO_KEEPALIVE);
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
    for (uint64_t t0 = now_ms(); !seen && now_ms() - t0 < 60000; usleep(10000)) seen = file_has(o.log, needle);
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
    write_config(512, "1GB", NO_KEEPALIVE);
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
    /* the one job there is: cancelled, out of the queue. No keep-alive is
     * written for an hour, so only the stream's on_gone callback can have
     * noticed the hang-up; the 60 s bound only guards against a hang */
    int done = 0;
    for (uint64_t t0 = now_ms(); !done && now_ms() - t0 < 60000; usleep(20000))
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

/* ---- stream.keepalive_ms ---------------------------------------------------------- */
/* how many times (up to want) a raw GET of path on 127.0.0.1:port shows
 * needle within ms (the stream is read as bytes: comments included, which
 * SSE parsers drop) */
static int raw_get_count(int port, const char *path, const char *needle, int want, int ms) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char rq[512];
    int n = snprintf(rq, sizeof rq, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n", path);
    assert_int_equal(write(fd, rq, (size_t)n), n);
    char buf[16384];
    size_t len = 0;
    int seen = 0;
    for (uint64_t t0 = now_ms(); seen < want && now_ms() - t0 < (uint64_t)ms && len < sizeof buf - 1;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t k = read(fd, buf + len, sizeof buf - 1 - len);
        if (k <= 0) break;
        len += (size_t)k;
        buf[len] = 0;
        seen = 0;
        for (const char *q = strstr(buf, needle); q; q = strstr(q + 1, needle)) seen++;
    }
    close(fd);
    return seen;
}

static void test_keepalive_setting(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    write_config(512, "1GB", "stream:\n  keepalive_ms: 200\n");
    struct proc o;
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    assert_int_equal(register_pool(o.base, "p1", 0), 200);
    assert_int_equal(heartbeat(o.base, "p1", 0, NULL, NULL, 0), 200); /* no worker: the job waits, silent */
    long st;
    char *id = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"a\",\"max_tokens\":2}", &st);
    assert_int_equal(st, 202);
    assert_non_null(id);
    char path[128];
    snprintf(path, sizeof path, "/v2/tasks/%s/events", id);
    /* five comments: 1 s at 200 ms; at the 15 s default they would take 75 s,
     * past the 30 s bound (which otherwise only guards against a hang) */
    int n = raw_get_count(o.port, path, ": keep-alive", 5, 30000);
    if (n != 5) { dump(&o); fail_msg("%d keep-alive comments, not 5", n); }
    free(id);
    stop(&o, SIGTERM);
}

/* ---- the harness: no child escapes cleanup ------------------------------------------- */
static void test_harness_tracks_many_children(void **s) {
    (void)s;
    enum { N = 40 };
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (;;) pause();
        }
        track(pids[i]);
    }
    assert_int_equal(g_nchildren, N);
    reap_all();
    for (int i = 0; i < N; i++) { /* reaped: no longer our child */
        errno = 0;
        assert_int_equal(waitpid(pids[i], NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
    }
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

/* ---- concurrent placement changes -------------------------------------------------------- */
struct pl_client {
    const char *base;
    unsigned seed;
    int bad;        /* answers the API does not document for the request */
    char last[128]; /* the last such answer */
};
static void *pl_client_main(void *arg) {
    struct pl_client *c = arg;
    for (int i = 0; i < 150; i++) {
        int gpu = (int)(rand_r(&c->seed) % 2), del = (int)(rand_r(&c->seed) % 2);
        char body[128];
        snprintf(body, sizeof body, "{\"model\":\"stories\",\"pool_id\":\"p1\",\"gpu_id\":%d}", gpu);
        long st = req(del ? "DELETE" : "POST", c->base, "/v2/placements", body, NULL);
        if (del ? (st != 200 && st != 404) : st != 201) { /* removed / nothing to remove; placed */
            c->bad++;
            snprintf(c->last, sizeof c->last, "%s gpu %d: %ld", del ? "DELETE" : "POST", gpu, st);
        }
    }
    return NULL;
}
/* rows of the placements table for model on p1, as "gpu,gpu," in gpu order (GPUs 0 and 1) */
static void pl_rows(const char *model, char *out, size_t cap) {
    out[0] = 0;
    for (int g = 0; g < 2; g++) {
        char sql[PATH_MAX + 200];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM placements WHERE model_ref='file:%s' AND pool_id='p1' AND gpu_id=%d",
                 model, g);
        long long n = q1(sql);
        assert_true(n == 0 || n == 1);
        size_t l = strlen(out);
        if (n) snprintf(out + l, cap - l, "%d,", g);
    }
}
/* the "api" placements GET /v2/placements lists for model on p1, in the same form */
static void pl_listed(const char *base, const char *model, char *out, size_t cap) {
    char got[4096];
    placements(base, got, sizeof got);
    out[0] = 0;
    for (int g = 0; g < 2; g++) {
        char line[PATH_MAX + 64];
        snprintf(line, sizeof line, "file:%s|p1|%d|api\n", model, g);
        size_t l = strlen(out);
        if (strstr(got, line)) snprintf(out + l, cap - l, "%d,", g);
    }
}

static void test_placements_concurrent_match_store(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    struct fake_pool f;
    fake_pool_start(&f, 202);
    char model[PATH_MAX];
    model_path(model, sizeof model);
    write_config(256, "1GB", NULL);
    struct proc o;
    assert_int_equal(start_orch(&o, "orch1.log", NULL), 0);
    assert_int_equal(register_two_gpus(o.base, f.port), 200);

    struct pl_client c[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct pl_client){ .base = o.base, .seed = 1234u + 7u * (unsigned)i };
        assert_int_equal(pthread_create(&t[i], NULL, pl_client_main, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        if (c[i].bad) fail_msg("client %d got %d undocumented answer(s), the last %s", i, c[i].bad, c[i].last);

    char listed[16], rows[16];
    pl_listed(o.base, model, listed, sizeof listed);
    stop(&o, SIGTERM);
    pl_rows(model, rows, sizeof rows);
    assert_string_equal(rows, listed);
    /* and the file is what a restart restores */
    assert_int_equal(start_orch(&o, "orch2.log", NULL), 0);
    char again[16];
    pl_listed(o.base, model, again, sizeof again);
    assert_string_equal(again, listed);
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
        cmocka_unit_test_setup_teardown(test_keepalive_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_harness_tracks_many_children, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement_survives_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placements_concurrent_match_store, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
