/* orch_config — see orch_config.h */
#include "orch/core/orch_config.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int v_policy(const struct cfg *c, const char *key, char *err, size_t errlen) {
    const char *p = cfg_str(c, key);
    if (!strcmp(p, "least-loaded") || !strcmp(p, "most-vram-free") || !strcmp(p, "round-robin")) return 0;
    if (strncmp(p, "lua:", 4) == 0 && p[4]) return 0;
    return util_fail(err, errlen, -EINVAL, "'%s' is not least-loaded|most-vram-free|round-robin|lua:<path>", p);
}

const struct cfg_opt orch_cfg_opts[] = {
    { .key = "bind", .type = CFG_STRING, .def = "127.0.0.1:8080", .flag = "--bind", .validate = cfg_validate_hostport,
      .help = "HOST:PORT to listen on" },
    { .key = "deployment", .type = CFG_ENUM, .def = "home", .flag = "--deployment", .enums = "home|lab|platform",
      .help = "security mode" },
    { .key = "state.path", .type = CFG_STRING, .def = "orchestratord.db", .flag = "--state", .min = 1, .max = 4096,
      .help = "SQLite state file (created 0600)" },
    { .key = "state.persist_prompts", .type = CFG_ENUM, .def = "queued", .enums = "queued|never",
      .help = "keep a queued job's request until dispatch, or never" },
    { .key = "queue.capacity", .type = CFG_INT, .def = "100", .flag = "--queue-capacity", .min = -1, .max = 10000000,
      .help = "queued jobs before 429 QUEUE_FULL; -1 unbounded" },
    { .key = "scheduling.policy", .type = CFG_STRING, .def = "least-loaded", .flag = "--policy", .validate = v_policy,
      .help = "least-loaded|most-vram-free|round-robin|lua:<path>" },
    { .key = "scheduling.lua_budget_ms", .type = CFG_DURATION_MS, .def = "50", .min = 1, .max = 10000,
      .help = "time budget of one Lua policy call" },
    { .key = "scheduling.lua_memory_bytes", .type = CFG_U64, .def = "8MiB", .help = "memory cap of the Lua policy" },
    { .key = "scheduling.no_capacity_ms", .type = CFG_DURATION_MS, .def = "60000", .min = 0, .max = 86400000,
      .help = "how long a job waits for capacity before NO_CAPACITY" },
    { .key = "scheduling.headroom_bytes", .type = CFG_U64, .def = "0", .help = "kept free on every device" },
    { .key = "eviction.worker_policy", .type = CFG_ENUM, .def = "lru", .enums = "lru|none",
      .help = "evict the least recently used idle unpinned worker when room is needed" },
    { .key = "eviction.idle_ttl_s", .type = CFG_INT, .def = "0", .min = 0, .max = 31536000,
      .help = "stop workers idle this long; 0 = never" },
    { .key = "eviction.vram_threshold", .type = CFG_FLOAT, .def = "0.9", .fmin = 0, .fmax = 1,
      .help = "device use fraction above which idle workers become eviction candidates" },
    { .key = "timeout.default_ms", .type = CFG_DURATION_MS, .def = "300000", .min = 1, .max = 86400000 },
    { .key = "timeout.max_ms", .type = CFG_DURATION_MS, .def = "1800000", .min = 1, .max = 86400000 },
    { .key = "timeout.cancellation_deadline_ms", .type = CFG_DURATION_MS, .def = "5000", .min = 1, .max = 600000 },
    { .key = "stream.keepalive_ms", .type = CFG_DURATION_MS, .def = "15000", .min = 100, .max = 3600000,
      .help = "idle time after which a stream gets a keep-alive comment (a waiting JSON body a space)" },
    { .key = "heartbeat.interval_ms", .type = CFG_DURATION_MS, .def = "15000", .flag = "--heartbeat-interval-ms",
      .min = 10, .max = 3600000 },
    { .key = "heartbeat.missed_threshold", .type = CFG_INT, .def = "3", .flag = "--missed-threshold", .min = 1,
      .max = 1000 },
    { .key = "heartbeat.max_clock_skew_ms", .type = CFG_DURATION_MS, .def = "30000", .min = 0, .max = 3600000 },
    { .key = "retry.max_attempts", .type = CFG_INT, .def = "5", .min = 1, .max = 100 },
    { .key = "retry.initial_delay_ms", .type = CFG_DURATION_MS, .def = "1000", .min = 0, .max = 3600000 },
    { .key = "retry.multiplier", .type = CFG_FLOAT, .def = "2", .fmin = 1, .fmax = 100 },
    { .key = "retry.max_delay_ms", .type = CFG_DURATION_MS, .def = "60000", .min = 0, .max = 86400000 },
    { .key = "retry.jitter", .type = CFG_BOOL, .def = "true" },
    { .key = "admission.default_context_length", .type = CFG_INT, .def = "4096", .min = 16, .max = 10000000,
      .help = "context assumed for an uncatalogued hf:/file: model" },
    { .key = "admission.max_prompt_bytes", .type = CFG_INT, .def = "32768", .min = 1, .max = 16777216 },
    { .key = "auth.pool_tokens", .type = CFG_LIST, .help = "bearer tokens pools present (lab, platform)" },
    { .key = "auth.client_tokens", .type = CFG_LIST,
      .help = "client bearer tokens; platform: TENANT:TOKEN entries" },
    { .key = "log.level", .type = CFG_ENUM, .def = "info", .enums = "error|warn|info|debug|trace" },
    { .key = "models", .type = CFG_TREE, .help = "model catalog: alias -> {model_ref, context_length, ...}" },
    { .key = "tenants", .type = CFG_TREE, .help = "platform quotas: tenant -> {max_concurrent, daily_tokens}" },
};
const size_t orch_cfg_nopts = sizeof orch_cfg_opts / sizeof orch_cfg_opts[0];

int orch_parse_bind(const char *s, char *host, size_t hcap, int *port) {
    return cfg_parse_hostport(s, host, hcap, port);
}

int orch_host_is_loopback(const char *h) {
    return strcmp(h, "localhost") == 0 || strcmp(h, "::1") == 0 || strncmp(h, "127.", 4) == 0;
}

int orch_cfg_check(const struct cfg *c, char *err, size_t errlen) {
    if (cfg_int(c, "timeout.default_ms") > cfg_int(c, "timeout.max_ms"))
        return util_fail(err, errlen, -EINVAL, "timeout.default_ms (%lld) exceeds timeout.max_ms (%lld)",
                         (long long)cfg_int(c, "timeout.default_ms"), (long long)cfg_int(c, "timeout.max_ms"));
    if (cfg_int(c, "retry.initial_delay_ms") > cfg_int(c, "retry.max_delay_ms"))
        return util_fail(err, errlen, -EINVAL, "retry.initial_delay_ms exceeds retry.max_delay_ms");
    const char *dep = cfg_str(c, "deployment");
    char host[256];
    int port;
    orch_parse_bind(cfg_str(c, "bind"), host, sizeof host, &port); /* validated per option already */
    if (strcmp(dep, "home") == 0 && !orch_host_is_loopback(host))
        return util_fail(err, errlen, -EINVAL, "deployment home binds loopback only; bind is %s (use lab or platform)",
                         cfg_str(c, "bind"));
    if (strcmp(dep, "home") != 0 && cfg_list(c, "auth.pool_tokens", NULL) == 0)
        return util_fail(err, errlen, -EINVAL, "deployment %s requires auth.pool_tokens", dep);
    const char *const *ct;
    size_t nct = cfg_list(c, "auth.client_tokens", &ct);
    if (strcmp(dep, "platform") == 0) {
        if (nct == 0) return util_fail(err, errlen, -EINVAL, "deployment platform requires auth.client_tokens");
        for (size_t i = 0; i < nct; i++) {
            const char *colon = strchr(ct[i], ':');
            if (!colon || colon == ct[i] || !colon[1])
                return util_fail(err, errlen, -EINVAL, "auth.client_tokens[%zu]: platform entries are TENANT:TOKEN", i);
        }
    }
    struct orch_tenant_quota q[1];
    int nq = orch_tenant_quotas(cfg_tree(c, "tenants"), q, 0, err, errlen);
    if (nq < 0) return nq;
    struct catalog *cat = NULL;
    int rc = cat_from_tree(cfg_tree(c, "models"), &cat, err, errlen);
    cat_free(cat);
    return rc;
}

int orch_tenant_quotas(const struct cfg_node *t, struct orch_tenant_quota *out, size_t cap, char *err,
                       size_t errlen) {
    if (!t) return 0;
    if (cfg_node_kind(t) != CFG_NODE_MAP) return util_fail(err, errlen, -EINVAL, "tenants: must be a map");
    size_t n = cfg_node_len(t);
    for (size_t i = 0; i < n; i++) {
        const char *name = cfg_node_key_at(t, i);
        const struct cfg_node *e = cfg_node_at(t, i);
        char m[128];
        struct orch_tenant_quota q = { .max_concurrent = -1, .daily_tokens = -1 };
        if (!job_id_valid(name, JOB_TENANT_MAX))
            return util_fail(err, errlen, -EINVAL, "tenants: invalid tenant name '%.64s'", name);
        if (cfg_node_kind(e) != CFG_NODE_MAP) return util_fail(err, errlen, -EINVAL, "tenants.%s: must be a map", name);
        for (size_t k = 0; k < cfg_node_len(e); k++) {
            const char *key = cfg_node_key_at(e, k);
            if (strcmp(key, "max_concurrent") && strcmp(key, "daily_tokens"))
                return util_fail(err, errlen, -EINVAL, "tenants.%s: unknown key '%s'", name, key);
        }
        int rc = cfg_node_get_int(e, "max_concurrent", &q.max_concurrent, m, sizeof m);
        if ((rc < 0 && rc != -ENOENT) || q.max_concurrent < -1 || q.max_concurrent == 0)
            return util_fail(err, errlen, -EINVAL, "tenants.%s.max_concurrent: a positive integer or -1", name);
        rc = cfg_node_get_int(e, "daily_tokens", &q.daily_tokens, m, sizeof m);
        if ((rc < 0 && rc != -ENOENT) || q.daily_tokens < -1)
            return util_fail(err, errlen, -EINVAL, "tenants.%s.daily_tokens: a non-negative integer or -1", name);
        if (i < cap) {
            snprintf(q.tenant, sizeof q.tenant, "%s", name);
            out[i] = q;
        }
    }
    return (int)n;
}

int orch_settings_from_cfg(const struct cfg *c, struct orch_settings *st, struct catalog **cat, char *err,
                           size_t errlen) {
    memset(st, 0, sizeof *st);
    if (orch_parse_bind(cfg_str(c, "bind"), st->bind_host, sizeof st->bind_host, &st->bind_port) < 0)
        return util_fail(err, errlen, -EINVAL, "bind: invalid");
    const char *dep = cfg_str(c, "deployment");
    st->deployment = !strcmp(dep, "platform") ? ORCH_PLATFORM : !strcmp(dep, "lab") ? ORCH_LAB : ORCH_HOME;
    st->state_path = cfg_str(c, "state.path");
    st->persist_prompts = strcmp(cfg_str(c, "state.persist_prompts"), "never") != 0;
    st->queue_capacity = cfg_int(c, "queue.capacity");
    st->sched.policy = cfg_str(c, "scheduling.policy");
    st->sched.eviction = strcmp(cfg_str(c, "eviction.worker_policy"), "lru") == 0;
    st->sched.headroom_bytes = cfg_u64(c, "scheduling.headroom_bytes");
    st->sched.lua_budget_ms = cfg_int(c, "scheduling.lua_budget_ms");
    st->sched.lua_mem_cap = (size_t)cfg_u64(c, "scheduling.lua_memory_bytes");
    st->sched.no_capacity_ms = cfg_int(c, "scheduling.no_capacity_ms");
    st->reg.heartbeat_interval_ms = cfg_int(c, "heartbeat.interval_ms");
    st->reg.missed_threshold = (int)cfg_int(c, "heartbeat.missed_threshold");
    st->reg.max_clock_skew_ms = cfg_int(c, "heartbeat.max_clock_skew_ms");
    st->adm.default_timeout_ms = cfg_int(c, "timeout.default_ms");
    st->adm.max_timeout_ms = cfg_int(c, "timeout.max_ms");
    st->adm.default_context_length = cfg_int(c, "admission.default_context_length");
    st->adm.max_prompt_bytes = (size_t)cfg_int(c, "admission.max_prompt_bytes");
    st->cancellation_deadline_ms = cfg_int(c, "timeout.cancellation_deadline_ms");
    st->keepalive_ms = cfg_int(c, "stream.keepalive_ms");
    st->idle_ttl_ms = cfg_int(c, "eviction.idle_ttl_s") * 1000;
    st->vram_threshold = cfg_float(c, "eviction.vram_threshold");
    st->retry_max_attempts = (int)cfg_int(c, "retry.max_attempts");
    st->retry_initial_delay_ms = cfg_int(c, "retry.initial_delay_ms");
    st->retry_max_delay_ms = cfg_int(c, "retry.max_delay_ms");
    st->retry_multiplier = cfg_float(c, "retry.multiplier");
    st->retry_jitter = cfg_bool(c, "retry.jitter");
    st->log_level = log_level_parse(cfg_str(c, "log.level"));
    return cat_from_tree(cfg_tree(c, "models"), cat, err, errlen);
}

int64_t orch_retry_delay_ms(const struct orch_settings *st, int attempt, double r01) {
    double d = (double)st->retry_initial_delay_ms * pow(st->retry_multiplier, attempt > 1 ? attempt - 1 : 0);
    if (d > (double)st->retry_max_delay_ms) d = (double)st->retry_max_delay_ms;
    if (st->retry_jitter) d = d / 2 + d / 2 * r01;
    return (int64_t)d;
}
