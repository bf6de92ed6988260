/* encode — tok_encode: special-token partition, then per raw fragment the
 * SPM or BPE session, with BOS/EOS per the vocab's flags (llama.cpp's
 * llama_vocab::impl::tokenize).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* SPM input: optional leading space, then every ' ' as U+2581 */
static size_t spm_escape(const char *text, size_t len, int prefix, char *o) {
    size_t n = 0;
    if (prefix) o[n++] = (char)0xE2, o[n++] = (char)0x96, o[n++] = (char)0x81;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') o[n++] = (char)0xE2, o[n++] = (char)0x96, o[n++] = (char)0x81;
        else o[n++] = text[i];
    }
    return n;
}

int tok_encode(const tok_vocab *v, const char *text, size_t len, int add_special, int parse_special, int32_t *out,
               int cap) {
    if ((!text && len) || cap < 0 || (!out && cap > 0)) return -EINVAL;
    struct tok_out o = {out, cap, 0};
    struct tok_frag *fr = NULL;
    int nf = tok_partition(v, text, len, parse_special, &fr);
    if (nf < 0) return nf;
    int rc = 0;
    if (add_special && v->add_bos) tok_out_push(&o, v->bos);
    if (v->kind == TOK_KIND_SPM) {
        size_t maxf = 0;
        for (int i = 0; i < nf; i++)
            if (fr[i].token < 0 && fr[i].len > maxf) maxf = fr[i].len;
        char *esc = nf ? malloc(maxf * 3 + 3) : NULL;
        if (nf && !esc) rc = -ENOMEM;
        int prev_special = 1; /* the first fragment gets the space prefix */
        for (int i = 0; i < nf && !rc; i++) {
            if (fr[i].token >= 0) {
                tok_out_push(&o, fr[i].token);
                prev_special = 1;
                continue;
            }
            size_t n = spm_escape(text + fr[i].off, fr[i].len, v->add_space_prefix && prev_special, esc);
            rc = tok_spm_fragment(v, esc, n, &o);
            prev_special = 0;
        }
        free(esc);
    } else {
        for (int i = 0; i < nf && !rc; i++) {
            if (fr[i].token >= 0) {
                tok_out_push(&o, fr[i].token);
            } else if (v->nfc) { /* hf-json NFC normalizer: raw text only, added tokens match unnormalized */
                char *norm = NULL;
                size_t nl = 0;
                rc = tok_nfc(text + fr[i].off, fr[i].len, &norm, &nl);
                if (rc == 1) rc = tok_bpe_fragment(v, text + fr[i].off, fr[i].len, &o);
                else if (rc == 0) rc = tok_bpe_fragment(v, norm, nl, &o);
                free(norm);
            } else {
                rc = tok_bpe_fragment(v, text + fr[i].off, fr[i].len, &o);
            }
        }
    }
    free(fr);
    if (rc) return rc;
    if (add_special && v->add_eos) tok_out_push(&o, v->eos);
    if (o.n > INT_MAX) return -E2BIG;
    return (int)o.n;
}
