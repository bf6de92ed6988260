/* openai — the OpenAI-compatible facade (SPEC §6): GET /v1/models,
 * POST /v1/completions, POST /v1/chat/completions, streamed (SSE "data:"
 * chunks ending with "data: [DONE]") or not. A request becomes an ordinary
 * task (the same admission, queue, scheduling and state); chat messages are
 * rendered with the model's chat template (catalog chat_template, or guessed).
 *
 * Mapping: max_tokens, temperature, top_p, stop (string or list), seed pass
 * through; top_k, min_p, repetition_penalty are accepted as extensions (as
 * llama.cpp's server does); n must be 1; other OpenAI fields are ignored.
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
        if (s->kind == OSUB_OAI_JSON) {
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
        if (s->kind == OSUB_OAI_JSON) {
            util_sb_printf(&sb, "{\"id\":\"%s-%s\",\"object\":\"%s\",\"created\":%lld,\"model\":",
                           s->chat ? "chatcmpl" : "cmpl", j->id, s->chat ? "chat.completion" : "text_completion",
                           (long long)s->created_s);
            util_sb_json_str(&sb, s->model);
            if (s->chat) util_sb_puts(&sb, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
            else util_sb_puts(&sb, ",\"choices\":[{\"index\":0,\"text\":");
            util_sb_json_str(&sb, s->text.buf ? s->text.buf : "");
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

/* builds the /v2/tasks body; 0, or <0 with e filled */
static int map_request(struct orch *o, json_t *in, int chat, json_t **out, int *stream, char *model_out, size_t mcap,
                       struct adm_error *e) {
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
        enum chat_template tm = cmod ? (enum chat_template)cmod->chat_template : chat_template_guess(model_out);
        struct util_sb sb;
        util_sb_init(&sb);
        int rc = cm ? chat_render(tm, cm, nm, &sb) : -ENOMEM;
        free(cm);
        if (rc < 0 || sb.oom) {
            util_sb_free(&sb);
            json_decref(t);
            snprintf(e->field, sizeof e->field, "messages");
            snprintf(e->message, sizeof e->message,
                     "each message needs a role (system|user|assistant) and a string content");
            return -EINVAL;
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
    int rc = map_request(o, in, chat, &task, &stream, model, sizeof model, &e);
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
    if (st) {
        struct osub sub = { .st = st, .kind = stream ? OSUB_OAI_STREAM : OSUB_OAI_JSON, .chat = chat,
                            .created_s = (int64_t)(util_wall_ms() / 1000) };
        snprintf(sub.model, sizeof sub.model, "%s", model);
        util_sb_init(&sub.text);
        orch_job_subscribe(o, j, &sub);
    }
    /* a client that cannot receive the answer: nobody is waiting for the job */
    if (!st && !j->terminal) {
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
    char tenant[JOB_TENANT_MAX + 1];
    if (orch_client_auth(o, r, tenant) < 0) return;
    struct util_sb sb;
    util_sb_init(&sb);
    util_sb_puts(&sb, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < cat_count(o->cat); i++) {
        const struct cat_model *m = cat_at(o->cat, i);
        util_sb_printf(&sb, "%s{\"id\":\"%s\",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"llama-orch\","
                            "\"context_length\":%lld}",
                       i ? "," : "", m->alias, (long long)(o->started_ms / 1000), (long long)m->context_length);
    }
    util_sb_puts(&sb, "]}");
    if (sb.oom) http_respond_error(r, ERR_INTERNAL, "out of memory", NULL);
    else http_respond_json(r, 200, sb.buf);
    util_sb_free(&sb);
}

int orch_openai_routes(struct orch *o) {
    if (http_server_route(o->http, "GET", "/v1/models", h_models, o) != 0) return -1;
    if (http_server_route(o->http, "POST", "/v1/completions", h_completions, o) != 0) return -1;
    if (http_server_route(o->http, "POST", "/v1/chat/completions", h_chat, o) != 0) return -1;
    return 0;
}
