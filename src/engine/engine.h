/* engine — the only header the worker and CLI use to run a model.
 *
 * Lifetimes:  eng_model_load → eng_session_new → (eng_eval, eng_sample)* →
 *             eng_session_free → eng_model_free.
 * A model owns its backend, its weights (CPU: used in place from the mmap;
 * CUDA: uploaded to VRAM in bounded chunks) and its tokenizer. A session owns
 * the fp16 KV cache and every scratch buffer for n_ctx tokens, allocated once
 * at creation: nothing is allocated per token.
 *
 * Errors: negative codes below with a message in err[errlen].
 */
#ifndef LLORCH_ENGINE_H
#define LLORCH_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

typedef struct eng_model eng_model;
typedef struct eng_session eng_session;

/* engine error codes (negative); map to SPEC codes in the worker */
enum eng_err {
    ENG_E_INVAL = -1,        /* bad argument, bad model file      → MODEL_LOAD_FAILED / INVALID_REQUEST */
    ENG_E_UNSUPPORTED = -2,  /* unknown architecture / tensor type → MODEL_INCOMPATIBLE */
    ENG_E_IO = -3,           /* cannot read the file              → MODEL_LOAD_FAILED */
    ENG_E_OOM = -4,          /* backend memory exhausted          → VRAM_OOM (cuda) / INTERNAL (cpu) */
    ENG_E_BACKEND = -5,      /* device fault (CUDA error)         → CUDA_ERROR */
    ENG_E_CTX_FULL = -6,     /* n_past + n > n_ctx                → CONTEXT_LENGTH_EXCEEDED */
    ENG_E_NO_DEVICE = -7,    /* no such device / backend not built in */
};
const char *eng_err_name(int code);

enum eng_backend_kind { ENG_BACKEND_CPU = 0, ENG_BACKEND_CUDA = 1 };

/* Which tokenizer a model gets. AUTO: the model's tokenizer.json wins
 * (tokenizer_kind "hf-json"; it must be the same vocabulary as the GGUF's, id
 * for id, and is padded to the embedding rows), else the GGUF's
 * tokenizer.ggml.* metadata. The model's tokenizer.json, for a model file
 * DIR/NAME.gguf: DIR/NAME.tokenizer.json when it exists; else
 * DIR/tokenizer.json, but only when DIR holds no other .gguf (in a shared
 * directory such as the pool's cache it would apply to every model there).
 * GGUF: ignore any tokenizer.json. HF_JSON: the model's tokenizer.json is
 * required. */
enum eng_tokenizer { ENG_TOK_AUTO = 0, ENG_TOK_GGUF = 1, ENG_TOK_HF_JSON = 2 };

/* Load progress: called with percent 0, 25, 50, 75, 100 (each once, in order). */
typedef void (*eng_progress_fn)(void *user, int percent, uint64_t bytes_done, uint64_t bytes_total);

typedef struct {
    enum eng_backend_kind backend;
    int device;                  /* CUDA device ordinal */
    int n_threads;               /* CPU threads; 0 = number of online cores */
    int n_ctx;                   /* context for sessions; 0 = min(train context, 4096) */
    int n_batch;                 /* max tokens per eval chunk; 0 = 512 */
    size_t upload_chunk_bytes;   /* host→device copy chunk; 0 = 1 MiB */
    uint64_t mem_limit_bytes;    /* test knob: backend allocations beyond this fail with ENG_E_OOM; 0 = none */
    enum eng_tokenizer tokenizer; /* default ENG_TOK_AUTO */
    eng_progress_fn progress;    /* may be NULL */
    void *progress_user;
} eng_load_opts;

void eng_load_opts_default(eng_load_opts *o);

typedef struct {
    const char *arch;            /* "llama" | "qwen2" | "phi3" | "gpt-oss" */
    const char *name;            /* general.name or the file's base name */
    const char *quant_kind;      /* file type actually loaded: "Q4_K_M", "Q8_0", "F32", "MXFP4", ... */
    const char *backend;         /* "cpu" | "cuda" */
    const char *memory_architecture; /* "host" | "vram-only" */
    int n_vocab, n_ctx_train, n_ctx, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
    uint64_t weight_bytes;       /* weights held by the backend (CPU: mapped file bytes in use) */
    uint64_t kv_bytes;           /* KV cache of one session at n_ctx */
    uint64_t scratch_bytes;      /* activations/scratch of one session */
    uint64_t memory_bytes;       /* all backend memory this model + its sessions hold now */
    /* device facts (CUDA; zero/empty on CPU) */
    int sm;                      /* e.g. 90 */
    int cuda_runtime_version;    /* e.g. 13000 */
    char device_name[128];
    uint64_t device_total_bytes, device_free_bytes;
} eng_model_info;

/* Validates the file (GGUF structure, architecture, tensor shapes and types,
 * memory fit) before allocating, then loads. */
int eng_model_load(const char *path, const eng_load_opts *opts, eng_model **out, char *err, size_t errlen);
void eng_model_free(eng_model *m); /* NULL ok */
/* Cached facts; refreshes device free/total and memory_bytes. */
const eng_model_info *eng_model_get_info(eng_model *m);
const tok_vocab *eng_model_vocab(const eng_model *m);
/* Residency check (CUDA: cudaPointerGetAttributes on every allocation says
 * device memory, no host pointer). Returns 1 when resident, 0 when not (with a
 * message), and always 1 on the CPU backend. */
int eng_model_check_residency(eng_model *m, char *err, size_t errlen);

/* ---- sessions ---------------------------------------------------------------- */
int eng_session_new(eng_model *m, eng_session **out, char *err, size_t errlen);
void eng_session_free(eng_session *s); /* NULL ok */
void eng_session_reset(eng_session *s); /* forget all tokens (n_past = 0); drops a speculation */
int eng_session_n_past(const eng_session *s);
int eng_session_n_ctx(const eng_session *s);
/* Decode pipelining (default off). On a backend with a device sampler that
 * can read a token back alone (CUDA), eng_sample then enqueues the NEXT
 * decode step, of the token it just sampled, before it waits for that token,
 * so the device runs step after step without an idle gap while the host
 * reads the token, streams it and calls eng_eval. eng_sample speculates only
 * when all hold: pipelining is on; the backend has sample and read_token;
 * the last eval produced ENG_LOGITS_LAST logits that eng_logits has not
 * copied to the host (else the host sampler runs, as without pipelining);
 * n_past + 1 <= n_ctx; the decode step would be deferred anyway (a
 * recording backend, LLORCH_DUMP_TENSORS unset). Otherwise eng_sample works
 * exactly as with pipelining off. After a speculating eng_sample:
 *   - eng_logits(s, i) is NULL and a second eng_sample is ENG_E_INVAL (the
 *     step overwrites the logits: a caller that wants the logits of a
 *     sampled position, e.g. log-probs, must leave pipelining off);
 *   - eng_eval of exactly the sampled token (n 1, ENG_LOGITS_LAST) consumes
 *     the step already enqueued (n_past += 1) and returns 0 at once;
 *   - any other eval, eng_session_reset or turning pipelining off discards
 *     it: nothing to undo (it wrote only the K/V row at n_past, which the
 *     next eval at that position rewrites, and the logits buffer); a
 *     discarded step costs one step of device time, so a caller that knows
 *     the sampled token is its last turns pipelining off first.
 * A device error of the speculative step is reported by the next call that
 * waits for the device (eng_sample, eng_logits, an eval that syncs), as for
 * any deferred decode step (eng_eval). Results are identical either way:
 * the same ops on the same data in the same order. */
void eng_session_set_pipeline(eng_session *s, int on);

enum eng_logits_mode { ENG_LOGITS_LAST = 0, ENG_LOGITS_ALL = 1 };

/* Runs toks[0..n) at positions n_past..n_past+n-1 (split into n_batch
 * chunks), appending them to the KV cache. ENG_LOGITS_ALL keeps logits for
 * every token (for teacher-forced tests; needs n <= n_batch). A
 * single-token ENG_LOGITS_LAST eval on a recording backend (CUDA) returns
 * once the step is enqueued: a device error of it is reported by the next
 * call that reads results (eng_sample, eng_logits) or by the next eval. */
int eng_eval(eng_session *s, const int32_t *toks, int n, int logits_mode, char *err, size_t errlen);
/* Host copy of the logits [n_vocab] of token i of the last eval (i = -1: the
 * last token). Valid until the next eval. NULL when not computed, and after
 * an eng_sample that speculated (eng_session_set_pipeline). */
const float *eng_logits(eng_session *s, int i);
/* Samples the next token from the last eval's final logits through the SPEC
 * §3.4 pipeline (on the device where the backend can), and records it in the
 * sampler's repetition history. With pipelining on it may also enqueue the
 * token's decode step (eng_session_set_pipeline). */
int eng_sample(eng_session *s, eng_sampler *sp, int32_t *out_token);

#endif
