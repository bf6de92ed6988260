/* config — see config.h. Layout of this file:
 *   1. YAML → node tree (libyaml document API, capped in size and depth)
 *   2. scalar parsers
 *   3. layering: defaults, file, env, flags
 *   4. typing + validation
 *   5. getters, usage, dump
 */
#include "common/config.h"

#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

extern char **environ;

#define CFG_MAX_FILE (1u << 20)   /* 1 MiB of YAML is far more than any real config */
#define CFG_MAX_NODES 100000      /* aliases can multiply nodes: cap the copy */
#define CFG_MAX_DEPTH 64
#define CFG_MAX_LIST 4096

/* ======================================================================
 * 1. node tree
 * ==================================================================== */
struct cfg_node {
    enum cfg_node_kind kind;
    char *text;               /* SCALAR */
    size_t n, cap;
    char **keys;              /* MAP: n keys */
    struct cfg_node **items;  /* SEQ items / MAP values */
};

static void node_free(struct cfg_node *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys) free(n->keys[i]);
        node_free(n->items[i]);
    }
    free(n->keys);
    free(n->items);
    free(n->text);
    free(n);
}

static int node_push(struct cfg_node *n, char *key, struct cfg_node *item) {
    if (n->n == n->cap) {
        size_t nc = n->cap ? n->cap * 2 : 4;
        struct cfg_node **ni = realloc(n->items, nc * sizeof *ni);
        if (!ni) return -ENOMEM;
        n->items = ni;
        if (n->kind == CFG_NODE_MAP) {
            char **nk = realloc(n->keys, nc * sizeof *nk);
            if (!nk) return -ENOMEM;
            n->keys = nk;
        }
        n->cap = nc;
    }
    if (n->kind == CFG_NODE_MAP) n->keys[n->n] = key;
    n->items[n->n++] = item;
    return 0;
}

struct conv { yaml_document_t *doc; size_t count; char *err; size_t errlen; };

static struct cfg_node *conv_node(struct conv *cv, yaml_node_t *y, int depth) {
    if (!y) { util_fail(cv->err, cv->errlen, -EINVAL, "config: dangling YAML node"); return NULL; }
    if (depth > CFG_MAX_DEPTH || ++cv->count > CFG_MAX_NODES) {
        util_fail(cv->err, cv->errlen, -EINVAL, "config: YAML too deep or too large (max depth %d, %d nodes)",
                  CFG_MAX_DEPTH, CFG_MAX_NODES);
        return NULL;
    }
    struct cfg_node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    switch (y->type) {
    case YAML_SCALAR_NODE:
        n->kind = CFG_NODE_SCALAR;
        n->text = strndup((const char *)y->data.scalar.value, y->data.scalar.length);
        if (!n->text || strlen(n->text) != y->data.scalar.length) {
            util_fail(cv->err, cv->errlen, -EINVAL, "config: NUL byte in a YAML scalar");
            node_free(n);
            return NULL;
        }
        return n;
    case YAML_SEQUENCE_NODE:
        n->kind = CFG_NODE_SEQ;
        for (yaml_node_item_t *it = y->data.sequence.items.start; it < y->data.sequence.items.top; it++) {
            struct cfg_node *c = conv_node(cv, yaml_document_get_node(cv->doc, *it), depth + 1);
            if (!c || node_push(n, NULL, c) < 0) { node_free(c); node_free(n); return NULL; }
        }
        return n;
    case YAML_MAPPING_NODE:
        n->kind = CFG_NODE_MAP;
        for (yaml_node_pair_t *p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(cv->doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                util_fail(cv->err, cv->errlen, -EINVAL, "config: YAML map keys must be scalars");
                node_free(n);
                return NULL;
            }
            char *key = strndup((const char *)k->data.scalar.value, k->data.scalar.length);
            for (size_t i = 0; key && i < n->n; i++)
                if (strcmp(n->keys[i], key) == 0) {
                    util_fail(cv->err, cv->errlen, -EINVAL, "config: duplicate YAML key '%s'", key);
                    free(key);
                    node_free(n);
                    return NULL;
                }
            struct cfg_node *c = key ? conv_node(cv, yaml_document_get_node(cv->doc, p->value), depth + 1) : NULL;
            if (!c || node_push(n, key, c) < 0) { free(key); node_free(c); node_free(n); return NULL; }
        }
        return n;
    default:
        node_free(n);
        util_fail(cv->err, cv->errlen, -EINVAL, "config: empty YAML node");
        return NULL;
    }
}

/* Refuses nesting deeper than CFG_MAX_DEPTH before the document is loaded.
 * libyaml's scanner is quadratic in the flow nesting depth ("[[[[..." of
 * 1 MiB takes minutes in yaml_parser_load, long before conv_node's depth cap
 * sees the tree), but it scans only as far as it is asked: pulling events and
 * stopping at the first collection too deep bounds the work by the allowed
 * depth. Syntax errors are left to the load that follows (same message).
 * Returns 0, or CFG_EUSAGE with the message. */
static int yaml_depth_check(const char *text, size_t len, const char *name, char *err, size_t errlen) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return util_fail(err, errlen, -ENOMEM, "config: out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) break; /* a syntax error: the load reports it */
        yaml_event_type_t t = ev.type;
        size_t line = ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > CFG_MAX_DEPTH) {
                rc = util_fail(err, errlen, CFG_EUSAGE,
                               "config %s: YAML nested deeper than %d levels (line %zu)", name, CFG_MAX_DEPTH, line);
                break;
            }
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (t == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

/* Parses YAML text into a tree; an empty document gives an empty map. */
static int yaml_to_tree(const char *text, size_t len, const char *name, struct cfg_node **out,
                        char *err, size_t errlen) {
    yaml_parser_t p;
    yaml_document_t doc;
    *out = NULL;
    int drc = yaml_depth_check(text, len, name, err, errlen);
    if (drc < 0) return drc;
    if (!yaml_parser_initialize(&p)) return util_fail(err, errlen, -ENOMEM, "config: out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        int rc = util_fail(err, errlen, CFG_EUSAGE, "config %s: YAML error at line %zu: %s", name,
                           p.problem_mark.line + 1, p.problem ? p.problem : "?");
        yaml_parser_delete(&p);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    struct cfg_node *t = NULL;
    int rc = 0;
    if (!root) {
        t = calloc(1, sizeof *t);
        if (t) t->kind = CFG_NODE_MAP;
    } else {
        struct conv cv = { &doc, 0, err, errlen };
        t = conv_node(&cv, root, 0);
        if (t && t->kind != CFG_NODE_MAP) {
            node_free(t);
            t = NULL;
            util_fail(err, errlen, -EINVAL, "config %s: the top level must be a map", name);
        }
    }
    if (!t) rc = CFG_EUSAGE;
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    *out = t;
    return rc;
}

enum cfg_node_kind cfg_node_kind(const struct cfg_node *n) { return n ? n->kind : CFG_NODE_SCALAR; }
size_t cfg_node_len(const struct cfg_node *n) { return n && n->kind != CFG_NODE_SCALAR ? n->n : 0; }
const struct cfg_node *cfg_node_at(const struct cfg_node *n, size_t i) {
    return n && n->kind != CFG_NODE_SCALAR && i < n->n ? n->items[i] : NULL;
}
const char *cfg_node_key_at(const struct cfg_node *n, size_t i) {
    return n && n->kind == CFG_NODE_MAP && i < n->n ? n->keys[i] : NULL;
}
const struct cfg_node *cfg_node_get(const struct cfg_node *n, const char *key) {
    if (!n || n->kind != CFG_NODE_MAP || !key) return NULL;
    for (size_t i = 0; i < n->n; i++)
        if (strcmp(n->keys[i], key) == 0) return n->items[i];
    return NULL;
}
const char *cfg_node_str(const struct cfg_node *n) {
    return n && n->kind == CFG_NODE_SCALAR ? n->text : NULL;
}

/* Walks a dotted path from the root map. */
static const struct cfg_node *node_path(const struct cfg_node *root, const char *path) {
    char seg[128];
    const struct cfg_node *n = root;
    while (n && *path) {
        const char *dot = strchr(path, '.');
        size_t l = dot ? (size_t)(dot - path) : strlen(path);
        if (l >= sizeof seg) return NULL;
        memcpy(seg, path, l);
        seg[l] = 0;
        n = cfg_node_get(n, seg);
        path += l + (dot ? 1 : 0);
    }
    return n;
}

/* ======================================================================
 * 2. scalar parsers
 * ==================================================================== */
static const char *skip_ws(const char *s) { while (*s && isspace((unsigned char)*s)) s++; return s; }
static int only_ws(const char *s) { return *skip_ws(s) == 0; }

int cfg_parse_int(const char *s, int64_t *out) {
    if (!s) return -EINVAL;
    s = skip_ws(s);
    if (!*s) return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || !only_ws(end)) return -EINVAL;
    *out = v;
    return 0;
}

int cfg_parse_u64(const char *s, uint64_t *out) {
    if (!s) return -EINVAL;
    s = skip_ws(s);
    if (!isdigit((unsigned char)*s)) return -EINVAL; /* rejects "-1", which strtoull would wrap */
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -EINVAL;
    static const struct { const char *suf; uint64_t mul; } sufs[] = {
        { "", 1 }, { "K", 1000ull }, { "M", 1000000ull }, { "G", 1000000000ull }, { "T", 1000000000000ull },
        { "KB", 1000ull }, { "MB", 1000000ull }, { "GB", 1000000000ull }, { "TB", 1000000000000ull },
        { "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 }, { "TiB", 1ull << 40 },
    };
    const char *suf = skip_ws(end);
    size_t sl = strlen(suf);
    while (sl && isspace((unsigned char)suf[sl - 1])) sl--;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(sufs); i++) {
        if (strlen(sufs[i].suf) == sl && strncmp(suf, sufs[i].suf, sl) == 0) {
            if (v > UINT64_MAX / sufs[i].mul) return -ERANGE;
            *out = v * sufs[i].mul;
            return 0;
        }
    }
    return -EINVAL;
}

int cfg_parse_float(const char *s, double *out) {
    if (!s) return -EINVAL;
    s = skip_ws(s);
    if (!*s) return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !only_ws(end) || !isfinite(v)) return -EINVAL;
    *out = v;
    return 0;
}

int cfg_parse_bool(const char *s, int *out) {
    static const char *t[] = { "true", "yes", "on", "1" }, *f[] = { "false", "no", "off", "0" };
    if (!s) return -EINVAL;
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(s, f[i]) == 0) { *out = 0; return 0; }
    }
    return -EINVAL;
}

int cfg_parse_duration_ms(const char *s, int64_t *out) {
    if (!s) return -EINVAL;
    s = skip_ws(s);
    if (!isdigit((unsigned char)*s)) return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno) return -ERANGE;
    const char *u = skip_ws(end);
    int64_t mul;
    if (only_ws(u) || strncmp(u, "ms", 2) == 0) mul = 1, u += only_ws(u) ? 0 : 2;
    else if (*u == 's') mul = 1000, u++;
    else if (*u == 'm') mul = 60000, u++;
    else if (*u == 'h') mul = 3600000, u++;
    else return -EINVAL;
    if (!only_ws(u)) return -EINVAL;
    if (v > INT64_MAX / mul) return -ERANGE;
    *out = v * mul;
    return 0;
}

int cfg_parse_hostport(const char *s, char *host, size_t hcap, int *port) {
    if (!s || !*s || !host || hcap == 0) return -EINVAL;
    const char *h = s, *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':') return -EINVAL;
        h = s + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon) return -EINVAL; /* bare IPv6 needs brackets */
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hcap) return -EINVAL;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == '@') return -EINVAL;
    int64_t p;
    if (cfg_parse_int(colon + 1, &p) < 0 || p < 0 || p > 65535) return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = (int)p;
    return 0;
}

int cfg_validate_hostport(const struct cfg *c, const char *key, char *err, size_t errlen) {
    char host[256];
    int port;
    if (cfg_parse_hostport(cfg_str(c, key), host, sizeof host, &port) < 0)
        return util_fail(err, errlen, -EINVAL, "'%s' is not HOST:PORT", cfg_str(c, key));
    return 0;
}

/* ======================================================================
 * 3. layering
 * ==================================================================== */
struct cfg_val {
    enum cfg_source src;
    char *raw;            /* winning text (NULL when unset or a list/tree from YAML) */
    char src_name[96];    /* "env LLORCH_X", "flag --x", "file k.y" */
    /* typed */
    int set;
    int64_t i;
    uint64_t u;
    double f;
    char **list;
    size_t nlist;
    const struct cfg_node *tree;  /* borrowed from cfg->root */
    const struct cfg_node *seq;   /* a YAML sequence given for a CFG_LIST */
};

struct cfg {
    const struct cfg_opt *table;
    size_t n;
    struct cfg_val *vals;
    struct cfg_node *root;        /* the YAML document (an empty map when none) */
    char *file_path;
};

/* Derived names are computed into caller buffers. */
static const char *opt_flag(const struct cfg_opt *o, char *buf, size_t cap) {
    if (o->flag) return o->flag;
    size_t j = 0;
    if (cap < 4) return "";
    buf[j++] = '-';
    buf[j++] = '-';
    for (const char *k = o->key; *k && j + 1 < cap; k++) buf[j++] = (*k == '.' || *k == '_') ? '-' : *k;
    buf[j] = 0;
    return buf;
}

static const char *opt_env(const struct cfg_opt *o, char *buf, size_t cap) {
    if (o->env) return o->env;
    char fb[128];
    const char *fl = opt_flag(o, fb, sizeof fb);
    const char *src = fl[0] ? fl + 2 : o->key;
    size_t j = (size_t)snprintf(buf, cap, "LLORCH_");
    for (; *src && j + 1 < cap; src++)
        buf[j++] = (*src == '-' || *src == '.') ? '_' : (char)toupper((unsigned char)*src);
    buf[j] = 0;
    return buf;
}

static const char *env_lookup(char *const *envp, const char *name) {
    if (!envp) return getenv(name);
    size_t l = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, l) == 0 && (*envp)[l] == '=') return *envp + l + 1;
    return NULL;
}

static int set_raw(struct cfg_val *v, const char *text, enum cfg_source src, const char *srcname) {
    char *d = strdup(text);
    if (!d) return -ENOMEM;
    free(v->raw);
    v->raw = d;
    v->src = src;
    v->seq = NULL;
    snprintf(v->src_name, sizeof v->src_name, "%s", srcname);
    return 0;
}

static int find_opt(const struct cfg *c, const char *key) {
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->table[i].key, key) == 0) return (int)i;
    return -1;
}

/* Every YAML key must be an option, a map above options, or inside a CFG_TREE. */
static int check_unknown_keys(const struct cfg *c, const struct cfg_node *m, const char *prefix,
                              char *err, size_t errlen) {
    for (size_t i = 0; i < m->n; i++) {
        char path[256];
        /* a key with a dot ("queue.capacity": 1) would join into an option's
         * path here but never be found by the segment-wise lookup: refuse it
         * rather than silently keep the default */
        if (strchr(m->keys[i], '.'))
            return util_fail(err, errlen, CFG_EUSAGE, "config: key '%s' under '%s' contains '.'; nest it as a map",
                             m->keys[i], *prefix ? prefix : "the top level");
        int pl = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", m->keys[i]);
        if (pl < 0 || (size_t)pl >= sizeof path)
            return util_fail(err, errlen, CFG_EUSAGE, "config: key path too long under '%s'", prefix);
        if (find_opt(c, path) >= 0) continue;
        int parent = 0;
        for (size_t j = 0; j < c->n && !parent; j++)
            parent = strncmp(c->table[j].key, path, (size_t)pl) == 0 && c->table[j].key[pl] == '.';
        if (!parent)
            return util_fail(err, errlen, CFG_EUSAGE, "config: unknown key '%s' in %s", path,
                             c->file_path ? c->file_path : "the YAML");
        if (m->items[i]->kind != CFG_NODE_MAP)
            return util_fail(err, errlen, CFG_EUSAGE, "config: '%s' must be a map", path);
        int rc = check_unknown_keys(c, m->items[i], path, err, errlen);
        if (rc < 0) return rc;
    }
    return 0;
}

static int layer_file(struct cfg *c, char *err, size_t errlen) {
    int rc = check_unknown_keys(c, c->root, "", err, errlen);
    if (rc < 0) return rc;
    for (size_t i = 0; i < c->n; i++) {
        const struct cfg_opt *o = &c->table[i];
        struct cfg_val *v = &c->vals[i];
        const struct cfg_node *nd = node_path(c->root, o->key);
        if (!nd) continue;
        char sn[96];
        snprintf(sn, sizeof sn, "file key %s", o->key);
        if (o->type == CFG_TREE) {
            v->tree = nd;
            v->src = CFG_SRC_FILE;
            snprintf(v->src_name, sizeof v->src_name, "%s", sn);
        } else if (nd->kind == CFG_NODE_SCALAR) {
            if ((rc = set_raw(v, nd->text, CFG_SRC_FILE, sn)) < 0) return rc;
        } else if (o->type == CFG_LIST && nd->kind == CFG_NODE_SEQ) {
            for (size_t k = 0; k < nd->n; k++)
                if (nd->items[k]->kind != CFG_NODE_SCALAR)
                    return util_fail(err, errlen, CFG_EUSAGE, "%s: list items must be scalars (from %s)",
                                     o->key, sn);
            free(v->raw);
            v->raw = NULL;
            v->seq = nd;
            v->src = CFG_SRC_FILE;
            snprintf(v->src_name, sizeof v->src_name, "%s", sn);
        } else {
            return util_fail(err, errlen, CFG_EUSAGE, "%s: expected a single value, got a %s (from %s)",
                             o->key, nd->kind == CFG_NODE_MAP ? "map" : "list", sn);
        }
    }
    return 0;
}

static int layer_env(struct cfg *c, char *const *envp) {
    for (size_t i = 0; i < c->n; i++) {
        const struct cfg_opt *o = &c->table[i];
        if (o->type == CFG_TREE) continue;
        char eb[128], sn[96];
        const char *name = opt_env(o, eb, sizeof eb);
        if (!name[0]) continue;
        const char *val = env_lookup(envp, name);
        if (!val) continue;
        snprintf(sn, sizeof sn, "env %s", name);
        int rc = set_raw(&c->vals[i], val, CFG_SRC_ENV, sn);
        if (rc < 0) return rc;
    }
    return 0;
}

static int is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

static int layer_flags(struct cfg *c, int argc, char *const *argv, char *err, size_t errlen) {
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (is_help(arg)) return CFG_HELP;
        if (strncmp(arg, "--", 2) != 0)
            return util_fail(err, errlen, CFG_EUSAGE, "unexpected argument '%s'", arg);
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nl == 8 && strncmp(arg, "--config", 8) == 0) { /* handled before layering */
            if (!eq) a++;
            continue;
        }
        int idx = -1;
        for (size_t i = 0; i < c->n && idx < 0; i++) {
            char fb[128];
            const char *fl = opt_flag(&c->table[i], fb, sizeof fb);
            if (fl[0] && strlen(fl) == nl && strncmp(fl, arg, nl) == 0 && c->table[i].type != CFG_TREE) idx = (int)i;
        }
        if (idx < 0) return util_fail(err, errlen, CFG_EUSAGE, "unknown flag '%.*s'", (int)nl, arg);
        const struct cfg_opt *o = &c->table[idx];
        const char *val;
        if (eq) val = eq + 1;
        else if (o->type == CFG_BOOL && (a + 1 >= argc || strncmp(argv[a + 1], "--", 2) == 0)) val = "true";
        else if (a + 1 < argc) val = argv[++a];
        else return util_fail(err, errlen, CFG_EUSAGE, "flag '%s' needs a value", arg);
        char sn[96];
        snprintf(sn, sizeof sn, "flag %.*s", (int)nl, arg);
        int rc = set_raw(&c->vals[idx], val, CFG_SRC_FLAG, sn);
        if (rc < 0) return rc;
    }
    return 0;
}

/* ======================================================================
 * 4. typing + validation
 * ==================================================================== */
static int list_push(struct cfg_val *v, const char *s, size_t l) {
    if (v->nlist >= CFG_MAX_LIST) return -E2BIG;
    char **nl = realloc(v->list, (v->nlist + 1) * sizeof *nl);
    if (!nl) return -ENOMEM;
    v->list = nl;
    if (!(v->list[v->nlist] = strndup(s, l))) return -ENOMEM;
    v->nlist++;
    return 0;
}

static int split_list(struct cfg_val *v, const char *s) {
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t l = comma ? (size_t)(comma - s) : strlen(s);
        const char *b = s, *e = s + l;
        while (b < e && isspace((unsigned char)*b)) b++;
        while (e > b && isspace((unsigned char)e[-1])) e--;
        if (e > b) {
            int rc = list_push(v, b, (size_t)(e - b));
            if (rc < 0) return rc;
        }
        if (!comma) break;
        s = comma + 1;
    }
    return 0;
}

static int enum_has(const char *enums, const char *s) {
    size_t l = strlen(s);
    while (enums && *enums) {
        const char *bar = strchr(enums, '|');
        size_t el = bar ? (size_t)(bar - enums) : strlen(enums);
        if (el == l && strncmp(enums, s, l) == 0) return 1;
        if (!bar) break;
        enums = bar + 1;
    }
    return 0;
}

static int type_value(struct cfg *c, size_t i, char *err, size_t errlen) {
    const struct cfg_opt *o = &c->table[i];
    struct cfg_val *v = &c->vals[i];
    const char *r = v->raw;
    const char *from = v->src_name[0] ? v->src_name : "default";
    int rc = 0;
    if (o->type == CFG_TREE) { v->set = v->tree != NULL; return 0; }
    if (!r && !v->seq) return 0;
    switch (o->type) {
    case CFG_INT:
        if (cfg_parse_int(r, &v->i) < 0)
            return util_fail(err, errlen, CFG_EUSAGE, "%s: '%s' is not an integer (from %s)", o->key, r, from);
        if (o->min < o->max && (v->i < o->min || v->i > o->max))
            return util_fail(err, errlen, CFG_EUSAGE, "%s: %lld is out of range [%lld, %lld] (from %s)", o->key,
                             (long long)v->i, (long long)o->min, (long long)o->max, from);
        break;
    case CFG_DURATION_MS:
        if (cfg_parse_duration_ms(r, &v->i) < 0)
            return util_fail(err, errlen, CFG_EUSAGE, "%s: '%s' is not a duration (ms, or with s/m/h) (from %s)",
                             o->key, r, from);
        if (o->min < o->max && (v->i < o->min || v->i > o->max))
            return util_fail(err, errlen, CFG_EUSAGE, "%s: %lld ms is out of range [%lld, %lld] (from %s)", o->key,
                             (long long)v->i, (long long)o->min, (long long)o->max, from);
        break;
    case CFG_U64:
        if (cfg_parse_u64(r, &v->u) < 0)
            return util_fail(err, errlen, CFG_EUSAGE, "%s: '%s' is not a non-negative integer (from %s)", o->key, r, from);
        break;
    case CFG_FLOAT:
        if (cfg_parse_float(r, &v->f) < 0)
            return util_fail(err, errlen, CFG_EUSAGE, "%s: '%s' is not a number (from %s)", o->key, r, from);
        if (o->fmin < o->fmax && (v->f < o->fmin || v->f > o->fmax))
            return util_fail(err, errlen, CFG_EUSAGE, "%s: %g is out of range [%g, %g] (from %s)", o->key, v->f,
                             o->fmin, o->fmax, from);
        break;
    case CFG_BOOL: {
        int b;
        if (cfg_parse_bool(r, &b) < 0)
            return util_fail(err, errlen, CFG_EUSAGE, "%s: '%s' is not a boolean (from %s)", o->key, r, from);
        v->i = b;
        break;
    }
    case CFG_STRING:
        if (o->min < o->max && (int64_t)strlen(r) < o->min)
            return util_fail(err, errlen, CFG_EUSAGE, "%s: must not be empty (from %s)", o->key, from);
        if (!util_utf8_valid(r, strlen(r)))
            return util_fail(err, errlen, CFG_EUSAGE, "%s: not valid UTF-8 (from %s)", o->key, from);
        break;
    case CFG_ENUM:
        if (!enum_has(o->enums, r))
            return util_fail(err, errlen, CFG_EUSAGE, "%s: '%s' is not one of %s (from %s)", o->key, r, o->enums, from);
        break;
    case CFG_LIST:
        if (v->seq) {
            for (size_t k = 0; k < v->seq->n && rc == 0; k++)
                rc = list_push(v, v->seq->items[k]->text, strlen(v->seq->items[k]->text));
        } else {
            rc = split_list(v, r);
        }
        if (rc < 0) return util_fail(err, errlen, CFG_EUSAGE, "%s: list too long (from %s)", o->key, from);
        if (o->min < o->max && ((int64_t)v->nlist < o->min || (int64_t)v->nlist > o->max))
            return util_fail(err, errlen, CFG_EUSAGE, "%s: %zu items, expected %lld..%lld (from %s)", o->key,
                             v->nlist, (long long)o->min, (long long)o->max, from);
        break;
    case CFG_TREE:
        break;
    }
    v->set = 1;
    return 0;
}

static void cfg_init_vals(struct cfg *c) {
    for (size_t i = 0; i < c->n; i++)
        if (c->table[i].def && c->table[i].type != CFG_TREE) set_raw(&c->vals[i], c->table[i].def, CFG_SRC_DEFAULT, "default");
}

static int cfg_build(const struct cfg_opt *table, size_t n, const char *yaml, size_t ylen, const char *path,
                     int argc, char *const *argv, char *const *envp, cfg_check_fn check, struct cfg **out,
                     char *err, size_t errlen) {
    *out = NULL;
    struct cfg *c = calloc(1, sizeof *c);
    if (!c) return util_fail(err, errlen, -ENOMEM, "config: out of memory");
    c->table = table;
    c->n = n;
    c->vals = calloc(n ? n : 1, sizeof *c->vals);
    if (path) c->file_path = strdup(path);
    if (!c->vals) { cfg_free(c); return util_fail(err, errlen, -ENOMEM, "config: out of memory"); }
    for (size_t i = 0; i < n; i++) {
        LLORCH_ASSERT(table[i].key && table[i].key[0]);
        for (size_t j = 0; j < i; j++) LLORCH_ASSERT(strcmp(table[i].key, table[j].key) != 0);
    }
    int rc = yaml_to_tree(yaml ? yaml : "", yaml ? ylen : 0, path ? path : "(text)", &c->root, err, errlen);
    if (rc < 0) { cfg_free(c); return rc; }
    cfg_init_vals(c);
    if ((rc = layer_file(c, err, errlen)) < 0 || (rc = layer_env(c, envp)) < 0 ||
        (rc = layer_flags(c, argc, argv, err, errlen)) < 0) {
        cfg_free(c);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = type_value(c, i, err, errlen)) < 0) { cfg_free(c); return rc; }
    }
    for (size_t i = 0; i < n; i++) {
        if (!table[i].validate || !c->vals[i].set) continue;
        char m[256] = "";
        if (table[i].validate(c, table[i].key, m, sizeof m) < 0) {
            util_fail(err, errlen, CFG_EUSAGE, "%s: %s (from %s)", table[i].key, m,
                      c->vals[i].src_name[0] ? c->vals[i].src_name : "default");
            cfg_free(c);
            return CFG_EUSAGE;
        }
    }
    if (check) {
        char m[256] = "";
        if (check(c, m, sizeof m) < 0) {
            util_fail(err, errlen, CFG_EUSAGE, "config: %s", m);
            cfg_free(c);
            return CFG_EUSAGE;
        }
    }
    *out = c;
    return 0;
}

/* --config PATH / --config=PATH, or LLORCH_CONFIG; NULL when neither */
static const char *config_path(int argc, char *const *argv, char *const *envp, int *missing_value) {
    const char *p = NULL;
    *missing_value = 0;
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--config") == 0) {
            if (a + 1 >= argc) { *missing_value = 1; return NULL; }
            p = argv[++a];
        } else if (strncmp(argv[a], "--config=", 9) == 0) {
            p = argv[a] + 9;
        }
    }
    if (!p) p = env_lookup(envp, "LLORCH_CONFIG");
    return p && *p ? p : NULL;
}

int cfg_load(const struct cfg_opt *table, size_t n, int argc, char *const *argv, char *const *envp,
             cfg_check_fn check, struct cfg **out, char *err, size_t errlen) {
    int missing;
    *out = NULL;
    for (int a = 1; a < argc; a++)
        if (is_help(argv[a])) return CFG_HELP;
    const char *path = config_path(argc, argv, envp, &missing);
    if (missing) return util_fail(err, errlen, CFG_EUSAGE, "flag '--config' needs a value");
    char *text = NULL;
    size_t len = 0;
    if (path) {
        char m[256];
        if (util_read_file(path, CFG_MAX_FILE, &text, &len, m, sizeof m) < 0)
            return util_fail(err, errlen, CFG_EUSAGE, "config file %s: %s", path, m);
        if (strlen(text) != len) {
            free(text);
            return util_fail(err, errlen, CFG_EUSAGE, "config file %s: contains a NUL byte", path);
        }
    }
    int rc = cfg_build(table, n, text, len, path, argc, argv, envp, check, out, err, errlen);
    free(text);
    return rc;
}

int cfg_load_text(const struct cfg_opt *table, size_t n, const char *yaml_text, int argc, char *const *argv,
                  char *const *envp, cfg_check_fn check, struct cfg **out, char *err, size_t errlen) {
    return cfg_build(table, n, yaml_text, yaml_text ? strlen(yaml_text) : 0, NULL, argc, argv, envp, check, out,
                     err, errlen);
}

void cfg_free(struct cfg *c) {
    if (!c) return;
    for (size_t i = 0; c->vals && i < c->n; i++) {
        free(c->vals[i].raw);
        for (size_t k = 0; k < c->vals[i].nlist; k++) free(c->vals[i].list[k]);
        free(c->vals[i].list);
    }
    free(c->vals);
    node_free(c->root);
    free(c->file_path);
    free(c);
}

/* ======================================================================
 * 5. getters, usage, dump
 * ==================================================================== */
static const struct cfg_val *getv(const struct cfg *c, const char *key, int t1, int t2) {
    LLORCH_ASSERT(c && key);
    int i = find_opt(c, key);
    LLORCH_ASSERT(i >= 0);
    LLORCH_ASSERT((int)c->table[i].type == t1 || (int)c->table[i].type == t2);
    return &c->vals[i];
}

int64_t cfg_int(const struct cfg *c, const char *key) {
    const struct cfg_val *v = getv(c, key, CFG_INT, CFG_DURATION_MS);
    return v->set ? v->i : 0;
}
uint64_t cfg_u64(const struct cfg *c, const char *key) {
    const struct cfg_val *v = getv(c, key, CFG_U64, CFG_U64);
    return v->set ? v->u : 0;
}
double cfg_float(const struct cfg *c, const char *key) {
    const struct cfg_val *v = getv(c, key, CFG_FLOAT, CFG_FLOAT);
    return v->set ? v->f : 0.0;
}
int cfg_bool(const struct cfg *c, const char *key) {
    const struct cfg_val *v = getv(c, key, CFG_BOOL, CFG_BOOL);
    return v->set ? (int)v->i : 0;
}
const char *cfg_str(const struct cfg *c, const char *key) {
    const struct cfg_val *v = getv(c, key, CFG_STRING, CFG_ENUM);
    return v->set ? v->raw : NULL;
}
size_t cfg_list(const struct cfg *c, const char *key, const char *const **items) {
    const struct cfg_val *v = getv(c, key, CFG_LIST, CFG_LIST);
    if (items) *items = (const char *const *)v->list;
    return v->nlist;
}
const struct cfg_node *cfg_tree(const struct cfg *c, const char *key) {
    const struct cfg_val *v = getv(c, key, CFG_TREE, CFG_TREE);
    return v->tree;
}
int cfg_is_set(const struct cfg *c, const char *key) {
    int i = find_opt(c, key);
    LLORCH_ASSERT(i >= 0);
    return c->vals[i].set;
}
enum cfg_source cfg_source_of(const struct cfg *c, const char *key) {
    int i = find_opt(c, key);
    LLORCH_ASSERT(i >= 0);
    return c->vals[i].src;
}
const char *cfg_source_name(enum cfg_source s) {
    static const char *n[] = { "default", "file", "env", "flag" };
    return (unsigned)s < 4 ? n[s] : "?";
}
const char *cfg_file_path(const struct cfg *c) { return c ? c->file_path : NULL; }

static const char *type_hint(enum cfg_type t) {
    switch (t) {
    case CFG_INT: return "N";
    case CFG_U64: return "BYTES";
    case CFG_FLOAT: return "X";
    case CFG_BOOL: return "[BOOL]";
    case CFG_DURATION_MS: return "MS";
    case CFG_LIST: return "A,B";
    default: return "VALUE";
    }
}

void cfg_usage(const struct cfg_opt *table, size_t n, FILE *f) {
    fprintf(f, "  --config PATH  YAML config file (env LLORCH_CONFIG)\n");
    for (size_t i = 0; i < n; i++) {
        char fb[128], eb[128];
        const struct cfg_opt *o = &table[i];
        const char *fl = opt_flag(o, fb, sizeof fb), *ev = opt_env(o, eb, sizeof eb);
        if (o->type == CFG_TREE) {
            fprintf(f, "  (YAML only) %-24s %s\n", o->key, o->help ? o->help : "");
            continue;
        }
        fprintf(f, "  %s %s  %s [yaml %s, env %s%s%s]\n", fl[0] ? fl : "(no flag)",
                o->type == CFG_ENUM && o->enums ? o->enums : type_hint(o->type), o->help ? o->help : "", o->key,
                ev[0] ? ev : "-", o->def ? ", default " : "", o->def ? o->def : "");
    }
}

static int is_secret(const char *key) {
    size_t l = strlen(key);
    static const char *suf[] = { "token", "tokens", "secret", "password" };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(suf); i++) {
        size_t s = strlen(suf[i]);
        if (l >= s && strcmp(key + l - s, suf[i]) == 0) return 1;
    }
    return 0;
}

size_t cfg_dump_json(const struct cfg *c, char *out, size_t cap) {
    struct util_sb sb;
    char dummy[1];
    util_sb_init_fixed(&sb, cap ? out : dummy, cap ? cap : 1);
    size_t need = 1;
    /* measure with a growable builder so the return value is exact */
    struct util_sb g;
    util_sb_init(&g);
    util_sb_putc(&g, '{');
    int first = 1;
    for (size_t i = 0; i < c->n; i++) {
        const struct cfg_opt *o = &c->table[i];
        const struct cfg_val *v = &c->vals[i];
        if (o->type == CFG_TREE || !v->set) continue;
        if (!first) util_sb_putc(&g, ',');
        first = 0;
        util_sb_json_str(&g, o->key);
        util_sb_putc(&g, ':');
        if (is_secret(o->key)) { util_sb_puts(&g, "\"***\""); continue; }
        if (o->type == CFG_LIST) {
            util_sb_putc(&g, '[');
            for (size_t k = 0; k < v->nlist; k++) {
                if (k) util_sb_putc(&g, ',');
                util_sb_json_str(&g, v->list[k]);
            }
            util_sb_putc(&g, ']');
        } else {
            util_sb_json_str(&g, v->raw ? v->raw : "");
        }
    }
    util_sb_putc(&g, '}');
    if (!g.oom && g.buf) {
        util_sb_putn(&sb, g.buf, g.len);
        need = g.len;
    }
    util_sb_free(&g);
    return need;
}

/* ---- typed member reads for CFG_TREE consumers --------------------------- */
int cfg_node_get_str(const struct cfg_node *map, const char *key, const char **out, char *err, size_t errlen) {
    const struct cfg_node *n = cfg_node_get(map, key);
    if (!n) return -ENOENT;
    if (n->kind != CFG_NODE_SCALAR) return util_fail(err, errlen, -EINVAL, "'%s' must be a single value", key);
    *out = n->text;
    return 0;
}
int cfg_node_get_int(const struct cfg_node *map, const char *key, int64_t *out, char *err, size_t errlen) {
    const char *s = NULL;
    int rc = cfg_node_get_str(map, key, &s, err, errlen);
    if (rc < 0) return rc;
    if (cfg_parse_int(s, out) < 0) return util_fail(err, errlen, -EINVAL, "'%s': '%s' is not an integer", key, s);
    return 0;
}
int cfg_node_get_u64(const struct cfg_node *map, const char *key, uint64_t *out, char *err, size_t errlen) {
    const char *s = NULL;
    int rc = cfg_node_get_str(map, key, &s, err, errlen);
    if (rc < 0) return rc;
    if (cfg_parse_u64(s, out) < 0) return util_fail(err, errlen, -EINVAL, "'%s': '%s' is not a size", key, s);
    return 0;
}
int cfg_node_get_bool(const struct cfg_node *map, const char *key, int *out, char *err, size_t errlen) {
    const char *s = NULL;
    int rc = cfg_node_get_str(map, key, &s, err, errlen);
    if (rc < 0) return rc;
    if (cfg_parse_bool(s, out) < 0) return util_fail(err, errlen, -EINVAL, "'%s': '%s' is not a boolean", key, s);
    return 0;
}
int cfg_node_get_strs(const struct cfg_node *map, const char *key, const char **out, size_t cap, char *err,
                      size_t errlen) {
    const struct cfg_node *n = cfg_node_get(map, key);
    if (!n) return -ENOENT;
    if (n->kind == CFG_NODE_SCALAR) {
        if (cap < 1) return util_fail(err, errlen, -EINVAL, "'%s': too many items (max %zu)", key, cap);
        out[0] = n->text;
        return 1;
    }
    if (n->kind != CFG_NODE_SEQ) return util_fail(err, errlen, -EINVAL, "'%s' must be a list", key);
    if (n->n > cap) return util_fail(err, errlen, -EINVAL, "'%s': too many items (max %zu)", key, cap);
    for (size_t i = 0; i < n->n; i++) {
        if (n->items[i]->kind != CFG_NODE_SCALAR)
            return util_fail(err, errlen, -EINVAL, "'%s': items must be single values", key);
        out[i] = n->items[i]->text;
    }
    return (int)n->n;
}
