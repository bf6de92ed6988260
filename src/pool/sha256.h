/* sha256 — streaming SHA-256 (FIPS 180-4) for model digests. */
#ifndef LLORCH_POOL_SHA256_H
#define LLORCH_POOL_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct pool_sha256 {
    uint32_t h[8];
    uint64_t n;        /* bytes hashed */
    uint8_t buf[64];
    size_t fill;
};
void pool_sha256_init(struct pool_sha256 *s);
void pool_sha256_update(struct pool_sha256 *s, const void *data, size_t len);
/* Finishes and writes the lowercase hex digest (the state is spent). */
void pool_sha256_hex(struct pool_sha256 *s, char out[65]);

#endif
