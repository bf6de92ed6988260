/* sha256 — FIPS 180-4 SHA-256, streaming. Used for the orchestrator's
 * prompt_hash (the store keeps a digest of the prompt, never the prompt once
 * dispatched), token fingerprints, and the pool's model digests. */
#ifndef LLORCH_SHA256_H
#define LLORCH_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[32]);
/* finishes s (spent afterwards) and writes the lowercase hex digest into out[65] */
void sha256_final_hex(struct sha256 *s, char out[65]);
/* one shot, lowercase hex into out[65] */
void sha256_hex(const void *data, size_t n, char out[65]);

#endif
