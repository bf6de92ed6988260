/* job — the job thread: the only user of the engine session. Runs one job
 * at a time: started → (token|metrics)* → end|error, exactly one terminal
 * event, then closes the stream and frees the job.
 *
 * Cancellation (POST /cancel, client disconnect, SIGTERM) and the deadline
 * are checked between prefill chunks (adaptive, see WK_PREFILL_*) and before
 * every decode step, so the loop stops within one chunk/step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "worker/worker.h"

/* Prefill runs in chunks so cancel/deadline are checked between them:
 * start at 64 tokens, double while a chunk takes < 25 ms (up to 512), so
 * long prompts keep the device's batch throughput and a cancel still lands
 * within ~one 50 ms chunk. */
#define WK_PREFILL_MIN 64
#define WK_PREFILL_MAX 512
#define WK_PREFILL_FAST_NS 25000000ull
#define WK_METRICS_EVERY 32

struct run {
    worker *w;
    wk_job *j;
    int64_t seq;            /* SSE id */
    int n_events;           /* token events sent (their "i") */
    int client_gone;
    struct util_sb ids;     /* --debug-ids: ids since the last token event */
    int n_ids;
};

static void send_event(struct run *R, const char *name, const char *json) {
    if (R->client_gone) return;
    if (http_stream_sse(R->j->st, R->seq++, name, json) != 0) {
        R->client_gone = 1;
        int expect = WK_RUN;
        atomic_compare_exchange_strong(&R->j->cancel, &expect, WK_CANCEL_GONE);
    }
}

static void send_error(struct run *R, enum err_code c, const char *message) {
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_printf(&sb, "{\"code\":\"%s\",\"message\":", err_name(c));
    util_sb_json_str(&sb, message);
    util_sb_printf(&sb, ",\"retriable\":%s}", err_retriable(c) ? "true" : "false");
    send_event(R, "error", sb.buf ? sb.buf : "{}");
    util_sb_free(&sb);
}

static void send_tokens(struct run *R, const char *text, size_t n) {
    if (n == 0) return;
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_puts(&sb, "{\"t\":");
    util_sb_json_strn(&sb, text, n);
    util_sb_printf(&sb, ",\"i\":%d", R->n_events++);
    if (R->w->a.debug_ids) {
        util_sb_puts(&sb, ",\"ids\":[");
        if (R->ids.len) util_sb_putn(&sb, R->ids.buf, R->ids.len);
        util_sb_putc(&sb, ']');
        R->ids.len = 0;
        if (R->ids.buf) R->ids.buf[0] = 0;
        R->n_ids = 0;
    }
    util_sb_putc(&sb, '}');
    send_event(R, "token", sb.buf ? sb.buf : "{}");
    util_sb_free(&sb);
}

static enum err_code map_eng(int rc) {
    switch (rc) {
    case ENG_E_OOM: return ERR_VRAM_OOM;
    case ENG_E_BACKEND: return ERR_CUDA_ERROR;
    case ENG_E_CTX_FULL: return ERR_CONTEXT_LENGTH_EXCEEDED;
    default: return ERR_INTERNAL;
    }
}

/* 0 to go on, else the error to end with */
static enum err_code check_stop(struct run *R) {
    int c = atomic_load(&R->j->cancel);
    if (c != WK_RUN) return ERR_CANCELLED;
    if (R->j->deadline_ms && util_wall_ms() >= R->j->deadline_ms) return ERR_DEADLINE_EXCEEDED;
    return ERR_OK;
}

static const char *cancel_reason(int c) {
    return c == WK_CANCEL_GONE ? "client_disconnected" : c == WK_CANCEL_SHUTDOWN ? "shutdown" : "cancel_request";
}

static void run_job(worker *w, wk_job *j) {
    struct run R = {.w = w, .j = j};
    util_sb_init(&R.ids);
    const tok_vocab *v = w->vocab;
    char err[256] = "";
    enum err_code fail = ERR_OK;
    const char *stop_reason = NULL;
    int n_out = 0;
    uint64_t t_first = 0;
    wk_stop stop;
    wk_stop_init(&stop, (const char *const *)j->stops, j->n_stops);
    tok_utf8_stream u8;
    tok_utf8_init(&u8);
    struct util_sb out;
    util_sb_init(&out);
    eng_sampler *sp = eng_sampler_new(&j->sp, tok_n_vocab(v));

    LOG_KV(LOG_INFO, WK_COMPONENT, "execute_start", j->cid,
           "\"job_id\":\"%s\",\"tokens_in\":%d,\"max_tokens\":%d,\"temperature\":%g,\"seed\":%llu", j->job_id,
           j->n_prompt, j->max_tokens, j->sp.temperature, (unsigned long long)j->sp.seed);
    {
        char ts[40];
        util_time_rfc3339_ms(ts, sizeof ts);
        struct util_sb sb;
        util_sb_init(&sb);
        util_sb_puts(&sb, "{\"job_id\":");
        util_sb_json_str(&sb, j->job_id);
        util_sb_puts(&sb, ",\"model\":");
        util_sb_json_str(&sb, w->a.model_ref ? w->a.model_ref : w->model_name);
        /* seeds above 2^63-1 are echoed as decimal strings (the form /execute
         * accepts them in), so every JSON parser reads them back exactly */
        if (j->sp.seed > (uint64_t)INT64_MAX)
            util_sb_printf(&sb, ",\"started_at\":\"%s\",\"seed\":\"%llu\",\"correlation_id\":", ts,
                           (unsigned long long)j->sp.seed);
        else
            util_sb_printf(&sb, ",\"started_at\":\"%s\",\"seed\":%llu,\"correlation_id\":", ts,
                           (unsigned long long)j->sp.seed);
        util_sb_json_str(&sb, j->cid);
        util_sb_printf(&sb, ",\"tokens_in\":%d,\"max_tokens\":%d}", j->n_prompt, j->max_tokens);
        send_event(&R, "started", sb.buf ? sb.buf : "{}");
        util_sb_free(&sb);
    }
    if (!sp) {
        fail = ERR_INTERNAL;
        snprintf(err, sizeof err, "out of memory (sampler)");
        goto done;
    }
    for (int i = 0; i < j->n_prompt; i++) eng_sampler_accept(sp, j->prompt[i]);

    /* prefill */
    eng_session_reset(w->sess);
    int chunk = WK_PREFILL_MIN;
    for (int off = 0; off < j->n_prompt;) {
        if ((fail = check_stop(&R))) goto done;
        int n = UTIL_MIN(chunk, j->n_prompt - off);
        uint64_t t0 = util_now_ns();
        int rc = eng_eval(w->sess, j->prompt + off, n, ENG_LOGITS_LAST, err, sizeof err);
        if (rc < 0) {
            fail = map_eng(rc);
            goto done;
        }
        off += n;
        if (util_now_ns() - t0 < WK_PREFILL_FAST_NS && chunk < WK_PREFILL_MAX) chunk *= 2;
    }

    /* decode (LLORCH_PIPELINE=0: no pipelining, for A/B comparisons) */
    const char *pe = getenv("LLORCH_PIPELINE");
    const int pipe = !(pe && !strcmp(pe, "0"));
    for (;;) {
        if ((fail = check_stop(&R))) break;
        if (atomic_exchange(&w->refresh_req, 0)) wk_health_refresh(w);
        int32_t tok;
        /* decode pipelining (engine.h): the token's decode step is enqueued
         * before the token is read back, so the GPU runs while this thread
         * streams it. Nothing here reads eng_logits after eng_sample. Off for
         * the max_tokens-th token (never evaluated); an eos/stop/cancel
         * discards one speculative step (the next job's reset drops it). */
        eng_session_set_pipeline(w->sess, pipe && n_out + 1 < j->max_tokens);
        int rc = eng_sample(w->sess, sp, &tok);
        if (rc < 0) {
            fail = map_eng(rc);
            snprintf(err, sizeof err, "sampling failed: %s", eng_err_name(rc));
            break;
        }
        if (!t_first) t_first = util_now_ns();
        if (tok_is_eog(v, tok)) {
            stop_reason = "eos";
            break;
        }
        n_out++;
        metrics_add(w->m_tokens, NULL, 1);
        if (w->a.debug_ids) {
            util_sb_printf(&R.ids, "%s%d", R.n_ids ? "," : "", tok);
            R.n_ids++;
        }
        /* the token's bytes: a stack buffer, or the heap for a rare long piece */
        char pbuf[512], tbuf[TOK_UTF8_CAP(512)];
        char *piece = pbuf, *txt = tbuf;
        int pn = tok_piece(v, tok, 0, pbuf, sizeof pbuf);
        if (pn < 0) pn = 0;
        if (pn > (int)sizeof pbuf) {
            piece = malloc((size_t)pn);
            txt = malloc(TOK_UTF8_CAP(pn));
            if (!piece || !txt || tok_piece(v, tok, 0, piece, pn) != pn) {
                free(piece);
                free(txt);
                fail = ERR_INTERNAL;
                snprintf(err, sizeof err, "out of memory (token text)");
                break;
            }
        }
        size_t tn = tok_utf8_push(&u8, piece, (size_t)pn, txt, piece == pbuf ? sizeof tbuf : TOK_UTF8_CAP(pn));
        out.len = 0;
        int hit = wk_stop_push(&stop, txt, tn, &out);
        if (piece != pbuf) {
            free(piece);
            free(txt);
        }
        send_tokens(&R, out.buf, out.len);
        if (hit) {
            stop_reason = "stop";
            break;
        }
        if (n_out >= j->max_tokens) {
            stop_reason = "max_tokens";
            break;
        }
        if (n_out % WK_METRICS_EVERY == 0) {
            double secs = (double)(util_now_ns() - t_first) / 1e9;
            char m[160];
            pthread_mutex_lock(&w->health_mu);
            uint64_t mem = w->memory_bytes;
            pthread_mutex_unlock(&w->health_mu);
            snprintf(m, sizeof m, "{\"tokens_out\":%d,\"tokens_per_sec\":%.2f,\"vram_bytes\":%llu}", n_out,
                     secs > 0 ? n_out / secs : 0.0,
                     (unsigned long long)(strcmp(WK_MEMORY_ARCH, "vram-only") == 0 ? mem : 0));
            send_event(&R, "metrics", m);
        }
        rc = eng_eval(w->sess, &tok, 1, ENG_LOGITS_LAST, err, sizeof err);
        if (rc < 0) {
            fail = map_eng(rc);
            break;
        }
    }
    if (!fail && stop_reason && strcmp(stop_reason, "stop") != 0) {
        /* release held text: an unfinished stop-string prefix, and bytes of a
         * sequence the model never completed (U+FFFD only if truly invalid) */
        char tail[16];
        size_t tn = tok_utf8_finish(&u8, tail, sizeof tail);
        out.len = 0;
        wk_stop_push(&stop, tail, tn, &out); /* cannot complete a stop: the text was already final */
        wk_stop_flush(&stop, &out);
        send_tokens(&R, out.buf, out.len);
    }

done:;
    uint64_t now = util_now_ns();
    double first_ms = t_first ? (double)(t_first - j->accept_ns) / 1e6 : 0;
    double decode_ms = t_first ? (double)(now - t_first) / 1e6 : 0;
    /* Bookkeeping first, then the terminal event: a client that sends its
     * next request the moment it reads `end` must find the worker free (the
     * job thread takes the new job as soon as it has closed this stream). */
    const char *outcome = !fail ? "ok" : fail == ERR_CANCELLED ? "cancelled"
                          : fail == ERR_DEADLINE_EXCEEDED ? "deadline_exceeded" : "error";
    const char *ov[] = {outcome};
    metrics_add(w->m_requests, ov, 1);
    metrics_observe(w->m_duration, NULL, (double)(now - j->accept_ns) / 1e6);
    atomic_store(&w->busy, 0);
    if (fail) {
        int c = atomic_load(&j->cancel);
        if (fail == ERR_CANCELLED) {
            snprintf(err, sizeof err, "cancelled (%s)", cancel_reason(c));
            LOG_KV(LOG_INFO, WK_COMPONENT, "cancel", j->cid, "\"job_id\":\"%s\",\"reason\":\"%s\",\"tokens_out\":%d",
                   j->job_id, cancel_reason(c), n_out);
        } else if (fail == ERR_DEADLINE_EXCEEDED) {
            snprintf(err, sizeof err, "X-Deadline passed after %d tokens", n_out);
        }
        if (!err[0]) snprintf(err, sizeof err, "%s", err_name(fail));
        send_error(&R, fail, err);
        LOG_KV(fail == ERR_CANCELLED ? LOG_INFO : LOG_WARN, WK_COMPONENT, "execute_end", j->cid,
               "\"job_id\":\"%s\",\"outcome\":\"%s\",\"code\":\"%s\",\"tokens_out\":%d", j->job_id, outcome,
               err_name(fail), n_out);
    } else {
        char e[256];
        snprintf(e, sizeof e,
                 "{\"tokens_in\":%d,\"tokens_out\":%d,\"decode_time_ms\":%.3f,\"first_token_ms\":%.3f,"
                 "\"stop_reason\":\"%s\"}",
                 j->n_prompt, n_out, decode_ms, first_ms, stop_reason);
        send_event(&R, "end", e);
        LOG_KV(LOG_INFO, WK_COMPONENT, "execute_end", j->cid,
               "\"job_id\":\"%s\",\"outcome\":\"ok\",\"stop_reason\":\"%s\",\"tokens_in\":%d,\"tokens_out\":%d,"
               "\"first_token_ms\":%.3f,\"decode_time_ms\":%.3f",
               j->job_id, stop_reason, j->n_prompt, n_out, first_ms, decode_ms);
    }
    eng_sampler_free(sp);
    wk_stop_free(&stop);
    util_sb_free(&out);
    util_sb_free(&R.ids);
}

void *wk_job_thread(void *arg) {
    worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->pending && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        wk_job *j = w->pending;
        w->pending = NULL;
        w->current = j;
        if (j && w->quit) atomic_store(&j->cancel, WK_CANCEL_SHUTDOWN);
        pthread_mutex_unlock(&w->mu);
        if (!j) break;
        pthread_mutex_lock(&w->engine_mu);
        run_job(w, j);
        pthread_mutex_unlock(&w->engine_mu);
        http_stream_close(j->st); /* after this, on_client_gone never touches j */
        pthread_mutex_lock(&w->mu);
        w->current = NULL;
        pthread_mutex_unlock(&w->mu);
        wk_job_free(j);
    }
    return NULL;
}

int wk_job_thread_start(worker *w) { return pthread_create(&w->job_thread, NULL, wk_job_thread, w); }
