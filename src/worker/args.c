/* args — the worker's command line (SPEC §3.1). Every flag accepts
 * "--flag value" and "--flag=value". Validation here covers everything that
 * can be checked without touching the device or the model's contents;
 * main.c exits 1 on any error before doing anything else. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/worker.h"

void wk_args_usage(const char *prog) {
    fprintf(stderr,
            "usage: %s --worker-id ID --model PATH [--gpu-device N] [--port P]\n"
            "          [--callback-url URL] [--model-ref REF] [--bind ADDR] [--ctx-size N]\n"
            "          [--spawn-token T] [--threads N] [--residency-interval-s S] [--debug-ids]\n"
            "          [--tokenizer auto|gguf|hf-json]\n"
            "  --worker-id ID          1-64 chars [A-Za-z0-9_.:-] (required)\n"
            "  --model PATH            GGUF file (required)\n"
            "  --gpu-device N, --gpu N CUDA device ordinal (required for worker-orcd)\n"
            "  --port P                listen port, 0 = pick a free one (default 0; logged as server_listening)\n"
            "  --callback-url URL      POST the ready callback here once serving\n"
            "  --model-ref REF         the model's public reference, reported as is\n"
            "  --bind ADDR             IP address to listen on (default 127.0.0.1)\n"
            "  --ctx-size N            context length (default: the model's, at most 4096)\n"
            "  --spawn-token T         echoed in the ready callback\n"
            "  --threads N             CPU threads (worker-cpud; 0 = all cores)\n"
            "  --residency-interval-s S  residency/memory re-check period (default 60)\n"
            "  --debug-ids             token events also carry the token ids (\"ids\")\n"
            "  --tokenizer K           auto (default: a tokenizer.json beside the model wins), gguf, hf-json\n",
            prog);
}

static int parse_int(const char *v, long lo, long hi, long *out) {
    if (!v || !*v) return -1;
    char *e;
    errno = 0;
    long x = strtol(v, &e, 10);
    if (errno || *e || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int valid_id(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("_.:-", s[i]))) return 0;
    return 1;
}

int wk_args_parse(int argc, char **argv, wk_args *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->gpu_device = -1;
    a->bind = "127.0.0.1";
    a->residency_interval_s = 60;
    a->callback_attempts = 3;
    int port_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return 1;
        if (strncmp(arg, "--", 2) != 0) return util_fail(err, errlen, -1, "unexpected argument '%s'", arg);
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        if (nl >= sizeof name) return util_fail(err, errlen, -1, "unknown flag '%.40s'", arg);
        memcpy(name, arg, nl);
        name[nl] = 0;
        if (strcmp(name, "--debug-ids") == 0) {
            if (eq) return util_fail(err, errlen, -1, "--debug-ids takes no value");
            a->debug_ids = 1;
            continue;
        }
        static const char *const known[] = {"--worker-id", "--model", "--gpu-device", "--gpu", "--port",
                                            "--callback-url", "--model-ref", "--bind", "--ctx-size",
                                            "--spawn-token", "--threads", "--residency-interval-s",
                                            "--callback-attempts", "--mem-limit-bytes", "--tokenizer", NULL};
        int k = 0;
        while (known[k] && strcmp(known[k], name) != 0) k++;
        if (!known[k]) return util_fail(err, errlen, -1, "unknown flag '%s'", name);
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return util_fail(err, errlen, -1, "%s needs a value", name);
        long x;
        if (!strcmp(name, "--worker-id")) a->worker_id = val;
        else if (!strcmp(name, "--model")) a->model_path = val;
        else if (!strcmp(name, "--model-ref")) a->model_ref = val;
        else if (!strcmp(name, "--callback-url")) a->callback_url = val;
        else if (!strcmp(name, "--bind")) a->bind = val;
        else if (!strcmp(name, "--spawn-token")) a->spawn_token = val;
        else if (!strcmp(name, "--gpu-device") || !strcmp(name, "--gpu")) {
            if (parse_int(val, 0, 1023, &x)) return util_fail(err, errlen, -1, "%s: '%s' is not a device ordinal", name, val);
            a->gpu_device = (int)x;
        } else if (!strcmp(name, "--port")) {
            if (parse_int(val, 0, 65535, &x)) return util_fail(err, errlen, -1, "--port: '%s' is not 0..65535", val);
            a->port = (int)x;
            port_set = 1;
        } else if (!strcmp(name, "--ctx-size")) {
            if (parse_int(val, 1, 1 << 20, &x)) return util_fail(err, errlen, -1, "--ctx-size: '%s' is not 1..1048576", val);
            a->ctx_size = (int)x;
        } else if (!strcmp(name, "--threads")) {
            if (parse_int(val, 0, 1024, &x)) return util_fail(err, errlen, -1, "--threads: '%s' is not 0..1024", val);
            a->threads = (int)x;
        } else if (!strcmp(name, "--residency-interval-s")) {
            if (parse_int(val, 1, 86400, &x)) return util_fail(err, errlen, -1, "--residency-interval-s: '%s' is not 1..86400", val);
            a->residency_interval_s = (int)x;
        } else if (!strcmp(name, "--callback-attempts")) {
            if (parse_int(val, 1, 20, &x)) return util_fail(err, errlen, -1, "--callback-attempts: '%s' is not 1..20", val);
            a->callback_attempts = (int)x;
        } else if (!strcmp(name, "--mem-limit-bytes")) {
            char *e;
            errno = 0;
            unsigned long long m = strtoull(val, &e, 10);
            if (errno || *e || !*val) return util_fail(err, errlen, -1, "--mem-limit-bytes: '%s' is not a byte count", val);
            a->mem_limit_bytes = m;
        } else if (!strcmp(name, "--tokenizer")) {
            if (!strcmp(val, "auto")) a->tokenizer = 0;
            else if (!strcmp(val, "gguf")) a->tokenizer = 1;
            else if (!strcmp(val, "hf-json")) a->tokenizer = 2;
            else return util_fail(err, errlen, -1, "--tokenizer: '%s' is not auto, gguf or hf-json", val);
        }
    }
    (void)port_set;
    if (!a->worker_id) return util_fail(err, errlen, -1, "--worker-id is required");
    if (!valid_id(a->worker_id)) return util_fail(err, errlen, -1, "--worker-id must be 1-64 chars of [A-Za-z0-9_.:-]");
    if (!a->model_path) return util_fail(err, errlen, -1, "--model is required");
#if defined(LLORCH_WORKER_CUDA)
    if (a->gpu_device < 0) return util_fail(err, errlen, -1, "--gpu-device is required for worker-orcd");
#endif
    struct stat sb;
    if (stat(a->model_path, &sb) != 0)
        return util_fail(err, errlen, -1, "--model %s: %s", a->model_path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return util_fail(err, errlen, -1, "--model %s: not a regular file", a->model_path);
    if (access(a->model_path, R_OK) != 0)
        return util_fail(err, errlen, -1, "--model %s: not readable: %s", a->model_path, strerror(errno));
    unsigned char buf[16];
    if (inet_pton(AF_INET, a->bind, buf) != 1 && inet_pton(AF_INET6, a->bind, buf) != 1 && strcmp(a->bind, "localhost"))
        return util_fail(err, errlen, -1, "--bind '%s' is not an IP address", a->bind);
    if (a->callback_url && strncmp(a->callback_url, "http://", 7) != 0 && strncmp(a->callback_url, "https://", 8) != 0)
        return util_fail(err, errlen, -1, "--callback-url must be an http:// or https:// URL");
    if (a->model_ref && (strlen(a->model_ref) == 0 || strlen(a->model_ref) > 512))
        return util_fail(err, errlen, -1, "--model-ref must be 1-512 chars");
    if (a->spawn_token && strlen(a->spawn_token) > 512) return util_fail(err, errlen, -1, "--spawn-token is too long");
    return 0;
}
