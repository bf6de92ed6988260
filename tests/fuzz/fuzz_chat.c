// test-libs: llorch_orchcore llorch_config llorch_net llorch_core PkgConfig::JANSSON
/* libFuzzer target: OpenAI /v1/chat/completions and /v1/completions bodies
 * through the orchestrator's request mapping (map_request in
 * src/orch/openai.c, compiled into this target: the orchestrator is a
 * program, not a library) and the chat-template renderer
 * (src/orch/core/chat.c), then the resulting task body through admission
 * with a small catalog (one entry per template).
 *
 * The orchestrator functions openai.c references but map_request never
 * calls (auth, submit, subscribe, ...) are bound to one aborting stub by
 * symbol aliases, so a change to their prototypes in orch.h cannot break
 * this target's build.
 *
 * Input: the request body; it is a chat request unless it has a "prompt"
 * member (then a completion request).
 *
 * Invariants:
 *   mapped: the task body is a JSON object whose prompt is a string: for
 *     chat, exactly chat_render_opts's output for the model's template (catalog
 *     entry, else guessed from the name) and the body's reasoning_effort;
 *     that output is valid UTF-8 without NUL, no larger than the messages
 *     plus a fixed overhead per message (and harmony's system preamble), ends
 *     with the template's assistant prompt, and (except Llama-2, which keeps
 *     only the last system message before a user turn) contains every
 *     message's content. Rendering every other template for the same messages
 *     keeps the same properties. The task body then admits or is refused
 *     with a code and a message.
 *   refused: INVALID_REQUEST naming a field, with a message.
 *   always: no crash, leak or UB. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch/openai.c"

#include "fuzz_catalog.h"

/* ---- stubs for the orchestrator symbols openai.c references ----------------- */
void fz_orch_stub(void);
void fz_orch_stub(void) {
    fprintf(stderr, "fuzz_chat: an orchestrator stub was called\n");
    abort();
}
#define FZ_ALIAS(sym) __asm__(".globl " #sym "\n.set " #sym ", fz_orch_stub\n")
FZ_ALIAS(orch_client_auth);
FZ_ALIAS(orch_respond_adm_error);
FZ_ALIAS(orch_list_begin);
FZ_ALIAS(orch_list_end);
FZ_ALIAS(orch_submit);
FZ_ALIAS(orch_job_subscribe);
FZ_ALIAS(orch_job_finish);
FZ_ALIAS(orch_wake);
FZ_ALIAS(orch_job_client_gone);

#define FZ_NAME "fuzz_chat"
#include "fuzz_check.h"

static struct catalog *CAT;
static struct orch ORCH;
static const struct adm_limits LIM = { .default_timeout_ms = 1000, .max_timeout_ms = 5000,
                                       .default_context_length = 4096, .max_prompt_bytes = 32768 };
static uint64_t fixed_seed(void) { return 7; }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    CAT = fz_catalog("fuzz_chat", "models:\n"
                                  "  qwen: {model_ref: 'hf:Qwen/Q::file=q.gguf', context_length: 4096}\n"
                                  "  phi: {model_ref: 'file:/m/phi-3-mini.gguf', context_length: 4096}\n"
                                  "  l2: {model_ref: 'file:/m/x.gguf', context_length: 4096, chat_template: llama2}\n"
                                  "  l3: {model_ref: 'file:/m/Llama-3.2-1B.gguf', context_length: 8192}\n"
                                  "  oss: {model_ref: 'file:/m/gpt-oss-20b.gguf', context_length: 8192}\n");
    ORCH.cat = CAT;
    return 0;
}

/* the generation prompt each template ends with */
static const char *const tail[CHAT__COUNT] = {
    [CHAT_CHATML] = "<|im_start|>assistant\n",
    [CHAT_PHI3] = "<|assistant|>\n",
    [CHAT_LLAMA2] = NULL,
    [CHAT_LLAMA3] = "<|start_header_id|>assistant<|end_header_id|>\n\n",
    [CHAT_HARMONY] = "<|start|>assistant",
};

#define PER_MSG_OVERHEAD 64 /* template text around one message (role included separately) */
#define HARMONY_PREAMBLE 320 /* harmony's system message (identity, date, reasoning, channels) */

/* renders with template t and checks the output; returns 0 when rendered */
static int is_sys(const char *r) { return !strcmp(r, "system") || !strcmp(r, "developer"); }

static int render_check(enum chat_template t, const struct chat_msg *m, size_t n, const struct chat_opts *o,
                        struct util_sb *sb) {
    util_sb_init(sb);
    int rc = chat_render_opts(t, m, n, o, sb);
    int valid = n > 0;
    size_t budget = PER_MSG_OVERHEAD + (t == CHAT_HARMONY ? HARMONY_PREAMBLE : 0);
    for (size_t i = 0; i < n; i++) {
        valid &= m[i].content && m[i].role &&
                 (is_sys(m[i].role) || !strcmp(m[i].role, "user") || !strcmp(m[i].role, "assistant"));
        if (m[i].content && m[i].role) budget += strlen(m[i].content) + strlen(m[i].role) + PER_MSG_OVERHEAD;
    }
    if (!valid) {
        CHECK(rc < 0);
        util_sb_free(sb);
        return -1;
    }
    CHECK(rc == 0 && !sb->oom);
    if (t == CHAT_LLAMA2 && sb->len == 0) {
        /* Llama-2 renders nothing for system-only conversations (finding
         * tests/fuzz/findings/fuzz_chat: the system text is dropped) */
        for (size_t i = 0; i < n; i++) CHECK(is_sys(m[i].role));
        return 0;
    }
    CHECK(sb->buf != NULL);
    CHECK(strlen(sb->buf) == sb->len);                 /* no NUL inside */
    CHECK(util_utf8_valid(sb->buf, sb->len));          /* contents are valid UTF-8, templates ASCII */
    CHECK(sb->len <= budget);
    if (tail[t]) {
        size_t tl = strlen(tail[t]);
        CHECK(sb->len >= tl && !memcmp(sb->buf + sb->len - tl, tail[t], tl));
        for (size_t i = 0; i < n; i++) CHECK(strstr(sb->buf, m[i].content) != NULL);
    } else {
        /* Llama-2: user turns are kept; the output ends with [/INST] after a user turn */
        for (size_t i = 0; i < n; i++)
            if (!strcmp(m[i].role, "user")) CHECK(strstr(sb->buf, m[i].content) != NULL);
        if (!strcmp(m[n - 1].role, "user")) CHECK(sb->len >= 7 && !memcmp(sb->buf + sb->len - 7, "[/INST]", 7));
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    json_t *in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(in)) { /* h_completion answers 400 before mapping */
        json_decref(in);
        return 0;
    }
    int chat = json_object_get(in, "prompt") == NULL;
    json_t *task = NULL;
    int stream = -1;
    char model[JOB_MODEL_REF_MAX + 1];
    struct adm_error e;
    memset(&e, 0, sizeof e);
    enum chat_template used = CHAT__COUNT;
    int rc = map_request(&ORCH, in, chat, &task, &stream, model, sizeof model, &used, &e);

    /* the messages as map_request reads them, rendered with every template */
    json_t *msgs = json_object_get(in, "messages");
    size_t nm = json_is_array(msgs) ? json_array_size(msgs) : 0;
    const char *expect = NULL;
    struct util_sb want;
    util_sb_init(&want);
    if (chat && nm >= 1 && nm <= 256 && json_is_string(json_object_get(in, "model"))) {
        struct chat_msg *cm = calloc(nm, sizeof *cm);
        CHECK(cm != NULL);
        for (size_t i = 0; i < nm; i++) {
            json_t *x = json_array_get(msgs, i);
            cm[i].role = json_string_value(json_object_get(x, "role"));
            cm[i].content = json_string_value(json_object_get(x, "content"));
        }
        /* map_request looks the model up by its name cut to JOB_MODEL_REF_MAX
         * bytes (longer names are refused by admission anyway) */
        char mname[JOB_MODEL_REF_MAX + 1];
        snprintf(mname, sizeof mname, "%s", json_string_value(json_object_get(in, "model")));
        const struct cat_model *cmod = cat_find(CAT, mname);
        enum chat_template tm = cmod ? (enum chat_template)cmod->chat_template : chat_template_guess(mname);
        CHECK((unsigned)tm < CHAT__COUNT && chat_template_parse(chat_template_name(tm)) == (int)tm);
        if (rc == 0) CHECK(used == tm);
        /* the options map_request takes from the body (medium when absent or refused) */
        struct chat_opts co = { .reasoning = CHAT_REASONING_MEDIUM };
        int eff = chat_reasoning_parse(json_string_value(json_object_get(in, "reasoning_effort")));
        if (eff >= 0) co.reasoning = (enum chat_reasoning)eff;
        for (int t = 0; t < CHAT__COUNT; t++) {
            struct util_sb sb;
            if (render_check((enum chat_template)t, cm, nm, &co, &sb) == 0) {
                if (t == (int)tm) want = sb;
                else util_sb_free(&sb);
            }
        }
        expect = want.buf;
        free(cm);
    }

    if (rc == 0) {
        CHECK(json_is_object(task) && (stream == 0 || stream == 1));
        json_t *p = json_object_get(task, "prompt");
        CHECK(json_is_string(json_object_get(task, "model")));
        if (chat && want.len == 0) {
            /* an empty rendering (Llama-2, system only): map_request's
             * json_stringn(NULL, 0) gives NULL and the task has no prompt;
             * admission then refuses it as a missing "prompt" */
            CHECK(p == NULL);
        } else {
            CHECK(json_is_string(p));
        }
        if (chat && p) {
            CHECK(expect != NULL);
            CHECK(json_string_length(p) == want.len && !memcmp(json_string_value(p), expect, want.len));
        }
        /* the task body goes through admission as orch_submit does */
        char *tb = json_dumps(task, JSON_COMPACT);
        CHECK(tb != NULL);
        struct adm_task t;
        struct adm_error ae;
        int arc = adm_parse_task(tb, strlen(tb), CAT, &LIM, fixed_seed, &t, &ae);
        if (!p) CHECK(arc < 0 && (!strcmp(ae.field, "prompt") || !strcmp(ae.field, "model")));
        if (arc == 0) {
            CHECK(t.prompt_len == json_string_length(p) && !memcmp(t.prompt, json_string_value(p), t.prompt_len));
            adm_task_free(&t);
        } else {
            CHECK(ae.code > ERR_OK && ae.code < ERR__COUNT && ae.message[0]);
        }
        free(tb);
        json_decref(task);
    } else {
        CHECK(task == NULL);
        CHECK(e.code == ERR_INVALID_REQUEST && e.field[0] && e.message[0]);
        CHECK(!strcmp(e.field, "model") || !strcmp(e.field, "n") || !strcmp(e.field, "prompt") ||
              !strcmp(e.field, "messages") || !strcmp(e.field, "reasoning_effort") || !strcmp(e.field, "tools"));
    }
    util_sb_free(&want);
    json_decref(in);
    return 0;
}
