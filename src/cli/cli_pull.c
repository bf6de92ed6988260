/* llorch pull — provision a model into a pool manager's cache.
 *
 *   llorch pull MODEL_REF [--pool URL|POOL_ID] [--url ORCH_URL]
 *
 * POST {pool}/v2/models/pull {"model_ref"}, then GET
 * {pool}/v2/models/pull?model_ref=… every 250 ms, drawing a progress bar on
 * stderr (redrawn in place on a terminal, a line per quarter otherwise) until
 * the pull is done or failed. On success prints the cached path and sha256 on
 * stdout. MODEL_REF may also be a catalog alias (resolved through the
 * orchestrator's /v2/models), and --pool a pool id (resolved through its
 * /v2/pools); the pool defaults to $LLORCH_POOL_URL or http://127.0.0.1:9200.
 * Ctrl-C leaves the pull running on the pool. Exit 0 done, 1 failed or
 * refused, 2 usage.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_http.h"
#include "common/util.h"

int cli_pull(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: llorch pull MODEL_REF [--pool URL|POOL_ID] [--url ORCH_URL]\n"
            "  MODEL_REF   hf:ORG/REPO[@REV]::file=PATH, file:/ABS/PATH, or a catalog alias\n"
            "  --pool      pool manager URL, or a pool id the orchestrator knows\n"
            "              (default $LLORCH_POOL_URL or %s)\n"
            "  --url       orchestrator, for aliases and pool ids (default $LLORCH_ORCH_URL or %s)\n",
            CLI_DEFAULT_POOL_URL, CLI_DEFAULT_ORCH_URL);
}

/* looks key==value up in GET {orch}{path} → [list_key] and copies field want */
static int orch_lookup(const char *orch, const char *path, const char *list_key, const char *key, const char *value,
                       const char *want, char *out, size_t cap) {
    long st;
    json_t *b = NULL;
    char err[512];
    if (cli_request(NULL, orch, path, NULL, &st, &b, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "llorch pull: cannot ask the orchestrator at %s: %s\n", orch, err);
        return -1;
    }
    size_t i;
    json_t *x;
    int found = -1;
    json_array_foreach(json_object_get(b, list_key), i, x) {
        const char *k = json_string_value(json_object_get(x, key));
        const char *w = json_string_value(json_object_get(x, want));
        if (k && w && !strcmp(k, value)) {
            snprintf(out, cap, "%s", w);
            found = 0;
            break;
        }
    }
    json_decref(b);
    return found;
}

static const char *str_or_unknown(const char *s) { return s ? s : "?"; }

static void progress(int tty, json_t *rec, int *last_q) {
    double bytes = (double)json_integer_value(json_object_get(rec, "bytes"));
    double total = (double)json_integer_value(json_object_get(rec, "total"));
    char b1[32], b2[32], barb[48];
    cli_fmt_bytes(bytes, b1, sizeof b1);
    double frac = total > 0 ? bytes / total : 0;
    if (frac > 1) frac = 1;
    int w = 30, k = (int)(frac * w + 0.5);
    barb[0] = '[';
    for (int i = 0; i < w; i++) barb[1 + i] = i < k ? '#' : '.';
    barb[w + 1] = ']';
    barb[w + 2] = 0;
    if (total > 0) cli_fmt_bytes(total, b2, sizeof b2);
    else snprintf(b2, sizeof b2, "?");
    if (tty) {
        *last_q = 0;
        fprintf(stderr, "\r%s %5.1f%%  %s / %s   ", barb, frac * 100, b1, b2);
    } else {
        int q = (int)(frac * 4);
        if (q > *last_q) {
            fprintf(stderr, "%s %5.1f%%  %s / %s\n", barb, frac * 100, b1, b2);
            *last_q = q;
        }
    }
    fflush(stderr);
}

int cli_pull(int argc, char **argv) {
    const char *ref_arg = NULL, *pool_arg = NULL, *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--pool") && i + 1 < argc) pool_arg = argv[++i];
        else if (!strcmp(a, "--url") && i + 1 < argc) url = argv[++i];
        else if (a[0] != '-' && !ref_arg) ref_arg = a;
        else { fprintf(stderr, "llorch pull: unexpected argument '%s'\n", a); usage(stderr); return 2; }
    }
    if (!ref_arg) { usage(stderr); return 2; }
    char orch[1024], pool[1024], ref[1024];
    cli_endpoint(url, "LLORCH_ORCH_URL", CLI_DEFAULT_ORCH_URL, orch, sizeof orch);
    snprintf(ref, sizeof ref, "%s", ref_arg);
    if (strncmp(ref, "hf:", 3) != 0 && strncmp(ref, "file:", 5) != 0) {
        if (orch_lookup(orch, "/v2/models", "models", "alias", ref_arg, "model_ref", ref, sizeof ref) < 0) {
            fprintf(stderr, "llorch pull: '%s' is neither an hf:/file: ref nor an alias the orchestrator knows\n",
                    ref_arg);
            return 1;
        }
    }
    if (pool_arg && strncmp(pool_arg, "http://", 7) != 0 && strncmp(pool_arg, "https://", 8) != 0) {
        if (orch_lookup(orch, "/v2/pools", "pools", "pool_id", pool_arg, "endpoint", pool, sizeof pool) < 0) {
            fprintf(stderr, "llorch pull: the orchestrator knows no pool '%s'\n", pool_arg);
            return 1;
        }
    } else {
        cli_endpoint(pool_arg, "LLORCH_POOL_URL", CLI_DEFAULT_POOL_URL, pool, sizeof pool);
    }

    json_t *body = json_pack("{s:s}", "model_ref", ref);
    char *bs = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!bs) return 1;
    long st;
    json_t *rec = NULL;
    char *raw = NULL, err[512];
    int rc = cli_request("POST", pool, "/v2/models/pull", bs, &st, &rec, &raw, err, sizeof err);
    free(bs);
    if (rc < 0) {
        fprintf(stderr, "llorch pull: cannot reach the pool manager at %s: %s\n", pool, err);
        return 1;
    }
    if (st != 202 && st != 200) {
        cli_print_error("pull", st, rec, raw);
        json_decref(rec);
        free(raw);
        return 1;
    }
    free(raw);
    fprintf(stderr, "pulling %s into %s\n", ref, pool);
    char enc[3200], path[3300];
    cli_urlencode(ref, enc, sizeof enc);
    snprintf(path, sizeof path, "/v2/models/pull?model_ref=%s", enc);
    int tty = isatty(2), last_q = -1, ret = 1;
    for (;;) {
        const char *state = json_string_value(json_object_get(rec, "state"));
        if (!state) {
            fprintf(stderr, "llorch pull: the pool answered without a state\n");
            break;
        }
        /* nothing to draw until the size or some bytes are known (file: refs never have any) */
        if (json_integer_value(json_object_get(rec, "total")) > 0 || json_integer_value(json_object_get(rec, "bytes")) > 0)
            progress(tty, rec, &last_q);
        if (!strcmp(state, "done")) {
            if (tty && last_q != -1) fputc('\n', stderr);
            const char *p = json_string_value(json_object_get(rec, "path"));
            const char *sha = json_string_value(json_object_get(rec, "sha256"));
            printf("%s\n", p ? p : "");
            if (sha) printf("sha256 %s\n", sha);
            if (json_is_true(json_object_get(rec, "from_mirror"))) printf("(from the local mirror)\n");
            ret = 0;
            break;
        }
        if (!strcmp(state, "failed")) {
            if (tty && last_q != -1) fputc('\n', stderr);
            json_t *e = json_object_get(rec, "error");
            fprintf(stderr, "llorch pull: %s: %s\n", str_or_unknown(json_string_value(json_object_get(e, "code"))),
                    str_or_unknown(json_string_value(json_object_get(e, "message"))));
            break;
        }
        usleep(250 * 1000);
        json_decref(rec);
        rec = NULL;
        raw = NULL;
        if (cli_request(NULL, pool, path, NULL, &st, &rec, &raw, err, sizeof err) < 0) {
            fprintf(stderr, "\nllorch pull: lost the pool manager: %s\n", err);
            break;
        }
        if (st != 200) {
            fputc('\n', stderr);
            cli_print_error("pull", st, rec, raw);
            free(raw);
            break;
        }
        free(raw);
    }
    json_decref(rec);
    return ret;
}
