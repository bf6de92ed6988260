/* orch_config — orchestratord's option table (SPEC §6 Config, §7 flags) and
 * the typed settings derived from it. main.c does:
 *
 *     struct cfg *c; char err[512];
 *     int rc = cfg_load(orch_cfg_opts, orch_cfg_nopts, argc, argv, NULL, orch_cfg_check, &c, err, sizeof err);
 *     if (rc == CFG_HELP) { cfg_usage(...); exit(0); }
 *     if (rc < 0) { fprintf(stderr, "orchestratord: %s\n", err); exit(2); }
 *     struct orch_settings st; orch_settings_from_cfg(c, &st, &catalog, err, sizeof err);
 *
 * Flags: --bind --state --deployment --queue-capacity --policy
 * --heartbeat-interval-ms --missed-threshold (SPEC §7), plus one derived flag
 * per YAML key (--retry-max-attempts ...), each with its LLORCH_* variable. */
#ifndef LLORCH_ORCH_CONFIG_H
#define LLORCH_ORCH_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "orch/core/admission.h"
#include "orch/core/catalog.h"
#include "orch/core/registry.h"
#include "orch/core/sched.h"

extern const struct cfg_opt orch_cfg_opts[];
extern const size_t orch_cfg_nopts;

/* Cross-option checks (cfg_check_fn): timeouts ordered, home binds loopback,
 * lab/platform have tokens, platform tokens carry a tenant, the catalog parses. */
int orch_cfg_check(const struct cfg *c, char *err, size_t errlen);

enum orch_deployment { ORCH_HOME = 0, ORCH_LAB, ORCH_PLATFORM };

struct orch_settings {
    char bind_host[256];
    int bind_port;
    enum orch_deployment deployment;
    const char *state_path;          /* borrowed from the cfg */
    int persist_prompts;             /* 1 = queued (default), 0 = never */
    int64_t queue_capacity;          /* -1 = unbounded */
    struct sched_opts sched;         /* .policy borrowed from the cfg */
    struct reg_opts reg;
    struct adm_limits adm;
    int64_t cancellation_deadline_ms;
    int64_t keepalive_ms;            /* idle stream/body keep-alive period (stream.keepalive_ms) */
    int64_t idle_ttl_ms;             /* 0 = off */
    double vram_threshold;
    int retry_max_attempts;
    int64_t retry_initial_delay_ms, retry_max_delay_ms;
    double retry_multiplier;
    int retry_jitter;
    int log_level;
};

/* Fills st and builds the catalog (caller frees with cat_free). */
int orch_settings_from_cfg(const struct cfg *c, struct orch_settings *st, struct catalog **cat, char *err,
                           size_t errlen);
/* Per-tenant quotas from the `tenants` tree (platform deployments):
 *     tenants: {acme: {max_concurrent: 2, daily_tokens: 100000}}
 * -1 (or absent) = unlimited. Fills up to cap entries; returns the count
 * (which may exceed cap), or <0 with err naming the entry. */
struct orch_tenant_quota {
    char tenant[JOB_TENANT_MAX + 1];
    int64_t max_concurrent, daily_tokens;
};
int orch_tenant_quotas(const struct cfg_node *tenants, struct orch_tenant_quota *out, size_t cap, char *err,
                       size_t errlen);
/* "host:port" -> parts; port 0..65535; IPv6 as [addr]:port. */
int orch_parse_bind(const char *s, char *host, size_t hcap, int *port);
/* 1 for 127.0.0.0/8, ::1 and "localhost". */
int orch_host_is_loopback(const char *host);
/* Retry delay for attempt n (1-based): initial * multiplier^(n-1), capped,
 * with full jitter in [delay/2, delay] when jitter (r01 in [0,1)). */
int64_t orch_retry_delay_ms(const struct orch_settings *st, int attempt, double r01);

#endif
