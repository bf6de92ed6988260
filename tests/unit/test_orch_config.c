// test-libs: llorch_orchcore llorch_core
/* orchestratord's option table: SPEC §7 flag names and env names, the
 * documented defaults, the cross-option checks, retry backoff. */
#include "testutil.h"

#include "orch/core/orch_config.h"

static int load(const char *yaml, int argc, char **argv, char **envp, struct cfg **c, char *err, size_t n) {
    return cfg_load_text(orch_cfg_opts, orch_cfg_nopts, yaml, argc, argv, envp, orch_cfg_check, c, err, n);
}

static void test_defaults(void **s) {
    (void)s;
    char *argv[] = { "orchestratord", NULL }, *envp[] = { NULL };
    struct cfg *c;
    char err[512];
    assert_int_equal(load(NULL, 1, argv, envp, &c, err, sizeof err), 0);
    struct orch_settings st;
    struct catalog *cat;
    assert_int_equal(orch_settings_from_cfg(c, &st, &cat, err, sizeof err), 0);
    assert_string_equal(st.bind_host, "127.0.0.1");
    assert_int_equal(st.bind_port, 8080);
    assert_int_equal(st.deployment, ORCH_HOME);
    assert_int_equal(st.queue_capacity, 100);
    assert_string_equal(st.sched.policy, "least-loaded");
    assert_int_equal(st.reg.heartbeat_interval_ms, 15000);
    assert_int_equal(st.reg.missed_threshold, 3);
    assert_int_equal(st.adm.default_timeout_ms, 300000);
    assert_int_equal(st.adm.max_timeout_ms, 1800000);
    assert_int_equal(st.cancellation_deadline_ms, 5000);
    assert_int_equal(st.keepalive_ms, 15000);
    assert_int_equal(st.retry_max_attempts, 5);
    assert_int_equal(st.retry_initial_delay_ms, 1000);
    assert_int_equal(st.retry_max_delay_ms, 60000);
    assert_true(st.persist_prompts);
    assert_true(st.sched.eviction);
    assert_int_equal(cat_count(cat), 0);
    cat_free(cat);
    cfg_free(c);
}

static void test_spec_flags_and_env(void **s) {
    (void)s;
    char *argv[] = { "orchestratord", "--bind", "127.0.0.1:9999", "--state", "/tmp/o.db", "--queue-capacity", "-1",
                     "--policy", "round-robin", "--heartbeat-interval-ms", "2s", "--missed-threshold", "5",
                     "--retry-max-attempts", "2", "--stream-keepalive-ms", "1h", NULL };
    char *envp[] = { "LLORCH_QUEUE_CAPACITY=7", "LLORCH_STATE_PERSIST_PROMPTS=never", "LLORCH_DEPLOYMENT=lab",
                     "LLORCH_AUTH_POOL_TOKENS=secret1", NULL };
    struct cfg *c;
    char err[512];
    assert_int_equal(load("models:\n  tiny: {model_ref: 'file:/m/t.gguf', context_length: 256}\n", 17, argv, envp, &c,
                          err, sizeof err), 0);
    struct orch_settings st;
    struct catalog *cat;
    assert_int_equal(orch_settings_from_cfg(c, &st, &cat, err, sizeof err), 0);
    assert_int_equal(st.bind_port, 9999);
    assert_string_equal(st.state_path, "/tmp/o.db");
    assert_int_equal(st.queue_capacity, -1);  /* flag beats env */
    assert_string_equal(st.sched.policy, "round-robin");
    assert_int_equal(st.reg.heartbeat_interval_ms, 2000);
    assert_int_equal(st.reg.missed_threshold, 5);
    assert_int_equal(st.retry_max_attempts, 2);
    assert_int_equal(st.keepalive_ms, 3600000);
    assert_false(st.persist_prompts);
    assert_int_equal(st.deployment, ORCH_LAB);
    assert_int_equal(cat_count(cat), 1);
    cat_free(cat);
    cfg_free(c);
}

static void bad(const char *yaml, char **envp, const char *needle) {
    char *argv[] = { "orchestratord", NULL };
    char *noenv[] = { NULL };
    struct cfg *c = NULL;
    char err[512] = "";
    assert_int_equal(load(yaml, 1, argv, envp ? envp : noenv, &c, err, sizeof err), CFG_EUSAGE);
    assert_null(c);
    if (!strstr(err, needle)) fail_msg("'%s' lacks '%s'", err, needle);
}

static void test_checks(void **s) {
    (void)s;
    bad("bind: 0.0.0.0:8080\n", NULL, "loopback");
    bad("bind: nonsense\n", NULL, "HOST:PORT");
    bad("deployment: lab\nbind: 0.0.0.0:8080\n", NULL, "auth.pool_tokens");
    bad("deployment: platform\nauth: {pool_tokens: [p]}\n", NULL, "auth.client_tokens");
    bad("deployment: platform\nauth: {pool_tokens: [p], client_tokens: [notenant]}\n", NULL, "TENANT:TOKEN");
    bad("timeout: {default_ms: 20m, max_ms: 10m}\n", NULL, "timeout.default_ms");
    bad("scheduling: {policy: fastest}\n", NULL, "scheduling.policy");
    bad("queue: {capacity: -2}\n", NULL, "queue.capacity");
    bad("models:\n  x: {model_ref: 'ftp://x', context_length: 1}\n", NULL, "models.x.model_ref");
    char *e[] = { "LLORCH_MISSED_THRESHOLD=0", NULL };
    bad(NULL, e, "LLORCH_MISSED_THRESHOLD");
    char *e2[] = { "LLORCH_HEARTBEAT_INTERVAL_MS=soon", NULL };
    bad(NULL, e2, "heartbeat.interval_ms");
    bad("tenants:\n  acme: {max_concurrent: 0}\n", NULL, "tenants.acme.max_concurrent");
    bad("tenants:\n  acme: {daily_tokens: lots}\n", NULL, "tenants.acme.daily_tokens");
    bad("tenants:\n  acme: {colour: red}\n", NULL, "unknown key");
    /* platform done right */
    char *argv[] = { "o", NULL }, *noenv[] = { NULL };
    struct cfg *c;
    char err[512];
    assert_int_equal(load("deployment: platform\nbind: '[::]:8080'\nauth: {pool_tokens: [p], client_tokens: ['acme:t1']}\n",
                          1, argv, noenv, &c, err, sizeof err), 0);
    cfg_free(c);
}

static void test_tenants(void **s) {
    (void)s;
    char *argv[] = { "o", NULL }, *noenv[] = { NULL };
    struct cfg *c;
    char err[512];
    assert_int_equal(load("tenants:\n  acme: {max_concurrent: 2, daily_tokens: 1000}\n  beta: {}\n", 1, argv, noenv, &c,
                          err, sizeof err), 0);
    struct orch_tenant_quota q[4];
    assert_int_equal(orch_tenant_quotas(cfg_tree(c, "tenants"), q, 4, err, sizeof err), 2);
    assert_string_equal(q[0].tenant, "acme");
    assert_int_equal(q[0].max_concurrent, 2);
    assert_int_equal(q[0].daily_tokens, 1000);
    assert_int_equal(q[1].max_concurrent, -1);
    assert_int_equal(q[1].daily_tokens, -1);
    cfg_free(c);
}

static void test_bind_and_retry(void **s) {
    (void)s;
    char h[64];
    int p;
    assert_int_equal(orch_parse_bind("[::1]:80", h, sizeof h, &p), 0);
    assert_string_equal(h, "::1");
    assert_true(orch_host_is_loopback(h));
    assert_true(orch_parse_bind("::1:80", h, sizeof h, &p) < 0);
    assert_true(orch_parse_bind("host:70000", h, sizeof h, &p) < 0);
    assert_true(orch_parse_bind(":80", h, sizeof h, &p) < 0);
    assert_false(orch_host_is_loopback("10.0.0.1"));
    struct orch_settings st = { .retry_initial_delay_ms = 1000, .retry_multiplier = 2, .retry_max_delay_ms = 5000 };
    assert_int_equal(orch_retry_delay_ms(&st, 1, 0.0), 1000);
    assert_int_equal(orch_retry_delay_ms(&st, 3, 0.0), 4000);
    assert_int_equal(orch_retry_delay_ms(&st, 10, 0.0), 5000);
    st.retry_jitter = 1;
    assert_int_equal(orch_retry_delay_ms(&st, 3, 0.0), 2000);
    assert_int_equal(orch_retry_delay_ms(&st, 3, 0.5), 3000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_spec_flags_and_env),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_tenants),
        cmocka_unit_test(test_bind_and_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
