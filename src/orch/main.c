/* orchestratord — startup and shutdown. Config errors exit 2 (SPEC §7);
 * runtime start failures (state file, port) exit 1. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "orch/orch.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

/* restart recovery: queued jobs come back into memory and the queue */
static int recover_cb(void *ctx, const struct store_job *sj, const char *body, size_t len) {
    struct orch *o = ctx;
    struct adm_task t;
    struct adm_error e;
    char err[256];
    int64_t now = (int64_t)util_wall_ms();
    if (adm_parse_task(body, len, o->cat, &o->st.adm, NULL, &t, &e) < 0) {
        /* the catalog changed under it: it cannot run any more */
        store_job_finish(o->store, sj->id, JOB_FAILED, "ORCHESTRATOR_RESTARTED", e.message, 0, 0, now, err, sizeof err);
        return 0;
    }
    if (t.seed_given == 0) t.seed = sj->seed; /* the seed recorded at admission */
    struct ojob *j = orch_job_new(o, sj->id);
    if (!j) { adm_task_free(&t); return -ENOMEM; }
    j->task = t;
    snprintf(j->tenant, sizeof j->tenant, "%s", sj->tenant);
    http_uuid4(j->cid);
    j->created_ms = sj->created_ms;
    j->wait_since_ms = now;
    j->deadline_ms = now + t.timeout_ms; /* the restart does not count against it */
    j->attempts = sj->retry_count;
    j->status = JOB_QUEUED;
    j->req_body = malloc(len + 1);
    if (j->req_body) { memcpy(j->req_body, body, len); j->req_body[len] = 0; j->req_len = len; }
    int64_t pos = 0;
    if (queue_push(o->queue, j->id, t.prio, j, &pos) < 0) { /* capacity shrank: fail the overflow */
        orch_job_finish(o, j, JOB_FAILED, "ORCHESTRATOR_RESTARTED", "queue capacity reduced across the restart");
        return 0;
    }
    char ev[160];
    snprintf(ev, sizeof ev, "{\"job_id\":\"%s\",\"queue_position\":%lld}", j->id, (long long)pos);
    orch_job_emit(o, j, "queued", ev);
    return 0;
}

static int setup_metrics(struct orch *o) {
    o->metrics = metrics_new("component=\"orchestratord\"");
    if (!o->metrics) return -1;
    static const char *prio[] = { "priority", NULL }, *outcome[] = { "outcome", NULL }, *status[] = { "status", NULL };
    static const double b[] = { 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 50 };
    o->m_queue_depth = metrics_gauge(o->metrics, "orchd_queue_depth", "Queued jobs by priority", prio);
    o->m_enqueued = metrics_counter(o->metrics, "orchd_tasks_enqueued_total", "Task submissions by outcome", outcome);
    o->m_dispatched = metrics_counter(o->metrics, "orchd_tasks_dispatched_total", "Tasks ended, by outcome (completed|failed|cancelled)", outcome);
    o->m_sched_ms = metrics_histogram(o->metrics, "orchd_scheduling_latency_ms", "One scheduling decision", NULL, b, 8);
    o->m_pools = metrics_gauge(o->metrics, "orchd_pools_available", "Pools within their heartbeat window", NULL);
    o->m_workers = metrics_gauge(o->metrics, "orchd_workers", "Workers by status", status);
    o->m_policy_fallbacks = metrics_counter(o->metrics, "orchd_policy_fallbacks_total",
                                            "Scheduling decisions where the Lua policy failed and the built-in policy chose", NULL);
    return o->m_queue_depth && o->m_enqueued && o->m_dispatched && o->m_sched_ms && o->m_pools && o->m_workers &&
           o->m_policy_fallbacks ? 0 : -1;
}

static int restore_placement(void *ctx, const char *model_ref, const char *pool_id, int gpu_id) {
    struct orch *o = ctx;
    int rc = reg_placement_add(o->reg, model_ref, pool_id, gpu_id);
    for (size_t i = 0; (rc == 0 || rc == -EEXIST) && i < reg_placement_count(o->reg); i++) {
        struct reg_placement *pl = reg_placement_at_mut(o->reg, i);
        if (!strcmp(pl->model_ref, model_ref) && !strcmp(pl->pool_id, pool_id) && pl->gpu_id == gpu_id) pl->from_api = 1;
    }
    if (rc < 0 && rc != -EEXIST)
        LOG_WARN(ORCH_COMPONENT, "store", NULL, "stored placement %s on %s/%d not restored: %d", model_ref, pool_id,
                 gpu_id, rc);
    else
        LOG_KV(LOG_INFO, ORCH_COMPONENT, "placement_restored", NULL, "\"pool_id\":\"%s\",\"gpu_id\":%d", pool_id,
               gpu_id);
    return 0;
}

static void teardown(struct orch *o) {
    orch_dispatcher_stop(o);
    /* running jobs may finish within the grace period; the others are left
     * dispatched/running in the store and become ORCHESTRATOR_RESTARTED at
     * the next start */
    if (orch_relays_wait(o, 3000) > 0) {
        LOG_WARN(ORCH_COMPONENT, "shutdown", NULL, "relays still running; exiting without cleanup");
        return; /* their threads still use the state: the process exit reclaims it */
    }
    http_server_drain(o->http, 1000); /* answers already given reach their clients */
    http_server_free(o->http);
    pthread_mutex_lock(&o->mu);
    /* finishes the store refused so far: a last try, then each one left is
     * said (the next start takes that job for one a crash interrupted) */
    o->store_retry_ms = 0;
    orch_job_store_retry(o, (int64_t)util_wall_ms());
    for (size_t b = 0; o->n_store_pending && b < o->nbuckets; b++)
        for (struct ojob *j = o->buckets[b]; j; j = j->hnext)
            if (j->store_pending)
                LOG_ERROR(ORCH_COMPONENT, "shutdown", j->cid, "the finish of %s (%s) was never recorded", j->id,
                          job_status_name(j->status));
    orch_job_free_all(o);
    pthread_mutex_unlock(&o->mu);
    sched_free(o->sched);
    reg_free(o->reg);
    queue_free(o->queue);
    store_close(o->store);
    cat_free(o->cat);
    metrics_free(o->metrics);
    cfg_free(o->cfg);
    free(o->buckets);
    free(o->gone);
}

int main(int argc, char **argv) {
    log_init();
    static struct orch O;
    struct orch *o = &O;
    char err[512];
    int rc = cfg_load(orch_cfg_opts, orch_cfg_nopts, argc, argv, NULL, orch_cfg_check, &o->cfg, err, sizeof err);
    if (rc == CFG_HELP) {
        printf("usage: orchestratord [--config FILE] [options]\n");
        cfg_usage(orch_cfg_opts, orch_cfg_nopts, stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "orchestratord: %s\n", err);
        return 2;
    }
    if (orch_settings_from_cfg(o->cfg, &o->st, &o->cat, err, sizeof err) < 0) {
        fprintf(stderr, "orchestratord: %s\n", err);
        return 2;
    }
    if (!getenv("LLORCH_LOG_LEVEL") && o->st.log_level >= 0) log_set_level(o->st.log_level);
    if (sched_new(&o->st.sched, &o->sched, err, sizeof err) < 0) { /* a bad Lua policy is a config error */
        fprintf(stderr, "orchestratord: scheduling.policy: %s\n", err);
        cfg_free(o->cfg);
        return 2;
    }
    pthread_mutex_init(&o->mu, NULL);
    pthread_mutex_init(&o->gone_mu, NULL);
    pthread_mutex_init(&o->place_mu, NULL);
    pthread_cond_init(&o->wake, NULL);
    pthread_cond_init(&o->relay_done, NULL);
    o->nbuckets = 4096;
    o->buckets = calloc(o->nbuckets, sizeof *o->buckets);
    o->started_ms = (int64_t)util_wall_ms();
    if (!o->buckets || setup_metrics(o) < 0 || reg_new(&o->st.reg, &o->reg) < 0 ||
        queue_new(o->st.queue_capacity, &o->queue) < 0) {
        fprintf(stderr, "orchestratord: out of memory\n");
        return 1;
    }
    /* catalog placements pin their models (never evicted) and are kept loaded by the dispatcher */
    for (size_t i = 0; i < cat_count(o->cat); i++) {
        const struct cat_model *m = cat_at(o->cat, i);
        for (int k = 0; k < m->nplacements; k++)
            reg_placement_add(o->reg, m->model_ref, m->placements[k].pool_id, m->placements[k].gpu_id);
    }
    if (store_open(o->st.state_path, o->st.persist_prompts, &o->store, err, sizeof err) < 0) {
        fprintf(stderr, "orchestratord: %s\n", err);
        teardown(o);
        return 1;
    }
    /* placements made through the API before the restart */
    if (store_placement_list(o->store, restore_placement, o) < 0)
        LOG_WARN(ORCH_COMPONENT, "store", NULL, "cannot read the stored placements");
    struct orch_tenant_quota tq[256];
    int ntq = orch_tenant_quotas(cfg_tree(o->cfg, "tenants"), tq, 256, err, sizeof err);
    for (int i = 0; i < ntq && i < 256; i++) store_quota_set(o->store, tq[i].tenant, tq[i].max_concurrent, tq[i].daily_tokens);
    if (ntq > 256) LOG_WARN(ORCH_COMPONENT, "config", NULL, "only the first 256 tenant quotas are applied");
    char dump[8192];
    if (cfg_dump_json(o->cfg, dump, sizeof dump) < sizeof dump) store_config_put(o->store, "effective_config", dump);
    int nreq = 0, nfail = 0;
    pthread_mutex_lock(&o->mu);
    rc = store_recover(o->store, o->started_ms, recover_cb, o, &nreq, &nfail, err, sizeof err);
    pthread_mutex_unlock(&o->mu);
    if (rc < 0) {
        fprintf(stderr, "orchestratord: recovery: %s\n", err);
        teardown(o);
        return 1;
    }
    LOG_KV(LOG_INFO, ORCH_COMPONENT, "recovered", NULL, "\"requeued\":%d,\"failed\":%d,\"state\":\"%s\"", nreq, nfail,
           o->st.state_path);

    http_server_opts ho = { .bind = o->st.bind_host, .port = o->st.bind_port, .component = ORCH_COMPONENT,
                            .threads = 2 };
    if (http_server_new(&ho, &o->http, err, sizeof err) < 0 || orch_api_routes(o) < 0 ||
        http_server_start(o->http, err, sizeof err) < 0) {
        fprintf(stderr, "orchestratord: cannot serve on %s:%d: %s\n", o->st.bind_host, o->st.bind_port, err);
        teardown(o);
        return 1;
    }
    if (orch_dispatcher_start(o) < 0) {
        fprintf(stderr, "orchestratord: cannot start the dispatcher\n");
        teardown(o);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    LOG_KV(LOG_INFO, ORCH_COMPONENT, "listening", NULL, "\"bind\":\"%s\",\"port\":%d,\"deployment\":\"%s\"",
           o->st.bind_host, http_server_port(o->http), cfg_str(o->cfg, "deployment"));
    /* a line for scripts that start us on port 0 */
    fprintf(stdout, "orchestratord listening on %s:%d\n", o->st.bind_host, http_server_port(o->http));
    fflush(stdout);
    while (!g_stop) pause();
    LOG_INFO(ORCH_COMPONENT, "shutdown", NULL, "stopping");
    http_server_stop_accepting(o->http, ERR_NO_CAPACITY, "orchestratord is shutting down");
    teardown(o);
    return 0;
}
