/* engine_int — private to the engine (engine.c, model.c, arch/): the model
 * and session structs, hyperparameters, the per-layer weight table, and the
 * forward-pass entry point. The worker and CLI never see this: engine.h is
 * their whole interface.
 */
#ifndef LLORCH_ENGINE_INT_H
#define LLORCH_ENGINE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/engine.h"
#include "gguf/gguf.h"

/* gpt-oss limits the loader enforces (the real model: 32 experts, 4 used) */
#define ENG_MOE_MAX_EXPERTS 256
#define ENG_MOE_MAX_USED 32

enum eng_arch { ENG_ARCH_LLAMA = 0, ENG_ARCH_QWEN2 = 1, ENG_ARCH_PHI3 = 2, ENG_ARCH_GPT_OSS = 3 };

typedef struct {
    enum eng_arch arch;
    char arch_name[16];          /* general.architecture as found */
    int n_vocab;                 /* rows of token_embd */
    int n_ctx_train;             /* {arch}.context_length */
    int n_embd;                  /* {arch}.embedding_length */
    int n_layer;                 /* {arch}.block_count */
    int n_head, n_head_kv;       /* attention.head_count(_kv) */
    int head_dim;                /* attention.key_length (= value_length), default n_embd / n_head */
    int n_ff;                    /* feed_forward_length */
    int q_dim, kv_dim;           /* n_head * head_dim, n_head_kv * head_dim */
    float eps;                   /* attention.layer_norm_rms_epsilon */
    eng_rope rope;               /* n_rot, ordering, base, scaling (freq_factors set per layer) */
    int ftype;                   /* general.file_type or -1 */
    char quant_kind[16];         /* "Q4_K_M", "F32", ... */
    /* gpt-oss (0 elsewhere) */
    int n_expert, n_expert_used; /* expert_count, expert_used_count */
    int n_ff_exp;                /* expert_feed_forward_length */
    int n_swa;                   /* attention.sliding_window: even layers attend to the last n_swa positions */
} eng_hparams;

/* One transformer block's weights. Pointers are backend memory (on the CPU:
 * straight into the GGUF mapping). Unused slots have data == NULL. */
typedef struct {
    const float *attn_norm;      /* [n_embd] */
    eng_w wq;                    /* [q_dim][n_embd]   (ne0 = n_embd, ne1 = q_dim) */
    eng_w wk, wv;                /* [kv_dim][n_embd] */
    eng_w wqkv;                  /* [q_dim + 2 kv_dim][n_embd] fused (phi3), else data NULL */
    const float *bq, *bk, *bv;   /* [q_dim], [kv_dim], [kv_dim] biases (qwen2) or NULL */
    const float *bqkv;           /* [q_dim + 2 kv_dim] fused bias or NULL */
    eng_w wo;                    /* [n_embd][q_dim] */
    const float *ffn_norm;       /* [n_embd] */
    eng_w w_gate;                /* [n_ff][n_embd], data NULL when fused into w_up */
    eng_w w_up;                  /* [n_ff][n_embd], or [2 n_ff][n_embd] fused: gate = first n_ff rows */
    eng_w w_down;                /* [n_embd][n_ff] */
    const float *rope_freqs;     /* [n_rot / 2] frequency factors or NULL */
    /* gpt-oss (data NULL elsewhere) */
    const float *bo;             /* [n_embd] attn_output.bias */
    const float *sinks;          /* [n_head] attn_sinks */
    int swa;                     /* sliding window of this layer (0 = full attention) */
    eng_w w_router;              /* ffn_gate_inp [n_expert][n_embd] */
    const float *b_router;       /* [n_expert] */
    eng_w w_gate_exps, w_up_exps;/* [n_expert] x [n_ff_exp][n_embd] (ne2 = n_expert) */
    eng_w w_down_exps;           /* [n_expert] x [n_embd][n_ff_exp] */
    const float *b_gate_exps, *b_up_exps; /* [n_expert][n_ff_exp] */
    const float *b_down_exps;    /* [n_expert][n_embd] */
} eng_layer;

/* A weight binding: GGUF tensor → where its backend pointer goes. */
typedef struct {
    const gguf_tensor *t;
    eng_w *w;                    /* matrices */
    const float **f;             /* f32 vectors */
} eng_wref;

typedef struct eng_session_link eng_session_link;

struct eng_model {
    gguf_ctx *g;                 /* owns the mapping (weights in place on the CPU) */
    tok_vocab *vocab;
    eng_backend be;
    eng_hparams hp;
    eng_w tok_embd;              /* [n_vocab][n_embd] */
    eng_w output;                /* [n_vocab][n_embd]; = tok_embd when tied */
    const float *output_norm;    /* [n_embd] */
    eng_layer *layers;           /* [n_layer] */
    eng_wref *refs;              /* every bound tensor, [n_refs] */
    int n_refs;
    void *wbuf;                  /* backend copy of the weights when !weights_in_place */
    uint64_t weight_bytes;       /* bytes of the distinct bound tensors */
    int n_ctx, n_batch;
    eng_model_info info;
    char name[128];
    eng_session *sessions;       /* live sessions (for residency and memory figures) */
    int rec_serial;              /* last record key handed to a session (keys are never reused) */
};

struct eng_session {
    eng_model *m;
    eng_session *next;           /* in m->sessions */
    int n_ctx, n_batch, n_past;
    int rec_key;                 /* this session's decode-step record key: a recorded step holds
                                    this session's buffer pointers, so keys are per session */
    uint16_t *k_cache, *v_cache; /* [n_layer][n_ctx][kv_dim] fp16, backend */
    float *x;                    /* [n_batch][n_embd] residual stream */
    float *xb;                   /* [n_batch][n_embd] normed input of a block */
    float *qkv;                  /* [n_batch][q_dim + 2 kv_dim]: fused rows, or q | k | v blocks */
    float *att;                  /* [n_batch][q_dim] attention output */
    float *tmp;                  /* [n_batch][n_embd] block output before the residual add */
    float *gu;                   /* [n_batch][2 n_ff]: fused gate|up rows, or gate | up blocks */
    float *hb;                   /* [n_batch][n_ff] swiglu output */
    float *logits;               /* [n_logit_rows][n_vocab] */
    int n_logit_rows;
    int32_t *toks_dev, *pos_dev; /* [n_batch] */
    /* toks_dev[0] as the backend holds it: the id the backend sampler wrote
     * there, or the last uploaded first token; -1 unknown. A decode step
     * whose token is the one just sampled needs no upload of it. */
    int32_t tok_dev0;
    /* pos_dev[0] as the backend will hold it after the enqueued work (the
     * last uploaded position, or the one the head advanced it to); -1
     * unknown. A decode step at that position needs no upload. */
    int32_t pos_dev0;
    /* The head (backend.h head): am_ring [2] (backend memory) holds its
     * greedy choice at [pos & 1]; head_am: the last eval's logits came from
     * the head, so their greedy choice is in am_ring[(n_past - 1) & 1] and
     * in toks_dev[0]; rec_head: the recorded decode step ran the head (a
     * replay does not issue ops, so eval learns it from here). */
    int32_t *am_ring;
    int head_am, rec_head;
    float *moe;                  /* gpt-oss scratch (eng_moe_scratch_floats), NULL elsewhere */
    void *allocs[16];            /* every backend allocation, for free and residency */
    int n_allocs;
    uint64_t kv_bytes, scratch_bytes;
    /* host side */
    int32_t *pos_host;           /* [n_batch] staging for positions */
    float *logits_host;          /* [n_vocab] last row (LAST mode) */
    float *logits_all;           /* [n_batch][n_vocab] (ALL mode), allocated on first use */
    int last_n, last_mode;       /* shape of the last eval's logits; last_n = 0: none */
    int last_host_valid;         /* logits_host holds the last row */
    /* decode pipelining (eng_session_set_pipeline): a pipelined eng_sample
     * enqueues the step of the token it sampled, at position n_past (not
     * advanced), before reading the token back; spec_pending says that step
     * is enqueued and an eval of exactly spec_tok (1 token, LAST) consumes
     * it; anything else discards it */
    int pipeline;                /* 1: eng_sample may speculate */
    int spec_pending;
    int32_t spec_tok;
};

/* model.c */
/* Reads and validates hyperparameters and tensors from g into m->hp,
 * m->layers and m->refs (no backend memory touched). */
int eng_model_parse(eng_model *m, char *err, size_t errlen);
/* Binds weights: in place (CPU) or alloc + chunked upload with progress. */
int eng_model_bind(eng_model *m, const eng_load_opts *o, char *err, size_t errlen);

/* arch/llama.c: runs toks[0..n) (n <= n_batch) at positions n_past.. and
 * fills s->logits per mode (0 = LAST, 1 = ALL, 2 = none). Returns 0 or a
 * negative engine code. */
#define ENG_LOGITS_NONE 2
int eng_llama_forward(eng_session *s, const int32_t *toks, int n, int mode, char *err, size_t errlen);
/* arch/eval.c: one eval around an architecture's layers (ids/positions
 * upload, decode recording, head, LOGITS_ALL projection, sync) */
typedef void (*eng_layers_fn)(eng_session *s, int n, int mode);
/* toks NULL: a one-token ENG_LOGITS_LAST step whose id the backend sampler
 * already wrote to toks_dev[0] (eng_eval_step_on_device) */
int eng_eval_run(eng_session *s, const int32_t *toks, int n, int mode, eng_layers_fn layers, char *err,
                 size_t errlen);
/* the model's architecture forward (eng_llama_forward / eng_gpt_oss_forward) */
int eng_forward(eng_session *s, const int32_t *toks, int n, int mode, char *err, size_t errlen);
/* 1 when a single-token ENG_LOGITS_LAST eval returns with its step still
 * running (recorded / replayed, no closing sync): the backend records and
 * tensors are not being dumped */
int eng_eval_defers(const eng_session *s);
/* Enqueues the decode step at position n_past (not advanced) of the token the
 * backend sampler wrote into toks_dev[0], without knowing its value:
 * uploads only the position, replays (or records) the decode step, leaves
 * it running. Needs eng_eval_defers(s) and n_past + 1 <= n_ctx. The
 * pipelined eng_sample's speculative step. */
int eng_eval_step_on_device(eng_session *s, char *err, size_t errlen);

/* arch/dump.c: LLORCH_DUMP_TENSORS=FILE (debug). eng_dump appends rows x
 * cols floats at stride ld of backend memory x as "T name[-layer] op f32 cols
 * rows 1 1" plus the values (%a); both are no-ops when the variable is unset. */
int eng_dump_enabled(void);
void eng_dump(const eng_session *s, const char *name, int layer, const char *op, const float *x, int rows, int cols,
              int ld);

/* arch/gpt_oss.c: the same contract for gpt-oss. */
int eng_gpt_oss_forward(eng_session *s, const int32_t *toks, int n, int mode, char *err, size_t errlen);
/* floats of gpt-oss MoE scratch a session needs for n_batch rows (0 for other
 * architectures); the layout is gpt_oss.c's business */
size_t eng_moe_scratch_floats(const eng_hparams *hp, int n_batch);

#endif
