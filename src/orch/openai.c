/* openai — the OpenAI-compatible facade (SPEC §6): GET /v1/models,
 * POST /v1/completions, POST /v1/chat/completions, streamed (SSE "data:"
 * chunks ending with "data: [DONE]") or not. A request becomes an ordinary
 * task (the same admission, queue, scheduling and state); chat messages are
 * rendered with the model's chat template (catalog chat_template, or guessed).
 *
 * Mapping: max_tokens, temperature, top_p, stop (string or list), seed pass
 * through; top_k, min_p, repetition_penalty are accepted as extensions (as
 * llama.cpp's server does); n must be 1; reasoning_effort (low|medium|high)
 * sets harmony's "Reasoning:" line; a non-empty `tools` list is refused (no
 * tool calling); other OpenAI fields are ignored.
 *
 * Template: the catalog's chat_template when the operator set one, else the
 * one the model's architecture decides (general.architecture as a worker of
 * that model reported it through its pool), else guessed from the ref.
 * A harmony (GPT-OSS) reply is split by channel (core/harmony.h): analysis
 * text becomes reasoning_content, final text content, and the control tokens
 * appear in neither.
 * A non-streamed answer is sent when the job ends (as a 200 response whose
 * body is written at the end); a worker failure after admission then
 * arrives as a 200 with an {"error":...} body, since the status is already
 * out. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "orch/core/chat.h"
#include "orch/orch.h"

static const char *finish_reason(const char *stop_reason) {
    return stop_reason && strcmp(stop_reason, "max_tokens") == 0 ? "length" : "stop";
}

static void chunk_head(struct util_sb *sb, const struct ojob *j, const struct osub *s) {
    util_sb_printf(sb, "{\"id\":\"%s-%s\",\"object\":\"%s\",\"created\":%lld,\"model\":", s->chat ? "chatcmpl" : "cmpl",
                   j->id, s->chat ? "chat.completion.chunk" : "text_completion", (long long)s->created_s);
    util_sb_json_str(sb, s->model);
}

static int write_data(struct osub *s, const char *json) {
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_printf(&sb, "data: %s\n\n", json);
    int rc = sb.oom ? -1 : http_stream_write(s->st, sb.buf, sb.len);
    util_sb_free(&sb);
    return rc == 0 ? 0 : -1;
}

/* ---- harmony replies: the parser's text into chunks or the message ------ */
struct hm_out {
    struct ojob *j;
    struct osub *s;
    int kind;                  /* reasoning (1) or content (0) of run; -1 = none yet */
    struct util_sb run;        /* OSUB_OAI_STREAM: text of one kind not yet sent */
    int rc;
};

static int write_delta(struct ojob *j, struct osub *s, int reasoning, const char *t, size_t n) {
    struct util_sb sb;
    util_sb_init(&sb);
    chunk_head(&sb, j, s);
    util_sb_printf(&sb, ",\"choices\":[{\"index\":0,\"delta\":{%s\"%s\":", s->sent_role ? "" : "\"role\":\"assistant\",",
                   reasoning ? "reasoning_content" : "content");
    s->sent_role = 1;
    util_sb_json_strn(&sb, t, n);
    util_sb_puts(&sb, "},\"finish_reason\":null}]}");
    int rc = sb.oom ? -1 : write_data(s, sb.buf);
    util_sb_free(&sb);
    return rc;
}

static void hm_flush(struct hm_out *h) {
    if (h->run.len && h->rc == 0) h->rc = write_delta(h->j, h->s, h->kind, h->run.buf, h->run.len);
    h->run.len = 0;
}

static void hm_emit(void *ctx, int reasoning, const char *t, size_t n) {
    struct hm_out *h = ctx;
    if (h->s->kind == OSUB_OAI_JSON) {
        util_sb_putn(reasoning ? &h->s->reasoning : &h->s->text, t, n);
        return;
    }
    if (h->kind != reasoning) hm_flush(h); /* one chunk per run of one kind, in order */
    h->kind = reasoning;
    util_sb_putn(&h->run, t, n);
}

/* feeds t (NULL: the end of the reply) through s's parser; 0 or -1 (client gone) */
static int hm_text(struct ojob *j, struct osub *s, const char *t) {
    struct hm_out h = { .j = j, .s = s, .kind = -1 };
    util_sb_init(&h.run);
    if (t) harmony_feed(&s->hp, t, strlen(t), hm_emit, &h);
    else harmony_finish(&s->hp, hm_emit, &h);
    hm_flush(&h);
    if (h.run.oom) h.rc = -1;
    util_sb_free(&h.run);
    return h.rc;
}

int orch_openai_event(struct orch *o, struct ojob *j, struct osub *s, const char *event, const char *data) {
    (void)o;
    int is_token = strcmp(event, "token") == 0, is_end = strcmp(event, "end") == 0, is_err = strcmp(event, "error") == 0;
    if (!is_token && !is_end && !is_err) return 0;
    json_t *d = json_loads(data, JSON_DECODE_INT_AS_REAL, NULL);
    int rc = 0;
    struct util_sb sb;
    util_sb_init(&sb);
    if (is_token) {
        const char *t = json_string_value(json_object_get(d, "t"));
        if (s->harmony) {
            if (t) rc = hm_text(j, s, t);
        } else if (s->kind == OSUB_OAI_JSON) {
            if (t) util_sb_puts(&s->text, t);
        } else if (t) {
            chunk_head(&sb, j, s);
            if (s->chat) {
                util_sb_printf(&sb, ",\"choices\":[{\"index\":0,\"delta\":{%s\"content\":",
                               s->sent_role ? "" : "\"role\":\"assistant\",");
                s->sent_role = 1;
                util_sb_json_str(&sb, t);
                util_sb_puts(&sb, "},\"finish_reason\":null}]}");
            } else {
                util_sb_puts(&sb, ",\"choices\":[{\"index\":0,\"text\":");
                util_sb_json_str(&sb, t);
                util_sb_puts(&sb, ",\"logprobs\":null,\"finish_reason\":null}]}");
            }
            rc = write_data(s, sb.buf);
        }
    } else if (is_end) {
        const char *fr = finish_reason(json_string_value(json_object_get(d, "stop_reason")));
        long long tin = (long long)json_number_value(json_object_get(d, "tokens_in"));
        long long tout = (long long)json_number_value(json_object_get(d, "tokens_out"));
        if (s->harmony && hm_text(j, s, NULL) < 0) rc = -1;
        else if (s->kind == OSUB_OAI_JSON) {
            util_sb_printf(&sb, "{\"id\":\"%s-%s\",\"object\":\"%s\",\"created\":%lld,\"model\":",
                           s->chat ? "chatcmpl" : "cmpl", j->id, s->chat ? "chat.completion" : "text_completion",
                           (long long)s->created_s);
            util_sb_json_str(&sb, s->model);
            if (s->chat) util_sb_puts(&sb, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
            else util_sb_puts(&sb, ",\"choices\":[{\"index\":0,\"text\":");
            util_sb_json_str(&sb, s->text.buf ? s->text.buf : "");
            if (s->reasoning.len) {
                util_sb_puts(&sb, ",\"reasoning_content\":");
                util_sb_json_strn(&sb, s->reasoning.buf, s->reasoning.len);
            }
            util_sb_printf(&sb, "%s,%s\"finish_reason\":\"%s\"}],\"usage\":{\"prompt_tokens\":%lld,"
                                "\"completion_tokens\":%lld,\"total_tokens\":%lld}}",
                           s->chat ? "}" : "", s->chat ? "" : "\"logprobs\":null,", fr, tin, tout, tin + tout);
            rc = sb.oom ? -1 : http_stream_write(s->st, sb.buf, sb.len);
        } else {
            chunk_head(&sb, j, s);
            if (s->chat) util_sb_printf(&sb, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"%s\"}]}", fr);
            else util_sb_printf(&sb, ",\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"%s\"}]}", fr);
            rc = write_data(s, sb.buf);
            if (rc == 0) rc = write_data(s, "[DONE]");
        }
        rc = rc == 0 ? 1 : rc;
    } else { /* error */
        const char *code = json_string_value(json_object_get(d, "code"));
        const char *msg = json_string_value(json_object_get(d, "message"));
        util_sb_printf(&sb, "{\"error\":{\"code\":\"%s\",\"type\":\"%s\",\"message\":", code ? code : "INTERNAL",
                       code ? code : "INTERNAL");
        util_sb_json_str(&sb, msg ? msg : "");
        util_sb_printf(&sb, ",\"job_id\":\"%s\"}}", j->id);
        if (s->kind == OSUB_OAI_JSON) rc = http_stream_write(s->st, sb.buf, sb.len);
        else {
            rc = write_data(s, sb.buf);
            if (rc == 0) rc = write_data(s, "[DONE]");
        }
        rc = rc == 0 ? 1 : rc;
    }
    util_sb_free(&sb);
    json_decref(d);
    return rc;
}

/* ---- request mapping ---------------------------------------------------- */
static void copy_member(json_t *from, json_t *to, const char *k) {
    json_t *v = json_object_get(from, k);
    if (v && !json_is_null(v)) json_object_set(to, k, v);
}

/* general.architecture of model_ref as a worker of it reported it; NULL when
 * no worker of it is known (or none reported one). Caller holds no lock. */
static const char *model_arch(struct orch *o, const char *model_ref, char *buf, size_t cap) {
    if (!o->reg || !model_ref) return NULL;
    const char *a = NULL;
    reg_lock(o->reg);
    for (size_t i = 0; !a && i < reg_worker_count(o->reg); i++) {
        const struct reg_worker *w = reg_worker_at(o->reg, i);
        if (w->arch[0] && strcmp(w->model_ref, model_ref) == 0) {
            snprintf(buf, cap, "%s", w->arch);
            a = buf;
        }
    }
    reg_unlock(o->reg);
    return a;
}

static int fail_field(struct adm_error *e, const char *field, const char *msg) {
    snprintf(e->field, sizeof e->field, "%s", field);
    snprintf(e->message, sizeof e->message, "%s", msg);
    return -EINVAL;
}

/* builds the /v2/tasks body; 0, or <0 with e filled. *tmpl_out: the chat
 * template used (chat only). */
static int map_request(struct orch *o, json_t *in, int chat, json_t **out, int *stream, char *model_out, size_t mcap,
                       enum chat_template *tmpl_out, struct adm_error *e) {
    e->code = ERR_INVALID_REQUEST;
    json_t *m = json_object_get(in, "model");
    if (!json_is_string(m)) {
        snprintf(e->field, sizeof e->field, "model");
        snprintf(e->message, sizeof e->message, "model is required");
        return -EINVAL;
    }
    snprintf(model_out, mcap, "%s", json_string_value(m));
    json_t *n = json_object_get(in, "n");
    if (n && !json_is_null(n) && !(json_is_integer(n) && json_integer_value(n) == 1)) {
        snprintf(e->field, sizeof e->field, "n");
        snprintf(e->message, sizeof e->message, "only n = 1 is supported");
        return -EINVAL;
    }
    struct chat_opts copts = { .reasoning = CHAT_REASONING_MEDIUM };
    json_t *re = json_object_get(in, "reasoning_effort");
    if (re && !json_is_null(re)) {
        int r = chat_reasoning_parse(json_string_value(re));
        if (r < 0) return fail_field(e, "reasoning_effort", "reasoning_effort must be low, medium or high");
        copts.reasoning = (enum chat_reasoning)r;
    }
    json_t *tools = json_object_get(in, "tools");
    if (json_is_array(tools) ? json_array_size(tools) > 0 : tools && !json_is_null(tools))
        return fail_field(e, "tools", "tool calling is not supported (send no tools)");
    json_t *st = json_object_get(in, "stream");
    *stream = json_is_true(st);
    json_t *t = json_object();
    json_object_set(t, "model", m);
    static const char *pass[] = { "max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "seed", NULL };
    for (int i = 0; pass[i]; i++) copy_member(in, t, pass[i]);
    if (!json_object_get(t, "max_tokens")) copy_member(in, t, "max_completion_tokens");
    if (json_object_get(t, "max_completion_tokens")) {
        json_object_set(t, "max_tokens", json_object_get(t, "max_completion_tokens"));
        json_object_del(t, "max_completion_tokens");
    }
    json_t *stop = json_object_get(in, "stop");
    if (json_is_string(stop)) {
        json_t *a = json_array();
        json_array_append(a, stop);
        json_object_set_new(t, "stop", a);
    } else if (stop && !json_is_null(stop)) {
        json_object_set(t, "stop", stop);
    }
    if (!chat) {
        json_t *p = json_object_get(in, "prompt");
        if (!json_is_string(p)) {
            json_decref(t);
            snprintf(e->field, sizeof e->field, "prompt");
            snprintf(e->message, sizeof e->message, "prompt must be a string (arrays are not supported)");
            return -EINVAL;
        }
        json_object_set(t, "prompt", p);
    } else {
        json_t *msgs = json_object_get(in, "messages");
        size_t nm = json_is_array(msgs) ? json_array_size(msgs) : 0;
        if (nm == 0 || nm > 256) {
            json_decref(t);
            snprintf(e->field, sizeof e->field, "messages");
            snprintf(e->message, sizeof e->message, "messages must be a non-empty list (at most 256)");
            return -EINVAL;
        }
        struct chat_msg *cm = calloc(nm, sizeof *cm);
        for (size_t i = 0; cm && i < nm; i++) {
            json_t *x = json_array_get(msgs, i);
            cm[i].role = json_string_value(json_object_get(x, "role"));
            cm[i].content = json_string_value(json_object_get(x, "content"));
        }
        const struct cat_model *cmod = cat_find(o->cat, model_out);
        const char *ref = cmod ? cmod->model_ref : model_out;
        char abuf[64];
        enum chat_template tm = chat_template_pick(cmod && cmod->chat_template_set ? cmod->chat_template : -1,
                                                   model_arch(o, ref, abuf, sizeof abuf), ref);
        *tmpl_out = tm;
        struct util_sb sb;
        util_sb_init(&sb);
        int rc = cm ? chat_render_opts(tm, cm, nm, &copts, &sb) : -ENOMEM;
        free(cm);
        if (rc < 0 || sb.oom) {
            util_sb_free(&sb);
            json_decref(t);
            return fail_field(e, "messages",
                              "each message needs a role (system|developer|user|assistant) and a string content "
                              "(tool messages are not supported)");
        }
        json_object_set_new(t, "prompt", json_stringn(sb.buf, sb.len));
        util_sb_free(&sb);
    }
    *out = t;
    return 0;
}

static void h_completion(http_req *r, struct orch *o, int chat) {
    const char *cid = http_req_correlation_id(r);
    char tenant[JOB_TENANT_MAX + 1];
    if (orch_client_auth(o, r, tenant) < 0) return;
    size_t len;
    const char *body = http_req_body(r, &len);
    json_error_t je;
    json_t *in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    struct adm_error e;
    memset(&e, 0, sizeof e);
    if (!json_is_object(in)) {
        json_decref(in);
        e.code = ERR_INVALID_REQUEST;
        snprintf(e.message, sizeof e.message, "body must be a JSON object");
        orch_respond_adm_error(o, r, &e);
        return;
    }
    json_t *task = NULL;
    int stream = 0;
    char model[JOB_MODEL_REF_MAX + 1];
    enum chat_template tmpl = CHAT_CHATML;
    int rc = map_request(o, in, chat, &task, &stream, model, sizeof model, &tmpl, &e);
    json_decref(in);
    if (rc < 0) {
        orch_respond_adm_error(o, r, &e);
        return;
    }
    char *tb = json_dumps(task, JSON_COMPACT);
    json_decref(task);
    if (!tb) {
        http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    pthread_mutex_lock(&o->mu);
    struct ojob *j;
    int64_t pos;
    rc = orch_submit(o, tenant, cid, tb, strlen(tb), &j, &pos, &e);
    free(tb);
    if (rc < 0) {
        pthread_mutex_unlock(&o->mu);
        orch_respond_adm_error(o, r, &e);
        return;
    }
    /* the client is the job's only reader (it has no job id to reconnect
     * with): when it goes away, the job is cancelled and its worker freed */
    http_stream *st = http_respond_stream(r, 200, stream ? "text/event-stream" : "application/json",
                                          orch_job_client_gone, j);
    int reader = 0;
    if (st) {
        struct osub sub = { .st = st, .kind = stream ? OSUB_OAI_STREAM : OSUB_OAI_JSON, .chat = chat,
                            .created_s = (int64_t)(util_wall_ms() / 1000) };
        snprintf(sub.model, sizeof sub.model, "%s", model);
        util_sb_init(&sub.text);
        util_sb_init(&sub.reasoning);
        sub.harmony = chat && tmpl == CHAT_HARMONY;
        harmony_init(&sub.hp);
        reader = orch_job_subscribe(o, j, &sub) == 0; /* on failure the stream is closed already */
    }
    /* a client that cannot receive the answer (no stream, or no memory to
     * subscribe it): nobody is waiting for the job, so it is cancelled at once
     * as a hung-up client's is, instead of running with no reader */
    if (!reader && !j->terminal) {
        LOG_KV(LOG_WARN, ORCH_COMPONENT, "cancel", j->cid, "\"job_id\":\"%s\",\"reason\":\"%s\"", j->id,
               st ? "subscribe_oom" : "no_stream");
        j->cancel_requested = 1;
        queue_remove(o->queue, j->id, NULL);
        orch_job_finish(o, j, JOB_CANCELLED, "CANCELLED", "the client went away");
    }
    pthread_mutex_unlock(&o->mu);
    orch_wake(o);
}

static void h_completions(http_req *r, void *user) { h_completion(r, user, 0); }
static void h_chat(http_req *r, void *user) { h_completion(r, user, 1); }

static void h_models(http_req *r, void *user) {
    struct orch *o = user;
    struct util_sb sb;
    if (orch_list_begin(o, r, &sb, "{\"object\":\"list\",\"data\":[") < 0) return;
    for (size_t i = 0; i < cat_count(o->cat); i++) {
        const struct cat_model *m = cat_at(o->cat, i);
        util_sb_printf(&sb, "%s{\"id\":\"%s\",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"llama-orch\","
                            "\"context_length\":%lld}",
                       i ? "," : "", m->alias, (long long)(o->started_ms / 1000), (long long)m->context_length);
    }
    orch_list_end(r, &sb);
}

int orch_openai_routes(struct orch *o) {
    if (http_server_route(o->http, "GET", "/v1/models", h_models, o) != 0) return -1;
    if (http_server_route(o->http, "POST", "/v1/completions", h_completions, o) != 0) return -1;
    if (http_server_route(o->http, "POST", "/v1/chat/completions", h_chat, o) != 0) return -1;
    return 0;
}
