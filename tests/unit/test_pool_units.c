// test-libs: llorch_net PkgConfig::CURL
/* Unit tests of pool-managerd's provisioning pieces: SHA-256 against the
 * FIPS 180-4 / NIST example vectors, model ref parsing (hostile refs must
 * never name a path outside the cache), and ref resolution (file:, mirror,
 * cache). The pool's sources are compiled in directly (they are part of the
 * pool-managerd program, not a library). */
#include "testutil.h"

#include <sys/stat.h>
#include <unistd.h>

#include "../../src/pool/provision.c"
#include "../../src/pool/threads.c"

static void hex_of(const char *msg, size_t n, char out[65]) {
    struct sha256 s;
    sha256_init(&s);
    sha256_update(&s, msg, n);
    sha256_final_hex(&s, out);
}

static void test_sha256_vectors(void **st) {
    (void)st;
    char h[65];
    hex_of("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m, strlen(m), h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* one million 'a', fed in uneven pieces (block boundaries everywhere) */
    struct sha256 s;
    sha256_init(&s);
    static char a[1000];
    memset(a, 'a', sizeof a);
    size_t left = 1000000, k = 1;
    while (left) {
        size_t n = k % 997 + 1 < left ? k % 997 + 1 : left;
        sha256_update(&s, a, n);
        left -= n;
        k = k * 31 + 7;
    }
    sha256_final_hex(&s, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_parse_hf(void **st) {
    (void)st;
    struct hf_ref h;
    assert_int_equal(parse_hf("hf:ggml-org/models@main::file=tinyllamas/stories260K.gguf", &h), 0);
    assert_string_equal(h.org, "ggml-org");
    assert_string_equal(h.repo, "models");
    assert_string_equal(h.rev, "main");
    assert_string_equal(h.file, "tinyllamas/stories260K.gguf");
    assert_int_equal(parse_hf("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF::file=qwen2.5-0.5b-instruct-q4_k_m.gguf", &h), 0);
    assert_string_equal(h.rev, "main");
    assert_int_equal(parse_hf("hf:a/b@v1.0::file=x.gguf", &h), 0);
    assert_string_equal(h.rev, "v1.0");
    const char *bad[] = {
        "hf:a/b", "hf:a::file=x", "hf:/b::file=x", "hf:a/::file=x", "hf:a/b::file=", "hf:../b::file=x",
        "hf:a/b::file=../x", "hf:a/b::file=x/../../y", "hf:a/b::file=/etc/passwd", "hf:a/b@..::file=x",
        "hf:a/b::file=x//y", "hf:a/b::file=x/..", "hf:a b/c::file=x", "hf:a/b::file=x?y", "file:/x", "hf:a/b@::file=x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse_hf(bad[i], &h) == 0) fail_msg("accepted %s", bad[i]);
}

static void test_resolve(void **st) {
    (void)st;
    char dir[] = "/tmp/llorch-pool-unit-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct pool p;
    memset(&p, 0, sizeof p);
    snprintf(p.cache_dir, sizeof p.cache_dir, "%s/cache", dir);
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    char path[POOL_PATH_MAX], msg[256], cmd[512];
    unsetenv("LLORCH_MODEL_MIRROR");
    /* file: in place; missing; relative */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/cache/hf/o/r/main/d %s/mirror/o/r/d && echo x > %s/cache/hf/o/r/main/d/m.gguf"
                              " && echo y > %s/mirror/o/r/d/m.gguf", dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    char ref[600];
    snprintf(ref, sizeof ref, "file:%s/cache/hf/o/r/main/d/m.gguf", dir);
    assert_int_equal(pool_model_resolve(&p, ref, path, sizeof path, msg, sizeof msg), ERR_OK);
    assert_string_equal(path, ref + 5);
    assert_int_equal(pool_model_resolve(&p, "file:/nonexistent.gguf", path, sizeof path, msg, sizeof msg),
                     ERR_MODEL_NOT_FOUND);
    assert_int_equal(pool_model_resolve(&p, "file:relative.gguf", path, sizeof path, msg, sizeof msg),
                     ERR_INVALID_REQUEST);
    /* hf: from the cache, then the mirror first once it is set */
    assert_int_equal(pool_model_resolve(&p, "hf:o/r::file=d/m.gguf", path, sizeof path, msg, sizeof msg), ERR_OK);
    snprintf(ref, sizeof ref, "%s/cache/hf/o/r/main/d/m.gguf", dir);
    assert_string_equal(path, ref);
    char mir[400];
    snprintf(mir, sizeof mir, "%s/mirror", dir);
    setenv("LLORCH_MODEL_MIRROR", mir, 1);
    assert_int_equal(pool_model_resolve(&p, "hf:o/r::file=d/m.gguf", path, sizeof path, msg, sizeof msg), ERR_OK);
    snprintf(ref, sizeof ref, "%s/mirror/o/r/d/m.gguf", dir);
    assert_string_equal(path, ref);
    unsetenv("LLORCH_MODEL_MIRROR");
    assert_int_equal(pool_model_resolve(&p, "hf:o/r@v2::file=d/m.gguf", path, sizeof path, msg, sizeof msg),
                     ERR_MODEL_NOT_FOUND);
    assert_int_equal(pool_model_resolve(&p, "hf:o/r::file=../../m.gguf", path, sizeof path, msg, sizeof msg),
                     ERR_INVALID_REQUEST);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_parse_hf),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
