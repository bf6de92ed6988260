/* catalog — see catalog.h */
#include "orch/core/catalog.h"

#include "common/util.h"
#include "orch/core/chat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct catalog {
    struct cat_model *m;
    size_t n;
};

static int name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
}

int cat_ref_valid(const char *ref) {
    if (!ref) return 0;
    size_t n = strlen(ref);
    if (n == 0 || n > JOB_MODEL_REF_MAX || !util_utf8_valid(ref, n)) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ref[i] < 0x20 || ref[i] == 0x7f || ref[i] == '"' || ref[i] == '\\') return 0;
    if (strncmp(ref, "file:/", 6) == 0) return strstr(ref, "/../") == NULL && strcmp(ref + n - 3, "/..") != 0;
    if (strncmp(ref, "hf:", 3) != 0) return 0;
    /* hf:{org}/{repo}[@rev]::file={path} */
    const char *p = ref + 3, *sep = strstr(p, "::file=");
    if (!sep || !sep[7]) return 0;
    const char *slash = memchr(p, '/', (size_t)(sep - p));
    if (!slash || slash == p) return 0;
    for (const char *q = p; q < slash; q++)
        if (!name_char(*q)) return 0;
    const char *repo_end = memchr(slash + 1, '@', (size_t)(sep - slash - 1));
    if (!repo_end) repo_end = sep;
    if (repo_end == slash + 1) return 0;
    for (const char *q = slash + 1; q < repo_end; q++)
        if (!name_char(*q)) return 0;
    for (const char *q = repo_end + (repo_end < sep); q < sep; q++)
        if (!name_char(*q) && *q != '/') return 0;
    const char *path = sep + 7;
    return path[0] != '/' && strstr(path, "..") == NULL;
}

void cat_free(struct catalog *c) {
    if (!c) return;
    free(c->m);
    free(c);
}
size_t cat_count(const struct catalog *c) { return c ? c->n : 0; }
const struct cat_model *cat_at(const struct catalog *c, size_t i) { return c && i < c->n ? &c->m[i] : NULL; }

const struct cat_model *cat_find(const struct catalog *c, const char *name) {
    if (!c || !name) return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->m[i].alias, name) == 0) return &c->m[i];
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->m[i].model_ref, name) == 0) return &c->m[i];
    return NULL;
}

static int parse_entry(const char *alias, const struct cfg_node *e, struct cat_model *m, char *err, size_t errlen) {
    char m2[200] = "";
    memset(m, 0, sizeof *m);
    if (!job_id_valid(alias, JOB_ID_MAX))
        return util_fail(err, errlen, -EINVAL, "models: invalid alias '%.64s'", alias ? alias : "");
    snprintf(m->alias, sizeof m->alias, "%s", alias);
    if (cfg_node_kind(e) != CFG_NODE_MAP) return util_fail(err, errlen, -EINVAL, "models.%s: must be a map", alias);
    static const char *known[] = { "alias", "model_ref", "context_length", "capabilities", "memory_bytes",
                                   "placements", "chat_template", NULL };
    for (size_t i = 0; i < cfg_node_len(e); i++) {
        const char *k = cfg_node_key_at(e, i);
        int ok = 0;
        for (int j = 0; known[j] && !ok; j++) ok = strcmp(k, known[j]) == 0;
        if (!ok) return util_fail(err, errlen, -EINVAL, "models.%s: unknown key '%s'", alias, k);
    }
    const char *ref = NULL;
    int rc = cfg_node_get_str(e, "model_ref", &ref, m2, sizeof m2);
    if (rc < 0 || !cat_ref_valid(ref))
        return util_fail(err, errlen, -EINVAL, "models.%s.model_ref: missing or not hf:org/repo::file=path or file:/path",
                         alias);
    snprintf(m->model_ref, sizeof m->model_ref, "%s", ref);
    rc = cfg_node_get_int(e, "context_length", &m->context_length, m2, sizeof m2);
    if (rc < 0 || m->context_length < 1 || m->context_length > 10000000)
        return util_fail(err, errlen, -EINVAL, "models.%s.context_length: required, 1..10000000", alias);
    const char *caps[8];
    rc = cfg_node_get_strs(e, "capabilities", caps, 8, m2, sizeof m2);
    if (rc == -ENOENT) m->caps = CAP_TEXT_GEN;
    else if (rc < 0) return util_fail(err, errlen, -EINVAL, "models.%s.capabilities: %s", alias, m2);
    for (int i = 0; i < rc; i++) {
        unsigned b = job_cap_parse(caps[i]);
        if (!b) return util_fail(err, errlen, -EINVAL, "models.%s.capabilities: unknown capability '%.32s'", alias, caps[i]);
        m->caps |= b;
    }
    rc = cfg_node_get_u64(e, "memory_bytes", &m->memory_bytes, m2, sizeof m2);
    if (rc < 0 && rc != -ENOENT) return util_fail(err, errlen, -EINVAL, "models.%s.memory_bytes: %s", alias, m2);
    const char *tmpl = NULL;
    m->chat_template = (int)chat_template_guess(m->model_ref);
    if (cfg_node_get_str(e, "chat_template", &tmpl, m2, sizeof m2) == 0) {
        m->chat_template = chat_template_parse(tmpl);
        m->chat_template_set = 1;
        if (m->chat_template < 0)
            return util_fail(err, errlen, -EINVAL, "models.%s.chat_template: chatml|phi3|llama2|llama3|harmony", alias);
    }
    const struct cfg_node *pl = cfg_node_get(e, "placements");
    if (pl) {
        if (cfg_node_kind(pl) != CFG_NODE_SEQ || cfg_node_len(pl) > CAT_MAX_PLACEMENTS)
            return util_fail(err, errlen, -EINVAL, "models.%s.placements: a list of at most %d {pool_id, gpu_id}",
                             alias, CAT_MAX_PLACEMENTS);
        for (size_t i = 0; i < cfg_node_len(pl); i++) {
            const struct cfg_node *p = cfg_node_at(pl, i);
            const char *pool = NULL;
            int64_t gpu = -1;
            if (cfg_node_get_str(p, "pool_id", &pool, m2, sizeof m2) < 0 || !job_id_valid(pool, JOB_POOL_ID_MAX))
                return util_fail(err, errlen, -EINVAL, "models.%s.placements[%zu].pool_id: required id", alias, i);
            rc = cfg_node_get_int(p, "gpu_id", &gpu, m2, sizeof m2);
            if ((rc < 0 && rc != -ENOENT) || gpu < -1 || gpu > 1023)
                return util_fail(err, errlen, -EINVAL, "models.%s.placements[%zu].gpu_id: -1..1023", alias, i);
            snprintf(m->placements[i].pool_id, sizeof m->placements[i].pool_id, "%s", pool);
            m->placements[i].gpu_id = (int)gpu;
            m->nplacements++;
        }
    }
    return 0;
}

int cat_from_tree(const struct cfg_node *models, struct catalog **out, char *err, size_t errlen) {
    *out = NULL;
    struct catalog *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    size_t n = cfg_node_len(models);
    if (models && cfg_node_kind(models) == CFG_NODE_SCALAR) {
        cat_free(c);
        return util_fail(err, errlen, -EINVAL, "models: must be a map of aliases or a list");
    }
    if (n) {
        c->m = calloc(n, sizeof *c->m);
        if (!c->m) { cat_free(c); return -ENOMEM; }
    }
    for (size_t i = 0; i < n; i++) {
        const struct cfg_node *e = cfg_node_at(models, i);
        const char *alias = cfg_node_key_at(models, i); /* map form */
        if (!alias && cfg_node_get_str(e, "alias", &alias, NULL, 0) < 0) {
            cat_free(c);
            return util_fail(err, errlen, -EINVAL, "models[%zu]: 'alias' is required", i);
        }
        int rc = parse_entry(alias, e, &c->m[i], err, errlen);
        if (rc < 0) { cat_free(c); return rc; }
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->m[j].alias, c->m[i].alias) == 0) {
                cat_free(c);
                return util_fail(err, errlen, -EINVAL, "models: duplicate alias '%s'", alias);
            }
        c->n++;
    }
    *out = c;
    return 0;
}
