/* cli_gguf — `llorch gguf inspect|make|quantize`: dispatch to the subcommands
 * in cli_gguf_<name>.c. Exit codes: 0 ok, 1 failure (message on stderr),
 * 2 bad usage. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_gguf_int.h"

static void usage(FILE *f) {
    fprintf(f, "usage: llorch gguf <inspect|make|quantize> [args]\n"
               "  inspect FILE [--json] [--ctx N]      metadata, tensor table, file type, memory estimate\n"
               "  make --preset P --type T -o OUT      synthetic model (see 'llorch gguf make --help')\n"
               "  quantize IN OUT TYPE                 requantize with llama.cpp's per-tensor rules\n");
}

int cli_gguf(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(sub, "inspect")) return cli_gguf_inspect(argc - 1, argv + 1);
    if (!strcmp(sub, "make")) return cli_gguf_make(argc - 1, argv + 1);
    if (!strcmp(sub, "quantize")) return cli_gguf_quantize(argc - 1, argv + 1);
    fprintf(stderr, "llorch gguf: unknown subcommand '%s'\n", sub);
    usage(stderr);
    return 2;
}
