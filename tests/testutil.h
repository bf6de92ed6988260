/* testutil — shared helpers for C tests (cmocka based).
 * Paths come from the environment CTest sets (CMakeLists.txt TEST_ENV):
 *   LLORCH_MODELS_DIR  ../shared/models (real GGUF files)
 *   LLORCH_FIXTURES    tests/fixtures
 *   LLORCH_BUILD_DIR   the build tree (programs under test)
 *   LLORCH_SRC_DIR     the source tree
 */
#ifndef LLORCH_TESTUTIL_H
#define LLORCH_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <linux/magic.h>
#include <sys/vfs.h>

/* A cmocka skip() counts as a pass in the group's exit status, so under CTest
 * (which sets LLORCH_REQUIRE_ALL=1: every program and model a test needs is
 * built or present there) a skip is a failure: a missing prerequisite must
 * never look like a passing check. Run by hand without the variable, a test
 * may still skip. Whole-program skips (GPU tests, optional vocabularies) exit
 * 77 instead, which CTest reports as skipped. */
#undef skip
#define skip()                                                                                   \
    do {                                                                                         \
        if (getenv("LLORCH_REQUIRE_ALL"))                                                        \
            fail_msg("a prerequisite of this test is missing (LLORCH_REQUIRE_ALL is set)");     \
        _skip(__FILE__, __LINE__);                                                               \
    } while (0)

static inline const char *tu_env(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* Writes "<dir>/<name>" into buf; returns buf. */
static inline const char *tu_path(char *buf, size_t cap, const char *env, const char *fallback, const char *name) {
    snprintf(buf, cap, "%s/%s", tu_env(env, fallback), name);
    return buf;
}
#define TU_MODEL(buf, name) tu_path(buf, sizeof buf, "LLORCH_MODELS_DIR", "../shared/models", name)
#define TU_FIXTURE(buf, name) tu_path(buf, sizeof buf, "LLORCH_FIXTURES", "tests/fixtures", name)
#define TU_BUILD(buf, name) tu_path(buf, sizeof buf, "LLORCH_BUILD_DIR", "build", name)

/* A directory for one large scratch file of ~need bytes (a generated model
 * the test deletes again) into buf: $LLORCH_TEST_SCRATCH when set, else
 * /dev/shm when it is a RAM file system with 4x need free (CI machines have
 * RAM to spare but may be short of disk), else the build tree. Returns buf. */
static inline const char *tu_scratch_dir(char *buf, size_t cap, unsigned long long need) {
    const char *env = getenv("LLORCH_TEST_SCRATCH");
    struct statfs fs;
    if (env && *env)
        snprintf(buf, cap, "%s", env);
    else if (statfs("/dev/shm", &fs) == 0 && fs.f_type == TMPFS_MAGIC &&
             (unsigned long long)fs.f_bavail * (unsigned long long)fs.f_bsize >= 4 * need)
        snprintf(buf, cap, "/dev/shm");
    else
        tu_path(buf, cap, "LLORCH_BUILD_DIR", "build", ".");
    return buf;
}

/* deterministic test RNG (splitmix64) */
static inline uint64_t tu_rng(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline float tu_randf(uint64_t *s) { /* [-1, 1) */
    return (float)((tu_rng(s) >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

#endif
