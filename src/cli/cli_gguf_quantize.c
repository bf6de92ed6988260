/* cli_gguf_quantize — `llorch gguf quantize IN OUT TYPE [--dry-run]`:
 * rewrites every tensor with llama.cpp's per-tensor type for TYPE (the mix
 * rules in cli_gguf_mix.c: 2-D weights quantized, norms/biases kept,
 * token_embd/output per llama.cpp, fall-backs for rows that are not whole
 * blocks). Metadata is copied; general.file_type is set to TYPE.
 *
 * Tensors are visited and written in llama.cpp's order (non-layer tensors by
 * name, then layer by layer, names sorted within a layer) because the Q*_K_M
 * bumps depend on how many attn_v / ffn_down tensors came before. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_gguf_int.h"
#include "common/util.h"
#include "engine/quant.h"

struct qz {
    const gguf_ctx *g;
    const gguf_tensor **src; /* in output order */
    int *type;               /* new type per output tensor */
    float *row;
    int64_t row_cap;
    int threads;
    const char *err_tensor;
    int err_code;
};

static int layer_of(const char *name) {
    int l = -1;
    if (sscanf(name, "blk.%d.", &l) != 1) l = -1;
    return l;
}

/* llama.cpp's weight_name_comparer */
static int cmp_tensor(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    int lx = layer_of(x->name), ly = layer_of(y->name);
    if (lx != ly) return lx < ly ? -1 : 1;
    return strcmp(x->name, y->name);
}

struct qjob {
    struct qz *q;
    const gguf_tensor *t;
    int nt;
    uint8_t *dst;
    size_t sb, db;
};

static int conv_rows(void *ctx, int tid, int64_t r0, int64_t r1) {
    struct qjob *j = ctx;
    const int64_t ne0 = j->t->ne[0];
    float *row = j->q->row + (size_t)tid * (size_t)j->q->row_cap;
    for (int64_t r = r0; r < r1; r++) {
        qt_dequant_row(j->t->type, (const uint8_t *)j->t->data + (size_t)r * j->sb, row, ne0);
        int rc = qt_quantize_row(j->nt, row, j->dst + (size_t)r * j->db, ne0);
        if (rc) return rc;
    }
    return 0;
}

static int fill(void *user, int64_t i, void *dst, uint64_t nbytes) {
    struct qz *q = user;
    const gguf_tensor *t = q->src[i];
    int nt = q->type[i];
    if (nt == t->type) { /* same type: the bytes as they are */
        if (nbytes != t->nbytes) return -EINVAL;
        memcpy(dst, t->data, nbytes);
        return 0;
    }
    const int64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    const size_t sb = qt_row_bytes(t->type, ne0), db = qt_row_bytes(nt, ne0);
    if (!sb || !db || db * (uint64_t)rows != nbytes) return -EINVAL;
    struct qjob j = {q, t, nt, dst, sb, db};
    int rc = cg_parallel_rows(rows, q->threads, conv_rows, &j);
    if (rc) {
        q->err_tensor = t->name;
        q->err_code = rc;
    }
    return rc;
}

int cli_gguf_quantize(int argc, char **argv) {
    int dry = 0, pos = 0, pure = 0, threads = 0;
    const char *args[3] = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dry-run")) dry = 1;
        else if (!strcmp(argv[i], "--pure")) pure = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if (cg_flag_int("llorch gguf quantize", "threads", argv[++i], 1, 1024, &threads)) return 2;
        }
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: llorch gguf quantize IN.gguf OUT.gguf TYPE [--pure] [--threads N] [--dry-run]\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            goto bad;
        } else if (pos < 3) {
            args[pos++] = argv[i];
        } else {
            goto bad;
        }
    }
    if (pos != 3) goto bad;
    const mix_ftype_t *ft = mix_ftype_by_name(args[2]);
    if (!ft) {
        fprintf(stderr, "llorch gguf quantize: unknown type '%s'\n", args[2]);
        return 2;
    }
    char err[512] = "", arch[64] = "", key[160];
    gguf_ctx *g = NULL;
    gguf_writer *w = NULL;
    struct qz q = {0};
    const char **names = NULL;
    int rc = gguf_open(args[0], &g, err, sizeof err);
    if (rc) goto fail;
    gguf_str s;
    if (gguf_get_str(g, "general.architecture", &s) == 0) gguf_str_copy(s, arch, sizeof arch);
    uint32_t n_layer = 0, n_head = 1, n_head_kv = 0;
    snprintf(key, sizeof key, "%s.block_count", arch);
    gguf_get_u32(g, key, &n_layer);
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    gguf_get_u32(g, key, &n_head);
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    if (gguf_get_u32(g, key, &n_head_kv) != 0 || n_head_kv == 0) n_head_kv = n_head ? n_head : 1;

    const int64_t n = gguf_n_tensors(g);
    q.g = g;
    q.src = malloc((size_t)(n ? n : 1) * sizeof *q.src);
    q.type = malloc((size_t)(n ? n : 1) * sizeof *q.type);
    names = malloc((size_t)(n ? n : 1) * sizeof *names);
    w = gguf_writer_new();
    if (!q.src || !q.type || !names || !w) {
        rc = util_fail(err, sizeof err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) q.src[i] = gguf_tensor_at(g, i);
    qsort(q.src, (size_t)n, sizeof *q.src, cmp_tensor);
    for (int64_t i = 0; i < n; i++) names[i] = q.src[i]->name;
    mix_state st;
    mix_init(&st, ft, (int)n_layer, (int)(n_head / n_head_kv), names, (int)n);
    st.pure = pure;
    q.threads = threads ? (threads < CG_MAX_THREADS ? threads : CG_MAX_THREADS) : cg_threads_default();
    for (int64_t i = 0; i < n; i++) {
        const gguf_tensor *t = q.src[i];
        q.type[i] = mix_tensor_type(&st, t->name, t->n_dims, t->ne, t->type);
        if (t->ne[0] > q.row_cap) q.row_cap = t->ne[0];
        if (dry) {
            printf("%s\t%s\t%lld", t->name, gguf_type_name(q.type[i]), (long long)t->ne[0]);
            for (int d = 1; d < t->n_dims; d++) printf("x%lld", (long long)t->ne[d]);
            printf("\n");
            continue;
        }
        if (q.type[i] == t->type) continue;
        const qt_info_t *si = qt_info(t->type), *di = qt_info(q.type[i]);
        if (!si) {
            rc = util_fail(err, sizeof err, -ENOTSUP, "tensor '%s': no dequantizer for its type %s", t->name,
                           gguf_type_name(t->type));
            goto fail;
        }
        if (!di || !di->can_quantize) {
            rc = util_fail(err, sizeof err, -ENOTSUP,
                           "tensor '%s' needs type %s, which has no quantizer in this build", t->name,
                           gguf_type_name(q.type[i]));
            goto fail;
        }
    }
    if (dry) goto done;
    for (int64_t i = 0; i < gguf_n_kv(g) && !rc; i++) rc = gguf_w_copy_kv(w, g, i);
    if (gguf_alignment(g) != GGUF_DEFAULT_ALIGNMENT) gguf_w_set_alignment(w, gguf_alignment(g));
    rc = rc ? rc : gguf_w_set_u32(w, "general.file_type", (uint32_t)ft->ftype);
    rc = rc ? rc : gguf_w_set_u32(w, "general.quantization_version", 2);
    if (rc) {
        rc = util_fail(err, sizeof err, rc, "cannot copy metadata (%d)", rc);
        goto fail;
    }
    q.row = malloc((size_t)(q.row_cap ? q.row_cap : 1) * (size_t)q.threads * sizeof *q.row);
    if (!q.row) {
        rc = util_fail(err, sizeof err, -ENOMEM, "out of memory");
        goto fail;
    }
    for (int64_t i = 0; i < n; i++) {
        const gguf_tensor *t = q.src[i];
        int64_t ti = gguf_w_add_tensor(w, t->name, q.type[i], t->n_dims, t->ne, NULL, fill, &q);
        if (ti < 0) {
            rc = util_fail(err, sizeof err, (int)ti, "tensor '%s': cannot add as %s", t->name, gguf_type_name(q.type[i]));
            goto fail;
        }
    }
    rc = gguf_w_write(w, args[1], err, sizeof err);
    if (rc && q.err_tensor)
        snprintf(err, sizeof err, "tensor '%s': quantization failed (%d)", q.err_tensor, q.err_code);
    if (rc) goto fail;
    printf("wrote %s: %s, %lld tensors, %d fall-backs (rows not a whole number of blocks)\n", args[1], ft->name,
           (long long)n, st.n_fallback);
done:
    gguf_writer_free(w);
    gguf_close(g);
    free(q.src);
    free(q.type);
    free(q.row);
    free(names);
    return 0;
fail:
    fprintf(stderr, "llorch gguf quantize: %s\n", err[0] ? err : "failed");
    gguf_writer_free(w);
    gguf_close(g);
    free(q.src);
    free(q.type);
    free(q.row);
    free(names);
    return 1;
bad:
    fprintf(stderr, "usage: llorch gguf quantize IN.gguf OUT.gguf TYPE [--pure] [--threads N] [--dry-run]\n");
    return 2;
}
