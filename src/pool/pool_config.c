/* pool_config — pool-managerd's options (SPEC §5, §7) on llorch_config, and
 * the adapters list. Precedence: defaults < YAML < LLORCH_* env < flags. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "pool/adapters/adapter.h"
#include "pool/pool.h"

int pool_parse_hostport(const char *s, char *host, size_t hcap, int *port) {
    if (!s || !*s) return -EINVAL;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return -EINVAL;
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') { s++; hl -= 2; } /* [::1]:9200 */
    if (hl == 0 || hl >= hcap) return -EINVAL;
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || v < 0 || v > 65535) return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = (int)v;
    return 0;
}

static int v_bind(const struct cfg *c, const char *key, char *err, size_t errlen) {
    char h[256];
    int port;
    if (pool_parse_hostport(cfg_str(c, key), h, sizeof h, &port) < 0)
        return util_fail(err, errlen, -EINVAL, "'%s' is not HOST:PORT", cfg_str(c, key));
    return 0;
}

static int v_pool_id(const struct cfg *c, const char *key, char *err, size_t errlen) {
    const char *s = cfg_str(c, key);
    if (!s) return 0;
    size_t n = strlen(s);
    if (n == 0 || n > POOL_ID_MAX) return util_fail(err, errlen, -EINVAL, "must be 1..%d characters", POOL_ID_MAX);
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '-' || s[i] == '_' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return util_fail(err, errlen, -EINVAL, "'%s': only [A-Za-z0-9._-]", s);
    return 0;
}

static int v_url(const struct cfg *c, const char *key, char *err, size_t errlen) {
    const char *s = cfg_str(c, key);
    if (!s || !*s) return 0;
    if (strncmp(s, "http://", 7) && strncmp(s, "https://", 8))
        return util_fail(err, errlen, -EINVAL, "'%s' is not an http(s) URL", s);
    if (strlen(s) > 255) return util_fail(err, errlen, -EINVAL, "URL longer than 255 bytes");
    return 0;
}

static int v_sim(const struct cfg *c, const char *key, char *err, size_t errlen) {
    const char *const *items;
    size_t n = cfg_list(c, key, &items);
    struct pool_device d;
    for (size_t i = 0; i < n; i++)
        if (pool_sim_parse(items[i], (int)i, &d, err, errlen) < 0) return -EINVAL;
    return 0;
}

static int check_all(const struct cfg *c, char *err, size_t errlen) {
    if (!strcmp(cfg_str(c, "inventory"), "simulated") && cfg_list(c, "inventory_simulated_devices", NULL) == 0)
        return util_fail(err, errlen, -EINVAL,
                         "inventory: simulated needs inventory_simulated_devices (NAME:BYTES,...)");
    return 0;
}

const struct cfg_opt pool_cfg_opts[] = {
    { .key = "bind", .type = CFG_STRING, .def = "127.0.0.1:9200", .flag = "--bind", .validate = v_bind,
      .help = "HOST:PORT of the control API (port 0 = ephemeral)" },
    { .key = "advertise_url", .type = CFG_STRING, .flag = "--advertise-url", .validate = v_url,
      .help = "URL the orchestrator uses to reach this pool (default http://<bind>)" },
    { .key = "pool_id", .type = CFG_STRING, .flag = "--pool-id", .validate = v_pool_id,
      .help = "this pool's id (default pool-<hostname>)" },
    { .key = "orchestrator.url", .type = CFG_STRING, .flag = "--orchestrator-url", .validate = v_url,
      .help = "orchestratord base URL; unset = standalone (no registration)" },
    { .key = "orchestrator.token", .type = CFG_STRING, .flag = "--orchestrator-token",
      .help = "bearer token presented to the orchestrator" },
    { .key = "heartbeat_interval_ms", .type = CFG_DURATION_MS, .def = "15000", .flag = "--heartbeat-interval-ms",
      .min = 10, .max = 3600000, .help = "heartbeat period" },
    { .key = "models.cache_dir", .type = CFG_STRING, .flag = "--cache-dir",
      .help = "model cache (must be writable; default $HOME/.cache/llama-orch/models)" },
    { .key = "models.cache_reserve_bytes", .type = CFG_U64, .def = "0", .flag = "--cache-reserve-bytes",
      .help = "a model pull is refused (INSUFFICIENT_STORAGE) unless it leaves this much free on the cache's disk" },
    { .key = "inventory", .type = CFG_ENUM, .def = "nvml", .flag = "--inventory", .enums = "nvml|host|simulated",
      .help = "device source: NVML (falls back to host), host only, or the simulated test double" },
    { .key = "inventory_simulated_devices", .type = CFG_LIST, .flag = "--simulated-devices", .validate = v_sim,
      .help = "simulated GPUs (test double): NAME:BYTES,..." },
    { .key = "gpu_headroom_bytes", .type = CFG_U64, .def = "0", .flag = "--gpu-headroom-bytes",
      .help = "kept free on every device" },
    { .key = "gpu_headroom_percent", .type = CFG_FLOAT, .def = "0", .flag = "--gpu-headroom-percent", .fmin = 0,
      .fmax = 90, .help = "kept free on every device, % of its total" },
    { .key = "stop_grace_ms", .type = CFG_DURATION_MS, .def = "10000", .flag = "--stop-grace-ms", .min = 0,
      .max = 600000, .help = "SIGTERM to SIGKILL grace" },
    { .key = "start_timeout_ms", .type = CFG_DURATION_MS, .def = "300000", .flag = "--start-timeout-ms", .min = 100,
      .max = 86400000, .help = "a worker not ready by then is killed" },
    { .key = "worker_health.interval_ms", .type = CFG_DURATION_MS, .def = "5000", .flag = "--worker-health-interval-ms",
      .min = 0, .max = 3600000, .help = "how often each ready worker's /health is polled (0 = never)" },
    { .key = "worker_health.timeout_ms", .type = CFG_DURATION_MS, .def = "2000", .flag = "--worker-health-timeout-ms",
      .min = 10, .max = 600000, .help = "a /health poll not answered by then is a miss" },
    { .key = "worker_health.failures", .type = CFG_INT, .def = "2", .flag = "--worker-health-failures", .min = 1,
      .max = 1000, .help = "consecutive misses before a worker is reported failed" },
    { .key = "log.level", .type = CFG_ENUM, .def = "info", .enums = "error|warn|info|debug|trace",
      .flag = "--log-level" },
    { .key = "adapters", .type = CFG_TREE,
      .help = "list of {name, type, binary_path, capabilities, platform, memory_architecture, config, default}" },
};
const size_t pool_cfg_nopts = sizeof pool_cfg_opts / sizeof pool_cfg_opts[0];
const cfg_check_fn pool_cfg_check = check_all;

/* ---- adapters -------------------------------------------------------------- */
/* "<dir of pool-managerd>/<name>" */
static int beside(const struct pool *p, const char *name, char *out, size_t cap) {
    size_t a = strlen(p->self_dir), b = strlen(name);
    if (a + 1 + b + 1 > cap) return -1;
    memcpy(out, p->self_dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
    return 0;
}

static int adapter_from_node(struct pool *p, const struct cfg_node *m, size_t idx, struct pool_adapter *a, char *err,
                             size_t errlen) {
    static const char *known[] = { "name", "type", "binary_path", "capabilities", "platform", "memory_architecture",
                                   "config", "default" };
    char e2[200];
    if (cfg_node_kind(m) != CFG_NODE_MAP) return util_fail(err, errlen, -EINVAL, "adapters[%zu]: must be a map", idx);
    for (size_t i = 0; i < cfg_node_len(m); i++) {
        const char *k = cfg_node_key_at(m, i);
        int ok = 0;
        for (size_t j = 0; j < UTIL_ARRAY_LEN(known); j++) ok |= !strcmp(k, known[j]);
        if (!ok) return util_fail(err, errlen, -EINVAL, "adapters[%zu]: unknown key '%.64s'", idx, k);
    }
    const char *name = NULL, *type = NULL, *bin = NULL, *plat = NULL, *ma = NULL;
    if (cfg_node_get_str(m, "type", &type, e2, sizeof e2) < 0 || !(a->ops = pool_adapter_ops_find(type)))
        return util_fail(err, errlen, -EINVAL, "adapters[%zu].type: one of bespoke-cuda|cpu|llamacpp|apple-metal", idx);
    if (cfg_node_get_str(m, "name", &name, e2, sizeof e2) < 0) name = type;
    if (strlen(name) >= sizeof a->name) return util_fail(err, errlen, -EINVAL, "adapters[%zu].name: too long", idx);
    snprintf(a->name, sizeof a->name, "%s", name);
    int rc = cfg_node_get_str(m, "binary_path", &bin, e2, sizeof e2);
    if (rc == -EINVAL) return util_fail(err, errlen, -EINVAL, "adapters.%s.binary_path: %s", name, e2);
    if (bin) snprintf(a->binary, sizeof a->binary, "%s", bin);
    else if (beside(p, a->ops->default_binary, a->binary, sizeof a->binary) < 0)
        return util_fail(err, errlen, -EINVAL, "adapters.%s: path too long", name);
    const char *caps[8];
    rc = cfg_node_get_strs(m, "capabilities", caps, 8, e2, sizeof e2);
    if (rc == -EINVAL) return util_fail(err, errlen, -EINVAL, "adapters.%s.capabilities: %s", name, e2);
    static const char *capn[] = { "text-gen", "image-gen", "audio-gen", "embedding", "multimodal" };
    for (int i = 0; i < rc; i++) {
        int ok = 0;
        for (size_t j = 0; j < UTIL_ARRAY_LEN(capn); j++) ok |= !strcmp(caps[i], capn[j]);
        if (!ok) return util_fail(err, errlen, -EINVAL, "adapters.%s.capabilities: unknown '%.32s'", name, caps[i]);
        snprintf(a->capabilities[a->ncaps++], sizeof a->capabilities[0], "%s", caps[i]);
    }
    if (a->ncaps == 0) snprintf(a->capabilities[a->ncaps++], sizeof a->capabilities[0], "text-gen");
    if (cfg_node_get_str(m, "platform", &plat, e2, sizeof e2) == 0) snprintf(a->platform, sizeof a->platform, "%s", plat);
    if (cfg_node_get_str(m, "memory_architecture", &ma, e2, sizeof e2) == 0) {
        if (strcmp(ma, "vram-only") && strcmp(ma, "host") && strcmp(ma, "unified"))
            return util_fail(err, errlen, -EINVAL, "adapters.%s.memory_architecture: vram-only|host|unified", name);
        snprintf(a->memory_architecture, sizeof a->memory_architecture, "%s", ma);
    }
    int def = 0;
    if (cfg_node_get_bool(m, "default", &def, e2, sizeof e2) == -EINVAL)
        return util_fail(err, errlen, -EINVAL, "adapters.%s.default: %s", name, e2);
    a->is_default = def;
    const struct cfg_node *conf = cfg_node_get(m, "config");
    if (conf) {
        const char *args = NULL;
        if (cfg_node_get_str(conf, "args", &args, e2, sizeof e2) == 0)
            snprintf(a->extra_args, sizeof a->extra_args, "%s", args);
    }
    return 0;
}

static int has_gpu(struct pool *p) {
    struct pool_device d[POOL_MAX_DEVICES];
    int n = pool_inv_snapshot(p->inv, d, POOL_MAX_DEVICES);
    for (int i = 0; i < n; i++)
        if (d[i].gpu_id >= 0) return 1;
    return 0;
}

static int build_adapters(struct pool *p, char *err, size_t errlen) {
    const struct cfg_node *list = cfg_tree(p->cfg, "adapters");
    p->adapters = calloc(POOL_MAX_ADAPTERS, sizeof *p->adapters);
    if (!p->adapters) return util_fail(err, errlen, -ENOMEM, "out of memory");
    if (list) {
        if (cfg_node_kind(list) != CFG_NODE_SEQ || cfg_node_len(list) > POOL_MAX_ADAPTERS)
            return util_fail(err, errlen, -EINVAL, "adapters: must be a list of at most %d maps", POOL_MAX_ADAPTERS);
        for (size_t i = 0; i < cfg_node_len(list); i++) {
            int rc = adapter_from_node(p, cfg_node_at(list, i), i, &p->adapters[i], err, errlen);
            if (rc < 0) return rc;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(p->adapters[j].name, p->adapters[i].name))
                    return util_fail(err, errlen, -EINVAL, "adapters: duplicate name '%s'", p->adapters[i].name);
            p->nadapters++;
        }
    } else {
        /* Defaults that work with no config: bespoke-cuda when worker-orcd sits
         * beside us and a real GPU is seen; cpu when worker-cpud does. */
        const struct pool_adapter_ops *cand[] = { &pool_adapter_bespoke_cuda, &pool_adapter_cpu };
        for (size_t i = 0; i < 2; i++) {
            struct pool_adapter *a = &p->adapters[p->nadapters];
            a->ops = cand[i];
            snprintf(a->name, sizeof a->name, "%s", cand[i]->type);
            if (beside(p, cand[i]->default_binary, a->binary, sizeof a->binary) < 0) continue;
            snprintf(a->capabilities[0], sizeof a->capabilities[0], "text-gen");
            a->ncaps = 1;
            if (access(a->binary, X_OK) != 0) continue;
            if (cand[i]->uses_gpu && (!has_gpu(p) || strcmp(pool_inv_source(p->inv), "nvml"))) continue;
            p->nadapters++;
        }
        if (p->nadapters == 0)
            return util_fail(err, errlen, -ENOENT,
                             "adapters: none configured and neither worker-orcd nor worker-cpud is beside %s",
                             p->self_dir);
    }
    int ndef = 0;
    for (int i = 0; i < p->nadapters; i++) ndef += p->adapters[i].is_default;
    if (ndef > 1) return util_fail(err, errlen, -EINVAL, "adapters: more than one has default: true");
    if (ndef == 0) p->adapters[0].is_default = 1;
    for (int i = 0; i < p->nadapters; i++) {
        struct pool_adapter *a = &p->adapters[i];
        char e2[256];
        if (a->ops->platform_ok(e2, sizeof e2) != 0) { /* refuses at preflight; nothing to validate */
            LOG_INFO(POOL_COMPONENT, "adapter", NULL, "adapter %s (%s): %s", a->name, a->ops->type, e2);
            continue;
        }
        if (pool_adapter_check_binary(a->binary, p->self_dir, e2, sizeof e2) < 0)
            return util_fail(err, errlen, -EINVAL, "adapters.%s: %s", a->name, e2);
        LOG_KV(LOG_INFO, POOL_COMPONENT, "adapter", NULL, "\"name\":\"%s\",\"type\":\"%s\",\"default\":%s", a->name,
               a->ops->type, a->is_default ? "true" : "false");
    }
    return 0;
}

static int mkdirs(const char *path) {
    char tmp[POOL_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
            *s = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
    return 0;
}

static int check_cache_dir(const char *dir, char *err, size_t errlen) {
    if (mkdirs(dir) < 0) return util_fail(err, errlen, -EACCES, "models.cache_dir '%s': cannot create: %s", dir, strerror(errno));
    char probe[POOL_PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/.write-probe-%d", dir, (int)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return util_fail(err, errlen, -EACCES, "models.cache_dir '%s' is not writable: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

int pool_config_apply(struct pool *p, char *err, size_t errlen) {
    struct cfg *c = p->cfg;
    const char *id = cfg_str(c, "pool_id");
    if (id && *id) snprintf(p->pool_id, sizeof p->pool_id, "%s", id);
    else {
        char h[64] = "local";
        gethostname(h, sizeof h - 1);
        h[sizeof h - 1] = 0;
        for (char *s = h; *s; s++)
            if (*s == '.') *s = '-';
        snprintf(p->pool_id, sizeof p->pool_id, "pool-%.56s", h);
    }
    const char *u = cfg_str(c, "orchestrator.url");
    p->orch_url = u && *u ? u : NULL;
    const char *t = cfg_str(c, "orchestrator.token");
    p->orch_token = t && *t ? t : NULL;
    p->hb_interval_ms = cfg_int(c, "heartbeat_interval_ms");
    p->stop_grace_ms = cfg_int(c, "stop_grace_ms");
    p->start_timeout_ms = cfg_int(c, "start_timeout_ms");
    p->health_interval_ms = cfg_int(c, "worker_health.interval_ms");
    p->health_timeout_ms = cfg_int(c, "worker_health.timeout_ms");
    p->health_failures = (int)cfg_int(c, "worker_health.failures");
    p->headroom_bytes = cfg_u64(c, "gpu_headroom_bytes");
    p->headroom_pct = cfg_float(c, "gpu_headroom_percent");
    p->cache_reserve_bytes = cfg_u64(c, "models.cache_reserve_bytes");
    const char *cd = cfg_str(c, "models.cache_dir");
    if (cd && *cd) snprintf(p->cache_dir, sizeof p->cache_dir, "%s", cd);
    else if (getenv("HOME") && *getenv("HOME")) snprintf(p->cache_dir, sizeof p->cache_dir, "%s/.cache/llama-orch/models", getenv("HOME"));
    else snprintf(p->cache_dir, sizeof p->cache_dir, "/tmp/llama-orch-models");
    int rc = check_cache_dir(p->cache_dir, err, errlen);
    if (rc < 0) return rc;

    const char *inv = cfg_str(c, "inventory");
    enum pool_inv_kind k = !strcmp(inv, "simulated") ? POOL_INV_SIMULATED : !strcmp(inv, "host") ? POOL_INV_HOST
                                                                                                   : POOL_INV_NVML;
    const char *const *sims;
    size_t nsim = cfg_list(c, "inventory_simulated_devices", &sims);
    char e2[256];
    rc = pool_inv_open(k, sims, nsim, &p->inv, e2, sizeof e2);
    if (rc < 0) return util_fail(err, errlen, rc, "inventory: %s", e2);
    return build_adapters(p, err, errlen);
}
