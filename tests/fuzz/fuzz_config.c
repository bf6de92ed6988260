// test-libs: llorch_config llorch_core PkgConfig::JANSSON
/* libFuzzer target: the generic layered config loader (src/common/config.c)
 * with an option table holding every option type (int, u64, float, bool,
 * string with a validator, duration, enum, list, tree; ranged and unranged;
 * dotted keys; secrets) and a cross-option check. fuzz_orch_config covers
 * orchestratord's real table; this one covers the loader itself, including
 * the env and flag layers.
 *
 * Input layout: the bytes up to the first NUL are the YAML text; after it,
 * NUL-separated strings: "LLORCH_...=..." ones become the environment, the
 * others argv (argv[0] is fixed). cfg_load_text never reads a file, so
 * "--config X" in argv is harmless.
 *
 * Invariants: 0 means every set value is in its declared range (int and
 * duration within [min,max], float finite within [fmin,fmax], bool 0/1,
 * string valid UTF-8 and non-empty when required, hostport parses, enum one
 * of its names, list count within range with non-NULL items), sources are
 * known, the check held, the tree walks cleanly through the node API, and
 * cfg_dump_json is exact in size and valid JSON (secrets masked). CFG_HELP
 * only when --help/-h was given. Any other result is negative with a message.
 * Never a crash, leak or UB. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/util.h"

#define FZ_NAME "fuzz_config"
#include "fuzz_check.h"

/* mode=platform needs at least one auth token (a typical cross-option rule) */
static int check_fn(const struct cfg *c, char *err, size_t errlen) {
    if (!strcmp(cfg_str(c, "mode"), "platform") && cfg_list(c, "auth.tokens", NULL) == 0) {
        snprintf(err, errlen, "mode platform needs auth.tokens");
        return -EINVAL;
    }
    return 0;
}

static const struct cfg_opt OPTS[] = {
    { .key = "bind", .type = CFG_STRING, .def = "127.0.0.1:9200", .validate = cfg_validate_hostport },
    { .key = "pool_id", .type = CFG_STRING, .min = 1, .max = 128 },
    { .key = "name", .type = CFG_STRING },
    { .key = "api_token", .type = CFG_STRING, .flag = "--token", .env = "LLORCH_TOKEN" },
    { .key = "queue.capacity", .type = CFG_INT, .def = "100", .min = 1, .max = 100000 },
    { .key = "queue.offset", .type = CFG_INT },
    { .key = "heartbeat_interval_ms", .type = CFG_DURATION_MS, .def = "15000", .min = 100, .max = 3600000 },
    { .key = "limits.timeout", .type = CFG_DURATION_MS },
    { .key = "gpu_headroom_bytes", .type = CFG_U64, .def = "512MiB" },
    { .key = "sched.weight", .type = CFG_FLOAT, .def = "0.5", .fmin = 0.0, .fmax = 1.0 },
    { .key = "sched.scale", .type = CFG_FLOAT },
    { .key = "debug", .type = CFG_BOOL, .def = "false" },
    { .key = "mode", .type = CFG_ENUM, .def = "home", .enums = "home|lab|platform" },
    { .key = "tags", .type = CFG_LIST, .min = 1, .max = 8, .def = "a" },
    { .key = "extra", .type = CFG_LIST },
    { .key = "auth.tokens", .type = CFG_LIST },
    { .key = "models", .type = CFG_TREE },
    { .key = "pools.adapters", .type = CFG_TREE },
};
#define NOPTS (sizeof OPTS / sizeof OPTS[0])

static const char *enum_names[] = { "home", "lab", "platform" };

/* walks a tree through the public node API, with the typed member reads */
static size_t walk(const struct cfg_node *n, int depth) {
    CHECK(depth <= 70);
    size_t count = 1;
    enum cfg_node_kind k = cfg_node_kind(n);
    size_t len = cfg_node_len(n);
    char err[256];
    switch (k) {
    case CFG_NODE_SCALAR:
        CHECK(cfg_node_str(n) != NULL);
        CHECK(len == 0);
        break;
    case CFG_NODE_SEQ:
        CHECK(cfg_node_str(n) == NULL);
        for (size_t i = 0; i < len; i++) {
            CHECK(cfg_node_key_at(n, i) == NULL);
            count += walk(cfg_node_at(n, i), depth + 1);
        }
        break;
    case CFG_NODE_MAP:
        CHECK(cfg_node_str(n) == NULL);
        for (size_t i = 0; i < len; i++) {
            const char *key = cfg_node_key_at(n, i);
            CHECK(key != NULL);
            CHECK(cfg_node_get(n, key) != NULL);
            const char *s = NULL;
            int64_t iv;
            uint64_t uv;
            int bv;
            const char *strs[4];
            int r = cfg_node_get_str(n, key, &s, err, sizeof err);
            CHECK(r == 0 || (r == -EINVAL && err[0]));
            if (r == 0) CHECK(s != NULL);
            r = cfg_node_get_int(n, key, &iv, err, sizeof err);
            CHECK(r == 0 || (r == -EINVAL && err[0]));
            r = cfg_node_get_u64(n, key, &uv, err, sizeof err);
            CHECK(r == 0 || (r == -EINVAL && err[0]));
            r = cfg_node_get_bool(n, key, &bv, err, sizeof err);
            CHECK(r == 0 || (r == -EINVAL && err[0]));
            if (r == 0) CHECK(bv == 0 || bv == 1);
            r = cfg_node_get_strs(n, key, strs, 4, err, sizeof err);
            CHECK(r >= 0 || (r == -EINVAL && err[0]));
            for (int q = 0; q < r && q < 4; q++) CHECK(strs[q] != NULL);
            count += walk(cfg_node_at(n, i), depth + 1);
        }
        CHECK(cfg_node_get(n, "\x01no such key") == NULL);
        break;
    default:
        CHECK(0);
    }
    CHECK(cfg_node_at(n, len) == NULL);
    return count;
}

static void check_loaded(const struct cfg *c) {
    for (size_t i = 0; i < NOPTS; i++) {
        const struct cfg_opt *o = &OPTS[i];
        enum cfg_source src = cfg_source_of(c, o->key);
        CHECK(src == CFG_SRC_DEFAULT || src == CFG_SRC_FILE || src == CFG_SRC_ENV || src == CFG_SRC_FLAG);
        CHECK(cfg_source_name(src) != NULL);
        int set = cfg_is_set(c, o->key);
        if (o->def && o->type != CFG_TREE) CHECK(set);
        if (!set) continue;
        switch (o->type) {
        case CFG_INT:
        case CFG_DURATION_MS: {
            int64_t v = cfg_int(c, o->key);
            if (o->min < o->max) CHECK(v >= o->min && v <= o->max);
            if (o->type == CFG_DURATION_MS) CHECK(v >= 0);
            break;
        }
        case CFG_U64:
            (void)cfg_u64(c, o->key);
            break;
        case CFG_FLOAT: {
            double v = cfg_float(c, o->key);
            CHECK(isfinite(v));
            if (o->fmin < o->fmax) CHECK(v >= o->fmin && v <= o->fmax);
            break;
        }
        case CFG_BOOL: {
            int b = cfg_bool(c, o->key);
            CHECK(b == 0 || b == 1);
            break;
        }
        case CFG_STRING: {
            const char *s = cfg_str(c, o->key);
            CHECK(s != NULL);
            CHECK(util_utf8_valid(s, strlen(s)));
            if (o->min < o->max) CHECK((int64_t)strlen(s) >= o->min);
            if (o->validate == cfg_validate_hostport) {
                char host[256];
                int port;
                CHECK(cfg_parse_hostport(s, host, sizeof host, &port) == 0 && port >= 0 && port <= 65535);
            }
            break;
        }
        case CFG_ENUM: {
            const char *s = cfg_str(c, o->key);
            CHECK(s != NULL);
            int ok = 0;
            for (size_t k = 0; k < sizeof enum_names / sizeof enum_names[0]; k++) ok |= !strcmp(s, enum_names[k]);
            CHECK(ok);
            break;
        }
        case CFG_LIST: {
            const char *const *items = NULL;
            size_t n = cfg_list(c, o->key, &items);
            if (o->min < o->max) CHECK((int64_t)n >= o->min && (int64_t)n <= o->max);
            CHECK(n == 0 || items != NULL);
            for (size_t k = 0; k < n; k++) CHECK(items[k] != NULL);
            break;
        }
        case CFG_TREE: {
            const struct cfg_node *t = cfg_tree(c, o->key);
            CHECK(t != NULL);
            walk(t, 0);
            break;
        }
        }
    }
    char m[256];
    CHECK(check_fn(c, m, sizeof m) == 0);

    /* the dump: exact size, valid JSON, secrets masked */
    size_t need = cfg_dump_json(c, NULL, 0);
    char *buf = malloc(need + 1);
    CHECK(buf != NULL);
    size_t got = cfg_dump_json(c, buf, need + 1);
    CHECK(got == need && strlen(buf) == need);
    json_t *j = json_loadb(buf, need, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(j));
    json_t *tok = json_object_get(j, "api_token");
    if (tok) CHECK(json_is_string(tok) && !strcmp(json_string_value(tok), "***"));
    tok = json_object_get(j, "auth.tokens");
    if (tok) CHECK(json_is_string(tok) && !strcmp(json_string_value(tok), "***"));
    json_decref(j);
    free(buf);
}

#define MAX_ARGS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[MAX_ARGS + 2], *envp[MAX_ARGS + 1];
    int argc = 0, envc = 0, help = 0;
    argv[argc++] = "fuzz";
    size_t yl = strlen(text);
    for (size_t p = yl + 1; p < size && argc + envc < MAX_ARGS;) {
        char *s = text + p;
        size_t l = strlen(s);
        if (!strncmp(s, "LLORCH_", 7) && strchr(s, '=')) envp[envc++] = s;
        else {
            argv[argc++] = s;
            help |= !strcmp(s, "--help") || !strcmp(s, "-h");
        }
        p += l + 1;
    }
    argv[argc] = NULL;
    envp[envc] = NULL;

    struct cfg *c = NULL;
    char err[512];
    err[0] = 0;
    int rc = cfg_load_text(OPTS, NOPTS, text, argc, argv, envp, check_fn, &c, err, sizeof err);
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "fuzz_config: rc=%d %s\n", rc, rc ? err : "");
    if (rc == 0) {
        CHECK(c != NULL);
        check_loaded(c);
        cfg_free(c);
    } else {
        CHECK(c == NULL);
        if (rc == CFG_HELP) CHECK(help);
        else CHECK(rc < 0 && err[0]);
    }
    free(text);
    return 0;
}
