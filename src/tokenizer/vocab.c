/* vocab — loads a tokenizer from GGUF metadata (tokenizer.ggml.*) the way
 * llama.cpp's llama_vocab::impl::load does, validating every length: the file
 * is hostile. Also the O(1) lookups (text -> id, merge pair -> rank) and the
 * small accessors of tokenizer.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <stdio.h>

#include "common/util.h"
#include "tokenizer/pretok.h"
#include "tokenizer/tok_internal.h"

#define TOK_MAX_TOKENS (1 << 24)       /* ids are int32; real vocabs are <= 262k */
#define TOK_MAX_TOKEN_BYTES (1 << 16)  /* one token's text */
#define TOK_MAX_POOL ((size_t)1 << 30) /* all texts together */

/* ---- hash tables ------------------------------------------------------------ */

static uint32_t pow2_slots(uint64_t n) {
    uint64_t s = 16;
    while (s < n * 2) s <<= 1;
    return (uint32_t)s;
}

int32_t tok_lookup(const tok_vocab *v, const char *s, size_t n) {
    if (n > v->max_len) return -1;
    uint64_t h = tok_hash_bytes(TOK_HASH_SEED, s, n);
    for (uint32_t i = (uint32_t)h & v->tmask;; i = (i + 1) & v->tmask) {
        uint32_t e = v->tmap[i];
        if (!e) return -1;
        int32_t id = (int32_t)(e - 1);
        if (v->len[id] == n && memcmp(v->pool + v->off[id], s, n) == 0) return id;
    }
}

static uint64_t merge_hash(const char *s, size_t n, size_t split) {
    uint64_t h = tok_hash_bytes(TOK_HASH_SEED, s, n);
    h ^= (uint64_t)split * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

int32_t tok_merge_rank(const tok_vocab *v, const char *s, size_t n, size_t split) {
    if (!v->mmap || n > v->max_merge_len) return -1;
    uint64_t h = merge_hash(s, n, split);
    for (uint32_t i = (uint32_t)h & v->mmask;; i = (i + 1) & v->mmask) {
        uint32_t e = v->mmap[i];
        if (!e) return -1;
        const struct tok_merge *m = &v->merges[e - 1];
        if (m->len == n && m->split == split && memcmp(v->merge_pool + m->off, s, n) == 0) return m->rank;
    }
}

/* ---- load helpers ------------------------------------------------------------ */

static int key_str(const gguf_ctx *g, const char *key, gguf_str *out, int required, char *err, size_t errlen) {
    int rc = gguf_get_str(g, key, out);
    if (rc == -ENOENT && !required) return 1;
    if (rc == -ENOENT) return util_fail(err, errlen, -EINVAL, "tokenizer: missing key %s", key);
    if (rc) return util_fail(err, errlen, -EINVAL, "tokenizer: %s is not a string", key);
    return 0;
}

static void key_bool(const gguf_ctx *g, const char *key, int *val) {
    int b;
    if (gguf_get_bool(g, key, &b) == 0) *val = b ? 1 : 0;
}

/* special id keys: a present, in-range value replaces the default; an
 * out-of-range value keeps the default (llama.cpp warns and does the same) */
static void key_id(const gguf_ctx *g, const char *key, int32_t *id, int32_t n) {
    if (*id >= n) *id = -1;
    uint32_t u;
    if (gguf_get_u32(g, key, &u) == 0 && u < (uint32_t)n) *id = (int32_t)u;
}

static int streq(const tok_vocab *v, int32_t id, const char *s) {
    size_t n = strlen(s);
    return v->len[id] == n && memcmp(tok_txt(v, id), s, n) == 0;
}

/* every name the text-based detection looks for starts with one of these
 * bytes and is at most 40 bytes long: a cheap filter before the comparisons */
static int maybe_named(const tok_vocab *v, int32_t id) {
    unsigned c = (unsigned char)tok_txt(v, id)[0];
    return v->len[id] <= 40 && (c == '<' || c == '[' || c == '_' || c == 0xE2);
}

static int is_one_of(const tok_vocab *v, int32_t id, const char *const *list) {
    for (; *list; list++)
        if (streq(v, id, *list)) return 1;
    return 0;
}

/* llama.cpp's pre-tokenizer name table, for the names our pre-tokenizers
 * implement: the flags each name sets (ignore_merges, add_bos default,
 * clean_spaces) */
struct pre_name {
    const char *name;
    int ignore_merges, add_bos, clean_spaces;
};
static const struct pre_name k_pre_names[] = {
    {"default", 0, 0, 1},   {"gpt-2", 0, 0, 1},       {"phi-2", 0, 0, 1},     {"llama3", 1, 1, 1},
    {"llama-v3", 1, 1, 1},  {"llama-bpe", 1, 1, 1},   {"falcon3", 1, 1, 1},   {"falcon-h1", 1, 1, 1},
    {"pixtral", 1, 1, 1},   {"midm-2.0", 1, 1, 1},    {"lfm2", 1, 1, 1},      {"qwen2", 0, 0, 0},
    {"deepseek-r1-qwen", 0, 0, 0}, {"megrez", 0, 0, 1}, {"gpt-4o", 0, 0, 0},  {"llama4", 0, 0, 0},
    {"jina-v5-nano", 1, 1, 1}, {"kormo", 0, 0, 0},  {"f2llmv2", 0, 0, 0},    {"kanana2", 0, 0, 0},
    {"talkie", 0, 0, 0},    {"gigachat", 0, 0, 1},    {"a.x-4.0", 0, 0, 1},   {"mellum", 0, 0, 1},
    {"jina-es", 0, 0, 1},   {"jina-de", 0, 0, 1},     {"exaone4", 0, 0, 1},   {"mpt", 0, 0, 1},
    {"olmo", 0, 0, 1},      {"jais", 0, 0, 1},        {"dbrx", 0, 0, 1},      {"smaug-bpe", 0, 0, 1},
    {"stablelm2", 0, 0, 1}, {"glm4", 0, 0, 1},        {"chatglm-bpe", 0, 0, 1}, {"trillion", 0, 0, 0},
    {"granite-docling", 0, 0, 0}, {"hunyuan", 0, 0, 0}, {"grok-2", 0, 0, 0}, {"minimax-m2", 0, 0, 0},
    {"solar-open", 0, 0, 0},
};

/* ---- load -------------------------------------------------------------------- */

static int load_pre(tok_vocab *v, const gguf_ctx *g, char *err, size_t errlen) {
    gguf_str pre;
    int rc = key_str(g, "tokenizer.ggml.pre", &pre, 0, err, errlen);
    if (rc < 0) return rc;
    v->clean_spaces = 1;
    if (rc == 1 || pre.len == 0) { /* llama.cpp: missing -> "default" (with a loud warning) */
#ifdef TOK_PRE_LLAMA_DEFAULT
        v->pre = TOK_PRE_LLAMA_DEFAULT; /* llama.cpp's own four-regex chain, not GPT-2 */
#else
        v->pre = TOK_PRE_DEFAULT;
#endif
        return 0;
    }
    char name[64];
    if (pre.len >= sizeof name)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.pre is too long (%llu bytes)",
                         (unsigned long long)pre.len);
    gguf_str_copy(pre, name, sizeof name);
    int p = tok_pre_parse(pre.ptr, (size_t)pre.len);
    const struct pre_name *pn = NULL;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(k_pre_names); i++)
        if (strcmp(k_pre_names[i].name, name) == 0) pn = &k_pre_names[i];
    if (p < 0 || !pn)
        return util_fail(err, errlen, -EINVAL, "tokenizer: unsupported pre-tokenizer '%s' (tokenizer.ggml.pre)", name);
#ifdef TOK_PRE_O200K_LLAMACPP
    /* ids must diff against llama.cpp, which runs its rewrite of the o200k
     * regex (combining marks are not word characters there) */
    if (p == TOK_PRE_O200K) p = (int)TOK_PRE_O200K_LLAMACPP;
#endif
    v->pre = (enum tok_pre)p;
    if (!strcmp(name, "glm4") || !strcmp(name, "chatglm-bpe")) v->bos = -1; /* llama.cpp: no default BOS */
    v->ignore_merges = pn->ignore_merges;
    v->add_bos = pn->add_bos;
    v->clean_spaces = pn->clean_spaces;
    return 0;
}

static int load_tokens(tok_vocab *v, const gguf_ctx *g, char *err, size_t errlen) {
    gguf_arr toks;
    int rc = gguf_get_arr(g, "tokenizer.ggml.tokens", &toks);
    if (rc == -ENOENT) return util_fail(err, errlen, -EINVAL, "tokenizer: missing key tokenizer.ggml.tokens");
    if (rc || toks.type != GGUF_T_STRING)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.tokens is not an array of strings");
    if (toks.n == 0 || toks.n > TOK_MAX_TOKENS)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.tokens has %llu entries (1..%d allowed)",
                         (unsigned long long)toks.n, TOK_MAX_TOKENS);
    int32_t n = (int32_t)toks.n;
    v->n = n;

    gguf_arr scores = {0}, types = {0};
    int has_scores = gguf_get_arr(g, "tokenizer.ggml.scores", &scores) == 0;
    if (!has_scores && gguf_find_key(g, "tokenizer.ggml.scores") >= 0)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.scores is not an array");
    if (has_scores && (scores.type != GGUF_T_F32 && scores.type != GGUF_T_I32))
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.scores must be f32 or i32, is %s",
                         gguf_vtype_name(scores.type));
    if (has_scores && scores.n < toks.n)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.scores has %llu entries for %d tokens",
                         (unsigned long long)scores.n, n);
    int has_types = gguf_get_arr(g, "tokenizer.ggml.token_type", &types) == 0;
    if (!has_types && gguf_find_key(g, "tokenizer.ggml.token_type") >= 0)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.token_type is not an array");
    if (has_types && types.type != GGUF_T_I32)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.token_type must be i32, is %s",
                         gguf_vtype_name(types.type));
    if (has_types && types.n < toks.n)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.token_type has %llu entries for %d tokens",
                         (unsigned long long)types.n, n);

    /* sizes first, then one pool */
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        gguf_str s;
        if (gguf_arr_str(g, &toks, (uint64_t)i, &s))
            return util_fail(err, errlen, -EINVAL, "tokenizer: token %d unreadable", i);
        if (s.len > TOK_MAX_TOKEN_BYTES)
            return util_fail(err, errlen, -EINVAL, "tokenizer: token %d is %llu bytes (max %d)", i,
                             (unsigned long long)s.len, TOK_MAX_TOKEN_BYTES);
        total += (s.len ? (size_t)s.len : 24) + 1;
        if (total > TOK_MAX_POOL) return util_fail(err, errlen, -EINVAL, "tokenizer: token texts exceed 1 GiB");
    }
    v->pool = malloc(total);
    v->off = malloc(sizeof(uint32_t) * (size_t)n);
    v->len = malloc(sizeof(uint32_t) * (size_t)n);
    v->score = malloc(sizeof(float) * (size_t)n);
    v->attr = malloc(sizeof(uint16_t) * (size_t)n);
    v->flags = calloc((size_t)n, 1);
    if (!v->pool || !v->off || !v->len || !v->score || !v->attr || !v->flags)
        return util_fail(err, errlen, -ENOMEM, "tokenizer: out of memory for %d tokens", n);

    size_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        gguf_str s;
        gguf_arr_str(g, &toks, (uint64_t)i, &s);
        v->off[i] = (uint32_t)at;
        if (s.len == 0) { /* llama.cpp renames empty tokens */
            int k = snprintf(v->pool + at, 24, "[EMPTY_%d]", i);
            v->len[i] = (uint32_t)k;
        } else {
            memcpy(v->pool + at, s.ptr, (size_t)s.len);
            v->len[i] = (uint32_t)s.len;
        }
        v->pool[at + v->len[i]] = 0;
        at += v->len[i] + 1;
        if (v->len[i] > v->max_len) v->max_len = v->len[i];

        float sc = 0.0f;
        if (has_scores) {
            if (scores.type == GGUF_T_F32) {
                gguf_arr_f32(&scores, (uint64_t)i, &sc);
            } else {
                int64_t iv = 0;
                gguf_arr_i64(&scores, (uint64_t)i, &iv);
                sc = (float)iv;
            }
        }
        v->score[i] = sc;

        uint16_t a = TOK_ATTR_NORMAL;
        if (has_types) {
            int64_t t = 0;
            gguf_arr_i64(&types, (uint64_t)i, &t);
            switch (t) { /* GGUF token types: 1 normal 2 unknown 3 control 4 user 5 unused 6 byte */
            case 1: a = TOK_ATTR_NORMAL; break;
            case 2: a = TOK_ATTR_UNKNOWN; break;
            case 3: a = TOK_ATTR_CONTROL; break;
            case 4: a = TOK_ATTR_USER_DEFINED; break;
            case 5: a = TOK_ATTR_UNUSED; break;
            case 6: a = TOK_ATTR_BYTE; break;
            default: a = 0; break; /* undefined: renders as nothing */
            }
        }
        v->attr[i] = a;
    }

    return tok_vocab_index_tokens(v, err, errlen);
}

int tok_vocab_index_tokens(tok_vocab *v, char *err, size_t errlen) {
    int32_t n = v->n;
    uint32_t slots = pow2_slots((uint64_t)n);
    v->tmap = calloc(slots, sizeof(uint32_t));
    if (!v->tmap) return util_fail(err, errlen, -ENOMEM, "tokenizer: out of memory (token map)");
    v->tmask = slots - 1;
    uint64_t *hs = malloc(sizeof(uint64_t) * (size_t)n);
    if (!hs) return util_fail(err, errlen, -ENOMEM, "tokenizer: out of memory (token map)");
    for (int32_t i = 0; i < n; i++) hs[i] = tok_hash_bytes(TOK_HASH_SEED, tok_txt(v, i), v->len[i]);
    for (int32_t i = 0; i < n; i++) {
        if (i + 8 < n) __builtin_prefetch(&v->tmap[(uint32_t)hs[i + 8] & v->tmask]); /* see load_merges */
        const char *t = tok_txt(v, i);
        uint32_t j = (uint32_t)hs[i] & v->tmask;
        for (;; j = (j + 1) & v->tmask) {
            uint32_t e = v->tmap[j];
            if (!e) break;
            int32_t o = (int32_t)(e - 1);
            if (v->len[o] == v->len[i] && memcmp(tok_txt(v, o), t, v->len[i]) == 0) {
                free(hs);
                /* llama.cpp asserts the same (id_to_token.size() == token_to_id.size()) */
                return util_fail(err, errlen, -EINVAL, "tokenizer: tokens %d and %d have the same text", o, i);
            }
        }
        v->tmap[j] = (uint32_t)i + 1;
    }
    free(hs);
    return 0;
}

static int load_merges(tok_vocab *v, const gguf_ctx *g, char *err, size_t errlen) {
    gguf_arr m;
    int rc = gguf_get_arr(g, "tokenizer.ggml.merges", &m);
    if (rc == -ENOENT) return util_fail(err, errlen, -EINVAL, "tokenizer: BPE vocabulary without tokenizer.ggml.merges");
    if (rc || m.type != GGUF_T_STRING)
        return util_fail(err, errlen, -EINVAL, "tokenizer: tokenizer.ggml.merges is not an array of strings");
    if (m.n > TOK_MAX_TOKENS)
        return util_fail(err, errlen, -EINVAL, "tokenizer: %llu merges (max %d)", (unsigned long long)m.n, TOK_MAX_TOKENS);
    int32_t n = (int32_t)m.n;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        gguf_str s;
        if (gguf_arr_str(g, &m, (uint64_t)i, &s)) return util_fail(err, errlen, -EINVAL, "tokenizer: merge %d unreadable", i);
        if (s.len > 2 * TOK_MAX_TOKEN_BYTES)
            return util_fail(err, errlen, -EINVAL, "tokenizer: merge %d is %llu bytes", i, (unsigned long long)s.len);
        total += (size_t)s.len;
        if (total > TOK_MAX_POOL) return util_fail(err, errlen, -EINVAL, "tokenizer: merges exceed 1 GiB");
    }
    v->merges = malloc(sizeof(struct tok_merge) * (size_t)(n ? n : 1));
    v->merge_pool = malloc(total ? total : 1);
    if (!v->merges || !v->merge_pool) return util_fail(err, errlen, -ENOMEM, "tokenizer: out of memory (merges)");
    /* split and copy every merge, then index them (tok_vocab_index_merges) */
    size_t at = 0;
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        gguf_str s;
        gguf_arr_str(g, &m, (uint64_t)i, &s);
        /* "first second": the first space at index >= 1 splits (llama.cpp: find(' ', 1));
         * entries without one are unusable pairs ("" , "") and are dropped */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp) continue;
        size_t split = (size_t)(sp - s.ptr);
        size_t rlen = (size_t)s.len - split - 1;
        struct tok_merge *me = &v->merges[k];
        me->off = (uint32_t)at;
        me->len = (uint32_t)(split + rlen);
        me->split = (uint32_t)split;
        me->rank = i;
        memcpy(v->merge_pool + at, s.ptr, split);
        memcpy(v->merge_pool + at + split, sp + 1, rlen);
        at += me->len;
        k++;
    }
    v->n_merges = k;
    return tok_vocab_index_merges(v) < 0 ? util_fail(err, errlen, -ENOMEM, "tokenizer: out of memory (merges)") : 0;
}

int tok_vocab_index_merges(tok_vocab *v) {
    int32_t k = v->n_merges;
    uint32_t slots = pow2_slots((uint64_t)k);
    free(v->mmap);
    v->mmap = calloc(slots, sizeof(uint32_t));
    uint64_t *hs = malloc(sizeof(uint64_t) * (size_t)(k ? k : 1));
    if (!v->mmap || !hs) {
        free(hs);
        return -ENOMEM;
    }
    v->mmask = slots - 1;
    for (int32_t i = 0; i < k; i++) {
        const struct tok_merge *me = &v->merges[i];
        hs[i] = merge_hash(v->merge_pool + me->off, me->len, me->split);
    }
    /* insert in rank order; the slot a few entries ahead is prefetched
     * (the table is bigger than the caches: each insert is otherwise a miss) */
    int ndup = 0;
    for (int32_t i = 0; i < k; i++) {
        if (i + 8 < k) __builtin_prefetch(&v->mmap[(uint32_t)hs[i + 8] & v->mmask]);
        const struct tok_merge *me = &v->merges[i];
        uint32_t j = (uint32_t)hs[i] & v->mmask;
        int dup = 0;
        for (;; j = (j + 1) & v->mmask) {
            uint32_t e = v->mmap[j];
            if (!e) break;
            const struct tok_merge *o = &v->merges[e - 1];
            if (o->len == me->len && o->split == me->split &&
                memcmp(v->merge_pool + o->off, v->merge_pool + me->off, me->len) == 0) {
                dup = 1; /* first occurrence keeps its rank (std::map::emplace) */
                break;
            }
        }
        if (dup) {
            ndup++;
            continue;
        }
        v->mmap[j] = (uint32_t)i + 1;
        if (me->len > v->max_merge_len) v->max_merge_len = me->len;
    }
    free(hs);
    return ndup;
}

/* llama.cpp's text-based detection of EOT/EOM/FIM and end-of-generation
 * tokens (load(): "auto-detect special tokens by text") */
static void detect_special(tok_vocab *v) {
    static const char *const eot_names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                            "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
                                            "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>",
                                            "<end_of_utterance>", NULL};
    static const char *const eom_names[] = {"<|eom_id|>", NULL};
    static const char *const pre_names[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                            "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
                                            "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL};
    static const char *const suf_names[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                                            "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>", "<SUF>",
                                            "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL};
    static const char *const mid_names[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                                            "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
                                            "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL};
    static const char *const pad_names[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
    static const char *const rep_names[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL};
    static const char *const sep_names[] = {"<|file_sep|>", NULL};
    static const char *const eog_names[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
        "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
        "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[", NULL};
    struct {
        int32_t *id;
        const char *const *names;
    } det[] = {{&v->eot, eot_names},     {&v->eom, eom_names},     {&v->fim_pre, pre_names}, {&v->fim_suf, suf_names},
               {&v->fim_mid, mid_names}, {&v->fim_pad, pad_names}, {&v->fim_rep, rep_names}, {&v->fim_sep, sep_names}};

    for (int32_t id = 0; id < v->n; id++) {
        if (!maybe_named(v, id)) continue;
        for (size_t d = 0; d < UTIL_ARRAY_LEN(det); d++) {
            if (*det[d].id == -1 && is_one_of(v, id, det[d].names)) {
                *det[d].id = id;
                v->attr[id] |= TOK_ATTR_CONTROL; /* "control-looking token ... will be overridden" */
            }
        }
    }
    if (v->fim_pad >= 0) v->flags[v->fim_pad] |= TOKF_EOG;
    if (v->fim_rep >= 0) v->flags[v->fim_rep] |= TOKF_EOG;
    if (v->fim_sep >= 0) v->flags[v->fim_sep] |= TOKF_EOG;
    for (int32_t id = 0; id < v->n; id++) {
        if (!maybe_named(v, id)) continue;
        if (is_one_of(v, id, eog_names)) {
            v->flags[id] |= TOKF_EOG;
            v->attr[id] |= TOK_ATTR_CONTROL;
        }
    }
    /* gpt-oss: these render always (USER_DEFINED replaces the attribute) */
    static const char *const harmony_ud[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};
    for (int32_t id = 0; id < v->n; id++)
        if (maybe_named(v, id) && is_one_of(v, id, harmony_ud)) v->attr[id] = TOK_ATTR_USER_DEFINED;
    if (v->eos >= 0) v->flags[v->eos] |= TOKF_EOG;
    if (v->eot >= 0) v->flags[v->eot] |= TOKF_EOG;
    if (v->eom >= 0) v->flags[v->eom] |= TOKF_EOG;

    /* o200k_harmony / solar-open: <|end|> is not end-of-generation there */
    int has_return = 0, has_call = 0, has_flush = 0, has_tool_resp = 0;
    int32_t end_id = -1, s_id = -1;
    for (int32_t id = 0; id < v->n; id++) {
        if (!(v->flags[id] & TOKF_EOG)) continue;
        if (streq(v, id, "<|return|>")) has_return = 1;
        else if (streq(v, id, "<|call|>") || streq(v, id, "<|calls|>")) has_call = 1;
        else if (streq(v, id, "<|flush|>")) has_flush = 1;
        else if (streq(v, id, "<|end|>")) end_id = id;
        if (streq(v, id, "<|tool_response>")) has_tool_resp = 1;
        else if (streq(v, id, "</s>")) s_id = id;
    }
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
        v->flags[end_id] &= (uint8_t)~TOKF_EOG;
        v->attr[end_id] = TOK_ATTR_USER_DEFINED;
    }
    if (has_tool_resp && s_id >= 0) { /* gemma4 / paddleocr */
        v->flags[s_id] &= (uint8_t)~TOKF_EOG;
        v->attr[s_id] = TOK_ATTR_NORMAL;
    }
}

/* longest text first; ties: lower id first (llama.cpp's std::sort leaves them unspecified) */
static int cmp_special(const void *a, const void *b, void *ctx) {
    const tok_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->len[x], ly = v->len[y];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int build_special_cache(tok_vocab *v, char *err, size_t errlen) {
    int32_t cnt = 0;
    for (int32_t id = 0; id < v->n; id++)
        if (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) cnt++;
    v->special = malloc(sizeof(int32_t) * (size_t)(cnt ? cnt : 1));
    if (!v->special) return util_fail(err, errlen, -ENOMEM, "tokenizer: out of memory");
    cnt = 0;
    for (int32_t id = 0; id < v->n; id++)
        if (v->attr[id] & (TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED | TOK_ATTR_UNKNOWN)) v->special[cnt++] = id;
    v->n_special = cnt;
    qsort_r(v->special, (size_t)cnt, sizeof(int32_t), cmp_special, v); /* glibc; no global state */
    return 0;
}

/* Phi-3 (by general.name, as llama.cpp does): special tokens swallow the
 * whitespace that follows them, except <unk>, <s>, <|endoftext|>. */
static void apply_name_attrs(tok_vocab *v, const gguf_ctx *g) {
    gguf_str name;
    if (gguf_get_str(g, "general.name", &name) != 0) return;
    char low[256];
    size_t n = name.len < sizeof low - 1 ? (size_t)name.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name.ptr[i]);
    low[n] = 0;
    if (!strstr(low, "phi-3") && !strstr(low, "phi3")) return;
    for (int32_t i = 0; i < v->n_special; i++) v->attr[v->special[i]] |= TOK_ATTR_RSTRIP;
    int32_t id = tok_lookup(v, "</s>", 4);
    if (id >= 0) v->attr[id] |= TOK_ATTR_RSTRIP;
    static const char *const no_rstrip[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(no_rstrip); i++) {
        id = tok_lookup(v, no_rstrip[i], strlen(no_rstrip[i]));
        if (id >= 0) v->attr[id] &= (uint16_t)~TOK_ATTR_RSTRIP;
    }
}

int tok_load_gguf(const gguf_ctx *g, tok_vocab **out, char *err, size_t errlen) {
    LLORCH_ASSERT(g && out);
    *out = NULL;
    tok_vocab *v = calloc(1, sizeof *v);
    if (!v) return util_fail(err, errlen, -ENOMEM, "tokenizer: out of memory");
    int rc;
    gguf_str model;
    if ((rc = key_str(g, "tokenizer.ggml.model", &model, 1, err, errlen)) < 0) goto fail;
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (gguf_str_eq(model, "llama")) {
        v->kind = TOK_KIND_SPM;
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_space_prefix = 1;
        v->add_bos = 1;
        v->clean_spaces = 0;
    } else if (gguf_str_eq(model, "gpt2")) {
        v->kind = TOK_KIND_BPE;
        v->bos = 11, v->eos = 11;
        if ((rc = load_pre(v, g, err, errlen)) < 0) goto fail;
    } else {
        char m[64];
        gguf_str_copy(model, m, sizeof m);
        rc = util_fail(err, errlen, -EINVAL, "tokenizer: unsupported tokenizer.ggml.model '%s' (llama, gpt2)", m);
        goto fail;
    }
    key_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);

    if ((rc = load_tokens(v, g, err, errlen)) < 0) goto fail;
    if (v->kind == TOK_KIND_BPE && (rc = load_merges(v, g, err, errlen)) < 0) goto fail;

    tok_vocab_gguf_ids(v, g);
    key_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos);
    key_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos);
    if ((rc = tok_vocab_finish(v, err, errlen)) < 0) goto fail;
    apply_name_attrs(v, g);
    *out = v;
    return 0;
fail:
    tok_free(v);
    return rc;
}

void tok_vocab_gguf_ids(tok_vocab *v, const gguf_ctx *g) {
    static const struct {
        const char *key;
        size_t field;
    } ids[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(tok_vocab, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(tok_vocab, eos)},
        {"tokenizer.ggml.eot_token_id", offsetof(tok_vocab, eot)},
        {"tokenizer.ggml.eom_token_id", offsetof(tok_vocab, eom)},
        {"tokenizer.ggml.unknown_token_id", offsetof(tok_vocab, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(tok_vocab, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(tok_vocab, pad)},
        {"tokenizer.ggml.mask_token_id", offsetof(tok_vocab, mask)},
        {"tokenizer.ggml.fim_pre_token_id", offsetof(tok_vocab, fim_pre)},
        {"tokenizer.ggml.fim_suf_token_id", offsetof(tok_vocab, fim_suf)},
        {"tokenizer.ggml.fim_mid_token_id", offsetof(tok_vocab, fim_mid)},
        {"tokenizer.ggml.fim_pad_token_id", offsetof(tok_vocab, fim_pad)},
        {"tokenizer.ggml.fim_rep_token_id", offsetof(tok_vocab, fim_rep)},
        {"tokenizer.ggml.fim_sep_token_id", offsetof(tok_vocab, fim_sep)},
        {"tokenizer.ggml.prefix_token_id", offsetof(tok_vocab, fim_pre)},
        {"tokenizer.ggml.suffix_token_id", offsetof(tok_vocab, fim_suf)},
        {"tokenizer.ggml.middle_token_id", offsetof(tok_vocab, fim_mid)},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ids); i++)
        key_id(g, ids[i].key, (int32_t *)((char *)v + ids[i].field), v->n);
}

int tok_vocab_finish(tok_vocab *v, char *err, size_t errlen) {
    int rc;
    /* flags that ask for a token the vocab lacks are dropped rather than
     * asserted on (llama.cpp aborts in tokenize) */
    if (v->bos < 0) v->add_bos = 0;
    if (v->eos < 0) v->add_eos = 0;

    /* hf-json: the file says which tokens are special (added_tokens); the
     * text-based detection only contributes EOT/EOG/FIM ids, not attributes
     * (it would make a normal token like Qwen's "</s>" match whole) */
    uint16_t *keep = NULL;
    if (v->hf_json) {
        keep = malloc(sizeof(uint16_t) * (size_t)v->n);
        if (!keep) return util_fail(err, errlen, -ENOMEM, "tokenizer: out of memory");
        memcpy(keep, v->attr, sizeof(uint16_t) * (size_t)v->n);
    }
    detect_special(v);
    if (keep) {
        memcpy(v->attr, keep, sizeof(uint16_t) * (size_t)v->n);
        free(keep);
    }
    if ((rc = build_special_cache(v, err, errlen)) < 0) return rc;

    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        int32_t id = tok_lookup(v, hex, 6);
        if (id < 0) {
            char c = (char)b;
            id = tok_lookup(v, &c, 1);
        }
        v->byte_tok[b] = id;
    }
    if ((rc = tok_build_pieces(v)) < 0) return util_fail(err, errlen, rc, "tokenizer: out of memory (pieces)");
    return 0;
}

void tok_free(tok_vocab *v) {
    if (!v) return;
    free(v->pool);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->attr);
    free(v->flags);
    free(v->tmap);
    free(v->ppool);
    free(v->poff);
    free(v->plen);
    free(v->merges);
    free(v->merge_pool);
    free(v->mmap);
    free(v->special);
    free(v);
}

/* ---- accessors ---------------------------------------------------------------- */

enum tok_kind tok_kind(const tok_vocab *v) { return v->kind; }
const char *tok_kind_name(const tok_vocab *v) {
    return v->hf_json ? "hf-json" : v->kind == TOK_KIND_SPM ? "gguf-spm" : "gguf-bpe";
}
int32_t tok_n_vocab(const tok_vocab *v) { return v->n; }
int32_t tok_bos(const tok_vocab *v) { return v->bos; }
int32_t tok_eos(const tok_vocab *v) { return v->eos; }
int32_t tok_eot(const tok_vocab *v) { return v->eot; }
int32_t tok_unk(const tok_vocab *v) { return v->unk; }
int tok_add_bos(const tok_vocab *v) { return v->add_bos; }
int tok_add_eos(const tok_vocab *v) { return v->add_eos; }
enum tok_pre tok_pre_kind(const tok_vocab *v) {
    /* the public kind of the split actually run (pretok.h has llama.cpp variants) */
    switch ((int)v->pre) {
    case TOK_PRE_DEFAULT: case TOK_PRE_LLAMA3: case TOK_PRE_QWEN2: case TOK_PRE_O200K: return v->pre;
#ifdef TOK_PRE_O200K_LLAMACPP
    case (int)TOK_PRE_O200K_LLAMACPP: return TOK_PRE_O200K;
#endif
    default: return TOK_PRE_DEFAULT;
    }
}

int tok_is_eog(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n && (v->flags[id] & TOKF_EOG);
}
int tok_is_control(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n && (v->attr[id] & TOK_ATTR_CONTROL);
}
unsigned tok_token_attr(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n ? v->attr[id] : 0;
}
float tok_score(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n ? v->score[id] : 0.0f;
}
const char *tok_text(const tok_vocab *v, int32_t id) {
    return id >= 0 && id < v->n ? tok_txt(v, id) : NULL;
}
int32_t tok_find(const tok_vocab *v, const char *text) { return tok_lookup(v, text, strlen(text)); }
