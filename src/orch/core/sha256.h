/* sha256 — FIPS 180-4 SHA-256 (prompt_hash in the jobs table: the store
 * keeps a digest of the prompt, never the prompt once dispatched). */
#ifndef LLORCH_ORCH_SHA256_H
#define LLORCH_ORCH_SHA256_H

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
/* one shot, lowercase hex into out[65] */
void sha256_hex(const void *data, size_t n, char out[65]);

#endif
