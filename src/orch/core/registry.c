/* registry — see registry.h. Arrays of structs; lookups by id are linear
 * (hundreds of pools, a few thousand workers: a scan is microseconds and the
 * arrays stay cache-friendly for the scheduler's full sweeps). */
#include "orch/core/registry.h"

#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct registry {
    struct reg_opts o;
    pthread_mutex_t mu;
    struct reg_pool *pools;
    size_t npools, cpools;
    struct reg_worker *workers;
    size_t nworkers, cworkers;
    struct reg_placement *pl;
    size_t npl, cpl;
};

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *n = realloc(*arr, nc * elem);
    if (!n) return -ENOMEM;
    *arr = n;
    *cap = nc;
    return 0;
}

static const char *const wstatus[] = { "starting", "ready", "busy", "draining", "failed" };
const char *reg_worker_status_name(enum reg_worker_status s) { return (unsigned)s < 5 ? wstatus[s] : "?"; }
int reg_worker_status_parse(const char *s) {
    for (int i = 0; s && i < 5; i++)
        if (strcmp(s, wstatus[i]) == 0) return i;
    return -1;
}

int reg_new(const struct reg_opts *o, struct registry **out) {
    *out = NULL;
    if (!o || o->heartbeat_interval_ms <= 0 || o->missed_threshold <= 0 || o->max_clock_skew_ms < 0) return -EINVAL;
    struct registry *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->o = *o;
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

void reg_free(struct registry *r) {
    if (!r) return;
    free(r->pools);
    free(r->workers);
    free(r->pl);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void reg_lock(struct registry *r) { pthread_mutex_lock(&r->mu); }
void reg_unlock(struct registry *r) { pthread_mutex_unlock(&r->mu); }

/* ======================================================================
 * pools
 * ==================================================================== */
static int pool_index(const struct registry *r, const char *id) {
    for (size_t i = 0; id && i < r->npools; i++)
        if (strcmp(r->pools[i].id, id) == 0) return (int)i;
    return -1;
}

static int check_devices(const struct reg_device *d, int n, char *err, size_t errlen) {
    if (n < 0 || n > REG_MAX_DEVICES) return util_fail(err, errlen, -EINVAL, "too many devices (max %d)", REG_MAX_DEVICES);
    for (int i = 0; i < n; i++) {
        if (d[i].gpu_id < REG_HOST_DEVICE || d[i].gpu_id > 1023)
            return util_fail(err, errlen, -EINVAL, "device %d: gpu_id out of range", i);
        if (d[i].free_bytes > d[i].total_bytes)
            return util_fail(err, errlen, -EINVAL, "device %d: free bytes exceed total", i);
        for (int j = 0; j < i; j++)
            if (d[j].gpu_id == d[i].gpu_id) return util_fail(err, errlen, -EINVAL, "duplicate gpu_id %d", d[i].gpu_id);
    }
    return 0;
}

int reg_pool_register(struct registry *r, const struct reg_pool *f, int64_t now_ms, char *err, size_t errlen) {
    if (!job_id_valid(f->id, JOB_POOL_ID_MAX)) return util_fail(err, errlen, -EINVAL, "invalid pool_id");
    if (!f->endpoint[0]) return util_fail(err, errlen, -EINVAL, "endpoint is required");
    int rc = check_devices(f->dev, f->ndev, err, errlen);
    if (rc < 0) return rc;
    int i = pool_index(r, f->id);
    if (i >= 0) {
        struct reg_pool *p = &r->pools[i];
        if (strcmp(p->token_fp, f->token_fp) != 0)
            return util_fail(err, errlen, -EEXIST, "pool %s is already registered by another identity", f->id);
        /* same identity takes over: new endpoint/devices, the replay guard restarts */
        memcpy(p->endpoint, f->endpoint, sizeof p->endpoint);
        memcpy(p->dev, f->dev, sizeof p->dev);
        p->ndev = f->ndev;
        p->registered_ms = p->last_seen_ms = now_ms;
        p->last_ts_ms = INT64_MIN;
        return 0;
    }
    if (grow((void **)&r->pools, &r->cpools, r->npools + 1, sizeof *r->pools) < 0) return -ENOMEM;
    struct reg_pool *p = &r->pools[r->npools++];
    *p = *f;
    p->id[sizeof p->id - 1] = 0;
    p->endpoint[sizeof p->endpoint - 1] = 0;
    p->token_fp[sizeof p->token_fp - 1] = 0;
    p->registered_ms = p->last_seen_ms = now_ms;
    p->last_ts_ms = INT64_MIN;
    return 0;
}

static int64_t window_ms(const struct registry *r) {
    return r->o.heartbeat_interval_ms * (int64_t)r->o.missed_threshold;
}

int reg_pool_available(const struct registry *r, const struct reg_pool *p, int64_t now_ms) {
    return p && now_ms - p->last_seen_ms <= window_ms(r);
}

size_t reg_pools_available(const struct registry *r, int64_t now_ms) {
    size_t n = 0;
    for (size_t i = 0; i < r->npools; i++) n += (size_t)reg_pool_available(r, &r->pools[i], now_ms);
    return n;
}

static int worker_index(const struct registry *r, const char *id) {
    for (size_t i = 0; id && i < r->nworkers; i++)
        if (strcmp(r->workers[i].id, id) == 0) return (int)i;
    return -1;
}

static void worker_delete_at(struct registry *r, size_t i) {
    r->workers[i] = r->workers[--r->nworkers];
}

int reg_pool_heartbeat(struct registry *r, const char *url_id, const struct reg_heartbeat *hb, int64_t now_ms,
                       char *err, size_t errlen) {
    if (!url_id || !hb->pool_id || strcmp(url_id, hb->pool_id) != 0)
        return util_fail(err, errlen, -EINVAL, "pool id in the URL does not match the payload");
    int pi = pool_index(r, url_id);
    if (pi < 0) return util_fail(err, errlen, -ENOENT, "pool %s is not registered", url_id);
    struct reg_pool *p = &r->pools[pi];
    if (strcmp(p->token_fp, hb->token_fp ? hb->token_fp : "") != 0)
        return util_fail(err, errlen, -EPERM, "heartbeat identity differs from the registration");
    if (hb->ts_ms <= p->last_ts_ms)
        return util_fail(err, errlen, -ESTALE, "heartbeat timestamp %lld is not newer than %lld (replayed?)",
                         (long long)hb->ts_ms, (long long)p->last_ts_ms);
    if (hb->ts_ms > now_ms + r->o.max_clock_skew_ms || hb->ts_ms < now_ms - r->o.max_clock_skew_ms - window_ms(r))
        return util_fail(err, errlen, -ESTALE, "heartbeat timestamp %lld is too far from now %lld",
                         (long long)hb->ts_ms, (long long)now_ms);
    int rc = check_devices(hb->dev, hb->ndev, err, errlen);
    if (rc < 0) return rc;
    for (size_t k = 0; k < hb->nworkers; k++) {
        const struct reg_worker *w = &hb->workers[k];
        if (!job_id_valid(w->id, JOB_WORKER_ID_MAX) || strcmp(w->pool_id, url_id) != 0)
            return util_fail(err, errlen, -EINVAL, "worker %zu: invalid id or foreign pool", k);
    }
    /* accepted: apply */
    p->last_ts_ms = hb->ts_ms;
    p->last_seen_ms = now_ms;
    memcpy(p->dev, hb->dev, (size_t)hb->ndev * sizeof *hb->dev);
    p->ndev = hb->ndev;
    for (size_t k = 0; k < hb->nworkers; k++)
        if ((rc = reg_worker_upsert(r, &hb->workers[k], now_ms)) < 0) return rc;
    /* full state: this pool's workers missing from the report are gone —
     * except ones we commanded recently that the pool may not list yet */
    for (size_t i = 0; i < r->nworkers;) {
        struct reg_worker *w = &r->workers[i];
        int listed = strcmp(w->pool_id, url_id) != 0;
        for (size_t k = 0; !listed && k < hb->nworkers; k++) listed = strcmp(hb->workers[k].id, w->id) == 0;
        if (!listed && !(w->status == REG_W_STARTING && now_ms - w->created_ms <= window_ms(r)))
            worker_delete_at(r, i);
        else
            i++;
    }
    return 0;
}

int reg_pool_remove(struct registry *r, const char *pool_id) {
    int pi = pool_index(r, pool_id);
    if (pi < 0) return -ENOENT;
    for (size_t i = 0; i < r->nworkers;) {
        if (strcmp(r->workers[i].pool_id, pool_id) == 0) worker_delete_at(r, i);
        else i++;
    }
    r->pools[pi] = r->pools[--r->npools];
    for (size_t i = 0; i < r->nworkers; i++) r->workers[i].pool_idx = pool_index(r, r->workers[i].pool_id);
    return 0;
}

const struct reg_pool *reg_pool_get(const struct registry *r, const char *id) {
    int i = pool_index(r, id);
    return i < 0 ? NULL : &r->pools[i];
}
size_t reg_pool_count(const struct registry *r) { return r->npools; }
const struct reg_pool *reg_pool_at(const struct registry *r, size_t i) { return i < r->npools ? &r->pools[i] : NULL; }

/* ======================================================================
 * workers
 * ==================================================================== */
int reg_worker_upsert(struct registry *r, const struct reg_worker *w, int64_t now_ms) {
    if (!job_id_valid(w->id, JOB_WORKER_ID_MAX) || w->ngpu < 0 || w->ngpu > REG_MAX_WORKER_GPUS ||
        (unsigned)w->status > REG_W_FAILED)
        return -EINVAL;
    int pi = pool_index(r, w->pool_id);
    if (pi < 0) return -ENOENT;
    int i = worker_index(r, w->id);
    if (i >= 0) {
        struct reg_worker *cur = &r->workers[i];
        if (strcmp(cur->pool_id, w->pool_id) != 0) return -EEXIST; /* ids are unique across pools */
        int active = cur->active_jobs;
        int64_t used = cur->last_used_ms, created = cur->created_ms;
        int draining = cur->status == REG_W_DRAINING;
        *cur = *w;
        /* a worker the orchestrator decided to stop stays draining until the
         * pool drops it (or reports it failed) */
        if (draining && (w->status == REG_W_READY || w->status == REG_W_BUSY)) cur->status = REG_W_DRAINING;
        cur->active_jobs = active;
        cur->last_used_ms = used;
        cur->created_ms = created;
        /* the orchestrator's own knowledge of a running job wins over a
         * heartbeat sent before the pool saw it */
        if (active > 0 && (w->status == REG_W_READY || w->status == REG_W_BUSY)) cur->status = REG_W_BUSY;
        cur->pool_idx = pi;
        return 0;
    }
    if (grow((void **)&r->workers, &r->cworkers, r->nworkers + 1, sizeof *r->workers) < 0) return -ENOMEM;
    struct reg_worker *n = &r->workers[r->nworkers++];
    *n = *w;
    n->active_jobs = 0;
    n->created_ms = now_ms;
    n->last_used_ms = w->last_used_ms ? w->last_used_ms : now_ms;
    n->pool_idx = pi;
    return 0;
}

int reg_worker_remove(struct registry *r, const char *id) {
    int i = worker_index(r, id);
    if (i < 0) return -ENOENT;
    worker_delete_at(r, (size_t)i);
    return 0;
}

struct reg_worker *reg_worker_get(struct registry *r, const char *id) {
    int i = worker_index(r, id);
    return i < 0 ? NULL : &r->workers[i];
}
size_t reg_worker_count(const struct registry *r) { return r->nworkers; }
struct reg_worker *reg_worker_at(struct registry *r, size_t i) { return i < r->nworkers ? &r->workers[i] : NULL; }

int reg_worker_set_status(struct registry *r, const char *id, enum reg_worker_status st) {
    struct reg_worker *w = reg_worker_get(r, id);
    if (!w) return -ENOENT;
    w->status = st;
    return 0;
}

int reg_worker_acquire(struct registry *r, const char *id, int64_t now_ms) {
    struct reg_worker *w = reg_worker_get(r, id);
    if (!w) return -ENOENT;
    if (w->status != REG_W_READY || w->active_jobs > 0) return -EBUSY;
    w->active_jobs = 1;
    w->status = REG_W_BUSY;
    w->last_used_ms = now_ms;
    return 0;
}

int reg_worker_release(struct registry *r, const char *id, int64_t now_ms) {
    struct reg_worker *w = reg_worker_get(r, id);
    if (!w) return -ENOENT;
    if (w->active_jobs > 0) w->active_jobs--;
    if (w->active_jobs == 0 && w->status == REG_W_BUSY) w->status = REG_W_READY;
    w->last_used_ms = now_ms;
    return 0;
}

const struct reg_pool *reg_worker_pool(const struct registry *r, const struct reg_worker *w) {
    return w->pool_idx >= 0 && (size_t)w->pool_idx < r->npools ? &r->pools[w->pool_idx] : NULL;
}

void reg_worker_counts(const struct registry *r, size_t counts[5]) {
    memset(counts, 0, 5 * sizeof counts[0]);
    for (size_t i = 0; i < r->nworkers; i++)
        if ((unsigned)r->workers[i].status < 5) counts[r->workers[i].status]++;
}

/* ======================================================================
 * placements
 * ==================================================================== */
static int pl_index(const struct registry *r, const char *m, const char *p, int g) {
    for (size_t i = 0; i < r->npl; i++)
        if (r->pl[i].gpu_id == g && strcmp(r->pl[i].model_ref, m) == 0 && strcmp(r->pl[i].pool_id, p) == 0)
            return (int)i;
    return -1;
}

int reg_placement_add(struct registry *r, const char *model_ref, const char *pool_id, int gpu_id) {
    if (!model_ref || !*model_ref || strlen(model_ref) > JOB_MODEL_REF_MAX || !job_id_valid(pool_id, JOB_POOL_ID_MAX) ||
        gpu_id < REG_HOST_DEVICE)
        return -EINVAL;
    if (pl_index(r, model_ref, pool_id, gpu_id) >= 0) return -EEXIST;
    if (grow((void **)&r->pl, &r->cpl, r->npl + 1, sizeof *r->pl) < 0) return -ENOMEM;
    struct reg_placement *p = &r->pl[r->npl++];
    memset(p, 0, sizeof *p); /* last_start_ms = 0: never started (realloc'd memory is garbage) */
    snprintf(p->model_ref, sizeof p->model_ref, "%s", model_ref);
    snprintf(p->pool_id, sizeof p->pool_id, "%s", pool_id);
    p->gpu_id = gpu_id;
    return 0;
}

int reg_placement_remove(struct registry *r, const char *model_ref, const char *pool_id, int gpu_id) {
    int i = pl_index(r, model_ref, pool_id, gpu_id);
    if (i < 0) return -ENOENT;
    r->pl[i] = r->pl[--r->npl];
    return 0;
}

size_t reg_placement_count(const struct registry *r) { return r->npl; }
const struct reg_placement *reg_placement_at(const struct registry *r, size_t i) {
    return i < r->npl ? &r->pl[i] : NULL;
}

struct reg_placement *reg_placement_at_mut(struct registry *r, size_t i) { return i < r->npl ? &r->pl[i] : NULL; }

static int worker_on_gpu(const struct reg_worker *w, int gpu_id) {
    if (gpu_id == REG_HOST_DEVICE) return w->ngpu == 0;
    for (int g = 0; g < w->ngpu; g++)
        if (w->gpu_ids[g] == gpu_id) return 1;
    return 0;
}

int reg_placement_served(const struct registry *r, const struct reg_placement *p) {
    for (size_t i = 0; i < r->nworkers; i++) {
        const struct reg_worker *w = &r->workers[i];
        if (w->status != REG_W_FAILED && strcmp(w->model_ref, p->model_ref) == 0 && strcmp(w->pool_id, p->pool_id) == 0 &&
            worker_on_gpu(w, p->gpu_id))
            return 1;
    }
    return 0;
}

int reg_worker_pinned(const struct registry *r, const struct reg_worker *w) {
    for (size_t i = 0; i < r->npl; i++) {
        const struct reg_placement *p = &r->pl[i];
        if (strcmp(p->model_ref, w->model_ref) != 0 || strcmp(p->pool_id, w->pool_id) != 0) continue;
        if (w->ngpu == 0 && p->gpu_id == REG_HOST_DEVICE) return 1;
        for (int g = 0; g < w->ngpu; g++)
            if (w->gpu_ids[g] == p->gpu_id) return 1;
    }
    return 0;
}

int reg_model_has_placement(const struct registry *r, const char *model_ref) {
    for (size_t i = 0; i < r->npl; i++)
        if (strcmp(r->pl[i].model_ref, model_ref) == 0) return 1;
    return 0;
}

/* ======================================================================
 * memory
 * ==================================================================== */
static int worker_on_device(const struct reg_worker *w, int gpu_id) {
    if (gpu_id == REG_HOST_DEVICE) return w->ngpu == 0;
    for (int g = 0; g < w->ngpu; g++)
        if (w->gpu_ids[g] == gpu_id) return 1;
    return 0;
}

uint64_t reg_device_room(const struct registry *r, const struct reg_pool *p, int dev_index) {
    LLORCH_ASSERT(dev_index >= 0 && dev_index < p->ndev);
    const struct reg_device *d = &p->dev[dev_index];
    uint64_t pending = 0;
    int pi = (int)(p - r->pools);
    for (size_t i = 0; i < r->nworkers; i++) {
        const struct reg_worker *w = &r->workers[i];
        if (w->pool_idx == pi && w->status == REG_W_STARTING && worker_on_device(w, d->gpu_id))
            pending += w->memory_bytes / (uint64_t)(w->ngpu ? w->ngpu : 1);
    }
    return d->free_bytes > pending ? d->free_bytes - pending : 0;
}

void reg_device_stats(const struct registry *r, uint64_t *room, int *workers) {
    size_t n = r->npools * REG_MAX_DEVICES;
    memset(room, 0, n * sizeof *room);   /* used as "pending" first */
    memset(workers, 0, n * sizeof *workers);
    for (size_t i = 0; i < r->nworkers; i++) {
        const struct reg_worker *w = &r->workers[i];
        if (w->pool_idx < 0 || (size_t)w->pool_idx >= r->npools) continue;
        const struct reg_pool *p = &r->pools[w->pool_idx];
        int ng = w->ngpu ? w->ngpu : 1;
        for (int g = 0; g < ng; g++) {
            int gpu = w->ngpu ? w->gpu_ids[g] : REG_HOST_DEVICE;
            for (int k = 0; k < p->ndev; k++) {
                if (p->dev[k].gpu_id != gpu) continue;
                size_t at = (size_t)w->pool_idx * REG_MAX_DEVICES + (size_t)k;
                workers[at]++;
                if (w->status == REG_W_STARTING) room[at] += w->memory_bytes / (uint64_t)ng;
                break;
            }
        }
    }
    for (size_t pi = 0; pi < r->npools; pi++)
        for (int k = 0; k < r->pools[pi].ndev; k++) {
            size_t at = pi * REG_MAX_DEVICES + (size_t)k;
            uint64_t f = r->pools[pi].dev[k].free_bytes;
            room[at] = f > room[at] ? f - room[at] : 0;
        }
}
