// test-libs: llorch_orchcore llorch_core
/* chat templates: the exact text each family renders, refusals, guessing,
 * and the catalog's chat_template field. */
#include "testutil.h"

#include "common/config.h"
#include "orch/core/catalog.h"
#include "orch/core/chat.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static void render(enum chat_template t, const struct chat_msg *m, size_t n, const char *want) {
    struct util_sb sb;
    util_sb_init(&sb);
    assert_int_equal(chat_render(t, m, n, &sb), 0);
    assert_string_equal(sb.buf, want);
    util_sb_free(&sb);
}

static const struct chat_msg conv[] = {
    { "system", "Be brief." }, { "user", "Hi" }, { "assistant", "Hello." }, { "user", "2+2?" },
};

static void test_templates(void **s) {
    (void)s;
    render(CHAT_CHATML, conv, 4,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
           "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
    render(CHAT_PHI3, conv + 1, 1, "<|user|>\nHi<|end|>\n<|assistant|>\n");
    render(CHAT_LLAMA3, conv + 1, 1,
           "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    render(CHAT_LLAMA2, conv, 4,
           "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] 2+2? [/INST]");
    /* Llama-2 never drops system text: two system messages are joined, and a
     * system-only chat still renders (fuzz finding llama2_system_only) */
    static const struct chat_msg sys2[] = { { "system", "A." }, { "system", "B." }, { "user", "Hi" } };
    render(CHAT_LLAMA2, sys2, 3, "[INST] <<SYS>>\nA.\n\nB.\n<</SYS>>\n\nHi [/INST]");
    render(CHAT_LLAMA2, conv, 1, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n [/INST]");
    static const struct chat_msg trail[] = { { "user", "Hi" }, { "assistant", "Yo." }, { "system", "Be brief." } };
    render(CHAT_LLAMA2, trail, 3, "[INST] Hi [/INST] Yo. </s><s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n [/INST]");
    /* "developer" (harmony's role) is "system" to the other families */
    static const struct chat_msg dev[] = { { "developer", "Be brief." }, { "user", "Hi" } };
    render(CHAT_CHATML, dev, 2, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                                "<|im_start|>assistant\n");
    render(CHAT_LLAMA2, dev, 2, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]");
    struct util_sb sb;
    util_sb_init(&sb);
    struct chat_msg bad = { "tool", "x" };
    assert_int_equal(chat_render(CHAT_CHATML, &bad, 1, &sb), -EINVAL);
    assert_int_equal(chat_render(CHAT_CHATML, conv, 0, &sb), -EINVAL);
    util_sb_free(&sb);
}

/* ---- harmony (GPT-OSS): OpenAI's published template, byte for byte ---- */
#define HM_SYS(effort)                                                                                             \
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"                     \
    "Knowledge cutoff: 2024-06\nCurrent date: 2026-11-27\n\nReasoning: " effort "\n\n"                          \
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"

static void render_hm(const struct chat_msg *m, size_t n, enum chat_reasoning r, const char *want) {
    struct chat_opts o = { .reasoning = r, .date = "2026-11-27" };
    struct util_sb sb;
    util_sb_init(&sb);
    assert_int_equal(chat_render_opts(CHAT_HARMONY, m, n, &o, &sb), 0);
    assert_string_equal(sb.buf, want);
    util_sb_free(&sb);
}

static void test_harmony(void **s) {
    (void)s;
    /* system + user: the system message becomes the developer message's instructions */
    render_hm(conv, 2, CHAT_REASONING_MEDIUM,
              HM_SYS("medium") "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n<|end|>"
                               "<|start|>user<|message|>Hi<|end|><|start|>assistant");
    /* user only: no developer message at all */
    render_hm(conv + 1, 1, CHAT_REASONING_LOW, HM_SYS("low") "<|start|>user<|message|>Hi<|end|><|start|>assistant");
    /* multi-turn: past assistant turns are final-channel messages ending in <|end|> */
    render_hm(conv, 4, CHAT_REASONING_HIGH,
              HM_SYS("high") "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n<|end|>"
                             "<|start|>user<|message|>Hi<|end|>"
                             "<|start|>assistant<|channel|>final<|message|>Hello.<|end|>"
                             "<|start|>user<|message|>2+2?<|end|><|start|>assistant");
    /* an OpenAI "developer" message is the developer message too; a later
     * system message is not dropped (another developer message, in place);
     * an empty first one renders none (as the published template) */
    static const struct chat_msg d[] = { { "developer", "Rhyme." }, { "user", "Hi" }, { "system", "Shorter." },
                                         { "user", "Again" } };
    render_hm(d, 4, CHAT_REASONING_MEDIUM,
              HM_SYS("medium") "<|start|>developer<|message|># Instructions\n\nRhyme.\n\n<|end|>"
                               "<|start|>user<|message|>Hi<|end|>"
                               "<|start|>developer<|message|># Instructions\n\nShorter.\n\n<|end|>"
                               "<|start|>user<|message|>Again<|end|><|start|>assistant");
    static const struct chat_msg empty[] = { { "system", "" }, { "user", "Hi" } };
    render_hm(empty, 2, CHAT_REASONING_MEDIUM, HM_SYS("medium") "<|start|>user<|message|>Hi<|end|><|start|>assistant");
    /* no options: medium effort and today's date (UTC) */
    struct util_sb sb;
    util_sb_init(&sb);
    assert_int_equal(chat_render(CHAT_HARMONY, conv + 1, 1, &sb), 0);
    char want[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(want, sizeof want, "Current date: %Y-%m-%d\n\nReasoning: medium\n", &tm);
    assert_non_null(strstr(sb.buf, want));
    util_sb_free(&sb);
    assert_int_equal(chat_reasoning_parse("low"), CHAT_REASONING_LOW);
    assert_int_equal(chat_reasoning_parse("high"), CHAT_REASONING_HIGH);
    assert_int_equal(chat_reasoning_parse("max"), -1);
    assert_int_equal(chat_reasoning_parse(NULL), -1);
}

static void test_pick_by_architecture(void **s) {
    (void)s;
    assert_int_equal(chat_template_for_arch("gpt-oss"), CHAT_HARMONY);
    assert_int_equal(chat_template_for_arch("phi3"), CHAT_PHI3);
    assert_int_equal(chat_template_for_arch("qwen2"), CHAT_CHATML);
    assert_int_equal(chat_template_for_arch("llama"), -1); /* Llama-2, Llama-3, TinyLlama share it */
    assert_int_equal(chat_template_for_arch(NULL), -1);
    /* the operator's choice, then the architecture, then the ref */
    assert_int_equal(chat_template_pick(CHAT_LLAMA3, "gpt-oss", "file:/m/gpt-oss.gguf"), CHAT_LLAMA3);
    assert_int_equal(chat_template_pick(-1, "gpt-oss", "file:/m/model.gguf"), CHAT_HARMONY);
    assert_int_equal(chat_template_pick(-1, "qwen2", "file:/m/gpt-oss-named-wrongly.gguf"), CHAT_CHATML);
    assert_int_equal(chat_template_pick(-1, "llama", "file:/m/Llama-3.2-1B.gguf"), CHAT_LLAMA3);
    assert_int_equal(chat_template_pick(-1, NULL, "hf:openai/gpt-oss-20b::file=g.gguf"), CHAT_HARMONY);
}

static void test_guess_and_catalog(void **s) {
    (void)s;
    assert_int_equal(chat_template_guess("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF::file=q.gguf"), CHAT_CHATML);
    assert_int_equal(chat_template_guess("hf:microsoft/Phi-3-mini-4k-instruct-gguf::file=x.gguf"), CHAT_PHI3);
    assert_int_equal(chat_template_guess("file:/m/Meta-Llama-3-8B.gguf"), CHAT_LLAMA3);
    assert_int_equal(chat_template_guess("file:/m/llama-2-7b.Q4_0.gguf"), CHAT_LLAMA2);
    assert_int_equal(chat_template_guess("hf:openai/gpt-oss-20b::file=g.gguf"), CHAT_HARMONY);
    assert_int_equal(chat_template_parse("llama3"), CHAT_LLAMA3);
    assert_int_equal(chat_template_parse("vicuna"), -1);
    static const struct cfg_opt o[] = { { .key = "models", .type = CFG_TREE } };
    char *argv[] = { "t", NULL }, *envp[] = { NULL };
    char err[256];
    struct cfg *c;
    struct catalog *cat;
    assert_int_equal(cfg_load_text(o, 1, "models:\n  a: {model_ref: 'file:/m/phi3.gguf', context_length: 9}\n"
                                         "  b: {model_ref: 'file:/m/x.gguf', context_length: 9, chat_template: llama2}\n",
                                   1, argv, envp, NULL, &c, err, sizeof err), 0);
    assert_int_equal(cat_from_tree(cfg_tree(c, "models"), &cat, err, sizeof err), 0);
    assert_int_equal(cat_find(cat, "a")->chat_template, CHAT_PHI3);
    assert_int_equal(cat_find(cat, "a")->chat_template_set, 0); /* guessed: the architecture may still decide */
    assert_int_equal(cat_find(cat, "b")->chat_template, CHAT_LLAMA2);
    assert_int_equal(cat_find(cat, "b")->chat_template_set, 1);
    cat_free(cat);
    cfg_free(c);
    assert_int_equal(cfg_load_text(o, 1, "models:\n  b: {model_ref: 'file:/m/x.gguf', context_length: 9, chat_template: x}\n",
                                   1, argv, envp, NULL, &c, err, sizeof err), 0);
    assert_true(cat_from_tree(cfg_tree(c, "models"), &cat, err, sizeof err) < 0);
    assert_non_null(strstr(err, "chat_template"));
    cfg_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_harmony),
        cmocka_unit_test(test_pick_by_architecture),
        cmocka_unit_test(test_guess_and_catalog),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
