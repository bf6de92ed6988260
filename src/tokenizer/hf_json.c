/* hf_json — loads a Hugging Face tokenizer.json (tokenizer kind "hf-json")
 * into the same tok_vocab the GGUF loader builds, so encode/piece/decode are
 * shared. What is read, and what is refused with a message naming the field
 * (never tokenized wrongly):
 *   model        type "BPE" with vocab {text: id} and merges, each "a b"
 *                (exactly one space) or ["a", "b"]; both parts and their
 *                concatenation must be tokens, a pair may appear once.
 *                ignore_merges honoured. Refused: dropout, a non-empty
 *                continuing_subword_prefix / end_of_word_suffix, byte_fallback
 *                (SentencePiece-style files), other model types (Unigram, ...).
 *   added_tokens whole-match tokens: special -> CONTROL (matched with
 *                parse_special), not special -> USER_DEFINED (always matched);
 *                lstrip/rstrip kept; single_word refused. An id may repeat a
 *                vocab id only with the same text.
 *   normalizer   null or NFC (also a Sequence of NFC); others refused.
 *   pre_tokenizer ByteLevel(use_regex) = GPT-2 split, or Sequence[Split(Regex
 *                R, Isolated), ByteLevel(use_regex false)] where R is one of
 *                the regexes pretok.c implements (Qwen2, Llama-3, o200k, GPT-2),
 *                compared byte for byte; add_prefix_space refused.
 *   post_processor null, ByteLevel, TemplateProcessing ([BOS] $A [EOS] with
 *                one id each), or a Sequence of these: sets bos/eos/add_*.
 *   decoder      ByteLevel (null refused: ids would decode to "Ġ" text).
 * Ids must be dense (at most TOK_HF_MAX_HOLES unused ids, filled with unused
 * "[PAD<id>]" tokens, as llama.cpp's converter does); opts->n_pad pads the
 * vocabulary to a model's embedding rows the same way.
 * Unlike the GGUF path (llama.cpp semantics) this follows HF tokenizers:
 * o200k is the exact regex (TOK_PRE_O200K, not llama.cpp's rewrite), only
 * added tokens marked special are control tokens, decode never cleans up
 * spaces and renders a token with non-byte-level characters as its UTF-8.
 * Still the GGUF path's rules (may differ from HF in contrived files): added
 * tokens are matched longest first (HF: leftmost-longest), before NFC even
 * when "normalized", lstrip/rstrip eat ASCII whitespace.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tokenizer/json.h"
#include "tokenizer/pretok.h"
#include "tokenizer/tok_internal.h"

#define TOK_HF_MAX_TOKENS (1 << 24)
#define TOK_HF_MAX_TOKEN_BYTES (1 << 16)
#define TOK_HF_MAX_HOLES 1024

/* the pre-tokenizer regexes we implement, as tokenizer.json spells them */
static const struct {
    const char *re;
    enum tok_pre pre;
} k_regex[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+",
     TOK_PRE_QWEN2},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+",
     TOK_PRE_LLAMA3},
    {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
     "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
     "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     TOK_PRE_O200K},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", TOK_PRE_DEFAULT},
};

struct hf {
    const tok_json_doc *d;
    tok_vocab *v;
    char *err;
    size_t errlen;
    /* id -> text node (-1: hole), attr, over [0, n) */
    int32_t *text_node;
    uint16_t *attr;
    int32_t n;
};

#define HF_FAIL(h, ...) util_fail((h)->err, (h)->errlen, -EINVAL, "tokenizer.json: " __VA_ARGS__)

/* a short printable copy of a string node for messages */
static const char *show(const tok_json_doc *d, int32_t i, char *buf, size_t cap) {
    size_t n = 0;
    const char *s = tok_json_str(d, i, &n);
    if (!s) return "(not a string)";
    size_t k = 0;
    for (size_t j = 0; j < n && k + 5 < cap; j++) {
        unsigned char c = (unsigned char)s[j];
        if (c < 0x20 || c == 0x7f) k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", c);
        else buf[k++] = (char)c;
    }
    buf[k] = 0;
    return buf;
}

/* the "type" of an object node, or NULL */
static int32_t type_of(const tok_json_doc *d, int32_t obj) { return tok_json_get(d, obj, "type"); }

/* member key absent, null, or equal to false / "" (a neutral value) */
static int neutral(const tok_json_doc *d, int32_t obj, const char *key) {
    int32_t x = tok_json_get(d, obj, key);
    if (x < 0) return 1;
    int t = tok_json_type(d, x);
    if (t == TOK_JSON_NULL || t == TOK_JSON_FALSE) return 1;
    size_t n;
    return t == TOK_JSON_STR && tok_json_str(d, x, &n) && n == 0;
}

static int is_true(const tok_json_doc *d, int32_t obj, const char *key) {
    return tok_json_type(d, tok_json_get(d, obj, key)) == TOK_JSON_TRUE;
}

/* ---- model.vocab and added_tokens ------------------------------------------- */

static int read_id(struct hf *h, int32_t node, const char *what, int32_t *id) {
    int64_t x;
    int rc = tok_json_int(h->d, node, 0, TOK_HF_MAX_TOKENS - 1, &x);
    if (rc == -ERANGE) return HF_FAIL(h, "%s id out of range (0..%d)", what, TOK_HF_MAX_TOKENS - 1);
    if (rc) return HF_FAIL(h, "%s id is not an integer", what);
    *id = (int32_t)x;
    return 0;
}

static int grow_ids(struct hf *h, int32_t need) {
    if (need <= h->n) return 0;
    int32_t *t = realloc(h->text_node, sizeof *t * (size_t)need);
    if (!t) return util_fail(h->err, h->errlen, -ENOMEM, "tokenizer.json: out of memory");
    h->text_node = t;
    uint16_t *a = realloc(h->attr, sizeof *a * (size_t)need);
    if (!a) return util_fail(h->err, h->errlen, -ENOMEM, "tokenizer.json: out of memory");
    h->attr = a;
    for (int32_t i = h->n; i < need; i++) h->text_node[i] = -1, h->attr[i] = 0;
    h->n = need;
    return 0;
}

static int read_vocab(struct hf *h, int32_t vocab) {
    const tok_json_doc *d = h->d;
    if (tok_json_type(d, vocab) != TOK_JSON_OBJ) return HF_FAIL(h, "model.vocab is not an object");
    if (d->nodes[vocab].n == 0) return HF_FAIL(h, "model.vocab is empty");
    /* ids first (max id), then fill */
    int32_t maxid = -1;
    for (int32_t k = d->nodes[vocab].first; k >= 0; k = d->nodes[d->nodes[k].next].next) {
        int32_t id;
        int rc = read_id(h, d->nodes[k].next, "model.vocab", &id);
        if (rc) return rc;
        if (id > maxid) maxid = id;
    }
    int rc = grow_ids(h, maxid + 1);
    if (rc) return rc;
    for (int32_t k = d->nodes[vocab].first; k >= 0; k = d->nodes[d->nodes[k].next].next) {
        int32_t id;
        read_id(h, d->nodes[k].next, "model.vocab", &id);
        if (h->text_node[id] >= 0) {
            char b1[64], b2[64];
            return HF_FAIL(h, "model.vocab gives id %d to both '%s' and '%s'", id,
                           show(d, h->text_node[id], b1, sizeof b1), show(d, k, b2, sizeof b2));
        }
        h->text_node[id] = k;
        h->attr[id] = TOK_ATTR_NORMAL;
    }
    return 0;
}

static int read_added(struct hf *h, int32_t arr) {
    const tok_json_doc *d = h->d;
    if (arr < 0 || tok_json_type(d, arr) == TOK_JSON_NULL) return 0;
    if (tok_json_type(d, arr) != TOK_JSON_ARR) return HF_FAIL(h, "added_tokens is not an array");
    int32_t i = 0;
    for (int32_t e = d->nodes[arr].first; e >= 0; e = d->nodes[e].next, i++) {
        if (tok_json_type(d, e) != TOK_JSON_OBJ) return HF_FAIL(h, "added_tokens[%d] is not an object", i);
        int32_t c = tok_json_get(d, e, "content"), idn = tok_json_get(d, e, "id");
        if (tok_json_type(d, c) != TOK_JSON_STR) return HF_FAIL(h, "added_tokens[%d].content is not a string", i);
        size_t cl;
        tok_json_str(d, c, &cl);
        if (cl == 0) return HF_FAIL(h, "added_tokens[%d].content is empty", i);
        int32_t id;
        char what[48];
        snprintf(what, sizeof what, "added_tokens[%d]", i);
        int rc = read_id(h, idn, what, &id);
        if (rc) return rc;
        if (is_true(d, e, "single_word")) return HF_FAIL(h, "added_tokens[%d]: single_word is not supported", i);
        if ((rc = grow_ids(h, id + 1))) return rc;
        if (h->text_node[id] >= 0) {
            size_t a, b;
            const char *x = tok_json_str(d, h->text_node[id], &a), *y = tok_json_str(d, c, &b);
            if (a != b || memcmp(x, y, a) != 0) {
                char b1[64], b2[64];
                return HF_FAIL(h, "added_tokens[%d] gives id %d to '%s', which is '%s' already", i, id,
                               show(d, c, b1, sizeof b1), show(d, h->text_node[id], b2, sizeof b2));
            }
        }
        h->text_node[id] = c;
        uint16_t a = is_true(d, e, "special") ? TOK_ATTR_CONTROL : TOK_ATTR_USER_DEFINED;
        if (is_true(d, e, "lstrip")) a |= TOK_ATTR_LSTRIP;
        if (is_true(d, e, "rstrip")) a |= TOK_ATTR_RSTRIP;
        h->attr[id] = a;
    }
    return 0;
}

/* token pool, attributes, text -> id */
static int build_tokens(struct hf *h, int32_t n_pad) {
    tok_vocab *v = h->v;
    int32_t holes = 0;
    for (int32_t i = 0; i < h->n; i++) holes += h->text_node[i] < 0;
    if (holes > TOK_HF_MAX_HOLES)
        return HF_FAIL(h, "%d of %d ids are unused (at most %d allowed)", holes, h->n, TOK_HF_MAX_HOLES);
    int32_t n = h->n > n_pad ? h->n : n_pad;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        size_t l = 24;
        if (i < h->n && h->text_node[i] >= 0) tok_json_str(h->d, h->text_node[i], &l);
        if (l > TOK_HF_MAX_TOKEN_BYTES)
            return HF_FAIL(h, "token %d is %zu bytes (max %d)", i, l, TOK_HF_MAX_TOKEN_BYTES);
        total += l + 1;
    }
    if (total > UINT32_MAX) return HF_FAIL(h, "token texts exceed 4 GiB");
    v->n = n;
    v->pool = malloc(total);
    v->off = malloc(sizeof(uint32_t) * (size_t)n);
    v->len = malloc(sizeof(uint32_t) * (size_t)n);
    v->score = calloc((size_t)n, sizeof(float));
    v->attr = malloc(sizeof(uint16_t) * (size_t)n);
    v->flags = calloc((size_t)n, 1);
    if (!v->pool || !v->off || !v->len || !v->score || !v->attr || !v->flags)
        return util_fail(h->err, h->errlen, -ENOMEM, "tokenizer.json: out of memory for %d tokens", n);
    size_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        v->off[i] = (uint32_t)at;
        if (i < h->n && h->text_node[i] >= 0) {
            size_t l;
            const char *s = tok_json_str(h->d, h->text_node[i], &l);
            memcpy(v->pool + at, s, l);
            v->len[i] = (uint32_t)l;
            v->attr[i] = h->attr[i];
        } else { /* hole or padding: an unused token that never matches or renders */
            v->len[i] = (uint32_t)snprintf(v->pool + at, 24, "[PAD%d]", i);
            v->attr[i] = TOK_ATTR_UNUSED;
        }
        v->pool[at + v->len[i]] = 0;
        at += v->len[i] + 1;
        if (v->len[i] > v->max_len) v->max_len = v->len[i];
    }
    int rc = tok_vocab_index_tokens(v, h->err, h->errlen);
    if (rc == -EINVAL) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", h->err ? h->err : "");
        return HF_FAIL(h, "%s", tmp + (strncmp(tmp, "tokenizer: ", 11) ? 0 : 11));
    }
    return rc;
}

/* ---- merges -------------------------------------------------------------------- */

static int read_merges(struct hf *h, int32_t arr) {
    const tok_json_doc *d = h->d;
    tok_vocab *v = h->v;
    if (arr < 0) return HF_FAIL(h, "model.merges is missing");
    if (tok_json_type(d, arr) != TOK_JSON_ARR) return HF_FAIL(h, "model.merges is not an array");
    uint32_t n = d->nodes[arr].n;
    if (n > TOK_HF_MAX_TOKENS) return HF_FAIL(h, "%u merges (max %d)", n, TOK_HF_MAX_TOKENS);
    v->merges = malloc(sizeof(struct tok_merge) * (n ? n : 1));
    /* a merge's two parts are tokens, so its bytes are at most 2 * max_len */
    size_t total = 0;
    for (int32_t e = d->nodes[arr].first; e >= 0; e = d->nodes[e].next) {
        size_t l = 0;
        if (tok_json_type(d, e) == TOK_JSON_STR) tok_json_str(d, e, &l);
        else if (tok_json_type(d, e) == TOK_JSON_ARR && d->nodes[e].n == 2) {
            size_t a = 0, b = 0;
            tok_json_str(d, d->nodes[e].first, &a);
            int32_t second = d->nodes[d->nodes[e].first].next;
            tok_json_str(d, second, &b);
            l = a + b;
        }
        total += l;
    }
    if (total > UINT32_MAX) return HF_FAIL(h, "merges exceed 4 GiB");
    v->merge_pool = malloc(total ? total : 1);
    if (!v->merges || !v->merge_pool)
        return util_fail(h->err, h->errlen, -ENOMEM, "tokenizer.json: out of memory (merges)");
    size_t at = 0;
    int32_t r = 0;
    char b1[64], b2[64];
    for (int32_t e = d->nodes[arr].first; e >= 0; e = d->nodes[e].next, r++) {
        const char *a, *b;
        size_t al, bl;
        if (tok_json_type(d, e) == TOK_JSON_STR) {
            size_t l;
            const char *s = tok_json_str(d, e, &l);
            const char *sp = memchr(s, ' ', l);
            if (!sp || memchr(sp + 1, ' ', l - (size_t)(sp - s) - 1))
                return HF_FAIL(h, "merges[%d] '%s' is not two tokens separated by one space", r,
                               show(d, e, b1, sizeof b1));
            a = s, al = (size_t)(sp - s), b = sp + 1, bl = l - al - 1;
        } else if (tok_json_type(d, e) == TOK_JSON_ARR && d->nodes[e].n == 2 &&
                   tok_json_type(d, d->nodes[e].first) == TOK_JSON_STR &&
                   tok_json_type(d, d->nodes[d->nodes[e].first].next) == TOK_JSON_STR) {
            a = tok_json_str(d, d->nodes[e].first, &al);
            b = tok_json_str(d, d->nodes[d->nodes[e].first].next, &bl);
        } else {
            return HF_FAIL(h, "merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", r);
        }
        if (tok_lookup(v, a, al) < 0 || tok_lookup(v, b, bl) < 0) {
            int first = tok_lookup(v, a, al) < 0;
            snprintf(b2, sizeof b2, "%.*s", (int)(first ? (al < 40 ? al : 40) : (bl < 40 ? bl : 40)), first ? a : b);
            return HF_FAIL(h, "merges[%d] names '%s', which is not a token", r, b2);
        }
        memcpy(v->merge_pool + at, a, al);
        memcpy(v->merge_pool + at + al, b, bl);
        if (tok_lookup(v, v->merge_pool + at, al + bl) < 0)
            return HF_FAIL(h, "merges[%d]: the merged token '%.*s' is not in the vocabulary", r,
                           (int)(al + bl < 40 ? al + bl : 40), v->merge_pool + at);
        v->merges[r] = (struct tok_merge){(uint32_t)at, (uint32_t)(al + bl), (uint32_t)al, r};
        at += al + bl;
    }
    v->n_merges = r;
    int dup = tok_vocab_index_merges(v);
    if (dup < 0) return util_fail(h->err, h->errlen, -ENOMEM, "tokenizer.json: out of memory (merges)");
    if (dup > 0) return HF_FAIL(h, "model.merges lists %d pair(s) twice", dup);
    return 0;
}

/* ---- model, normalizer, pre_tokenizer, post_processor, decoder ------------------ */

static int read_model(struct hf *h, int32_t model) {
    const tok_json_doc *d = h->d;
    char b[64];
    if (tok_json_type(d, model) != TOK_JSON_OBJ) return HF_FAIL(h, "model is missing or not an object");
    int32_t t = type_of(d, model);
    if (t >= 0 && !tok_json_str_is(d, t, "BPE"))
        return HF_FAIL(h, "model.type '%s' is not supported (BPE only)", show(d, t, b, sizeof b));
    if (t < 0 && tok_json_get(d, model, "merges") < 0) return HF_FAIL(h, "model.type is missing");
    if (!neutral(d, model, "dropout")) return HF_FAIL(h, "model.dropout is not supported");
    if (!neutral(d, model, "continuing_subword_prefix"))
        return HF_FAIL(h, "model.continuing_subword_prefix is not supported");
    if (!neutral(d, model, "end_of_word_suffix")) return HF_FAIL(h, "model.end_of_word_suffix is not supported");
    if (!neutral(d, model, "byte_fallback"))
        return HF_FAIL(h, "model.byte_fallback (SentencePiece-style BPE) is not supported: use the GGUF tokenizer");
    h->v->ignore_merges = is_true(d, model, "ignore_merges");
    return read_vocab(h, tok_json_get(d, model, "vocab"));
}

static int read_normalizer(struct hf *h, int32_t n) {
    const tok_json_doc *d = h->d;
    char b[64];
    if (n < 0 || tok_json_type(d, n) == TOK_JSON_NULL) return 0;
    if (tok_json_type(d, n) != TOK_JSON_OBJ) return HF_FAIL(h, "normalizer is not an object");
    int32_t t = type_of(d, n);
    if (tok_json_str_is(d, t, "NFC")) {
        h->v->nfc = 1;
        return 0;
    }
    if (tok_json_str_is(d, t, "Sequence")) {
        int32_t arr = tok_json_get(d, n, "normalizers");
        if (tok_json_type(d, arr) != TOK_JSON_ARR) return HF_FAIL(h, "normalizer.normalizers is not an array");
        for (int32_t e = d->nodes[arr].first; e >= 0; e = d->nodes[e].next) {
            if (tok_json_type(d, e) != TOK_JSON_OBJ || !tok_json_str_is(d, type_of(d, e), "NFC"))
                return HF_FAIL(h, "normalizer '%s' in a Sequence is not supported (NFC only)",
                               show(d, type_of(d, e), b, sizeof b));
            h->v->nfc = 1;
        }
        return 0;
    }
    return HF_FAIL(h, "normalizer '%s' is not supported (none or NFC)", show(d, t, b, sizeof b));
}

static int byte_level_ok(struct hf *h, int32_t bl, int want_regex) {
    const tok_json_doc *d = h->d;
    if (is_true(d, bl, "add_prefix_space"))
        return HF_FAIL(h, "pre_tokenizer ByteLevel add_prefix_space is not supported");
    int32_t ur = tok_json_get(d, bl, "use_regex");
    int use_regex = ur < 0 || tok_json_type(d, ur) == TOK_JSON_TRUE; /* HF's default is true */
    if (use_regex != want_regex)
        return HF_FAIL(h, "%s", want_regex ? "pre_tokenizer ByteLevel without use_regex needs a Split before it"
                                           : "pre_tokenizer ByteLevel after a Split must have use_regex false");
    return 0;
}

static int read_pre(struct hf *h, int32_t p) {
    const tok_json_doc *d = h->d;
    char b[64];
    if (p < 0 || tok_json_type(d, p) == TOK_JSON_NULL)
        return HF_FAIL(h, "pre_tokenizer is missing (byte-level BPE needs ByteLevel)");
    if (tok_json_type(d, p) != TOK_JSON_OBJ) return HF_FAIL(h, "pre_tokenizer is not an object");
    int32_t t = type_of(d, p);
    if (tok_json_str_is(d, t, "ByteLevel")) {
        int rc = byte_level_ok(h, p, 1);
        if (rc) return rc;
        h->v->pre = TOK_PRE_DEFAULT;
        return 0;
    }
    if (!tok_json_str_is(d, t, "Sequence"))
        return HF_FAIL(h, "pre_tokenizer '%s' is not supported", show(d, t, b, sizeof b));
    int32_t arr = tok_json_get(d, p, "pretokenizers");
    if (tok_json_type(d, arr) != TOK_JSON_ARR || d->nodes[arr].n != 2)
        return HF_FAIL(h, "pre_tokenizer Sequence must be [Split, ByteLevel]");
    int32_t sp = d->nodes[arr].first, bl = d->nodes[sp].next;
    if (tok_json_type(d, sp) != TOK_JSON_OBJ || !tok_json_str_is(d, type_of(d, sp), "Split") ||
        tok_json_type(d, bl) != TOK_JSON_OBJ || !tok_json_str_is(d, type_of(d, bl), "ByteLevel"))
        return HF_FAIL(h, "pre_tokenizer Sequence must be [Split, ByteLevel]");
    if (!tok_json_str_is(d, tok_json_get(d, sp, "behavior"), "Isolated") || is_true(d, sp, "invert"))
        return HF_FAIL(h, "pre_tokenizer Split must have behavior Isolated and invert false");
    int32_t re = tok_json_get(d, tok_json_get(d, sp, "pattern"), "Regex");
    size_t rl;
    const char *rs = tok_json_str(d, re, &rl);
    if (!rs) return HF_FAIL(h, "pre_tokenizer Split.pattern.Regex is missing (String patterns are not supported)");
    int found = -1;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(k_regex); i++)
        if (strlen(k_regex[i].re) == rl && memcmp(k_regex[i].re, rs, rl) == 0) found = (int)i;
    if (found < 0)
        return HF_FAIL(h, "pre_tokenizer Split regex '%.*s%s' is not one we implement (Qwen2, Llama-3, o200k, GPT-2)",
                       (int)(rl > 48 ? 48 : rl), rs, rl > 48 ? "..." : "");
    int rc = byte_level_ok(h, bl, 0);
    if (rc) return rc;
    h->v->pre = k_regex[found].pre;
    return 0;
}

/* the single id of special_tokens[name] */
static int template_id(struct hf *h, int32_t tp, int32_t item, int32_t *id) {
    const tok_json_doc *d = h->d;
    int32_t name = tok_json_get(d, item, "id");
    size_t nl;
    const char *ns = tok_json_str(d, name, &nl);
    if (!ns) return HF_FAIL(h, "post_processor SpecialToken without an id");
    int32_t st = tok_json_get(d, tp, "special_tokens");
    int32_t ent = -1;
    if (tok_json_type(d, st) == TOK_JSON_OBJ)
        for (int32_t k = d->nodes[st].first; k >= 0; k = d->nodes[d->nodes[k].next].next) {
            size_t kl;
            const char *ks = tok_json_str(d, k, &kl);
            if (kl == nl && memcmp(ks, ns, nl) == 0) ent = d->nodes[k].next;
        }
    int32_t ids = tok_json_get(d, ent, "ids");
    if (tok_json_type(d, ids) != TOK_JSON_ARR || d->nodes[ids].n != 1)
        return HF_FAIL(h, "post_processor special token '%.*s' needs exactly one id in special_tokens",
                       (int)(nl > 40 ? 40 : nl), ns);
    int rc = read_id(h, d->nodes[ids].first, "post_processor special token", id);
    if (rc) return rc;
    if (*id >= h->v->n) return HF_FAIL(h, "post_processor special token id %d is not a token", *id);
    return 0;
}

static int read_post(struct hf *h, int32_t p, int depth) {
    const tok_json_doc *d = h->d;
    char b[64];
    if (p < 0 || tok_json_type(d, p) == TOK_JSON_NULL) return 0;
    if (tok_json_type(d, p) != TOK_JSON_OBJ) return HF_FAIL(h, "post_processor is not an object");
    int32_t t = type_of(d, p);
    if (tok_json_str_is(d, t, "ByteLevel")) return 0; /* offsets only */
    if (tok_json_str_is(d, t, "Sequence") && depth == 0) {
        int32_t arr = tok_json_get(d, p, "processors");
        if (tok_json_type(d, arr) != TOK_JSON_ARR) return HF_FAIL(h, "post_processor.processors is not an array");
        for (int32_t e = d->nodes[arr].first; e >= 0; e = d->nodes[e].next) {
            int rc = read_post(h, e, depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    if (!tok_json_str_is(d, t, "TemplateProcessing"))
        return HF_FAIL(h, "post_processor '%s' is not supported", show(d, t, b, sizeof b));
    int32_t single = tok_json_get(d, p, "single");
    if (tok_json_type(d, single) != TOK_JSON_ARR)
        return HF_FAIL(h, "post_processor TemplateProcessing.single is not an array");
    int seen_a = 0, n_before = 0, n_after = 0;
    for (int32_t e = d->nodes[single].first; e >= 0; e = d->nodes[e].next) {
        int32_t seq = tok_json_get(d, e, "Sequence"), sp = tok_json_get(d, e, "SpecialToken");
        if (tok_json_type(d, seq) == TOK_JSON_OBJ && !seen_a) {
            seen_a = 1;
        } else if (tok_json_type(d, sp) == TOK_JSON_OBJ) {
            int32_t id;
            int rc = template_id(h, p, sp, &id);
            if (rc) return rc;
            if (!seen_a) h->v->bos = id, h->v->add_bos = 1, n_before++;
            else h->v->eos = id, h->v->add_eos = 1, n_after++;
        } else {
            return HF_FAIL(h,
                           "post_processor TemplateProcessing.single has an item that is not $A or one special token");
        }
    }
    if (!seen_a || n_before > 1 || n_after > 1)
        return HF_FAIL(h, "post_processor TemplateProcessing.single must be [BOS] $A [EOS]");
    return 0;
}

static int read_decoder(struct hf *h, int32_t p) {
    const tok_json_doc *d = h->d;
    char b[64];
    if (p < 0 || tok_json_type(d, p) == TOK_JSON_NULL) return HF_FAIL(h, "decoder is missing (ByteLevel needed)");
    if (tok_json_type(d, p) != TOK_JSON_OBJ || !tok_json_str_is(d, type_of(d, p), "ByteLevel"))
        return HF_FAIL(h, "decoder '%s' is not supported (ByteLevel only)", show(d, type_of(d, p), b, sizeof b));
    return 0;
}

/* the model's GGUF vocabulary (if any) must be this one: same text at every
 * id both have (the GGUF may be padded with more) */
static int check_gguf(struct hf *h, const gguf_ctx *g) {
    gguf_arr toks;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) != 0 || toks.type != GGUF_T_STRING) return 0;
    tok_vocab *v = h->v;
    for (int32_t i = 0; i < h->n && (uint64_t)i < toks.n; i++) {
        gguf_str s;
        if (gguf_arr_str(g, &toks, (uint64_t)i, &s)) return 0;
        if (h->text_node[i] < 0) continue;
        if (s.len != v->len[i] || memcmp(s.ptr, tok_txt(v, i), v->len[i]) != 0)
            return HF_FAIL(h, "token %d is '%.40s' but the model's GGUF vocabulary has '%.*s' there (another "
                           "vocabulary?)", i, tok_txt(v, i), (int)(s.len < 40 ? s.len : 40), s.ptr);
    }
    return 0;
}

int tok_load_hf_json_mem(const char *buf, size_t len, const struct tok_hf_opts *o, tok_vocab **out, char *err,
                         size_t errlen) {
    LLORCH_ASSERT(out);
    *out = NULL;
    if (!buf && len) return util_fail(err, errlen, -EINVAL, "tokenizer.json: no data");
    int32_t n_pad = o ? o->n_pad : 0;
    if (n_pad < 0 || n_pad > TOK_HF_MAX_TOKENS)
        return util_fail(err, errlen, -EINVAL, "tokenizer.json: n_pad %d out of range", n_pad);
    tok_json_doc d;
    char jerr[160];
    int rc = tok_json_parse(buf, len, &d, jerr, sizeof jerr);
    if (rc) return util_fail(err, errlen, rc, "tokenizer.json: %s", jerr);
    tok_vocab *v = calloc(1, sizeof *v);
    struct hf h = {&d, v, err, errlen, NULL, NULL, 0};
    if (!v) {
        rc = util_fail(err, errlen, -ENOMEM, "tokenizer.json: out of memory");
        goto done;
    }
    v->kind = TOK_KIND_BPE;
    v->hf_json = 1;
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = -1;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = -1;
    if (tok_json_type(&d, 0) != TOK_JSON_OBJ) {
        rc = HF_FAIL(&h, "the top level is not an object");
        goto done;
    }
    if ((rc = read_model(&h, tok_json_get(&d, 0, "model")))) goto done;
    if ((rc = read_added(&h, tok_json_get(&d, 0, "added_tokens")))) goto done;
    if ((rc = build_tokens(&h, n_pad))) goto done;
    if ((rc = read_merges(&h, tok_json_get(&d, tok_json_get(&d, 0, "model"), "merges")))) goto done;
    if ((rc = read_normalizer(&h, tok_json_get(&d, 0, "normalizer")))) goto done;
    if ((rc = read_pre(&h, tok_json_get(&d, 0, "pre_tokenizer")))) goto done;
    if ((rc = read_post(&h, tok_json_get(&d, 0, "post_processor"), 0))) goto done;
    if ((rc = read_decoder(&h, tok_json_get(&d, 0, "decoder")))) goto done;
    int32_t unk = tok_json_get(&d, tok_json_get(&d, 0, "model"), "unk_token");
    if (tok_json_type(&d, unk) == TOK_JSON_STR) {
        size_t ul;
        const char *us = tok_json_str(&d, unk, &ul);
        v->unk = tok_lookup(v, us, ul);
    }
    if (o && o->model) {
        if ((rc = check_gguf(&h, o->model))) goto done;
        /* ids the template set win; the GGUF names eos/eot/... of the same vocabulary */
        int32_t bos = v->bos, eos = v->eos;
        tok_vocab_gguf_ids(v, o->model);
        if (v->add_bos) v->bos = bos;
        if (v->add_eos) v->eos = eos;
    }
    rc = tok_vocab_finish(v, err, errlen);
done:
    free(h.text_node);
    free(h.attr);
    tok_json_free(&d);
    if (rc) {
        tok_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

int tok_load_hf_json(const char *path, const struct tok_hf_opts *o, tok_vocab **out, char *err, size_t errlen) {
    LLORCH_ASSERT(path && out);
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = util_read_file(path, TOK_JSON_MAX_INPUT, &buf, &len, err, errlen);
    if (rc) return rc;
    rc = tok_load_hf_json_mem(buf, len, o, out, err, errlen);
    free(buf);
    return rc;
}
