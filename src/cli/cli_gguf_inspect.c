/* cli_gguf_inspect — `llorch gguf inspect FILE [--json] [--ctx N]`:
 * header facts, metadata (arrays summarised by their first elements), the
 * tensor table, file type, parameter count and a memory estimate:
 *   weights (tensor bytes)
 *   + KV cache, fp16: 2 (K and V) * n_layer * n_ctx * n_head_kv * head_dim * 2 bytes
 *   + scratch: f32 activations of one 512-token batch (B = min(n_ctx, 512)),
 *     its attention scores, and one row of logits:
 *     4 * B * (4*n_embd + 2*n_ff) + 4 * n_head * B * n_ctx + 4 * n_vocab
 *     (an estimate of the order of llama.cpp's compute buffer, not a bound) */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_gguf_int.h"
#include "common/util.h"

#define ARR_HEAD 6 /* elements shown per array */

static void put_scalar(struct util_sb *sb, enum gguf_vtype t, const void *p, int json) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; float f32;
            uint64_t u64; int64_t i64; double f64; } v;
    memcpy(&v, p, t == GGUF_T_U64 || t == GGUF_T_I64 || t == GGUF_T_F64 ? 8
                 : t == GGUF_T_U32 || t == GGUF_T_I32 || t == GGUF_T_F32 ? 4
                 : t == GGUF_T_U16 || t == GGUF_T_I16 ? 2 : 1);
    switch (t) {
    case GGUF_T_U8: util_sb_printf(sb, "%u", v.u8); break;
    case GGUF_T_I8: util_sb_printf(sb, "%d", v.i8); break;
    case GGUF_T_U16: util_sb_printf(sb, "%u", v.u16); break;
    case GGUF_T_I16: util_sb_printf(sb, "%d", v.i16); break;
    case GGUF_T_U32: util_sb_printf(sb, "%" PRIu32, v.u32); break;
    case GGUF_T_I32: util_sb_printf(sb, "%" PRId32, v.i32); break;
    case GGUF_T_U64: util_sb_printf(sb, "%" PRIu64, v.u64); break;
    case GGUF_T_I64: util_sb_printf(sb, "%" PRId64, v.i64); break;
    case GGUF_T_F32:
        if (json && (v.f32 != v.f32 || v.f32 - v.f32 != 0)) util_sb_puts(sb, "null");
        else util_sb_printf(sb, "%.9g", (double)v.f32);
        break;
    case GGUF_T_F64:
        if (json && (v.f64 != v.f64 || v.f64 - v.f64 != 0)) util_sb_puts(sb, "null");
        else util_sb_printf(sb, "%.17g", v.f64);
        break;
    case GGUF_T_BOOL: util_sb_puts(sb, v.u8 ? "true" : "false"); break;
    default: util_sb_puts(sb, "?"); break;
    }
}

static size_t vsize(enum gguf_vtype t) {
    switch (t) {
    case GGUF_T_U8: case GGUF_T_I8: case GGUF_T_BOOL: return 1;
    case GGUF_T_U16: case GGUF_T_I16: return 2;
    case GGUF_T_U32: case GGUF_T_I32: case GGUF_T_F32: return 4;
    case GGUF_T_U64: case GGUF_T_I64: case GGUF_T_F64: return 8;
    default: return 0;
    }
}

/* a string value: JSON-escaped; in text mode cut to max bytes */
static void put_str(struct util_sb *sb, gguf_str s, size_t max) {
    size_t n = s.len > max ? util_utf8_valid_prefix(s.ptr, max) : (size_t)s.len;
    util_sb_json_strn(sb, s.ptr, n);
    if (n < s.len) util_sb_printf(sb, "...(%" PRIu64 " bytes)", s.len);
}

static void put_arr(struct util_sb *sb, const gguf_ctx *g, const gguf_arr *a, int json, int depth) {
    if (json) util_sb_printf(sb, "{\"type\":\"array\",\"elem\":\"%s\",\"n\":%" PRIu64 ",\"head\":[", gguf_vtype_name(a->type), a->n);
    else util_sb_printf(sb, "[%s x %" PRIu64 "]", gguf_vtype_name(a->type), a->n);
    if (!json && a->n) util_sb_puts(sb, " ");
    for (uint64_t i = 0; i < a->n && i < ARR_HEAD; i++) {
        if (i) util_sb_puts(sb, json ? "," : " ");
        if (a->type == GGUF_T_STRING) {
            gguf_str s;
            if (gguf_arr_str(g, a, i, &s) == 0) put_str(sb, s, json ? 256 : 32);
        } else if (a->type == GGUF_T_ARRAY) {
            gguf_arr sub;
            if (depth < 4 && gguf_arr_arr(g, a, i, &sub) == 0) put_arr(sb, g, &sub, json, depth + 1);
            else util_sb_puts(sb, json ? "null" : "[...]");
        } else {
            put_scalar(sb, a->type, (const uint8_t *)a->data + i * vsize(a->type), json);
        }
    }
    if (json) util_sb_puts(sb, "]}");
    else if (a->n > ARR_HEAD) util_sb_puts(sb, " ...");
}

static uint32_t get_arch_u32(const gguf_ctx *g, const char *arch, const char *suffix, uint32_t dflt) {
    char key[160];
    uint32_t v;
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_u32(g, key, &v) == 0 ? v : dflt;
}

/* the file type: general.file_type when present, else the commonest 2-D type */
static const char *file_type_name(const gguf_ctx *g, char *buf, size_t cap) {
    uint32_t ft;
    if (gguf_get_u32(g, "general.file_type", &ft) == 0) {
        const mix_ftype_t *m = mix_ftype_by_id((int)ft);
        if (m) return m->name;
        snprintf(buf, cap, "file_type %u", ft);
        return buf;
    }
    uint64_t count[64] = {0};
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (t->n_dims >= 2 && t->type >= 0 && t->type < 64) count[t->type] += t->nbytes;
    }
    int best = -1;
    for (int i = 0; i < 64; i++)
        if (count[i] && (best < 0 || count[i] > count[best])) best = i;
    snprintf(buf, cap, "%s (guessed)", best >= 0 ? gguf_type_name(best) : "unknown");
    return buf;
}

int cli_gguf_inspect(int argc, char **argv) {
    int json = 0;
    int64_t n_ctx = 0;
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"ctx", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j') json = 1;
        else if (c == 'c') {
            n_ctx = strtoll(optarg, &end, 0);
            if (*end || n_ctx <= 0 || n_ctx > (1 << 24)) goto bad;
        } else if (c == 'h') {
            printf("usage: llorch gguf inspect FILE [--json] [--ctx N]\n");
            return 0;
        } else goto bad;
    }
    if (optind != argc - 1) goto bad;
    const char *path = argv[optind];
    char err[512];
    gguf_ctx *g;
    if (gguf_open(path, &g, err, sizeof err) != 0) {
        fprintf(stderr, "llorch gguf inspect: %s\n", err);
        return 1;
    }
    char archbuf[64] = "", ftbuf[64];
    gguf_str s;
    if (gguf_get_str(g, "general.architecture", &s) == 0) gguf_str_copy(s, archbuf, sizeof archbuf);
    const char *ftname = file_type_name(g, ftbuf, sizeof ftbuf);
    uint64_t n_params = 0, wbytes = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        n_params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        wbytes += t->nbytes;
    }
    /* memory estimate */
    uint32_t n_layer = get_arch_u32(g, archbuf, "block_count", 0), n_embd = get_arch_u32(g, archbuf, "embedding_length", 0),
             n_head = get_arch_u32(g, archbuf, "attention.head_count", 0),
             n_ff = get_arch_u32(g, archbuf, "feed_forward_length", 0);
    uint32_t n_head_kv = get_arch_u32(g, archbuf, "attention.head_count_kv", n_head);
    uint32_t head_dim = get_arch_u32(g, archbuf, "attention.key_length", n_head ? n_embd / n_head : 0);
    uint32_t ctx_train = get_arch_u32(g, archbuf, "context_length", 0);
    gguf_arr toks;
    uint64_t n_vocab = gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) == 0 ? toks.n : 0;
    if (!n_ctx) n_ctx = ctx_train ? ctx_train : 2048;
    uint64_t B = (uint64_t)(n_ctx < 512 ? n_ctx : 512);
    uint64_t kv = 2ull * n_layer * (uint64_t)n_ctx * n_head_kv * head_dim * 2ull;
    uint64_t scratch = 4ull * B * (4ull * n_embd + 2ull * n_ff) + 4ull * n_head * B * (uint64_t)n_ctx + 4ull * n_vocab;

    struct util_sb sb;
    util_sb_init(&sb);
    if (json) {
        util_sb_puts(&sb, "{\"path\":");
        util_sb_json_str(&sb, path);
        util_sb_printf(&sb, ",\"version\":%u,\"file_size\":%" PRIu64 ",\"alignment\":%u,\"data_offset\":%" PRIu64
                            ",\"architecture\":",
                       gguf_version(g), gguf_file_size(g), gguf_alignment(g), gguf_data_offset(g));
        util_sb_json_str(&sb, archbuf);
        util_sb_puts(&sb, ",\"file_type\":");
        util_sb_json_str(&sb, ftname);
        util_sb_printf(&sb, ",\"n_params\":%" PRIu64 ",\"n_tensors\":%" PRId64 ",\"n_kv\":%" PRId64, n_params,
                       gguf_n_tensors(g), gguf_n_kv(g));
        util_sb_printf(&sb, ",\"memory\":{\"n_ctx\":%" PRId64 ",\"weights_bytes\":%" PRIu64 ",\"kv_bytes\":%" PRIu64
                            ",\"scratch_bytes\":%" PRIu64 ",\"total_bytes\":%" PRIu64 "}",
                       n_ctx, wbytes, kv, scratch, wbytes + kv + scratch);
        util_sb_puts(&sb, ",\"metadata\":{");
    } else {
        util_sb_printf(&sb, "file        %s\nversion     %u\nsize        %" PRIu64 " bytes\nalignment   %u\ndata at     %" PRIu64
                            "\narch        %s\nfile type   %s\nparameters  %" PRIu64 " (%.3f M)\ntensors     %" PRId64
                            "\n\nmetadata (%" PRId64 " keys)\n",
                       path, gguf_version(g), gguf_file_size(g), gguf_alignment(g), gguf_data_offset(g),
                       archbuf[0] ? archbuf : "?", ftname, n_params, (double)n_params / 1e6, gguf_n_tensors(g),
                       gguf_n_kv(g));
    }
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        gguf_str k = gguf_kv_key(g, i);
        enum gguf_vtype t = gguf_kv_type(g, i);
        if (json) {
            if (i) util_sb_putc(&sb, ',');
            util_sb_json_strn(&sb, k.ptr, k.len);
            util_sb_putc(&sb, ':');
        } else {
            util_sb_puts(&sb, "  ");
            util_sb_putn(&sb, k.ptr, k.len);
            util_sb_printf(&sb, " %*s", (int)(k.len < 44 ? 44 - k.len : 0), "");
        }
        if (t == GGUF_T_STRING) {
            gguf_kv_str(g, i, &s);
            put_str(&sb, s, json ? (size_t)-1 : 60);
        } else if (t == GGUF_T_ARRAY) {
            gguf_arr a;
            gguf_kv_arr(g, i, &a);
            put_arr(&sb, g, &a, json, 0);
        } else {
            put_scalar(&sb, t, gguf_kv_scalar(g, i), json);
        }
        if (!json) util_sb_putc(&sb, '\n');
    }
    if (json) util_sb_puts(&sb, "},\"tensors\":[");
    else util_sb_printf(&sb, "\ntensors\n  %-34s %-7s %-24s %s\n", "name", "type", "shape", "bytes");
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        char shape[96];
        int o = snprintf(shape, sizeof shape, "%" PRId64, t->ne[0]);
        for (int d = 1; d < t->n_dims && o < (int)sizeof shape; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, json ? ",%" PRId64 : "x%" PRId64, t->ne[d]);
        if (json) {
            if (i) util_sb_putc(&sb, ',');
            util_sb_puts(&sb, "{\"name\":");
            util_sb_json_str(&sb, t->name);
            util_sb_printf(&sb, ",\"type\":\"%s\",\"shape\":[%s],\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
                           gguf_type_name(t->type), shape, t->offset, t->nbytes);
        } else {
            util_sb_printf(&sb, "  %-34s %-7s %-24s %" PRIu64 "\n", t->name, gguf_type_name(t->type), shape, t->nbytes);
        }
    }
    if (json) {
        util_sb_puts(&sb, "]}\n");
    } else {
        util_sb_printf(&sb,
                       "\nmemory at n_ctx %" PRId64 "\n  weights  %12" PRIu64 " bytes (%.1f MiB)\n  kv fp16  %12" PRIu64
                       " bytes (%.1f MiB)  2 x %u layers x %" PRId64 " ctx x %u kv heads x %u dim x 2 B\n"
                       "  scratch  %12" PRIu64 " bytes (%.1f MiB)\n  total    %12" PRIu64 " bytes (%.1f MiB)\n",
                       n_ctx, wbytes, wbytes / 1048576.0, kv, kv / 1048576.0, n_layer, n_ctx, n_head_kv, head_dim,
                       scratch, scratch / 1048576.0, wbytes + kv + scratch, (wbytes + kv + scratch) / 1048576.0);
    }
    gguf_close(g);
    if (sb.oom) {
        util_sb_free(&sb);
        fprintf(stderr, "llorch gguf inspect: out of memory\n");
        return 1;
    }
    fwrite(sb.buf, 1, sb.len, stdout);
    util_sb_free(&sb);
    return 0;
bad:
    fprintf(stderr, "usage: llorch gguf inspect FILE [--json] [--ctx N]\n");
    return 2;
}
