/* chat — see chat.h. Formats follow the models' published templates. */
#include "orch/core/chat.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

static const char *const names[CHAT__COUNT] = { "chatml", "phi3", "llama2", "llama3", "harmony" };

const char *chat_template_name(enum chat_template t) { return (unsigned)t < CHAT__COUNT ? names[t] : "?"; }

int chat_template_parse(const char *s) {
    for (int i = 0; s && i < CHAT__COUNT; i++)
        if (strcmp(s, names[i]) == 0) return i;
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

static int role_ok(const char *r) {
    return r && (!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant"));
}

int chat_render(enum chat_template t, const struct chat_msg *m, size_t n, struct util_sb *sb) {
    if (n == 0) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!role_ok(m[i].role) || !m[i].content) return -EINVAL;
    switch (t) {
    case CHAT_CHATML:
        for (size_t i = 0; i < n; i++) util_sb_printf(sb, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
        util_sb_puts(sb, "<|im_start|>assistant\n");
        break;
    case CHAT_PHI3:
        for (size_t i = 0; i < n; i++) util_sb_printf(sb, "<|%s|>\n%s<|end|>\n", m[i].role, m[i].content);
        util_sb_puts(sb, "<|assistant|>\n");
        break;
    case CHAT_LLAMA3:
        for (size_t i = 0; i < n; i++)
            util_sb_printf(sb, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", m[i].role, m[i].content);
        util_sb_puts(sb, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_HARMONY:
        for (size_t i = 0; i < n; i++)
            util_sb_printf(sb, "<|start|>%s<|message|>%s<|end|>", !strcmp(m[i].role, "system") ? "developer" : m[i].role,
                           m[i].content);
        util_sb_puts(sb, "<|start|>assistant");
        break;
    case CHAT_LLAMA2: {
        /* [INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] user [/INST]
         * System messages are never dropped: consecutive ones are joined, and
         * system text with no user turn after it still opens an [INST] block. */
        struct util_sb sys;
        util_sb_init(&sys);
        int open = 0;
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(m[i].role, "system")) {
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
