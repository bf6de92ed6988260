/* metrics — see metrics.h. Families are a short array; series a linked list
 * per family keyed by the joined label values (a worker has a handful). */
#include "common/metrics.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum fam_kind { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM };

struct series {
    struct series *next;
    char *key;              /* label values joined by \x1f */
    char *labels;           /* rendered label pairs without braces, e.g. outcome="ok" */
    double value;           /* counter/gauge */
    double sum;             /* histogram */
    unsigned long long count;
    unsigned long long *buckets; /* [n_bounds] non-cumulative counts */
};

struct metrics_family {
    metrics_registry *reg;
    enum fam_kind kind;
    char *name, *help;
    char *label_names[METRICS_MAX_LABELS];
    int n_labels;
    double *bounds;
    int n_bounds;
    struct series *series;
};

struct metrics_registry {
    pthread_mutex_t mu;
    char *const_labels;
    metrics_family **fams;
    int n_fams;
};

static int valid_name(const char *s) {
    if (!s || !*s || !(isalpha((unsigned char)*s) || *s == '_' || *s == ':')) return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == ':')) return 0;
    return 1;
}

metrics_registry *metrics_new(const char *const_labels) {
    metrics_registry *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    if (const_labels && *const_labels) r->const_labels = strdup(const_labels);
    return r;
}

static void series_free(struct series *s) {
    while (s) {
        struct series *n = s->next;
        free(s->key);
        free(s->labels);
        free(s->buckets);
        free(s);
        s = n;
    }
}

void metrics_free(metrics_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->n_fams; i++) {
        metrics_family *f = r->fams[i];
        series_free(f->series);
        for (int j = 0; j < f->n_labels; j++) free(f->label_names[j]);
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    free(r->fams);
    free(r->const_labels);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static metrics_family *fam_new(metrics_registry *r, enum fam_kind k, const char *name, const char *help,
                               const char *const *labels, const double *bounds, int nb) {
    if (!r || !valid_name(name)) return NULL;
    metrics_family *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->reg = r;
    f->kind = k;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    for (; labels && labels[f->n_labels]; f->n_labels++) {
        if (f->n_labels == METRICS_MAX_LABELS || !valid_name(labels[f->n_labels])) goto fail;
        f->label_names[f->n_labels] = strdup(labels[f->n_labels]);
    }
    if (k == FAM_HISTOGRAM) {
        if (nb < 1 || !bounds) goto fail;
        for (int i = 1; i < nb; i++)
            if (!(bounds[i] > bounds[i - 1])) goto fail;
        f->bounds = malloc(sizeof(double) * nb);
        if (!f->bounds) goto fail;
        memcpy(f->bounds, bounds, sizeof(double) * nb);
        f->n_bounds = nb;
    }
    pthread_mutex_lock(&r->mu);
    metrics_family **nf = realloc(r->fams, sizeof(*nf) * (r->n_fams + 1));
    if (nf) {
        r->fams = nf;
        r->fams[r->n_fams++] = f;
    }
    pthread_mutex_unlock(&r->mu);
    if (!nf) goto fail;
    return f;
fail:
    for (int j = 0; j < f->n_labels; j++) free(f->label_names[j]);
    free(f->name);
    free(f->help);
    free(f->bounds);
    free(f);
    return NULL;
}

metrics_family *metrics_counter(metrics_registry *r, const char *name, const char *help, const char *const *l) {
    return fam_new(r, FAM_COUNTER, name, help, l, NULL, 0);
}
metrics_family *metrics_gauge(metrics_registry *r, const char *name, const char *help, const char *const *l) {
    return fam_new(r, FAM_GAUGE, name, help, l, NULL, 0);
}
metrics_family *metrics_histogram(metrics_registry *r, const char *name, const char *help, const char *const *l,
                                  const double *bounds, int n) {
    return fam_new(r, FAM_HISTOGRAM, name, help, l, bounds, n);
}

/* Finds or creates the series; caller holds the registry mutex. */
static struct series *series_get(metrics_family *f, const char *const *vals, int create) {
    struct util_sb key, lab;
    util_sb_init(&key);
    util_sb_init(&lab);
    for (int i = 0; i < f->n_labels; i++) {
        const char *v = vals && vals[i] ? vals[i] : "";
        if (i) {
            util_sb_putc(&key, '\x1f');
            util_sb_putc(&lab, ',');
        }
        util_sb_puts(&key, v);
        util_sb_printf(&lab, "%s=\"", f->label_names[i]);
        for (const char *p = v; *p; p++) { /* Prometheus label escaping */
            if (*p == '\\') util_sb_puts(&lab, "\\\\");
            else if (*p == '"') util_sb_puts(&lab, "\\\"");
            else if (*p == '\n') util_sb_puts(&lab, "\\n");
            else util_sb_putc(&lab, *p);
        }
        util_sb_putc(&lab, '"');
    }
    const char *k = key.buf ? key.buf : "";
    struct series *s = f->series, *last = NULL;
    for (; s; last = s, s = s->next)
        if (strcmp(s->key, k) == 0) break;
    if (!s && create && !key.oom && !lab.oom) {
        s = calloc(1, sizeof *s);
        if (s) {
            s->key = strdup(k);
            s->labels = strdup(lab.buf ? lab.buf : "");
            if (f->kind == FAM_HISTOGRAM) s->buckets = calloc(f->n_bounds, sizeof *s->buckets);
            if (!s->key || !s->labels || (f->kind == FAM_HISTOGRAM && !s->buckets)) {
                series_free(s);
                s = NULL;
            } else if (last) {
                last->next = s; /* keep creation order: stable output */
            } else {
                f->series = s;
            }
        }
    }
    util_sb_free(&key);
    util_sb_free(&lab);
    return s;
}

void metrics_add(metrics_family *f, const char *const *vals, double v) {
    if (!f || f->kind == FAM_HISTOGRAM) return;
    LLORCH_ASSERT(f->kind == FAM_GAUGE || v >= 0); /* counters only go up */
    pthread_mutex_lock(&f->reg->mu);
    struct series *s = series_get(f, vals, 1);
    if (s) s->value += v;
    pthread_mutex_unlock(&f->reg->mu);
}

void metrics_set(metrics_family *f, const char *const *vals, double v) {
    if (!f || f->kind != FAM_GAUGE) return;
    pthread_mutex_lock(&f->reg->mu);
    struct series *s = series_get(f, vals, 1);
    if (s) s->value = v;
    pthread_mutex_unlock(&f->reg->mu);
}

void metrics_observe(metrics_family *f, const char *const *vals, double v) {
    if (!f || f->kind != FAM_HISTOGRAM) return;
    pthread_mutex_lock(&f->reg->mu);
    struct series *s = series_get(f, vals, 1);
    if (s) {
        for (int i = 0; i < f->n_bounds; i++)
            if (v <= f->bounds[i]) {
                s->buckets[i]++;
                break;
            }
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&f->reg->mu);
}

double metrics_value(metrics_family *f, const char *const *vals) {
    if (!f) return 0;
    pthread_mutex_lock(&f->reg->mu);
    struct series *s = series_get(f, vals, 0);
    double v = s ? (f->kind == FAM_HISTOGRAM ? (double)s->count : s->value) : 0;
    pthread_mutex_unlock(&f->reg->mu);
    return v;
}

static void put_num(struct util_sb *sb, double v) {
    if (isinf(v)) util_sb_puts(sb, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v)) util_sb_puts(sb, "NaN");
    else if (v == floor(v) && fabs(v) < 1e15) util_sb_printf(sb, "%.0f", v);
    else util_sb_printf(sb, "%.10g", v);
}

/* name{const,labels[,extra]} */
/* le="0.05": the shortest %g form that reads back as the same double
 * (%.17g alone prints 0.050000000000000003) */
static void le_label(char *out, size_t cap, double v) {
    char num[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(num, sizeof num, "%.*g", prec, v);
        if (strtod(num, NULL) == v) break;
    }
    snprintf(out, cap, "le=\"%s\"", num);
}

static void put_labels(struct util_sb *sb, const char *cl, const char *labels, const char *extra) {
    int any = 0;
    const char *parts[3] = {cl, labels, extra};
    for (int i = 0; i < 3; i++) {
        if (!parts[i] || !*parts[i]) continue;
        util_sb_putc(sb, any ? ',' : '{');
        util_sb_puts(sb, parts[i]);
        any = 1;
    }
    if (any) util_sb_putc(sb, '}');
}

void metrics_render(metrics_registry *r, struct util_sb *sb) {
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n_fams; i++) {
        metrics_family *f = r->fams[i];
        util_sb_printf(sb, "# HELP %s ", f->name);
        for (const char *p = f->help; *p; p++) {
            if (*p == '\\') util_sb_puts(sb, "\\\\");
            else if (*p == '\n') util_sb_puts(sb, "\\n");
            else util_sb_putc(sb, *p);
        }
        util_sb_printf(sb, "\n# TYPE %s %s\n", f->name, kinds[f->kind]);
        if (!f->series && f->n_labels == 0) { /* unlabelled families always show a sample */
            if (f->kind == FAM_HISTOGRAM) {
                for (int b = 0; b < f->n_bounds; b++) {
                    char le[64];
                    le_label(le, sizeof le, f->bounds[b]);
                    util_sb_printf(sb, "%s_bucket", f->name);
                    put_labels(sb, r->const_labels, NULL, le);
                    util_sb_puts(sb, " 0\n");
                }
                util_sb_printf(sb, "%s_bucket", f->name);
                put_labels(sb, r->const_labels, NULL, "le=\"+Inf\"");
                util_sb_printf(sb, " 0\n%s_sum", f->name);
                put_labels(sb, r->const_labels, NULL, NULL);
                util_sb_printf(sb, " 0\n%s_count", f->name);
                put_labels(sb, r->const_labels, NULL, NULL);
                util_sb_puts(sb, " 0\n");
            } else {
                util_sb_puts(sb, f->name);
                put_labels(sb, r->const_labels, NULL, NULL);
                util_sb_puts(sb, " 0\n");
            }
        }
        for (struct series *s = f->series; s; s = s->next) {
            if (f->kind != FAM_HISTOGRAM) {
                util_sb_puts(sb, f->name);
                put_labels(sb, r->const_labels, s->labels, NULL);
                util_sb_putc(sb, ' ');
                put_num(sb, s->value);
                util_sb_putc(sb, '\n');
                continue;
            }
            unsigned long long cum = 0;
            for (int b = 0; b < f->n_bounds; b++) {
                char le[64];
                le_label(le, sizeof le, f->bounds[b]);
                cum += s->buckets[b];
                util_sb_printf(sb, "%s_bucket", f->name);
                put_labels(sb, r->const_labels, s->labels, le);
                util_sb_printf(sb, " %llu\n", cum);
            }
            util_sb_printf(sb, "%s_bucket", f->name);
            put_labels(sb, r->const_labels, s->labels, "le=\"+Inf\"");
            util_sb_printf(sb, " %llu\n%s_sum", s->count, f->name);
            put_labels(sb, r->const_labels, s->labels, NULL);
            util_sb_putc(sb, ' ');
            put_num(sb, s->sum);
            util_sb_printf(sb, "\n%s_count", f->name);
            put_labels(sb, r->const_labels, s->labels, NULL);
            util_sb_printf(sb, " %llu\n", s->count);
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- validator ---------------------------------------------------------------- */

struct vtype { char name[128]; char type[16]; };

static int parse_value(const char *s, const char **end, double *out) {
    if (strncmp(s, "+Inf", 4) == 0) { *out = INFINITY; *end = s + 4; return 0; }
    if (strncmp(s, "-Inf", 4) == 0) { *out = -INFINITY; *end = s + 4; return 0; }
    if (strncmp(s, "NaN", 3) == 0) { *out = NAN; *end = s + 3; return 0; }
    char *e;
    *out = strtod(s, &e);
    if (e == s) return -1;
    *end = e;
    return 0;
}

int metrics_text_validate(const char *text, char *err, size_t errlen) {
    struct vtype types[256];
    int ntypes = 0, samples = 0, lineno = 0;
    /* histogram tracking: last cumulative bucket and +Inf value per (name,labels w/o le) */
    char hkey[1200] = "";
    double hlast = -1, hinf = -1;
    const char *p = text;
    while (*p) {
        lineno++;
        const char *eol = strchr(p, '\n');
        if (!eol) return util_fail(err, errlen, -1, "line %d: no final newline", lineno);
        size_t n = (size_t)(eol - p);
        char line[2048];
        if (n >= sizeof line) return util_fail(err, errlen, -1, "line %d: too long", lineno);
        memcpy(line, p, n);
        line[n] = 0;
        p = eol + 1;
        if (n == 0) continue;
        if (line[0] == '#') {
            char kw[16], name[128], typ[16];
            if (sscanf(line, "# %15s %127s %15s", kw, name, typ) >= 2 && strcmp(kw, "TYPE") == 0) {
                if (!valid_name(name)) return util_fail(err, errlen, -1, "line %d: bad name", lineno);
                if (strcmp(typ, "counter") && strcmp(typ, "gauge") && strcmp(typ, "histogram") &&
                    strcmp(typ, "summary") && strcmp(typ, "untyped"))
                    return util_fail(err, errlen, -1, "line %d: bad type %s", lineno, typ);
                for (int i = 0; i < ntypes; i++)
                    if (strcmp(types[i].name, name) == 0)
                        return util_fail(err, errlen, -1, "line %d: second TYPE for %s", lineno, name);
                if (ntypes < 256) {
                    snprintf(types[ntypes].name, sizeof types[0].name, "%s", name);
                    snprintf(types[ntypes].type, sizeof types[0].type, "%s", typ);
                    ntypes++;
                }
            }
            continue;
        }
        /* sample: name[{labels}] value [timestamp] */
        char name[128];
        size_t i = 0;
        while (line[i] && line[i] != '{' && line[i] != ' ') i++;
        if (i == 0 || i >= sizeof name) return util_fail(err, errlen, -1, "line %d: bad sample name", lineno);
        memcpy(name, line, i);
        name[i] = 0;
        if (!valid_name(name)) return util_fail(err, errlen, -1, "line %d: bad name %s", lineno, name);
        char labels_wo_le[1024] = "";
        size_t lw = 0;
        int has_le = 0;
        double le = 0;
        if (line[i] == '{') {
            i++;
            while (line[i] != '}') {
                size_t ks = i;
                while (isalnum((unsigned char)line[i]) || line[i] == '_') i++;
                if (i == ks || line[i] != '=' || line[i + 1] != '"')
                    return util_fail(err, errlen, -1, "line %d: bad label", lineno);
                char lname[64];
                snprintf(lname, sizeof lname, "%.*s", (int)(i - ks), line + ks);
                i += 2;
                size_t vs = i;
                while (line[i] && line[i] != '"') {
                    if (line[i] == '\\') {
                        if (line[i + 1] != '\\' && line[i + 1] != '"' && line[i + 1] != 'n')
                            return util_fail(err, errlen, -1, "line %d: bad escape", lineno);
                        i++;
                    }
                    i++;
                }
                if (line[i] != '"') return util_fail(err, errlen, -1, "line %d: unterminated label", lineno);
                if (strcmp(lname, "le") == 0) {
                    const char *e;
                    char vbuf[64];
                    snprintf(vbuf, sizeof vbuf, "%.*s", (int)(i - vs), line + vs);
                    if (parse_value(vbuf, &e, &le) || *e)
                        return util_fail(err, errlen, -1, "line %d: bad le", lineno);
                    has_le = 1;
                } else if (lw + (i - ks) + 2 < sizeof labels_wo_le) {
                    memcpy(labels_wo_le + lw, line + ks, i - ks + 1);
                    lw += i - ks + 1;
                    labels_wo_le[lw++] = ',';
                    labels_wo_le[lw] = 0;
                }
                i++;
                if (line[i] == ',') i++;
                else if (line[i] != '}') return util_fail(err, errlen, -1, "line %d: bad label list", lineno);
            }
            i++;
        }
        if (line[i] != ' ') return util_fail(err, errlen, -1, "line %d: no value", lineno);
        double v;
        const char *e;
        if (parse_value(line + i + 1, &e, &v)) return util_fail(err, errlen, -1, "line %d: bad value", lineno);
        if (*e == ' ') { /* optional integer timestamp */
            char *te;
            strtoll(e + 1, &te, 10);
            e = te;
        }
        if (*e) return util_fail(err, errlen, -1, "line %d: trailing text", lineno);
        /* the family: exact name, or a histogram's _bucket/_sum/_count */
        const char *type = NULL;
        char base[128];
        for (int t = 0; t < ntypes && !type; t++)
            if (strcmp(types[t].name, name) == 0) type = types[t].type;
        const char *suffixes[] = {"_bucket", "_sum", "_count"};
        int suffix = -1;
        for (int s = 0; s < 3 && !type; s++) {
            size_t nl = strlen(name), sl = strlen(suffixes[s]);
            if (nl > sl && strcmp(name + nl - sl, suffixes[s]) == 0) {
                snprintf(base, sizeof base, "%.*s", (int)(nl - sl), name);
                for (int t = 0; t < ntypes; t++)
                    if (strcmp(types[t].name, base) == 0 &&
                        (!strcmp(types[t].type, "histogram") || !strcmp(types[t].type, "summary"))) {
                        type = types[t].type;
                        suffix = s;
                    }
            }
        }
        if (!type) return util_fail(err, errlen, -1, "line %d: %s has no # TYPE", lineno, name);
        if (!strcmp(type, "counter") && (v < 0 || isnan(v)))
            return util_fail(err, errlen, -1, "line %d: negative counter", lineno);
        if (!strcmp(type, "histogram")) {
            char key[1200 - 8];
            snprintf(key, sizeof key, "%.120s|%.1000s", base, labels_wo_le);
            if (suffix == 0) {
                if (!has_le) return util_fail(err, errlen, -1, "line %d: bucket without le", lineno);
                if (strcmp(key, hkey) != 0) {
                    snprintf(hkey, sizeof hkey, "%s", key);
                    hlast = -1;
                    hinf = -1;
                }
                if (v < hlast) return util_fail(err, errlen, -1, "line %d: buckets not cumulative", lineno);
                hlast = v;
                if (isinf(le)) hinf = v;
            } else if (suffix == 2) {
                if (strcmp(key, hkey) != 0 || hinf < 0)
                    return util_fail(err, errlen, -1, "line %d: _count without +Inf bucket", lineno);
                if (v != hinf) return util_fail(err, errlen, -1, "line %d: _count != +Inf bucket", lineno);
            }
        }
        samples++;
    }
    return samples;
}
