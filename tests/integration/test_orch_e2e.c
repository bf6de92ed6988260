// test-libs: llorch_net llorch_core PkgConfig::JANSSON PkgConfig::SQLITE PkgConfig::MHD
/* orchestratord end to end on loopback: a real worker-cpud (stories260K), a
 * real orchestratord with a real SQLite file; the test plays the pool
 * (register + heartbeats listing the worker). Asserts event order and ids,
 * rows in the state file, queue bounds and cancel, heartbeat rules, retry
 * onto another worker after a connection failure, restart recovery. */
#include "test_orch_util.h"

static int setup(void **s) {
    (void)s;
    return orch_util_setup("orch-e2e");
}
static int teardown(void **s) {
    (void)s;
    return orch_util_teardown();
}

/* worker-cpud "w1" + orchestratord (catalog "stories", context 256,
 * extra_yaml) + the test as pool "p1" (6 GB free) listing w1; skips the test
 * when the programs or the model are missing */
static void up_w1(struct proc *w, struct proc *o, const char *extra_yaml) {
    int rc = start_worker(w, "w1");
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    write_config(256, NULL, extra_yaml);
    assert_int_equal(start_orch(o, "orch.log", NULL), 0);
    assert_int_equal(play_pool(o->base, "p1", 6000000000LL, "w1", w->base), 200);
}

/* ---- tests --------------------------------------------------------------------- */
static void test_basic_flow(void **s) {
    (void)s;
    struct proc w, o;
    up_w1(&w, &o, NULL);
    char *id = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Once upon a time secretword\",\"max_tokens\":6,"
                                 "\"seed\":7,\"temperature\":0}");
    assert_non_null(id);
    struct evlist v = { 0 };
    events(o.base, id, -1, &v);
    if (v.n < 3) dump(&o);
    assert_string_equal(v.v[0].name, "queued");
    assert_string_equal(v.v[1].name, "started");
    int tokens = 0;
    for (int i = 0; i < v.n; i++) {
        assert_int_equal(v.v[i].id, i); /* ids 0,1,2,... */
        tokens += strcmp(v.v[i].name, "token") == 0;
    }
    assert_int_equal(tokens, 6);
    assert_string_equal(last_name(&v), "end");
    char *sts = status_of(o.base, id);
    assert_string_equal(sts, "completed");
    free(sts);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='completed' AND tokens_out=6 "
                         "AND seed=7 AND worker_id='w1' AND pool_id='p1' AND length(prompt_hash)=64", id), 1);
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    assert_int_equal(q1("SELECT count(*) FROM jobs WHERE params LIKE '%secretword%'"), 0);
    struct stat sb;
    assert_int_equal(stat(DB, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* metrics */
    char *m = NULL;
    assert_int_equal(req("GET", o.base, "/metrics", NULL, &m), 200);
    assert_non_null(strstr(m, "orchd_tasks_enqueued_total{component=\"orchestratord\",outcome=\"accepted\"} 1"));
    assert_non_null(strstr(m, "orchd_pools_available"));
    free(m);
    /* validation through the API */
    char *resp = NULL;
    assert_int_equal(req("POST", o.base, "/v2/tasks", "{\"model\":\"stories\",\"prompt\":\"x\",\"top_p\":3}", &resp), 400);
    json_t *j = json_loads(resp, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(j, "error"), "details"), "field")),
                        "top_p");
    json_decref(j);
    free(resp);
    assert_int_equal(req("GET", o.base, "/v2/tasks/00000000-0000-4000-8000-000000000000", NULL, NULL), 404);
    free(id);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
    ev_free(&v);
}

static void test_queue_bounds_and_cancel(void **s) {
    (void)s;
    write_config(256, NULL, NULL);
    struct proc o;
    const char *extra[] = { "--queue-capacity", "1", NULL };
    int rc = start_orch(&o, "orch.log", extra);
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    long st;
    char *a = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"a\",\"max_tokens\":2}");
    char *b = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"b\",\"max_tokens\":2,\"priority\":\"batch\"}", &st);
    assert_int_equal(st, 429);
    assert_null(b);
    char path[128];
    snprintf(path, sizeof path, "/v2/tasks/%s", a);
    assert_int_equal(req("DELETE", o.base, path, NULL, NULL), 202);
    assert_int_equal(req("DELETE", o.base, path, NULL, NULL), 202); /* idempotent */
    char *sts = status_of(o.base, a);
    assert_string_equal(sts, "cancelled");
    free(sts);
    struct evlist v = { 0 };
    events(o.base, a, -1, &v);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.v[1].name, "error");
    assert_string_equal(v.code, "CANCELLED");
    assert_int_equal(q1("SELECT count(*) FROM queue"), 0);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='cancelled'", a), 1);
    /* room again after the cancel */
    b = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"b\",\"max_tokens\":2}");
    free(a);
    free(b);
    stop(&o, SIGTERM);
    ev_free(&v);
}

static void test_heartbeat_rules(void **s) {
    (void)s;
    write_config(256, NULL, NULL);
    struct proc o;
    int rc = start_orch(&o, "orch.log", NULL);
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    assert_int_equal(heartbeat(o.base, "ghost", 6000000000LL, NULL, NULL, 0), 404);
    assert_int_equal(register_pool(o.base, "p1", 6000000000LL), 200);
    assert_int_equal(heartbeat(o.base, "p1", 6000000000LL, NULL, NULL, 0), 200);
    /* replay: the same timestamp again */
    char body[256];
    snprintf(body, sizeof body, "{\"pool_id\":\"p1\",\"ts\":%lld,\"devices\":[],\"workers\":[]}", (long long)g_ts);
    assert_int_equal(req("POST", o.base, "/v2/pools/p1/heartbeat", body, NULL), 409);
    /* URL id must match the payload */
    snprintf(body, sizeof body, "{\"pool_id\":\"p2\",\"ts\":%lld,\"devices\":[],\"workers\":[]}", (long long)g_ts + 5);
    assert_int_equal(req("POST", o.base, "/v2/pools/p1/heartbeat", body, NULL), 400);
    char *pools = NULL;
    assert_int_equal(req("GET", o.base, "/v2/pools", NULL, &pools), 200);
    assert_non_null(strstr(pools, "\"available\":true"));
    free(pools);
    stop(&o, SIGTERM);
}

static void test_retry_on_other_worker(void **s) {
    (void)s;
    struct proc w, o;
    int rc = start_worker(&w, "w1");
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    write_config(256, NULL, "retry:\n  initial_delay_ms: 10\n  max_delay_ms: 50\n");
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    assert_int_equal(register_pool(o.base, "p1", 6000000000LL), 200);
    /* "a-dead" sorts first and nothing listens on its port */
    const char *wid[] = { "a-dead", "w1" }, *uri[] = { "http://127.0.0.1:9", w.base };
    assert_int_equal(heartbeat(o.base, "p1", 6000000000LL, wid, uri, 2), 200);
    char *id = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Hello\",\"max_tokens\":3}");
    struct evlist v = { 0 };
    events_end(&o, id, &v, "the job");
    assert_int_equal(count_name(&v, "started"), 1);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='completed' AND retry_count=1 "
                         "AND worker_id='w1'", id), 1);
    free(id);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
    ev_free(&v);
}

static void test_restart_recovery(void **s) {
    (void)s;
    struct proc w, o;
    write_config(256, NULL, NULL);
    int rc = start_orch(&o, "orch.log", NULL);
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    char *id = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":3,\"seed\":5}");
    stop(&o, SIGKILL); /* crash with a queued job */
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    char *sts = status_of(o.base, id);
    assert_string_equal(sts, "queued"); /* reloaded */
    free(sts);
    rc = start_worker(&w, "w1");
    if (rc == 77) { stop(&o, SIGTERM); skip(); }
    assert_int_equal(rc, 0);
    assert_int_equal(play_pool(o.base, "p1", 6000000000LL, "w1", w.base), 200);
    struct evlist v = { 0 };
    events_end(&o, id, &v, "the reloaded job");
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='completed' AND seed=5", id), 1);
    stop(&o, SIGTERM);
    free(id);

    /* persist_prompts never: a restart fails the queued job */
    const char *never[] = { "--state-persist-prompts", "never", NULL };
    assert_int_equal(start_orch(&o, "orch.log", never), 0);
    assert_int_equal(register_pool(o.base, "p2", 6000000000LL), 200); /* no worker for it */
    id = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Twice\",\"max_tokens\":3}");
    assert_int_equal(q1f("SELECT count(*) FROM queue WHERE job_id='%s' AND body IS NULL", id), 1);
    stop(&o, SIGKILL);
    assert_int_equal(start_orch(&o, "orch.log", never), 0);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='failed' "
                         "AND error_code='ORCHESTRATOR_RESTARTED'", id), 1);
    ev_free(&v);
    events(o.base, id, -1, &v); /* the terminal state is still reported */
    assert_true(v.n >= 1);
    assert_string_equal(last_name(&v), "error");
    free(id);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
    ev_free(&v);
}

static void test_platform_tenants(void **s) {
    (void)s;
    struct proc w, o;
    int rc = start_worker(&w, "w1");
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    write_config(256, NULL, "deployment: platform\n"
                 "auth:\n  pool_tokens: [pooltok]\n  client_tokens: ['acme:tok-a', 'beta:tok-b']\n"
                 "tenants:\n  acme: {daily_tokens: 1}\n");
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    const char *A = "Authorization: Bearer tok-a", *Bt = "Authorization: Bearer tok-b", *P = "Authorization: Bearer pooltok";
    g_auth = NULL;
    assert_int_equal(register_pool(o.base, "p1", 6000000000LL), 401);
    long st;
    char *none = submit(o.base, "{\"model\":\"stories\",\"prompt\":\"x\",\"max_tokens\":2}", &st);
    assert_int_equal(st, 401);
    free(none);
    g_auth = P;
    assert_int_equal(play_pool(o.base, "p1", 6000000000LL, "w1", w.base), 200);
    g_auth = A;
    char *a1 = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":3}");
    struct evlist v = { 0 };
    events_end(&o, a1, &v, "acme's first job");
    /* another tenant cannot see it */
    g_auth = Bt;
    char path[128];
    snprintf(path, sizeof path, "/v2/tasks/%s", a1);
    assert_int_equal(req("GET", o.base, path, NULL, NULL), 404);
    assert_int_equal(req("DELETE", o.base, path, NULL, NULL), 404);
    /* acme spent its daily budget: its next job waits in the queue... */
    g_auth = A;
    char *a2 = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Twice\",\"max_tokens\":3}");
    /* ...while beta's job runs */
    g_auth = Bt;
    char *b1 = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Thrice\",\"max_tokens\":3}");
    events_end(&o, b1, &v, "beta's job");
    usleep(300000);
    g_auth = A;
    char *sts = status_of(o.base, a2);
    assert_string_equal(sts, "queued");
    free(sts);
    assert_true(q1("SELECT tokens_today FROM tenant_quotas WHERE tenant='acme'") >= 3);
    snprintf(path, sizeof path, "/v2/tasks/%s", a2);
    assert_int_equal(req("DELETE", o.base, path, NULL, NULL), 202);
    g_auth = NULL;
    free(a1);
    free(a2);
    free(b1);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
    ev_free(&v);
}

struct oai { int n; int done; char text[512]; char finish[16]; };
static int on_oai(void *u, const sse_event *e) {
    struct oai *v = u;
    v->n++;
    if (strcmp(e->data, "[DONE]") == 0) { v->done = 1; return 0; }
    json_t *j = json_loads(e->data, 0, NULL);
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    json_t *delta = json_object_get(c, "delta");
    const char *t = json_string_value(delta ? json_object_get(delta, "content") : json_object_get(c, "text"));
    if (t) strncat(v->text, t, sizeof v->text - strlen(v->text) - 1);
    const char *f = json_string_value(json_object_get(c, "finish_reason"));
    if (f) snprintf(v->finish, sizeof v->finish, "%s", f);
    json_decref(j);
    return 0;
}

static void test_openai_facade(void **s) {
    (void)s;
    struct proc w, o;
    up_w1(&w, &o, NULL);
    char *resp = NULL;
    assert_int_equal(req("GET", o.base, "/v1/models", NULL, &resp), 200);
    assert_non_null(strstr(resp, "\"id\":\"stories\""));
    free(resp);
    /* non-streamed completion, greedy: the same text as the v2 task path */
    assert_int_equal(req("POST", o.base, "/v1/completions",
                         "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":6,\"temperature\":0}",
                         &resp), 200);
    json_t *j = json_loads(resp, 0, NULL);
    assert_non_null(j);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    char text1[256];
    snprintf(text1, sizeof text1, "%s", json_string_value(json_object_get(c0, "text")));
    assert_true(strlen(text1) > 0);
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "length");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens")), 6);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "text_completion");
    json_decref(j);
    free(resp);
    /* streamed: the chunks concatenate to the same text, then [DONE] */
    char url[256];
    snprintf(url, sizeof url, "%s/v1/completions", o.base);
    const char *body = "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":6,\"temperature\":0,"
                       "\"stream\":true}";
    http_client_req rq = { .method = "POST", .url = url, .body = body, .timeout_ms = 20000 };
    http_resp r = { 0 };
    char err[128];
    struct oai v = { 0 };
    assert_int_equal(http_client_sse(&rq, on_oai, &v, &r, err, sizeof err), 0);
    http_resp_free(&r);
    assert_true(v.done);
    assert_string_equal(v.text, text1);
    assert_string_equal(v.finish, "length");
    /* chat */
    assert_int_equal(req("POST", o.base, "/v1/chat/completions",
                         "{\"model\":\"stories\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"},"
                         "{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4,\"seed\":1}", &resp), 200);
    j = json_loads(resp, 0, NULL);
    c0 = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c0, "message"), "role")), "assistant");
    assert_non_null(json_string_value(json_object_get(json_object_get(c0, "message"), "content")));
    json_decref(j);
    free(resp);
    /* refusals keep the system's error body */
    assert_int_equal(req("POST", o.base, "/v1/chat/completions", "{\"model\":\"stories\",\"messages\":[]}", NULL), 400);
    assert_int_equal(req("POST", o.base, "/v1/completions", "{\"model\":\"nope\",\"prompt\":\"x\"}", NULL), 404);
    /* every facade request is an ordinary job in the state file */
    assert_int_equal(q1("SELECT count(*) FROM jobs WHERE status='completed'"), 3);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
}

static void test_start_evict_and_refusal(void **s) {
    (void)s;
    struct proc w, o;
    int rc = start_worker(&w, "w-new");
    if (rc == 77) skip();
    assert_int_equal(rc, 0);
    struct fake_pool f;
    fake_pool_start(&f, 202);
    char model[PATH_MAX];
    model_path(model, sizeof model);
    write_config(256, "3GB",
                 "  big:\n    model_ref: 'file:/m/big.gguf'\n    context_length: 256\n    memory_bytes: 3500MB\n"
                 "  huge:\n    model_ref: 'file:/m/huge.gguf'\n    context_length: 256\n    memory_bytes: 500GB\n"
                 "retry:\n  initial_delay_ms: 10\n  max_delay_ms: 50\n");
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    char body[PATH_MAX + 1024];
    /* one 8 GB host device with 2 GB free: an idle worker of another model holds 5 GB */
    snprintf(body, sizeof body, "{\"pool_id\":\"p1\",\"endpoint\":\"http://127.0.0.1:%d\",\"devices\":[{\"gpu_id\":-1,"
                                "\"total_bytes\":8000000000,\"free_bytes\":2000000000}]}", f.port);
    assert_int_equal(req("POST", o.base, "/v2/pools/register", body, NULL), 200);
    int64_t ts = (int64_t)util_wall_ms();
    snprintf(body, sizeof body, "{\"pool_id\":\"p1\",\"ts\":%lld,\"devices\":[{\"gpu_id\":-1,\"total_bytes\":8000000000,"
                                "\"free_bytes\":2000000000}],\"workers\":[{\"worker_id\":\"w-old\",\"model_ref\":"
                                "\"file:/m/other.gguf\",\"uri\":\"http://127.0.0.1:9\",\"status\":\"ready\","
                                "\"memory_bytes\":5000000000}]}", (long long)ts);
    assert_int_equal(req("POST", o.base, "/v2/pools/p1/heartbeat", body, NULL), 200);
    char *id = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Once\",\"max_tokens\":3}");
    /* no worker serves it and 3.3 GB do not fit in 2 GB: the idle other worker is evicted */
    assert_int_equal(wait_for(&f, 1, 1), 1);
    assert_string_equal(f.stopped, "w-old");
    assert_int_equal(wait_for(&f, 0, 1), 1);
    assert_non_null(strstr(f.start_body, "\"model_ref\":\"file:"));
    assert_non_null(strstr(f.start_body, "stories260K.gguf"));
    /* from now on the pool refuses starts (no room for more replicas) */
    pthread_mutex_lock(&f.mu);
    f.answer = 507;
    pthread_mutex_unlock(&f.mu);
    /* while it starts, more jobs for the model wait instead of starting more workers */
    char *id2 = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Twice\",\"max_tokens\":3}");
    usleep(300000);
    assert_int_equal(fp_count(&f, 0), 1);
    char *wk = NULL;
    assert_int_equal(req("GET", o.base, "/v2/workers", NULL, &wk), 200);
    assert_non_null(strstr(wk, "\"worker_id\":\"w-new\""));
    assert_non_null(strstr(wk, "\"status\":\"starting\""));
    free(wk);
    /* the pool reports the new worker ready (and the old one gone): both jobs run */
    snprintf(body, sizeof body, "{\"pool_id\":\"p1\",\"ts\":%lld,\"devices\":[{\"gpu_id\":-1,\"total_bytes\":8000000000,"
                                "\"free_bytes\":4000000000}],\"workers\":[{\"worker_id\":\"w-new\",\"model_ref\":"
                                "\"file:%s\",\"uri\":\"%s\",\"status\":\"ready\",\"memory_bytes\":3000000000}]}",
             (long long)ts + 1, model, w.base);
    assert_int_equal(req("POST", o.base, "/v2/pools/p1/heartbeat", body, NULL), 200);
    struct evlist v = { 0 };
    events_end(&o, id, &v, "job 1");
    events_end(&o, id2, &v, "job 2");
    /* a model larger than any device is refused at once with NO_CAPACITY */
    char *id3 = submit_ok(o.base, "{\"model\":\"huge\",\"prompt\":\"x\",\"max_tokens\":1}");
    ev_free(&v);
    events(o.base, id3, -1, &v);
    assert_string_equal(v.code, "NO_CAPACITY");
    /* a pool that keeps refusing starts (3.85 GB fits the 4 GB free without
     * evicting): the job ends with the pool's code after retry.max_attempts */
    int before = fp_count(&f, 0);
    char *id4 = submit_ok(o.base, "{\"model\":\"big\",\"prompt\":\"x\",\"max_tokens\":1}");
    ev_free(&v);
    events(o.base, id4, -1, &v);
    assert_string_equal(v.code, "INSUFFICIENT_VRAM");
    assert_int_equal(fp_count(&f, 0) - before, 5); /* retry.max_attempts */
    free(id);
    free(id2);
    free(id3);
    free(id4);
    stop(&o, SIGTERM);
    stop(&w, SIGTERM);
    http_server_free(f.srv);
    ev_free(&v);
}

static void test_placement_kept_loaded(void **s) {
    (void)s;
    struct fake_pool f;
    fake_pool_start(&f, 202);
    write_config(256, NULL, "    placements: [{pool_id: p1, gpu_id: -1}]\n");
    struct proc o;
    int rc = start_orch(&o, "orch.log", NULL);
    if (rc == 77) { http_server_free(f.srv); skip(); }
    assert_int_equal(rc, 0);
    char body[512];
    snprintf(body, sizeof body, "{\"pool_id\":\"p1\",\"endpoint\":\"http://127.0.0.1:%d\",\"devices\":[{\"gpu_id\":-1,"
                                "\"total_bytes\":8000000000,\"free_bytes\":6000000000}]}", f.port);
    assert_int_equal(req("POST", o.base, "/v2/pools/register", body, NULL), 200);
    /* no job at all: the placement alone makes the orchestrator start the model there */
    assert_int_equal(wait_for(&f, 0, 1), 1);
    assert_non_null(strstr(f.start_body, "stories260K.gguf"));
    usleep(300000);
    assert_int_equal(fp_count(&f, 0), 1); /* once: the starting worker satisfies it */
    char *wk = NULL;
    assert_int_equal(req("GET", o.base, "/v2/workers", NULL, &wk), 200);
    assert_non_null(strstr(wk, "\"worker_id\":\"w-new\""));
    assert_non_null(strstr(wk, "\"pinned\":true"));
    free(wk);
    stop(&o, SIGTERM);
    http_server_free(f.srv);
}

/* the whole system: orchestratord + the real pool-managerd (host inventory)
 * which spawns the real worker-cpud on the orchestrator's command */
static void test_system_with_pool_managerd(void **s) {
    (void)s;
    char pbin[256], wbin[256];
    TU_BUILD(pbin, "pool-managerd");
    TU_BUILD(wbin, "worker-cpud");
    if (access(pbin, X_OK) != 0 || access(wbin, X_OK) != 0) skip();
    write_config(256, "50MB", "heartbeat: {interval_ms: 300}\nauth: {pool_tokens: [pt]}\ndeployment: lab\n");
    struct proc o;
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    struct pool P;
    start_host_pool(&P, o.base, "box1", 300);
    /* the pool registers itself */
    if (!wait_pool_available(o.base, "box1", 1, 10000)) { dump(&o); fail_msg("pool-managerd never registered"); }
    char *id = submit_ok(o.base, "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"max_tokens\":8,"
                                 "\"temperature\":0}");
    struct evlist v = { 0 };
    events_end(&o, id, &v, "the job");
    /* the worker the pool spawned is listed, and ready again once released */
    int ready = 0;
    for (int i = 0; i < 200 && !ready; i++) {
        char *wk = NULL;
        if (req("GET", o.base, "/v2/workers", NULL, &wk) == 200 && strstr(wk, "\"pool_id\":\"box1\"") &&
            strstr(wk, "\"status\":\"ready\""))
            ready = 1;
        free(wk);
        if (!ready) usleep(10000);
    }
    assert_true(ready);
    assert_int_equal(q1f("SELECT count(*) FROM jobs WHERE id='%s' AND status='completed' AND pool_id='box1' "
                         "AND tokens_out=8", id), 1);
    free(id);
    end_pid(P.pid);
    stop(&o, SIGTERM);
    ev_free(&v);
}

static void test_config_errors_exit_2(void **s) {
    (void)s;
    char bin[256];
    TU_BUILD(bin, "orchestratord");
    if (access(bin, X_OK) != 0) skip();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", 1);
        dup2(fd, 2);
        execl(bin, bin, "--queue-capacity", "lots", (char *)NULL);
        _exit(127);
    }
    int stt;
    waitpid(pid, &stt, 0);
    assert_true(WIFEXITED(stt));
    assert_int_equal(WEXITSTATUS(stt), 2);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bounds_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_on_other_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_platform_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openai_facade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_evict_and_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_placement_kept_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_with_pool_managerd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors_exit_2, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
