// test-libs: llorch_config llorch_core
/* config: layering precedence, validation messages, YAML nesting, lists,
 * generic trees (catalog map, adapters list of maps), file loading. */
#include "testutil.h"

#include "common/config.h"
#include "common/util.h"

#include <errno.h>
#include <unistd.h>

static int check_policy(const struct cfg *c, const char *key, char *err, size_t errlen) {
    const char *p = cfg_str(c, key);
    if (strncmp(p, "lua:", 4) == 0 || !strcmp(p, "least-loaded") || !strcmp(p, "round-robin")) return 0;
    snprintf(err, errlen, "unknown policy '%s'", p);
    return -1;
}

static int cross(const struct cfg *c, char *err, size_t errlen) {
    if (cfg_int(c, "timeout.default_ms") > cfg_int(c, "timeout.max_ms")) {
        snprintf(err, errlen, "timeout.default_ms exceeds timeout.max_ms");
        return -1;
    }
    return 0;
}

static const struct cfg_opt T[] = {
    { .key = "bind", .type = CFG_STRING, .def = "127.0.0.1:8080", .min = 1, .max = 256 },
    { .key = "deployment", .type = CFG_ENUM, .def = "home", .enums = "home|lab|platform" },
    { .key = "queue.capacity", .type = CFG_INT, .def = "100", .min = -1, .max = 1000000 },
    { .key = "scheduling.policy", .type = CFG_STRING, .def = "least-loaded", .flag = "--policy",
      .validate = check_policy },
    { .key = "heartbeat.interval_ms", .type = CFG_DURATION_MS, .def = "15000", .min = 1, .max = 3600000 },
    { .key = "timeout.default_ms", .type = CFG_DURATION_MS, .def = "300000", .flag = "" },
    { .key = "timeout.max_ms", .type = CFG_DURATION_MS, .def = "1800000", .flag = "" },
    { .key = "retry.multiplier", .type = CFG_FLOAT, .def = "2", .fmin = 1, .fmax = 10 },
    { .key = "retry.jitter", .type = CFG_BOOL, .def = "true" },
    { .key = "gpu_headroom_bytes", .type = CFG_U64, .def = "0" },
    { .key = "state.path", .type = CFG_STRING, .flag = "--state" },
    { .key = "auth.tokens", .type = CFG_LIST },
    { .key = "orchestrator.token", .type = CFG_STRING },
    { .key = "models", .type = CFG_TREE, .help = "model catalog" },
    { .key = "adapters", .type = CFG_TREE },
};
#define NT (sizeof T / sizeof T[0])

static struct cfg *load_ok(const char *yaml, int argc, char **argv, char **envp) {
    char err[512] = "";
    struct cfg *c = NULL;
    int rc = cfg_load_text(T, NT, yaml, argc, argv, envp, cross, &c, err, sizeof err);
    if (rc != 0) fail_msg("unexpected error %d: %s", rc, err);
    return c;
}

/* asserts failure and that the message contains every needle */
static void load_bad(const char *yaml, int argc, char **argv, char **envp, const char *n1, const char *n2) {
    char err[512] = "";
    struct cfg *c = NULL;
    int rc = cfg_load_text(T, NT, yaml, argc, argv, envp, cross, &c, err, sizeof err);
    assert_int_equal(rc, CFG_EUSAGE);
    assert_null(c);
    if (n1 && !strstr(err, n1)) fail_msg("'%s' lacks '%s'", err, n1);
    if (n2 && !strstr(err, n2)) fail_msg("'%s' lacks '%s'", err, n2);
}

static char *noenv[] = { NULL };

static void test_defaults(void **s) {
    (void)s;
    char *argv[] = { "prog", NULL };
    struct cfg *c = load_ok(NULL, 1, argv, noenv);
    assert_string_equal(cfg_str(c, "bind"), "127.0.0.1:8080");
    assert_int_equal(cfg_int(c, "queue.capacity"), 100);
    assert_int_equal(cfg_int(c, "heartbeat.interval_ms"), 15000);
    assert_true(cfg_bool(c, "retry.jitter"));
    assert_true(cfg_float(c, "retry.multiplier") == 2.0);
    assert_null(cfg_str(c, "state.path"));
    assert_false(cfg_is_set(c, "state.path"));
    assert_null(cfg_tree(c, "models"));
    assert_int_equal(cfg_list(c, "auth.tokens", NULL), 0);
    assert_int_equal(cfg_source_of(c, "bind"), CFG_SRC_DEFAULT);
    cfg_free(c);
}

static void test_precedence(void **s) {
    (void)s;
    const char *yaml = "queue:\n  capacity: 5\nheartbeat:\n  interval_ms: 2s\nbind: 0.0.0.0:1\n"
                       "deployment: lab\n";
    /* file only */
    char *a1[] = { "prog", NULL };
    struct cfg *c = load_ok(yaml, 1, a1, noenv);
    assert_int_equal(cfg_int(c, "queue.capacity"), 5);
    assert_int_equal(cfg_int(c, "heartbeat.interval_ms"), 2000);
    assert_int_equal(cfg_source_of(c, "queue.capacity"), CFG_SRC_FILE);
    cfg_free(c);
    /* env beats file */
    char *env[] = { "LLORCH_QUEUE_CAPACITY=7", "LLORCH_DEPLOYMENT=platform", "LLORCH_POLICY=round-robin", NULL };
    c = load_ok(yaml, 1, a1, env);
    assert_int_equal(cfg_int(c, "queue.capacity"), 7);
    assert_int_equal(cfg_source_of(c, "queue.capacity"), CFG_SRC_ENV);
    assert_string_equal(cfg_str(c, "deployment"), "platform");
    assert_string_equal(cfg_str(c, "scheduling.policy"), "round-robin");
    assert_string_equal(cfg_str(c, "bind"), "0.0.0.0:1"); /* file value untouched by env */
    cfg_free(c);
    /* flags beat env, both --x v and --x=v forms */
    char *a2[] = { "prog", "--queue-capacity", "-1", "--deployment=home", "--state", "/tmp/x.db", NULL };
    c = load_ok(yaml, 6, a2, env);
    assert_int_equal(cfg_int(c, "queue.capacity"), -1);
    assert_int_equal(cfg_source_of(c, "queue.capacity"), CFG_SRC_FLAG);
    assert_string_equal(cfg_str(c, "deployment"), "home");
    assert_string_equal(cfg_str(c, "state.path"), "/tmp/x.db");
    assert_int_equal(cfg_int(c, "heartbeat.interval_ms"), 2000);
    cfg_free(c);
}

static void test_validation_messages(void **s) {
    (void)s;
    char *a1[] = { "prog", NULL };
    char *e1[] = { "LLORCH_QUEUE_CAPACITY=abc", NULL };
    load_bad(NULL, 1, a1, e1, "queue.capacity", "LLORCH_QUEUE_CAPACITY");
    load_bad("queue: {capacity: -5}\n", 1, a1, noenv, "queue.capacity", "out of range");
    load_bad("deployment: cloud\n", 1, a1, noenv, "deployment", "home|lab|platform");
    char *a2[] = { "prog", "--policy", "fastest", NULL };
    load_bad(NULL, 3, a2, noenv, "unknown policy 'fastest'", "flag --policy");
    char *a3[] = { "prog", "--queue-capacty", "3", NULL };
    load_bad(NULL, 3, a3, noenv, "unknown flag", "--queue-capacty");
    load_bad("queue:\n  capcity: 3\n", 1, a1, noenv, "unknown key", "queue.capcity");
    /* a quoted dotted key is refused, never silently ignored (fuzz finding) */
    load_bad("\"queue.capacity\": 0\n", 1, a1, noenv, "contains '.'", "queue.capacity");
    load_bad("timeout: {default_ms: 10s, max_ms: 5s}\n", 1, a1, noenv, "exceeds", NULL);
    load_bad("retry: {multiplier: 50}\n", 1, a1, noenv, "retry.multiplier", "range");
    load_bad("retry: {jitter: maybe}\n", 1, a1, noenv, "retry.jitter", "boolean");
    load_bad("heartbeat: {interval_ms: 10 fortnights}\n", 1, a1, noenv, "heartbeat.interval_ms", "duration");
    load_bad("bind: [a, b]\n", 1, a1, noenv, "bind", "list");
    load_bad("queue: 5\n", 1, a1, noenv, "'queue' must be a map", NULL);
    load_bad("bind: a\nbind: b\n", 1, a1, noenv, "duplicate", NULL);
    load_bad("bind: [unclosed\n", 1, a1, noenv, "YAML error", NULL);
    char *e2[] = { "LLORCH_BIND=", NULL };
    load_bad(NULL, 1, a1, e2, "bind", "empty");
    char *a4[] = { "prog", "--state", NULL };
    load_bad(NULL, 2, a4, noenv, "needs a value", NULL);
    char *a5[] = { "prog", "positional", NULL };
    load_bad(NULL, 2, a5, noenv, "unexpected argument", NULL);
    char *e3[] = { "LLORCH_GPU_HEADROOM_BYTES=-1", NULL };
    load_bad(NULL, 1, a1, e3, "gpu_headroom_bytes", NULL);
}

static void test_lists_and_trees(void **s) {
    (void)s;
    const char *yaml =
        "auth:\n  tokens: [t1, t2]\n"
        "models:\n"
        "  qwen:\n    model_ref: hf:Qwen/Q::file=q.gguf\n    context_length: 32768\n"
        "    capabilities: [text-gen]\n"
        "  tiny:\n    model_ref: file:/m/tiny.gguf\n    context_length: 2048\n    capabilities: text-gen\n"
        "adapters:\n"
        "  - name: cpu\n    type: cpu\n    binary_path: /usr/bin/worker-cpud\n    default: true\n"
        "  - name: cuda\n    type: bespoke-cuda\n    binary_path: /usr/bin/worker-orcd\n"
        "    config: {ctx: 4096}\n";
    char *a1[] = { "prog", NULL };
    struct cfg *c = load_ok(yaml, 1, a1, noenv);
    const char *const *items;
    assert_int_equal(cfg_list(c, "auth.tokens", &items), 2);
    assert_string_equal(items[1], "t2");

    const struct cfg_node *m = cfg_tree(c, "models");
    assert_non_null(m);
    assert_int_equal(cfg_node_kind(m), CFG_NODE_MAP);
    assert_int_equal(cfg_node_len(m), 2);
    assert_string_equal(cfg_node_key_at(m, 0), "qwen");  /* document order */
    assert_string_equal(cfg_node_key_at(m, 1), "tiny");
    int64_t ctx = 0;
    char err[256];
    assert_int_equal(cfg_node_get_int(cfg_node_at(m, 1), "context_length", &ctx, err, sizeof err), 0);
    assert_int_equal(ctx, 2048);
    const char *caps[4];
    assert_int_equal(cfg_node_get_strs(cfg_node_at(m, 1), "capabilities", caps, 4, err, sizeof err), 1);
    assert_string_equal(caps[0], "text-gen");
    assert_int_equal(cfg_node_get_strs(cfg_node_get(m, "qwen"), "capabilities", caps, 4, err, sizeof err), 1);
    assert_int_equal(cfg_node_get_int(cfg_node_get(m, "qwen"), "missing", &ctx, err, sizeof err), -ENOENT);
    assert_int_equal(cfg_node_get_int(cfg_node_get(m, "qwen"), "model_ref", &ctx, err, sizeof err), -EINVAL);

    const struct cfg_node *ad = cfg_tree(c, "adapters");
    assert_int_equal(cfg_node_kind(ad), CFG_NODE_SEQ);
    assert_int_equal(cfg_node_len(ad), 2);
    const char *name = NULL;
    assert_int_equal(cfg_node_get_str(cfg_node_at(ad, 1), "name", &name, err, sizeof err), 0);
    assert_string_equal(name, "cuda");
    int def = 0;
    assert_int_equal(cfg_node_get_bool(cfg_node_at(ad, 0), "default", &def, err, sizeof err), 0);
    assert_true(def);
    const struct cfg_node *conf = cfg_node_get(cfg_node_at(ad, 1), "config");
    assert_string_equal(cfg_node_str(cfg_node_get(conf, "ctx")), "4096");
    assert_int_equal(cfg_source_of(c, "models"), CFG_SRC_FILE);
    cfg_free(c);

    /* env list is comma-separated and replaces the YAML list */
    char *env[] = { "LLORCH_AUTH_TOKENS= a , b,c ,", NULL };
    c = load_ok(yaml, 1, a1, env);
    assert_int_equal(cfg_list(c, "auth.tokens", &items), 3);
    assert_string_equal(items[0], "a");
    assert_string_equal(items[2], "c");
    /* secrets masked in the dump */
    char dump[2048];
    size_t need = cfg_dump_json(c, dump, sizeof dump);
    assert_true(need < sizeof dump);
    assert_non_null(strstr(dump, "\"auth.tokens\":\"***\""));
    assert_null(strstr(dump, "\"a\""));
    assert_non_null(strstr(dump, "\"queue.capacity\":\"100\""));
    cfg_free(c);
}

static void test_parsers(void **s) {
    (void)s;
    int64_t v;
    uint64_t u;
    assert_int_equal(cfg_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(cfg_parse_duration_ms("3m", &v), 0);
    assert_int_equal(v, 180000);
    assert_int_equal(cfg_parse_duration_ms("1h", &v), 0);
    assert_int_equal(v, 3600000);
    assert_true(cfg_parse_duration_ms("-5", &v) < 0);
    assert_true(cfg_parse_duration_ms("5x", &v) < 0);
    assert_int_equal(cfg_parse_u64("2GiB", &u), 0);
    assert_true(u == 2ull << 30);
    assert_int_equal(cfg_parse_u64("512 MB", &u), 0);
    assert_true(u == 512000000ull);
    assert_true(cfg_parse_u64("18446744073709551615K", &u) < 0);
    assert_true(cfg_parse_int("12abc", &v) < 0);
    assert_true(cfg_parse_int("99999999999999999999", &v) < 0);
    char h[64];
    int port;
    assert_int_equal(cfg_parse_hostport("0.0.0.0:9200", h, sizeof h, &port), 0);
    assert_string_equal(h, "0.0.0.0");
    assert_int_equal(port, 9200);
    assert_int_equal(cfg_parse_hostport("[::]:0", h, sizeof h, &port), 0);
    assert_string_equal(h, "::");
    assert_true(cfg_parse_hostport("::1:80", h, sizeof h, &port) < 0);
    assert_true(cfg_parse_hostport("host", h, sizeof h, &port) < 0);
    assert_true(cfg_parse_hostport("a b:1", h, sizeof h, &port) < 0);
    assert_true(cfg_parse_hostport("h:65536", h, sizeof h, &port) < 0);
    int b;
    assert_int_equal(cfg_parse_bool("OFF", &b), 0);
    assert_int_equal(b, 0);
}

static void test_file_and_help(void **s) {
    (void)s;
    char dir[] = "/tmp/llorch-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], envc[300];
    snprintf(path, sizeof path, "%s/orch.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("queue:\n  capacity: 42\n", f);
    fclose(f);
    char err[512] = "";
    struct cfg *c = NULL;
    char *a1[] = { "prog", "--config", path, NULL };
    assert_int_equal(cfg_load(T, NT, 3, a1, noenv, NULL, &c, err, sizeof err), 0);
    assert_int_equal(cfg_int(c, "queue.capacity"), 42);
    assert_string_equal(cfg_file_path(c), path);
    cfg_free(c);
    /* via LLORCH_CONFIG */
    snprintf(envc, sizeof envc, "LLORCH_CONFIG=%s", path);
    char *env[] = { envc, NULL };
    char *a2[] = { "prog", NULL };
    assert_int_equal(cfg_load(T, NT, 1, a2, env, NULL, &c, err, sizeof err), 0);
    assert_int_equal(cfg_int(c, "queue.capacity"), 42);
    cfg_free(c);
    /* missing file */
    char *a3[] = { "prog", "--config=/nonexistent/x.yaml", NULL };
    assert_int_equal(cfg_load(T, NT, 2, a3, noenv, NULL, &c, err, sizeof err), CFG_EUSAGE);
    assert_non_null(strstr(err, "/nonexistent/x.yaml"));
    char *a4[] = { "prog", "--queue-capacity", "1", "--help", NULL };
    assert_int_equal(cfg_load(T, NT, 4, a4, noenv, NULL, &c, err, sizeof err), CFG_HELP);
    assert_null(c);
    FILE *mf = tmpfile();
    cfg_usage(T, NT, mf);
    long sz = ftell(mf);
    assert_true(sz > 100);
    fclose(mf);
    unlink(path);
    rmdir(dir);
}

static void test_alias_bomb(void **s) {
    (void)s;
    /* a billion-laughs style document must be refused, not expanded */
    const char *bomb =
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "models: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n";
    char *a1[] = { "prog", NULL };
    load_bad(bomb, 1, a1, noenv, "too large", NULL);
}

/* nesting deeper than 64 levels is refused before libyaml loads the
 * document (its scanner is quadratic in flow depth: the 1 MiB file cap
 * would otherwise allow ~500,000 levels and a quarter of an hour of CPU) */
static char *nested(const char *head, int depth, const char *leaf) {
    size_t hl = strlen(head), ll = strlen(leaf);
    char *t = malloc(hl + 2 * (size_t)depth + ll + 2);
    assert_non_null(t);
    memcpy(t, head, hl);
    memset(t + hl, '[', (size_t)depth);
    memcpy(t + hl + depth, leaf, ll);
    memset(t + hl + depth + ll, ']', (size_t)depth);
    memcpy(t + hl + 2 * (size_t)depth + ll, "\n", 2);
    return t;
}

static void test_deep_nesting(void **s) {
    (void)s;
    char *a1[] = { "prog", NULL };
    /* the root map is level 1: 63 sequences under it are the deepest allowed */
    char *ok = nested("models: ", 63, "x");
    struct cfg *c = load_ok(ok, 1, a1, noenv);
    const struct cfg_node *n = cfg_tree(c, "models");
    int depth = 0;
    while (cfg_node_kind(n) == CFG_NODE_SEQ) {
        depth++;
        n = cfg_node_at(n, 0);
    }
    assert_int_equal(depth, 63);
    cfg_free(c);
    free(ok);
    char *bad = nested("models: ", 64, "x");
    load_bad(bad, 1, a1, noenv, "nested deeper than 64 levels", "line 1");
    free(bad);
    /* the finding: 500,000 levels of flow brackets (1,000,010 bytes) */
    char *huge = nested("models: ", 500000, "");
    load_bad(huge, 1, a1, noenv, "nested deeper than 64 levels", NULL);
    free(huge);
    /* block nesting counts the same */
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_puts(&sb, "models:\n");
    for (int i = 0; i < 70; i++) util_sb_printf(&sb, "%*sk:\n", 2 * (i + 1), "");
    util_sb_printf(&sb, "%*sv\n", 2 * 71, "");
    load_bad(sb.buf, 1, a1, noenv, "nested deeper than 64 levels", NULL);
    util_sb_free(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_validation_messages),
        cmocka_unit_test(test_lists_and_trees),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test(test_file_and_help),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_deep_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
