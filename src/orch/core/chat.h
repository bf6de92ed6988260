/* chat — chat templates for the OpenAI chat endpoint (SPEC §4: ChatML/Qwen2.5,
 * Phi-3, Llama-2, Llama-3, GPT-OSS harmony). The orchestrator renders the
 * messages to prompt text; the worker's tokenizer turns the special-token
 * text (<|im_start|> ...) into the special ids. Pure; no state.
 *
 * Known limit: message content is inserted as text, so content that itself
 * spells a special token is tokenized as that token (as with llama.cpp's
 * server); a tokenizer-side "no special parsing" for user spans would close it.
 */
#ifndef LLORCH_ORCH_CHAT_H
#define LLORCH_ORCH_CHAT_H

#include <stddef.h>

#include "common/util.h"

enum chat_template { CHAT_CHATML = 0, CHAT_PHI3, CHAT_LLAMA2, CHAT_LLAMA3, CHAT_HARMONY, CHAT__COUNT };

struct chat_msg {
    const char *role;      /* "system" | "user" | "assistant" */
    const char *content;
};

const char *chat_template_name(enum chat_template t);
int chat_template_parse(const char *s);                 /* -1 when unknown */
/* A family guessed from a model ref/alias ("qwen" -> chatml, "phi-3" -> phi3,
 * "llama-2" -> llama2, "llama-3" -> llama3, "gpt-oss" -> harmony); chatml otherwise. */
enum chat_template chat_template_guess(const char *model_ref);
/* Renders messages + the assistant generation prompt into sb. Returns 0, or
 * -EINVAL for an unknown role or an empty conversation. */
int chat_render(enum chat_template t, const struct chat_msg *m, size_t n, struct util_sb *sb);

#endif
