/* api — orchestratord's HTTP endpoints (SPEC §6): the client API (tasks,
 * events, models, pools, workers, placements, health, metrics) and the pool
 * API (register, heartbeat, worker failed). Handlers validate, update the
 * core structures under the locks and answer; they never wait on a worker. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json_util.h"
#include "common/log.h"
#include "common/sha256.h"
#include "orch/orch.h"

/* ======================================================================
 * auth
 * ==================================================================== */
static int ct_equal(const char *a, const char *b) { /* constant time in the longer length */
    size_t la = strlen(a), lb = strlen(b), n = la > lb ? la : lb;
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < n; i++) d |= (unsigned char)((i < la ? a[i] : 0) ^ (i < lb ? b[i] : 0));
    return d == 0;
}

void orch_token_fp(const char *token, char out[16]) {
    if (!token || !*token) { out[0] = 0; return; }
    char h[65];
    sha256_hex(token, strlen(token), h);
    memcpy(out, h, 6);
    out[6] = 0;
}

static const char *bearer(http_req *r) {
    const char *a = http_req_header(r, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0 || !a[7]) return NULL;
    return a + 7;
}

/* pool endpoints: home = open; lab/platform = a configured pool token. 0 ok. */
static int pool_auth(struct orch *o, http_req *r, char fp[16]) {
    const char *t = bearer(r);
    orch_token_fp(t, fp);
    if (o->st.deployment == ORCH_HOME) return 0;
    const char *const *toks;
    size_t n = cfg_list(o->cfg, "auth.pool_tokens", &toks);
    int ok = 0;
    for (size_t i = 0; t && i < n; i++) ok |= ct_equal(t, toks[i]);
    if (ok) return 0;
    LOG_KV(LOG_WARN, ORCH_COMPONENT, "auth", http_req_correlation_id(r), "\"token_fp\":\"%s\",\"path\":\"pool\"", fp);
    http_respond_error(r, ERR_UNAUTHORIZED, "a valid pool bearer token is required", NULL);
    return -1;
}

/* client endpoints: tenant into out (""); 0 ok */
int orch_client_auth(struct orch *o, http_req *r, char tenant[JOB_TENANT_MAX + 1]) {
    tenant[0] = 0;
    const char *const *toks;
    size_t n = cfg_list(o->cfg, "auth.client_tokens", &toks);
    if (o->st.deployment == ORCH_HOME || (o->st.deployment == ORCH_LAB && n == 0)) return 0;
    const char *t = bearer(r);
    for (size_t i = 0; t && i < n; i++) {
        const char *colon = o->st.deployment == ORCH_PLATFORM ? strchr(toks[i], ':') : NULL;
        const char *secret = colon ? colon + 1 : toks[i];
        if (ct_equal(t, secret)) {
            if (colon) snprintf(tenant, JOB_TENANT_MAX + 1, "%.*s", (int)(colon - toks[i]), toks[i]);
            char fp[16];
            orch_token_fp(t, fp);
            LOG_KV(LOG_INFO, ORCH_COMPONENT, "audit", http_req_correlation_id(r),
                   "\"tenant\":\"%s\",\"token_fp\":\"%s\",\"method\":\"%s\"", tenant, fp, http_req_method(r));
            return 0;
        }
    }
    http_respond_error(r, ERR_UNAUTHORIZED, "a valid bearer token is required", NULL);
    return -1;
}

void orch_respond_sb(http_req *r, int status, struct util_sb *sb) {
    if (sb->oom) http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
    else http_respond_json(r, status, sb->buf ? sb->buf : "{}");
    util_sb_free(sb);
}

int orch_list_begin(struct orch *o, http_req *r, struct util_sb *sb, const char *head) {
    char tenant[JOB_TENANT_MAX + 1];
    if (orch_client_auth(o, r, tenant) < 0) return -1;
    util_sb_init(sb);
    util_sb_puts(sb, head);
    return 0;
}

void orch_list_end(http_req *r, struct util_sb *sb) {
    util_sb_puts(sb, "]}");
    orch_respond_sb(r, 200, sb);
}

/* 400 INVALID_REQUEST for a body that failed validation: e's message, its field as the details */
static void respond_invalid(http_req *r, const ju_err *e) {
    char det[128];
    ju_err_details(e, det, sizeof det);
    http_respond_error(r, ERR_INVALID_REQUEST, e->message, det);
}

/* the job's durable record (malloc'd) when it exists and the caller
 * (tenant) may see it, else NULL: a job from before a restart */
static struct store_job *stored_job_for(struct orch *o, http_req *r, const char *tenant) {
    struct store_job *sj = malloc(sizeof *sj);
    if (sj && store_job_get(o->store, http_req_param(r, "id"), sj) == 0 &&
        (o->st.deployment != ORCH_PLATFORM || strcmp(sj->tenant, tenant) == 0))
        return sj;
    free(sj);
    return NULL;
}

/* ======================================================================
 * tasks
 * ==================================================================== */
int orch_submit(struct orch *o, const char *tenant, const char *cid, const char *body, size_t len, struct ojob **jout,
                int64_t *pos, struct adm_error *e) {
    struct adm_task t;
    *jout = NULL;
    if (adm_parse_task(body, len, o->cat, &o->st.adm, NULL, &t, e) < 0) {
        const char *v[] = { "rejected" };
        metrics_add(o->m_enqueued, v, 1);
        LOG_KV(LOG_INFO, ORCH_COMPONENT, "admission", cid, "\"outcome\":\"rejected\",\"code\":\"%s\",\"field\":\"%s\"",
               err_name((enum err_code)e->code), e->field);
        return -EINVAL;
    }
    char id[37];
    http_uuid4(id);
    int64_t now = (int64_t)util_wall_ms();
    struct store_job sj;
    memset(&sj, 0, sizeof sj);
    snprintf(sj.id, sizeof sj.id, "%s", id);
    snprintf(sj.tenant, sizeof sj.tenant, "%s", tenant);
    snprintf(sj.session, sizeof sj.session, "%s", t.session_id);
    snprintf(sj.model_ref, sizeof sj.model_ref, "%s", t.model_ref);
    sj.priority = t.prio;
    sj.seed = t.seed;
    sj.created_ms = now;
    sha256_hex(t.prompt, t.prompt_len, sj.prompt_hash);
    adm_params_json(&t, sj.params, sizeof sj.params);

    struct ojob *j = orch_job_new(o, id);
    if (!j) {
        adm_task_free(&t);
        e->code = ERR_INTERNAL;
        snprintf(e->message, sizeof e->message, "out of memory");
        return -ENOMEM;
    }
    j->task = t; /* ownership moves */
    snprintf(j->tenant, sizeof j->tenant, "%s", tenant);
    snprintf(j->cid, sizeof j->cid, "%s", cid);
    j->created_ms = j->wait_since_ms = now;
    j->deadline_ms = now + t.timeout_ms;
    j->status = JOB_QUEUED;
    j->req_body = malloc(len + 1);
    if (j->req_body) { memcpy(j->req_body, body, len); j->req_body[len] = 0; j->req_len = len; }
    int rc = queue_push(o->queue, id, t.prio, j, pos); /* -ENOSPC: the queue is full */
    char err[256] = "";
    int src = 0; /* the store's code: -ENOSPC there is a full disk */
    if (rc == 0 && (src = store_job_insert(o->store, &sj, j->req_body, j->req_len, err, sizeof err)) < 0) {
        queue_remove(o->queue, id, NULL);
        rc = -EIO;
    }
    if (rc < 0) {
        j->terminal = 1;
        j->finished_ms = 0; /* collected at the next gc */
        const char *v[] = { rc == -ENOSPC ? "queue_full" : "error" };
        metrics_add(o->m_enqueued, v, 1);
        if (rc == -ENOSPC) {
            e->code = ERR_QUEUE_FULL;
            snprintf(e->message, sizeof e->message, "the queue is full");
        } else if (src == -ENOSPC) {
            LOG_ERROR(ORCH_COMPONENT, "store", cid, "enqueue: %s", err);
            e->code = ERR_INSUFFICIENT_STORAGE;
            snprintf(e->message, sizeof e->message,
                     "the orchestrator's state disk is full: the job was not recorded (free space where "
                     "state.path lives, then submit again)");
        } else {
            LOG_ERROR(ORCH_COMPONENT, "store", cid, "enqueue: %s", err);
            e->code = ERR_INTERNAL;
            snprintf(e->message, sizeof e->message, "cannot record the job");
        }
        return rc;
    }
    char ev[160];
    snprintf(ev, sizeof ev, "{\"job_id\":\"%s\",\"queue_position\":%lld}", id, (long long)*pos);
    orch_job_emit(o, j, "queued", ev);
    const char *v[] = { "accepted" };
    metrics_add(o->m_enqueued, v, 1);
    LOG_KV(LOG_INFO, ORCH_COMPONENT, "admission", cid,
           "\"outcome\":\"accepted\",\"job_id\":\"%s\",\"priority\":\"%s\",\"queue_position\":%lld", id,
           job_prio_name(t.prio), (long long)*pos);
    *jout = j;
    return 0;
}

void orch_respond_adm_error(struct orch *o, http_req *r, const struct adm_error *e) {
    char det[256] = ""; /* a 31-byte field name escapes to at most 186 bytes */
    if (e->code == ERR_QUEUE_FULL) {
        snprintf(det, sizeof det, "{\"capacity\":%lld}", (long long)queue_capacity(o->queue));
    } else if (e->field[0]) {
        struct util_sb sb;
        util_sb_init_fixed(&sb, det, sizeof det);
        util_sb_puts(&sb, "{\"field\":");
        util_sb_json_str(&sb, e->field);
        util_sb_putc(&sb, '}');
    }
    http_respond_error(r, (enum err_code)e->code, e->message, det[0] ? det : NULL);
}

static void h_task_create(http_req *r, void *user) {
    struct orch *o = user;
    const char *cid = http_req_correlation_id(r);
    char tenant[JOB_TENANT_MAX + 1];
    if (orch_client_auth(o, r, tenant) < 0) return;
    size_t len;
    const char *body = http_req_body(r, &len);
    struct adm_error e;
    struct ojob *j;
    int64_t pos = 0;
    pthread_mutex_lock(&o->mu);
    int rc = orch_submit(o, tenant, cid, body, len, &j, &pos, &e);
    char id[37] = "";
    if (rc == 0) snprintf(id, sizeof id, "%s", j->id);
    pthread_mutex_unlock(&o->mu);
    if (rc < 0) {
        orch_respond_adm_error(o, r, &e);
        return;
    }
    orch_wake(o);
    char resp[256];
    snprintf(resp, sizeof resp, "{\"job_id\":\"%s\",\"status\":\"queued\",\"queue_position\":%lld,"
                                "\"events_url\":\"/v2/tasks/%s/events\"}", id, (long long)pos, id);
    http_respond_json(r, 202, resp);
}

/* finds a job the caller may see (tenant), or answers 404 */
static struct ojob *job_for(struct orch *o, http_req *r, const char *tenant) {
    struct ojob *j = orch_job_find(o, http_req_param(r, "id"));
    if (j && o->st.deployment == ORCH_PLATFORM && strcmp(j->tenant, tenant) != 0) j = NULL;
    return j;
}

static void h_task_get(http_req *r, void *user) {
    struct orch *o = user;
    char tenant[JOB_TENANT_MAX + 1];
    if (orch_client_auth(o, r, tenant) < 0) return;
    pthread_mutex_lock(&o->mu);
    struct ojob *j = job_for(o, r, tenant);
    char *s = j ? orch_job_status_json(o, j) : NULL;
    pthread_mutex_unlock(&o->mu);
    if (s) {
        http_respond_json(r, 200, s);
        free(s);
        return;
    }
    struct store_job *sj = stored_job_for(o, r, tenant); /* an older job: the durable record */
    if (sj) {
        struct util_sb sb;
        util_sb_init(&sb);
        util_sb_printf(&sb, "{\"job_id\":\"%s\",\"status\":\"%s\",\"model\":", sj->id, job_status_name(sj->status));
        util_sb_json_str(&sb, sj->model_ref);
        util_sb_printf(&sb, ",\"tokens_in\":%lld,\"tokens_out\":%lld", (long long)sj->tokens_in,
                       (long long)sj->tokens_out);
        if (sj->error_code[0]) util_sb_printf(&sb, ",\"error_code\":\"%s\"", sj->error_code);
        util_sb_putc(&sb, '}');
        free(sj);
        orch_respond_sb(r, 200, &sb);
        return;
    }
    http_respond_error(r, ERR_NOT_FOUND, "no such job", NULL);
}

static void h_task_cancel(http_req *r, void *user) {
    struct orch *o = user;
    char tenant[JOB_TENANT_MAX + 1];
    if (orch_client_auth(o, r, tenant) < 0) return;
    char uri[REG_URI_MAX + 1] = "", id[37] = "";
    pthread_mutex_lock(&o->mu);
    struct ojob *j = job_for(o, r, tenant);
    if (!j) {
        pthread_mutex_unlock(&o->mu);
        http_respond_error(r, ERR_NOT_FOUND, "no such job", NULL);
        return;
    }
    snprintf(id, sizeof id, "%s", j->id);
    orch_job_cancel(o, j, "cancelled by the client", uri);
    char resp[128];
    snprintf(resp, sizeof resp, "{\"job_id\":\"%s\",\"status\":\"%s\"}", id,
             j->terminal ? job_status_name(j->status) : "cancelling");
    pthread_mutex_unlock(&o->mu);
    LOG_KV(LOG_INFO, ORCH_COMPONENT, "cancel", http_req_correlation_id(r), "\"job_id\":\"%s\"", id);
    if (uri[0]) orch_cancel_on_worker(o, uri, id);
    orch_wake(o);
    http_respond_json(r, 202, resp);
}

static void h_task_events(http_req *r, void *user) {
    struct orch *o = user;
    char tenant[JOB_TENANT_MAX + 1];
    if (orch_client_auth(o, r, tenant) < 0) return;
    int64_t after = -1;
    const char *lei = http_req_header(r, "Last-Event-ID");
    if (lei && cfg_parse_int(lei, &after) < 0) after = -1;
    pthread_mutex_lock(&o->mu);
    struct ojob *j = job_for(o, r, tenant);
    if (!j) {
        pthread_mutex_unlock(&o->mu);
        /* a job from before a restart: replay its terminal event */
        int64_t last;
        char ev[16], data[2048];
        struct store_job *sj = stored_job_for(o, r, tenant);
        int found = sj != NULL;
        if (found && store_checkpoint_get(o->store, sj->id, &last, ev, sizeof ev, data, sizeof data) == 0 && ev[0]) {
            http_stream *st = http_respond_stream(r, 200, "text/event-stream", NULL, NULL);
            if (st) {
                http_stream_sse(st, last, ev, data);
                http_stream_close(st);
            }
        } else if (found && job_status_terminal(sj->status)) {
            http_stream *st = http_respond_stream(r, 200, "text/event-stream", NULL, NULL);
            if (st) {
                char d[256];
                snprintf(d, sizeof d, "{\"job_id\":\"%s\",\"code\":\"%s\",\"message\":\"job ended\",\"retriable\":false}",
                         sj->id, sj->error_code[0] ? sj->error_code : "INTERNAL");
                if (sj->status == JOB_COMPLETED) http_stream_sse(st, 0, "end", "{}");
                else http_stream_sse(st, 0, "error", d);
                http_stream_close(st);
            }
        } else {
            http_respond_error(r, ERR_NOT_FOUND, "no such job", NULL);
        }
        free(sj);
        return;
    }
    http_stream *st = http_respond_stream(r, 200, "text/event-stream", NULL, NULL);
    if (!st) {
        pthread_mutex_unlock(&o->mu);
        return;
    }
    int ok = 1;
    for (size_t i = 0; i < j->nev && ok; i++)
        if (j->ev[i].id > after) ok = http_stream_sse(st, j->ev[i].id, j->ev[i].event, j->ev[i].data) == 0;
    if (!ok || j->terminal) {
        http_stream_close(st);
    } else {
        struct osub sub = { .st = st, .kind = OSUB_SSE_V2 };
        orch_job_subscribe(o, j, &sub);
    }
    pthread_mutex_unlock(&o->mu);
}

/* ======================================================================
 * pools
 * ==================================================================== */
static int parse_devices(json_t *arr, struct reg_device *dev, int *ndev, ju_err *e) {
    *ndev = 0;
    if (!arr) return 0;
    if (!json_is_array(arr) || json_array_size(arr) > REG_MAX_DEVICES)
        return ju_fail(e, "devices", "devices must be a list of at most %d", REG_MAX_DEVICES);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *d = json_array_get(arr, i);
        struct reg_device *x = &dev[i];
        memset(x, 0, sizeof *x);
        int64_t g = REG_HOST_DEVICE, tot = 0, fr = 0;
        const char *name = NULL;
        if (!json_is_object(d)) return ju_fail(e, "devices", "devices[%zu] must be an object", i);
        int rc = ju_int(d, "gpu_id", 0, -1, 1023, &g, e);
        if (rc == 0) rc = ju_int(d, "index", 0, -1, 1023, &g, e);
        if (rc < 0 || ju_int(d, "total_bytes", 1, 0, INT64_MAX, &tot, e) < 0 ||
            ju_int(d, "free_bytes", 1, 0, INT64_MAX, &fr, e) < 0 || ju_string(d, "name", 0, 63, &name, NULL, e) < 0)
            return -1;
        x->gpu_id = (int)g;
        x->total_bytes = (uint64_t)tot;
        x->free_bytes = (uint64_t)fr;
        if (name) snprintf(x->name, sizeof x->name, "%s", name);
        (*ndev)++;
    }
    return 0;
}

static int apply_state(struct orch *o, const char *url_id, json_t *j, const char *fp, ju_err *e, char *err,
                       size_t errlen);

static void h_pool_register(http_req *r, void *user) {
    struct orch *o = user;
    char fp[16];
    if (pool_auth(o, r, fp) < 0) return;
    ju_err e = { 0 };
    json_t *j = ju_parse_body(r, &e);
    struct reg_pool f;
    memset(&f, 0, sizeof f);
    const char *id = NULL, *ep = NULL;
    if (!j || ju_string(j, "pool_id", 1, JOB_POOL_ID_MAX, &id, NULL, &e) < 0 ||
        ju_string(j, "endpoint", 1, REG_URI_MAX, &ep, NULL, &e) < 0 ||
        parse_devices(json_object_get(j, "devices"), f.dev, &f.ndev, &e) < 0) {
        respond_invalid(r, &e);
        json_decref(j);
        return;
    }
    snprintf(f.id, sizeof f.id, "%s", id);
    snprintf(f.endpoint, sizeof f.endpoint, "%s", ep);
    snprintf(f.token_fp, sizeof f.token_fp, "%s", fp);
    char err[256];
    reg_lock(o->reg);
    int rc = reg_pool_register(o->reg, &f, (int64_t)util_wall_ms(), err, sizeof err);
    reg_unlock(o->reg);
    if (rc == -EEXIST) { json_decref(j); http_respond_error(r, ERR_CONFLICT, err, NULL); return; }
    if (rc < 0) { json_decref(j); http_respond_error(r, ERR_INVALID_REQUEST, err, NULL); return; }
    /* pool-managerd sends its full state (ts + workers) with the registration:
     * apply it now rather than one heartbeat interval later */
    if (json_object_get(j, "ts")) {
        ju_err e2 = { 0 };
        char err2[256] = "";
        int arc = apply_state(o, f.id, j, fp, &e2, err2, sizeof err2);
        if (arc < 0)
            LOG_KV(LOG_WARN, ORCH_COMPONENT, "pool_register", http_req_correlation_id(r),
                   "\"pool_id\":\"%s\",\"state_ignored\":true", f.id);
    }
    json_decref(j);
    LOG_KV(LOG_INFO, ORCH_COMPONENT, "pool_register", http_req_correlation_id(r),
           "\"pool_id\":\"%s\",\"devices\":%d,\"token_fp\":\"%s\"", f.id, f.ndev, fp);
    char resp[256];
    snprintf(resp, sizeof resp, "{\"pool_id\":\"%s\",\"heartbeat_interval_ms\":%lld,\"missed_threshold\":%d}", f.id,
             (long long)o->st.reg.heartbeat_interval_ms, o->st.reg.missed_threshold);
    orch_wake(o);
    http_respond_json(r, 200, resp);
}

static int parse_worker(json_t *w, const char *pool_id, struct reg_worker *x, ju_err *e) {
    memset(x, 0, sizeof *x);
    const char *id = NULL, *model = NULL, *uri = NULL, *status = NULL, *wt = NULL, *ma = NULL, *arch = NULL;
    int64_t mem = 0, ctx = 0;
    json_t *caps = NULL, *gpus = NULL;
    if (!json_is_object(w)) return ju_fail(e, "workers", "workers[] must be objects");
    if (ju_string(w, "worker_id", 1, JOB_WORKER_ID_MAX, &id, NULL, e) < 0 ||
        ju_string(w, "model_ref", 1, JOB_MODEL_REF_MAX, &model, NULL, e) < 0 ||
        ju_string(w, "uri", 0, REG_URI_MAX, &uri, NULL, e) < 0 || ju_string(w, "status", 1, 16, &status, NULL, e) < 0 ||
        ju_string(w, "worker_type", 0, 31, &wt, NULL, e) < 0 ||
        ju_string(w, "memory_architecture", 0, 15, &ma, NULL, e) < 0 ||
        ju_string(w, "architecture", 0, 63, &arch, NULL, e) < 0 ||
        ju_int(w, "memory_bytes", 0, 0, INT64_MAX, &mem, e) < 0 ||
        ju_int(w, "context_length", 0, 0, 100000000, &ctx, e) < 0 ||
        ju_array(w, "capabilities", 0, 8, &caps, e) < 0 || ju_array(w, "gpu_ids", 0, REG_MAX_WORKER_GPUS, &gpus, e) < 0)
        return -1;
    int st = reg_worker_status_parse(status);
    if (st < 0) return ju_fail(e, "status", "unknown worker status '%.16s'", status);
    snprintf(x->id, sizeof x->id, "%s", id);
    snprintf(x->pool_id, sizeof x->pool_id, "%s", pool_id);
    snprintf(x->model_ref, sizeof x->model_ref, "%s", model);
    if (uri) snprintf(x->uri, sizeof x->uri, "%s", uri);
    if (wt) snprintf(x->worker_type, sizeof x->worker_type, "%s", wt);
    if (ma) snprintf(x->memory_architecture, sizeof x->memory_architecture, "%s", ma);
    if (arch) snprintf(x->arch, sizeof x->arch, "%s", arch);
    x->status = (enum reg_worker_status)st;
    x->memory_bytes = (uint64_t)mem;
    x->context_length = ctx;
    for (size_t i = 0; caps && i < json_array_size(caps); i++) {
        unsigned b = job_cap_parse(json_string_value(json_array_get(caps, i)));
        if (!b) return ju_fail(e, "capabilities", "unknown capability");
        x->caps |= b;
    }
    if (!caps) x->caps = CAP_TEXT_GEN;
    for (size_t i = 0; gpus && i < json_array_size(gpus); i++) {
        json_t *g = json_array_get(gpus, i);
        if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 1023)
            return ju_fail(e, "gpu_ids", "gpu_ids must be small non-negative integers");
        x->gpu_ids[x->ngpu++] = (int)json_integer_value(g);
    }
    return 0;
}

/* Parses a pool's full state (heartbeat body, also sent at registration) and
 * applies it. Returns 0, a reg_pool_heartbeat code, or -EBADMSG with e set. */
static int apply_state(struct orch *o, const char *url_id, json_t *j, const char *fp, ju_err *e, char *err,
                       size_t errlen) {
    const char *pid = NULL;
    struct reg_device dev[REG_MAX_DEVICES];
    int ndev = 0;
    struct reg_worker *ws = NULL;
    size_t nws = 0;
    json_t *tsj = json_object_get(j, "ts");
    uint64_t ts = 0;
    json_t *warr = NULL;
    int bad = ju_string(j, "pool_id", 1, JOB_POOL_ID_MAX, &pid, NULL, e) < 0 ||
              parse_devices(json_object_get(j, "devices"), dev, &ndev, e) < 0 ||
              ju_array(j, "workers", 0, 4096, &warr, e) < 0;
    if (!bad) {
        if (json_is_integer(tsj) && json_integer_value(tsj) > 0) ts = (uint64_t)json_integer_value(tsj);
        else if (!json_is_string(tsj) || http_parse_time_ms(json_string_value(tsj), &ts) != 0)
            bad = ju_fail(e, "ts", "ts must be epoch milliseconds or RFC 3339") < 0;
    }
    if (!bad && warr && json_array_size(warr)) {
        ws = calloc(json_array_size(warr), sizeof *ws);
        if (!ws) bad = ju_fail(e, NULL, "out of memory") < 0;
        for (size_t i = 0; !bad && i < json_array_size(warr); i++, nws++)
            bad = parse_worker(json_array_get(warr, i), pid, &ws[i], e) < 0;
    }
    if (bad) {
        free(ws);
        return -EBADMSG;
    }
    struct reg_heartbeat hb = { .pool_id = pid, .ts_ms = (int64_t)ts, .token_fp = fp, .dev = dev, .ndev = ndev,
                                .workers = ws, .nworkers = nws };
    reg_lock(o->reg);
    int rc = reg_pool_heartbeat(o->reg, url_id, &hb, (int64_t)util_wall_ms(), err, errlen);
    reg_unlock(o->reg);
    free(ws);
    return rc;
}

static void h_pool_heartbeat(http_req *r, void *user) {
    struct orch *o = user;
    char fp[16];
    if (pool_auth(o, r, fp) < 0) return;
    ju_err e = { 0 };
    char err[256] = "";
    json_t *j = ju_parse_body(r, &e);
    int rc = j ? apply_state(o, http_req_param(r, "id"), j, fp, &e, err, sizeof err) : -EBADMSG;
    json_decref(j);
    switch (rc) {
    case 0: break;
    case -EBADMSG: respond_invalid(r, &e); return;
    case -ENOENT: http_respond_error(r, ERR_NOT_FOUND, err, NULL); return;
    case -EPERM: http_respond_error(r, ERR_FORBIDDEN, err, NULL); return;
    case -ESTALE: http_respond_error(r, ERR_CONFLICT, err, NULL); return;
    default: http_respond_error(r, ERR_INVALID_REQUEST, err, NULL); return;
    }
    orch_wake(o);
    http_respond_json(r, 200, "{\"status\":\"ok\"}");
}

static void h_worker_failed(http_req *r, void *user) {
    struct orch *o = user;
    char fp[16];
    if (pool_auth(o, r, fp) < 0) return;
    ju_err e = { 0 };
    json_t *j = ju_parse_body(r, &e);
    const char *wid = NULL;
    if (!j || ju_string(j, "worker_id", 1, JOB_WORKER_ID_MAX, &wid, NULL, &e) < 0) {
        respond_invalid(r, &e);
        json_decref(j);
        return;
    }
    reg_lock(o->reg);
    struct reg_worker *w = reg_worker_get(o->reg, wid);
    const struct reg_pool *p = w ? reg_worker_pool(o->reg, w) : NULL;
    int allowed = w && p && strcmp(p->token_fp, fp) == 0; /* only its own pool may report it */
    if (allowed) reg_worker_remove(o->reg, wid);
    reg_unlock(o->reg);
    LOG_KV(LOG_WARN, ORCH_COMPONENT, "worker_failed", http_req_correlation_id(r), "\"worker_id\":\"%s\",\"known\":%s",
           wid, allowed ? "true" : "false");
    json_decref(j);
    orch_wake(o);
    if (!allowed) http_respond_error(r, ERR_NOT_FOUND, "no such worker for this pool", NULL);
    else http_respond_json(r, 200, "{\"status\":\"ok\"}");
}

/* ======================================================================
 * listings, placements, health, metrics
 * ==================================================================== */
static void h_models(http_req *r, void *user) {
    struct orch *o = user;
    struct util_sb sb;
    if (orch_list_begin(o, r, &sb, "{\"models\":[") < 0) return;
    for (size_t i = 0; i < cat_count(o->cat); i++) {
        const struct cat_model *m = cat_at(o->cat, i);
        util_sb_printf(&sb, "%s{\"alias\":\"%s\",\"model_ref\":", i ? "," : "", m->alias);
        util_sb_json_str(&sb, m->model_ref);
        util_sb_printf(&sb, ",\"context_length\":%lld,\"capabilities\":[", (long long)m->context_length);
        int first = 1;
        for (unsigned b = 1; b <= CAP_MULTIMODAL; b <<= 1)
            if (m->caps & b) { util_sb_printf(&sb, "%s\"%s\"", first ? "" : ",", job_cap_name(b)); first = 0; }
        util_sb_puts(&sb, "]}");
    }
    orch_list_end(r, &sb);
}

static void h_pools(http_req *r, void *user) {
    struct orch *o = user;
    struct util_sb sb;
    if (orch_list_begin(o, r, &sb, "{\"pools\":[") < 0) return;
    int64_t now = (int64_t)util_wall_ms();
    reg_lock(o->reg);
    for (size_t i = 0; i < reg_pool_count(o->reg); i++) {
        const struct reg_pool *p = reg_pool_at(o->reg, i);
        util_sb_printf(&sb, "%s{\"pool_id\":\"%s\",\"endpoint\":", i ? "," : "", p->id);
        util_sb_json_str(&sb, p->endpoint);
        util_sb_printf(&sb, ",\"available\":%s,\"last_heartbeat_ms\":%lld,\"devices\":[",
                       reg_pool_available(o->reg, p, now) ? "true" : "false", (long long)p->last_seen_ms);
        for (int k = 0; k < p->ndev; k++) {
            util_sb_printf(&sb, "%s{\"gpu_id\":%d,\"name\":", k ? "," : "", p->dev[k].gpu_id);
            util_sb_json_str(&sb, p->dev[k].name);
            util_sb_printf(&sb, ",\"total_bytes\":%llu,\"free_bytes\":%llu,\"room_bytes\":%llu}",
                           (unsigned long long)p->dev[k].total_bytes, (unsigned long long)p->dev[k].free_bytes,
                           (unsigned long long)reg_device_room(o->reg, p, k));
        }
        util_sb_puts(&sb, "]}");
    }
    reg_unlock(o->reg);
    orch_list_end(r, &sb);
}

static void h_workers(http_req *r, void *user) {
    struct orch *o = user;
    struct util_sb sb;
    if (orch_list_begin(o, r, &sb, "{\"workers\":[") < 0) return;
    reg_lock(o->reg);
    for (size_t i = 0; i < reg_worker_count(o->reg); i++) {
        const struct reg_worker *w = reg_worker_at(o->reg, i);
        util_sb_printf(&sb, "%s{\"worker_id\":\"%s\",\"pool_id\":\"%s\",\"model_ref\":", i ? "," : "", w->id,
                       w->pool_id);
        util_sb_json_str(&sb, w->model_ref);
        util_sb_puts(&sb, ",\"uri\":");
        util_sb_json_str(&sb, w->uri);
        util_sb_printf(&sb, ",\"status\":\"%s\",\"memory_bytes\":%llu,\"pinned\":%s,\"gpu_ids\":[",
                       reg_worker_status_name(w->status), (unsigned long long)w->memory_bytes,
                       reg_worker_pinned(o->reg, w) ? "true" : "false");
        for (int g = 0; g < w->ngpu; g++) util_sb_printf(&sb, "%s%d", g ? "," : "", w->gpu_ids[g]);
        util_sb_puts(&sb, "]}");
    }
    reg_unlock(o->reg);
    orch_list_end(r, &sb);
}

static void h_placement(http_req *r, void *user) {
    struct orch *o = user;
    char tenant[JOB_TENANT_MAX + 1];
    if (orch_client_auth(o, r, tenant) < 0) return;
    ju_err e = { 0 };
    json_t *j = ju_parse_body(r, &e);
    const char *model = NULL, *pool = NULL;
    int64_t gpu = REG_HOST_DEVICE;
    if (!j || ju_string(j, "model", 1, JOB_MODEL_REF_MAX, &model, NULL, &e) < 0 ||
        ju_string(j, "pool_id", 1, JOB_POOL_ID_MAX, &pool, NULL, &e) < 0 ||
        ju_int(j, "gpu_id", 0, -1, 1023, &gpu, &e) < 0) {
        respond_invalid(r, &e);
        json_decref(j);
        return;
    }
    const struct cat_model *m = cat_find(o->cat, model);
    const char *ref = m ? m->model_ref : (cat_ref_valid(model) ? model : NULL);
    if (!ref) {
        json_decref(j);
        http_respond_error(r, ERR_MODEL_NOT_FOUND, "unknown model", "{\"field\":\"model\"}");
        return;
    }
    int del = strcmp(http_req_method(r), "DELETE") == 0;
    /* One API change at a time (o->place_mu, taken before reg_lock): the
     * check under reg_lock, then the state-file write WITHOUT reg_lock (a
     * SQLite write can take milliseconds, and heartbeats, scheduling and
     * dispatch all wait on reg_lock), then the registry change under
     * reg_lock once the row is durable. Nothing else changes placements
     * after startup, so holding place_mu from the check to the registry
     * update keeps the file and the registry in the same order, and a failed
     * write leaves the registry as it was. */
    pthread_mutex_lock(&o->place_mu);
    reg_lock(o->reg);
    /* a new pin must name a registered pool and one of its devices: a pin to
     * nothing would keep the model from ever being placed (placements from the
     * config file may name pools that register later; the API may not) */
    int known = del;
    if (!del) {
        const struct reg_pool *p = reg_pool_get(o->reg, pool);
        for (int d = 0; p && d < p->ndev && !known; d++) known = p->dev[d].gpu_id == (int)gpu;
        if (!p) {
            reg_unlock(o->reg);
            pthread_mutex_unlock(&o->place_mu);
            json_decref(j);
            http_respond_error(r, ERR_NOT_FOUND, "pool_id is not a registered pool", "{\"field\":\"pool_id\"}");
            return;
        }
    }
    if (!known) {
        reg_unlock(o->reg);
        pthread_mutex_unlock(&o->place_mu);
        json_decref(j);
        http_respond_error(r, ERR_GPU_NOT_FOUND, "the pool reports no such device", "{\"field\":\"gpu_id\"}");
        return;
    }
    int exists = 0;
    for (size_t i = 0; i < reg_placement_count(o->reg) && !exists; i++) {
        const struct reg_placement *pl = reg_placement_at(o->reg, i);
        exists = !strcmp(pl->model_ref, ref) && !strcmp(pl->pool_id, pool) && pl->gpu_id == (int)gpu;
    }
    reg_unlock(o->reg);

    /* API placements are kept in the state file until deleted, so they
     * survive a restart (the registry changes only if the store did) */
    char serr[256];
    int rc;
    if (del && !exists) {
        rc = -ENOENT;
    } else if (del) { /* a catalog placement has no row: it comes back from the config at the next start */
        int src = store_placement_del(o->store, ref, pool, (int)gpu, serr, sizeof serr);
        if (src < 0 && src != -ENOENT) {
            LOG_ERROR(ORCH_COMPONENT, "store", http_req_correlation_id(r), "placement: %s", serr);
            rc = -EIO;
        } else {
            reg_lock(o->reg);
            rc = reg_placement_remove(o->reg, ref, pool, (int)gpu);
            reg_unlock(o->reg);
            LLORCH_ASSERT(rc == 0); /* it existed, and only place_mu holders remove */
        }
    } else if (store_placement_put(o->store, ref, pool, (int)gpu, (int64_t)util_wall_ms(), serr, sizeof serr) < 0) {
        LOG_ERROR(ORCH_COMPONENT, "store", http_req_correlation_id(r), "placement: %s", serr);
        rc = -EIO;
    } else {
        reg_lock(o->reg);
        rc = reg_placement_add(o->reg, ref, pool, (int)gpu);
        if (rc == 0 || rc == -EEXIST) {
            for (size_t i = 0; i < reg_placement_count(o->reg); i++) {
                struct reg_placement *pl = reg_placement_at_mut(o->reg, i);
                if (!strcmp(pl->model_ref, ref) && !strcmp(pl->pool_id, pool) && pl->gpu_id == (int)gpu) pl->from_api = 1;
            }
        }
        reg_unlock(o->reg);
        /* the registry refused it (out of memory): it was not there, so the
         * row is new; take it back so a restart does not restore it */
        if (rc != 0 && rc != -EEXIST && store_placement_del(o->store, ref, pool, (int)gpu, serr, sizeof serr) < 0)
            LOG_ERROR(ORCH_COMPONENT, "store", http_req_correlation_id(r), "placement: %s", serr);
    }
    pthread_mutex_unlock(&o->place_mu);
    json_decref(j);
    if (rc == -ENOENT) http_respond_error(r, ERR_NOT_FOUND, "no such placement", NULL);
    else if (rc == -EINVAL) http_respond_error(r, ERR_INVALID_REQUEST, "invalid placement", NULL);
    else if (rc < 0 && rc != -EEXIST) http_respond_error(r, ERR_INTERNAL, "placement failed", NULL);
    else {
        orch_wake(o);
        http_respond_json(r, del ? 200 : 201, del ? "{\"status\":\"removed\"}" : "{\"status\":\"placed\"}");
    }
}

/* GET /v2/placements: every placement, whether a worker serves it, and where
 * it came from (the catalog, re-read at each start, or the API, kept in the
 * state file) */
static void h_placements_list(http_req *r, void *user) {
    struct orch *o = user;
    struct util_sb sb;
    if (orch_list_begin(o, r, &sb, "{\"placements\":[") < 0) return;
    reg_lock(o->reg);
    for (size_t i = 0; i < reg_placement_count(o->reg); i++) {
        const struct reg_placement *pl = reg_placement_at(o->reg, i);
        util_sb_puts(&sb, i ? ",{\"model_ref\":" : "{\"model_ref\":");
        util_sb_json_str(&sb, pl->model_ref);
        util_sb_puts(&sb, ",\"pool_id\":");
        util_sb_json_str(&sb, pl->pool_id);
        util_sb_printf(&sb, ",\"gpu_id\":%d,\"source\":\"%s\",\"served\":%s}", pl->gpu_id, pl->from_api ? "api" : "config",
                       reg_placement_served(o->reg, pl) ? "true" : "false");
    }
    reg_unlock(o->reg);
    orch_list_end(r, &sb);
}

static void h_health(http_req *r, void *user) {
    struct orch *o = user;
    int64_t now = (int64_t)util_wall_ms();
    reg_lock(o->reg);
    size_t pa = reg_pools_available(o->reg, now), np = reg_pool_count(o->reg);
    reg_unlock(o->reg);
    char b[256];
    snprintf(b, sizeof b, "{\"status\":\"healthy\",\"queue_depth\":%zu,\"pools\":%zu,\"pools_available\":%zu,"
                          "\"uptime_seconds\":%lld}",
             queue_len(o->queue, -1), np, pa, (long long)((now - o->started_ms) / 1000));
    http_respond_json(r, 200, b);
}

static void h_metrics(http_req *r, void *user) {
    struct orch *o = user;
    struct util_sb sb;
    util_sb_init(&sb);
    metrics_render(o->metrics, &sb);
    if (sb.oom) http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
    else http_respond(r, 200, METRICS_CONTENT_TYPE, sb.buf ? sb.buf : "", sb.len);
    util_sb_free(&sb);
}

int orch_api_routes(struct orch *o) {
    static const struct { const char *m, *p; http_handler_fn fn; } routes[] = {
        { "POST", "/v2/tasks", h_task_create },
        { "GET", "/v2/tasks/{id}", h_task_get },
        { "DELETE", "/v2/tasks/{id}", h_task_cancel },
        { "GET", "/v2/tasks/{id}/events", h_task_events },
        { "GET", "/v2/models", h_models },
        { "GET", "/v2/pools", h_pools },
        { "GET", "/v2/workers", h_workers },
        { "GET", "/v2/placements", h_placements_list },
        { "POST", "/v2/placements", h_placement },
        { "DELETE", "/v2/placements", h_placement },
        { "POST", "/v2/pools/register", h_pool_register },
        { "POST", "/v2/pools/{id}/heartbeat", h_pool_heartbeat },
        { "POST", "/v2/internal/workers/failed", h_worker_failed },
        { "GET", "/health", h_health },
        { "GET", "/metrics", h_metrics },
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (http_server_route(o->http, routes[i].m, routes[i].p, routes[i].fn, o) != 0) return -1;
    return orch_openai_routes(o);
}
