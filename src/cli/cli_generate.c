/* cli_generate — `llorch generate`: run a model on a prompt locally and
 * stream the continuation to stdout.
 *
 *   llorch generate --model FILE --prompt TEXT [--max-tokens N] [--temperature T]
 *       [--top-k K] [--top-p P] [--min-p M] [--repeat-penalty R] [--seed S]
 *       [--threads N] [--backend cpu|cuda] [--ctx N] [--print-ids]
 *
 * BOS/EOS per the vocabulary's flags. Text is streamed as tokens come,
 * through the UTF-8 assembler so a multi-byte character is never split.
 * Stops at an end-of-generation token (not printed) or after max tokens.
 * Timings (prompt and generation tokens/s) go to stderr at the end;
 * --print-ids adds a final stdout line "ids: <generated ids>".
 * Decode is pipelined (eng_session_set_pipeline: the next step is enqueued
 * before the sampled token is read back; off for the last allowed token);
 * LLORCH_PIPELINE=0 turns that off (A/B).
 * Exit: 0 ok, 1 runtime failure (load, eval), 2 bad usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "engine/engine.h"

int cli_generate(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: llorch generate --model FILE --prompt TEXT [options]\n"
            "  --max-tokens N       tokens to generate (default 128, capped by the context)\n"
            "  --temperature T      0 = greedy (default 0.8)\n"
            "  --top-k K            0 = off (default 40)\n"
            "  --top-p P            1 = off (default 0.95)\n"
            "  --min-p M            0 = off (default 0.05)\n"
            "  --repeat-penalty R   1 = off (default 1.0)\n"
            "  --seed S             64-bit seed (default: from the clock, printed to stderr)\n"
            "  --threads N          CPU threads (default: all cores)\n"
            "  --backend cpu|cuda   (default cpu)\n"
            "  --ctx N              context size (default min(train context, 4096))\n"
            "  --print-ids          print the generated token ids after the text\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

int cli_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL;
    long max_tokens = 128, threads = 0, ctx = 0;
    int backend = ENG_BACKEND_CPU, print_ids = 0, have_seed = 0;
    eng_sampling_params sp;
    eng_sampling_params_default(&sp);
    sp.temperature = 0.8f;
    sp.top_k = 40;
    sp.top_p = 0.95f;
    sp.min_p = 0.05f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long lv;
        int bad = 0, takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--print-ids")) {
            print_ids = 1;
            takes = 0;
        } else if (!v) {
            fprintf(stderr, "llorch generate: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--max-tokens")) bad = parse_long(v, 1, 1 << 24, &max_tokens);
        else if (!strcmp(a, "--temperature")) bad = parse_float(v, 0.0f, 100.0f, &sp.temperature);
        else if (!strcmp(a, "--top-k")) {
            bad = parse_long(v, 0, 1 << 30, &lv);
            sp.top_k = (int)lv;
        } else if (!strcmp(a, "--top-p")) bad = parse_float(v, 0.0f, 1.0f, &sp.top_p);
        else if (!strcmp(a, "--min-p")) bad = parse_float(v, 0.0f, 1.0f, &sp.min_p);
        else if (!strcmp(a, "--repeat-penalty")) bad = parse_float(v, 1e-6f, 100.0f, &sp.repeat_penalty);
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            bad = errno || end == v || *end || v[0] == '-';
            sp.seed = s;
            have_seed = 1;
        } else if (!strcmp(a, "--threads")) bad = parse_long(v, 1, 256, &threads);
        else if (!strcmp(a, "--ctx")) bad = parse_long(v, 1, 1 << 24, &ctx);
        else if (!strcmp(a, "--backend")) {
            if (!strcmp(v, "cpu")) backend = ENG_BACKEND_CPU;
            else if (!strcmp(v, "cuda")) backend = ENG_BACKEND_CUDA;
            else bad = 1;
        } else {
            fprintf(stderr, "llorch generate: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "llorch generate: bad value for %s: '%s'\n", a, v);
            return 2;
        }
        i += takes;
    }
    if (!model || !prompt) {
        usage(stderr);
        return 2;
    }
    if (!have_seed) sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)util_now_ns() << 20);

    char err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.backend = backend;
    o.n_threads = (int)threads;
    o.n_ctx = (int)ctx;
    eng_model *m = NULL;
    uint64_t t_load = util_now_ns();
    if (eng_model_load(model, &o, &m, err, sizeof err)) {
        fprintf(stderr, "llorch generate: %s\n", err);
        return 1;
    }
    t_load = util_now_ns() - t_load;
    const eng_model_info *info = eng_model_get_info(m);
    const tok_vocab *voc = eng_model_vocab(m);
    int rc = 1;
    eng_session *s = NULL;
    eng_sampler *smp = NULL;
    int32_t *ids = NULL, *gen = NULL;
    char *piece = NULL, *outb = NULL;

    size_t plen = strlen(prompt);
    int cap = (int)(plen + 8);
    ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) goto done;
    int n_prompt = tok_encode(voc, prompt, plen, 1, 0, ids, cap);
    if (n_prompt < 0) {
        fprintf(stderr, "llorch generate: cannot tokenize the prompt (%d)\n", n_prompt);
        goto done;
    }
    if (n_prompt > cap) { /* cannot happen for SPM/BPE (<= bytes + specials), but be exact */
        free(ids);
        cap = n_prompt;
        ids = malloc((size_t)cap * sizeof *ids);
        if (!ids) goto done;
        n_prompt = tok_encode(voc, prompt, plen, 1, 0, ids, cap);
    }
    if (n_prompt == 0) {
        fprintf(stderr, "llorch generate: the prompt has no tokens\n");
        goto done;
    }
    if (n_prompt >= info->n_ctx) {
        fprintf(stderr, "llorch generate: the prompt (%d tokens) does not fit the context (%d)\n", n_prompt,
                info->n_ctx);
        goto done;
    }
    if (max_tokens > info->n_ctx - n_prompt) max_tokens = info->n_ctx - n_prompt;

    if (eng_session_new(m, &s, err, sizeof err)) {
        fprintf(stderr, "llorch generate: %s\n", err);
        goto done;
    }
    smp = eng_sampler_new(&sp, info->n_vocab);
    gen = malloc((size_t)max_tokens * sizeof *gen);
    piece = malloc(256);
    outb = malloc(256 + 8);
    if (!smp || !gen || !piece || !outb) goto done;
    for (int i = 0; i < n_prompt; i++) eng_sampler_accept(smp, ids[i]);
    if (!have_seed) fprintf(stderr, "seed: %llu\n", (unsigned long long)sp.seed);

    uint64_t t0 = util_now_ns();
    if (eng_eval(s, ids, n_prompt, ENG_LOGITS_LAST, err, sizeof err)) {
        fprintf(stderr, "llorch generate: %s\n", err);
        goto done;
    }
    uint64_t t_prompt = util_now_ns() - t0;
    tok_utf8_stream us;
    tok_utf8_init(&us);
    int n_gen = 0;
    const char *pe = getenv("LLORCH_PIPELINE");
    const int pipe = !(pe && !strcmp(pe, "0"));
    uint64_t t1 = util_now_ns();
    for (; n_gen < max_tokens; n_gen++) {
        int32_t t;
        /* the last allowed token is not evaluated: no step to run ahead (an
         * end-of-generation token discards one speculative step) */
        eng_session_set_pipeline(s, pipe && n_gen + 1 < max_tokens);
        if (eng_sample(s, smp, &t)) {
            fprintf(stderr, "llorch generate: sampling failed\n");
            goto done;
        }
        if (tok_is_eog(voc, t)) break;
        gen[n_gen] = t;
        int pl = tok_piece(voc, t, 0, piece, 256);
        if (pl > 256) pl = 0; /* no vocab piece is that long; never print a partial one */
        if (pl > 0) {
            size_t w = tok_utf8_push(&us, piece, (size_t)pl, outb, 256 + 8);
            fwrite(outb, 1, w, stdout);
            fflush(stdout);
        }
        if (n_gen + 1 < max_tokens && eng_eval(s, &t, 1, ENG_LOGITS_LAST, err, sizeof err)) {
            fprintf(stderr, "\nllorch generate: %s\n", err);
            goto done;
        }
    }
    uint64_t t_gen = util_now_ns() - t1;
    size_t w = tok_utf8_finish(&us, outb, 256 + 8);
    fwrite(outb, 1, w, stdout);
    fputc('\n', stdout);
    if (print_ids) {
        fputs("ids:", stdout);
        for (int i = 0; i < n_gen; i++) printf(" %d", gen[i]);
        fputc('\n', stdout);
    }
    fflush(stdout);
    fprintf(stderr,
            "model %s (%s, %s) on %s: load %.1f ms; prompt %d tokens in %.1f ms (%.1f tok/s); "
            "generated %d tokens in %.1f ms (%.1f tok/s)\n",
            info->name, info->arch, info->quant_kind, info->backend, t_load / 1e6, n_prompt, t_prompt / 1e6,
            t_prompt ? n_prompt * 1e9 / t_prompt : 0.0, n_gen, t_gen / 1e6, t_gen ? n_gen * 1e9 / t_gen : 0.0);
    rc = 0;
done:
    free(ids);
    free(gen);
    free(piece);
    free(outb);
    eng_sampler_free(smp);
    eng_session_free(s);
    eng_model_free(m);
    return rc;
}
