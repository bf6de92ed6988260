// test-libs: llorch_orchcore llorch_config llorch_core PkgConfig::JANSSON
/* The OpenAI chat endpoint's relay of a GPT-OSS (harmony) reply: a recorded
 * worker event stream (token events as worker-cpud sends them for a
 * gpt-oss reply, whose harmony control tokens render as text) goes through
 * orch_openai_event (src/orch/openai.c, compiled in: the orchestrator is a
 * program, not a library) for a streamed and a non-streamed client. The
 * bytes the client would receive are captured at http_stream_write and
 * checked exactly: analysis text in reasoning_content, final text in
 * content, no control token anywhere, usage and finish_reason kept. Also the
 * request side: reasoning_effort and tools, template chosen by the model's
 * architecture as a worker reported it. */
#include "testutil.h"

#include "orch/openai.c"

/* ---- the client's bytes ------------------------------------------------------ */
static struct util_sb g_out;
struct http_stream { int unused; };
int http_stream_write(http_stream *st, const char *data, size_t n) {
    (void)st;
    util_sb_putn(&g_out, data, n);
    return 0;
}

/* ---- stubs for what the relay path never calls ------------------------------ */
void t_stub(void);
void t_stub(void) {
    fprintf(stderr, "test_orch_openai_harmony: a stub was called\n");
    abort();
}
#define T_ALIAS(sym) __asm__(".globl " #sym "\n.set " #sym ", t_stub\n")
T_ALIAS(http_req_correlation_id);
T_ALIAS(http_req_body);
T_ALIAS(http_respond_error);
T_ALIAS(http_respond_stream);
T_ALIAS(http_respond_json);
T_ALIAS(http_server_route);
T_ALIAS(orch_client_auth);
T_ALIAS(orch_respond_adm_error);
T_ALIAS(orch_list_begin);
T_ALIAS(orch_list_end);
T_ALIAS(orch_submit);
T_ALIAS(orch_job_subscribe);
T_ALIAS(orch_job_finish);
T_ALIAS(orch_wake);
T_ALIAS(orch_job_client_gone);

/* a gpt-oss reply, one event per token as worker-cpud streams it (<|return|>
 * is end-of-generation: not sent) */
static const char *const reply[] = { "<|channel|>", "analysis", "<|message|>", "User", " says", " hi", ".",
                                     "<|end|>", "<|start|>", "assistant", "<|channel|>", "final", "<|message|>",
                                     "Hello", "!", NULL };

static void run(struct osub *s) {
    struct ojob j;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "job1");
    util_sb_init(&g_out);
    for (int i = 0; reply[i]; i++) {
        struct util_sb d;
        util_sb_init(&d);
        util_sb_puts(&d, "{\"t\":");
        util_sb_json_str(&d, reply[i]);
        util_sb_printf(&d, ",\"i\":%d}", i);
        assert_int_equal(orch_openai_event(NULL, &j, s, "token", d.buf), 0);
        util_sb_free(&d);
    }
    assert_int_equal(orch_openai_event(NULL, &j, s, "end", "{\"stop_reason\":\"eos\",\"tokens_in\":90,\"tokens_out\":15}"),
                     1);
}

static struct osub sub(enum osub_kind k) {
    struct osub s = { .kind = k, .chat = 1, .created_s = 7, .harmony = 1 };
    snprintf(s.model, sizeof s.model, "oss");
    util_sb_init(&s.text);
    util_sb_init(&s.reasoning);
    harmony_init(&s.hp);
    return s;
}

#define HEAD "data: {\"id\":\"chatcmpl-job1\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"oss\","

static void test_stream(void **st) {
    (void)st;
    struct osub s = sub(OSUB_OAI_STREAM);
    run(&s);
    assert_string_equal(
        g_out.buf,
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"User\"},"
             "\"finish_reason\":null}]}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\" says\"},\"finish_reason\":null}]}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\" hi\"},\"finish_reason\":null}]}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\".\"},\"finish_reason\":null}]}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":null}]}\n\n"
        HEAD "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
        "data: [DONE]\n\n");
    util_sb_free(&g_out);
    util_sb_free(&s.text);
    util_sb_free(&s.reasoning);
}

static void test_json(void **st) {
    (void)st;
    struct osub s = sub(OSUB_OAI_JSON);
    run(&s);
    assert_string_equal(g_out.buf,
                        "{\"id\":\"chatcmpl-job1\",\"object\":\"chat.completion\",\"created\":7,\"model\":\"oss\","
                        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\","
                        "\"reasoning_content\":\"User says hi.\"},\"finish_reason\":\"stop\"}],"
                        "\"usage\":{\"prompt_tokens\":90,\"completion_tokens\":15,\"total_tokens\":105}}");
    util_sb_free(&g_out);
    util_sb_free(&s.text);
    util_sb_free(&s.reasoning);
    /* a model that is not harmony keeps its text as is */
    s = sub(OSUB_OAI_JSON);
    s.harmony = 0;
    run(&s);
    assert_non_null(strstr(g_out.buf, "\"content\":\"<|channel|>analysis<|message|>User says hi.<|end|>"));
    assert_null(strstr(g_out.buf, "reasoning_content"));
    util_sb_free(&g_out);
    util_sb_free(&s.text);
    util_sb_free(&s.reasoning);
}

/* ---- request side ------------------------------------------------------------- */
static struct orch O;

static int map(const char *body, enum chat_template *tm, char **prompt, struct adm_error *e) {
    json_t *in = json_loads(body, 0, NULL);
    assert_non_null(in);
    json_t *task = NULL;
    int stream;
    char model[JOB_MODEL_REF_MAX + 1];
    memset(e, 0, sizeof *e);
    int rc = map_request(&O, in, 1, &task, &stream, model, sizeof model, tm, e);
    json_decref(in);
    *prompt = rc == 0 ? strdup(json_string_value(json_object_get(task, "prompt"))) : NULL;
    json_decref(task);
    return rc;
}

static void test_request(void **st) {
    (void)st;
    static const struct cfg_opt co[] = { { .key = "models", .type = CFG_TREE } };
    char *argv[] = { "t", NULL }, *envp[] = { NULL };
    char err[256];
    struct cfg *c;
    /* "moe": a ref that names no family; "pinned": the same file with the operator's template */
    assert_int_equal(cfg_load_text(co, 1,
                                   "models:\n  moe: {model_ref: 'file:/m/tiny-moe.gguf', context_length: 512}\n"
                                   "  pinned: {model_ref: 'file:/m/tiny-moe.gguf', context_length: 512, "
                                   "chat_template: chatml}\n",
                                   1, argv, envp, NULL, &c, err, sizeof err),
                     0);
    assert_int_equal(cat_from_tree(cfg_tree(c, "models"), &O.cat, err, sizeof err), 0);
    cfg_free(c);
    struct reg_opts ro = { .heartbeat_interval_ms = 15000, .missed_threshold = 3, .max_clock_skew_ms = 30000 };
    assert_int_equal(reg_new(&ro, &O.reg), 0);
    enum chat_template tm;
    char *p;
    struct adm_error e;
    const char *body = "{\"model\":\"moe\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    /* no worker has reported the architecture: the ref decides (chatml) */
    assert_int_equal(map(body, &tm, &p, &e), 0);
    assert_int_equal(tm, CHAT_CHATML);
    free(p);
    /* a pool reports a worker of that file with general.architecture gpt-oss */
    struct reg_pool pool = { .id = "p1", .endpoint = "http://127.0.0.1:9" };
    int64_t now = (int64_t)util_wall_ms();
    assert_int_equal(reg_pool_register(O.reg, &pool, now, err, sizeof err), 0);
    struct reg_worker w = { .id = "w1", .pool_id = "p1", .model_ref = "file:/m/tiny-moe.gguf", .arch = "gpt-oss",
                            .status = REG_W_STARTING };
    assert_int_equal(reg_worker_upsert(O.reg, &w, now), 0);
    assert_int_equal(map(body, &tm, &p, &e), 0);
    assert_int_equal(tm, CHAT_HARMONY);
    assert_non_null(strstr(p, "\nReasoning: medium\n"));
    assert_true(strlen(p) > 20 && !strcmp(p + strlen(p) - 18, "<|start|>assistant"));
    free(p);
    /* ... unless the operator chose the template */
    assert_int_equal(map("{\"model\":\"pinned\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", &tm, &p, &e), 0);
    assert_int_equal(tm, CHAT_CHATML);
    free(p);
    /* reasoning_effort sets the Reasoning line; a bad one is refused naming the field */
    assert_int_equal(map("{\"model\":\"moe\",\"reasoning_effort\":\"high\",\"messages\":[{\"role\":\"developer\","
                         "\"content\":\"Rhyme.\"},{\"role\":\"user\",\"content\":\"Hi\"}]}",
                         &tm, &p, &e),
                     0);
    assert_non_null(strstr(p, "\nReasoning: high\n"));
    assert_non_null(strstr(p, "<|start|>developer<|message|># Instructions\n\nRhyme.\n\n<|end|>"));
    free(p);
    assert_true(map("{\"model\":\"moe\",\"reasoning_effort\":\"max\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                    &tm, &p, &e) < 0);
    assert_string_equal(e.field, "reasoning_effort");
    /* tools are refused (no tool calling); an empty list is fine */
    assert_true(map("{\"model\":\"moe\",\"tools\":[{\"type\":\"function\"}],\"messages\":[{\"role\":\"user\","
                    "\"content\":\"x\"}]}",
                    &tm, &p, &e) < 0);
    assert_string_equal(e.field, "tools");
    assert_non_null(strstr(e.message, "tool calling is not supported"));
    assert_int_equal(map("{\"model\":\"moe\",\"tools\":[],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &tm,
                         &p, &e),
                     0);
    free(p);
    /* a tool message is refused with the roles we take */
    assert_true(map("{\"model\":\"moe\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", &tm, &p, &e) < 0);
    assert_string_equal(e.field, "messages");
    assert_non_null(strstr(e.message, "developer"));
    reg_free(O.reg);
    cat_free(O.cat);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
