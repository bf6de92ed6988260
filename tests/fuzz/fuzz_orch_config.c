// test-libs: llorch_orchcore llorch_config llorch_core
/* libFuzzer target: hostile YAML through the layered config loader with
 * orchestratord's real option table and checks (catalog, tenants), then the
 * typed settings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "orch/core/orch_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char *argv[] = { "f", NULL }, *envp[] = { NULL };
    char err[512];
    struct cfg *c = NULL;
    if (cfg_load_text(orch_cfg_opts, orch_cfg_nopts, text, 1, argv, envp, orch_cfg_check, &c, err, sizeof err) == 0) {
        struct orch_settings st;
        struct catalog *cat = NULL;
        if (orch_settings_from_cfg(c, &st, &cat, err, sizeof err) != 0) abort(); /* check passed: must build */
        char dump[4096];
        cfg_dump_json(c, dump, sizeof dump);
        cat_free(cat);
        cfg_free(c);
    } else if (!err[0]) {
        abort();
    }
    free(text);
    return 0;
}
