// test-libs: llorch_net PkgConfig::JANSSON
/* The llamacpp adapter's translation (issue 5, acceptance 7).
 *
 * LLAMA_SERVER_DOUBLE: this test binary doubles as a stand-in for llama.cpp's
 * `llama-server` (a TEST DOUBLE: the real one is not installed here). When
 * pool-managerd runs it as `<this> --model PATH --host H --port P ...`, main()
 * below serves the slice of llama-server's protocol the adapter uses:
 *   GET  /health      503 {"error":...} for the first 300 ms (loading), then 200 {"status":"ok"}
 *   POST /tokenize    {"content"} → {"tokens":[one per space-separated word]}
 *   POST /completion  {"prompt","n_predict","stream":true,...} → SSE lines
 *                     `data: {"content":"w<i> ","stop":false}` × n_predict, then
 *                     `data: {"content":"","stop":true,"stop_type":"limit","tokens_predicted":n,
 *                             "tokens_evaluated":m,"timings":{"prompt_ms":..,"predicted_ms":..}}`
 *                     and writes the request body it got to $LLAMA_DOUBLE_LOG.
 * The test then drives the URI the pool reports with the standard worker
 * contract (/execute SSE, /health, /cancel) and checks the translation both
 * ways.
 */
#include "test_pool_util.h"

/* ---- LLAMA_SERVER_DOUBLE ---------------------------------------------------------- */
static uint64_t dbl_t0;
static const char *dbl_log;

static void dbl_health(http_req *r, void *u) {
    (void)u;
    if (tp_ms() - dbl_t0 < 300) http_respond_json(r, 503, "{\"error\":{\"code\":503,\"message\":\"Loading model\"}}");
    else http_respond_json(r, 200, "{\"status\":\"ok\"}");
}

static void dbl_tokenize(http_req *r, void *u) {
    (void)u;
    size_t n;
    const char *b = http_req_body(r, &n);
    json_t *j = json_loadb(b, n, 0, NULL);
    const char *c = json_string_value(json_object_get(j, "content"));
    int words = 0;
    for (const char *s = c ? c : ""; *s; s++)
        if (*s != ' ' && (s[1] == ' ' || s[1] == 0)) words++;
    json_decref(j);
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_puts(&sb, "{\"tokens\":[");
    for (int i = 0; i < words; i++) util_sb_printf(&sb, "%s%d", i ? "," : "", 100 + i);
    util_sb_puts(&sb, "]}");
    http_respond_json(r, 200, sb.buf);
    util_sb_free(&sb);
}

struct dbl_job { http_stream *st; int n; int tin; int slow; };

static void *dbl_stream(void *arg) {
    struct dbl_job *j = arg;
    char line[256];
    for (int i = 0; i < j->n; i++) {
        snprintf(line, sizeof line, "data: {\"content\":\"w%d \",\"stop\":false}\n\n", i);
        if (http_stream_write(j->st, line, strlen(line)) < 0) break;
        if (j->slow) usleep(50000);
    }
    snprintf(line, sizeof line,
             "data: {\"content\":\"\",\"stop\":true,\"stop_type\":\"limit\",\"tokens_predicted\":%d,"
             "\"tokens_evaluated\":%d,\"timings\":{\"prompt_ms\":1.5,\"predicted_ms\":%d.25}}\n\n",
             j->n, j->tin, j->n);
    http_stream_write(j->st, line, strlen(line));
    http_stream_close(j->st);
    free(j);
    return NULL;
}

static void dbl_completion(http_req *r, void *u) {
    (void)u;
    size_t n;
    const char *b = http_req_body(r, &n);
    if (dbl_log) {
        FILE *f = fopen(dbl_log, "w");
        if (f) { fwrite(b, 1, n, f); fclose(f); }
    }
    json_t *j = json_loadb(b, n, 0, NULL);
    struct dbl_job *x = calloc(1, sizeof *x);
    x->n = (int)json_integer_value(json_object_get(j, "n_predict"));
    x->tin = 3;
    x->slow = x->n > 50;
    json_decref(j);
    x->st = http_respond_stream(r, 200, "text/event-stream", NULL, NULL);
    pthread_t t;
    pthread_create(&t, NULL, dbl_stream, x);
    pthread_detach(t);
}

static int llama_server_double(int argc, char **argv) {
    int port = 0;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    dbl_t0 = tp_ms();
    dbl_log = getenv("LLAMA_DOUBLE_LOG");
    http_server_opts o = { .bind = "127.0.0.1", .port = port, .threads = 2, .component = "llama-server-double" };
    http_server *s;
    char err[256];
    if (http_server_new(&o, &s, err, sizeof err) < 0) return 1;
    http_server_route(s, "GET", "/health", dbl_health, NULL);
    http_server_route(s, "POST", "/tokenize", dbl_tokenize, NULL);
    http_server_route(s, "POST", "/completion", dbl_completion, NULL);
    if (http_server_start(s, err, sizeof err) < 0) {
        fprintf(stderr, "llama-server double: %s\n", err);
        return 1;
    }
    fprintf(stderr, "llama-server double listening on %d\n", port);
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    pthread_sigmask(SIG_BLOCK, &ss, NULL);
    int sig;
    sigwait(&ss, &sig);
    http_server_free(s);
    return 0;
}

/* ---- the test ---------------------------------------------------------------------- */
static char self_path[1024];

struct events { int n; char names[256][16]; json_t *data[256]; int cancel_after; char cancel_url[256]; };

static int on_ev(void *u, const sse_event *ev) {
    struct events *e = u;
    if (e->n < 256) {
        snprintf(e->names[e->n], sizeof e->names[0], "%s", ev->event);
        e->data[e->n] = json_loadb(ev->data, ev->data_len, 0, NULL);
        e->n++;
    }
    if (e->cancel_after && e->n == e->cancel_after)
        tp_call(e->cancel_url, "POST", "/cancel", "{\"job_id\":\"job-2\"}", NULL);
    return 0;
}

static void events_free(struct events *e) {
    for (int i = 0; i < e->n; i++) json_decref(e->data[i]);
    e->n = 0;
}

static void test_llamacpp_translation(void **st) {
    (void)st;
    char dir[] = "/tmp/llorch-pooltest-lcpp-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char yaml[2048], cfg[300], logp[300], logenv[320];
    snprintf(cfg, sizeof cfg, "%s/pool.yaml", dir);
    snprintf(logp, sizeof logp, "%s/upstream-request.json", dir);
    snprintf(logenv, sizeof logenv, "LLAMA_DOUBLE_LOG=%s", logp);
    snprintf(yaml, sizeof yaml,
             "inventory: host\n"
             "adapters:\n"
             "  - name: llama\n"
             "    type: llamacpp\n"
             "    binary_path: %s\n"
             "    config:\n"
             "      args: \"--threads 2\"\n",
             self_path);
    FILE *f = fopen(cfg, "w");
    fputs(yaml, f);
    fclose(f);
    const char *args[] = { "--config", cfg, NULL };
    const char *env[] = { logenv, NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, env);

    char id[64];
    snprintf(id, sizeof id, "%s",
             tp_start_model(&pool, "stories260K.gguf", ",\"worker_type\":\"llamacpp\",\"ctx_size\":256"));
    assert_true(tp_wait_status(&pool, id, "ready", 20000));
    json_t *s = tp_state(&pool);
    json_t *w = tp_worker(s, id);
    char uri[256];
    snprintf(uri, sizeof uri, "%s", tp_str(w, "uri"));
    assert_string_equal(tp_str(w, "worker_type"), "llamacpp");
    assert_true(tp_int(w, "memory_bytes") > 0);
    /* the reported uri is the proxy, not llama-server itself */
    assert_string_not_equal(uri, tp_str(w, "upstream"));
    pid_t pid = (pid_t)tp_int(w, "pid");
    json_decref(s);

    json_t *h = NULL;
    assert_int_equal(tp_call(uri, "GET", "/health", NULL, &h), 200);
    assert_string_equal(tp_str(h, "status"), "healthy");
    assert_string_equal(tp_str(h, "worker_id"), id);
    assert_string_equal(tp_str(h, "worker_type"), "llamacpp");
    json_decref(h);

    /* /execute → /completion, SSE translated */
    char url[300];
    snprintf(url, sizeof url, "%s/execute", uri);
    const char *ex = "{\"job_id\":\"job-1\",\"prompt\":\"once upon a time\",\"max_tokens\":5,\"temperature\":0.5,"
                     "\"top_k\":40,\"top_p\":0.9,\"min_p\":0.05,\"repetition_penalty\":1.1,\"stop\":[\"END\"],\"seed\":42}";
    const char *hdrs[] = { "X-Correlation-Id: corr-123", NULL };
    http_client_req rq = { .method = "POST", .url = url, .body = ex, .headers = hdrs, .timeout_ms = 20000 };
    struct events ev = { 0 };
    http_resp resp;
    char err[256];
    assert_int_equal(http_client_sse(&rq, on_ev, &ev, &resp, err, sizeof err), 0);
    assert_int_equal(resp.status, 200);
    http_resp_free(&resp);
    assert_int_equal(ev.n, 1 + 5 + 1);
    assert_string_equal(ev.names[0], "started");
    assert_string_equal(tp_str(ev.data[0], "job_id"), "job-1");
    assert_string_equal(tp_str(ev.data[0], "correlation_id"), "corr-123");
    assert_int_equal(tp_int(ev.data[0], "seed"), 42);
    assert_int_equal(tp_int(ev.data[0], "tokens_in"), 4); /* the double's /tokenize: one per word */
    for (int i = 0; i < 5; i++) {
        char t[16];
        snprintf(t, sizeof t, "w%d ", i);
        assert_string_equal(ev.names[1 + i], "token");
        assert_string_equal(tp_str(ev.data[1 + i], "t"), t);
        assert_int_equal(tp_int(ev.data[1 + i], "i"), i);
    }
    assert_string_equal(ev.names[6], "end");
    assert_int_equal(tp_int(ev.data[6], "tokens_out"), 5);
    assert_int_equal(tp_int(ev.data[6], "tokens_in"), 3);
    assert_string_equal(tp_str(ev.data[6], "stop_reason"), "max_tokens");
    assert_int_equal(tp_int(ev.data[6], "decode_time_ms"), 5);
    events_free(&ev);
    /* what llama-server was asked */
    char *text = NULL;
    size_t len;
    assert_int_equal(util_read_file(logp, 1 << 16, &text, &len, err, sizeof err), 0);
    json_t *up = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(up);
    assert_string_equal(tp_str(up, "prompt"), "once upon a time");
    assert_int_equal(tp_int(up, "n_predict"), 5);
    assert_true(json_is_true(json_object_get(up, "stream")));
    assert_int_equal(tp_int(up, "seed"), 42);
    assert_int_equal(tp_int(up, "top_k"), 40);
    assert_true(json_real_value(json_object_get(up, "temperature")) == 0.5);
    assert_true(json_real_value(json_object_get(up, "repeat_penalty")) > 1.09);
    assert_string_equal(json_string_value(json_array_get(json_object_get(up, "stop"), 0)), "END");
    json_decref(up);

    /* invalid requests are refused by the proxy before llama-server sees them */
    json_t *r = NULL;
    assert_int_equal(tp_call(uri, "POST", "/execute", "{\"job_id\":\"bad id\",\"prompt\":\"x\"}", &r), 400);
    assert_string_equal(tp_code(r), "INVALID_REQUEST");
    json_decref(r);
    assert_int_equal(tp_call(uri, "POST", "/execute", "{\"job_id\":\"j\",\"prompt\":\"x\",\"temperature\":3}", &r), 400);
    json_decref(r);

    /* cancel: a long job ends with error CANCELLED */
    const char *ex2 = "{\"job_id\":\"job-2\",\"prompt\":\"a b\",\"max_tokens\":400}";
    http_client_req rq2 = { .method = "POST", .url = url, .body = ex2, .timeout_ms = 30000 };
    ev.cancel_after = 3;
    snprintf(ev.cancel_url, sizeof ev.cancel_url, "%s", uri);
    assert_int_equal(http_client_sse(&rq2, on_ev, &ev, &resp, err, sizeof err), 0);
    http_resp_free(&resp);
    assert_true(ev.n < 100);
    assert_string_equal(ev.names[ev.n - 1], "error");
    assert_string_equal(tp_str(ev.data[ev.n - 1], "code"), "CANCELLED");
    events_free(&ev);

    /* stop: llama-server and the proxy go away, accounting returns to zero */
    char path[128];
    snprintf(path, sizeof path, "/v2/workers/%s/stop", id);
    assert_int_equal(tp_call(pool.url, "POST", path, "{}", NULL), 202);
    assert_true(tp_wait_status(&pool, id, "gone", 15000));
    assert_false(tp_pid_exists(pid));
    s = tp_state(&pool);
    assert_int_equal(tp_int(tp_device(s, -1), "allocated_bytes"), 0);
    json_decref(s);
    assert_int_equal(tp_call(uri, "GET", "/health", NULL, NULL), 0); /* the proxy is closed */
    assert_int_equal(tp_pool_stop(&pool), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--model")) return llama_server_double(argc, argv);
    if (!realpath("/proc/self/exe", self_path)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llamacpp_translation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
