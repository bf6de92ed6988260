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

#include "fuzz_vocab.h"
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
static tok_vocab *fz_synthetic_spm(void) {
    static const char *const words[] = { "\xe2\x96\x81", "\xe2\x96\x81t", "he", "\xe2\x96\x81the", "in", "ing" };
    return ft_synthetic_spm(words, sizeof words / sizeof words[0]);
}

/* a worker with just what validate.c reads: the vocab (and fz_ctx) */
__attribute__((unused)) static void fz_worker_init(worker *w, const char *who) {
    memset(w, 0, sizeof *w);
    tok_vocab *v = ft_load_model("stories260K.gguf");
    if (!v) {
        fprintf(stderr, "%s: stories260K.gguf not found; using a synthetic SPM vocabulary\n", who);
        v = fz_synthetic_spm();
    }
    w->vocab = v;
}

#endif
