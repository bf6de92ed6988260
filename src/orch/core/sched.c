/* sched — see sched.h. Sections: lifecycle, candidate collection, built-in
 * policies, Lua glue, the decision, logging. */
#include "orch/core/sched.h"

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "orch/core/sched_lua.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dev_cand {
    const struct reg_pool *pool;
    int dev_index;
    int gpu_id;
    uint64_t room, total;
    int workers;           /* workers already on the device */
};

struct sched {
    enum sched_policy policy;
    struct sched_opts o;
    struct slua *lua;
    struct sched_stats stats;
    char rr_worker[JOB_WORKER_ID_MAX + 1];   /* round-robin cursors: last chosen key */
    char rr_pool[JOB_POOL_ID_MAX + 1];       /* device cursor: (pool id, gpu id) */
    int rr_gpu;
    /* scratch, grown as needed (one decision at a time) */
    size_t *wc;            /* worker candidate indices */
    size_t cwc;
    struct dev_cand *dc;
    size_t cdc;
    struct slua_cand *lc;
    size_t clc;
    int *pool_busy, *pool_total;   /* per pool index: busy / all workers */
    size_t cpool_b, cpool_t;
    uint64_t *droom;               /* per device (reg_device_stats layout) */
    int *dworkers;
    size_t cdroom, cdworkers;
};

static const char *const action_names[] = { "dispatch", "start", "wait", "reject" };
const char *sched_action_name(enum sched_action a) { return (unsigned)a < 4 ? action_names[a] : "?"; }

uint64_t sched_need_bytes(uint64_t est) { return est + (est + 9) / 10; }

/* ======================================================================
 * lifecycle
 * ==================================================================== */
int sched_new(const struct sched_opts *o, struct sched **out, char *err, size_t errlen) {
    *out = NULL;
    const char *p = o->policy ? o->policy : "least-loaded";
    struct sched *s = calloc(1, sizeof *s);
    if (!s) return util_fail(err, errlen, -ENOMEM, "sched: out of memory");
    s->o = *o;
    if (strcmp(p, "least-loaded") == 0) s->policy = SCHED_LEAST_LOADED;
    else if (strcmp(p, "most-vram-free") == 0) s->policy = SCHED_MOST_VRAM_FREE;
    else if (strcmp(p, "round-robin") == 0) s->policy = SCHED_ROUND_ROBIN;
    else if (strncmp(p, "lua:", 4) == 0 && p[4]) {
        s->policy = SCHED_LUA;
        int rc = slua_new(p + 4, o->lua_budget_ms > 0 ? o->lua_budget_ms : 50, o->lua_mem_cap, &s->lua, err, errlen);
        if (rc < 0) { free(s); return rc; }
    } else {
        free(s);
        return util_fail(err, errlen, -EINVAL,
                         "unknown scheduling policy '%s' (least-loaded|most-vram-free|round-robin|lua:<path>)", p);
    }
    s->o.policy = NULL; /* not kept: the caller's string */
    s->rr_gpu = REG_HOST_DEVICE - 1; /* before every device */
    *out = s;
    return 0;
}

int sched_set_lua_text(struct sched *s, const char *text, char *err, size_t errlen) {
    struct slua *l;
    int rc = slua_new_text("=policy", text, strlen(text), s->o.lua_budget_ms > 0 ? s->o.lua_budget_ms : 50,
                           s->o.lua_mem_cap, &l, err, errlen);
    if (rc < 0) return rc;
    slua_free(s->lua);
    s->lua = l;
    s->policy = SCHED_LUA;
    return 0;
}

void sched_free(struct sched *s) {
    if (!s) return;
    slua_free(s->lua);
    free(s->wc);
    free(s->dc);
    free(s->lc);
    free(s->pool_busy);
    free(s->pool_total);
    free(s->droom);
    free(s->dworkers);
    free(s);
}

enum sched_policy sched_policy(const struct sched *s) { return s->policy; }
void sched_get_stats(const struct sched *s, struct sched_stats *out) { *out = s->stats; }

static int ensure(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *n = realloc(*p, nc * elem);
    if (!n) return -ENOMEM;
    *p = n;
    *cap = nc;
    return 0;
}

/* ======================================================================
 * helpers over the registry
 * ==================================================================== */
static int dev_index_of(const struct reg_pool *p, int gpu_id) {
    for (int k = 0; k < p->ndev; k++)
        if (p->dev[k].gpu_id == gpu_id) return k;
    return -1;
}

/* room on the worker's first device (host device for host workers), from
 * the per-decision device stats */
static uint64_t worker_room(const struct sched *s, const struct registry *r, const struct reg_worker *w) {
    const struct reg_pool *p = reg_worker_pool(r, w);
    if (!p) return 0;
    int k = dev_index_of(p, w->ngpu ? w->gpu_ids[0] : REG_HOST_DEVICE);
    return k < 0 ? 0 : s->droom[(size_t)w->pool_idx * REG_MAX_DEVICES + (size_t)k];
}

static int placement_allows(const struct registry *r, int has_pl, const char *model, const char *pool_id, int gpu_id) {
    if (!has_pl) return 1;
    for (size_t i = 0; i < reg_placement_count(r); i++) {
        const struct reg_placement *pl = reg_placement_at(r, i);
        if (strcmp(pl->model_ref, model) == 0 && strcmp(pl->pool_id, pool_id) == 0 && pl->gpu_id == gpu_id) return 1;
    }
    return 0;
}

static uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/* ======================================================================
 * built-in policies
 * ==================================================================== */
static size_t pick_worker_builtin(struct sched *s, enum sched_policy pol, struct registry *r, size_t n) {
    size_t best = 0;
    if (pol == SCHED_ROUND_ROBIN) {
        /* smallest id greater than the last chosen, else the smallest id */
        int have_next = 0;
        size_t next = 0, first = 0;
        for (size_t i = 0; i < n; i++) {
            const char *id = reg_worker_at(r, s->wc[i])->id;
            if (strcmp(id, reg_worker_at(r, s->wc[first])->id) < 0) first = i;
            if (strcmp(id, s->rr_worker) > 0 &&
                (!have_next || strcmp(id, reg_worker_at(r, s->wc[next])->id) < 0)) {
                next = i;
                have_next = 1;
            }
        }
        return have_next ? next : first;
    }
    for (size_t i = 1; i < n; i++) {
        const struct reg_worker *a = reg_worker_at(r, s->wc[i]), *b = reg_worker_at(r, s->wc[best]);
        int better;
        if (pol == SCHED_MOST_VRAM_FREE) {
            uint64_t ra = worker_room(s, r, a), rb = worker_room(s, r, b);
            better = ra != rb ? ra > rb : strcmp(a->id, b->id) < 0;
        } else { /* least-loaded: pool busy ratio, then LRU, then id */
            int64_t la = (int64_t)s->pool_busy[a->pool_idx] * s->pool_total[b->pool_idx];
            int64_t lb = (int64_t)s->pool_busy[b->pool_idx] * s->pool_total[a->pool_idx];
            if (la != lb) better = la < lb;
            else if (a->last_used_ms != b->last_used_ms) better = a->last_used_ms < b->last_used_ms;
            else better = strcmp(a->id, b->id) < 0;
        }
        if (better) best = i;
    }
    return best;
}

/* total order on devices: pool id, then gpu id */
static int dev_cmp(const char *pa, int ga, const char *pb, int gb) {
    int c = strcmp(pa, pb);
    return c ? c : (ga > gb) - (ga < gb);
}

static size_t pick_device_builtin(struct sched *s, enum sched_policy pol, size_t n) {
    size_t best = 0;
    if (pol == SCHED_ROUND_ROBIN) {
        int have_next = 0;
        size_t next = 0, first = 0;
        for (size_t i = 0; i < n; i++) {
            const struct dev_cand *c = &s->dc[i], *f = &s->dc[first], *b = &s->dc[next];
            if (dev_cmp(c->pool->id, c->gpu_id, f->pool->id, f->gpu_id) < 0) first = i;
            if (dev_cmp(c->pool->id, c->gpu_id, s->rr_pool, s->rr_gpu) > 0 &&
                (!have_next || dev_cmp(c->pool->id, c->gpu_id, b->pool->id, b->gpu_id) < 0)) {
                next = i;
                have_next = 1;
            }
        }
        return have_next ? next : first;
    }
    for (size_t i = 1; i < n; i++) {
        const struct dev_cand *a = &s->dc[i], *b = &s->dc[best];
        int better;
        if (pol == SCHED_MOST_VRAM_FREE || a->workers == b->workers) better = a->room > b->room;
        else better = a->workers < b->workers;
        if (better) best = i;
    }
    return best;
}

/* ======================================================================
 * Lua glue: returns the index or falls back to least-loaded
 * ==================================================================== */
static void fallback(struct sched *s, const struct sched_job *job, const char *why) {
    s->stats.lua_fallbacks++;
    snprintf(s->stats.last_fallback, sizeof s->stats.last_fallback, "%s", why);
    struct util_sb sb;
    char kv[512];
    util_sb_init_fixed(&sb, kv, sizeof kv);
    util_sb_puts(&sb, "\"job_id\":");
    util_sb_json_str(&sb, job->job_id ? job->job_id : "");
    util_sb_puts(&sb, ",\"reason\":");
    util_sb_json_str(&sb, why);
    util_sb_printf(&sb, ",\"fallbacks_total\":%llu", (unsigned long long)s->stats.lua_fallbacks);
    if (LOG_WARN <= log_level_current)
        log_emit(LOG_WARN, "orchestratord", "policy_fallback", NULL, kv, "lua policy failed; using least-loaded");
}

static const char *cap_name(unsigned c) {
    const char *n = job_cap_name(c);
    return n ? n : "text-gen";
}

static int lua_pick(struct sched *s, struct registry *r, const struct sched_job *job, int start, size_t n,
                    struct sched_decision *d) {
    if (ensure((void **)&s->lc, &s->clc, n, sizeof *s->lc) < 0) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct slua_cand *c = &s->lc[i];
        memset(c, 0, sizeof *c);
        if (!start) {
            const struct reg_worker *w = reg_worker_at(r, s->wc[i]);
            c->id = w->id;
            c->pool_id = w->pool_id;
            c->model = w->model_ref;
            c->gpu_id = w->ngpu ? w->gpu_ids[0] : REG_HOST_DEVICE;
            c->active_jobs = w->active_jobs;
            c->last_used_ms = w->last_used_ms;
            c->room_bytes = worker_room(s, r, w);
        } else {
            const struct dev_cand *dv = &s->dc[i];
            c->pool_id = dv->pool->id;
            c->gpu_id = dv->gpu_id;
            c->room_bytes = dv->room;
            c->total_bytes = dv->total;
            c->workers = dv->workers;
        }
    }
    struct slua_job lj = { job->job_id, job->model_ref, cap_name(job->capability), job_prio_name(job->prio),
                           start ? "start" : "dispatch", job->est_bytes };
    char err[160];
    s->stats.lua_calls++;
    int idx = slua_choose(s->lua, &lj, s->lc, n, err, sizeof err);
    if (idx < 0) {
        d->used_fallback = 1;
        fallback(s, job, err);
    }
    return idx;
}

/* ======================================================================
 * the decision
 * ==================================================================== */
static void log_decision(const struct sched *s, const struct sched_job *job, const struct sched_decision *d,
                         size_t pools_avail, size_t n_ready, size_t n_busy, size_t n_starting) {
    /* a waiting job is re-decided on every dispatcher pass: its WAITs go to DEBUG */
    int level = d->action == SCHED_WAIT ? LOG_DEBUG : LOG_INFO;
    if (level > log_level_current) return;
    static const char *pol[] = { "least-loaded", "most-vram-free", "round-robin", "lua" };
    char kv[1024];
    struct util_sb sb;
    util_sb_init_fixed(&sb, kv, sizeof kv);
    util_sb_puts(&sb, "\"job_id\":");
    util_sb_json_str(&sb, job->job_id ? job->job_id : "");
    util_sb_puts(&sb, ",\"model\":");
    util_sb_json_str(&sb, job->model_ref);
    util_sb_printf(&sb, ",\"capability\":\"%s\",\"priority\":\"%s\",\"est_bytes\":%llu,\"policy\":\"%s\","
                        "\"pools_available\":%zu,\"idle_ready\":%zu,\"busy\":%zu,\"starting\":%zu,"
                        "\"action\":\"%s\",\"fallback\":%s",
                   cap_name(job->capability), job_prio_name(job->prio), (unsigned long long)job->est_bytes,
                   pol[s->policy], pools_avail, n_ready, n_busy, n_starting, sched_action_name(d->action),
                   d->used_fallback ? "true" : "false");
    if (d->worker_id[0]) util_sb_printf(&sb, ",\"worker_id\":\"%s\"", d->worker_id);
    if (d->pool_id[0]) util_sb_printf(&sb, ",\"pool_id\":\"%s\",\"gpu_id\":%d", d->pool_id, d->gpu_id);
    if (d->evict_worker_id[0]) util_sb_printf(&sb, ",\"evict_worker_id\":\"%s\"", d->evict_worker_id);
    log_emit(level, "orchestratord", "schedule", NULL, kv, "%s", d->reason);
}

int sched_decide(struct sched *s, struct registry *r, const struct sched_job *job, int64_t now_ms,
                 struct sched_decision *d) {
    memset(d, 0, sizeof *d);
    d->gpu_id = REG_HOST_DEVICE;
    s->stats.decisions++;
    unsigned cap = job->capability ? job->capability : CAP_TEXT_GEN;
    size_t nw = reg_worker_count(r), np = reg_pool_count(r);
    if (ensure((void **)&s->wc, &s->cwc, nw + 1, sizeof *s->wc) < 0 ||
        ensure((void **)&s->pool_busy, &s->cpool_b, np + 1, sizeof *s->pool_busy) < 0 ||
        ensure((void **)&s->pool_total, &s->cpool_t, np + 1, sizeof *s->pool_total) < 0 ||
        ensure((void **)&s->droom, &s->cdroom, (np + 1) * REG_MAX_DEVICES, sizeof *s->droom) < 0 ||
        ensure((void **)&s->dworkers, &s->cdworkers, (np + 1) * REG_MAX_DEVICES, sizeof *s->dworkers) < 0)
        return -ENOMEM;
    reg_device_stats(r, s->droom, s->dworkers);
    int has_pl = reg_model_has_placement(r, job->model_ref);
    memset(s->pool_busy, 0, np * sizeof *s->pool_busy);
    memset(s->pool_total, 0, np * sizeof *s->pool_total);

    /* ---- 1. idle ready workers serving the model ---- */
    size_t n_ready = 0, n_busy = 0, n_starting = 0;
    for (size_t i = 0; i < nw; i++) {
        const struct reg_worker *w = reg_worker_at(r, i);
        const struct reg_pool *p = reg_worker_pool(r, w);
        if (!p || !reg_pool_available(r, p, now_ms)) continue;
        s->pool_total[w->pool_idx]++;
        if (w->status == REG_W_BUSY || w->active_jobs > 0) s->pool_busy[w->pool_idx]++;
        if (strcmp(w->model_ref, job->model_ref) != 0 || !(w->caps & cap)) continue;
        if (w->status == REG_W_READY && w->active_jobs == 0) s->wc[n_ready++] = i;
        else if (w->status == REG_W_STARTING) n_starting++;
        else if (w->status == REG_W_BUSY) n_busy++;
    }
    size_t pools_avail = reg_pools_available(r, now_ms);
    d->n_busy = n_busy;
    if (n_ready) {
        int idx = -1;
        if (s->policy == SCHED_LUA) idx = lua_pick(s, r, job, 0, n_ready, d);
        if (idx < 0) idx = (int)pick_worker_builtin(s, s->policy == SCHED_LUA ? SCHED_LEAST_LOADED : s->policy, r, n_ready);
        const struct reg_worker *w = reg_worker_at(r, s->wc[idx]);
        d->action = SCHED_DISPATCH;
        memcpy(d->worker_id, w->id, sizeof d->worker_id);
        memcpy(d->pool_id, w->pool_id, sizeof d->pool_id);
        d->gpu_id = w->ngpu ? w->gpu_ids[0] : REG_HOST_DEVICE;
        d->n_candidates = n_ready;
        snprintf(d->reason, sizeof d->reason, "idle worker chosen among %zu", n_ready);
        if (s->policy == SCHED_ROUND_ROBIN) memcpy(s->rr_worker, w->id, sizeof s->rr_worker);
        log_decision(s, job, d, pools_avail, n_ready, n_busy, n_starting);
        return 0;
    }
    /* ---- 2. a worker for the model is on its way ---- */
    if (n_starting) {
        d->action = SCHED_WAIT;
        snprintf(d->reason, sizeof d->reason, "a worker for the model is starting");
        log_decision(s, job, d, pools_avail, n_ready, n_busy, n_starting);
        return 0;
    }

    /* ---- 3. devices with room ---- */
    uint64_t need = sched_need_bytes(job->est_bytes);
    d->need_bytes = need;
    size_t ndev = 0;
    int fits_somewhere = 0;
    for (size_t pi = 0; pi < np; pi++) {
        const struct reg_pool *p = reg_pool_at(r, pi);
        for (int k = 0; k < p->ndev; k++) {
            if (!placement_allows(r, has_pl, job->model_ref, p->id, p->dev[k].gpu_id)) continue;
            if (sat_sub(p->dev[k].total_bytes, s->o.headroom_bytes) >= need) fits_somewhere = 1;
            if (!reg_pool_available(r, p, now_ms)) continue;
            size_t at = pi * REG_MAX_DEVICES + (size_t)k;
            uint64_t room = sat_sub(s->droom[at], s->o.headroom_bytes);
            if (room < need) continue;
            if (ensure((void **)&s->dc, &s->cdc, ndev + 1, sizeof *s->dc) < 0) return -ENOMEM;
            struct dev_cand *dc = &s->dc[ndev++];
            dc->pool = p;
            dc->dev_index = k;
            dc->gpu_id = p->dev[k].gpu_id;
            dc->room = room;
            dc->total = p->dev[k].total_bytes;
            dc->workers = s->dworkers[at];
        }
    }
    if (ndev) {
        int idx = -1;
        if (s->policy == SCHED_LUA) idx = lua_pick(s, r, job, 1, ndev, d);
        if (idx < 0) idx = (int)pick_device_builtin(s, s->policy == SCHED_LUA ? SCHED_LEAST_LOADED : s->policy, ndev);
        const struct dev_cand *dc = &s->dc[idx];
        d->action = SCHED_START;
        snprintf(d->pool_id, sizeof d->pool_id, "%s", dc->pool->id);
        d->gpu_id = dc->gpu_id;
        d->n_candidates = ndev;
        snprintf(d->reason, sizeof d->reason, "start on a device with room (%zu candidates)", ndev);
        if (s->policy == SCHED_ROUND_ROBIN) {
            memcpy(s->rr_pool, dc->pool->id, sizeof s->rr_pool);
            s->rr_gpu = dc->gpu_id;
        }
        log_decision(s, job, d, pools_avail, n_ready, n_busy, n_starting);
        return 0;
    }
    /* busy workers will free up: better than evicting someone for a replica */
    if (n_busy) {
        d->action = SCHED_WAIT;
        snprintf(d->reason, sizeof d->reason, "workers for the model are busy");
        log_decision(s, job, d, pools_avail, n_ready, n_busy, n_starting);
        return 0;
    }

    /* ---- 4. evict the LRU idle unpinned worker that makes room ---- */
    if (s->o.eviction) {
        const struct reg_worker *victim = NULL;
        int victim_gpu = REG_HOST_DEVICE;
        for (size_t i = 0; i < nw; i++) {
            const struct reg_worker *w = reg_worker_at(r, i);
            const struct reg_pool *p = reg_worker_pool(r, w);
            if (!p || !reg_pool_available(r, p, now_ms) || w->status != REG_W_READY || w->active_jobs > 0 ||
                reg_worker_pinned(r, w))
                continue;
            if (victim && w->last_used_ms >= victim->last_used_ms) continue;
            /* it makes room if, on one of its devices, room + its share >= need */
            int ng = w->ngpu ? w->ngpu : 1;
            for (int g = 0; g < ng; g++) {
                int gpu = w->ngpu ? w->gpu_ids[g] : REG_HOST_DEVICE;
                int k = dev_index_of(p, gpu);
                if (k < 0 || !placement_allows(r, has_pl, job->model_ref, p->id, gpu)) continue;
                uint64_t room = s->droom[(size_t)w->pool_idx * REG_MAX_DEVICES + (size_t)k] + w->memory_bytes / (uint64_t)ng;
                if (sat_sub(room, s->o.headroom_bytes) >= need) {
                    victim = w;
                    victim_gpu = gpu;
                    break;
                }
            }
        }
        if (victim) {
            d->action = SCHED_START;
            memcpy(d->evict_worker_id, victim->id, sizeof d->evict_worker_id);
            memcpy(d->pool_id, victim->pool_id, sizeof d->pool_id);
            d->gpu_id = victim_gpu;
            snprintf(d->reason, sizeof d->reason, "start after evicting the least recently used idle worker");
            log_decision(s, job, d, pools_avail, n_ready, n_busy, n_starting);
            return 0;
        }
    }

    /* ---- 5. wait, or reject when it can never fit ---- */
    if (!fits_somewhere && np > 0) {
        d->action = SCHED_REJECT;
        d->error_code = ERR_NO_CAPACITY;
        snprintf(d->reason, sizeof d->reason, "no device is large enough for %llu bytes", (unsigned long long)need);
    } else {
        d->action = SCHED_WAIT;
        d->error_code = pools_avail ? ERR_NO_CAPACITY : ERR_POOL_UNAVAILABLE;
        snprintf(d->reason, sizeof d->reason, "%s", pools_avail ? "no capacity now" : "no pool available");
    }
    log_decision(s, job, d, pools_avail, n_ready, n_busy, n_starting);
    return 0;
}
