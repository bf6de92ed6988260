/* tiny_models — the synthetic models the engine tests make at test time with
 * the built llorch (`llorch gguf make --preset tiny ... --vocab-from
 * stories260K.gguf`), and the checks that tie them to the committed
 * llama.cpp fixtures made by the same command: file size + FNV-1a 64, KL of
 * next-token distributions, top-1, greedy ids.
 *
 * Shared by tests/unit/test_engine_{dist,gptoss,greedy,fused}.c and
 * tests/gpu/test_cuda_gptoss.c. Header-only, every function static inline
 * (a test file that uses a few gets no unused-function warnings); the ones
 * reading f16 fixtures need engine/quant.h (llorch_quant). */
#ifndef TINY_MODELS_H
#define TINY_MODELS_H

#include <math.h>
#include <sys/stat.h>

#include "engine/engine.h"
#include "engine/quant.h"
#include "testutil.h"

/* the path of the built llorch into llorch[cap]; skips the test (cmocka)
 * when it is not built */
static inline void tm_need_llorch(char *llorch, size_t cap) {
    struct stat sb;
    if (stat(tu_path(llorch, cap, "LLORCH_BUILD_DIR", "build", "llorch"), &sb) != 0) {
        print_message("llorch is not built: skipped\n");
        skip();
    }
}

/* makes <build>/<dir_name>/<name>.gguf (path into out) with
 * `llorch gguf make --preset tiny <args> --vocab-from stories260K --seed <seed>`;
 * fails the test when the command fails */
static inline void tm_make_tiny(const char *dir_name, const char *name, const char *args, int seed, char *out,
                                size_t cap) {
    char dir[1024], models[1024], llorch[1024], cmd[4096];
    TU_BUILD(dir, dir_name);
    mkdir(dir, 0755);
    snprintf(out, cap, "%s/%.63s.gguf", dir, name);
    TU_BUILD(llorch, "llorch");
    snprintf(cmd, sizeof cmd,
             "'%s' gguf make --preset tiny %s --vocab-from '%s' --seed %d -o '%s' >/dev/null 2>&1", llorch, args,
             TU_MODEL(models, "stories260K.gguf"), seed, out);
    if (system(cmd) != 0) fail_msg("%s: cannot make the model: %s", name, cmd);
}

/* the tiny gpt-oss model of block format `type` (4 layers, width 256, 4
 * experts of width 256, 2 used, sliding window 16 on layers 0 and 2, sinks,
 * YaRN): <build>/gptoss-models/gpt-oss-<type>.gguf, as tools/ref/ref_gptoss.sh made the fixture's */
static inline void tm_make_gptoss(const char *type, char *out, size_t cap) {
    char name[64], args[128];
    snprintf(name, sizeof name, "gpt-oss-%s", type);
    snprintf(args, sizeof args, "--arch gpt-oss --swa 16 --type %s", type);
    tm_make_tiny("gptoss-models", name, args, 1, out, cap);
}

/* FNV-1a 64 of the file's bytes (0 when it cannot be read); its size into *size */
static inline uint64_t tm_fnv1a64_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    int c;
    long n = 0;
    while ((c = getc(f)) != EOF) {
        h = (h ^ (uint64_t)(unsigned char)c) * 0x100000001b3ull;
        n++;
    }
    fclose(f);
    *size = n;
    return h;
}

/* fails the test unless the file has the fixture's size and FNV-1a 64: the
 * generator changed, and the fixture must be remade (regen says how) */
static inline void tm_check_file(const char *path, long want_size, uint64_t want_fnv, const char *regen) {
    long sz = 0;
    uint64_t h = tm_fnv1a64_file(path, &sz);
    if (sz != want_size || h != want_fnv)
        fail_msg("%s: the generator's output changed (size %ld, fnv %016llx; fixture %ld, %016llx): regenerate %s",
                 path, sz, (unsigned long long)h, want_size, (unsigned long long)want_fnv, regen);
}

/* "<tag> N id1 ... idN" into ids; N, or -1 when the tag differs or N > cap */
static inline int tm_parse_ids(const char *line, const char *tag, int32_t *ids, int cap) {
    size_t tl = strlen(tag);
    if (strncmp(line, tag, tl) || line[tl] != ' ') return -1;
    char *end;
    int n = (int)strtol(line + tl + 1, &end, 10);
    if (n < 0 || n > cap) return -1;
    for (int i = 0; i < n; i++) ids[i] = (int32_t)strtol(end, &end, 10);
    return n;
}

/* a fixture index (tests/fixtures/<rel>): a line "tokens N id1 ... idN",
 * then one line per model "model <name> <n_pos> <n_vocab> <file size> <FNV-1a 64 hex>" */
struct tm_model_line {
    char name[64];
    int n_pos, n_vocab;
    long fsize;
    uint64_t fnv;
};
/* the tokens into toks (their count into *n_tok, which fails the test past
 * cap) and up to max model lines into m; the number of model lines */
static inline int tm_read_index(const char *rel, int32_t *toks, int cap, int *n_tok, struct tm_model_line *m,
                                int max) {
    char path[1024], line[8192], hex[32];
    FILE *f = fopen(TU_FIXTURE(path, rel), "r");
    assert_non_null(f);
    int n = 0;
    *n_tok = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "tokens ", 7)) {
            *n_tok = tm_parse_ids(line, "tokens", toks, cap);
            assert_true(*n_tok >= 0);
        } else if (!strncmp(line, "model ", 6)) {
            assert_true(n < max);
            assert_int_equal(sscanf(line + 6, "%63s %d %d %ld %31s", m[n].name, &m[n].n_pos, &m[n].n_vocab,
                                    &m[n].fsize, hex), 5);
            m[n++].fnv = strtoull(hex, NULL, 16);
        }
    }
    fclose(f);
    return n;
}

/* count f16 values of the fixture file tests/fixtures/<rel> (malloc'd);
 * fails the test when the file is shorter */
static inline uint16_t *tm_read_f16(const char *rel, size_t count) {
    char path[1024];
    FILE *f = fopen(TU_FIXTURE(path, rel), "rb");
    assert_non_null(f);
    uint16_t *v = malloc(count * sizeof *v);
    assert_non_null(v);
    assert_int_equal(fread(v, sizeof *v, count, f), count);
    fclose(f);
    return v;
}

/* the first index of the largest logit */
static inline int tm_argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* path loaded on backend (ENG_BACKEND_CPU / _CUDA) with n_threads and
 * n_ctx, or the test fails with the loader's message */
static inline eng_model *tm_load(const char *path, int backend, int n_threads, int n_ctx) {
    char err[512];
    eng_load_opts o;
    eng_load_opts_default(&o);
    o.backend = backend;
    o.n_threads = n_threads;
    o.n_ctx = n_ctx;
    eng_model *m = NULL;
    if (eng_model_load(path, &o, &m, err, sizeof err)) fail_msg("%s (%s): %s", path, backend ? "cuda" : "cpu", err);
    return m;
}

/* the top-1 logit's lead over the second (= the log-probability gap) */
static inline double tm_top_gap(const float *l, int n) {
    const int a = tm_argmax(l, n);
    float second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != a && l[i] > second) second = l[i];
    return (double)l[a] - second;
}

/* KL(softmax(p) || softmax(q)) of two logit rows of n; fails the test when q
 * holds a non-finite logit */
static inline double tm_kl_logits(const float *p, const float *q, int n) {
    double mp = -INFINITY, mq = -INFINITY, zp = 0, zq = 0, kl = 0;
    for (int t = 0; t < n; t++) {
        if (!isfinite(q[t])) fail_msg("logit %d of the compared row is not finite", t);
        mp = p[t] > mp ? p[t] : mp;
        mq = q[t] > mq ? q[t] : mq;
    }
    for (int t = 0; t < n; t++) {
        zp += exp(p[t] - mp);
        zq += exp(q[t] - mq);
    }
    const double lzp = mp + log(zp), lzq = mq + log(zq);
    for (int t = 0; t < n; t++) kl += exp(p[t] - lzp) * ((p[t] - lzp) - (q[t] - lzq));
    return kl;
}

/* one position's logits l against llama.cpp's log-probs ref (f16, both of
 * n_vocab): KL(llama.cpp || ours), our top-1, llama.cpp's top-1 and its
 * top-1/top-2 gap (first index wins ties) */
struct tm_pos {
    double kl, ref_gap;
    int top1, ref_top1;
};
static inline struct tm_pos tm_vs_ref(const float *l, const uint16_t *ref, int n_vocab) {
    double mx = -INFINITY, z = 0;
    for (int t = 0; t < n_vocab; t++) mx = l[t] > mx ? l[t] : mx;
    for (int t = 0; t < n_vocab; t++) z += exp(l[t] - mx);
    const double lz = mx + log(z);
    struct tm_pos r = { 0 };
    for (int t = 0; t < n_vocab; t++) {
        const double lp = qt_f16_to_f32(ref[t]), lq = l[t] - lz;
        r.kl += exp(lp) * (lp - lq);
        if (l[t] > l[r.top1]) r.top1 = t;
        if (lp > qt_f16_to_f32(ref[r.ref_top1])) r.ref_top1 = t;
    }
    int r2 = -1;
    for (int t = 0; t < n_vocab; t++)
        if (t != r.ref_top1 && (r2 < 0 || qt_f16_to_f32(ref[t]) > qt_f16_to_f32(ref[r2]))) r2 = t;
    r.ref_gap = qt_f16_to_f32(ref[r.ref_top1]) - qt_f16_to_f32(ref[r2]);
    return r;
}

#endif
