// test-libs: llorch_net llorch_tok llorch_gguf llorch_core
/* worker-cpud end to end on stories260K (SPEC §3): ready callback, event
 * order and fields, greedy output vs the CLI, validation of every field,
 * body caps, cancel, busy, disconnect, stop strings, stop reasons, /health
 * under load, /metrics format, deadlines. One worker serves the whole file. */
#include "test_worker_util.h"

#include "common/metrics.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

static tw_cb CB;
static tw_proc W;

static int setup(void **st) {
    (void)st;
    char m[512];
    if (access(TU_MODEL(m, "stories260K.gguf"), R_OK) != 0) {
        fprintf(stderr, "skip: %s missing\n", m);
        exit(77);
    }
    tw_cb_start(&CB, 200);
    const char *extra[] = {"--model-ref", "hf:ggml-org/models@main::file=tinyllamas/stories260K.gguf",
                           "--spawn-token", "tok-123", "--ctx-size", "512", "--debug-ids", NULL};
    if (tw_spawn(&W, "stories260K.gguf", CB.port, extra, 1) != 0) {
        tw_dump_log(&W);
        fail_msg("worker did not start");
    }
    return 0;
}

static int teardown(void **st) {
    (void)st;
    tw_kill(&W);
    assert_true(WIFEXITED(W.status) && WEXITSTATUS(W.status) == 0);
    tw_cb_stop(&CB);
    return 0;
}

/* ---- ready callback ------------------------------------------------------------------ */
static void test_ready_callback(void **st) {
    (void)st;
    assert_int_equal(tw_cb_wait(&CB, 1, 10000), 0);
    json_t *b = CB.body;
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "worker_id")), "w-test");
    assert_string_equal(json_string_value(json_object_get(b, "model_ref")),
                        "hf:ggml-org/models@main::file=tinyllamas/stories260K.gguf");
    assert_string_equal(json_string_value(json_object_get(b, "uri")), W.base);
    assert_string_equal(json_string_value(json_object_get(b, "worker_type")), tw_is_cuda() ? "bespoke-cuda" : "cpu");
    assert_string_equal(json_string_value(json_object_get(b, "memory_architecture")), tw_is_cuda() ? "vram-only" : "host");
    assert_true(json_integer_value(json_object_get(b, "memory_bytes")) > 1000000);
    assert_int_equal(json_integer_value(json_object_get(b, "vram_bytes")),
                     tw_is_cuda() ? json_integer_value(json_object_get(b, "memory_bytes")) : 0);
    json_t *caps = json_object_get(b, "capabilities");
    assert_int_equal(json_array_size(caps), 1);
    assert_string_equal(json_string_value(json_array_get(caps, 0)), "text-gen");
    assert_true(json_is_array(json_object_get(b, "gpu_ids")));
    assert_int_equal(json_array_size(json_object_get(b, "gpu_ids")), tw_is_cuda() ? 1 : 0);
    assert_string_equal(json_string_value(json_object_get(b, "quant_kind")), "F32");
    assert_int_equal(json_integer_value(json_object_get(b, "context_length")), 512);
    assert_string_equal(json_string_value(json_object_get(b, "spawn_token")), "tok-123");
    /* server-first: /health answered from inside the callback handler */
    assert_int_equal(CB.health_status, 200);
    assert_non_null(strstr(CB.health_body, "\"status\":\"healthy\""));
}

/* ---- a full generation ------------------------------------------------------------------ */
static void check_order(tw_events *e) {
    assert_true(e->n >= 2);
    assert_int_equal(e->bad_json, 0);
    assert_string_equal(e->name[0], "started");
    int terminals = 0, next_i = 0;
    for (int k = 0; k < e->n; k++) {
        assert_int_equal(e->ids[k], k); /* id: <seq> from 0 */
        const char *n = e->name[k];
        if (!strcmp(n, "end") || !strcmp(n, "error")) {
            terminals++;
            assert_int_equal(k, e->n - 1);
        } else if (!strcmp(n, "token")) {
            json_t *t = json_object_get(e->data[k], "t");
            assert_true(json_is_string(t));
            assert_true(json_string_length(t) > 0);
            assert_int_equal(json_integer_value(json_object_get(e->data[k], "i")), next_i++);
        } else if (!strcmp(n, "metrics")) {
            assert_true(json_is_integer(json_object_get(e->data[k], "tokens_out")));
            assert_true(json_is_number(json_object_get(e->data[k], "tokens_per_sec")));
            assert_true(json_is_integer(json_object_get(e->data[k], "vram_bytes")));
        } else if (k != 0) {
            fail_msg("unexpected event %s", n);
        }
    }
    assert_int_equal(terminals, 1);
}

static char greedy_text[8192];

static void test_full_generation(void **st) {
    (void)st;
    tw_events e;
    tw_events_init(&e);
    http_resp r;
    const char *hdr[] = {"X-Correlation-Id: corr-42", NULL};
    int rc = tw_execute(&W, "{\"job_id\":\"full-1\",\"prompt\":\"Once upon a time\",\"max_tokens\":48,"
                            "\"temperature\":0,\"some_future_field\":{\"x\":1}}",
                        hdr, &e, &r);
    assert_int_equal(rc, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/event-stream");
    assert_string_equal(r.correlation_id, "corr-42");
    http_resp_free(&r);
    check_order(&e);
    json_t *s = e.data[0];
    assert_string_equal(json_string_value(json_object_get(s, "job_id")), "full-1");
    assert_string_equal(json_string_value(json_object_get(s, "model")),
                        "hf:ggml-org/models@main::file=tinyllamas/stories260K.gguf");
    assert_string_equal(json_string_value(json_object_get(s, "correlation_id")), "corr-42");
    assert_true(json_is_integer(json_object_get(s, "seed")));
    assert_true(json_integer_value(json_object_get(s, "tokens_in")) >= 4);
    uint64_t ms;
    const char *sa = json_string_value(json_object_get(s, "started_at"));
    assert_non_null(sa);
    assert_int_equal(sa[strlen(sa) - 1], 'Z');
    assert_int_equal(http_parse_time_ms(sa, &ms), 0);
    assert_true(ms > util_wall_ms() - 60000 && ms <= util_wall_ms());
    assert_string_equal(tw_last(&e), "end");
    json_t *end = tw_last_data(&e);
    assert_int_equal(json_integer_value(json_object_get(end, "tokens_out")), 48);
    assert_int_equal(json_integer_value(json_object_get(end, "tokens_in")), json_integer_value(json_object_get(s, "tokens_in")));
    assert_string_equal(json_string_value(json_object_get(end, "stop_reason")), "max_tokens");
    assert_true(json_is_number(json_object_get(end, "decode_time_ms")));
    assert_true(json_number_value(json_object_get(end, "first_token_ms")) > 0);
    assert_true(util_utf8_valid(tw_text(&e), strlen(tw_text(&e))));
    snprintf(greedy_text, sizeof greedy_text, "%s", tw_text(&e));
    print_message("greedy: %s\n", greedy_text);
    assert_non_null(strstr(greedy_text, "Lily")); /* real trained model: coherent story */
    tw_events_free(&e);
    /* same request again: same text (determinism), a generated seed differs */
    tw_run(&W, "{\"job_id\":\"full-2\",\"prompt\":\"Once upon a time\",\"max_tokens\":48,\"temperature\":0}", &e);
    assert_string_equal(tw_text(&e), greedy_text);
    tw_events_free(&e);
}

/* The worker's greedy output equals `llorch generate --temperature 0`.
 * Skipped only while the llorch program does not exist (it links once the
 * CLI's generate command is in); when it exists it must run and agree. */
static void test_greedy_matches_cli(void **st) {
    (void)st;
    char bin[512], m[512], cmd[2048];
    TU_BUILD(bin, "llorch");
    TU_MODEL(m, "stories260K.gguf");
    if (access(bin, X_OK) != 0) {
        print_message("%s not built: comparison skipped\n", bin);
        skip();
    }
    snprintf(cmd, sizeof cmd, "'%s' generate --model '%s' --prompt 'Once upon a time' --max-tokens 48 --temperature 0 2>/dev/null",
             bin, m);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    int st2 = pclose(f);
    print_message("cli (status %d): %s\n", st2, out);
    assert_int_equal(st2, 0);
    /* exactly the same text (the CLI may end it with a newline) */
    size_t gl = strlen(greedy_text);
    assert_true(strncmp(out, greedy_text, gl) == 0);
    assert_true(out[gl] == 0 || (out[gl] == '\n' && out[gl + 1] == 0));
}

/* The worker's greedy token ids equal llama.cpp's (fixture made with
 * node-llama-cpp, tests/fixtures/engine/greedy_stories260K.txt: per case the
 * prompt ids and 64 greedy ids), read back through --debug-ids. */
static void test_greedy_matches_llama_cpp(void **st) {
    (void)st;
    char path[512];
    TU_FIXTURE(path, "engine/greedy_stories260K.txt");
    FILE *f = fopen(path, "r");
    if (!f) {
        print_message("%s missing\n", path);
        skip();
    }
    char line[8192], prompt[256] = "";
    int n_prompt = 0, cases = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "case ", 5)) {
            snprintf(prompt, sizeof prompt, "%.200s", line + 5);
        } else if (!strncmp(line, "prompt ", 7)) {
            n_prompt = atoi(line + 7);
        } else if (!strncmp(line, "gen ", 4)) {
            char *p = line + 4, *e;
            int n = (int)strtol(p, &e, 10);
            int32_t want[256];
            for (int i = 0; i < n && i < 256; i++) want[i] = (int32_t)strtol(e, &e, 10);
            char body[512];
            snprintf(body, sizeof body, "{\"job_id\":\"ref-%d\",\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0}", cases,
                     prompt, n);
            tw_events ev;
            tw_run(&W, body, &ev);
            assert_string_equal(tw_last(&ev), "end");
            assert_int_equal(json_integer_value(json_object_get(ev.data[0], "tokens_in")), n_prompt);
            int got = 0;
            for (int k = 0; k < ev.n; k++) {
                json_t *a = json_object_get(ev.data[k], "ids");
                for (size_t q = 0; a && q < json_array_size(a); q++) {
                    int32_t id = (int32_t)json_integer_value(json_array_get(a, q));
                    if (got < n && id != want[got])
                        fail_msg("'%s': token %d is %d, llama.cpp has %d", prompt, got, id, want[got]);
                    got++;
                }
            }
            assert_int_equal(got, n);
            tw_events_free(&ev);
            cases++;
        }
    }
    fclose(f);
    print_message("%d prompts x 64 greedy tokens equal llama.cpp's\n", cases);
    assert_true(cases >= 1);
}

/* Same seed + prompt + parameters → the same tokens; another seed → another
 * sample. And neither prompts nor outputs reach the log. */
static void test_seeded_sampling_and_private_logs(void **st) {
    (void)st;
    char text[3][4096];
    const int seeds[3] = {1234, 1234, 99};
    for (int k = 0; k < 3; k++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"job_id\":\"seed-%d\",\"prompt\":\"Zebracorn secret marker\",\"max_tokens\":40,\"temperature\":1.0,"
                 "\"top_k\":40,\"top_p\":0.9,\"min_p\":0.05,\"repetition_penalty\":1.1,\"seed\":%d}",
                 k, seeds[k]);
        tw_events e;
        tw_run(&W, body, &e);
        assert_string_equal(tw_last(&e), "end");
        assert_int_equal(json_integer_value(json_object_get(e.data[0], "seed")), seeds[k]);
        snprintf(text[k], sizeof text[k], "%s", tw_text(&e));
        tw_events_free(&e);
    }
    assert_string_equal(text[0], text[1]);
    assert_string_not_equal(text[0], text[2]);
    FILE *f = fopen(W.log, "r");
    assert_non_null(f);
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "Zebracorn")) fail_msg("prompt text in the log: %s", line);
        if (strlen(text[0]) > 12 && strstr(line, text[0] + 1)) fail_msg("output text in the log: %s", line);
    }
    fclose(f);
}

/* ---- validation ------------------------------------------------------------------------- */
struct bad_case {
    const char *body;
    const char *field;
};

static void test_invalid_fields(void **st) {
    (void)st;
    char big_prompt[40000];
    memset(big_prompt, 'a', sizeof big_prompt);
    big_prompt[0] = 0;
    static char over[33000 + 64], longp[600 * 6 + 64];
    snprintf(over, sizeof over, "{\"job_id\":\"j\",\"prompt\":\"%0*d\"}", 32769, 0);
    /* fits 32 KiB but not the 512-token context */
    struct util_sb sb;
    util_sb_init_fixed(&sb, longp, sizeof longp);
    util_sb_puts(&sb, "{\"job_id\":\"j\",\"prompt\":\"");
    for (int i = 0; i < 600; i++) util_sb_puts(&sb, " cat.");
    util_sb_puts(&sb, "\"}");
    const struct bad_case cases[] = {
        {"{\"prompt\":\"hi\"}", "job_id"},
        {"{\"job_id\":\"\",\"prompt\":\"hi\"}", "job_id"},
        {"{\"job_id\":\"bad id!\",\"prompt\":\"hi\"}", "job_id"},
        {"{\"job_id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"prompt\":\"hi\"}", "job_id"},
        {"{\"job_id\":7,\"prompt\":\"hi\"}", "job_id"},
        {"{\"job_id\":\"j\"}", "prompt"},
        {"{\"job_id\":\"j\",\"prompt\":\"\"}", "prompt"},
        {"{\"job_id\":\"j\",\"prompt\":[\"hi\"]}", "prompt"},
        {over, "prompt"},
        {longp, "prompt"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"max_tokens\":0}", "max_tokens"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"max_tokens\":-5}", "max_tokens"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"max_tokens\":\"10\"}", "max_tokens"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"max_tokens\":1.5}", "max_tokens"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"max_tokens\":100000}", "max_tokens"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"temperature\":-0.1}", "temperature"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"temperature\":2.5}", "temperature"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"temperature\":\"hot\"}", "temperature"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"top_p\":1.1}", "top_p"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"top_p\":true}", "top_p"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"top_k\":-1}", "top_k"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"top_k\":513}", "top_k"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"top_k\":2.5}", "top_k"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"min_p\":1.01}", "min_p"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"min_p\":-1}", "min_p"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"repetition_penalty\":0}", "repetition_penalty"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"repetition_penalty\":2.01}", "repetition_penalty"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"repetition_penalty\":\"x\"}", "repetition_penalty"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"stop\":\"x\"}", "stop"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"stop\":[\"a\",3]}", "stop"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"stop\":[\"\"]}", "stop"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"stop\":[\"x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x\"]}", "stop"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"seed\":-1}", "seed"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"seed\":1.5}", "seed"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"seed\":\"abc\"}", "seed"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\",\"seed\":\"18446744073709551616\"}", "seed"},
        {"[1,2]", "body"},
        {"{\"job_id\":\"j\",\"prompt\":\"hi\"", "body"},
        {"{\"job_id\":\"j\",\"job_id\":\"k\",\"prompt\":\"hi\"}", "body"},
        {"", "body"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        http_resp r;
        long s = tw_post(&W, "/execute", cases[i].body, &r);
        json_t *j = json_loads(r.body, 0, NULL);
        if (s != 400 || !j || strcmp(tw_err_code(j) ? tw_err_code(j) : "", "INVALID_REQUEST") ||
            strcmp(tw_err_field(j) ? tw_err_field(j) : "", cases[i].field))
            fail_msg("case %zu (%s): status %ld body %s", i, cases[i].field, s, r.body);
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        if (strcmp(cases[i].field, "body") != 0) assert_non_null(strstr(msg, cases[i].field)); /* named in the message */
        assert_non_null(json_object_get(json_object_get(j, "error"), "correlation_id"));
        json_decref(j);
        http_resp_free(&r);
    }
    /* boundary values are accepted: seed as the uint64 max string, top_k = vocab */
    tw_events e;
    tw_events_init(&e);
    http_resp r;
    assert_int_equal(tw_execute(&W, "{\"job_id\":\"edge_1\",\"prompt\":\"hi\",\"max_tokens\":1,\"top_k\":512,\"top_p\":0,"
                                    "\"min_p\":1,\"repetition_penalty\":2,\"temperature\":2,\"seed\":\"18446744073709551615\",\"stop\":null}",
                                NULL, &e, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(tw_last(&e), "end");
    /* above 2^63-1 the seed is echoed as a decimal string, as it was sent */
    assert_string_equal(json_string_value(json_object_get(e.data[0], "seed")), "18446744073709551615");
    http_resp_free(&r);
    tw_events_free(&e);
    /* X-Deadline */
    const char *badd[] = {"X-Deadline: tomorrow", NULL};
    tw_events_init(&e);
    tw_execute(&W, "{\"job_id\":\"d\",\"prompt\":\"hi\"}", badd, &e, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"field\":\"X-Deadline\""));
    http_resp_free(&r);
    const char *past[] = {"X-Deadline: 2020-01-01T00:00:00Z", NULL};
    tw_execute(&W, "{\"job_id\":\"d\",\"prompt\":\"hi\"}", past, &e, &r);
    assert_int_equal(r.status, 504);
    assert_non_null(strstr(r.body, "DEADLINE_EXCEEDED"));
    http_resp_free(&r);
    tw_events_free(&e);
}

/* A 10 MB body is refused from its Content-Length; malformed JSON too; the
 * worker stays healthy and serves the next job. */
static void test_malformed_and_huge(void **st) {
    (void)st;
    char *big = malloc(10 * 1000 * 1000);
    memset(big, ' ', 10 * 1000 * 1000);
    memcpy(big, "{\"job_id\":\"big\",\"prompt\":\"", 26);
    char url[256], err[256];
    snprintf(url, sizeof url, "%s/execute", W.base);
    http_client_req rq = {.url = url, .body = big, .body_len = 10 * 1000 * 1000, .timeout_ms = 10000};
    http_resp r;
    int rc = http_client_do(&rq, &r, err, sizeof err);
    /* curl may see the early 413 or a reset while still sending: never a 200 */
    print_message("10 MB body: rc %d status %ld\n", rc, r.status);
    assert_true(rc != 0 || r.status == 413);
    http_resp_free(&r);
    free(big);
    assert_int_equal(tw_post(&W, "/execute", "{{{{", &r), 400);
    http_resp_free(&r);
    assert_int_equal(tw_post(&W, "/execute", "\xff\xfe{\"job_id\":1}", &r), 400);
    http_resp_free(&r);
    assert_int_equal(tw_get(&W, "/health", &r), 200);
    assert_non_null(strstr(r.body, "\"busy\":false"));
    http_resp_free(&r);
    assert_int_equal(tw_get(&W, "/nope", &r), 404);
    http_resp_free(&r);
    tw_events e;
    tw_run(&W, "{\"job_id\":\"after\",\"prompt\":\"hi\",\"max_tokens\":3}", &e);
    assert_string_equal(tw_last(&e), "end");
    tw_events_free(&e);
}

/* ---- cancel, busy, disconnect --------------------------------------------------------------- */
struct hookctx {
    int done;
    uint64_t cancel_ns;
    long cancel_status, busy_status;
    char busy_code[64];
    double health_max_ms;
    int health_busy_ok;
    int health_n;
};

/* 1 once, at the job's first token event: where a hook acts */
static int first_token(struct hookctx *h, const char *name) {
    if (strcmp(name, "token") || h->done) return 0;
    h->done = 1;
    return 1;
}

static int hook_cancel(tw_events *e, const char *name, json_t *d) {
    (void)d;
    struct hookctx *h = e->user;
    if (!first_token(h, name)) return 0;
    http_resp r;
    h->cancel_ns = util_now_ns();
    h->cancel_status = tw_post(&W, "/cancel", "{\"job_id\":\"long-1\"}", &r);
    http_resp_free(&r);
    return 0;
}

static const char *LONG_JOB = "{\"job_id\":\"long-1\",\"prompt\":\"Once upon a time\",\"max_tokens\":500,\"temperature\":0}";

/* runs LONG_JOB to its terminal event with hook on every event (h, zeroed
 * here, its context); e keeps the events (the caller frees them) */
static void run_long_job(tw_events *e, struct hookctx *h, tw_hook hook) {
    tw_events_init(e);
    memset(h, 0, sizeof *h);
    e->hook = hook;
    e->user = h;
    http_resp r;
    assert_int_equal(tw_execute(&W, LONG_JOB, NULL, e, &r), 0);
    http_resp_free(&r);
}

static void test_cancel(void **st) {
    (void)st;
    tw_events e;
    struct hookctx h;
    run_long_job(&e, &h, hook_cancel);
    http_resp r;
    assert_int_equal(h.cancel_status, 202);
    check_order(&e);
    assert_string_equal(tw_last(&e), "error");
    assert_string_equal(json_string_value(json_object_get(tw_last_data(&e), "code")), "CANCELLED");
    assert_true(json_is_false(json_object_get(tw_last_data(&e), "retriable")));
    double ms = (double)(e.terminal_ns - h.cancel_ns) / 1e6;
    /* the outcome: the 500-token job ended CANCELLED (asserted above). Its
     * latency (SPEC: 100 ms) is printed, not asserted: timing belongs in
     * benchmarks, and a loaded 2-core CI machine under ASan is not one */
    print_message("cancel → error CANCELLED in %.2f ms\n", ms);
    tw_events_free(&e);
    /* idempotent; unknown job; malformed */
    assert_int_equal(tw_post(&W, "/cancel", "{\"job_id\":\"long-1\"}", &r), 202);
    http_resp_free(&r);
    assert_int_equal(tw_post(&W, "/cancel", "{\"job_id\":\"never-was\"}", &r), 202);
    assert_non_null(strstr(r.body, "not_running"));
    http_resp_free(&r);
    assert_int_equal(tw_post(&W, "/cancel", "{}", &r), 400);
    assert_non_null(strstr(r.body, "\"field\":\"job_id\""));
    http_resp_free(&r);
    /* an id outside the /execute rule is refused, never echoed (it would forge JSON) */
    assert_int_equal(tw_post(&W, "/cancel", "{\"job_id\":\"x\\\",\\\"status\\\":\\\"cancelling\"}", &r), 400);
    assert_non_null(strstr(r.body, "\"field\":\"job_id\""));
    http_resp_free(&r);
    /* the next job runs */
    tw_run(&W, "{\"job_id\":\"next\",\"prompt\":\"hi\",\"max_tokens\":4}", &e);
    assert_string_equal(tw_last(&e), "end");
    tw_events_free(&e);
}

static int hook_busy(tw_events *e, const char *name, json_t *d) {
    (void)d;
    struct hookctx *h = e->user;
    if (!first_token(h, name)) return 0;
    http_resp r;
    h->busy_status = tw_post(&W, "/execute", "{\"job_id\":\"second\",\"prompt\":\"hi\"}", &r);
    json_t *j = json_loads(r.body, 0, NULL);
    snprintf(h->busy_code, sizeof h->busy_code, "%s", j && tw_err_code(j) ? tw_err_code(j) : "");
    json_decref(j);
    http_resp_free(&r);
    /* /health while the job runs: fast and busy */
    h->health_busy_ok = 1;
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = util_now_ns();
        tw_get(&W, "/health", &r);
        double ms = (double)(util_now_ns() - t0) / 1e6;
        if (ms > h->health_max_ms) h->health_max_ms = ms;
        if (!strstr(r.body, "\"busy\":true")) h->health_busy_ok = 0;
        h->health_n++;
        http_resp_free(&r);
    }
    tw_post(&W, "/cancel", "{\"job_id\":\"long-1\"}", &r);
    http_resp_free(&r);
    return 0;
}

static void test_busy_and_health_under_load(void **st) {
    (void)st;
    tw_events e;
    struct hookctx h;
    run_long_job(&e, &h, hook_busy);
    assert_int_equal(h.busy_status, 503);
    assert_string_equal(h.busy_code, "WORKER_BUSY");
    assert_int_equal(h.health_n, 20);
    assert_true(h.health_busy_ok);
    /* every call answered busy while the job ran (above); the latency (SPEC:
     * < 10 ms) is printed, not asserted (see test_cancel) */
    print_message("/health during a job: max %.2f ms over 20 calls\n", h.health_max_ms);
    assert_string_equal(tw_last(&e), "error");
    tw_events_free(&e);
}

static int hook_abort(tw_events *e, const char *name, json_t *d) {
    (void)e;
    (void)d;
    return strcmp(name, "token") == 0; /* hang up at the first token */
}

static void test_disconnect_frees_worker(void **st) {
    (void)st;
    tw_events e;
    tw_events_init(&e);
    e.hook = hook_abort;
    http_resp r;
    assert_int_equal(tw_execute(&W, LONG_JOB, NULL, &e, &r), HTTPC_E_ABORTED);
    uint64_t t0 = util_now_ns();
    http_resp_free(&r);
    tw_events_free(&e);
    int idle = 0;
    while (util_now_ns() - t0 < 5000000000ull) {
        tw_get(&W, "/health", &r);
        idle = strstr(r.body, "\"busy\":false") != NULL;
        http_resp_free(&r);
        if (idle) break;
        usleep(2000);
    }
    double ms = (double)(util_now_ns() - t0) / 1e6;
    print_message("disconnect → worker idle in %.2f ms\n", ms);
    assert_true(idle); /* within the loop's 5 s guard; the latency is printed, not asserted */
    assert_int_equal(tw_run(&W, "{\"job_id\":\"after-dc\",\"prompt\":\"hi\",\"max_tokens\":4}", &e), 200);
    assert_string_equal(tw_last(&e), "end");
    tw_events_free(&e);
    /* the log says why */
    FILE *f = fopen(W.log, "r");
    char line[2048];
    int seen = 0;
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "\"event\":\"cancel\"") && strstr(line, "client_disconnected")) seen = 1;
    if (f) fclose(f);
    assert_true(seen);
}

/* ---- stop strings and reasons ------------------------------------------------------------------ */
static void run_stop(const char *stop_json, const char *expect_text) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"job_id\":\"stop-1\",\"prompt\":\"Once upon a time\",\"max_tokens\":48,\"temperature\":0,\"stop\":%s}",
             stop_json);
    tw_events e;
    tw_run(&W, body, &e);
    check_order(&e);
    assert_string_equal(tw_last(&e), "end");
    assert_string_equal(json_string_value(json_object_get(tw_last_data(&e), "stop_reason")), "stop");
    assert_string_equal(tw_text(&e), expect_text);
    tw_events_free(&e);
}

static void test_stop_strings(void **st) {
    (void)st;
    assert_true(strlen(greedy_text) > 40);
    /* a stop string spanning several tokens, inside a word ("irl n" of
     * "girl named"), and one at a token boundary */
    const char *stops[] = {"irl n", "Lily", " was"};
    for (int s = 0; s < 3; s++) {
        const char *at = strstr(greedy_text, stops[s]);
        if (!at) fail_msg("'%s' not in greedy text", stops[s]);
        char expect[8192];
        snprintf(expect, sizeof expect, "%.*s", (int)(at - greedy_text), greedy_text);
        char sj[128];
        snprintf(sj, sizeof sj, "[\"zzzz\",\"%s\"]", stops[s]);
        run_stop(sj, expect);
    }
    /* a stop string that never matches but whose prefix appears: all text comes out */
    tw_events e;
    tw_run(&W,
           "{\"job_id\":\"s2\",\"prompt\":\"Once upon a time\",\"max_tokens\":48,\"temperature\":0,"
           "\"stop\":[\"Lily!!\",\" there was a little boy\"]}",
           &e);
    assert_string_equal(json_string_value(json_object_get(tw_last_data(&e), "stop_reason")), "max_tokens");
    assert_string_equal(tw_text(&e), greedy_text);
    tw_events_free(&e);
}

/* eos: a copy of stories260K whose EOS is the "." token, written for this test */
static void make_eos_model(const char *out_path) {
    char m[512], err[256];
    TU_MODEL(m, "stories260K.gguf");
    gguf_ctx *g;
    assert_int_equal(gguf_open(m, &g, err, sizeof err), 0);
    tok_vocab *v;
    assert_int_equal(tok_load_gguf(g, &v, err, sizeof err), 0);
    int32_t dot = tok_find(v, ".");
    assert_true(dot > 2);
    gguf_writer *w = gguf_writer_new();
    for (int64_t i = 0; i < gguf_n_kv(g); i++) assert_int_equal(gguf_w_copy_kv(w, g, i), 0);
    assert_int_equal(gguf_w_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)dot), 0);
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        assert_true(gguf_w_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL) >= 0);
    }
    assert_int_equal(gguf_w_write(w, out_path, err, sizeof err), 0);
    gguf_writer_free(w);
    tok_free(v);
    gguf_close(g);
}

static void test_stop_reason_eos(void **st) {
    (void)st;
    char path[512];
    snprintf(path, sizeof path, "%s/stories260K-eos-dot-%d.gguf", tu_env("LLORCH_BUILD_DIR", "."), (int)getpid());
    make_eos_model(path);
    tw_proc p;
    const char *extra[] = {NULL};
    int rc = tw_spawn(&p, path, 0, extra, 1);
    if (rc) tw_dump_log(&p);
    assert_int_equal(rc, 0);
    tw_events e;
    tw_run(&p, "{\"job_id\":\"eos-1\",\"prompt\":\"Once upon a time\",\"max_tokens\":100,\"temperature\":0}", &e);
    tw_kill(&p);
    unlink(path);
    check_order(&e);
    assert_string_equal(json_string_value(json_object_get(tw_last_data(&e), "stop_reason")), "eos");
    /* the greedy text up to (not including) the first "." */
    const char *dot = strchr(greedy_text, '.');
    assert_non_null(dot);
    char expect[8192];
    snprintf(expect, sizeof expect, "%.*s", (int)(dot - greedy_text), greedy_text);
    assert_string_equal(tw_text(&e), expect);
    assert_true(json_integer_value(json_object_get(tw_last_data(&e), "tokens_out")) < 100);
    tw_events_free(&e);
    assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0);
}

/* ---- deadline -------------------------------------------------------------------------------- */
/* 20 ms is far less than 480 tokens take on any CPU: the job must end with
 * DEADLINE_EXCEEDED (or be refused 504 if it passed before acceptance). */
static void test_deadline_mid_job(void **st) {
    (void)st;
    char hdr[64];
    snprintf(hdr, sizeof hdr, "X-Deadline: %llu", (unsigned long long)(util_wall_ms() + 20));
    const char *h[] = {hdr, NULL};
    tw_events e;
    tw_events_init(&e);
    http_resp r;
    assert_int_equal(tw_execute(&W, "{\"job_id\":\"dl\",\"prompt\":\"Once upon a time\",\"max_tokens\":480,\"temperature\":0}",
                                h, &e, &r), 0);
    if (r.status == 504) {
        assert_non_null(strstr(r.body, "DEADLINE_EXCEEDED"));
        print_message("deadline passed before acceptance (loaded machine)\n");
    } else {
        assert_int_equal(r.status, 200);
        check_order(&e);
        assert_string_equal(tw_last(&e), "error");
        assert_string_equal(json_string_value(json_object_get(tw_last_data(&e), "code")), "DEADLINE_EXCEEDED");
    }
    http_resp_free(&r);
    tw_events_free(&e);
}

/* ---- metrics --------------------------------------------------------------------------------- */
static void test_metrics(void **st) {
    (void)st;
    http_resp r;
    assert_int_equal(tw_get(&W, "/metrics", &r), 200);
    assert_non_null(strstr(r.content_type, "text/plain"));
    char err[256];
    int n = metrics_text_validate(r.body, err, sizeof err);
    if (n < 0) fail_msg("%s\n%s", err, r.body);
    const char *need[] = {
        "# TYPE worker_requests_total counter",
        "worker_requests_total{component=\"worker\",outcome=\"ok\"} ",
        "worker_requests_total{component=\"worker\",outcome=\"invalid\"} ",
        "worker_requests_total{component=\"worker\",outcome=\"cancelled\"} ",
        "worker_requests_total{component=\"worker\",outcome=\"busy\"} ",
        "# TYPE worker_tokens_generated_total counter",
        "# TYPE worker_inference_duration_ms histogram",
        "worker_inference_duration_ms_bucket{component=\"worker\",le=\"+Inf\"} ",
        "worker_inference_duration_ms_count{component=\"worker\"} ",
        "worker_vram_bytes{component=\"worker\"} ",
        "# TYPE worker_uptime_seconds gauge",
    };
    for (size_t i = 0; i < sizeof need / sizeof *need; i++)
        if (!strstr(r.body, need[i])) fail_msg("missing '%s' in\n%s", need[i], r.body);
    double toks = 0;
    const char *t = strstr(r.body, "worker_tokens_generated_total{component=\"worker\"} ");
    sscanf(t + strlen("worker_tokens_generated_total{component=\"worker\"} "), "%lf", &toks);
    assert_true(toks >= 96); /* at least the two 48-token greedy runs */
    http_resp_free(&r);
    /* /health has every SPEC field */
    assert_int_equal(tw_get(&W, "/health", &r), 200);
    json_t *j = json_loads(r.body, 0, NULL);
    const char *fields[] = {"status", "resident", "worker_id", "worker_type", "memory_architecture", "model",
                            "model_ref", "quant_kind", "tokenizer_kind", "vocab_size", "context_length",
                            "vram_bytes_used", "busy", "uptime_seconds", "sm", "cuda_runtime_version"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (!json_object_get(j, fields[i])) fail_msg("/health lacks %s: %s", fields[i], r.body);
    assert_true(json_is_true(json_object_get(j, "resident")));
    assert_string_equal(json_string_value(json_object_get(j, "tokenizer_kind")), "gguf-spm");
    assert_int_equal(json_integer_value(json_object_get(j, "vocab_size")), 512);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "stories260K.gguf");
    if (tw_is_cuda()) { /* device facts on the CUDA worker */
        assert_true(json_integer_value(json_object_get(j, "sm")) >= 70);
        assert_true(json_integer_value(json_object_get(j, "cuda_runtime_version")) > 0);
        assert_true(json_integer_value(json_object_get(j, "vram_bytes_used")) > 1000000);
        print_message("health on the GPU: %s\n", r.body);
    } else {
        assert_true(json_is_null(json_object_get(j, "sm")));
        assert_int_equal(json_integer_value(json_object_get(j, "vram_bytes_used")), 0);
    }
    json_decref(j);
    http_resp_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_callback),
        cmocka_unit_test(test_full_generation),
        cmocka_unit_test(test_greedy_matches_cli),
        cmocka_unit_test(test_greedy_matches_llama_cpp),
        cmocka_unit_test(test_seeded_sampling_and_private_logs),
        cmocka_unit_test(test_invalid_fields),
        cmocka_unit_test(test_malformed_and_huge),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_busy_and_health_under_load),
        cmocka_unit_test(test_disconnect_frees_worker),
        cmocka_unit_test(test_stop_strings),
        cmocka_unit_test(test_stop_reason_eos),
        cmocka_unit_test(test_deadline_mid_job),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
