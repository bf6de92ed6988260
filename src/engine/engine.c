/* engine — model and session lifetimes, eval, logits, sampling, facts.
 *
 * eng_model_load: open + validate everything (GGUF, architecture, shapes,
 * types, tokenizer, memory fit) before allocating backend memory; then bind
 * the weights. eng_session_new: the KV cache and every scratch buffer for
 * n_ctx / n_batch, once. eng_eval never allocates.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "engine/engine_int.h"

const char *eng_err_name(int code) {
    switch (code) {
    case 0: return "OK";
    case ENG_E_INVAL: return "INVAL";
    case ENG_E_UNSUPPORTED: return "UNSUPPORTED";
    case ENG_E_IO: return "IO";
    case ENG_E_OOM: return "OOM";
    case ENG_E_BACKEND: return "BACKEND";
    case ENG_E_CTX_FULL: return "CTX_FULL";
    case ENG_E_NO_DEVICE: return "NO_DEVICE";
    default: return "UNKNOWN";
    }
}

void eng_load_opts_default(eng_load_opts *o) {
    memset(o, 0, sizeof *o);
    o->backend = ENG_BACKEND_CPU;
}

/* ---- sizes ------------------------------------------------------------------------ */
#define LOGITS_BUF_MAX (64u << 20) /* device logits buffer cap for ALL mode */

static int logit_rows(const eng_model *m) {
    size_t per = (size_t)m->hp.n_vocab * sizeof(float);
    size_t rows = LOGITS_BUF_MAX / per;
    if (rows < 1) rows = 1;
    if (rows > (size_t)m->n_batch) rows = (size_t)m->n_batch;
    return (int)rows;
}

static uint64_t kv_bytes_for(const eng_model *m) {
    return 2ull * (uint64_t)m->hp.n_layer * (uint64_t)m->n_ctx * (uint64_t)m->hp.kv_dim * sizeof(uint16_t);
}

/* the scratch buffers of a session, in eng_session field order */
static void scratch_sizes(const eng_model *m, size_t sz[10]) {
    const eng_hparams *hp = &m->hp;
    const size_t B = (size_t)m->n_batch, f = sizeof(float);
    sz[0] = B * hp->n_embd * f;                          /* x */
    sz[1] = B * hp->n_embd * f;                          /* xb */
    sz[2] = B * (size_t)(hp->q_dim + 2 * hp->kv_dim) * f; /* qkv */
    sz[3] = B * hp->q_dim * f;                           /* att */
    sz[4] = B * hp->n_embd * f;                          /* tmp */
    sz[5] = B * 2 * (size_t)hp->n_ff * f;                /* gu */
    sz[6] = B * hp->n_ff * f;                            /* hb */
    sz[7] = (size_t)logit_rows(m) * hp->n_vocab * f;     /* logits */
    sz[8] = (2 * B + 2) * sizeof(int32_t);               /* toks + pos + the head's ring */
    sz[9] = eng_moe_scratch_floats(hp, m->n_batch) * f;  /* moe (gpt-oss; 0 elsewhere) */
}

static uint64_t scratch_bytes_for(const eng_model *m) {
    size_t sz[10];
    scratch_sizes(m, sz);
    uint64_t t = 0;
    for (int i = 0; i < 10; i++) t += sz[i];
    return t;
}

/* ---- model ------------------------------------------------------------------------ */
static void fill_info(eng_model *m) {
    eng_model_info *in = &m->info;
    const eng_hparams *hp = &m->hp;
    in->arch = hp->arch_name;
    in->name = m->name;
    in->quant_kind = hp->quant_kind;
    in->backend = m->be.ops->name;
    in->memory_architecture = m->be.ops->memory_architecture;
    in->n_vocab = hp->n_vocab;
    in->n_ctx_train = hp->n_ctx_train;
    in->n_ctx = m->n_ctx;
    in->n_embd = hp->n_embd;
    in->n_layer = hp->n_layer;
    in->n_head = hp->n_head;
    in->n_head_kv = hp->n_head_kv;
    in->head_dim = hp->head_dim;
    in->n_ff = hp->n_ff;
    in->weight_bytes = m->weight_bytes;
    in->kv_bytes = kv_bytes_for(m);
    in->scratch_bytes = scratch_bytes_for(m);
}

static void model_name(eng_model *m, const char *path) {
    gguf_str s;
    if (gguf_get_str(m->g, "general.name", &s) == 0 && s.len > 0) {
        gguf_str_copy(s, m->name, sizeof m->name);
        return;
    }
    const char *b = strrchr(path, '/');
    snprintf(m->name, sizeof m->name, "%s", b ? b + 1 : path);
}

/* 1 when name ends in ".gguf" (any case) */
static int is_gguf_name(const char *name) {
    size_t n = strlen(name);
    return n > 5 && strcasecmp(name + n - 5, ".gguf") == 0;
}

/* 1 when directory dir ("" = ".") holds a .gguf entry other than file (or
 * cannot be read: then nothing is known to be the model's alone) */
static int other_gguf_in(const char *dir, const char *file) {
    DIR *d = opendir(dir[0] ? dir : ".");
    if (!d) return 1;
    int other = 0;
    struct dirent *e;
    while (!other && (e = readdir(d))) other = is_gguf_name(e->d_name) && strcmp(e->d_name, file) != 0;
    closedir(d);
    return other;
}

/* The tokenizer.json that belongs to the model file at path (into json):
 *   1. <dir>/<stem>.tokenizer.json, stem = the file name less ".gguf": named
 *      for this model, so it always applies;
 *   2. <dir>/tokenizer.json, only when dir holds no other .gguf (the
 *      model's own directory, as a Hugging Face snapshot lays it out). In a
 *      directory of several GGUFs (the pool's cache keeps a repo's files side
 *      by side) it would apply to every one of them, so it is ignored and
 *      *ignored names it.
 * 1 when found; 0 when none; <0 when a path does not fit. */
static int find_tokenizer_json(const char *path, char *json, size_t cap, char *ignored, size_t icap) {
    ignored[0] = 0;
    const char *slash = strrchr(path, '/'), *file = slash ? slash + 1 : path;
    const int dl = slash ? (int)(slash - path) + 1 : 0; /* with the '/' */
    size_t fl = strlen(file);
    if (is_gguf_name(file)) fl -= 5;
    if (snprintf(json, cap, "%.*s%.*s.tokenizer.json", dl, path, (int)fl, file) >= (int)cap) return -1;
    if (access(json, F_OK) == 0) return 1;
    char plain[4096], dir[4096];
    if (snprintf(plain, sizeof plain, "%.*stokenizer.json", dl, path) >= (int)sizeof plain) return -1;
    if (access(plain, F_OK) != 0) return 0;
    snprintf(dir, sizeof dir, "%.*s", dl, path);
    if (other_gguf_in(dir, file)) {
        snprintf(ignored, icap, "%s", plain);
        return 0;
    }
    snprintf(json, cap, "%s", plain);
    return 1;
}

/* the tokenizer per enum eng_tokenizer: the model's tokenizer.json (find_tokenizer_json) or the GGUF */
static int load_tokenizer(eng_model *m, const char *path, enum eng_tokenizer which, char *err, size_t errlen) {
    char e2[256], json[4096], ignored[4096];
    int have_json = which == ENG_TOK_GGUF ? 0 : find_tokenizer_json(path, json, sizeof json, ignored, sizeof ignored);
    if (have_json < 0) return util_fail(err, errlen, ENG_E_INVAL, "model: path too long");
    if (which == ENG_TOK_HF_JSON && !have_json) {
        if (ignored[0])
            return util_fail(err, errlen, ENG_E_INVAL,
                             "model: tokenizer: %s is not used: its directory holds more than one .gguf, so it "
                             "would apply to all of them; name it %s",
                             ignored, json);
        return util_fail(err, errlen, ENG_E_INVAL, "model: tokenizer: %s is missing", json);
    }
    if (have_json) {
        struct tok_hf_opts ho = {m->hp.n_vocab, m->g};
        if (tok_load_hf_json(json, &ho, &m->vocab, e2, sizeof e2))
            return util_fail(err, errlen, ENG_E_INVAL, "model: tokenizer: %s (%s)", e2, json);
        return 0;
    }
    if (tok_load_gguf(m->g, &m->vocab, e2, sizeof e2)) return util_fail(err, errlen, ENG_E_INVAL, "model: tokenizer: %s", e2);
    return 0;
}

/* the backend's op scratch for the largest op any eval will issue (backend.h
 * reserve): every bound matrix (and the output, which may be tok_embd's
 * copy) at n_batch rows; gpt-oss's expert matrices at n_batch * k slots */
static int reserve_op_scratch(eng_model *m, char *err, size_t errlen) {
    if (!m->be.ops->reserve) return 0;
    const eng_w **ws = malloc(((size_t)m->n_refs + 1) * sizeof *ws);
    if (!ws) return util_fail(err, errlen, ENG_E_OOM, "model: out of memory");
    int n = 0;
    for (int i = 0; i < m->n_refs; i++)
        if (m->refs[i].w) ws[n++] = m->refs[i].w;
    ws[n++] = &m->output;
    const eng_reserve r = { .rows = m->n_batch,
                            .id_slots = m->hp.arch == ENG_ARCH_GPT_OSS ? m->n_batch * m->hp.n_expert_used : 0,
                            .w = ws, .n_w = n };
    int rc = m->be.ops->reserve(m->be.ctx, &r);
    free(ws);
    if (rc)
        return util_fail(err, errlen, ENG_E_OOM, "model: cannot allocate the %s backend's op scratch for n_batch %d",
                         m->be.ops->name, m->n_batch);
    return 0;
}

int eng_model_load(const char *path, const eng_load_opts *opts, eng_model **out, char *err, size_t errlen) {
    eng_load_opts dflt;
    if (!opts) {
        eng_load_opts_default(&dflt);
        opts = &dflt;
    }
    *out = NULL;
    if (!path) return util_fail(err, errlen, ENG_E_INVAL, "model: no path");
    if (opts->n_ctx < 0 || opts->n_batch < 0 || opts->n_threads < 0)
        return util_fail(err, errlen, ENG_E_INVAL, "model: negative n_ctx, n_batch or n_threads");
    eng_model *m = calloc(1, sizeof *m);
    if (!m) return util_fail(err, errlen, ENG_E_OOM, "model: out of memory");
    char e2[256];
    int rc = gguf_open(path, &m->g, e2, sizeof e2);
    if (rc) {
        free(m);
        return util_fail(err, errlen, rc == -ENOENT || rc == -EACCES || rc == -EIO ? ENG_E_IO : ENG_E_INVAL,
                         "model: %s", e2);
    }
    m->n_ctx = opts->n_ctx;
    m->n_batch = opts->n_batch ? opts->n_batch : 512;
    if ((rc = eng_model_parse(m, err, errlen))) goto fail;
    if (m->n_ctx > (1 << 24)) {
        rc = util_fail(err, errlen, ENG_E_INVAL, "model: n_ctx %d too large", m->n_ctx);
        goto fail;
    }
    if (m->n_batch > m->n_ctx) m->n_batch = m->n_ctx;
    model_name(m, path);

    if ((rc = load_tokenizer(m, path, opts->tokenizer, err, errlen))) goto fail;
    if (tok_n_vocab(m->vocab) != m->hp.n_vocab) {
        rc = util_fail(err, errlen, ENG_E_INVAL, "model: tokenizer has %d tokens but token_embd has %d rows",
                       tok_n_vocab(m->vocab), m->hp.n_vocab);
        goto fail;
    }

    /* backend */
    if (opts->backend == ENG_BACKEND_CPU) {
        rc = eng_backend_cpu_new(opts->n_threads, opts->mem_limit_bytes, &m->be, e2, sizeof e2);
    } else if (opts->backend == ENG_BACKEND_CUDA) {
        if (!eng_backend_cuda_new) {
            rc = util_fail(err, errlen, ENG_E_NO_DEVICE, "model: this binary has no CUDA backend");
            goto fail;
        }
        rc = eng_backend_cuda_new(opts->device, opts->mem_limit_bytes, &m->be, e2, sizeof e2);
    } else {
        rc = util_fail(err, errlen, ENG_E_INVAL, "model: unknown backend %d", (int)opts->backend);
        goto fail;
    }
    if (rc) {
        rc = util_fail(err, errlen, rc == -ENODEV || rc == ENG_E_NO_DEVICE ? ENG_E_NO_DEVICE : ENG_E_BACKEND,
                       "model: backend: %s", e2);
        m->be.ops = NULL;
        goto fail;
    }

    /* memory fit, before any allocation: weights + one session */
    const uint64_t need = (m->be.ops->weights_in_place ? 0 : m->weight_bytes) + kv_bytes_for(m) + scratch_bytes_for(m);
    if (m->be.ops->device_info) {
        int sm = 0, rt = 0;
        char dn[128] = "";
        uint64_t tot = 0, fr = 0;
        m->be.ops->device_info(m->be.ctx, &sm, &rt, dn, sizeof dn, &tot, &fr);
        if (tot && need > fr) {
            rc = util_fail(err, errlen, ENG_E_OOM,
                           "model: needs %llu bytes of %s memory (weights %llu + KV %llu + scratch %llu at n_ctx %d), "
                           "%llu available on device %d (%s), model %s",
                           (unsigned long long)need, m->be.ops->name, (unsigned long long)m->weight_bytes,
                           (unsigned long long)kv_bytes_for(m), (unsigned long long)scratch_bytes_for(m), m->n_ctx,
                           (unsigned long long)fr, opts->device, dn, path);
            goto fail;
        }
    }
    if (opts->mem_limit_bytes && need > opts->mem_limit_bytes) {
        rc = util_fail(err, errlen, ENG_E_OOM, "model: needs %llu bytes of %s memory, the limit is %llu",
                       (unsigned long long)need, m->be.ops->name, (unsigned long long)opts->mem_limit_bytes);
        goto fail;
    }

    if ((rc = eng_model_bind(m, opts, err, errlen))) goto fail;
    if ((rc = reserve_op_scratch(m, err, errlen))) goto fail;
    fill_info(m);
    *out = m;
    return 0;
fail:
    eng_model_free(m);
    return rc;
}

void eng_model_free(eng_model *m) {
    if (!m) return;
    while (m->sessions) eng_session_free(m->sessions);
    if (m->be.ops) {
        if (m->wbuf) m->be.ops->free(m->be.ctx, m->wbuf);
        m->be.ops->destroy(m->be.ctx);
    }
    tok_free(m->vocab);
    free(m->layers);
    free(m->refs);
    gguf_close(m->g);
    free(m);
}

const eng_model_info *eng_model_get_info(eng_model *m) {
    eng_model_info *in = &m->info;
    in->memory_bytes = m->be.ops->mem_used(m->be.ctx) + (m->be.ops->weights_in_place ? m->weight_bytes : 0);
    if (m->be.ops->device_info) {
        m->be.ops->device_info(m->be.ctx, &in->sm, &in->cuda_runtime_version, in->device_name,
                               sizeof in->device_name, &in->device_total_bytes, &in->device_free_bytes);
    }
    return in;
}

const tok_vocab *eng_model_vocab(const eng_model *m) { return m->vocab; }

int eng_model_check_residency(eng_model *m, char *err, size_t errlen) {
    const eng_backend_ops *B = m->be.ops;
    char why[256];
    if (m->wbuf && !B->is_resident(m->be.ctx, m->wbuf, why, sizeof why)) {
        util_fail(err, errlen, 0, "weights not resident: %s", why);
        return 0;
    }
    for (eng_session *s = m->sessions; s; s = s->next) {
        for (int i = 0; i < s->n_allocs; i++) {
            if (!B->is_resident(m->be.ctx, s->allocs[i], why, sizeof why)) {
                util_fail(err, errlen, 0, "session buffer %d not resident: %s", i, why);
                return 0;
            }
        }
    }
    return 1;
}

/* ---- sessions -------------------------------------------------------------------------- */
static int salloc(eng_session *s, size_t bytes, void **out) {
    const eng_model *m = s->m;
    LLORCH_ASSERT(s->n_allocs < (int)UTIL_ARRAY_LEN(s->allocs));
    int rc = m->be.ops->alloc(m->be.ctx, bytes ? bytes : 1, out);
    if (rc) return rc;
    s->allocs[s->n_allocs++] = *out;
    return 0;
}

int eng_session_new(eng_model *m, eng_session **out, char *err, size_t errlen) {
    *out = NULL;
    eng_session *s = calloc(1, sizeof *s);
    if (!s) return util_fail(err, errlen, ENG_E_OOM, "session: out of memory");
    s->m = m;
    s->tok_dev0 = -1;
    s->pos_dev0 = -1;
    s->n_ctx = m->n_ctx;
    s->n_batch = m->n_batch;
    s->n_logit_rows = logit_rows(m);
    s->kv_bytes = kv_bytes_for(m);
    s->scratch_bytes = scratch_bytes_for(m);
    size_t sz[10];
    scratch_sizes(m, sz);
    void *p[10];
    void *kc = NULL, *vc = NULL;
    int rc = salloc(s, (size_t)(s->kv_bytes / 2), &kc);
    if (!rc) rc = salloc(s, (size_t)(s->kv_bytes / 2), &vc);
    p[9] = NULL; /* the MoE scratch exists only for gpt-oss */
    for (int i = 0; i < 10 && !rc; i++)
        if (i < 9 || sz[i]) rc = salloc(s, sz[i], &p[i]);
    s->pos_host = malloc((size_t)s->n_batch * sizeof *s->pos_host);
    s->logits_host = malloc((size_t)m->hp.n_vocab * sizeof *s->logits_host);
    if (rc || !s->pos_host || !s->logits_host) {
        uint64_t used = m->be.ops->mem_used(m->be.ctx);
        s->next = NULL;
        for (int i = 0; i < s->n_allocs; i++) m->be.ops->free(m->be.ctx, s->allocs[i]);
        free(s->pos_host);
        free(s->logits_host);
        free(s);
        return util_fail(err, errlen, ENG_E_OOM,
                         "session: cannot allocate KV cache (%llu bytes) and scratch (%llu bytes) for n_ctx %d in %s "
                         "memory (%llu bytes in use)",
                         (unsigned long long)kv_bytes_for(m), (unsigned long long)scratch_bytes_for(m), m->n_ctx,
                         m->be.ops->name, (unsigned long long)used);
    }
    s->k_cache = kc;
    s->v_cache = vc;
    s->x = p[0];
    s->xb = p[1];
    s->qkv = p[2];
    s->att = p[3];
    s->tmp = p[4];
    s->gu = p[5];
    s->hb = p[6];
    s->logits = p[7];
    s->toks_dev = p[8];
    s->pos_dev = (int32_t *)p[8] + s->n_batch;
    s->am_ring = (int32_t *)p[8] + 2 * s->n_batch;
    s->moe = p[9];
    /* a fresh cache holds zeros, not garbage (never read before written, but deterministic) */
    m->be.ops->zero(m->be.ctx, kc, (size_t)(s->kv_bytes / 2));
    m->be.ops->zero(m->be.ctx, vc, (size_t)(s->kv_bytes / 2));
    if ((rc = m->be.ops->sync(m->be.ctx))) {
        s->next = NULL;
        for (int i = 0; i < s->n_allocs; i++) m->be.ops->free(m->be.ctx, s->allocs[i]);
        free(s->pos_host);
        free(s->logits_host);
        free(s);
        return util_fail(err, errlen, ENG_E_BACKEND, "session: device error (%d)", rc);
    }
    s->rec_key = ++m->rec_serial;
    s->next = m->sessions;
    m->sessions = s;
    *out = s;
    return 0;
}

void eng_session_free(eng_session *s) {
    if (!s) return;
    eng_model *m = s->m;
    for (eng_session **pp = &m->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    /* a deferred decode step (recorded, or a pipelined eng_sample's
     * speculative one) may still run on these buffers: wait for it (its
     * device error, if any, has nobody left to report to) */
    (void)m->be.ops->sync(m->be.ctx);
    for (int i = 0; i < s->n_allocs; i++) m->be.ops->free(m->be.ctx, s->allocs[i]);
    free(s->pos_host);
    free(s->logits_host);
    free(s->logits_all);
    free(s);
}

void eng_session_reset(eng_session *s) {
    s->n_past = 0;
    s->last_n = 0;
    s->last_host_valid = 0;
    s->spec_pending = 0;
    s->head_am = 0;
}

void eng_session_set_pipeline(eng_session *s, int on) {
    s->pipeline = on != 0;
    if (!on) s->spec_pending = 0;
}

int eng_session_n_past(const eng_session *s) { return s->n_past; }
int eng_session_n_ctx(const eng_session *s) { return s->n_ctx; }

/* ---- eval ---------------------------------------------------------------------------------- */
int eng_eval(eng_session *s, const int32_t *toks, int n, int logits_mode, char *err, size_t errlen) {
    const eng_model *m = s->m;
    s->last_n = 0;
    s->last_host_valid = 0;
    if (s->spec_pending) {
        s->spec_pending = 0;
        if (n == 1 && toks && toks[0] == s->spec_tok && logits_mode == ENG_LOGITS_LAST) {
            /* the pipelined eng_sample already enqueued exactly this step (at
             * this n_past, which only eval and reset change; it checked the
             * context): take it */
            s->n_past += 1;
            s->last_n = 1;
            s->last_mode = ENG_LOGITS_LAST;
            return 0;
        }
        /* discarded: the speculative step wrote only the K/V row at n_past
         * (rewritten by this eval before anything reads it), the logits
         * buffer and, where it ran the head, toks_dev[0], an am_ring slot
         * and pos_dev[0] (tok_dev0 / pos_dev0 say so: this eval uploads
         * both); the stream runs it before this eval's work */
    }
    if (n <= 0 || !toks) return util_fail(err, errlen, ENG_E_INVAL, "eval: no tokens");
    if (logits_mode != ENG_LOGITS_LAST && logits_mode != ENG_LOGITS_ALL)
        return util_fail(err, errlen, ENG_E_INVAL, "eval: bad logits mode %d", logits_mode);
    if ((int64_t)s->n_past + n > s->n_ctx)
        return util_fail(err, errlen, ENG_E_CTX_FULL, "eval: %d tokens at position %d exceed the context of %d", n,
                         s->n_past, s->n_ctx);
    if (logits_mode == ENG_LOGITS_ALL && n > s->n_batch)
        return util_fail(err, errlen, ENG_E_INVAL, "eval: ENG_LOGITS_ALL needs n (%d) <= n_batch (%d)", n,
                         s->n_batch);
    for (int i = 0; i < n; i++)
        if (toks[i] < 0 || toks[i] >= m->hp.n_vocab)
            return util_fail(err, errlen, ENG_E_INVAL, "eval: token %d at %d is outside the vocabulary of %d",
                             toks[i], i, m->hp.n_vocab);
    if (logits_mode == ENG_LOGITS_ALL && !s->logits_all) {
        /* once per session, on the first teacher-forced eval */
        s->logits_all = malloc((size_t)s->n_batch * m->hp.n_vocab * sizeof(float));
        if (!s->logits_all) return util_fail(err, errlen, ENG_E_OOM, "eval: out of memory for all-row logits");
    }
    for (int i0 = 0; i0 < n; i0 += s->n_batch) {
        int nc = n - i0 < s->n_batch ? n - i0 : s->n_batch;
        int last = i0 + nc == n;
        int mode = last ? logits_mode : ENG_LOGITS_NONE;
        int rc = eng_forward(s, toks + i0, nc, mode, err, errlen);
        if (rc) return rc;
        s->n_past += nc;
    }
    s->last_n = n;
    s->last_mode = logits_mode;
    return 0;
}

const float *eng_logits(eng_session *s, int i) {
    const eng_model *m = s->m;
    if (s->last_n <= 0) return NULL;
    if (i < 0) i = s->last_n - 1;
    if (i >= s->last_n) return NULL;
    if (s->last_mode == ENG_LOGITS_ALL) return s->logits_all + (size_t)i * m->hp.n_vocab;
    if (i != s->last_n - 1) return NULL;
    if (!s->last_host_valid) {
        if (m->be.ops->download(m->be.ctx, s->logits_host, s->logits, (size_t)m->hp.n_vocab * sizeof(float)))
            return NULL;
        s->last_host_valid = 1;
    }
    return s->logits_host;
}

/* 1 when eng_sample may speculate (engine.h eng_session_set_pipeline) */
static int speculate(eng_session *s) {
    const eng_backend_ops *B = s->m->be.ops;
    return s->pipeline && B->sample && B->read_token && s->last_n >= 1 && s->last_mode == ENG_LOGITS_LAST &&
           !s->last_host_valid && s->n_past + 1 <= s->n_ctx && eng_eval_defers(s);
}

/* Where the head already chose the answer of a: the greedy choice of the
 * last eval's logits (am_ring slot of its last row's position) when that
 * eval ran the head and a is greedy without a repetition penalty in force
 * (the backend sampler's own condition for a plain argmax); else NULL. */
static const int32_t *head_choice(const eng_session *s, const eng_sample_args *a) {
    const eng_backend_ops *B = s->m->be.ops;
    const float pen = a->p.repeat_penalty;
    const int pen_on = pen != 1.0f && pen > 0.0f && a->n_history > 0;
    if (!s->head_am || !B->sample_ready || a->p.temperature > 0.0f || pen_on) return NULL;
    return s->am_ring + ((s->n_past - 1) & 1);
}

/* The pipelined eng_sample: enqueue the sampling (or mark the head's
 * choice), enqueue the decode step of its (device-resident) token at n_past,
 * then read the token back without waiting for that step. 0 or
 * ENG_E_BACKEND. */
static int sample_pipelined(eng_session *s, const eng_sample_args *a, const int32_t *chosen, int32_t *tok) {
    const eng_model *m = s->m;
    const eng_backend_ops *B = m->be.ops;
    char e[256];
    s->tok_dev0 = -1; /* toks_dev[0] gets a value the host learns only below */
    s->last_n = 0;    /* the speculative step overwrites the logits: eng_logits(s, -1) is NULL now */
    const int32_t *src = chosen ? chosen : s->toks_dev;
    if (chosen ? B->sample_ready(m->be.ctx, chosen, NULL)
               : B->sample(m->be.ctx, s->logits, m->hp.n_vocab, a, s->toks_dev, NULL))
        return ENG_E_BACKEND;
    if (eng_eval_step_on_device(s, e, sizeof e)) {
        (void)B->read_token(m->be.ctx, src, tok); /* retire the pending sample */
        return ENG_E_BACKEND;
    }
    if (B->read_token(m->be.ctx, src, tok)) return ENG_E_BACKEND;
    /* a step that ran the head writes its own choice into toks_dev[0] */
    s->tok_dev0 = s->head_am ? -1 : *tok;
    s->spec_tok = *tok;
    s->spec_pending = 1;
    return 0;
}

int eng_sample(eng_session *s, eng_sampler *sp, int32_t *out_token) {
    const eng_model *m = s->m;
    const eng_backend_ops *B = m->be.ops;
    if (s->last_n <= 0) return ENG_E_INVAL;
    int32_t tok;
    if (B->sample && s->last_mode == ENG_LOGITS_LAST && !s->last_host_valid) {
        eng_sample_args a;
        a.p = *eng_sampler_params(sp);
        int32_t hist[ENG_REPEAT_LAST_N];
        a.n_history = eng_sampler_history(sp, hist);
        a.history = hist;
        a.uniform = eng_sampler_next_uniform(sp);
        const int32_t *chosen = head_choice(s, &a);
        if (speculate(s)) {
            int rc = sample_pipelined(s, &a, chosen, &tok);
            if (rc) return rc;
        } else {
            int rc = chosen ? B->sample_ready(m->be.ctx, chosen, &tok)
                            : B->sample(m->be.ctx, s->logits, m->hp.n_vocab, &a, s->toks_dev, &tok);
            s->tok_dev0 = rc ? -1 : tok; /* in toks_dev[0]: written by the backend sampler or the head */
            if (rc) return ENG_E_BACKEND;
        }
    } else {
        const float *l = eng_logits(s, -1);
        if (!l) return ENG_E_BACKEND;
        tok = eng_sampler_sample(sp, l);
    }
    eng_sampler_accept(sp, tok);
    *out_token = tok;
    return 0;
}
