/* json — the strict tokenizer.json reader (json.h). Recursive descent with a
 * depth limit; nodes in one growing array, decoded strings in one pool sized
 * to the input up front (a decoded string is never longer than its source).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tokenizer/json.h"
#include "tokenizer/tok_internal.h"

struct tok_json_p {
    const unsigned char *s;
    size_t n, i;
    tok_json_doc *d;
    int32_t cap;
    size_t pool_len;
    char *err;
    size_t errlen;
};

static int perr(struct tok_json_p *p, int code, const char *what) {
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "json: %s at byte %zu", what, p->i);
    return code;
}

static int32_t new_node(struct tok_json_p *p, uint8_t type) {
    if (p->d->n_nodes == p->cap) {
        if (p->cap >= INT32_MAX / 2) return -1;
        int32_t nc = p->cap ? p->cap * 2 : 1024;
        tok_json_node *nn = realloc(p->d->nodes, sizeof *nn * (size_t)nc);
        if (!nn) return -1;
        p->d->nodes = nn;
        p->cap = nc;
    }
    int32_t id = p->d->n_nodes++;
    p->d->nodes[id] = (tok_json_node){type, 0, 0, -1, -1};
    return id;
}

static void skip_ws(struct tok_json_p *p) {
    while (p->i < p->n) {
        unsigned char c = p->s[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int hex4(const unsigned char *s, uint32_t *v) {
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        unsigned c = s[k];
        int h = c >= '0' && c <= '9' ? (int)(c - '0') : c >= 'a' && c <= 'f' ? (int)(c - 'a' + 10)
              : c >= 'A' && c <= 'F' ? (int)(c - 'A' + 10) : -1;
        if (h < 0) return -1;
        x = x * 16 + (uint32_t)h;
    }
    *v = x;
    return 0;
}

/* strict UTF-8: length of the valid sequence at s[0..n), 0 when invalid */
static int utf8_strict(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* p->i at the opening quote; decodes into the pool */
static int parse_string(struct tok_json_p *p, int32_t *out) {
    int32_t id = new_node(p, TOK_JSON_STR);
    if (id < 0) return perr(p, -ENOMEM, "out of memory");
    p->i++;
    size_t start = p->pool_len;
    char *o = p->d->pool + start;
    size_t k = 0;
    for (;;) {
        if (p->i >= p->n) return perr(p, -EINVAL, "unterminated string");
        unsigned char c = p->s[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) return perr(p, -EINVAL, "unescaped control character in string");
        if (c == '\\') {
            if (p->i + 1 >= p->n) return perr(p, -EINVAL, "unterminated string");
            unsigned char e = p->s[p->i + 1];
            char simple = e == '"' ? '"' : e == '\\' ? '\\' : e == '/' ? '/' : e == 'b' ? '\b' : e == 'f' ? '\f'
                        : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : 0;
            if (simple) {
                o[k++] = simple;
                p->i += 2;
                continue;
            }
            if (e != 'u') return perr(p, -EINVAL, "invalid escape in string");
            uint32_t cp;
            if (p->i + 6 > p->n || hex4(p->s + p->i + 2, &cp)) return perr(p, -EINVAL, "invalid \\u escape");
            p->i += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return perr(p, -EINVAL, "lone low surrogate escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u' || hex4(p->s + p->i + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return perr(p, -EINVAL, "lone high surrogate escape");
                p->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            k += (size_t)util_utf8_encode(cp, o + k); /* a scalar value here: lone surrogates were refused */
            continue;
        }
        int l = utf8_strict(p->s + p->i, p->n - p->i);
        if (!l) return perr(p, -EINVAL, "invalid UTF-8 in string");
        memcpy(o + k, p->s + p->i, (size_t)l);
        k += (size_t)l;
        p->i += (size_t)l;
    }
    if (k > UINT32_MAX) return perr(p, -E2BIG, "string too long");
    p->d->nodes[id].off = start;
    p->d->nodes[id].n = (uint32_t)k;
    p->pool_len += k;
    *out = id;
    return 0;
}

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int parse_number(struct tok_json_p *p, int32_t *out) {
    size_t b = p->i;
    const unsigned char *s = p->s;
    if (p->i < p->n && s[p->i] == '-') p->i++;
    if (p->i >= p->n || !is_digit(s[p->i])) return perr(p, -EINVAL, "invalid number");
    if (s[p->i] == '0') {
        p->i++;
        if (p->i < p->n && is_digit(s[p->i])) return perr(p, -EINVAL, "leading zero in number");
    } else {
        while (p->i < p->n && is_digit(s[p->i])) p->i++;
    }
    if (p->i < p->n && s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || !is_digit(s[p->i])) return perr(p, -EINVAL, "invalid number fraction");
        while (p->i < p->n && is_digit(s[p->i])) p->i++;
    }
    if (p->i < p->n && (s[p->i] == 'e' || s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (s[p->i] == '+' || s[p->i] == '-')) p->i++;
        if (p->i >= p->n || !is_digit(s[p->i])) return perr(p, -EINVAL, "invalid number exponent");
        while (p->i < p->n && is_digit(s[p->i])) p->i++;
    }
    if (p->i - b > UINT32_MAX) return perr(p, -E2BIG, "number too long");
    int32_t id = new_node(p, TOK_JSON_NUM);
    if (id < 0) return perr(p, -ENOMEM, "out of memory");
    p->d->nodes[id].off = b;
    p->d->nodes[id].n = (uint32_t)(p->i - b);
    *out = id;
    return 0;
}

static int lit(struct tok_json_p *p, const char *w, uint8_t type, int32_t *out) {
    size_t l = strlen(w);
    if (p->n - p->i < l || memcmp(p->s + p->i, w, l) != 0) return perr(p, -EINVAL, "invalid literal");
    p->i += l;
    int32_t id = new_node(p, type);
    if (id < 0) return perr(p, -ENOMEM, "out of memory");
    *out = id;
    return 0;
}

static int keys_equal(const tok_json_doc *d, int32_t a, int32_t b) {
    return d->nodes[a].n == d->nodes[b].n &&
           memcmp(d->pool + d->nodes[a].off, d->pool + d->nodes[b].off, d->nodes[a].n) == 0;
}

/* duplicate keys in object obj: 0, 1 (found), or -ENOMEM */
static int has_dup_keys(const tok_json_doc *d, int32_t obj) {
    uint32_t members = d->nodes[obj].n / 2;
    if (members < 2) return 0;
    if (members <= 16) {
        for (int32_t a = d->nodes[obj].first; a >= 0; a = d->nodes[d->nodes[a].next].next)
            for (int32_t b = d->nodes[d->nodes[a].next].next; b >= 0; b = d->nodes[d->nodes[b].next].next)
                if (keys_equal(d, a, b)) return 1;
        return 0;
    }
    uint32_t slots = 32;
    while (slots < members * 2u) slots <<= 1;
    int32_t *t = malloc(sizeof *t * slots);
    if (!t) return -ENOMEM;
    memset(t, 0xff, sizeof *t * slots);
    int dup = 0;
    for (int32_t a = d->nodes[obj].first; a >= 0 && !dup; a = d->nodes[d->nodes[a].next].next) {
        uint64_t h = tok_hash_bytes(TOK_HASH_SEED, d->pool + d->nodes[a].off, d->nodes[a].n);
        for (uint32_t j = (uint32_t)h & (slots - 1);; j = (j + 1) & (slots - 1)) {
            if (t[j] < 0) { t[j] = a; break; }
            if (keys_equal(d, t[j], a)) { dup = 1; break; }
        }
    }
    free(t);
    return dup;
}

static int parse_value(struct tok_json_p *p, int depth, int32_t *out);

/* arrays and objects: children chained in order */
static int parse_container(struct tok_json_p *p, int depth, int32_t *out) {
    int is_obj = p->s[p->i] == '{';
    if (depth >= TOK_JSON_MAX_DEPTH) return perr(p, -E2BIG, "nesting too deep");
    int32_t id = new_node(p, is_obj ? TOK_JSON_OBJ : TOK_JSON_ARR);
    if (id < 0) return perr(p, -ENOMEM, "out of memory");
    p->i++;
    skip_ws(p);
    int32_t last = -1;
    uint64_t count = 0;
    char close = is_obj ? '}' : ']';
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        *out = id;
        return 0;
    }
    for (;;) {
        int rc;
        int32_t child;
        if (is_obj) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') return perr(p, -EINVAL, "expected a string key");
            if ((rc = parse_string(p, &child))) return rc;
            if (last >= 0) p->d->nodes[last].next = child;
            else p->d->nodes[id].first = child;
            last = child;
            count++;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') return perr(p, -EINVAL, "expected ':'");
            p->i++;
        }
        if ((rc = parse_value(p, depth + 1, &child))) return rc;
        if (last >= 0) p->d->nodes[last].next = child;
        else p->d->nodes[id].first = child;
        last = child;
        count++;
        skip_ws(p);
        if (p->i >= p->n) return perr(p, -EINVAL, is_obj ? "unterminated object" : "unterminated array");
        if (p->s[p->i] == ',') {
            p->i++;
            skip_ws(p);
            continue;
        }
        if (p->s[p->i] == close) {
            p->i++;
            break;
        }
        return perr(p, -EINVAL, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    if (count > UINT32_MAX) return perr(p, -E2BIG, "too many members");
    p->d->nodes[id].n = (uint32_t)count;
    if (is_obj) {
        int dup = has_dup_keys(p->d, id);
        if (dup < 0) return perr(p, -ENOMEM, "out of memory");
        if (dup) return perr(p, -EINVAL, "duplicate key in object ending");
    }
    *out = id;
    return 0;
}

static int parse_value(struct tok_json_p *p, int depth, int32_t *out) {
    skip_ws(p);
    if (p->i >= p->n) return perr(p, -EINVAL, "unexpected end of input");
    switch (p->s[p->i]) {
    case '{': case '[': return parse_container(p, depth, out);
    case '"': return parse_string(p, out);
    case 't': return lit(p, "true", TOK_JSON_TRUE, out);
    case 'f': return lit(p, "false", TOK_JSON_FALSE, out);
    case 'n': return lit(p, "null", TOK_JSON_NULL, out);
    default: return parse_number(p, out);
    }
}

int tok_json_parse(const char *src, size_t len, tok_json_doc *doc, char *err, size_t errlen) {
    memset(doc, 0, sizeof *doc);
    if (!src && len) return -EINVAL;
    struct tok_json_p p = {(const unsigned char *)src, len, 0, doc, 0, 0, err, errlen};
    if (len > TOK_JSON_MAX_INPUT) return perr(&p, -E2BIG, "input too large");
    doc->src = src;
    doc->pool = malloc(len + 1);
    if (!doc->pool) return perr(&p, -ENOMEM, "out of memory");
    int32_t root;
    int rc = parse_value(&p, 0, &root);
    if (!rc) {
        skip_ws(&p);
        if (p.i != p.n) rc = perr(&p, -EINVAL, "trailing characters after the value");
    }
    if (rc) {
        tok_json_free(doc);
        return rc;
    }
    LLORCH_ASSERT(root == 0);
    return 0;
}

void tok_json_free(tok_json_doc *doc) {
    if (!doc) return;
    free(doc->nodes);
    free(doc->pool);
    memset(doc, 0, sizeof *doc);
}

int32_t tok_json_get(const tok_json_doc *d, int32_t obj, const char *key) {
    if (tok_json_type(d, obj) != TOK_JSON_OBJ) return -1;
    for (int32_t k = d->nodes[obj].first; k >= 0; k = d->nodes[d->nodes[k].next].next)
        if (tok_json_str_is(d, k, key)) return d->nodes[k].next;
    return -1;
}

const char *tok_json_str(const tok_json_doc *d, int32_t i, size_t *len) {
    if (tok_json_type(d, i) != TOK_JSON_STR) return NULL;
    *len = d->nodes[i].n;
    return d->pool + d->nodes[i].off;
}

int tok_json_str_is(const tok_json_doc *d, int32_t i, const char *s) {
    size_t n;
    const char *t = tok_json_str(d, i, &n);
    return t && n == strlen(s) && memcmp(t, s, n) == 0;
}

int tok_json_int(const tok_json_doc *d, int32_t i, int64_t lo, int64_t hi, int64_t *out) {
    if (tok_json_type(d, i) != TOK_JSON_NUM) return -EINVAL;
    const char *s = d->src + d->nodes[i].off;
    uint32_t n = d->nodes[i].n, k = 0;
    int neg = 0;
    if (s[0] == '-') neg = 1, k = 1;
    uint64_t v = 0;
    for (; k < n; k++) {
        if (!is_digit((unsigned char)s[k])) return -EINVAL; /* fraction or exponent */
        if (v > (UINT64_MAX - 9) / 10) return -ERANGE;
        v = v * 10 + (uint64_t)(s[k] - '0');
    }
    if (v > (uint64_t)INT64_MAX) return -ERANGE;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < lo || x > hi) return -ERANGE;
    *out = x;
    return 0;
}
