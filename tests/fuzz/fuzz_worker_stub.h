/* fuzz_worker_stub — shared by fuzz_execute.c and fuzz_admission.c: the
 * worker's /execute validation (src/worker/validate.c, part of the worker
 * program, not a library) compiled into the fuzz target, with
 * eng_session_n_ctx redirected to fz_n_ctx (no model is loaded: only the
 * context size and the tokenizer are used), and the tokenizer: stories260K
 * (LLORCH_MODELS_DIR or ../shared/models from the repo root or build dir),
 * else a small synthetic SPM vocabulary with all 256 byte tokens.
 * Link: llorch_net llorch_engine llorch_tok llorch_gguf llorch_core. */
#ifndef FUZZ_WORKER_STUB_H
#define FUZZ_WORKER_STUB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "worker/worker.h"

/* ---- the engine stand-in: only the session's context size is used --------- */
static int fz_ctx = 96;
static int fz_n_ctx(const eng_session *s) {
    (void)s;
    return fz_ctx;
}
#define eng_session_n_ctx fz_n_ctx
#include "worker/validate.c"
#undef eng_session_n_ctx

/* ---- vocabulary ------------------------------------------------------------ */
static tok_vocab *fz_load_path(const char *path) {
    char err[256];
    gguf_ctx *g = NULL;
    if (gguf_open(path, &g, err, sizeof err) != 0) return NULL;
    tok_vocab *v = NULL;
    if (tok_load_gguf(g, &v, err, sizeof err) != 0) v = NULL;
    gguf_close(g);
    return v;
}

static tok_vocab *fz_load_model(const char *name) {
    char p[1024];
    const char *env = getenv("LLORCH_MODELS_DIR");
    const char *dirs[] = { env, "../shared/models", "../../shared/models", "../../../shared/models" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i] || !*dirs[i]) continue;
        snprintf(p, sizeof p, "%s/%s", dirs[i], name);
        if (access(p, R_OK) == 0) {
            tok_vocab *v = fz_load_path(p);
            if (v) return v;
        }
    }
    return NULL;
}

static tok_vocab *fz_synthetic_spm(void) {
    gguf_writer *w = gguf_writer_new();
    static char bytes[256][8];
    const char *t[256 + 16];
    float sc[256 + 16];
    int32_t ty[256 + 16];
    int n = 0;
    const char *head[] = { "<unk>", "<s>", "</s>" };
    for (int i = 0; i < 3; i++) t[n] = head[i], sc[n] = 0, ty[n++] = i == 0 ? 2 : 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        t[n] = bytes[b], sc[n] = 0, ty[n++] = 6;
    }
    const char *words[] = { "\xe2\x96\x81", "\xe2\x96\x81t", "he", "\xe2\x96\x81the", "in", "ing" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) t[n] = words[i], sc[n] = -(float)i, ty[n++] = 1;
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, (uint64_t)n);
    gguf_w_set_arr(w, "tokenizer.ggml.scores", GGUF_T_F32, sc, (uint64_t)n);
    gguf_w_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_I32, ty, (uint64_t)n);
    char path[] = "/tmp/fuzz_worker_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    char err[256];
    if (gguf_w_write(w, path, err, sizeof err) != 0) abort();
    gguf_writer_free(w);
    tok_vocab *v = fz_load_path(path);
    unlink(path);
    if (!v) abort();
    return v;
}

/* a worker with just what validate.c reads: the vocab (and fz_ctx) */
__attribute__((unused)) static void fz_worker_init(worker *w, const char *who) {
    memset(w, 0, sizeof *w);
    tok_vocab *v = fz_load_model("stories260K.gguf");
    if (!v) {
        fprintf(stderr, "%s: stories260K.gguf not found; using a synthetic SPM vocabulary\n", who);
        v = fz_synthetic_spm();
    }
    w->vocab = v;
}

#endif
