/* jobs — the in-memory job table, each job's SSE event log and its live
 * subscribers (see orch.h). The durable record is the store; this memory is
 * what a reconnecting client replays from (Last-Event-ID). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "orch/orch.h"

int64_t orch_day(int64_t epoch_ms) {
    time_t t = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    return (int64_t)(tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static uint64_t hash_id(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

struct ojob *orch_job_find(struct orch *o, const char *id) {
    if (!id) return NULL;
    for (struct ojob *j = o->buckets[hash_id(id) & (o->nbuckets - 1)]; j; j = j->hnext)
        if (strcmp(j->id, id) == 0) return j;
    return NULL;
}

struct ojob *orch_job_new(struct orch *o, const char *id) {
    struct ojob *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->orch = o;
    struct ojob **b = &o->buckets[hash_id(id) & (o->nbuckets - 1)];
    j->hnext = *b;
    *b = j;
    o->njobs++;
    return j;
}

/* closes a subscriber's stream and frees its buffers */
static void sub_close(struct osub *sub) {
    http_stream_close(sub->st);
    util_sb_free(&sub->text);
    util_sb_free(&sub->reasoning);
}
/* closes subscriber i and moves the last one into its place */
static void sub_remove(struct ojob *j, size_t i) {
    sub_close(&j->subs[i]);
    j->subs[i] = j->subs[--j->nsubs];
}

static void job_free(struct ojob *j) {
    adm_task_free(&j->task);
    free(j->req_body);
    free(j->fin_msg);
    for (size_t i = 0; i < j->nev; i++) {
        free(j->ev[i].event);
        free(j->ev[i].data);
    }
    free(j->ev);
    for (size_t i = 0; i < j->nsubs; i++) sub_close(&j->subs[i]);
    free(j->subs);
    free(j);
}

void orch_job_free_all(struct orch *o) {
    for (size_t b = 0; b < o->nbuckets; b++) {
        struct ojob *j = o->buckets[b];
        while (j) {
            struct ojob *n = j->hnext;
            job_free(j);
            j = n;
        }
        o->buckets[b] = NULL;
    }
    o->njobs = 0;
}

/* After ORCH_TEXT_GRACE_MS a finished job keeps only its terminal event:
 * generated text stays in memory just long enough for a client that lost
 * its connection near the end to reconnect and read the rest. */
#define ORCH_TEXT_GRACE_MS 60000

static void compact_log(struct ojob *j) {
    if (j->nev <= 1) return;
    for (size_t i = 0; i + 1 < j->nev; i++) {
        free(j->ev[i].event);
        free(j->ev[i].data);
    }
    j->ev[0] = j->ev[j->nev - 1];
    j->nev = 1;
}

void orch_job_store_retry(struct orch *o, int64_t now_ms) {
    if (!o->n_store_pending || now_ms - o->store_retry_ms < 1000) return;
    o->store_retry_ms = now_ms;
    for (size_t b = 0; b < o->nbuckets; b++)
        for (struct ojob *j = o->buckets[b]; j; j = j->hnext) {
            if (!j->store_pending) continue;
            char err[256];
            const int rc = store_job_finish(o->store, j->id, j->status, j->fin_code[0] ? j->fin_code : NULL,
                                            j->fin_msg, j->tokens_in, j->tokens_out, j->finished_ms, err, sizeof err);
            if (rc < 0 && rc != -ESTALE) return; /* still refused: the next pass tries again */
            LOG_KV(LOG_INFO, ORCH_COMPONENT, "store", j->cid, "\"job_id\":\"%s\",\"finish\":\"recorded late\"", j->id);
            j->store_pending = 0;
            o->n_store_pending--;
            free(j->fin_msg);
            j->fin_msg = NULL;
        }
}

void orch_job_gc(struct orch *o, int64_t now_ms, int64_t keep_ms) {
    for (size_t b = 0; b < o->nbuckets; b++) {
        struct ojob **p = &o->buckets[b];
        while (*p) {
            struct ojob *j = *p;
            if (j->terminal && !j->relay_running && now_ms - j->finished_ms > ORCH_TEXT_GRACE_MS) compact_log(j);
            if (j->terminal && !j->relay_running && !j->store_pending && now_ms - j->finished_ms > keep_ms) {
                *p = j->hnext;
                job_free(j);
                o->njobs--;
            } else {
                p = &j->hnext;
            }
        }
    }
}

void orch_job_emit(struct orch *o, struct ojob *j, const char *event, const char *data) {
    if (j->term_emitted) return; /* exactly one terminal event */
    if (j->nev == j->cev) {
        size_t nc = j->cev ? j->cev * 2 : 16;
        struct oevent *ne = realloc(j->ev, nc * sizeof *ne);
        if (!ne) return;
        j->ev = ne;
        j->cev = nc;
    }
    struct oevent *e = &j->ev[j->nev];
    e->id = (int64_t)j->nev;
    e->event = strdup(event);
    e->data = strdup(data);
    if (!e->event || !e->data) {
        free(e->event);
        free(e->data);
        return;
    }
    j->nev++;
    j->last_event_ms = (int64_t)util_wall_ms();
    int term = strcmp(event, "end") == 0 || strcmp(event, "error") == 0;
    for (size_t i = 0; i < j->nsubs;) {
        struct osub *sub = &j->subs[i];
        int done;
        if (sub->kind == OSUB_SSE_V2) {
            done = http_stream_sse(sub->st, e->id, e->event, e->data) != 0 || term;
        } else {
            int rc = orch_openai_event(o, j, sub, e->event, e->data);
            if (rc < 0 && !term) orch_job_note_gone(o, j->id); /* nobody else can read this job */
            done = rc != 0 || term;
        }
        if (done) sub_remove(j, i);
        else i++;
    }
    if (term) {
        j->term_emitted = 1;
        char ck[64] = "";
        snprintf(ck, sizeof ck, "%s", event);
        store_checkpoint_put(o->store, j->id, e->id, ck, e->data, NULL, 0);
    }
}

void orch_job_finish(struct orch *o, struct ojob *j, enum job_status st, const char *code, const char *message) {
    orch_job_finish_with(o, j, st, code, message, NULL, NULL);
}

/* The store is updated before the terminal event goes out, so a client that
 * has seen `end`/`error` always finds the final row. */
void orch_job_finish_with(struct orch *o, struct ojob *j, enum job_status st, const char *code, const char *message,
                          const char *event, const char *data) {
    if (j->terminal) return;
    int64_t now = (int64_t)util_wall_ms();
    char err[256];
    int rc = store_job_finish(o->store, j->id, st, code, message, j->tokens_in, j->tokens_out, now, err, sizeof err);
    if (rc < 0 && rc != -ESTALE) {
        /* kept for orch_job_store_retry: a row left dispatched or running
         * would be taken for an interrupted job at the next start */
        LOG_ERROR(ORCH_COMPONENT, "store", j->cid, "finish %s: %s (written again once the store takes it)", j->id,
                  err);
        if (!j->store_pending) o->n_store_pending++;
        j->store_pending = 1;
        snprintf(j->fin_code, sizeof j->fin_code, "%s", code ? code : "");
        free(j->fin_msg);
        j->fin_msg = message ? strdup(message) : NULL;
    }
    j->status = st;
    j->finished_ms = now;
    /* the prompt is needed no longer (retries are over) */
    if (j->task.prompt) {
        memset(j->task.prompt, 0, j->task.prompt_len);
        free(j->task.prompt);
        j->task.prompt = NULL;
    }
    if (j->req_body) {
        memset(j->req_body, 0, j->req_len);
        free(j->req_body);
        j->req_body = NULL;
    }
    const char *mv[] = { job_status_name(st) }; /* every job ends exactly once: count it here */
    metrics_add(o->m_dispatched, mv, 1);
    if (j->tenant[0] && j->tokens_in + j->tokens_out > 0) /* counts against the tenant's daily budget */
        store_quota_add_tokens(o->store, j->tenant, orch_day(now), j->tokens_in + j->tokens_out);
    if (event && data) orch_job_emit(o, j, event, data);
    if (!j->term_emitted) {
        struct util_sb sb;
        util_sb_init(&sb);
        util_sb_printf(&sb, "{\"job_id\":\"%s\",\"code\":\"%s\",\"message\":", j->id, code ? code : "INTERNAL");
        util_sb_json_str(&sb, message ? message : "");
        int ec = code ? err_parse(code) : ERR_INTERNAL;
        util_sb_printf(&sb, ",\"retriable\":%s}", err_retriable(ec < 0 ? ERR_INTERNAL : (enum err_code)ec) ? "true" : "false");
        if (!sb.oom) orch_job_emit(o, j, "error", sb.buf);
        util_sb_free(&sb);
    }
    j->terminal = 1;
    for (size_t i = 0; i < j->nsubs; i++) sub_close(&j->subs[i]);
    j->nsubs = 0;
    LOG_KV(LOG_INFO, ORCH_COMPONENT, "execute_end", j->cid, "\"job_id\":\"%s\",\"status\":\"%s\",\"error_code\":\"%s\"",
           j->id, job_status_name(st), code ? code : "");
}

char *orch_job_status_json(struct orch *o, struct ojob *j) {
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_printf(&sb, "{\"job_id\":\"%s\",\"status\":\"%s\",\"model\":", j->id, job_status_name(j->status));
    util_sb_json_str(&sb, j->task.model_ref);
    util_sb_printf(&sb, ",\"priority\":\"%s\",\"seed\":%llu,\"attempts\":%d,\"tokens_in\":%lld,\"tokens_out\":%lld",
                   job_prio_name(j->task.prio), (unsigned long long)j->task.seed, j->attempts,
                   (long long)j->tokens_in, (long long)j->tokens_out);
    if (j->status == JOB_QUEUED) {
        int64_t pos = queue_position(o->queue, j->id);
        if (pos >= 0) util_sb_printf(&sb, ",\"queue_position\":%lld", (long long)pos);
    }
    if (j->worker_id[0]) util_sb_printf(&sb, ",\"worker_id\":\"%s\",\"pool_id\":\"%s\"", j->worker_id, j->pool_id);
    char t[40];
    util_time_rfc3339_from_ms((uint64_t)j->created_ms, t, sizeof t);
    util_sb_printf(&sb, ",\"created_at\":\"%s\"", t);
    if (j->terminal && j->finished_ms) {
        util_time_rfc3339_from_ms((uint64_t)j->finished_ms, t, sizeof t);
        util_sb_printf(&sb, ",\"completed_at\":\"%s\"", t);
    }
    util_sb_printf(&sb, ",\"events_url\":\"/v2/tasks/%s/events\"}", j->id);
    if (sb.oom) {
        util_sb_free(&sb);
        return NULL;
    }
    return sb.buf;
}

int orch_job_subscribe(struct orch *o, struct ojob *j, const struct osub *sub) {
    (void)o;
    if (j->nsubs == j->csubs) {
        size_t nc = j->csubs ? j->csubs * 2 : 4;
        struct osub *ns = realloc(j->subs, nc * sizeof *ns);
        if (!ns) {
            LOG_KV(LOG_WARN, ORCH_COMPONENT, "subscribe_failed", j->cid, "\"job_id\":\"%s\",\"reason\":\"oom\"",
                   j->id);
            http_stream_close(sub->st);
            struct osub s = *sub; /* the subscriber's buffers are ours now too */
            util_sb_free(&s.text);
            util_sb_free(&s.reasoning);
            return -ENOMEM;
        }
        j->subs = ns;
        j->csubs = nc;
    }
    j->subs[j->nsubs++] = *sub;
    return 0;
}

void orch_job_keepalive(struct orch *o, int64_t now_ms, int64_t idle_ms) {
    for (size_t b = 0; b < o->nbuckets; b++)
        for (struct ojob *j = o->buckets[b]; j; j = j->hnext) {
            if (j->terminal || j->nsubs == 0 || now_ms - j->last_event_ms < idle_ms) continue;
            j->last_event_ms = now_ms;
            for (size_t i = 0; i < j->nsubs;) {
                struct osub *sub = &j->subs[i];
                /* SSE comments for event streams; a JSON body waiting for its answer gets a space */
                const char *ka = sub->kind == OSUB_OAI_JSON ? " " : ": keep-alive\n\n";
                if (http_stream_write(sub->st, ka, strlen(ka)) != 0) {
                    if (sub->kind != OSUB_SSE_V2) orch_job_note_gone(o, j->id);
                    sub_remove(j, i);
                } else {
                    i++;
                }
            }
        }
}

/* ---- cancellation ---------------------------------------------------------------- */
int orch_job_cancel(struct orch *o, struct ojob *j, const char *why, char uri_out[REG_URI_MAX + 1]) {
    uri_out[0] = 0;
    if (j->terminal) return 0;
    if (j->status == JOB_QUEUED && queue_remove(o->queue, j->id, NULL) == 0) {
        orch_job_finish(o, j, JOB_CANCELLED, "CANCELLED", why);
        return 1;
    }
    if (!j->cancel_requested) {
        j->cancel_requested = 1;
        j->cancel_at_ms = (int64_t)util_wall_ms();
        snprintf(uri_out, REG_URI_MAX + 1, "%s", j->worker_uri);
    }
    return 0;
}

void orch_job_note_gone(struct orch *o, const char *id) {
    pthread_mutex_lock(&o->gone_mu);
    if (o->ngone == o->cgone) {
        size_t nc = o->cgone ? o->cgone * 2 : 16;
        char(*ng)[37] = realloc(o->gone, nc * sizeof *ng);
        if (ng) {
            o->gone = ng;
            o->cgone = nc;
        }
    }
    if (o->ngone < o->cgone) snprintf(o->gone[o->ngone++], 37, "%s", id);
    pthread_mutex_unlock(&o->gone_mu);
    orch_wake(o);
}

void orch_job_client_gone(void *user) {
    struct ojob *j = user; /* alive: job_free closes the stream (which waits for us) before freeing j */
    orch_job_note_gone(j->orch, j->id);
}

int orch_job_cancel_gone(struct orch *o, char (*uris)[REG_URI_MAX + 1], char (*ids)[37], int max) {
    /* take the list: gone_mu stays a leaf (cancelling closes streams, whose
     * http_stream_close waits for a running on_gone, which takes gone_mu) */
    pthread_mutex_lock(&o->gone_mu);
    char(*list)[37] = o->gone;
    size_t nlist = o->ngone;
    o->gone = NULL;
    o->ngone = o->cgone = 0;
    pthread_mutex_unlock(&o->gone_mu);
    int n = 0;
    for (size_t k = 0; k < nlist; k++) {
        struct ojob *j = orch_job_find(o, list[k]);
        if (!j || j->terminal || j->cancel_requested) continue;
        if (n == max) { /* the rest waits for the next pass */
            orch_job_note_gone(o, list[k]);
            continue;
        }
        LOG_KV(LOG_INFO, ORCH_COMPONENT, "cancel", j->cid, "\"job_id\":\"%s\",\"reason\":\"client_gone\"", j->id);
        orch_job_cancel(o, j, "the client went away", uris[n]);
        if (uris[n][0]) snprintf(ids[n++], 37, "%s", j->id);
    }
    free(list);
    return n;
}
