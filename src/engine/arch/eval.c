/* eval — what every architecture's forward pass shares around its layers:
 * token ids and positions uploaded to backend memory, a single-token decode
 * step recorded once and replayed (CUDA graph; see backend.h
 * record_begin/record_end), the final norm and output projection (the last
 * row for ENG_LOGITS_LAST, every row in chunks of the logits buffer for
 * ENG_LOGITS_ALL), and the closing sync that reports device errors (not for a
 * recorded decode step: see the end of eng_eval_run).
 *
 * The architecture supplies `layers`: the op sequence from the embedding
 * lookup to the residual stream after the last layer (s->x [n][n_embd]),
 * written against the backend ops only, reading positions and ids from
 * s->pos_dev / s->toks_dev so a recording can replay it token after token.
 * While tensors are dumped (LLORCH_DUMP_TENSORS) nothing is recorded: the
 * dump syncs and downloads after each op. */
#include "common/util.h"
#include "engine/engine_int.h"

int eng_eval_defers(const eng_session *s) {
    const eng_backend_ops *B = s->m->be.ops;
    return B->record_begin && B->record_end && !eng_dump_enabled();
}

int eng_forward(eng_session *s, const int32_t *toks, int n, int mode, char *err, size_t errlen) {
    return s->m->hp.arch == ENG_ARCH_GPT_OSS ? eng_gpt_oss_forward(s, toks, n, mode, err, errlen)
                                             : eng_llama_forward(s, toks, n, mode, err, errlen);
}

int eng_eval_step_on_device(eng_session *s, char *err, size_t errlen) {
    LLORCH_ASSERT(eng_eval_defers(s) && s->n_past + 1 <= s->n_ctx);
    return eng_forward(s, NULL, 1, ENG_LOGITS_LAST, err, errlen);
}

int eng_eval_run(eng_session *s, const int32_t *toks, int n, int mode, eng_layers_fn layers, char *err,
                 size_t errlen) {
    const eng_model *m = s->m;
    const eng_backend_ops *B = m->be.ops;
    void *bc = m->be.ctx;
    const int E = m->hp.n_embd, V = m->hp.n_vocab;
    int rc;

    LLORCH_ASSERT(n >= 1 && n <= s->n_batch && s->n_past + n <= s->n_ctx);
    LLORCH_ASSERT(toks || (n == 1 && mode == ENG_LOGITS_LAST));
    for (int i = 0; i < n; i++) s->pos_host[i] = s->n_past + i;
    /* a decode step of the token the backend sampler (or the head) just
     * wrote into toks_dev[0] (toks NULL: its value not even known to the
     * host yet, see eng_eval_step_on_device) uploads neither it nor, when
     * the head already advanced pos_dev[0] to it, its position */
    const int tok_there = !toks || (n == 1 && s->tok_dev0 == toks[0]);
    const int pos_there = n == 1 && s->pos_dev0 == s->n_past;
    if ((!tok_there && (rc = B->upload(bc, s->toks_dev, toks, (size_t)n * sizeof *toks))) ||
        (!pos_there && (rc = B->upload(bc, s->pos_dev, s->pos_host, (size_t)n * sizeof *s->pos_host)))) {
        s->tok_dev0 = -1;
        s->pos_dev0 = -1;
        return util_fail(err, errlen, ENG_E_BACKEND, "eval: upload failed (%d)", rc);
    }
    if (toks) s->tok_dev0 = toks[0];
    s->pos_dev0 = s->n_past;

    const int record = n == 1 && mode == ENG_LOGITS_LAST && eng_eval_defers(s);
    int replayed = record ? B->record_begin(bc, s->rec_key) : 0;
    if (replayed < 0) return util_fail(err, errlen, ENG_E_BACKEND, "eval: record_begin failed (%d)", replayed);
    int head = 0;
    if (!replayed) {
        layers(s, n, mode);
        if (mode == ENG_LOGITS_LAST) {
            /* final norm + output projection of the last row into s->logits[0]:
             * the backend's head where it has one (also the greedy choice,
             * and pos_dev[0] advanced to the next step's position), else
             * the two ops (always while dumping: the dump wants the norm) */
            const float *xl = s->x + (size_t)(n - 1) * E;
            head = B->head && !eng_dump_enabled() &&
                   B->head(bc, xl, m->output_norm, m->hp.eps, &m->output, s->logits, s->toks_dev, s->am_ring,
                           s->pos_dev, n - 1) == 0;
            if (!head) {
                B->rmsnorm(bc, xl, m->output_norm, s->xb, 1, E, m->hp.eps);
                eng_dump(s, "result_norm", -1, "MUL", s->xb, 1, E, E);
                B->matmul(bc, &m->output, s->xb, s->logits, 1);
                eng_dump(s, "result_output", -1, "MUL_MAT", s->logits, 1, V, V);
            }
        }
        if (record) s->rec_head = head;
    } else {
        head = s->rec_head;
    }
    s->head_am = head;
    if (head) { /* it wrote its choice into toks_dev[0] and advanced pos_dev[0] */
        s->tok_dev0 = -1;
        s->pos_dev0 = s->n_past + n;
    }
    if (record && (rc = B->record_end(bc, s->rec_key)) < 0) {
        s->tok_dev0 = s->pos_dev0 = -1;
        return util_fail(err, errlen, ENG_E_BACKEND, "eval: record_end failed (%d)", rc);
    }

    if (mode == ENG_LOGITS_ALL) {
        /* every row: norm all, then project in chunks of the logits buffer */
        B->rmsnorm(bc, s->x, m->output_norm, s->xb, n, E, m->hp.eps);
        for (int r0 = 0; r0 < n; r0 += s->n_logit_rows) {
            int nr = n - r0 < s->n_logit_rows ? n - r0 : s->n_logit_rows;
            B->matmul(bc, &m->output, s->xb + (size_t)r0 * E, s->logits, nr);
            rc = B->download(bc, s->logits_all + (size_t)r0 * V, s->logits, (size_t)nr * V * sizeof(float));
            if (rc) return util_fail(err, errlen, ENG_E_BACKEND, "eval: device error (%d)", rc);
        }
    }
    /* A recorded decode step is left running: what reads its results syncs
     * (the backend sampler's token read-back, a logits download, the next
     * batch eval), so the host prepares the next call while the GPU works,
     * and a device error of the step is reported by that call. Every other
     * eval syncs here and reports its device errors itself. */
    if (!record && (rc = B->sync(bc))) return util_fail(err, errlen, ENG_E_BACKEND, "eval: device error (%d)", rc);
    return 0;
}
