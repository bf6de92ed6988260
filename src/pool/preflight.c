/* preflight — every check a start must pass before anything is spawned
 * (SPEC §5). Cheap by construction (< 20 ms): the GGUF header is parsed over
 * mmap (only metadata and the tensor table are touched), the inventory comes
 * from its <= 100 ms cache.
 *
 * Memory estimate (pessimistic, SPEC §5): (weights + fp16 KV at ctx + scratch) * 1.1,
 *   weights = the file's tensor data bytes (what the worker copies to its device)
 *   KV      = 2 (K and V) * n_layer * ctx * n_head_kv * head_dim * 2 bytes
 *   scratch = the engine's working buffers for a 512-token batch (activations,
 *             FFN, logits capped at 64 MiB): without it tiny models, whose
 *             buffers outweigh their weights, would be under-estimated
 * Available on a device = free (measured; the simulated double derives it from
 * the settled accounting) - headroom - estimates of workers still starting
 * (their memory is not visible in a measurement yet).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "gguf/gguf.h"
#include "pool/adapters/adapter.h"
#include "pool/pool.h"

#define DEFAULT_CTX_CAP 4096 /* the workers' default: the model's context, at most 4096 */

static int get_arch_u64(gguf_ctx *g, const char *arch, const char *suffix, uint64_t *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_u64(g, key, out);
}

int pool_estimate_model(const char *path, int64_t *ctx_inout, char *arch, size_t archcap, uint64_t *bytes,
                        enum err_code *code, char *msg, size_t msglen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *code = ERR_MODEL_NOT_FOUND;
        return util_fail(msg, msglen, -errno, "model file '%s' is not readable: %s", path, strerror(errno));
    }
    char magic[4] = { 0 };
    ssize_t r = read(fd, magic, 4);
    close(fd);
    if (r != 4 || memcmp(magic, "GGUF", 4)) {
        *code = ERR_MODEL_INCOMPATIBLE;
        return util_fail(msg, msglen, -EINVAL, "'%s' is not a GGUF file", path);
    }
    gguf_ctx *g = NULL;
    char e[256];
    if (gguf_open(path, &g, e, sizeof e) < 0) {
        *code = ERR_MODEL_INCOMPATIBLE;
        return util_fail(msg, msglen, -EINVAL, "GGUF header does not parse: %s", e);
    }
    gguf_str a;
    if (gguf_get_str(g, "general.architecture", &a) != 0 || a.len == 0 || a.len >= archcap) {
        gguf_close(g);
        *code = ERR_MODEL_INCOMPATIBLE;
        return util_fail(msg, msglen, -EINVAL, "GGUF has no general.architecture");
    }
    gguf_str_copy(a, arch, archcap);
    uint64_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, key_len = 0, ctx_train = 0, n_ff = 0, n_vocab = 0;
    get_arch_u64(g, arch, "feed_forward_length", &n_ff);
    gguf_arr toks;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", &toks) == 0) n_vocab = toks.n;
    get_arch_u64(g, arch, "block_count", &n_layer);
    get_arch_u64(g, arch, "embedding_length", &n_embd);
    get_arch_u64(g, arch, "attention.head_count", &n_head);
    if (get_arch_u64(g, arch, "attention.head_count_kv", &n_head_kv) != 0) n_head_kv = n_head;
    get_arch_u64(g, arch, "attention.key_length", &key_len);
    get_arch_u64(g, arch, "context_length", &ctx_train);
    uint64_t weights = 0;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) weights += gguf_tensor_at(g, i)->nbytes;
    gguf_close(g);
    int64_t ctx = *ctx_inout;
    if (ctx <= 0) ctx = ctx_train ? (int64_t)UTIL_MIN(ctx_train, (uint64_t)DEFAULT_CTX_CAP) : DEFAULT_CTX_CAP;
    if (!key_len && n_head) key_len = n_embd / n_head;
    /* caps keep the products far from overflow on hostile metadata */
    if (n_layer > 100000 || n_head_kv > 100000 || key_len > 100000 || n_embd > 1000000 || n_ff > 10000000 ||
        n_head > 100000 || n_vocab > 100000000) {
        *code = ERR_MODEL_INCOMPATIBLE;
        return util_fail(msg, msglen, -EINVAL, "implausible hyperparameters in the GGUF header");
    }
    uint64_t kv = 2ull * n_layer * (uint64_t)ctx * n_head_kv * key_len * 2ull;
    uint64_t B = (uint64_t)UTIL_MIN(ctx, 512), q = n_head * key_len, kvd = n_head_kv * key_len;
    uint64_t logits = UTIL_MIN(B * n_vocab * 4ull, 64ull << 20);
    uint64_t scratch = B * 4ull * (3 * n_embd + 2 * q + 2 * kvd + 3 * n_ff) + logits + 8 * B;
    uint64_t sum = weights + kv + scratch;
    *bytes = sum + sum / 10;
    *ctx_inout = ctx;
    return 0;
}

static const struct pool_adapter *pick_adapter(struct pool *p, const char *type) {
    for (int i = 0; i < p->nadapters; i++) {
        const struct pool_adapter *a = &p->adapters[i];
        if (type ? (!strcmp(a->name, type) || !strcmp(a->ops->type, type)) : a->is_default) return a;
    }
    return NULL;
}

enum err_code pool_preflight_run(struct pool *p, const struct pool_start_req *rq, struct pool_preflight *out,
                                 char *msg, size_t msglen, char *det, size_t dlen) {
    memset(out, 0, sizeof *out);
    det[0] = 0;
    const struct pool_adapter *ad = pick_adapter(p, rq->worker_type);
    if (!ad) {
        snprintf(msg, msglen, "no adapter '%s' on this pool", rq->worker_type ? rq->worker_type : "(default)");
        return ERR_ADAPTER_NOT_FOUND;
    }
    out->ad = ad;
    char e[256];
    if (ad->ops->platform_ok(e, sizeof e) != 0) {
        snprintf(msg, msglen, "%s", e);
        return ERR_PLATFORM_UNSUPPORTED;
    }
    const char *cap = rq->capability ? rq->capability : "text-gen";
    int has_cap = 0;
    for (int i = 0; i < ad->ncaps; i++) has_cap |= !strcmp(ad->capabilities[i], cap);
    if (!has_cap) {
        snprintf(msg, msglen, "adapter '%s' does not offer capability '%.32s'", ad->name, cap);
        return ERR_MODEL_INCOMPATIBLE;
    }
    /* devices */
    struct pool_device d[POOL_MAX_DEVICES];
    int nd = pool_inv_snapshot(p->inv, d, POOL_MAX_DEVICES);
    int want[POOL_MAX_GPUS_PER_WORKER], nwant = 0;
    if (ad->ops->uses_gpu) {
        if (rq->ngpu == 0) {
            snprintf(msg, msglen, "adapter '%s' needs gpu_id", ad->name);
            return ERR_GPU_NOT_FOUND;
        }
        for (int i = 0; i < rq->ngpu; i++) {
            int found = 0;
            for (int k = 0; k < nd; k++) found |= d[k].gpu_id >= 0 && d[k].gpu_id == rq->gpu_ids[i];
            if (!found) {
                snprintf(msg, msglen, "no GPU %d on this pool", rq->gpu_ids[i]);
                snprintf(det, dlen, "{\"gpu\":%d}", rq->gpu_ids[i]);
                return ERR_GPU_NOT_FOUND;
            }
            want[nwant++] = rq->gpu_ids[i];
        }
    } else {
        want[nwant++] = POOL_HOST_DEVICE;
    }
    /* a conflicting worker: the same model already starting on the same device */
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->nworkers; i++) {
        const struct pool_worker *w = p->workers[i];
        if (w != rq->self && w->status == PW_STARTING && w->ad == ad && !strcmp(w->model_ref, rq->model_ref) &&
            (w->ngpu ? w->gpu_ids[0] : POOL_HOST_DEVICE) == want[0]) {
            pthread_mutex_unlock(&p->mu);
            snprintf(msg, msglen, "worker %s is already starting this model on this device", w->id);
            snprintf(det, dlen, "{\"worker_id\":\"%s\"}", w->id);
            return ERR_CONFLICT;
        }
    }
    pthread_mutex_unlock(&p->mu);
    /* model */
    enum err_code code = pool_model_resolve(p, rq->model_ref, out->model_path, sizeof out->model_path, msg, msglen);
    if (code == ERR_MODEL_NOT_FOUND && rq->allow_pull && pool_model_is_hf(rq->model_ref)) {
        out->needs_pull = 1; /* provisionable: the rest runs once the file is here */
        return ERR_OK;
    }
    if (code != ERR_OK) return code;
    out->ctx = rq->ctx;
    uint64_t est = 0;
    if (pool_estimate_model(out->model_path, &out->ctx, out->arch, sizeof out->arch, &est, &code, msg, msglen) < 0)
        return code;
    if (!ad->ops->arch_supported(out->arch)) {
        snprintf(msg, msglen, "architecture '%s' is not supported by adapter '%s'", out->arch, ad->name);
        snprintf(det, dlen, "{\"architecture\":\"%s\"}", out->arch);
        return ERR_MODEL_INCOMPATIBLE;
    }
    out->estimate = est;
    /* memory: every device the worker uses must hold its share */
    uint64_t share = est / (uint64_t)nwant;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < nwant; i++) {
        const struct pool_device *x = NULL;
        for (int k = 0; k < nd; k++)
            if (d[k].gpu_id == want[i]) x = &d[k];
        if (!x) {
            pthread_mutex_unlock(&p->mu);
            snprintf(msg, msglen, "device %d vanished", want[i]);
            return ERR_GPU_NOT_FOUND;
        }
        uint64_t headroom = p->headroom_bytes + (uint64_t)((double)x->total_bytes * p->headroom_pct / 100.0);
        uint64_t pending = pool_accounted_locked(p, x->gpu_id, POOL_ACC_STARTING);
        uint64_t minus = headroom + pending;
        uint64_t avail = x->free_bytes > minus ? x->free_bytes - minus : 0;
        if (i == 0 || avail < out->available) {
            out->available = avail;
            out->gpu = x->gpu_id;
        }
        if (share > avail) {
            pthread_mutex_unlock(&p->mu);
            snprintf(msg, msglen, "model needs %llu bytes (weights + KV at ctx %lld + 10%%); device %d has %llu available",
                     (unsigned long long)share, (long long)out->ctx, x->gpu_id, (unsigned long long)avail);
            snprintf(det, dlen,
                     "{\"required\":%llu,\"available\":%llu,\"gpu\":%d,\"free\":%llu,\"headroom\":%llu,"
                     "\"reserved\":%llu}",
                     (unsigned long long)share, (unsigned long long)avail, x->gpu_id,
                     (unsigned long long)x->free_bytes, (unsigned long long)headroom, (unsigned long long)pending);
            return ERR_INSUFFICIENT_VRAM;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return ERR_OK;
}
