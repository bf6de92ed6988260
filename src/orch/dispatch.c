/* dispatch — the dispatcher thread and the per-job relay threads.
 *
 * The dispatcher wakes on new work (orch_wake) or every 100 ms, and under
 * o->mu + reg_lock walks the queue in service order asking the scheduler
 * about each job (queue_pop_first with a predicate). DISPATCH takes the job
 * out, acquires the worker and starts a relay thread; START records a
 * STARTING placeholder worker (so the next decisions wait for it) and, after
 * the locks are dropped, commands the pool; WAIT leaves the job in place
 * until scheduling.no_capacity_ms; REJECT fails it. Within one scan a WAIT
 * is decided once per (model, capability, estimate) and reused for the jobs
 * behind it (struct wait_memo: same outcomes, O(1) per waiting job instead
 * of one scheduler decision over every worker).
 *
 * A relay thread POSTs the worker's /execute and relays its SSE events in
 * order into the job's log (new ids, payloads untouched). A failure before
 * the first token requeues the job with backoff (orch_retry_delay_ms) up to
 * retry.max_attempts; after tokens were streamed it ends WORKER_FAILED.
 *
 * One thread per running job is simple and fine for tens of workers; the
 * curl multi interface is the way to thousands (SPEC §8). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/err.h"
#include "common/http_client.h"
#include "common/log.h"
#include "orch/orch.h"

void orch_wake(struct orch *o) { pthread_cond_signal(&o->wake); }

static double rand01(void) {
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r) r = (uint32_t)util_now_ns();
    return r / 4294967296.0;
}

/* ======================================================================
 * pool commands (no locks held)
 * ==================================================================== */
struct cmd {
    enum { CMD_START, CMD_STOP } kind;
    char job_id[37];               /* START: the job that asked for it */
    char pool_endpoint[REG_URI_MAX + 1];
    char pool_id[JOB_POOL_ID_MAX + 1];
    char placeholder[JOB_WORKER_ID_MAX + 1];
    char worker_id[JOB_WORKER_ID_MAX + 1];
    char model_ref[JOB_MODEL_REF_MAX + 1];
    int gpu_id;
    unsigned capability;
    int64_t ctx;
    uint64_t need;
};

static void run_cmd(struct orch *o, const struct cmd *c) {
    char url[REG_URI_MAX + 64], err[256];
    http_resp resp = { 0 };
    if (c->kind == CMD_STOP) {
        snprintf(url, sizeof url, "%s/v2/workers/stop", c->pool_endpoint);
        char body[256];
        snprintf(body, sizeof body, "{\"worker_id\":\"%s\"}", c->worker_id);
        http_client_req rq = { .method = "POST", .url = url, .body = body };
        int rc = http_client_do(&rq, &resp, err, sizeof err);
        LOG_KV(LOG_INFO, ORCH_COMPONENT, "evict", NULL, "\"worker_id\":\"%s\",\"pool_id\":\"%s\",\"status\":%ld",
               c->worker_id, c->pool_id, rc == 0 ? resp.status : 0L);
        http_resp_free(&resp);
        return;
    }
    snprintf(url, sizeof url, "%s/v2/workers/start", c->pool_endpoint);
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_puts(&sb, "{\"model_ref\":");
    util_sb_json_str(&sb, c->model_ref);
    if (c->gpu_id >= 0) util_sb_printf(&sb, ",\"gpu_id\":%d", c->gpu_id);
    else util_sb_puts(&sb, ",\"worker_type\":\"cpu\""); /* the host device needs a host-memory worker type */
    util_sb_printf(&sb, ",\"capability\":\"%s\"", job_cap_name(c->capability) ? job_cap_name(c->capability) : "text-gen");
    if (c->ctx >= 16) util_sb_printf(&sb, ",\"ctx_size\":%lld", (long long)c->ctx);
    util_sb_putc(&sb, '}');
    http_client_req rq = { .method = "POST", .url = url, .body = sb.buf ? sb.buf : "{}" };
    int rc = http_client_do(&rq, &resp, err, sizeof err);
    util_sb_free(&sb);
    char wid[JOB_WORKER_ID_MAX + 1] = "";
    if (rc == 0 && resp.status / 100 == 2) {
        json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
        const char *w = j ? json_string_value(json_object_get(j, "worker_id")) : NULL;
        if (w && job_id_valid(w, JOB_WORKER_ID_MAX)) snprintf(wid, sizeof wid, "%s", w);
        json_decref(j);
    }
    reg_lock(o->reg);
    struct reg_worker *ph = reg_worker_get(o->reg, c->placeholder);
    if (ph && wid[0]) { /* the placeholder becomes the real STARTING worker */
        struct reg_worker w = *ph;
        snprintf(w.id, sizeof w.id, "%s", wid);
        reg_worker_remove(o->reg, c->placeholder);
        if (!reg_worker_get(o->reg, wid)) reg_worker_upsert(o->reg, &w, (int64_t)util_wall_ms());
    } else if (ph) {
        reg_worker_remove(o->reg, c->placeholder);
    }
    reg_unlock(o->reg);
    if (!wid[0]) { /* back off this job's next start; remember why for its final error */
        char code[32] = "";
        if (rc == 0 && resp.status / 100 != 2) {
            json_t *e = json_loadb(resp.body, resp.len, 0, NULL);
            const char *c2 = json_string_value(json_object_get(json_object_get(e, "error"), "code"));
            if (c2 && err_parse(c2) >= 0) snprintf(code, sizeof code, "%s", c2);
            json_decref(e);
        }
        pthread_mutex_lock(&o->mu);
        struct ojob *j = orch_job_find(o, c->job_id);
        if (j) {
            int64_t now = (int64_t)util_wall_ms();
            j->not_before_ms = now + orch_retry_delay_ms(&o->st, j->starts, rand01());
            if (code[0]) snprintf(j->start_error, sizeof j->start_error, "%s", code);
        }
        pthread_mutex_unlock(&o->mu);
    }
    LOG_KV(LOG_INFO, ORCH_COMPONENT, "worker_start", NULL,
           "\"pool_id\":\"%s\",\"gpu_id\":%d,\"status\":%ld,\"worker_id\":\"%s\",\"ok\":%s", c->pool_id, c->gpu_id,
           rc == 0 ? resp.status : 0L, wid, wid[0] ? "true" : "false");
    if (!wid[0])
        LOG_WARN(ORCH_COMPONENT, "worker_start", NULL, "pool %s refused or failed the start: %s", c->pool_id,
                 rc == 0 ? resp.body : err);
    http_resp_free(&resp);
}

/* ======================================================================
 * relay
 * ==================================================================== */
struct relay {
    struct orch *o;
    char job_id[37];
    int saw_terminal;
    int aborted;
};

/* adds "job_id" to an event's JSON object (orchestrator metadata); falls
 * back to the payload as is */
static char *with_job_id(const char *data, size_t len, const char *job_id) {
    json_t *j = json_loadb(data, len, JSON_DECODE_INT_AS_REAL, NULL);
    if (!json_is_object(j) || json_object_get(j, "job_id")) {
        json_decref(j);
        return strndup(data, len);
    }
    json_decref(j);
    /* splice textually so numbers (large seeds) keep their exact digits */
    size_t n = len;
    while (n && data[n - 1] != '}') n--;
    if (!n) return strndup(data, len);
    char *out = malloc(n + 64);
    if (!out) return NULL;
    const char *open = memchr(data, '{', n);
    size_t head = (size_t)(open - data) + 1;
    int empty = 1;
    for (size_t i = head; i < n - 1 && empty; i++) empty = data[i] == ' ' || data[i] == '\n' || data[i] == '\t';
    int k = snprintf(out, 64, "{\"job_id\":\"%s\"%s", job_id, empty ? "" : ",");
    memcpy(out + k, data + head, n - head);
    out[k + n - head] = 0;
    return out;
}

static int on_worker_event(void *user, const sse_event *ev) {
    struct relay *r = user;
    struct orch *o = r->o;
    pthread_mutex_lock(&o->mu);
    struct ojob *j = orch_job_find(o, r->job_id);
    if (!j || j->terminal || j->cancel_requested) {
        r->aborted = 1;
        pthread_mutex_unlock(&o->mu);
        return 1; /* closing the connection cancels the job on the worker */
    }
    char *data = with_job_id(ev->data, ev->data_len, j->id);
    json_t *d = json_loadb(ev->data, ev->data_len, JSON_DECODE_INT_AS_REAL, NULL);
    int64_t now = (int64_t)util_wall_ms();
    if (strcmp(ev->event, "started") == 0) {
        json_t *ti = json_object_get(d, "tokens_in");
        if (json_is_number(ti)) j->tokens_in = (int64_t)json_number_value(ti);
        char err[256];
        if (store_job_started(o->store, j->id, j->tokens_in, now, err, sizeof err) == 0) j->status = JOB_RUNNING;
        if (data && !j->started_emitted) orch_job_emit(o, j, "started", data); /* a retry does not repeat it */
        j->started_emitted = 1;
    } else if (strcmp(ev->event, "token") == 0) {
        j->tokens_out++;
        if (data) orch_job_emit(o, j, "token", data);
    } else if (strcmp(ev->event, "metrics") == 0) {
        if (data) orch_job_emit(o, j, "metrics", data);
    } else if (strcmp(ev->event, "end") == 0) {
        json_t *to = json_object_get(d, "tokens_out");
        if (json_is_number(to)) j->tokens_out = (int64_t)json_number_value(to);
        r->saw_terminal = 1;
        orch_job_finish_with(o, j, JOB_COMPLETED, NULL, NULL, "end", data);
    } else if (strcmp(ev->event, "error") == 0) {
        const char *code = json_string_value(json_object_get(d, "code"));
        const char *msg = json_string_value(json_object_get(d, "message"));
        int ec = code ? err_parse(code) : -1;
        /* before the first token a retriable worker error is retried */
        int retry = j->tokens_out == 0 && ec >= 0 && err_retriable((enum err_code)ec) && ec != ERR_DEADLINE_EXCEEDED;
        if (!retry) {
            r->saw_terminal = 1;
            orch_job_finish_with(o, j, ec == ERR_CANCELLED ? JOB_CANCELLED : JOB_FAILED, code ? code : "WORKER_FAILED",
                                 msg ? msg : "worker error", "error", data);
        }
    }
    json_decref(d);
    free(data);
    pthread_mutex_unlock(&o->mu);
    return 0;
}

static void *relay_main(void *arg) {
    struct relay *r = arg;
    struct orch *o = r->o;
    pthread_mutex_lock(&o->mu);
    struct ojob *j = orch_job_find(o, r->job_id);
    char url[REG_URI_MAX + 16], cid_h[96], dl_h[64], worker_id[JOB_WORKER_ID_MAX + 1];
    char *body = j ? adm_execute_body(&j->task, j->id) : NULL;
    if (j) {
        snprintf(url, sizeof url, "%s/execute", j->worker_uri);
        snprintf(cid_h, sizeof cid_h, "X-Correlation-Id: %s", j->cid);
        snprintf(dl_h, sizeof dl_h, "X-Deadline: %lld", (long long)j->deadline_ms);
        snprintf(worker_id, sizeof worker_id, "%s", j->worker_id);
    }
    pthread_mutex_unlock(&o->mu);
    if (!j || !body) {
        free(body);
        free(r);
        return NULL;
    }
    const char *hdr[] = { cid_h, dl_h, NULL };
    http_client_req rq = { .method = "POST", .url = url, .headers = hdr, .body = body };
    http_resp resp = { 0 };
    char err[256] = "";
    int rc = http_client_sse(&rq, on_worker_event, r, &resp, err, sizeof err);
    free(body);

    int64_t now = (int64_t)util_wall_ms();
    pthread_mutex_lock(&o->mu);
    reg_lock(o->reg);
    reg_worker_release(o->reg, worker_id, now);
    if (rc != 0 && rc != HTTPC_E_ABORTED) { /* the worker is unreachable or broke the stream */
        struct reg_worker *w = reg_worker_get(o->reg, worker_id);
        if (w && rc == HTTPC_E_CONNECT) w->status = REG_W_FAILED;
    }
    reg_unlock(o->reg);
    j = orch_job_find(o, r->job_id);
    if (j) {
        j->relay_running = 0;
        if (!j->terminal && j->cancel_requested) {
            if (j->timed_out) orch_job_finish(o, j, JOB_FAILED, "DEADLINE_EXCEEDED", "the job ran past its timeout");
            else orch_job_finish(o, j, JOB_CANCELLED, "CANCELLED", "cancelled by the client");
        } else if (!j->terminal && !r->saw_terminal && rc == 0 && resp.status / 100 == 4) {
            /* the worker refused the request itself: retrying cannot help */
            json_t *e = json_loadb(resp.body, resp.len, 0, NULL);
            json_t *eo = json_object_get(e, "error");
            const char *code = json_string_value(json_object_get(eo, "code"));
            const char *msg = json_string_value(json_object_get(eo, "message"));
            orch_job_finish(o, j, JOB_FAILED, code && err_parse(code) >= 0 ? code : "WORKER_FAILED",
                            msg ? msg : "the worker refused the job");
            json_decref(e);
        } else if (!j->terminal && !r->saw_terminal) {
            char why[300];
            snprintf(why, sizeof why, "%s", rc != 0 ? err : resp.status / 100 != 2 ? resp.body : "stream ended early");
            if (resp.status == 503 && rc == 0) snprintf(why, sizeof why, "worker busy");
            if (j->tokens_out == 0 && j->attempts < o->st.retry_max_attempts) {
                int64_t delay = orch_retry_delay_ms(&o->st, j->attempts, rand01());
                char e2[256];
                if (store_job_requeue(o->store, j->id, j->req_body, j->req_len, why, now, e2, sizeof e2) == 0 &&
                    queue_push(o->queue, j->id, j->task.prio, j, NULL) == 0) {
                    j->status = JOB_QUEUED;
                    j->not_before_ms = now + delay;
                    j->wait_since_ms = now;
                    j->worker_id[0] = 0;
                    LOG_KV(LOG_WARN, ORCH_COMPONENT, "retry", j->cid,
                           "\"job_id\":\"%s\",\"attempt\":%d,\"delay_ms\":%lld,\"reason\":\"%s\"", j->id, j->attempts,
                           (long long)delay, rc != 0 ? "connection" : "worker_error");
                } else {
                    orch_job_finish(o, j, JOB_FAILED, "WORKER_FAILED", why);
                }
            } else {
                orch_job_finish(o, j, JOB_FAILED, "WORKER_FAILED",
                                j->tokens_out ? "the worker failed after tokens were streamed" : why);
            }
        }
    }
    o->relays--;
    pthread_cond_broadcast(&o->relay_done);
    pthread_mutex_unlock(&o->mu);
    http_resp_free(&resp);
    free(r);
    orch_wake(o);
    return NULL;
}

int orch_relays_wait(struct orch *o, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&o->mu);
    while (o->relays > 0 && pthread_cond_timedwait(&o->relay_done, &o->mu, &ts) == 0) {}
    int n = o->relays;
    pthread_mutex_unlock(&o->mu);
    return n;
}

/* ======================================================================
 * the dispatcher
 * ==================================================================== */
#define MAX_CMDS 16

/* Memos of one scan of the queue. sched_decide's WAIT depends only on the
 * job's (model_ref, capability, est_bytes), the registry and `now`: it
 * consults no policy (the Lua script and the round-robin cursor are used
 * only when there are candidates, and then the answer is DISPATCH or
 * START). So the first WAIT of a key stands for every later job of that key
 * in the same scan, as long as the registry has not changed: a scan runs
 * under reg_lock, and the memo is cleared at each scan start (other threads
 * change the registry between scans) and after this pass's own START (a
 * STARTING placeholder, an eviction). In effect only the head of each
 * model's waiting line is decided; the jobs behind it cost a pointer compare.
 * Likewise a tenant's quota verdict: it changes only when a job of the
 * tenant is taken (which ends the scan) or finishes (which needs o->mu,
 * held by the pass). Scheduling outcomes are the same as deciding every
 * job; what differs is that the repeated WAITs are neither logged (DEBUG)
 * nor counted in orchd_scheduling_latency_ms. */
#define MEMO_MAX 32
struct wait_memo {
    const char *model_ref;     /* the job's (alive for the scan) */
    unsigned cap;
    uint64_t est;
    struct sched_decision d;
};
struct quota_memo {
    const char *tenant;
    int over;
};

struct pass {
    struct orch *o;
    int64_t now;
    struct sched_decision d;
    struct wait_memo wm[MEMO_MAX];
    int nwm;
    struct quota_memo qm[MEMO_MAX];
    int nqm;
    uint64_t decisions, memo_hits; /* this pass: sched_decide calls, decisions taken from the memo */
    enum { TAKE_NONE, TAKE_DISPATCH, TAKE_FAIL } take;
    char fail_code[32];
    char fail_msg[320];
    struct cmd cmds[MAX_CMDS];
    int ncmds;
    char cancels_uri[2 * MAX_CMDS][REG_URI_MAX + 1]; /* POST /cancel to these workers after the pass */
    char cancels_id[2 * MAX_CMDS][37];
    int ncancel;
};

/* tenant quotas (platform): concurrent jobs in flight, tokens used today.
 * The in-flight count scans the job table: fine for hundreds of jobs; a
 * per-tenant counter is the next step. Caller holds o->mu. */
static int over_quota(struct orch *o, const struct ojob *j, int64_t now) {
    struct store_quota q;
    if (store_quota_get(o->store, j->tenant, orch_day(now), &q) < 0) return 0;
    if (q.daily_tokens >= 0 && q.tokens_today >= q.daily_tokens) return 1;
    if (q.max_concurrent > 0) {
        int64_t inflight = 0;
        for (size_t b = 0; b < o->nbuckets; b++)
            for (const struct ojob *k = o->buckets[b]; k; k = k->hnext)
                inflight += !k->terminal && k->status != JOB_QUEUED && strcmp(k->tenant, j->tenant) == 0;
        if (inflight >= q.max_concurrent) return 1;
    }
    return 0;
}

static int pred(void *ctx, const char *id, enum job_prio prio, void *data) {
    (void)id;
    (void)prio;
    struct pass *p = ctx;
    struct ojob *j = data;
    struct orch *o = p->o;
    if (j->cancel_requested || j->terminal) { /* cancelled while queued: drop it */
        p->take = TAKE_FAIL;
        snprintf(p->fail_code, sizeof p->fail_code, "CANCELLED");
        snprintf(p->fail_msg, sizeof p->fail_msg, "cancelled by the client");
        return 1;
    }
    if (p->now >= j->deadline_ms) {
        p->take = TAKE_FAIL;
        snprintf(p->fail_code, sizeof p->fail_code, "DEADLINE_EXCEEDED");
        snprintf(p->fail_msg, sizeof p->fail_msg, "the job timed out in the queue");
        return 1;
    }
    if (p->now < j->not_before_ms) return 0; /* retry backoff */
    if (j->tenant[0]) { /* over-quota jobs wait in the queue */
        int k = 0;
        while (k < p->nqm && strcmp(p->qm[k].tenant, j->tenant) != 0) k++;
        int over = k < p->nqm ? p->qm[k].over : over_quota(o, j, p->now);
        if (k == p->nqm && p->nqm < MEMO_MAX) p->qm[p->nqm++] = (struct quota_memo){ j->tenant, over };
        if (over) return 0;
    }
    struct sched_job sj = { .job_id = j->id, .model_ref = j->task.model_ref, .capability = j->task.capability,
                            .est_bytes = j->task.model && j->task.model->memory_bytes ? j->task.model->memory_bytes : 0,
                            .context_length = j->task.context_length, .prio = j->task.prio };
    unsigned cap = sj.capability ? sj.capability : CAP_TEXT_GEN; /* as sched_decide reads it */
    int k = 0;
    while (k < p->nwm && !(p->wm[k].cap == cap && p->wm[k].est == sj.est_bytes &&
                           (p->wm[k].model_ref == sj.model_ref || strcmp(p->wm[k].model_ref, sj.model_ref) == 0)))
        k++;
    if (k < p->nwm) {
        p->d = p->wm[k].d;
        p->memo_hits++;
    } else {
        uint64_t t0 = util_now_ns();
        if (sched_decide(o->sched, o->reg, &sj, p->now, &p->d) < 0) return 0;
        metrics_observe(o->m_sched_ms, NULL, (double)(util_now_ns() - t0) / 1e6);
        if (p->d.used_fallback) metrics_add(o->m_policy_fallbacks, NULL, 1);
        p->decisions++;
        if (p->d.action == SCHED_WAIT && p->nwm < MEMO_MAX)
            p->wm[p->nwm++] = (struct wait_memo){ sj.model_ref, cap, sj.est_bytes, p->d };
    }
    switch (p->d.action) {
    case SCHED_DISPATCH:
        if (reg_worker_acquire(o->reg, p->d.worker_id, p->now) < 0) return 0;
        p->take = TAKE_DISPATCH;
        return 1;
    case SCHED_START: {
        if (p->ncmds + 2 > MAX_CMDS) return 0;
        if (j->starts >= o->st.retry_max_attempts && p->d.n_busy > 0) return 0; /* no replica: wait for the busy ones */
        if (j->starts >= o->st.retry_max_attempts) { /* starts keep failing: stop trying */
            p->take = TAKE_FAIL;
            snprintf(p->fail_code, sizeof p->fail_code, "%s", j->start_error[0] ? j->start_error : "NO_CAPACITY");
            snprintf(p->fail_msg, sizeof p->fail_msg, "%d worker starts for the model failed", j->starts);
            return 1;
        }
        j->starts++;
        const struct reg_pool *pool = reg_pool_get(o->reg, p->d.pool_id);
        if (!pool) return 0;
        p->nwm = 0; /* the registry changes below (placeholder, eviction): earlier WAITs may no longer hold */
        if (p->d.evict_worker_id[0]) {
            struct reg_worker *v = reg_worker_get(o->reg, p->d.evict_worker_id);
            if (v) v->status = REG_W_DRAINING; /* never chosen again; its memory is counted until it is gone */
            struct cmd *c = &p->cmds[p->ncmds++];
            memset(c, 0, sizeof *c);
            c->kind = CMD_STOP;
            snprintf(c->pool_endpoint, sizeof c->pool_endpoint, "%s", pool->endpoint);
            snprintf(c->pool_id, sizeof c->pool_id, "%s", pool->id);
            snprintf(c->worker_id, sizeof c->worker_id, "%s", p->d.evict_worker_id);
        }
        /* a STARTING placeholder: the next decisions for this model wait for it */
        struct reg_worker ph;
        memset(&ph, 0, sizeof ph);
        snprintf(ph.id, sizeof ph.id, "starting-%.36s", j->id);
        snprintf(ph.pool_id, sizeof ph.pool_id, "%s", pool->id);
        snprintf(ph.model_ref, sizeof ph.model_ref, "%s", j->task.model_ref);
        ph.caps = j->task.model ? j->task.model->caps : CAP_TEXT_GEN;
        ph.status = REG_W_STARTING;
        ph.memory_bytes = p->d.need_bytes;
        if (p->d.gpu_id >= 0) { ph.gpu_ids[0] = p->d.gpu_id; ph.ngpu = 1; }
        if (reg_worker_upsert(o->reg, &ph, p->now) < 0) return 0;
        struct cmd *c = &p->cmds[p->ncmds++];
        memset(c, 0, sizeof *c);
        c->kind = CMD_START;
        snprintf(c->job_id, sizeof c->job_id, "%s", j->id);
        snprintf(c->pool_endpoint, sizeof c->pool_endpoint, "%s", pool->endpoint);
        snprintf(c->pool_id, sizeof c->pool_id, "%s", pool->id);
        snprintf(c->placeholder, sizeof c->placeholder, "%s", ph.id);
        snprintf(c->model_ref, sizeof c->model_ref, "%s", j->task.model_ref);
        c->gpu_id = p->d.gpu_id;
        c->capability = j->task.capability;
        c->ctx = j->task.model ? j->task.model->context_length : 0;
        c->need = p->d.need_bytes;
        return 0;
    }
    case SCHED_WAIT:
        if (o->st.sched.no_capacity_ms > 0 && p->now - j->wait_since_ms > o->st.sched.no_capacity_ms) {
            p->take = TAKE_FAIL;
            snprintf(p->fail_code, sizeof p->fail_code, "NO_CAPACITY");
            snprintf(p->fail_msg, sizeof p->fail_msg, "no capacity for the model after %lld ms: %s",
                     (long long)o->st.sched.no_capacity_ms, p->d.reason);
            return 1;
        }
        return 0;
    case SCHED_REJECT:
        p->take = TAKE_FAIL;
        snprintf(p->fail_code, sizeof p->fail_code, "%s", err_name((enum err_code)p->d.error_code));
        snprintf(p->fail_msg, sizeof p->fail_msg, "%s", p->d.reason);
        return 1;
    }
    return 0;
}

/* one pass over the queue; returns the number of jobs taken */
static int dispatch_pass(struct orch *o, struct cmd *cmds, int *ncmds) {
    struct pass p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.now = (int64_t)util_wall_ms();
    int taken = 0;
    pthread_mutex_lock(&o->mu);
    /* OpenAI clients that went away: their jobs are cancelled first */
    p.ncancel = orch_job_cancel_gone(o, p.cancels_uri, p.cancels_id, MAX_CMDS);
    for (;;) {
        char id[JOB_ID_MAX + 1];
        void *data = NULL;
        p.take = TAKE_NONE;
        p.nwm = p.nqm = 0; /* a new scan: the registry may have changed since the last one */
        reg_lock(o->reg);
        int rc = queue_pop_first(o->queue, pred, &p, id, &data, NULL);
        reg_unlock(o->reg);
        if (rc != 0) break;
        taken++;
        struct ojob *j = data;
        if (p.take == TAKE_FAIL) {
            enum job_status st = strcmp(p.fail_code, "CANCELLED") == 0 ? JOB_CANCELLED : JOB_FAILED;
            orch_job_finish(o, j, st, p.fail_code, p.fail_msg);
            continue;
        }
        /* DISPATCH: atomic dequeue + dispatch in the store, then relay */
        char err[256];
        reg_lock(o->reg);
        struct reg_worker *w = reg_worker_get(o->reg, p.d.worker_id);
        const struct reg_pool *pool = w ? reg_worker_pool(o->reg, w) : NULL;
        if (w) snprintf(j->worker_uri, sizeof j->worker_uri, "%s", w->uri);
        snprintf(j->worker_id, sizeof j->worker_id, "%s", p.d.worker_id);
        snprintf(j->pool_id, sizeof j->pool_id, "%s", pool ? pool->id : p.d.pool_id);
        reg_unlock(o->reg);
        const int src = store_job_dispatch(o->store, j->id, j->worker_id, j->pool_id, p.now, err, sizeof err);
        if (src < 0) {
            LOG_ERROR(ORCH_COMPONENT, "dispatch", j->cid, "store: %s", err);
            reg_lock(o->reg);
            reg_worker_release(o->reg, j->worker_id, p.now);
            reg_unlock(o->reg);
            /* not run unrecorded: a restart would find it queued and run it again */
            if (src == -ENOSPC)
                orch_job_finish(o, j, JOB_FAILED, "INSUFFICIENT_STORAGE",
                                "the orchestrator's state disk is full: the dispatch could not be recorded");
            else
                orch_job_finish(o, j, JOB_FAILED, "INTERNAL", "state store failure");
            continue;
        }
        j->status = JOB_DISPATCHED;
        j->attempts++;
        j->relay_running = 1;
        LOG_KV(LOG_INFO, ORCH_COMPONENT, "dispatch", j->cid, "\"job_id\":\"%s\",\"worker_id\":\"%s\",\"attempt\":%d",
               j->id, j->worker_id, j->attempts);
        struct relay *r = calloc(1, sizeof *r);
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        o->relays++;
        if (!r || (r->o = o, snprintf(r->job_id, sizeof r->job_id, "%s", j->id),
                   pthread_create(&th, &at, relay_main, r) != 0)) {
            o->relays--;
            free(r);
            j->relay_running = 0;
            reg_lock(o->reg);
            reg_worker_release(o->reg, j->worker_id, p.now);
            reg_unlock(o->reg);
            orch_job_finish(o, j, JOB_FAILED, "INTERNAL", "cannot start a relay thread");
        }
        pthread_attr_destroy(&at);
    }
    /* running jobs past their timeout get a cancel; a cancel not honoured
     * within cancellation_deadline_ms ends the job regardless */
    for (size_t b = 0; b < o->nbuckets; b++)
        for (struct ojob *j = o->buckets[b]; j; j = j->hnext) {
            if (j->terminal || j->status == JOB_QUEUED) continue;
            if (!j->cancel_requested && p.now >= j->deadline_ms) {
                j->cancel_requested = j->timed_out = 1;
                j->cancel_at_ms = p.now;
                if (p.ncancel < 2 * MAX_CMDS) {
                    snprintf(p.cancels_uri[p.ncancel], sizeof p.cancels_uri[0], "%s", j->worker_uri);
                    snprintf(p.cancels_id[p.ncancel], sizeof p.cancels_id[0], "%s", j->id);
                    p.ncancel++;
                }
                LOG_KV(LOG_WARN, ORCH_COMPONENT, "timeout", j->cid, "\"job_id\":\"%s\"", j->id);
            } else if (j->cancel_requested && j->cancel_at_ms &&
                       p.now - j->cancel_at_ms >= o->st.cancellation_deadline_ms) {
                if (j->timed_out) orch_job_finish(o, j, JOB_FAILED, "DEADLINE_EXCEEDED", "the job ran past its timeout");
                else orch_job_finish(o, j, JOB_CANCELLED, "CANCELLED", "cancelled by the client");
            }
        }
    /* placements are kept loaded: a placement with no worker on its device
     * gets a start (at most every 30 s while the pool refuses) */
    reg_lock(o->reg);
    for (size_t i = 0; i < reg_placement_count(o->reg) && p.ncmds < MAX_CMDS; i++) {
        struct reg_placement *pl = reg_placement_at_mut(o->reg, i);
        const struct reg_pool *pool = reg_pool_get(o->reg, pl->pool_id);
        if (!pool || !reg_pool_available(o->reg, pool, p.now) || reg_placement_served(o->reg, pl) ||
            (pl->last_start_ms && p.now - pl->last_start_ms < 30000))
            continue;
        pl->last_start_ms = p.now;
        const struct cat_model *m = cat_find(o->cat, pl->model_ref);
        struct reg_worker ph;
        memset(&ph, 0, sizeof ph);
        snprintf(ph.id, sizeof ph.id, "placing-%zu-%lld", i, (long long)p.now);
        snprintf(ph.pool_id, sizeof ph.pool_id, "%s", pool->id);
        snprintf(ph.model_ref, sizeof ph.model_ref, "%s", pl->model_ref);
        ph.caps = m ? m->caps : CAP_TEXT_GEN;
        ph.status = REG_W_STARTING;
        ph.memory_bytes = sched_need_bytes(m ? m->memory_bytes : 0);
        if (pl->gpu_id >= 0) { ph.gpu_ids[0] = pl->gpu_id; ph.ngpu = 1; }
        if (reg_worker_upsert(o->reg, &ph, p.now) < 0) continue;
        struct cmd *c = &p.cmds[p.ncmds++];
        memset(c, 0, sizeof *c);
        c->kind = CMD_START;
        snprintf(c->pool_endpoint, sizeof c->pool_endpoint, "%s", pool->endpoint);
        snprintf(c->pool_id, sizeof c->pool_id, "%s", pool->id);
        snprintf(c->placeholder, sizeof c->placeholder, "%s", ph.id);
        snprintf(c->model_ref, sizeof c->model_ref, "%s", pl->model_ref);
        c->gpu_id = pl->gpu_id;
        c->capability = CAP_TEXT_GEN;
        c->ctx = m ? m->context_length : 0;
        c->need = ph.memory_bytes;
        LOG_KV(LOG_INFO, ORCH_COMPONENT, "placement_start", NULL, "\"pool_id\":\"%s\",\"gpu_id\":%d", pool->id,
               pl->gpu_id);
    }
    reg_unlock(o->reg);
    /* idle workers past eviction.idle_ttl_s are stopped (pinned ones never) */
    if (o->st.idle_ttl_ms > 0) {
        reg_lock(o->reg);
        for (size_t i = 0; i < reg_worker_count(o->reg) && p.ncmds < MAX_CMDS; i++) {
            struct reg_worker *w = reg_worker_at(o->reg, i);
            const struct reg_pool *pool = reg_worker_pool(o->reg, w);
            if (!pool || w->status != REG_W_READY || w->active_jobs > 0 || reg_worker_pinned(o->reg, w) ||
                p.now - w->last_used_ms < o->st.idle_ttl_ms)
                continue;
            w->status = REG_W_DRAINING;
            struct cmd *c = &p.cmds[p.ncmds++];
            memset(c, 0, sizeof *c);
            c->kind = CMD_STOP;
            snprintf(c->pool_endpoint, sizeof c->pool_endpoint, "%s", pool->endpoint);
            snprintf(c->pool_id, sizeof c->pool_id, "%s", pool->id);
            snprintf(c->worker_id, sizeof c->worker_id, "%s", w->id);
        }
        reg_unlock(o->reg);
    }
    orch_job_store_retry(o, p.now);
    orch_job_gc(o, p.now, 10 * 60 * 1000);
    orch_job_keepalive(o, p.now, o->st.keepalive_ms);
    /* gauges */
    const char *pi[] = { "interactive" }, *pb[] = { "batch" };
    metrics_set(o->m_queue_depth, pi, (double)queue_len(o->queue, JOB_PRIO_INTERACTIVE));
    metrics_set(o->m_queue_depth, pb, (double)queue_len(o->queue, JOB_PRIO_BATCH));
    reg_lock(o->reg);
    metrics_set(o->m_pools, NULL, (double)reg_pools_available(o->reg, p.now));
    size_t counts[5];
    reg_worker_counts(o->reg, counts);
    reg_unlock(o->reg);
    for (int s = 0; s < 5; s++) {
        const char *v[] = { reg_worker_status_name((enum reg_worker_status)s) };
        metrics_set(o->m_workers, v, (double)counts[s]);
    }
    pthread_mutex_unlock(&o->mu);
    for (int i = 0; i < p.ncancel; i++)
        if (p.cancels_uri[i][0]) orch_cancel_on_worker(o, p.cancels_uri[i], p.cancels_id[i]);
    memcpy(cmds, p.cmds, (size_t)p.ncmds * sizeof *cmds);
    *ncmds = p.ncmds;
    return taken;
}

static void *dispatcher_main(void *arg) {
    struct orch *o = arg;
    uint64_t last_maint = util_now_ns();
    while (!atomic_load(&o->stopping)) {
        struct cmd cmds[MAX_CMDS];
        int ncmds = 0;
        dispatch_pass(o, cmds, &ncmds);
        for (int i = 0; i < ncmds; i++) run_cmd(o, &cmds[i]);
        if (util_now_ns() - last_maint > 10ull * 1000000000ull) { /* WAL checkpoint: old prompt frames go */
            store_maintenance(o->store);
            last_maint = util_now_ns();
        }
        if (ncmds) continue; /* a start may have changed the picture */
        pthread_mutex_lock(&o->mu);
        if (!atomic_load(&o->stopping)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&o->wake, &o->mu, &ts);
        }
        pthread_mutex_unlock(&o->mu);
    }
    return NULL;
}

int orch_dispatcher_start(struct orch *o) {
    if (pthread_create(&o->dispatcher, NULL, dispatcher_main, o) != 0) return -errno;
    o->dispatcher_started = 1;
    return 0;
}

void orch_dispatcher_stop(struct orch *o) {
    atomic_store(&o->stopping, 1);
    pthread_mutex_lock(&o->mu);
    pthread_cond_broadcast(&o->wake);
    pthread_mutex_unlock(&o->mu);
    if (o->dispatcher_started) pthread_join(o->dispatcher, NULL);
    o->dispatcher_started = 0;
}

/* ---- cancel on the worker (detached) ---- */
struct cancel_arg { char url[REG_URI_MAX + 16]; char body[96]; };

static void *cancel_main(void *arg) {
    struct cancel_arg *c = arg;
    http_client_req rq = { .method = "POST", .url = c->url, .body = c->body, .timeout_ms = 3000 };
    http_resp resp = { 0 };
    char err[128];
    http_client_do(&rq, &resp, err, sizeof err);
    http_resp_free(&resp);
    free(c);
    return NULL;
}

void orch_cancel_on_worker(struct orch *o, const char *worker_uri, const char *job_id) {
    (void)o;
    struct cancel_arg *c = calloc(1, sizeof *c);
    if (!c) return;
    snprintf(c->url, sizeof c->url, "%s/cancel", worker_uri);
    snprintf(c->body, sizeof c->body, "{\"job_id\":\"%s\"}", job_id);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, cancel_main, c) != 0) free(c);
    pthread_attr_destroy(&at);
}
