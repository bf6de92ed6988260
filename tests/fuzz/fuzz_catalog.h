/* fuzz_catalog — the orchestrator's model catalog from YAML text, for the
 * fuzz targets that run admission (fuzz_admission, fuzz_chat,
 * fuzz_orch_admission). Needs llorch_orchcore and llorch_config. */
#ifndef FUZZ_CATALOG_H
#define FUZZ_CATALOG_H

#include <stdio.h>
#include <stdlib.h>

#include "common/config.h"
#include "orch/core/catalog.h"

/* the catalog of yaml ("models:\n  <name>: {model_ref: ..., ...}\n"); prints
 * who and the error and aborts when it does not load */
static inline struct catalog *fz_catalog(const char *who, const char *yaml) {
    static const struct cfg_opt o[] = { { .key = "models", .type = CFG_TREE } };
    char *av[] = { "f", NULL }, *envp[] = { NULL };
    char err[256] = "";
    struct cfg *c;
    struct catalog *cat = NULL;
    if (cfg_load_text(o, 1, yaml, 1, av, envp, NULL, &c, err, sizeof err) != 0 ||
        cat_from_tree(cfg_tree(c, "models"), &cat, err, sizeof err) != 0) {
        fprintf(stderr, "%s: catalog: %s\n", who, err);
        abort();
    }
    cfg_free(c); /* the catalog copies everything it keeps */
    return cat;
}

#endif
