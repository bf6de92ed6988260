/* config — generic layered configuration for every llama-orch service
 * (orchestratord, pool-managerd). SPEC §7:
 *
 *     built-in defaults < YAML file (--config / LLORCH_CONFIG) < LLORCH_* env < CLI flags
 *
 * A service declares its options in a const table (struct cfg_opt[]), then
 * calls cfg_load(); every layer is merged, then every value is parsed and
 * validated (type, range, enum, custom validator, cross-option check). Any
 * failure returns a negative code and a message naming the option and the
 * layer it came from ("queue.capacity: 'abc' is not an integer (from env
 * LLORCH_QUEUE_CAPACITY)"); the caller prints it and exits 2.
 *
 * Structured data that is not a scalar option (model catalog, adapters, auth
 * tokens: lists of maps) is declared as a CFG_TREE option and read through
 * the generic node API below; trees come from the YAML file only.
 *
 * Unknown YAML keys (outside CFG_TREE subtrees) and unknown flags are
 * errors: a typo must not silently fall back to a default.
 *
 * Example (pool-managerd):
 *
 *     static const struct cfg_opt opts[] = {
 *         { .key = "bind", .type = CFG_STRING, .def = "127.0.0.1:9200", .validate = cfg_validate_hostport },
 *         { .key = "pool_id", .type = CFG_STRING, .min = 1, .max = 128 },         // --pool-id, LLORCH_POOL_ID
 *         { .key = "orchestrator.url", .type = CFG_STRING },                       // --orchestrator-url
 *         { .key = "heartbeat_interval_ms", .type = CFG_DURATION_MS, .def = "15000", .min = 100, .max = 3600000 },
 *         { .key = "models.cache_dir", .type = CFG_STRING, .flag = "--cache-dir" }, // LLORCH_CACHE_DIR
 *         { .key = "inventory", .type = CFG_ENUM, .def = "nvml", .enums = "nvml|host|simulated" },
 *         { .key = "gpu_headroom_bytes", .type = CFG_U64, .def = "512MiB" },
 *         { .key = "adapters", .type = CFG_TREE },                               // list of maps, YAML only
 *     };
 *     struct cfg *c; char err[512];
 *     int rc = cfg_load(opts, sizeof opts / sizeof opts[0], argc, argv, NULL, my_check, &c, err, sizeof err);
 *     if (rc == CFG_HELP) { cfg_usage(opts, n, stdout); exit(0); }
 *     if (rc < 0) { fprintf(stderr, "pool-managerd: %s\n", err); exit(2); }
 *     const struct cfg_node *ad = cfg_tree(c, "adapters");
 *     for (size_t i = 0; i < cfg_node_len(ad); i++) {
 *         const char *name; cfg_node_get_str(cfg_node_at(ad, i), "name", &name, err, sizeof err); ...
 *     }
 *
 * Ownership: struct cfg owns every string and node it hands out; they live
 * until cfg_free(). The option table is borrowed and must outlive the cfg.
 * Not thread-safe for mutation; read-only use after cfg_load is safe.
 */
#ifndef LLORCH_CONFIG_H
#define LLORCH_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cfg_type {
    CFG_INT,         /* int64; range [min,max] when min<max */
    CFG_U64,         /* uint64; accepts K/M/G/KiB/MiB/GiB suffixes (×1000 / ×1024) */
    CFG_FLOAT,       /* double; range [fmin,fmax] when fmin<fmax */
    CFG_BOOL,        /* true/false/yes/no/on/off/1/0 */
    CFG_STRING,      /* any text (non-empty when min>0) */
    CFG_DURATION_MS, /* int64 ms; accepts "1500", "1500ms", "15s", "2m", "1h" */
    CFG_ENUM,        /* one of enums "a|b|c" */
    CFG_LIST,        /* list of strings: YAML sequence, or "a,b,c" from env/flags */
    CFG_TREE,        /* a YAML subtree kept as is (catalogs, lists of maps) */
};

enum cfg_source { CFG_SRC_DEFAULT = 0, CFG_SRC_FILE, CFG_SRC_ENV, CFG_SRC_FLAG };

struct cfg;

/* A validator gets the parsed value through the cfg (use the getters with
 * opt->key); returns 0 or writes a message (without the key) and returns <0. */
typedef int (*cfg_validate_fn)(const struct cfg *c, const char *key, char *err, size_t errlen);

struct cfg_opt {
    const char *key;     /* YAML path, dot separated: "queue.capacity" */
    enum cfg_type type;
    const char *def;     /* default as text; NULL = unset (getters return 0/NULL) */
    const char *flag;    /* "--queue-capacity"; NULL = "--" + key with '.'/'_' -> '-'; "" = none */
    const char *env;     /* NULL = derived from the flag: LLORCH_ + upper, '-' -> '_'; "" = none */
    const char *enums;   /* CFG_ENUM: "home|lab|platform" */
    int64_t min, max;    /* CFG_INT/DURATION_MS range, CFG_STRING/LIST min length/count; used when min<max */
    double fmin, fmax;   /* CFG_FLOAT range; used when fmin<fmax */
    cfg_validate_fn validate;
    const char *help;
};

/* Cross-option check run after every per-option check. */
typedef int (*cfg_check_fn)(const struct cfg *c, char *err, size_t errlen);

#define CFG_EUSAGE (-2)   /* invalid configuration: exit 2 */
#define CFG_HELP   (-100) /* --help was given: print cfg_usage, exit 0 */

/* Loads the configuration.
 *   table/n   the options (borrowed; must outlive the cfg)
 *   argc/argv command line (argv[0] skipped); "--config PATH" picks the YAML file
 *   envp      NULL-terminated "NAME=value" array, or NULL for the process environment
 * Returns 0 and *out, or CFG_HELP, or a negative code with err filled. */
int cfg_load(const struct cfg_opt *table, size_t n, int argc, char *const *argv,
             char *const *envp, cfg_check_fn check, struct cfg **out, char *err, size_t errlen);
/* Same, but the YAML text is given directly (tests, embedded configs); path may be NULL. */
int cfg_load_text(const struct cfg_opt *table, size_t n, const char *yaml_text, int argc,
                  char *const *argv, char *const *envp, cfg_check_fn check, struct cfg **out,
                  char *err, size_t errlen);
void cfg_free(struct cfg *c);

/* Getters. key must be in the table with that type (else LLORCH_ASSERT: a bug).
 * Unset options (no default, not given) return 0 / NULL / empty. */
int64_t cfg_int(const struct cfg *c, const char *key);       /* CFG_INT, CFG_DURATION_MS */
uint64_t cfg_u64(const struct cfg *c, const char *key);
double cfg_float(const struct cfg *c, const char *key);
int cfg_bool(const struct cfg *c, const char *key);
const char *cfg_str(const struct cfg *c, const char *key);   /* CFG_STRING, CFG_ENUM */
/* CFG_LIST: returns the count; *items (may be NULL) gets a borrowed array. */
size_t cfg_list(const struct cfg *c, const char *key, const char *const **items);
int cfg_is_set(const struct cfg *c, const char *key);
enum cfg_source cfg_source_of(const struct cfg *c, const char *key);
const char *cfg_source_name(enum cfg_source s);  /* "default", "file", "env", "flag" */
const char *cfg_file_path(const struct cfg *c);  /* the YAML file used, or NULL */

/* Writes "--flag VALUE  help [default]" lines. */
void cfg_usage(const struct cfg_opt *table, size_t n, FILE *f);
/* Writes every option as a JSON object {"key":"value",...} (secrets: options whose
 * key ends in "token"/"tokens"/"secret" are written as "***"). Returns bytes
 * needed (like snprintf). */
size_t cfg_dump_json(const struct cfg *c, char *out, size_t cap);

/* ---- generic YAML node API (CFG_TREE values) -------------------------------
 * Scalars keep their YAML text. Map keys keep document order. */
enum cfg_node_kind { CFG_NODE_SCALAR, CFG_NODE_SEQ, CFG_NODE_MAP };
struct cfg_node;

const struct cfg_node *cfg_tree(const struct cfg *c, const char *key); /* NULL when absent */
enum cfg_node_kind cfg_node_kind(const struct cfg_node *n);
size_t cfg_node_len(const struct cfg_node *n);              /* SEQ/MAP entries; 0 for scalars/NULL */
const struct cfg_node *cfg_node_at(const struct cfg_node *n, size_t i);   /* SEQ item / MAP value */
const char *cfg_node_key_at(const struct cfg_node *n, size_t i);          /* MAP key; NULL otherwise */
const struct cfg_node *cfg_node_get(const struct cfg_node *n, const char *key); /* MAP lookup */
const char *cfg_node_str(const struct cfg_node *n);         /* SCALAR text; NULL otherwise */
/* Typed reads of a MAP member; return 0 on success, -ENOENT when absent
 * (out untouched), -EINVAL when present but malformed (message in err). */
int cfg_node_get_str(const struct cfg_node *map, const char *key, const char **out, char *err, size_t errlen);
int cfg_node_get_int(const struct cfg_node *map, const char *key, int64_t *out, char *err, size_t errlen);
int cfg_node_get_u64(const struct cfg_node *map, const char *key, uint64_t *out, char *err, size_t errlen);
int cfg_node_get_bool(const struct cfg_node *map, const char *key, int *out, char *err, size_t errlen);
/* A member that is a sequence of scalars (or one scalar): fills
 * up to cap borrowed strings; returns the count, -ENOENT, or -EINVAL. */
int cfg_node_get_strs(const struct cfg_node *map, const char *key, const char **out, size_t cap,
                      char *err, size_t errlen);

/* ---- value parsers (shared with callers that parse their own trees) ----- */
int cfg_parse_int(const char *s, int64_t *out);
int cfg_parse_u64(const char *s, uint64_t *out);
int cfg_parse_float(const char *s, double *out);
int cfg_parse_bool(const char *s, int *out);
int cfg_parse_duration_ms(const char *s, int64_t *out);
/* "HOST:PORT" (IPv6 as "[addr]:port"), port 0..65535, host 1..hcap-1 bytes. */
int cfg_parse_hostport(const char *s, char *host, size_t hcap, int *port);
/* A ready-made validator for CFG_STRING options holding HOST:PORT (e.g. bind). */
int cfg_validate_hostport(const struct cfg *c, const char *key, char *err, size_t errlen);

#endif
