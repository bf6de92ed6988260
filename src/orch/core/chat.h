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
    const char *role;      /* "system" | "developer" | "user" | "assistant" */
    const char *content;
};

/* harmony's "Reasoning:" line (the OpenAI reasoning_effort field) */
enum chat_reasoning { CHAT_REASONING_LOW = 0, CHAT_REASONING_MEDIUM, CHAT_REASONING_HIGH };

/* Per-request inputs of a template; only harmony reads them today. */
struct chat_opts {
    enum chat_reasoning reasoning;  /* default (NULL opts): medium */
    const char *date;               /* "YYYY-MM-DD" for "Current date:"; NULL = today (UTC) */
};

const char *chat_template_name(enum chat_template t);
int chat_template_parse(const char *s);                 /* -1 when unknown */
int chat_reasoning_parse(const char *s);               /* "low"|"medium"|"high"; -1 otherwise */
/* A family guessed from a model ref/alias ("qwen" -> chatml, "phi-3" -> phi3,
 * "llama-2" -> llama2, "llama-3" -> llama3, "gpt-oss" -> harmony); chatml otherwise. */
enum chat_template chat_template_guess(const char *model_ref);
/* The family a GGUF general.architecture decides: gpt-oss -> harmony,
 * phi3 -> phi3, qwen2/qwen3 -> chatml; -1 when the architecture does not
 * decide it (llama: Llama-2, Llama-3 and TinyLlama-chat share it) or is NULL. */
int chat_template_for_arch(const char *arch);
/* The template of a model: the operator's choice (catalog chat_template,
 * given >= 0), else the one its architecture decides, else guessed from
 * the ref. */
enum chat_template chat_template_pick(int given, const char *arch, const char *model_ref);
/* Renders messages + the assistant generation prompt into sb. Returns 0, or
 * -EINVAL for an unknown role or an empty conversation. "developer" is
 * harmony's role; the other families render it as "system". o may be NULL. */
int chat_render_opts(enum chat_template t, const struct chat_msg *m, size_t n, const struct chat_opts *o,
                     struct util_sb *sb);
int chat_render(enum chat_template t, const struct chat_msg *m, size_t n, struct util_sb *sb); /* o = NULL */

/* ---- harmony (GPT-OSS) ----------------------------------------------------
 * Prompt (chat_render_opts, CHAT_HARMONY), as OpenAI's published template:
 *   <|start|>system<|message|>{identity}\nKnowledge cutoff: 2024-06\n
 *     Current date: {date}\n\nReasoning: {effort}\n\n# Valid channels: analysis,
 *     commentary, final. Channel must be included for every message.<|end|>
 *   <|start|>developer<|message|># Instructions\n\n{first system/developer}\n\n<|end|>
 *   <|start|>user<|message|>{text}<|end|>
 *   <|start|>assistant<|channel|>final<|message|>{text}<|end|>   (history: final only)
 *   <|start|>assistant                                          (generation prompt)
 * A later system/developer message becomes another developer message in
 * place (the published template drops it silently; we never drop text). */
#define CHAT_HARMONY_IDENTITY "You are ChatGPT, a large language model trained by OpenAI."

#endif
