/* llorch place — pin a model to a GPU (or a pool's host memory), or unpin it.
 *
 *   llorch place MODEL POOL_ID GPU [--url URL]
 *   llorch place --remove MODEL POOL_ID GPU [--url URL]
 *
 * POST|DELETE {orch}/v2/placements {"model","pool_id","gpu_id"}: the
 * orchestrator starts and keeps a worker for MODEL on that device and never
 * evicts it. GPU is an index, or "host" (-1) for host-memory worker types.
 * MODEL is a catalog alias or an hf:/file: ref. Exit 0 placed/removed, 1
 * refused (the orchestrator's code and message are printed), 2 usage.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_http.h"

int cli_place(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: llorch place [--remove] MODEL POOL_ID GPU [--url URL]\n"
            "  GPU        device index, or 'host' for host-memory workers (cpu)\n"
            "  --remove   drop the placement (the worker becomes evictable)\n"
            "  --url URL  orchestrator (default $LLORCH_ORCH_URL or %s)\n",
            CLI_DEFAULT_ORCH_URL);
}

int cli_place(int argc, char **argv) {
    const char *pos[3], *url = NULL;
    int npos = 0, remove = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--remove")) remove = 1;
        else if (!strcmp(a, "--url") && i + 1 < argc) url = argv[++i];
        else if ((a[0] != '-' || !strcmp(a, "-1")) && npos < 3) pos[npos++] = a;
        else { fprintf(stderr, "llorch place: unexpected argument '%s'\n", a); usage(stderr); return 2; }
    }
    if (npos != 3) { usage(stderr); return 2; }
    long long gpu;
    if (!strcmp(pos[2], "host")) gpu = -1;
    else if (cli_parse_long(pos[2], &gpu) || gpu < -1 || gpu > 1023) {
        fprintf(stderr, "llorch place: GPU must be an index 0..1023 or 'host', not '%s'\n", pos[2]);
        return 2;
    }
    char base[1024], err[512];
    cli_endpoint(url, "LLORCH_ORCH_URL", CLI_DEFAULT_ORCH_URL, base, sizeof base);
    json_t *b = json_pack("{s:s,s:s,s:I}", "model", pos[0], "pool_id", pos[1], "gpu_id", (json_int_t)gpu);
    char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!body) return 1;
    long st;
    json_t *resp = NULL;
    char *raw = NULL;
    int rc = cli_request(remove ? "DELETE" : "POST", base, "/v2/placements", body, &st, &resp, &raw, err, sizeof err);
    free(body);
    int ret = 1;
    char dev[32];
    if (gpu < 0) snprintf(dev, sizeof dev, "host memory");
    else snprintf(dev, sizeof dev, "gpu %lld", gpu);
    if (rc < 0) {
        fprintf(stderr, "llorch place: cannot reach the orchestrator: %s\n", err);
    } else if (st == 200 || st == 201) {
        if (remove) printf("removed: %s is no longer pinned to %s of %s\n", pos[0], dev, pos[1]);
        else printf("placed: %s pinned to %s of %s (the orchestrator starts it and keeps it loaded)\n", pos[0], dev,
                    pos[1]);
        ret = 0;
    } else {
        cli_print_error("place", st, resp, raw);
    }
    json_decref(resp);
    free(raw);
    return ret;
}
