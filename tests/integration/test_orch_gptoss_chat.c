// test-libs: llorch_orchcore llorch_net llorch_core PkgConfig::JANSSON PkgConfig::SQLITE PkgConfig::MHD
/* GPT-OSS on the OpenAI chat endpoint through the whole system: real
 * orchestratord, the real pool-managerd (host inventory) and the
 * worker-cpud it spawns, on a tiny synthetic gpt-oss model (made by
 * `llorch gguf make --arch gpt-oss`) whose file name names no family and
 * whose catalog entry sets no chat_template. So the harmony template can
 * only come from the architecture the pool read in preflight and reported.
 *
 * Checked: the chat request is rendered as harmony (the same prompt sent to
 * /v1/completions gives the same prompt_tokens and the same greedy text);
 * the chat reply is that text split by the harmony parser (the random model
 * speaks no harmony, so this exercises the wiring; channel splitting itself
 * is in tests/unit/test_orch_harmony.c and test_orch_openai_harmony.c);
 * the streamed deltas add up to the non-streamed message; reasoning_effort
 * changes the prompt; tools are refused. */
#include "test_orch_util.h"

#include "orch/core/chat.h"
#include "orch/core/harmony.h"

#include <time.h>

static int setup(void **s) {
    (void)s;
    return orch_util_setup("harmony");
}
static int teardown(void **s) {
    (void)s;
    return orch_util_teardown();
}

struct split {
    struct util_sb r, c;
};
static void to_split(void *ctx, int reasoning, const char *t, size_t n) {
    struct split *x = ctx;
    util_sb_putn(reasoning ? &x->r : &x->c, t, n);
}
static const char *sbs(const struct util_sb *sb) { return sb->len ? sb->buf : ""; }

/* the SSE body of a streamed chat: concatenated deltas; 1 when it ended with [DONE] */
static int read_stream(const char *body, struct split *x, char *finish, size_t fcap) {
    int done = 0, roles = 0;
    for (const char *p = strstr(body, "data: "); p; p = strstr(p + 1, "data: ")) {
        const char *e = strstr(p, "\n\n");
        if (!e) break;
        if (!strncmp(p + 6, "[DONE]", 6)) { done = 1; break; }
        json_t *j = json_loadb(p + 6, (size_t)(e - p - 6), 0, NULL);
        assert_non_null(j);
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        json_t *d = json_object_get(c0, "delta");
        if (json_object_get(d, "role")) roles++;
        const char *t;
        if ((t = json_string_value(json_object_get(d, "content")))) util_sb_puts(&x->c, t);
        if ((t = json_string_value(json_object_get(d, "reasoning_content")))) util_sb_puts(&x->r, t);
        if (json_is_string(json_object_get(c0, "finish_reason")))
            snprintf(finish, fcap, "%s", json_string_value(json_object_get(c0, "finish_reason")));
        json_decref(j);
    }
    assert_true(roles <= 1);
    return done;
}

static void test_gptoss_chat_through_the_system(void **s) {
    (void)s;
    char llorch[PATH_MAX], vocab[256], model[300], cmd[2 * PATH_MAX];
    if (!have_bins(1) || build_bin(llorch, sizeof llorch, "llorch") < 0) skip();
    TU_MODEL(vocab, "stories260K.gguf");
    snprintf(model, sizeof model, "%s/tiny-moe.gguf", DIR_);
    snprintf(cmd, sizeof cmd,
             "'%s' gguf make --preset tiny --arch gpt-oss --swa 16 --type Q8_0 --vocab-from '%s' --seed 1 -o '%s' "
             ">/dev/null 2>&1",
             llorch, vocab, model);
    assert_int_equal(system(cmd), 0);
    /* the placement keeps a worker loaded: the architecture is known before the first chat */
    FILE *cf = fopen(CFGF, "w");
    fprintf(cf, "models:\n  moe:\n    model_ref: 'file:%s'\n    context_length: 512\n    memory_bytes: 60MB\n"
                "    placements: [{pool_id: box1, gpu_id: -1}]\n"
                "heartbeat: {interval_ms: 300}\nauth: {pool_tokens: [pt]}\ndeployment: lab\n", model);
    fclose(cf);
    struct proc o;
    assert_int_equal(start_orch(&o, "orch.log", NULL), 0);
    struct pool P;
    start_host_pool(&P, o.base, "box1", 300);
    int ready = 0;
    for (int i = 0; i < 1500 && !ready; i++) {
        char *wk = NULL;
        if (req("GET", o.base, "/v2/workers", NULL, &wk) == 200 && strstr(wk, "\"status\":\"ready\"")) ready = 1;
        free(wk);
        if (!ready) usleep(20000);
    }
    if (!ready) { dump(&o); dump_file(P.log); fail_msg("the placed gpt-oss worker never became ready"); }

    /* the chat, not streamed */
    const char *msgs = "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":"
                       "\"Hi\"}],\"max_tokens\":24,\"temperature\":0,\"seed\":1";
    char body[1024];
    snprintf(body, sizeof body, "{\"model\":\"moe\",\"reasoning_effort\":\"low\",%s}", msgs);
    char *resp = NULL;
    assert_int_equal(req("POST", o.base, "/v1/chat/completions", body, &resp), 200);
    json_t *cj = json_loads(resp, 0, NULL);
    free(resp);
    json_t *msg = json_object_get(json_array_get(json_object_get(cj, "choices"), 0), "message");
    assert_non_null(json_string_value(json_object_get(msg, "content")));
    long long chat_pt = json_integer_value(json_object_get(json_object_get(cj, "usage"), "prompt_tokens"));

    /* the same conversation rendered as harmony, sent as a completion */
    static const struct chat_msg cm[] = { { "system", "Be brief." }, { "user", "Hi" } };
    char today[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(today, sizeof today, "%Y-%m-%d", &tm);
    struct chat_opts co = { .reasoning = CHAT_REASONING_LOW, .date = today };
    struct util_sb pr;
    util_sb_init(&pr);
    assert_int_equal(chat_render_opts(CHAT_HARMONY, cm, 2, &co, &pr), 0);
    json_t *cb = json_pack("{s:s, s:s, s:i, s:i, s:i}", "model", "moe", "prompt", pr.buf, "max_tokens", 24,
                           "temperature", 0, "seed", 1);
    char *cbs = json_dumps(cb, JSON_COMPACT);
    assert_int_equal(req("POST", o.base, "/v1/completions", cbs, &resp), 200);
    free(cbs);
    json_decref(cb);
    util_sb_free(&pr);
    json_t *pj = json_loads(resp, 0, NULL);
    free(resp);
    const char *raw = json_string_value(json_object_get(json_array_get(json_object_get(pj, "choices"), 0), "text"));
    assert_non_null(raw);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(pj, "usage"), "prompt_tokens")), chat_pt);
    /* harmony's system preamble alone is far more than "Be brief." + "Hi" in any other template */
    assert_true(chat_pt > 100);

    /* the chat reply is the raw text through the harmony parser */
    struct split want = { 0 };
    util_sb_init(&want.r);
    util_sb_init(&want.c);
    struct harmony_parser hp;
    harmony_init(&hp);
    harmony_feed(&hp, raw, strlen(raw), to_split, &want);
    harmony_finish(&hp, to_split, &want);
    assert_string_equal(json_string_value(json_object_get(msg, "content")), sbs(&want.c));
    if (want.r.len) assert_string_equal(json_string_value(json_object_get(msg, "reasoning_content")), sbs(&want.r));
    else assert_null(json_object_get(msg, "reasoning_content"));

    /* streamed: the deltas add up to the same message */
    snprintf(body, sizeof body, "{\"model\":\"moe\",\"reasoning_effort\":\"low\",\"stream\":true,%s}", msgs);
    assert_int_equal(req("POST", o.base, "/v1/chat/completions", body, &resp), 200);
    struct split got = { 0 };
    util_sb_init(&got.r);
    util_sb_init(&got.c);
    char finish[16] = "";
    assert_true(read_stream(resp, &got, finish, sizeof finish));
    free(resp);
    assert_string_equal(sbs(&got.c), sbs(&want.c));
    assert_string_equal(sbs(&got.r), sbs(&want.r));
    assert_string_equal(finish, json_string_value(json_object_get(json_array_get(json_object_get(cj, "choices"), 0),
                                                                  "finish_reason")));

    /* a bad reasoning_effort and tools are refused, naming the field */
    snprintf(body, sizeof body, "{\"model\":\"moe\",\"reasoning_effort\":\"maximal\",%s}", msgs);
    assert_int_equal(req("POST", o.base, "/v1/chat/completions", body, &resp), 400);
    assert_non_null(strstr(resp, "reasoning_effort"));
    free(resp);
    snprintf(body, sizeof body, "{\"model\":\"moe\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],%s}",
             msgs);
    assert_int_equal(req("POST", o.base, "/v1/chat/completions", body, &resp), 400);
    assert_non_null(strstr(resp, "tool calling is not supported"));
    free(resp);

    util_sb_free(&want.r);
    util_sb_free(&want.c);
    util_sb_free(&got.r);
    util_sb_free(&got.c);
    json_decref(cj);
    json_decref(pj);
    end_pid(P.pid);
    stop(&o, SIGTERM);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gptoss_chat_through_the_system, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
