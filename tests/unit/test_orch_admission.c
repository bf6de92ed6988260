// test-libs: llorch_orchcore llorch_core PkgConfig::JANSSON
/* admission + catalog + sha256: every field's valid/invalid edges with the
 * stable code and the field named; context arithmetic; serialisations. */
#include "testutil.h"

#include "common/config.h"
#include "common/err.h"
#include "orch/core/admission.h"
#include "orch/core/catalog.h"
#include "common/sha256.h"

#include <jansson.h>

static struct cfg *CFG;
static struct catalog *CAT;
static const struct cfg_opt OPTS[] = { { .key = "models", .type = CFG_TREE } };
static const struct adm_limits LIM = { .default_timeout_ms = 300000, .max_timeout_ms = 1800000,
                                       .default_context_length = 4096, .max_prompt_bytes = 32768 };

static int setup(void **s) {
    (void)s;
    const char *yaml = "models:\n"
                       "  qwen:\n    model_ref: hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF::file=q4_k_m.gguf\n"
                       "    context_length: 64\n    memory_bytes: 600MiB\n"
                       "    placements: [{pool_id: p1, gpu_id: 0}]\n"
                       "  embed:\n    model_ref: file:/models/e.gguf\n    context_length: 512\n"
                       "    capabilities: [embedding]\n";
    char err[256];
    char *argv[] = { "t", NULL }, *envp[] = { NULL };
    if (cfg_load_text(OPTS, 1, yaml, 1, argv, envp, NULL, &CFG, err, sizeof err)) return -1;
    return cat_from_tree(cfg_tree(CFG, "models"), &CAT, err, sizeof err);
}
static int teardown(void **s) {
    (void)s;
    cat_free(CAT);
    cfg_free(CFG);
    return 0;
}

static uint64_t fixed_seed(void) { return 424242; }

static int adm(const char *body, struct adm_task *t, struct adm_error *e) {
    return adm_parse_task(body, strlen(body), CAT, &LIM, fixed_seed, t, e);
}

/* expects a refusal with this code naming this field */
static void bad(const char *body, int code, const char *field) {
    struct adm_task t;
    struct adm_error e;
    int rc = adm(body, &t, &e);
    if (rc == 0) fail_msg("accepted: %s", body);
    if (e.code != code) fail_msg("%s: code %s, want %s (%s)", body, err_name(e.code), err_name(code), e.message);
    if (field && strcmp(e.field, field) != 0) fail_msg("%s: field '%s', want '%s'", body, e.field, field);
    assert_null(t.prompt); /* nothing leaked on failure */
}

static void test_valid_and_defaults(void **s) {
    (void)s;
    struct adm_task t;
    struct adm_error e;
    assert_int_equal(adm("{\"model\":\"qwen\",\"prompt\":\"Hello\"}", &t, &e), 0);
    assert_string_equal(t.model_ref, "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF::file=q4_k_m.gguf");
    assert_int_equal(t.context_length, 64);
    assert_int_equal(t.prompt_tokens_est, 7);
    assert_int_equal(t.max_tokens, 64 - 7); /* default 2048 capped by the context */
    assert_true(t.temperature == 1.0 && t.top_p == 1.0 && t.min_p == 0.0 && t.repetition_penalty == 1.0);
    assert_int_equal(t.top_k, 0);
    assert_int_equal(t.seed, 424242);
    assert_false(t.seed_given);
    assert_int_equal(t.prio, JOB_PRIO_INTERACTIVE);
    assert_int_equal(t.timeout_ms, 300000);
    assert_int_equal(t.capability, CAP_TEXT_GEN);
    assert_true(t.model->memory_bytes == 600ull << 20);
    assert_int_equal(t.model->nplacements, 1);
    adm_task_free(&t);

    const char *full = "{\"model\":\"hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF::file=q4_k_m.gguf\",\"prompt\":\"h\xc3\xa9\","
                       "\"max_tokens\":10,\"temperature\":0,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,"
                       "\"repetition_penalty\":1.1,\"stop\":[\"\\n\",\"END\"],\"seed\":\"18446744073709551615\","
                       "\"priority\":\"batch\",\"session_id\":\"s-1\",\"timeout_ms\":1000,\"capability\":\"text-gen\"}";
    assert_int_equal(adm(full, &t, &e), 0);
    assert_string_equal(t.model->alias, "qwen"); /* found by model_ref */
    assert_true(t.seed == UINT64_MAX);
    assert_true(t.seed_given);
    assert_int_equal(t.nstop, 2);
    assert_string_equal(t.stop[1], "END");
    assert_int_equal(t.prio, JOB_PRIO_BATCH);
    assert_string_equal(t.session_id, "s-1");
    char params[1024];
    assert_true(adm_params_json(&t, params, sizeof params) > 0);
    assert_null(strstr(params, "prompt"));
    assert_non_null(strstr(params, "\"top_k\":40"));
    assert_non_null(strstr(params, "\"priority\":\"batch\""));
    /* a seed above 2^63-1 reaches the worker as its exact decimal digits in a string */
    char *body = adm_execute_body(&t, "job-9");
    assert_non_null(body);
    assert_non_null(strstr(body, "\"seed\":\"18446744073709551615\""));
    json_error_t je;
    json_t *o = json_loads(body, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "prompt")), "h\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(o, "job_id")), "job-9");
    json_decref(o);
    free(body);
    adm_task_free(&t);

    /* the prompt is carried verbatim next to a big seed */
    assert_int_equal(adm("{\"model\":\"qwen\",\"prompt\":\"\\\"@@seed@@\\\"}\",\"max_tokens\":1,"
                         "\"seed\":\"9223372036854775808\"}", &t, &e), 0);
    body = adm_execute_body(&t, "j");
    assert_non_null(strstr(body, "\"prompt\":\"\\\"@@seed@@\\\"}\""));
    assert_non_null(strstr(body, "\"seed\":\"9223372036854775808\""));
    free(body);
    adm_task_free(&t);

    /* uncatalogued refs get the default context */
    assert_int_equal(adm("{\"model\":\"file:/m/x.gguf\",\"prompt\":\"a\"}", &t, &e), 0);
    assert_int_equal(t.context_length, 4096);
    assert_int_equal(t.max_tokens, 2048);
    assert_null(t.model);
    adm_task_free(&t);
}

static void test_refusals(void **s) {
    (void)s;
    bad("", ERR_INVALID_REQUEST, "");
    bad("[1]", ERR_INVALID_REQUEST, "");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"model\":\"qwen\"}", ERR_INVALID_REQUEST, ""); /* duplicate key */
    bad("{\"prompt\":\"a\"}", ERR_INVALID_REQUEST, "model");
    bad("{\"model\":\"llama\",\"prompt\":\"a\"}", ERR_MODEL_NOT_FOUND, "model");
    bad("{\"model\":\"hf:no-file\",\"prompt\":\"a\"}", ERR_MODEL_NOT_FOUND, "model");
    bad("{\"model\":\"file:/a/../etc/x\",\"prompt\":\"a\"}", ERR_MODEL_NOT_FOUND, "model");
    bad("{\"model\":\"qwen\"}", ERR_INVALID_REQUEST, "prompt");
    bad("{\"model\":\"qwen\",\"prompt\":\"\"}", ERR_INVALID_REQUEST, "prompt");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\\u0000b\"}", ERR_INVALID_REQUEST, "");   /* jansson refuses NUL */
    bad("{\"model\":\"qwen\",\"prompt\":\"\xff\"}", ERR_INVALID_REQUEST, "");        /* invalid UTF-8 */
    bad("{\"model\":\"qwen\",\"prompt\":7}", ERR_INVALID_REQUEST, "prompt");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"max_tokens\":0}", ERR_INVALID_REQUEST, "max_tokens");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"max_tokens\":1.5}", ERR_INVALID_REQUEST, "max_tokens");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"max_tokens\":62}", ERR_CONTEXT_LENGTH_EXCEEDED, "max_tokens");
    bad("{\"model\":\"qwen\",\"prompt\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        ERR_CONTEXT_LENGTH_EXCEEDED, "prompt");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"temperature\":2.01}", ERR_INVALID_REQUEST, "temperature");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"temperature\":\"hot\"}", ERR_INVALID_REQUEST, "temperature");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"top_p\":-0.1}", ERR_INVALID_REQUEST, "top_p");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"top_k\":-1}", ERR_INVALID_REQUEST, "top_k");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"min_p\":1.5}", ERR_INVALID_REQUEST, "min_p");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"repetition_penalty\":0}", ERR_INVALID_REQUEST, "repetition_penalty");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"repetition_penalty\":2.5}", ERR_INVALID_REQUEST, "repetition_penalty");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", ERR_INVALID_REQUEST, "stop");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"stop\":[\"\"]}", ERR_INVALID_REQUEST, "stop");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"stop\":\"x\"}", ERR_INVALID_REQUEST, "stop");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"seed\":-1}", ERR_INVALID_REQUEST, "seed");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"seed\":\"18446744073709551616\"}", ERR_INVALID_REQUEST, "seed");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"seed\":1.5}", ERR_INVALID_REQUEST, "seed");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"priority\":\"urgent\"}", ERR_INVALID_REQUEST, "priority");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"session_id\":\"a b\"}", ERR_INVALID_REQUEST, "session_id");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"timeout_ms\":1800001}", ERR_INVALID_REQUEST, "timeout_ms");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"timeout_ms\":0}", ERR_INVALID_REQUEST, "timeout_ms");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"capability\":\"telepathy\"}", ERR_INVALID_REQUEST, "capability");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"capability\":\"embedding\"}", ERR_INVALID_REQUEST, "capability");
    bad("{\"model\":\"qwen\",\"prompt\":\"a\",\"max_token\":5}", ERR_INVALID_REQUEST, "max_token");
    /* the embedding model is not a text generator */
    bad("{\"model\":\"embed\",\"prompt\":\"a\"}", ERR_INVALID_REQUEST, "capability");
    struct adm_task t;
    struct adm_error e;
    assert_int_equal(adm("{\"model\":\"embed\",\"prompt\":\"a\",\"capability\":\"embedding\"}", &t, &e), 0);
    adm_task_free(&t);
    /* oversize prompt */
    static char big[40000];
    memset(big, 'a', sizeof big);
    int n = snprintf(big, 64, "{\"model\":\"file:/m/x.gguf\",\"prompt\":\"");
    big[n] = 'a';
    memcpy(big + sizeof big - 3, "\"}", 3);
    bad(big, ERR_INVALID_REQUEST, "prompt");
}

static void test_catalog_shapes(void **s) {
    (void)s;
    static const struct cfg_opt o[] = { { .key = "models", .type = CFG_TREE } };
    const char *list = "models:\n  - alias: a\n    model_ref: file:/x.gguf\n    context_length: 10\n"
                       "  - alias: b\n    model_ref: hf:o/r@main::file=sub/m.gguf\n    context_length: 20\n";
    char err[256];
    char *argv[] = { "t", NULL }, *envp[] = { NULL };
    struct cfg *c;
    struct catalog *cat;
    assert_int_equal(cfg_load_text(o, 1, list, 1, argv, envp, NULL, &c, err, sizeof err), 0);
    assert_int_equal(cat_from_tree(cfg_tree(c, "models"), &cat, err, sizeof err), 0);
    assert_int_equal(cat_count(cat), 2);
    assert_int_equal(cat_find(cat, "b")->context_length, 20);
    cat_free(cat);
    cfg_free(c);
    const char *bads[] = {
        "models:\n  a:\n    model_ref: file:/x\n",                                     /* no context_length */
        "models:\n  a:\n    model_ref: http://x\n    context_length: 1\n",           /* bad ref */
        "models:\n  a:\n    model_ref: file:/x\n    context_length: 1\n    colour: red\n",
        "models:\n  a:\n    model_ref: file:/x\n    context_length: 1\n    capabilities: [telepathy]\n",
        "models:\n  - model_ref: file:/x\n    context_length: 1\n",                    /* list without alias */
        "models:\n  - {alias: a, model_ref: 'file:/x', context_length: 1}\n  - {alias: a, model_ref: 'file:/y', context_length: 1}\n",
        "models:\n  a:\n    model_ref: file:/x\n    context_length: 1\n    placements: [{gpu_id: 0}]\n",
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        assert_int_equal(cfg_load_text(o, 1, bads[i], 1, argv, envp, NULL, &c, err, sizeof err), 0);
        cat = NULL;
        if (cat_from_tree(cfg_tree(c, "models"), &cat, err, sizeof err) == 0) fail_msg("accepted: %s", bads[i]);
        assert_non_null(strstr(err, "models"));
        cfg_free(c);
    }
    assert_true(cat_ref_valid("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF::file=qwen2.5-0.5b-instruct-q4_k_m.gguf"));
    assert_false(cat_ref_valid("hf:/repo::file=x"));
    assert_false(cat_ref_valid("hf:o/r::file=/abs"));
    assert_false(cat_ref_valid("hf:o/r::file=../x"));
    assert_false(cat_ref_valid("file:relative"));
}

static void test_sha256(void **s) {
    (void)s;
    char h[65];
    sha256_hex("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m, strlen(m), h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    static char a[1000000];
    memset(a, 'a', sizeof a);
    sha256_hex(a, sizeof a, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_defaults),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_catalog_shapes),
        cmocka_unit_test(test_sha256),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
