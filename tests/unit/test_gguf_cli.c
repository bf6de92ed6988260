// test-libs: llorch_gguf llorch_quant llorch_core -ljansson
/* `llorch gguf make|quantize|inspect` as real processes.
 *  - per-tensor type mixes equal llama.cpp's own choices (fixtures made by
 *    llama_model_quantize, tools/ref/ref_gguf_mix.sh), for quantize (same
 *    order) and make (same set), incl. the full Qwen2.5-0.5B Q4_K_M table;
 *  - quantized stories260K is byte-identical to llama.cpp's (per-tensor FNV);
 *  - make is deterministic per seed, weights have the intended scales;
 *  - tokenizer.json / GGUF vocab sources; inspect --json facts; exit codes.
 * Models are generated into the build dir at test time. */
#include "testutil.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/quant.h"
#include "gguf/gguf.h"

static char g_llorch[512], g_tmp[512];

/* Runs `llorch ARGS`; stdout into *out (malloc'd, may be NULL), stderr into
 * err[errcap]; returns the exit status. */
static int run(char **out, char *err, size_t errcap, const char *fmt, ...) {
    char args[2048], cmd[4096], errfile[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(errfile, sizeof errfile, "%s/stderr.%d", g_tmp, (int)getpid());
    snprintf(cmd, sizeof cmd, "%s %s 2>%s", g_llorch, args, errfile);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += k;
        if (cap - len < 4096) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    if (err && errcap) {
        err[0] = 0;
        FILE *f = fopen(errfile, "r");
        if (f) {
            size_t n = fread(err, 1, errcap - 1, f);
            err[n] = 0;
            fclose(f);
        }
    }
    unlink(errfile);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

static int cmp_line(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* lines of s sorted, joined back */
static char *sorted_lines(const char *s) {
    char *c = strdup(s), *save = NULL;
    char *lines[4096];
    int n = 0;
    for (char *l = strtok_r(c, "\n", &save); l && n < 4096; l = strtok_r(NULL, "\n", &save)) lines[n++] = l;
    qsort(lines, (size_t)n, sizeof *lines, cmp_line);
    size_t len = strlen(s) + 2;
    char *o = malloc(len);
    o[0] = 0;
    for (int i = 0; i < n; i++) strcat(strcat(o, lines[i]), "\n");
    free(c);
    return o;
}

static int setup(void **st) {
    (void)st;
    TU_BUILD(g_llorch, "llorch");
    snprintf(g_tmp, sizeof g_tmp, "%s/test-tmp", tu_env("LLORCH_BUILD_DIR", "build"));
    mkdir(g_tmp, 0755);
    if (access(g_llorch, X_OK) != 0) {
        fprintf(stderr, "llorch not built at %s\n", g_llorch);
        return -1;
    }
    /* the tiny models the mix fixtures were made from (8 layers, F16) */
    static const char *arch[] = {"llama", "qwen2", "phi3", "gpt-oss"};
    for (int i = 0; i < 4; i++) {
        char err[512];
        int rc = run(NULL, err, sizeof err, "gguf make --preset tiny --arch %s --layers 8 --type F16 -o %s/tiny-%s.gguf",
                     arch[i], g_tmp, arch[i]);
        if (rc) {
            fprintf(stderr, "make tiny-%s failed: %s\n", arch[i], err);
            return -1;
        }
    }
    return 0;
}

/* the tiny models setup made (~55 MB: a test machine may be short of disk) */
static int teardown(void **st) {
    (void)st;
    static const char *arch[] = {"llama", "qwen2", "phi3", "gpt-oss"};
    for (int i = 0; i < 4; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/tiny-%s.gguf", g_tmp, arch[i]);
        unlink(p);
    }
    return 0;
}

static const char *const MIX_TYPES[] = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S",
                                        "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
                                        "MXFP4_MOE"};
static const char *const MIX_MODELS[] = {"stories260K", "tiny-llama", "tiny-qwen2", "tiny-phi3", "tiny-gpt-oss"};

static void model_path(char *buf, size_t cap, const char *m) {
    if (!strcmp(m, "stories260K")) tu_path(buf, cap, "LLORCH_MODELS_DIR", "../shared/models", "stories260K.gguf");
    else snprintf(buf, cap, "%s/%s.gguf", g_tmp, m);
}

/* quantize --dry-run prints llama.cpp's table, in llama.cpp's order */
static void test_quantize_mix_matches_llamacpp(void **st) {
    (void)st;
    int checked = 0;
    for (size_t m = 0; m < sizeof MIX_MODELS / sizeof *MIX_MODELS; m++) {
        for (size_t t = 0; t < sizeof MIX_TYPES / sizeof *MIX_TYPES; t++) {
            char fx[600], name[128], path[600], err[512], *out;
            snprintf(name, sizeof name, "gguf/mix/%s.%s.tsv", MIX_MODELS[m], MIX_TYPES[t]);
            TU_FIXTURE(fx, name);
            model_path(path, sizeof path, MIX_MODELS[m]);
            char *want = read_text(fx);
            int rc = run(&out, err, sizeof err, "gguf quantize %s /dev/null %s --dry-run", path, MIX_TYPES[t]);
            if (rc) fail_msg("%s %s: exit %d: %s", MIX_MODELS[m], MIX_TYPES[t], rc, err);
            if (strcmp(out, want)) fail_msg("%s %s: table differs from llama.cpp's\n--- got\n%s", MIX_MODELS[m], MIX_TYPES[t], out);
            free(out);
            free(want);
            checked++;
        }
    }
    assert_int_equal(checked, 75);
}

/* make --dry-run: the same tensors and types (make writes in convert order) */
static void test_make_mix_matches_llamacpp(void **st) {
    (void)st;
    static const char *arch[] = {"llama", "qwen2", "phi3", "gpt-oss"};
    for (int a = 0; a < 4; a++) {
        for (size_t t = 0; t < sizeof MIX_TYPES / sizeof *MIX_TYPES; t++) {
            char fx[600], name[128], err[512], *out;
            snprintf(name, sizeof name, "gguf/mix/tiny-%s.%s.tsv", arch[a], MIX_TYPES[t]);
            TU_FIXTURE(fx, name);
            char *want = read_text(fx);
            int rc = run(&out, err, sizeof err, "gguf make --preset tiny --arch %s --layers 8 --type %s --dry-run",
                         arch[a], MIX_TYPES[t]);
            if (rc) fail_msg("make %s %s: exit %d: %s", arch[a], MIX_TYPES[t], rc, err);
            char *x = sorted_lines(out), *y = sorted_lines(want);
            if (strcmp(x, y)) fail_msg("make %s %s: table differs from llama.cpp's\n--- got\n%s", arch[a], MIX_TYPES[t], x);
            free(x), free(y), free(out), free(want);
        }
    }
}

/* The acceptance table: Qwen2.5-0.5B-Instruct Q4_K_M (291 tensors; 145 fall-backs) */
static void test_make_qwen05_q4km(void **st) {
    (void)st;
    char fx[600], err[512], *out;
    TU_FIXTURE(fx, "gguf/mix/qwen2.5-0.5b.Q4_K_M.tsv");
    char *want = read_text(fx);
    assert_int_equal(run(&out, err, sizeof err, "gguf make --preset qwen2.5-0.5b --type Q4_K_M --dry-run"), 0);
    char *x = sorted_lines(out), *y = sorted_lines(want);
    assert_string_equal(x, y);
    /* spot checks that say what the table means */
    assert_non_null(strstr(out, "token_embd.weight\tQ5_0\t896x151936\n"));
    assert_non_null(strstr(out, "output.weight\tQ8_0\t896x151936\n"));
    assert_non_null(strstr(out, "blk.0.ffn_down.weight\tQ6_K\t4864x896\n"));
    assert_non_null(strstr(out, "blk.3.ffn_down.weight\tQ4_K\t4864x896\n"));
    assert_non_null(strstr(out, "blk.5.attn_v.weight\tQ8_0\t896x128\n"));
    assert_non_null(strstr(out, "blk.4.attn_v.weight\tQ5_0\t896x128\n"));
    assert_non_null(strstr(out, "blk.23.attn_q.bias\tF32\t896\n"));
    free(x), free(y), free(out), free(want);
    /* --tied drops output.weight; token_embd then follows the output rule (Q8_0) */
    assert_int_equal(run(&out, err, sizeof err, "gguf make --preset qwen2.5-0.5b --type Q4_K_M --tied --dry-run"), 0);
    assert_null(strstr(out, "\noutput.weight\t"));
    assert_non_null(strstr(out, "token_embd.weight\tQ8_0\t896x151936\n"));
    free(out);
}

static uint64_t fnv(const uint8_t *p, uint64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* llorch's quantize of stories260K equals llama.cpp's, byte for byte */
static void test_quantize_bytes_match_llamacpp(void **st) {
    (void)st;
    char fx[600], src[600];
    TU_FIXTURE(fx, "gguf/stories260K.quant.fnv");
    model_path(src, sizeof src, "stories260K");
    char *want = read_text(fx);
    static const char *types[] = {"Q8_0", "Q5_0", "Q5_1", "Q4_0", "Q4_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"};
    int lines = 0;
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        char out[600], err[512];
        snprintf(out, sizeof out, "%s/st-%s.gguf", g_tmp, types[k]);
        int rc = run(NULL, err, sizeof err, "gguf quantize %s %s %s", src, out, types[k]);
        if (rc) fail_msg("quantize %s: %s", types[k], err);
        gguf_ctx *g;
        assert_int_equal(gguf_open(out, &g, err, sizeof err), 0);
        uint32_t ft;
        assert_int_equal(gguf_get_u32(g, "general.file_type", &ft), 0);
        assert_int_equal(gguf_n_tensors(g), 48);
        for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
            const gguf_tensor *t = gguf_tensor_at(g, i);
            char line[256];
            snprintf(line, sizeof line, "%s\t%s\t%s\t%016llx\n", types[k], t->name, gguf_type_name(t->type),
                     (unsigned long long)fnv(t->data, t->nbytes));
            if (!strstr(want, line)) fail_msg("%s: tensor differs from llama.cpp's: %s", types[k], line);
            lines++;
        }
        gguf_close(g);
        unlink(out);
    }
    assert_int_equal(lines, 480);
    free(want);
}

/* a round trip through the reader: stats of the generated weights */
static double tensor_std(const gguf_tensor *t, double *mean) {
    int64_t n = t->ne[0] * t->ne[1];
    float *f = malloc((size_t)n * sizeof *f);
    qt_dequant_row(t->type, t->data, f, n);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) s += f[i], s2 += (double)f[i] * f[i];
    free(f);
    *mean = s / (double)n;
    return sqrt(s2 / (double)n - *mean * *mean);
}

static void test_make_deterministic_and_scaled(void **st) {
    (void)st;
    char a[600], b[600], c[600], err[512];
    snprintf(a, sizeof a, "%s/det-a.gguf", g_tmp);
    snprintf(b, sizeof b, "%s/det-b.gguf", g_tmp);
    snprintf(c, sizeof c, "%s/det-c.gguf", g_tmp);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset tiny --type Q8_0 --seed 7 --threads 1 -o %s", a), 0);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset tiny --type Q8_0 --seed 7 --threads 3 -o %s", b), 0);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset tiny --type Q8_0 --seed 8 -o %s", c), 0);
    gguf_ctx *ga, *gb, *gc;
    assert_int_equal(gguf_open(a, &ga, err, sizeof err), 0);
    assert_int_equal(gguf_open(b, &gb, err, sizeof err), 0);
    assert_int_equal(gguf_open(c, &gc, err, sizeof err), 0);
    assert_int_equal(gguf_file_size(ga), gguf_file_size(gb));
    assert_memory_equal(gguf_base(ga), gguf_base(gb), gguf_file_size(ga));
    const gguf_tensor *ta = gguf_find_tensor(ga, "blk.0.attn_q.weight"), *tc = gguf_find_tensor(gc, "blk.0.attn_q.weight");
    assert_non_null(ta);
    assert_non_null(tc);
    assert_int_equal(ta->type, 8);
    assert_true(memcmp(ta->data, tc->data, ta->nbytes) != 0);
    /* the default tiny preset: llama, 4 layers, 256 wide, 512-token synthetic SPM vocab */
    gguf_str s;
    uint32_t u;
    assert_int_equal(gguf_get_str(ga, "general.architecture", &s), 0);
    assert_true(gguf_str_eq(s, "llama"));
    assert_int_equal(gguf_get_u32(ga, "general.file_type", &u), 0);
    assert_int_equal(u, 7); /* LLAMA_FTYPE_MOSTLY_Q8_0 */
    assert_int_equal(gguf_get_u32(ga, "llama.block_count", &u), 0);
    assert_int_equal(u, 4);
    assert_int_equal(gguf_get_u32(ga, "llama.attention.head_count_kv", &u), 0);
    assert_int_equal(u, 2);
    gguf_arr toks;
    assert_int_equal(gguf_get_arr(ga, "tokenizer.ggml.tokens", &toks), 0);
    assert_int_equal(toks.n, 512);
    assert_int_equal(gguf_arr_str(ga, &toks, 3, &s), 0);
    assert_true(gguf_str_eq(s, "<0x00>"));
    assert_int_equal(gguf_get_str(ga, "tokenizer.ggml.model", &s), 0);
    assert_true(gguf_str_eq(s, "llama"));
    /* scales: matrices N(0, 1/sqrt(n_in)), embeddings 2/sqrt(n_embd), norms 1 +- 0.1 */
    double mean, sd;
    sd = tensor_std(ta, &mean);
    assert_true(fabs(sd - 1.0 / 16) < 0.1 / 16 && fabs(mean) < 0.01);
    sd = tensor_std(gguf_find_tensor(ga, "blk.3.ffn_down.weight"), &mean);
    assert_true(fabs(sd - 1.0 / sqrt(768.0)) < 0.1 / sqrt(768.0));
    sd = tensor_std(gguf_find_tensor(ga, "token_embd.weight"), &mean);
    assert_true(fabs(sd - 0.125) < 0.0125);
    const gguf_tensor *nrm = gguf_find_tensor(ga, "blk.1.ffn_norm.weight");
    assert_int_equal(nrm->type, 0);
    double s1 = 0;
    for (int i = 0; i < 256; i++) s1 += ((const float *)nrm->data)[i];
    assert_true(fabs(s1 / 256 - 1.0) < 0.03);
    gguf_close(ga), gguf_close(gb), gguf_close(gc);
    unlink(a), unlink(b), unlink(c);
}

/* MXFP4 is llama.cpp's MXFP4_MOE: dense weights become Q8_0; --pure puts them in MXFP4 */
static void test_make_mxfp4(void **st) {
    (void)st;
    char err[512], *out;
    assert_int_equal(run(&out, err, sizeof err, "gguf make --preset tiny --type MXFP4 --dry-run"), 0);
    assert_non_null(strstr(out, "blk.0.attn_q.weight\tQ8_0\t256x256\n"));
    assert_non_null(strstr(out, "token_embd.weight\tQ8_0\t"));
    assert_null(strstr(out, "MXFP4"));
    free(out);
    assert_int_equal(run(&out, err, sizeof err, "gguf make --preset tiny --type MXFP4 --pure --dry-run"), 0);
    assert_non_null(strstr(out, "blk.0.attn_q.weight\tMXFP4\t256x256\n"));
    assert_non_null(strstr(out, "blk.3.ffn_down.weight\tMXFP4\t768x256\n"));
    assert_non_null(strstr(out, "output.weight\tMXFP4\t"));
    assert_non_null(strstr(out, "blk.0.attn_norm.weight\tF32\t256\n"));
    free(out);
    /* and the file is real: MXFP4 blocks of 17 bytes */
    char path[600];
    snprintf(path, sizeof path, "%s/mx.gguf", g_tmp);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset tiny --type MXFP4 --pure -o %s", path), 0);
    gguf_ctx *g;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    const gguf_tensor *t = gguf_find_tensor(g, "blk.0.ffn_up.weight");
    assert_int_equal(t->type, 39);
    assert_int_equal(t->nbytes, 768 * 256 / 32 * 17);
    double mean, sd = 0;
    int64_t n = t->ne[0] * t->ne[1];
    float *f = malloc((size_t)n * sizeof *f);
    qt_dequant_row(t->type, t->data, f, n);
    for (int64_t i = 0; i < n; i++) sd += (double)f[i] * f[i];
    mean = sqrt(sd / (double)n);
    assert_true(mean > 0.8 / 16 && mean < 1.2 / 16); /* N(0, 1/16) survives 4-bit */
    free(f);
    gguf_close(g);
    /* gpt-oss: experts are 3-D and go MXFP4 under llama.cpp's MXFP4_MOE rule */
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset tiny --arch gpt-oss --type MXFP4 -o %s", path), 0);
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    t = gguf_find_tensor(g, "blk.3.ffn_down_exps.weight");
    assert_non_null(t);
    assert_int_equal(t->type, 39);
    assert_int_equal(t->n_dims, 3);
    assert_int_equal(t->ne[2], 4);
    assert_int_equal(gguf_find_tensor(g, "blk.0.attn_q.weight")->type, 8);
    assert_int_equal(gguf_find_tensor(g, "blk.0.attn_sinks.weight")->ne[0], 4);
    assert_int_equal(gguf_find_tensor(g, "blk.0.ffn_up_exps.bias")->type, 0);
    uint32_t u;
    gguf_str s;
    assert_int_equal(gguf_get_u32(g, "gpt-oss.expert_count", &u), 0);
    assert_int_equal(u, 4);
    assert_int_equal(gguf_get_u32(g, "gpt-oss.expert_used_count", &u), 0);
    assert_int_equal(u, 2);
    assert_int_equal(gguf_get_u32(g, "gpt-oss.attention.sliding_window", &u), 0);
    assert_int_equal(u, 128);
    assert_int_equal(gguf_get_str(g, "gpt-oss.rope.scaling.type", &s), 0);
    assert_true(gguf_str_eq(s, "yarn"));
    gguf_close(g);
    unlink(path);
}

static void test_make_vocab_json(void **st) {
    (void)st;
    char tj[600], out[600], err[512];
    TU_FIXTURE(tj, "gguf/tok/tokenizer.json");
    snprintf(out, sizeof out, "%s/vj.gguf", g_tmp);
    int rc = run(NULL, err, sizeof err, "gguf make --preset tiny --arch qwen2 --vocab-json %s --n-vocab 12 --type F32 -o %s", tj, out);
    if (rc) fail_msg("%s", err);
    gguf_ctx *g;
    assert_int_equal(gguf_open(out, &g, err, sizeof err), 0);
    gguf_str s;
    gguf_arr toks, types, merges;
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.model", &s), 0);
    assert_true(gguf_str_eq(s, "gpt2"));
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.pre", &s), 0);
    assert_true(gguf_str_eq(s, "qwen2")); /* guessed from <|im_start|> */
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", &toks), 0);
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.token_type", &types), 0);
    assert_int_equal(toks.n, 12);
    static const char *want_tok[] = {"a", "b", "ab", "\xc4\xa0", ("\xc4\xa0" "a"), "[PAD5]", "<|endoftext|>",
                                     "<|im_start|>", "<tool call>", "[PAD9]", "[PAD10]", "[PAD11]"};
    static const int want_type[] = {1, 1, 1, 1, 1, 5, 3, 3, 4, 5, 5, 5};
    for (int i = 0; i < 12; i++) {
        int64_t ty;
        assert_int_equal(gguf_arr_str(g, &toks, (uint64_t)i, &s), 0);
        if (!gguf_str_eq(s, want_tok[i])) fail_msg("token %d: '%.*s'", i, (int)s.len, s.ptr);
        assert_int_equal(gguf_arr_i64(&types, (uint64_t)i, &ty), 0);
        assert_int_equal(ty, want_type[i]);
    }
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.merges", &merges), 0);
    assert_int_equal(merges.n, 2);
    assert_int_equal(gguf_arr_str(g, &merges, 0, &s), 0);
    assert_true(gguf_str_eq(s, "a b"));
    assert_int_equal(gguf_arr_str(g, &merges, 1, &s), 0);
    assert_true(gguf_str_eq(s, "\xc4\xa0 a"));
    uint32_t u;
    int b;
    assert_int_equal(gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u), 0);
    assert_int_equal(u, 6);
    assert_int_equal(gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &u), 0);
    assert_int_equal(u, 6);
    assert_int_equal(gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &u), 0);
    assert_int_equal(u, 6);
    assert_int_equal(gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(gguf_get_str(g, "tokenizer.chat_template", &s), 0);
    assert_true(gguf_str_eq(s, "{{ messages }}"));
    /* tiny qwen2: tied (no output.weight), QKV biases, n_vocab rows in token_embd */
    assert_null(gguf_find_tensor(g, "output.weight"));
    assert_non_null(gguf_find_tensor(g, "blk.3.attn_v.bias"));
    assert_int_equal(gguf_find_tensor(g, "token_embd.weight")->ne[1], 12);
    gguf_close(g);
    /* --pre overrides the guess; too small a --n-vocab is refused */
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset tiny --vocab-json %s --pre gpt-2 --type F32 -o %s", tj, out), 0);
    assert_int_equal(gguf_open(out, &g, err, sizeof err), 0);
    assert_int_equal(gguf_get_str(g, "tokenizer.ggml.pre", &s), 0);
    assert_true(gguf_str_eq(s, "gpt-2"));
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", &toks), 0);
    assert_int_equal(toks.n, 9);
    gguf_close(g);
    /* a tokenizer_config.json that does not parse is an error, not ignored */
    char dir[600], cmd[4096];
    snprintf(dir, sizeof dir, "%s/badcfg", g_tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp %s %s/ && printf '{\"eos_token\": ' > %s/tokenizer_config.json", dir, tj, dir, dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --vocab-json %s/tokenizer.json -o %s", dir, out), 1);
    assert_non_null(strstr(err, "tokenizer_config.json"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --vocab-json %s --n-vocab 8 -o %s", tj, out), 1);
    assert_non_null(strstr(err, "do not fit"));
    unlink(out);
}

static void test_make_vocab_from_gguf(void **st) {
    (void)st;
    char src[600], out[600], err[512];
    model_path(src, sizeof src, "stories260K");
    snprintf(out, sizeof out, "%s/vf.gguf", g_tmp);
    int rc = run(NULL, err, sizeof err, "gguf make --preset tiny --vocab-from %s --type Q4_K_M -o %s", src, out);
    if (rc) fail_msg("%s", err);
    gguf_ctx *g, *gs;
    assert_int_equal(gguf_open(out, &g, err, sizeof err), 0);
    assert_int_equal(gguf_open(src, &gs, err, sizeof err), 0);
    gguf_arr a, b;
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.tokens", &a), 0);
    assert_int_equal(gguf_get_arr(gs, "tokenizer.ggml.tokens", &b), 0);
    assert_int_equal(a.n, 512);
    assert_int_equal(a.nbytes, b.nbytes);
    assert_memory_equal(a.data, b.data, a.nbytes);
    assert_int_equal(gguf_get_arr(g, "tokenizer.ggml.scores", &a), 0);
    assert_int_equal(a.n, 512);
    assert_int_equal(gguf_find_tensor(g, "token_embd.weight")->ne[1], 512);
    assert_int_equal(gguf_find_tensor(g, "output.weight")->type, 14);  /* Q6_K */
    /* 4 layers: llama.cpp's use_more_bits picks layers 2 and 3 for Q6_K */
    assert_int_equal(gguf_find_tensor(g, "blk.0.ffn_down.weight")->type, 12); /* Q4_K */
    assert_int_equal(gguf_find_tensor(g, "blk.1.ffn_down.weight")->type, 12);
    assert_int_equal(gguf_find_tensor(g, "blk.2.ffn_down.weight")->type, 14);
    assert_int_equal(gguf_find_tensor(g, "blk.3.attn_v.weight")->type, 14);
    gguf_close(g);
    gguf_close(gs);
    /* a preset with a fixed vocabulary refuses a vocabulary of another size */
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset llama-2-7b --vocab-from %s --dry-run", src), 1);
    assert_non_null(strstr(err, "512 tokens"));
    unlink(out);
}

static void test_inspect_json(void **st) {
    (void)st;
    char path[600], err[512], *out;
    snprintf(path, sizeof path, "%s/tiny-qwen2.gguf", g_tmp);
    assert_int_equal(run(&out, err, sizeof err, "gguf inspect %s --json --ctx 1000", path), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j) fail_msg("inspect --json is not JSON: %s", je.text);
    gguf_ctx *g;
    assert_int_equal(gguf_open(path, &g, err, sizeof err), 0);
    uint64_t np = 0, wb = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        np += (uint64_t)(t->ne[0] * t->ne[1]);
        wb += t->nbytes;
    }
    assert_int_equal(json_integer_value(json_object_get(j, "n_params")), np);
    assert_string_equal(json_string_value(json_object_get(j, "file_type")), "F16");
    assert_string_equal(json_string_value(json_object_get(j, "architecture")), "qwen2");
    assert_int_equal(json_integer_value(json_object_get(j, "n_tensors")), gguf_n_tensors(g));
    json_t *mem = json_object_get(j, "memory");
    assert_int_equal(json_integer_value(json_object_get(mem, "weights_bytes")), wb);
    /* 2 (K,V) x 8 layers x 1000 ctx x 2 kv heads x 64 dim x 2 bytes */
    assert_int_equal(json_integer_value(json_object_get(mem, "kv_bytes")), 2 * 8 * 1000 * 2 * 64 * 2);
    /* batch 512: activations 4*512*(4*256 + 2*768), scores 4*4 heads*512*1000, logits 4*512 */
    assert_int_equal(json_integer_value(json_object_get(mem, "scratch_bytes")), 4 * 512 * (1024 + 1536) + 4 * 4 * 512 * 1000 + 4 * 512);
    assert_int_equal(json_integer_value(json_object_get(mem, "total_bytes")),
                     wb + 2 * 8 * 1000 * 2 * 64 * 2 + 4 * 512 * (1024 + 1536) + 4 * 4 * 512 * 1000 + 4 * 512);
    json_t *ts = json_object_get(j, "tensors");
    assert_int_equal(json_array_size(ts), (size_t)gguf_n_tensors(g));
    json_t *t0 = json_array_get(ts, 0);
    assert_string_equal(json_string_value(json_object_get(t0, "name")), "token_embd.weight");
    assert_int_equal(json_integer_value(json_array_get(json_object_get(t0, "shape"), 1)), 512);
    json_t *md = json_object_get(j, "metadata");
    assert_int_equal(json_integer_value(json_object_get(md, "qwen2.block_count")), 8);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(md, "tokenizer.ggml.tokens"), "n")), 512);
    json_decref(j);
    free(out);
    gguf_close(g);
    /* text mode names the file type and the tensor table */
    assert_int_equal(run(&out, err, sizeof err, "gguf inspect %s", path), 0);
    assert_non_null(strstr(out, "file type   F16"));
    assert_non_null(strstr(out, "blk.7.ffn_down.weight"));
    free(out);
}

static void test_cli_errors(void **st) {
    (void)st;
    char err[1024], path[600], bad[600];
    assert_int_equal(run(NULL, err, sizeof err, "gguf"), 2);
    assert_int_equal(run(NULL, err, sizeof err, "gguf frob"), 2);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --type NOPE -o /tmp/x.gguf"), 2);
    assert_non_null(strstr(err, "NOPE"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset huge -o /tmp/x.gguf"), 2);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset llama-2-7b --arch qwen2 --dry-run"), 2);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset tiny"), 2); /* no -o */
    /* integer flags: range-checked as longs, never truncated to int (2^32 + 1 would be 1) */
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset gpt-oss-20b --swa 4294967297 --dry-run"), 2);
    assert_non_null(strstr(err, "--swa '4294967297': not an integer in 1..2147483647"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --threads 4294967297 --dry-run"), 2);
    assert_non_null(strstr(err, "--threads '4294967297'"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --layers 4294967297 --dry-run"), 2);
    assert_non_null(strstr(err, "--layers '4294967297': not an integer in 1..512"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --n-ctx 99999999999999999999 --dry-run"), 2);
    assert_non_null(strstr(err, "--n-ctx"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --swa 0 --dry-run"), 2);
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --seed -1 --dry-run"), 2);
    assert_non_null(strstr(err, "--seed '-1'"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf quantize a.gguf b.gguf Q8_0 --threads 4294967297"), 2);
    assert_non_null(strstr(err, "llorch gguf quantize: --threads '4294967297'"));
    char *dry = NULL; /* in range: accepted */
    assert_int_equal(
        run(&dry, err, sizeof err, "gguf make --preset gpt-oss-20b --layers 2 --swa 64 --threads 2 --dry-run"), 0);
    free(dry);
    assert_int_equal(run(NULL, err, sizeof err, "gguf quantize a.gguf b.gguf"), 2);
    assert_int_equal(run(NULL, err, sizeof err, "gguf quantize a.gguf b.gguf Q9_9"), 2);
    assert_int_equal(run(NULL, err, sizeof err, "gguf inspect"), 2);
    assert_int_equal(run(NULL, err, sizeof err, "gguf inspect /nonexistent/m.gguf"), 1);
    assert_non_null(strstr(err, "/nonexistent/m.gguf"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --vocab-json /nonexistent/tokenizer.json -o /tmp/x.gguf"), 1);
    assert_non_null(strstr(err, "tokenizer.json"));
    /* a truncated model: refused by inspect and quantize with the reader's message */
    snprintf(path, sizeof path, "%s/tiny-llama.gguf", g_tmp);
    snprintf(bad, sizeof bad, "%s/trunc.gguf", g_tmp);
    FILE *in = fopen(path, "rb"), *o = fopen(bad, "wb");
    char buf[4096];
    for (int i = 0; i < 300; i++) assert_int_equal(fread(buf, 1, sizeof buf, in), sizeof buf), fwrite(buf, 1, sizeof buf, o);
    fclose(in), fclose(o);
    assert_int_equal(run(NULL, err, sizeof err, "gguf inspect %s", bad), 1);
    assert_non_null(strstr(err, "past"));
    assert_int_equal(run(NULL, err, sizeof err, "gguf quantize %s %s.out Q8_0", bad, bad), 1);
    unlink(bad);
    /* an unwritable output */
    assert_int_equal(run(NULL, err, sizeof err, "gguf make --preset tiny -o /nonexistent/dir/x.gguf"), 1);
    assert_non_null(strstr(err, "cannot create"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantize_mix_matches_llamacpp), cmocka_unit_test(test_make_mix_matches_llamacpp),
        cmocka_unit_test(test_make_qwen05_q4km),              cmocka_unit_test(test_quantize_bytes_match_llamacpp),
        cmocka_unit_test(test_make_deterministic_and_scaled), cmocka_unit_test(test_make_mxfp4),
        cmocka_unit_test(test_make_vocab_json),
        cmocka_unit_test(test_make_vocab_from_gguf),          cmocka_unit_test(test_inspect_json),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
