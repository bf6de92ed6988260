/* dump — LLORCH_DUMP_TENSORS=FILE (debug), shared by the forward passes of
 * arch/: appends intermediate activations, named and laid out as llama.cpp's
 * eval callback sees them (tools/ref/ref_dump_tensors.c writes llama.cpp's
 * side; tools/ref/cmp_dump.py compares the two op by op). One FILE per
 * process, opened on first use and never closed (a debug aid: the process's
 * exit flushes it). Syncs after every op; meant for the CPU backend and
 * single evals.
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine_int.h"

static FILE *dump_file(void) {
    static FILE *f;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *p = getenv("LLORCH_DUMP_TENSORS");
        if (p && *p) f = fopen(p, "a");
    }
    return f;
}

int eng_dump_enabled(void) { return dump_file() != NULL; }

void eng_dump(const eng_session *s, const char *name, int layer, const char *op, const float *x, int rows, int cols,
              int ld) {
    FILE *f = dump_file();
    if (!f) return;
    const eng_backend_ops *B = s->m->be.ops;
    void *bc = s->m->be.ctx;
    B->sync(bc);
    size_t n = (size_t)(rows - 1) * ld + cols;
    float *h = malloc(n * sizeof *h);
    if (!h) return;
    if (B->download(bc, h, x, n * sizeof *h) == 0) {
        if (layer >= 0) fprintf(f, "T %s-%d %s f32 %d %d 1 1\n", name, layer, op, cols, rows);
        else fprintf(f, "T %s %s f32 %d %d 1 1\n", name, op, cols, rows);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) fprintf(f, "%a ", (double)h[(size_t)r * ld + c]);
        fputc('\n', f);
    }
    free(h);
}
