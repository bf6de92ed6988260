/* llorch — the command-line front door. Each command lives in its own
 * cli_<name>.c and is referenced weakly here, so the CLI links with whatever
 * commands exist and says so for those that do not. */
#include <stdio.h>
#include <string.h>

#include "common/log.h"

#define CLI_CMD(fn) int fn(int argc, char **argv) __attribute__((weak))
CLI_CMD(cli_gguf);     /* gguf inspect|make|quantize */
CLI_CMD(cli_generate); /* generate --model --prompt ... */
CLI_CMD(cli_bench);    /* bench --model ... */
CLI_CMD(cli_run);      /* run MODEL "prompt" (through the orchestrator) */
CLI_CMD(cli_status);   /* status */
CLI_CMD(cli_pull);     /* pull MODEL_REF */
CLI_CMD(cli_place);    /* place MODEL POOL GPU */

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"gguf", cli_gguf, "inspect FILE | make --preset P --type T -o OUT | quantize IN OUT TYPE"},
    {"generate", cli_generate, "--model FILE --prompt TEXT [--max-tokens N --temperature T ...]"},
    {"bench", cli_bench, "--model FILE [-p 512] [-n 128] [-r 5] [--backend cpu|cuda]"},
    {"run", cli_run, "MODEL \"prompt\"   submit a task to the orchestrator and stream it"},
    {"status", cli_status, "pools, GPUs, memory, workers and queue at a glance"},
    {"pull", cli_pull, "MODEL_REF   provision a model into a pool's cache"},
    {"place", cli_place, "MODEL POOL GPU   pin a model to a GPU"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: llorch <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s%s\n", commands[i].name, commands[i].help,
                commands[i].fn ? "" : "  (not built)");
}

int main(int argc, char **argv) {
    log_init();
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (!commands[i].fn) {
            fprintf(stderr, "llorch: '%s' is not built into this binary\n", argv[1]);
            return 2;
        }
        return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "llorch: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
