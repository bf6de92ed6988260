/* test_tokenizer_fixture — compares our tokenizer against a committed
 * llama.cpp reference file written by tools/ref/ref_tokenize.mjs (format
 * described there). Every case is checked four ways for ids (add_special x
 * parse_special) and twice for detokenization; the EOG set is compared token
 * by token. Mismatches are printed (first few in full) and fail the test.
 */
#ifndef TEST_TOKENIZER_FIXTURE_H
#define TEST_TOKENIZER_FIXTURE_H

#include <jansson.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "testutil.h"

static tok_vocab *tf_load(const char *path) {
    char err[256] = "";
    gguf_ctx *g = NULL;
    if (gguf_open(path, &g, err, sizeof err) != 0) fail_msg("gguf_open %s: %s", path, err);
    tok_vocab *v = NULL;
    int rc = tok_load_gguf(g, &v, err, sizeof err);
    gguf_close(g);
    if (rc != 0) fail_msg("tok_load_gguf %s: %s", path, err);
    return v;
}

static void tf_print_ids(const char *what, const int32_t *ids, int n) {
    fprintf(stderr, "    %-9s (%d):", what, n);
    for (int i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

/* returns 1 when ids equal the JSON array */
static int tf_ids_match(json_t *arr, const int32_t *ids, int n) {
    if (!json_is_array(arr) || (int)json_array_size(arr) != n) return 0;
    for (int i = 0; i < n; i++)
        if (json_integer_value(json_array_get(arr, (size_t)i)) != ids[i]) return 0;
    return 1;
}

static void tf_json_ids(json_t *arr, int32_t *out, int *n) {
    *n = (int)json_array_size(arr);
    for (int i = 0; i < *n; i++) out[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
}

/* prints case c's expected ids (the JSON array exp, read into ref) and ours */
static inline void tf_print_mismatch(const char *fixture, size_t c, const char *mode, const char *text, json_t *exp,
                                     int32_t *ref, const char *who, const int32_t *ids, int n) {
    fprintf(stderr, "MISMATCH %s case %zu %s: \"%s\"\n", fixture, c, mode, text);
    int rn;
    tf_json_ids(exp, ref, &rn);
    tf_print_ids(who, ref, rn);
    tf_print_ids("ours", ids, n);
}

struct tf_stats {
    int cases, id_checks, decode_checks, roundtrips, failures;
};

static struct tf_stats tf_run(tok_vocab *v, const char *fixture_path) {
    struct tf_stats st = {0};
    json_error_t jerr;
    json_t *root = json_load_file(fixture_path, JSON_ALLOW_NUL, &jerr);
    if (!root) fail_msg("fixture %s: %s (line %d)", fixture_path, jerr.text, jerr.line);

    /* vocab-level facts */
    assert_int_equal(tok_n_vocab(v), json_integer_value(json_object_get(root, "n_vocab")));
    json_t *jb = json_object_get(root, "bos"), *je = json_object_get(root, "eos");
    assert_int_equal(tok_bos(v), json_is_integer(jb) ? json_integer_value(jb) : -1);
    assert_int_equal(tok_eos(v), json_is_integer(je) ? json_integer_value(je) : -1);
    assert_int_equal(tok_add_bos(v), json_is_true(json_object_get(root, "add_bos")));
    assert_int_equal(tok_add_eos(v), json_is_true(json_object_get(root, "add_eos")));
    json_t *eog = json_object_get(root, "eog");
    int n_eog = 0;
    for (int32_t t = 0; t < tok_n_vocab(v); t++) n_eog += tok_is_eog(v, t);
    assert_int_equal(n_eog, (int)json_array_size(eog));
    for (size_t i = 0; i < json_array_size(eog); i++)
        assert_true(tok_is_eog(v, (int32_t)json_integer_value(json_array_get(eog, i))));

    const int cap = 1 << 16;
    int32_t *ids = malloc(sizeof(int32_t) * cap), *ref = malloc(sizeof(int32_t) * cap);
    char *text = malloc(1 << 20);
    json_t *cases = json_object_get(root, "cases");
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *jc = json_array_get(cases, c);
        const char *s = json_string_value(json_object_get(jc, "text"));
        size_t sl = json_string_length(json_object_get(jc, "text"));
        st.cases++;
        static const struct {
            const char *key;
            int add_special, parse_special;
        } modes[] = {{"plain", 0, 0}, {"special", 0, 1}, {"plain_bos", 1, 0}, {"special_bos", 1, 1}};
        if (!json_is_array(json_object_get(jc, "plain"))) fail_msg("%s case %zu: no \"plain\" ids", fixture_path, c);
        for (size_t m = 0; m < 4; m++) {
            json_t *exp = json_object_get(jc, modes[m].key);
            if (!exp) continue; /* --plain-only fixtures carry "plain" alone */
            int n = tok_encode(v, s, sl, modes[m].add_special, modes[m].parse_special, ids, cap);
            st.id_checks++;
            if (n < 0 || !tf_ids_match(exp, ids, n)) {
                if (st.failures++ < 8) tf_print_mismatch(fixture_path, c, modes[m].key, s, exp, ref, "llama.cpp", ids, n);
            }
        }
        static const struct {
            const char *ids_key, *text_key;
            int render;
        } dec[] = {{"plain", "decode_plain", 0}, {"special", "decode_special", 1}};
        for (size_t d = 0; d < 2; d++) {
            int rn;
            json_t *jt = json_object_get(jc, dec[d].text_key);
            if (!jt) continue;
            tf_json_ids(json_object_get(jc, dec[d].ids_key), ref, &rn);
            const char *want = json_string_value(jt);
            size_t wl = json_string_length(jt);
            int n = tok_decode(v, ref, rn, dec[d].render, text, 1 << 20);
            st.decode_checks++;
            if (n < 0 || (size_t)n != wl || memcmp(text, want, wl) != 0) {
                if (st.failures++ < 8)
                    fprintf(stderr, "DECODE MISMATCH %s case %zu %s:\n    llama.cpp: \"%s\"\n    ours     : \"%.*s\"\n",
                            fixture_path, c, dec[d].text_key, want, n < 0 ? 0 : n, text);
            } else if (wl == sl && memcmp(want, s, sl) == 0) {
                st.roundtrips++; /* llama.cpp round-trips this string, and so do we */
            }
        }
    }
    fprintf(stderr, "%s: %d cases, %d id checks, %d decode checks (%d exact round trips), %d failures\n",
            fixture_path, st.cases, st.id_checks, st.decode_checks, st.roundtrips, st.failures);
    free(ids);
    free(ref);
    free(text);
    json_decref(root);
    return st;
}

/* the three reference files of one vocabulary: tokenizer/<name>.json (the
 * hand-picked cases, at least 40), <name>_random.json (150) and
 * <name>_long.json (12, up to 4.5 KB: ties at scale); no case may fail */
static inline void tf_run_all(tok_vocab *v, const char *name) {
    static const struct { const char *suffix; int cases; } set[] = { { "", 40 }, { "_random", 150 }, { "_long", 12 } };
    for (int i = 0; i < 3; i++) {
        char rel[256], f[1024];
        snprintf(rel, sizeof rel, "tokenizer/%s%s.json", name, set[i].suffix);
        struct tf_stats s = tf_run(v, TU_FIXTURE(f, rel));
        if (i == 0) assert_true(s.cases >= set[i].cases);
        else assert_int_equal(s.cases, set[i].cases);
        assert_int_equal(s.failures, 0);
    }
}

/* ---- speed: CPU time of this process (the CI machine is shared, wall time is not ours) ---- */
static inline uint64_t tf_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
/* the CPU time of one tok_encode of text[n] into ids[cap], with both
 * add_special and parse_special set to special; fails unless it gives more
 * than min_ids ids */
static inline uint64_t tf_encode_ns(tok_vocab *v, const char *text, size_t n, int special, int32_t *ids, int cap,
                                    int min_ids) {
    uint64_t t0 = tf_cpu_ns();
    int k = tok_encode(v, text, n, special, special, ids, cap);
    uint64_t dt = tf_cpu_ns() - t0;
    assert_true(k > min_ids);
    return dt;
}
/* the least of reps such times */
static inline uint64_t tf_encode_best_ns(tok_vocab *v, const char *text, size_t n, int special, int32_t *ids, int cap,
                                         int min_ids, int reps) {
    uint64_t best = UINT64_MAX;
    for (int r = 0; r < reps; r++) {
        uint64_t dt = tf_encode_ns(v, text, n, special, ids, cap, min_ids);
        if (dt < best) best = dt;
    }
    return best;
}
/* n bytes of prose (English, a dash, digits, CJK, an emoji, then special
 * and a newline), repeated, the rest filled with 'a' */
static inline void tf_make_prompt(char *buf, size_t n, const char *special) {
    char para[512];
    snprintf(para, sizeof para, "%s%s\n",
             "Once upon a time, in a village by the sea, there lived an old fisherman named Tomas. "
             "Every morning he rowed out past the rocks \xe2\x80\x94 rain or shine \xe2\x80\x94 and "
             "counted 1234 waves. \xe4\xbd\xa0\xe5\xa5\xbd! \xf0\x9f\x8c\x8a",
             special);
    size_t pl = strlen(para), w = 0;
    while (w + pl < n) memcpy(buf + w, para, pl), w += pl;
    memset(buf + w, 'a', n - w);
}

/* Generates (or reuses, when newer than both inputs) a tiny qwen2-shaped
 * GGUF carrying the vocabulary of tools/ref/node_modules/<json_rel> with the
 * built llorch, into the build dir as out_name; the path goes to out. Its
 * weights are all Q4_0 (only the vocabulary is tested; 150-200k embedding rows
 * in F16 made these files 80-120 MB each, in Q4_0 ~25-30).
 * Returns 0, TF_NO_JSON when the tokenizer.json is absent, -1 on other failure
 * (message printed). */
#define TF_NO_JSON 1
static inline time_t tf_mtime(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? st.st_mtime : 0;
}
static inline int tf_make_gguf(const char *json_rel, const char *out_name, char *out, size_t outcap) {
    char json[1024], llorch[1024], cmd[4096];
    snprintf(json, sizeof json, "%s/tools/ref/node_modules/%s", tu_env("LLORCH_SRC_DIR", "."), json_rel);
    TU_BUILD(llorch, "llorch");
    tu_path(out, outcap, "LLORCH_BUILD_DIR", "build", out_name);
    if (access(json, R_OK) != 0) {
        fprintf(stderr, "the vocabulary %s is missing\n", json);
        return TF_NO_JSON;
    }
    if (access(llorch, X_OK) != 0) {
        fprintf(stderr, "FAIL: %s is missing: build the llorch target first\n", llorch);
        return -1;
    }
    time_t have = tf_mtime(out);
    if (have && have >= tf_mtime(json) && have >= tf_mtime(llorch)) return 0;
    /* several tests share one file and CTest runs them in parallel: write a
     * file of this process's own, then rename it into place (atomic), so no
     * test ever reads a half-written GGUF */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", out, (long)getpid());
    snprintf(cmd, sizeof cmd,
             "'%s' gguf make --preset tiny --arch qwen2 --vocab-json '%s' --type Q4_0 --pure -o '%s' >/dev/null", llorch,
             json, tmp);
    if (system(cmd) != 0 || rename(tmp, out) != 0) {
        fprintf(stderr, "FAIL: could not generate the GGUF: %s\n", cmd);
        unlink(tmp);
        return -1;
    }
    return 0;
}

#endif
