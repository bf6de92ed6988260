/* fuzz_vocab — tokenizer vocabularies for fuzz targets: a real model's
 * (LLORCH_MODELS_DIR, else the usual relative spots seen from the repo root
 * or the build dir), or a vocabulary written at startup (a small synthetic
 * SPM one with all 256 byte tokens when the model files are not found).
 * Shared by fuzz_tok_common.h (fuzz_tok_spm, fuzz_tok_bpe) and
 * fuzz_worker_stub.h (fuzz_execute, fuzz_admission, fuzz_cancel).
 * Header-only, static inline. */
#ifndef FUZZ_VOCAB_H
#define FUZZ_VOCAB_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

/* the vocabulary of the GGUF at path, or NULL (a load error is printed) */
static inline tok_vocab *ft_load_path(const char *path) {
    char err[256];
    gguf_ctx *g = NULL;
    if (gguf_open(path, &g, err, sizeof err) != 0) return NULL;
    tok_vocab *v = NULL;
    if (tok_load_gguf(g, &v, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz: %s: %s\n", path, err);
        v = NULL;
    }
    gguf_close(g);
    return v;
}

/* LLORCH_MODELS_DIR, else the usual relative spots (repo root, build dir) */
static inline tok_vocab *ft_load_model(const char *name) {
    char p[1024];
    const char *env = getenv("LLORCH_MODELS_DIR");
    const char *dirs[] = {env, "../shared/models", "../../shared/models", "../../../shared/models"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i] || !*dirs[i]) continue;
        snprintf(p, sizeof p, "%s/%s", dirs[i], name);
        if (access(p, R_OK) == 0) {
            tok_vocab *v = ft_load_path(p);
            if (v) return v;
        }
    }
    return NULL;
}

/* writes w (freed) to a private temp file and loads it; aborts on failure */
static inline tok_vocab *ft_load_writer(gguf_writer *w) {
    char path[] = "/tmp/fuzz_tok_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) abort();
    close(fd);
    char err[256];
    if (gguf_w_write(w, path, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz: writing vocab: %s\n", err);
        abort();
    }
    gguf_writer_free(w);
    tok_vocab *v = ft_load_path(path);
    unlink(path);
    if (!v) abort();
    return v;
}

/* an SPM vocabulary: <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>,
 * then the nwords (<= 16) normal tokens words with scores 0, -1, -2, ... */
static inline tok_vocab *ft_synthetic_spm(const char *const *words, size_t nwords) {
    gguf_writer *w = gguf_writer_new();
    static char bytes[256][8];
    const char *t[256 + 16];
    float sc[256 + 16];
    int32_t ty[256 + 16];
    int n = 0;
    const char *head[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) t[n] = head[i], sc[n] = 0, ty[n++] = i == 0 ? 2 : 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        t[n] = bytes[b], sc[n] = 0, ty[n++] = 6;
    }
    for (size_t i = 0; i < nwords && i < 13; i++) t[n] = words[i], sc[n] = -(float)i, ty[n++] = 1;
    gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", t, NULL, (uint64_t)n);
    gguf_w_set_arr(w, "tokenizer.ggml.scores", GGUF_T_F32, sc, (uint64_t)n);
    gguf_w_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_I32, ty, (uint64_t)n);
    return ft_load_writer(w);
}

#endif
