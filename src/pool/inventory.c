/* inventory — the devices this pool reports and preflights against, from one
 * source (nvml | host | simulated), plus the host device (RAM) always.
 * Snapshots are cached for at most 100 ms (SPEC §5: preflight must not act on
 * older facts; NVML calls cost ~ms). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "pool/pool.h"

#define INV_CACHE_NS (100ull * 1000 * 1000)

struct pool_inventory {
    enum pool_inv_kind kind;
    int degraded;                        /* nvml asked, none found: host only */
    struct pool_nvml *nvml;
    pthread_mutex_t mu;
    struct pool_device sim[POOL_MAX_DEVICES];
    int nsim;
    struct pool_device cache[POOL_MAX_DEVICES];
    int ncache;
    uint64_t cache_ns;                   /* 0 = stale */
};

int pool_inv_open(enum pool_inv_kind kind, const char *const *specs, size_t nsim, struct pool_inventory **out,
                  char *err, size_t errlen) {
    struct pool_inventory *v = calloc(1, sizeof *v);
    if (!v) return util_fail(err, errlen, -ENOMEM, "out of memory");
    v->kind = kind;
    pthread_mutex_init(&v->mu, NULL);
    if (kind == POOL_INV_SIMULATED) {
        if (nsim == 0 || nsim > POOL_MAX_DEVICES - 1) {
            pool_inv_close(v);
            return util_fail(err, errlen, -EINVAL, "simulated inventory needs 1..%d devices", POOL_MAX_DEVICES - 1);
        }
        for (size_t i = 0; i < nsim; i++) {
            int rc = pool_sim_parse(specs[i], (int)i, &v->sim[i], err, errlen);
            if (rc < 0) {
                pool_inv_close(v);
                return rc;
            }
        }
        v->nsim = (int)nsim;
        LOG_KV(LOG_WARN, POOL_COMPONENT, "inventory", NULL, "\"source\":\"simulated\",\"devices\":%d,"
               "\"msg\":\"simulated GPUs (a test double): not real hardware\"", v->nsim);
    } else if (kind == POOL_INV_NVML) {
        char e[256];
        if (pool_nvml_open(&v->nvml, e, sizeof e) < 0) {
            v->degraded = 1;
            LOG_INFO(POOL_COMPONENT, "inventory", NULL, "no NVML (%s): host device only", e);
        }
    }
    *out = v;
    return 0;
}

void pool_inv_close(struct pool_inventory *v) {
    if (!v) return;
    pool_nvml_close(v->nvml);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

const char *pool_inv_source(const struct pool_inventory *v) {
    switch (v->kind) {
    case POOL_INV_SIMULATED: return "simulated";
    case POOL_INV_NVML: return v->degraded ? "host" : "nvml";
    default: return "host";
    }
}

void pool_inv_sim_account(struct pool_inventory *v, int gpu_id, uint64_t used) {
    if (v->kind != POOL_INV_SIMULATED) return;
    pthread_mutex_lock(&v->mu);
    for (int i = 0; i < v->nsim; i++)
        if (v->sim[i].gpu_id == gpu_id) {
            v->sim[i].used_bytes = used < v->sim[i].total_bytes ? used : v->sim[i].total_bytes;
            v->sim[i].free_bytes = v->sim[i].total_bytes - v->sim[i].used_bytes;
        }
    v->cache_ns = 0; /* accounting changed: next snapshot reflects it */
    pthread_mutex_unlock(&v->mu);
}

int pool_inv_snapshot(struct pool_inventory *v, struct pool_device *out, int cap) {
    pthread_mutex_lock(&v->mu);
    uint64_t now = util_now_ns();
    if (!v->cache_ns || now - v->cache_ns > INV_CACHE_NS) {
        int n = 0;
        if (v->kind == POOL_INV_SIMULATED) {
            memcpy(v->cache, v->sim, sizeof v->sim[0] * (size_t)v->nsim);
            n = v->nsim;
        } else if (v->nvml) {
            int k = pool_nvml_read(v->nvml, v->cache, POOL_MAX_DEVICES - 1);
            n = k > 0 ? k : 0;
        }
        if (pool_host_read(&v->cache[n]) == 0) n++;
        v->ncache = n;
        v->cache_ns = now;
    }
    int n = v->ncache < cap ? v->ncache : cap;
    memcpy(out, v->cache, sizeof *out * (size_t)n);
    pthread_mutex_unlock(&v->mu);
    return n;
}
