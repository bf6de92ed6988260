/* chat — see chat.h. Formats follow the models' published templates. */
#include "orch/core/chat.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <time.h>

static const char *const names[CHAT__COUNT] = { "chatml", "phi3", "llama2", "llama3", "harmony" };

const char *chat_template_name(enum chat_template t) { return (unsigned)t < CHAT__COUNT ? names[t] : "?"; }

int chat_template_parse(const char *s) {
    for (int i = 0; s && i < CHAT__COUNT; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static const char *const efforts[] = { "low", "medium", "high" };

int chat_reasoning_parse(const char *s) {
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, efforts[i]) == 0) return i;
    return -1;
}

static int icontains(const char *h, const char *n) {
    size_t ln = strlen(n);
    for (; h && *h; h++)
        if (strncasecmp(h, n, ln) == 0) return 1;
    return 0;
}

enum chat_template chat_template_guess(const char *ref) {
    if (icontains(ref, "gpt-oss")) return CHAT_HARMONY;
    if (icontains(ref, "phi-3") || icontains(ref, "phi3")) return CHAT_PHI3;
    if (icontains(ref, "llama-3") || icontains(ref, "llama3")) return CHAT_LLAMA3;
    if (icontains(ref, "llama-2") || icontains(ref, "llama2")) return CHAT_LLAMA2;
    return CHAT_CHATML;
}

int chat_template_for_arch(const char *arch) {
    if (!arch) return -1;
    if (!strcmp(arch, "gpt-oss")) return CHAT_HARMONY;
    if (!strcmp(arch, "phi3")) return CHAT_PHI3;
    if (!strcmp(arch, "qwen2") || !strcmp(arch, "qwen3")) return CHAT_CHATML;
    return -1;
}

enum chat_template chat_template_pick(int given, const char *arch, const char *model_ref) {
    if (given >= 0 && given < CHAT__COUNT) return (enum chat_template)given;
    int a = chat_template_for_arch(arch);
    return a >= 0 ? (enum chat_template)a : chat_template_guess(model_ref);
}

static int is_sys(const char *r) { return !strcmp(r, "system") || !strcmp(r, "developer"); }

static int role_ok(const char *r) { return r && (is_sys(r) || !strcmp(r, "user") || !strcmp(r, "assistant")); }

/* the role as the non-harmony families spell it */
static const char *role_of(const struct chat_msg *m) { return is_sys(m->role) ? "system" : m->role; }

static void harmony_render(const struct chat_msg *m, size_t n, const struct chat_opts *o, struct util_sb *sb) {
    char today[16];
    const char *date = o ? o->date : NULL;
    if (!date) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(today, sizeof today, "%Y-%m-%d", &tm);
        date = today;
    }
    unsigned eff = o ? (unsigned)o->reasoning : CHAT_REASONING_MEDIUM;
    util_sb_printf(sb,
                   "<|start|>system<|message|>" CHAT_HARMONY_IDENTITY "\nKnowledge cutoff: 2024-06\n"
                   "Current date: %s\n\nReasoning: %s\n\n"
                   "# Valid channels: analysis, commentary, final. Channel must be included for every message."
                   "<|end|>",
                   date, efforts[eff < 3 ? eff : CHAT_REASONING_MEDIUM]);
    for (size_t i = 0; i < n; i++) {
        if (is_sys(m[i].role)) {
            /* the first one is the developer message only when non-empty
             * (as the published template); later ones are never dropped */
            if (i == 0 && !m[i].content[0]) continue;
            util_sb_printf(sb, "<|start|>developer<|message|># Instructions\n\n%s\n\n<|end|>", m[i].content);
        } else if (!strcmp(m[i].role, "user")) {
            util_sb_printf(sb, "<|start|>user<|message|>%s<|end|>", m[i].content);
        } else { /* assistant history: its final answer only (the analysis of past turns is dropped) */
            util_sb_printf(sb, "<|start|>assistant<|channel|>final<|message|>%s<|end|>", m[i].content);
        }
    }
    util_sb_puts(sb, "<|start|>assistant");
}

int chat_render(enum chat_template t, const struct chat_msg *m, size_t n, struct util_sb *sb) {
    return chat_render_opts(t, m, n, NULL, sb);
}

int chat_render_opts(enum chat_template t, const struct chat_msg *m, size_t n, const struct chat_opts *o,
                     struct util_sb *sb) {
    if (n == 0) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!role_ok(m[i].role) || !m[i].content) return -EINVAL;
    switch (t) {
    case CHAT_CHATML:
        for (size_t i = 0; i < n; i++) util_sb_printf(sb, "<|im_start|>%s\n%s<|im_end|>\n", role_of(&m[i]), m[i].content);
        util_sb_puts(sb, "<|im_start|>assistant\n");
        break;
    case CHAT_PHI3:
        for (size_t i = 0; i < n; i++) util_sb_printf(sb, "<|%s|>\n%s<|end|>\n", role_of(&m[i]), m[i].content);
        util_sb_puts(sb, "<|assistant|>\n");
        break;
    case CHAT_LLAMA3:
        for (size_t i = 0; i < n; i++)
            util_sb_printf(sb, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", role_of(&m[i]), m[i].content);
        util_sb_puts(sb, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_HARMONY:
        harmony_render(m, n, o, sb);
        break;
    case CHAT_LLAMA2: {
        /* [INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] user [/INST]
         * System messages are never dropped: consecutive ones are joined, and
         * system text with no user turn after it still opens an [INST] block. */
        struct util_sb sys;
        util_sb_init(&sys);
        int open = 0;
        for (size_t i = 0; i < n; i++) {
            if (is_sys(m[i].role)) {
                if (sys.len) util_sb_puts(&sys, "\n\n");
                util_sb_puts(&sys, m[i].content);
                continue;
            }
            if (!strcmp(m[i].role, "user")) {
                util_sb_puts(sb, open ? "<s>[INST] " : "[INST] ");
                if (sys.len) { util_sb_printf(sb, "<<SYS>>\n%s\n<</SYS>>\n\n", sys.buf); sys.len = 0; }
                util_sb_printf(sb, "%s [/INST]", m[i].content);
                open = 1;
            } else {
                util_sb_printf(sb, " %s </s>", m[i].content);
            }
        }
        if (sys.len) util_sb_printf(sb, "%s[INST] <<SYS>>\n%s\n<</SYS>>\n\n [/INST]", open ? "<s>" : "", sys.buf);
        int oom = sys.oom;
        util_sb_free(&sys);
        if (oom) return -ENOMEM;
        break;
    }
    default:
        return -EINVAL;
    }
    return sb->oom ? -ENOMEM : 0;
}
