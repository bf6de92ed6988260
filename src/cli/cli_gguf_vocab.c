/* cli_gguf_vocab — tokenizer metadata for synthetic models.
 *
 * From tokenizer.json we follow what llama.cpp's converter does
 * (convert_hf_to_gguf.py get_vocab_base / _set_vocab_gpt2 and gguf-py
 * SpecialVocab): token i is the vocab entry or added token with id i, holes
 * become "[PAD<i>]" (UNUSED); added tokens are CONTROL when marked special or
 * when they look special ("<|...|>", "<pad>", "<mask>", ...), else
 * USER_DEFINED (with U+2581 turned back into a space); merges are "a b";
 * bos/eos/pad/unk, add_bos/add_eos and the chat template come from
 * tokenizer_config.json beside tokenizer.json. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_gguf_int.h"
#include "common/util.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !memcmp(s + a - b, suf, b);
}

static int starts_with(const char *s, const char *pre) { return !strncmp(s, pre, strlen(pre)); }

static int looks_special(const char *t) {
    if (!strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") || !strcmp(t, "[@BOS@]")) return 1;
    if (starts_with(t, "<|") && ends_with(t, "|>")) return 1;
    if (starts_with(t, "<\xef\xbd\x9c") && ends_with(t, "\xef\xbd\x9c>")) return 1; /* fullwidth bars */
    if (starts_with(t, "<unused") && ends_with(t, ">")) return 1;
    return 0;
}

/* "▁" → " " in place (user-defined tokens are stored pre-normalised) */
static void unspace(char *s) {
    char *w = s;
    for (char *r = s; *r;) {
        if ((unsigned char)r[0] == 0xe2 && (unsigned char)r[1] == 0x96 && (unsigned char)r[2] == 0x81) {
            *w++ = ' ';
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

/* a special token in tokenizer_config.json: "text" or {"content": "text"} */
static const char *special_text(json_t *cfg, const char *key) {
    json_t *v = cfg ? json_object_get(cfg, key) : NULL;
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static int64_t find_token(char **toks, int64_t n, const char *text) {
    if (!text) return -1;
    for (int64_t i = 0; i < n; i++)
        if (toks[i] && !strcmp(toks[i], text)) return i;
    return -1;
}

int vocab_from_json(gguf_writer *w, const char *path, const char *pre, int64_t pad_to, int64_t *n_vocab,
                    char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je), *cfg = NULL;
    char **toks = NULL;
    int32_t *types = NULL;
    char **merges = NULL;
    size_t n_merges = 0;
    int64_t n = 0;
    int rc = 0;
    if (!root) return util_fail(err, errlen, -EINVAL, "%s: line %d: %s", path, je.line, je.text);
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab"), *jm = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!mtype || strcmp(mtype, "BPE") || !json_is_object(vocab) || !json_is_array(jm)) {
        rc = util_fail(err, errlen, -EINVAL, "%s: not a BPE tokenizer.json (model.type BPE with vocab and merges)", path);
        goto out;
    }
    /* the tokenizer_config.json beside it, when there is one */
    {
        char cfgpath[4096];
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path) : 1;
        snprintf(cfgpath, sizeof cfgpath, "%.*s/tokenizer_config.json", dl, slash ? path : ".");
        FILE *probe = fopen(cfgpath, "r");
        if (probe) { /* optional, but a broken one is an error, not silently ignored */
            fclose(probe);
            /* INT_AS_REAL: model_max_length is often 1e30 written as an integer */
            cfg = json_load_file(cfgpath, JSON_DECODE_INT_AS_REAL, &je);
            if (!cfg) {
                rc = util_fail(err, errlen, -EINVAL, "%s: line %d: %s", cfgpath, je.line, je.text);
                goto out;
            }
        }
    }
    /* size: the largest id + 1, or pad_to */
    int64_t max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) > 10000000) {
            rc = util_fail(err, errlen, -EINVAL, "%s: vocab entry '%s' has a bad id", path, key);
            goto out;
        }
        if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
    }
    size_t ai;
    json_array_foreach(added, ai, val) {
        json_int_t id = json_integer_value(json_object_get(val, "id"));
        if (!json_is_string(json_object_get(val, "content")) || id < 0 || id > 10000000) {
            rc = util_fail(err, errlen, -EINVAL, "%s: added_tokens[%zu] lacks content or a valid id", path, ai);
            goto out;
        }
        if (id > max_id) max_id = id;
    }
    n = max_id + 1;
    if (pad_to > 0) {
        if (pad_to < n) {
            rc = util_fail(err, errlen, -EINVAL, "%s: %lld tokens do not fit the model's vocabulary of %lld", path,
                           (long long)n, (long long)pad_to);
            goto out;
        }
        n = pad_to;
    }
    toks = calloc((size_t)n, sizeof *toks);
    types = calloc((size_t)n, sizeof *types);
    if (!toks || !types) {
        rc = util_fail(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    json_object_foreach(vocab, key, val) {
        int64_t id = json_integer_value(val);
        free(toks[id]);
        toks[id] = strdup(key);
        types[id] = TT_NORMAL;
    }
    json_array_foreach(added, ai, val) {
        int64_t id = json_integer_value(json_object_get(val, "id"));
        const char *c = json_string_value(json_object_get(val, "content"));
        free(toks[id]);
        toks[id] = strdup(c);
        if (json_is_true(json_object_get(val, "special")) || looks_special(c)) {
            types[id] = TT_CONTROL;
        } else {
            unspace(toks[id]);
            types[id] = TT_USER_DEFINED;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (!toks[i]) {
            char b[32];
            snprintf(b, sizeof b, "[PAD%lld]", (long long)i);
            toks[i] = strdup(b);
            types[i] = TT_UNUSED;
        }
        if (!toks[i]) {
            rc = util_fail(err, errlen, -ENOMEM, "out of memory");
            goto out;
        }
    }
    n_merges = json_array_size(jm);
    merges = calloc(n_merges ? n_merges : 1, sizeof *merges);
    if (!merges) {
        rc = util_fail(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    json_array_foreach(jm, ai, val) {
        if (json_is_string(val)) {
            merges[ai] = strdup(json_string_value(val));
        } else if (json_is_array(val) && json_array_size(val) == 2 && json_is_string(json_array_get(val, 0)) &&
                   json_is_string(json_array_get(val, 1))) {
            const char *a = json_string_value(json_array_get(val, 0)), *b = json_string_value(json_array_get(val, 1));
            size_t la = strlen(a), lb = strlen(b);
            merges[ai] = malloc(la + lb + 2);
            if (merges[ai]) {
                memcpy(merges[ai], a, la);
                merges[ai][la] = ' ';
                memcpy(merges[ai] + la + 1, b, lb + 1);
            }
        } else {
            rc = util_fail(err, errlen, -EINVAL, "%s: merges[%zu] is neither \"a b\" nor [a, b]", path, ai);
            goto out;
        }
        if (!merges[ai]) {
            rc = util_fail(err, errlen, -ENOMEM, "out of memory");
            goto out;
        }
    }
    if (!pre) {
        const char *cls = json_string_value(json_object_get(cfg, "tokenizer_class"));
        if ((cls && strstr(cls, "Qwen")) || find_token(toks, n, "<|im_start|>") >= 0) pre = "qwen2";
        else if (find_token(toks, n, "<|return|>") >= 0 && find_token(toks, n, "<|start|>") >= 0) pre = "gpt-4o";
        else if (find_token(toks, n, "<|begin_of_text|>") >= 0) pre = "llama-bpe";
        else pre = "gpt-2";
    }
    rc = gguf_w_set_str(w, "tokenizer.ggml.model", "gpt2");
    rc = rc ? rc : gguf_w_set_str(w, "tokenizer.ggml.pre", pre);
    rc = rc ? rc : gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (uint64_t)n);
    rc = rc ? rc : gguf_w_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_I32, types, (uint64_t)n);
    rc = rc ? rc : gguf_w_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges, NULL, n_merges);
    if (rc) {
        rc = util_fail(err, errlen, rc, "cannot store the vocabulary (%d)", rc);
        goto out;
    }
    {
        static const struct { const char *cfg_key, *gguf_key; } sp[] = {
            {"bos_token", "tokenizer.ggml.bos_token_id"}, {"eos_token", "tokenizer.ggml.eos_token_id"},
            {"unk_token", "tokenizer.ggml.unknown_token_id"}, {"pad_token", "tokenizer.ggml.padding_token_id"},
        };
        for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++) {
            int64_t id = find_token(toks, n, special_text(cfg, sp[i].cfg_key));
            /* Qwen's tokenizer_config has bos_token null; its config.json (which
             * the converter also reads) names <|endoftext|> */
            if (id < 0 && i == 0) id = find_token(toks, n, "<|endoftext|>");
            if (id < 0 && i == 1 && !cfg) id = find_token(toks, n, "<|endoftext|>");
            if (id >= 0) gguf_w_set_u32(w, sp[i].gguf_key, (uint32_t)id);
        }
        json_t *b = json_object_get(cfg, "add_bos_token"), *e = json_object_get(cfg, "add_eos_token");
        if (json_is_boolean(b)) gguf_w_set_bool(w, "tokenizer.ggml.add_bos_token", json_is_true(b));
        if (json_is_boolean(e)) gguf_w_set_bool(w, "tokenizer.ggml.add_eos_token", json_is_true(e));
        json_t *tpl = json_object_get(cfg, "chat_template");
        if (json_is_string(tpl)) gguf_w_set_str(w, "tokenizer.chat_template", json_string_value(tpl));
    }
    *n_vocab = n;
out:
    if (toks)
        for (int64_t i = 0; i < n; i++) free(toks[i]);
    if (merges)
        for (size_t i = 0; i < n_merges; i++) free(merges[i]);
    free(toks);
    free(types);
    free(merges);
    json_decref(root);
    json_decref(cfg);
    return rc;
}

int vocab_from_gguf(gguf_writer *w, const char *path, int64_t *n_vocab, char *err, size_t errlen) {
    gguf_ctx *g;
    int rc = gguf_open(path, &g, err, errlen);
    if (rc) return rc;
    gguf_arr a;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &a) != 0 || a.type != GGUF_T_STRING) {
        gguf_close(g);
        return util_fail(err, errlen, -EINVAL, "%s: no tokenizer.ggml.tokens string array", path);
    }
    *n_vocab = (int64_t)a.n;
    for (int64_t i = 0; i < gguf_n_kv(g) && !rc; i++) {
        gguf_str k = gguf_kv_key(g, i);
        if (k.len > 10 && !memcmp(k.ptr, "tokenizer.", 10)) rc = gguf_w_copy_kv(w, g, i);
    }
    gguf_close(g);
    return rc ? util_fail(err, errlen, rc, "%s: cannot copy the tokenizer keys", path) : 0;
}

int vocab_synthetic(gguf_writer *w, int64_t n, char *err, size_t errlen) {
    if (n < 259 || n > 1000000) return util_fail(err, errlen, -EINVAL, "synthetic vocabulary size %lld not in 259..1e6", (long long)n);
    char **toks = calloc((size_t)n, sizeof *toks);
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = calloc((size_t)n, sizeof *types);
    int rc = 0;
    if (!toks || !scores || !types) {
        rc = util_fail(err, errlen, -ENOMEM, "out of memory");
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        char b[48];
        if (i == 0) snprintf(b, sizeof b, "<unk>"), types[i] = TT_UNKNOWN;
        else if (i == 1) snprintf(b, sizeof b, "<s>"), types[i] = TT_CONTROL;
        else if (i == 2) snprintf(b, sizeof b, "</s>"), types[i] = TT_CONTROL;
        else if (i < 259) snprintf(b, sizeof b, "<0x%02X>", (unsigned)(i - 3)), types[i] = TT_BYTE;
        else {
            /* "▁" + base-26 letters of k: distinct, printable, never a byte token */
            int64_t k = i - 259;
            char tail[24];
            int l = 0;
            do {
                tail[l++] = (char)('a' + k % 26);
                k = k / 26 - 1;
            } while (k >= 0 && l < 20);
            tail[l] = 0;
            snprintf(b, sizeof b, "\xe2\x96\x81%s", tail);
            types[i] = TT_NORMAL;
            scores[i] = -(float)(i - 259);
        }
        toks[i] = strdup(b);
        if (!toks[i]) {
            rc = util_fail(err, errlen, -ENOMEM, "out of memory");
            goto out;
        }
    }
    rc = gguf_w_set_str(w, "tokenizer.ggml.model", "llama");
    rc = rc ? rc : gguf_w_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)toks, NULL, (uint64_t)n);
    rc = rc ? rc : gguf_w_set_arr(w, "tokenizer.ggml.scores", GGUF_T_F32, scores, (uint64_t)n);
    rc = rc ? rc : gguf_w_set_arr(w, "tokenizer.ggml.token_type", GGUF_T_I32, types, (uint64_t)n);
    rc = rc ? rc : gguf_w_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    rc = rc ? rc : gguf_w_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    rc = rc ? rc : gguf_w_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    rc = rc ? rc : gguf_w_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    rc = rc ? rc : gguf_w_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
    if (rc) rc = util_fail(err, errlen, rc, "cannot store the vocabulary (%d)", rc);
out:
    if (toks)
        for (int64_t i = 0; i < n; i++) free(toks[i]);
    free(toks);
    free(scores);
    free(types);
    return rc;
}
