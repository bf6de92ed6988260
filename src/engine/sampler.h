/* sampler — SPEC §3.4, llama.cpp-compatible order:
 *   repetition penalty over the last 64 tokens of prompt+output (positive
 *   logits divided, negative multiplied) → temperature (0 → argmax, stop) →
 *   top-k → top-p (smallest prefix of the sorted distribution with mass ≥ p,
 *   at least one token) → min-p → softmax → draw with the PRNG.
 * Filtered logits become -inf.
 *
 * PRNG: named and documented in sampler.c; uniform = top 53 bits / 2^53.
 * Same seed + logits + params → same token, on any machine for the CPU path.
 *
 * The CPU functions here are the reference every device sampler is tested against.
 */
#ifndef LLORCH_SAMPLER_H
#define LLORCH_SAMPLER_H

#include <stdint.h>

#define ENG_REPEAT_LAST_N 64

typedef struct {
    float temperature;      /* 0..2, 0 = greedy; default 1.0 */
    float top_p;            /* 0..1; 1 = off */
    int top_k;              /* 0 = off */
    float min_p;            /* 0 = off */
    float repeat_penalty;   /* 1 = off */
    uint64_t seed;
} eng_sampling_params;

void eng_sampling_params_default(eng_sampling_params *p);

typedef struct eng_sampler eng_sampler;

/* Allocates the sampler's scratch for n_vocab once. NULL on OOM. */
eng_sampler *eng_sampler_new(const eng_sampling_params *p, int n_vocab);
void eng_sampler_free(eng_sampler *s);
/* Records a token in the repetition history (prompt tokens too). */
void eng_sampler_accept(eng_sampler *s, int32_t tok);
/* Reference pipeline on host logits (not modified). Does not accept the token. */
int32_t eng_sampler_sample(eng_sampler *s, const float *logits);

/* accessors for device samplers: parameters, history ring (oldest first into
 * out[ENG_REPEAT_LAST_N]; returns count), and the next uniform in [0,1) */
const eng_sampling_params *eng_sampler_params(const eng_sampler *s);
int eng_sampler_history(const eng_sampler *s, int32_t *out);
double eng_sampler_next_uniform(eng_sampler *s);

#endif
