/* llorch status — the whole system at a glance, from the orchestrator only
 * (clients never talk to pools or workers):
 *
 *   llorch status [--url URL] [--json] [--watch SECONDS]
 *
 * Sources: GET /health (queue depth, pools, uptime), GET /v2/pools (pools,
 * heartbeats, devices with total/free bytes), GET /v2/workers, GET /v2/models
 * (model_ref → alias), GET /metrics (queue depth per priority, workers by
 * status, tasks ended by outcome). Fits an 80-column terminal. --json prints
 * the merged state as one JSON object. Exit 1 when the orchestrator cannot be
 * reached or refuses.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_http.h"
#include "common/util.h"

int cli_status(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: llorch status [--url URL] [--json] [--watch SECONDS]\n"
            "  --url URL        orchestrator (default $LLORCH_ORCH_URL or %s)\n"
            "  --json           print the merged state (health, pools, workers, models, metrics) as JSON\n"
            "  --watch S        redraw every S seconds until Ctrl-C\n",
            CLI_DEFAULT_ORCH_URL);
}

/* ---- /metrics: the few series status shows ------------------------------ */
/* value of label `label` in a series line, into out */
static int label_of(const char *line, const char *label, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "%s=\"", label);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= cap) return -1;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = 0;
    return 0;
}

/* {"queue_depth":{prio:n},"workers":{status:n},"tasks_ended":{outcome:n},"tasks_submitted":{outcome:n}} */
static json_t *parse_metrics(const char *text) {
    static const struct { const char *series, *label, *key; } want[] = {
        { "orchd_queue_depth{", "priority", "queue_depth" },
        { "orchd_workers{", "status", "workers" },
        { "orchd_tasks_dispatched_total{", "outcome", "tasks_ended" },
        { "orchd_tasks_enqueued_total{", "outcome", "tasks_submitted" },
    };
    json_t *m = json_object();
    for (size_t i = 0; i < UTIL_ARRAY_LEN(want); i++) json_object_set_new(m, want[i].key, json_object());
    const char *line = text;
    while (line && *line) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        char buf[512];
        if (n < sizeof buf && line[0] != '#') {
            memcpy(buf, line, n);
            buf[n] = 0;
            for (size_t i = 0; i < UTIL_ARRAY_LEN(want); i++) {
                if (strncmp(buf, want[i].series, strlen(want[i].series)) != 0) continue;
                char lv[64];
                const char *sp = strrchr(buf, ' ');
                if (!sp || label_of(buf, want[i].label, lv, sizeof lv) < 0) continue;
                json_object_set_new(json_object_get(m, want[i].key), lv, json_real(strtod(sp + 1, NULL)));
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return m;
}

static long long mget(json_t *m, const char *k1, const char *k2) {
    return (long long)json_number_value(json_object_get(json_object_get(m, k1), k2));
}

/* ---- fetching -------------------------------------------------------------- */
static json_t *fetch_all(const char *base, char *err, size_t errlen) {
    static const char *paths[] = { "/health", "/v2/pools", "/v2/workers", "/v2/models" };
    static const char *keys[] = { "health", "pools", "workers", "models" };
    json_t *all = json_object();
    json_object_set_new(all, "orchestrator", json_string(base));
    json_object_set_new(all, "ts_ms", json_integer((json_int_t)util_wall_ms()));
    for (size_t i = 0; i < UTIL_ARRAY_LEN(paths); i++) {
        long st;
        json_t *b = NULL;
        char *raw = NULL;
        if (cli_request(NULL, base, paths[i], NULL, &st, &b, &raw, err, errlen) < 0) {
            json_decref(all);
            free(raw);
            return NULL;
        }
        if (st != 200 || !json_is_object(b)) {
            cli_print_error("status", st, b, raw); /* says it all: no second line */
            err[0] = 0;
            json_decref(b);
            free(raw);
            json_decref(all);
            return NULL;
        }
        free(raw);
        json_t *v = i == 0 ? json_incref(b) : json_incref(json_object_get(b, keys[i]));
        json_object_set_new(all, keys[i], v ? v : json_array());
        json_decref(b);
    }
    long st;
    char *raw = NULL;
    if (cli_request(NULL, base, "/metrics", NULL, &st, NULL, &raw, err, errlen) == 0 && st == 200 && raw)
        json_object_set_new(all, "metrics", parse_metrics(raw));
    free(raw);
    return all;
}

/* ---- drawing ------------------------------------------------------------- */
static const char *str_or(const char *s, const char *def) { return s ? s : def; }

static void fit(const char *s, size_t w, char *out) { /* out >= w+1; '~' marks a cut */
    size_t n = strlen(s);
    if (n <= w) { memcpy(out, s, n + 1); return; }
    memcpy(out, s, w - 1);
    out[w - 1] = '~';
    out[w] = 0;
}

static void fmt_age(double ms, char *out, size_t cap) {
    if (ms < 0) ms = 0;
    double s = ms / 1000.0;
    if (s < 60) snprintf(out, cap, "%.1fs ago", s);
    else if (s < 3600) snprintf(out, cap, "%ldm%02lds ago", (long)s / 60, (long)s % 60);
    else snprintf(out, cap, "%ldh%02ldm ago", (long)s / 3600, ((long)s % 3600) / 60);
}

static void fmt_uptime(long long s, char *out, size_t cap) {
    if (s < 60) snprintf(out, cap, "%llds", s);
    else if (s < 3600) snprintf(out, cap, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400) snprintf(out, cap, "%lldh%02lldm", s / 3600, (s % 3600) / 60);
    else snprintf(out, cap, "%lldd%02lldh", s / 86400, (s % 86400) / 3600);
}

static void bar(double frac, int w, char *out) {
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    int k = (int)(frac * w + 0.5);
    out[0] = '[';
    for (int i = 0; i < w; i++) out[1 + i] = i < k ? '#' : '.';
    out[w + 1] = ']';
    out[w + 2] = 0;
}

/* the catalog alias of a model_ref, else its file name */
static void model_name(json_t *models, const char *ref, char *out, size_t cap) {
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        const char *r = json_string_value(json_object_get(m, "model_ref"));
        const char *a = json_string_value(json_object_get(m, "alias"));
        if (r && a && !strcmp(r, ref)) { snprintf(out, cap, "%s", a); return; }
    }
    const char *b = strrchr(ref, '/');
    const char *f = strstr(ref, "::file=");
    if (f && (!b || f > b)) b = f + 6;
    snprintf(out, cap, "%s", b ? b + 1 : ref);
}

static void dev_label(int gpu, char *out, size_t cap) {
    if (gpu < 0) snprintf(out, cap, "host");
    else snprintf(out, cap, "gpu %d", gpu);
}

static void draw(json_t *all) {
    json_t *h = json_object_get(all, "health"), *pools = json_object_get(all, "pools");
    json_t *workers = json_object_get(all, "workers"), *models = json_object_get(all, "models");
    json_t *m = json_object_get(all, "metrics");
    double now = (double)json_integer_value(json_object_get(all, "ts_ms"));
    char up[32], t1[32], t2[32];
    fmt_uptime(json_integer_value(json_object_get(h, "uptime_seconds")), up, sizeof up);
    const char *hs = json_string_value(json_object_get(h, "status"));
    printf("llama-orch  %s  %s  up %s\n", json_string_value(json_object_get(all, "orchestrator")), hs ? hs : "?", up);
    long long busy = mget(m, "workers", "busy");
    printf("pools %lld/%lld available   queue: %lld interactive, %lld batch   running %lld\n",
           (long long)json_integer_value(json_object_get(h, "pools_available")),
           (long long)json_integer_value(json_object_get(h, "pools")),
           m ? mget(m, "queue_depth", "interactive") : (long long)json_integer_value(json_object_get(h, "queue_depth")),
           mget(m, "queue_depth", "batch"), busy);
    if (m)
        printf("tasks: %lld accepted, %lld rejected; ended %lld completed, %lld failed, %lld cancelled\n",
               mget(m, "tasks_submitted", "accepted"), mget(m, "tasks_submitted", "rejected"),
               mget(m, "tasks_ended", "completed"), mget(m, "tasks_ended", "failed"), mget(m, "tasks_ended", "cancelled"));

    printf("\n%-16s %-32s %-11s %s\n", "POOL", "ENDPOINT", "STATE", "HEARTBEAT");
    if (json_array_size(pools) == 0) printf("  (no pool registered)\n");
    size_t i, k;
    json_t *p, *d;
    json_array_foreach(pools, i, p) {
        char id[17], ep[33], age[32];
        fit(str_or(json_string_value(json_object_get(p, "pool_id")), "?"), 16, id);
        fit(str_or(json_string_value(json_object_get(p, "endpoint")), ""), 32, ep);
        fmt_age(now - (double)json_integer_value(json_object_get(p, "last_heartbeat_ms")), age, sizeof age);
        printf("%-16s %-32s %-11s %s\n", id, ep,
               json_is_true(json_object_get(p, "available")) ? "available" : "UNAVAILABLE", age);
        json_array_foreach(json_object_get(p, "devices"), k, d) {
            char lab[16], name[23], b[32];
            dev_label((int)json_integer_value(json_object_get(d, "gpu_id")), lab, sizeof lab);
            fit(str_or(json_string_value(json_object_get(d, "name")), ""), 22, name);
            double tot = (double)json_integer_value(json_object_get(d, "total_bytes"));
            double fr = (double)json_integer_value(json_object_get(d, "free_bytes"));
            bar(tot > 0 ? (tot - fr) / tot : 0, 20, b);
            cli_fmt_bytes(tot - fr, t1, sizeof t1);
            cli_fmt_bytes(tot, t2, sizeof t2);
            printf("  %-6s %-22s %s %9s / %s\n", lab, name, b, t1, t2);
        }
    }

    printf("\n%-20s %-14s %-12s %-6s %-8s %s\n", "WORKER", "MODEL", "POOL", "DEVICE", "STATUS", "MEMORY");
    if (json_array_size(workers) == 0) printf("  (no worker)\n");
    json_t *w;
    json_array_foreach(workers, i, w) {
        char id[21], mn[128], mf[15], pl[13], dev[16] = "host", mem[16];
        fit(str_or(json_string_value(json_object_get(w, "worker_id")), "?"), 20, id);
        model_name(models, str_or(json_string_value(json_object_get(w, "model_ref")), "?"), mn, sizeof mn);
        fit(mn, 14, mf);
        fit(str_or(json_string_value(json_object_get(w, "pool_id")), "?"), 12, pl);
        json_t *g = json_object_get(w, "gpu_ids");
        if (json_array_size(g) == 1) dev_label((int)json_integer_value(json_array_get(g, 0)), dev, sizeof dev);
        else if (json_array_size(g) > 1) snprintf(dev, sizeof dev, "%zu gpus", json_array_size(g));
        cli_fmt_bytes((double)json_integer_value(json_object_get(w, "memory_bytes")), mem, sizeof mem);
        printf("%-20s %-14s %-12s %-6s %-8s %s%s\n", id, mf, pl, dev,
               str_or(json_string_value(json_object_get(w, "status")), "?"), mem,
               json_is_true(json_object_get(w, "pinned")) ? "  pinned" : "");
    }
    if (json_array_size(models)) {
        printf("\nMODELS ");
        json_t *x;
        int col = 7;
        json_array_foreach(models, i, x) {
            const char *a = str_or(json_string_value(json_object_get(x, "alias")), "?");
            int n = (int)strlen(a) + 2;
            if (col + n > 79) { printf("\n       "); col = 7; }
            printf("%s%s", a, i + 1 < json_array_size(models) ? ", " : "");
            col += n;
        }
        printf("\n");
    }
}

int cli_status(int argc, char **argv) {
    const char *url = NULL;
    int as_json = 0;
    double watch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) as_json = 1;
        else if (!strcmp(a, "--url") && i + 1 < argc) url = argv[++i];
        else if (!strcmp(a, "--watch") && i + 1 < argc) {
            if (cli_parse_double(argv[++i], &watch) || watch < 0.2) {
                fprintf(stderr, "llorch status: --watch needs seconds >= 0.2\n");
                return 2;
            }
        } else {
            fprintf(stderr, "llorch status: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    char base[1024], err[512];
    cli_endpoint(url, "LLORCH_ORCH_URL", CLI_DEFAULT_ORCH_URL, base, sizeof base);
    for (;;) {
        json_t *all = fetch_all(base, err, sizeof err);
        if (!all) {
            if (err[0]) fprintf(stderr, "llorch status: cannot read the orchestrator at %s: %s\n", base, err);
            return 1;
        }
        if (watch > 0 && !as_json) printf("\033[H\033[2J");
        if (as_json) {
            char *s = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (s) puts(s);
            free(s);
        } else {
            draw(all);
        }
        fflush(stdout);
        json_decref(all);
        if (watch <= 0) return 0;
        usleep((useconds_t)(watch * 1e6));
    }
}
