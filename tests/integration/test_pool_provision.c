// test-libs: llorch_net PkgConfig::JANSSON PkgConfig::CURL
/* pool-managerd model provisioning (issue 5, acceptance 5). Hugging Face is
 * replaced by HF_DOUBLE, a TEST DOUBLE: a raw-socket HTTP server in this
 * process laid out like the hub (/{org}/{repo}/resolve/{rev}/{file}) that
 * serves the real stories260K.gguf, cuts the first transfer off halfway (so
 * the pool must resume with a Range request), answers 404 for anything else,
 * and records what it was asked. */
#include "test_pool_util.h"

#include <arpa/inet.h>
#include <curl/curl.h>

#define STORIES_SHA256 "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
#define HF_REF "hf:ggml-org/models@main::file=tinyllamas/stories260K.gguf"

/* ---- HF_DOUBLE ---------------------------------------------------------------- */
typedef struct {
    int lfd, port;
    pthread_t thr;
    char *data;
    size_t len;
    pthread_mutex_t mu;
    int requests, ranged, cut_done;
    int ignore_range;              /* answer a Range request 200 with the whole file */
    long long last_range;
    char auth[128];
    char paths[16][256];
} hf_double;

static void send_all(int fd, const void *b, size_t n) {
    const char *p = b;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void *hf_main(void *arg) {
    hf_double *h = arg;
    for (;;) {
        int c = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) return NULL;
        char req[8192];
        size_t n = 0;
        while (n < sizeof req - 1) {
            ssize_t r = recv(c, req + n, sizeof req - 1 - n, 0);
            if (r <= 0) break;
            n += (size_t)r;
            req[n] = 0;
            if (strstr(req, "\r\n\r\n")) break;
        }
        req[n] = 0;
        char path[256] = "";
        sscanf(req, "GET %255s", path);
        long long from = -1;
        const char *rg = strcasestr(req, "\r\nRange: bytes=");
        if (rg) from = atoll(rg + 15);
        const char *au = strcasestr(req, "\r\nAuthorization: ");
        pthread_mutex_lock(&h->mu);
        if (h->requests < 16) snprintf(h->paths[h->requests], sizeof h->paths[0], "%s", path);
        h->requests++;
        if (au) sscanf(au + 17, "%127[^\r]", h->auth);
        if (from >= 0) { h->ranged++; h->last_range = from; }
        int cut = !h->cut_done && from < 0;
        if (h->ignore_range) from = -1;
        pthread_mutex_unlock(&h->mu);
        char hdr[512];
        if (strcmp(path, "/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf")) {
            const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found";
            send_all(c, nf, strlen(nf));
        } else if (from >= 0 && (size_t)from < h->len) {
            int k = snprintf(hdr, sizeof hdr,
                             "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\nContent-Range: bytes %lld-%zu/%zu\r\n"
                             "X-Linked-Etag: \"%s\"\r\nConnection: close\r\n\r\n",
                             h->len - (size_t)from, from, h->len - 1, h->len, STORIES_SHA256);
            send_all(c, hdr, (size_t)k);
            send_all(c, h->data + from, h->len - (size_t)from);
        } else {
            int k = snprintf(hdr, sizeof hdr,
                             "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nX-Linked-Etag: \"%s\"\r\nConnection: close\r\n\r\n",
                             h->len, STORIES_SHA256);
            send_all(c, hdr, (size_t)k);
            if (cut) { /* the interrupted transfer: half the body, then the connection drops */
                send_all(c, h->data, h->len / 2);
                pthread_mutex_lock(&h->mu);
                h->cut_done = 1;
                pthread_mutex_unlock(&h->mu);
            } else {
                send_all(c, h->data, h->len);
            }
        }
        close(c);
    }
}

static void hf_start(hf_double *h) {
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    char p[1024], err[128];
    TU_MODEL(p, "stories260K.gguf");
    assert_int_equal(util_read_file(p, 64 << 20, &h->data, &h->len, err, sizeof err), 0);
    h->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(h->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(h->lfd, 16), 0);
    socklen_t l = sizeof a;
    getsockname(h->lfd, (struct sockaddr *)&a, &l);
    h->port = ntohs(a.sin_port);
    pthread_create(&h->thr, NULL, hf_main, h);
}

static void hf_stop(hf_double *h) {
    shutdown(h->lfd, SHUT_RDWR);
    close(h->lfd);
    pthread_join(h->thr, NULL);
    free(h->data);
}

/* ---- helpers ------------------------------------------------------------------ */
static json_t *pull_wait(tp_pool *p, const char *ref) {
    char body[600];
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\"}", ref);
    json_t *r = NULL;
    assert_int_equal(tp_call(p->url, "POST", "/v2/models/pull", body, &r), 202);
    json_decref(r);
    char *esc = curl_easy_escape(NULL, ref, 0);
    char path[800];
    snprintf(path, sizeof path, "/v2/models/pull?model_ref=%s", esc);
    curl_free(esc);
    uint64_t t0 = tp_ms();
    for (;;) {
        assert_int_equal(tp_call(p->url, "GET", path, NULL, &r), 200);
        if (strcmp(tp_str(r, "state"), "running")) return r;
        json_decref(r);
        assert_true(tp_ms() - t0 < 30000);
        usleep(20000);
    }
}

/* where the pool caches HF_REF: the final file into want[600] and its
 * .part into part[700] (either may be NULL); mkdirs: create the .part's
 * parent directories, as a pull would */
static void cached_paths(const tp_pool *p, char *want, char *part, int mkdirs) {
    char w[600], pt[700];
    snprintf(w, sizeof w, "%s/cache/hf/ggml-org/models/main/tinyllamas/stories260K.gguf", p->dir);
    snprintf(pt, sizeof pt, "%s.part", w);
    if (want) memcpy(want, w, sizeof w);
    if (part) memcpy(part, pt, sizeof pt);
    if (mkdirs) {
        char cmd[800];
        snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", pt);
        assert_int_equal(system(cmd), 0);
    }
}

static void start_and_stop(tp_pool *p, const char *ref) {
    char body[600];
    snprintf(body, sizeof body, "{\"model_ref\":\"%s\"}", ref);
    char id[64];
    snprintf(id, sizeof id, "%s", tp_start_worker(p, body));
    assert_true(tp_wait_status(p, id, "ready", 60000));
    char path[128];
    snprintf(path, sizeof path, "/v2/workers/%s/stop", id);
    assert_int_equal(tp_call(p->url, "POST", path, "{}", NULL), 202);
    assert_true(tp_wait_status(p, id, "gone", 15000));
}

/* ---- tests ----------------------------------------------------------------------- */
static void test_hf_resume_sha_rename(void **st) {
    (void)st;
    hf_double hf;
    hf_start(&hf);
    char ep[96];
    snprintf(ep, sizeof ep, "LLORCH_HF_ENDPOINT=http://127.0.0.1:%d", hf.port);
    const char *env[] = { ep, "HF_TOKEN=hf_test_token", "LLORCH_MODEL_MIRROR=", NULL };
    const char *args[] = { "--inventory", "host", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, env);
    json_t *r = pull_wait(&pool, HF_REF);
    if (strcmp(tp_str(r, "state"), "done")) fail_msg("pull: %s", json_dumps(r, 0));
    assert_string_equal(tp_str(r, "sha256"), STORIES_SHA256);
    assert_int_equal(tp_int(r, "bytes"), (json_int_t)hf.len);
    assert_false(json_is_true(json_object_get(r, "from_mirror")));
    char want[600];
    cached_paths(&pool, want, NULL, 0);
    assert_string_equal(tp_str(r, "path"), want);
    json_decref(r);
    /* atomic rename: the final file is whole, the .part is gone, the digest is recorded */
    struct stat sb;
    assert_int_equal(stat(want, &sb), 0);
    assert_int_equal((size_t)sb.st_size, hf.len);
    char part[700], dig[700];
    snprintf(part, sizeof part, "%s.part", want);
    assert_int_not_equal(stat(part, &sb), 0);
    snprintf(dig, sizeof dig, "%s.sha256", want);
    char *text = NULL;
    size_t len;
    char err[128];
    assert_int_equal(util_read_file(dig, 4096, &text, &len, err, sizeof err), 0);
    assert_int_equal(strncmp(text, STORIES_SHA256, 64), 0);
    free(text);
    /* the double saw: the cut transfer, then one resumed from the half */
    pthread_mutex_lock(&hf.mu);
    assert_int_equal(hf.requests, 2);
    assert_int_equal(hf.ranged, 1);
    assert_int_equal(hf.last_range, (long long)(hf.len / 2));
    assert_string_equal(hf.auth, "Bearer hf_test_token");
    pthread_mutex_unlock(&hf.mu);

    /* the cached model now starts, and can be hot-loaded into the page cache */
    start_and_stop(&pool, HF_REF);
    assert_int_equal(tp_call(pool.url, "POST", "/v2/models/preload", "{\"model_ref\":\"" HF_REF "\"}", NULL), 202);
    assert_int_equal(tp_call(pool.url, "POST", "/v2/models/preload", "{\"model_ref\":\"hf:a/b::file=c.gguf\"}", NULL),
                     404);

    /* a file the hub does not have: MODEL_NOT_FOUND */
    r = pull_wait(&pool, "hf:ggml-org/models::file=missing.gguf");
    assert_string_equal(tp_str(r, "state"), "failed");
    assert_string_equal(tp_str(json_object_get(r, "error"), "code"), "MODEL_NOT_FOUND");
    json_decref(r);
    /* no record for a ref never pulled */
    assert_int_equal(tp_call(pool.url, "GET", "/v2/models/pull?model_ref=hf%3Ax%2Fy%3A%3Afile%3Dz", NULL, NULL), 404);
    assert_int_equal(tp_pool_stop(&pool), 0);
    hf_stop(&hf);
}

static void test_mirror_first(void **st) {
    (void)st;
    hf_double hf;
    hf_start(&hf);
    char mdir[] = "/tmp/llorch-pooltest-mirror-XXXXXX";
    assert_non_null(mkdtemp(mdir));
    char cmd[1600], src[1024];
    TU_MODEL(src, "stories260K.gguf");
    snprintf(cmd, sizeof cmd, "mkdir -p %s/ggml-org/models/tinyllamas && cp %s %s/ggml-org/models/tinyllamas/", mdir, src,
             mdir);
    assert_int_equal(system(cmd), 0);
    char ep[96], mir[128];
    snprintf(ep, sizeof ep, "LLORCH_HF_ENDPOINT=http://127.0.0.1:%d", hf.port);
    snprintf(mir, sizeof mir, "LLORCH_MODEL_MIRROR=%s", mdir);
    const char *env[] = { ep, mir, NULL };
    const char *args[] = { "--inventory", "host", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, env);
    json_t *r = pull_wait(&pool, HF_REF);
    assert_string_equal(tp_str(r, "state"), "done");
    assert_true(json_is_true(json_object_get(r, "from_mirror")));
    assert_string_equal(tp_str(r, "sha256"), STORIES_SHA256);
    json_decref(r);
    start_and_stop(&pool, HF_REF); /* served from the mirror, in place */
    pthread_mutex_lock(&hf.mu);
    assert_int_equal(hf.requests, 0); /* the hub was never asked */
    pthread_mutex_unlock(&hf.mu);
    assert_int_equal(tp_pool_stop(&pool), 0);
    hf_stop(&hf);
    snprintf(cmd, sizeof cmd, "rm -rf %s", mdir);
    if (system(cmd)) {}
}

/* a start whose hf: model is not local: the pool pulls it (resuming the cut
 * transfer), then launches the worker under the same id */
static void test_start_provisions(void **st) {
    (void)st;
    hf_double hf;
    hf_start(&hf);
    tp_orch orch;
    tp_orch_start(&orch, 0);
    char ep[96], ou[64];
    snprintf(ep, sizeof ep, "LLORCH_HF_ENDPOINT=http://127.0.0.1:%d", hf.port);
    snprintf(ou, sizeof ou, "http://127.0.0.1:%d", orch.port);
    const char *env[] = { ep, "LLORCH_MODEL_MIRROR=", NULL };
    const char *args[] = { "--inventory", "host", "--orchestrator-url", ou, NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, env);
    json_t *r = NULL;
    assert_int_equal(tp_call(pool.url, "POST", "/v2/workers/start", "{\"model_ref\":\"" HF_REF "\"}", &r), 202);
    assert_true(json_is_true(json_object_get(r, "provisioning")));
    char id[64];
    snprintf(id, sizeof id, "%s", tp_str(r, "worker_id"));
    json_decref(r);
    /* a second start of the same model while the first provisions: a conflict */
    assert_int_equal(tp_call(pool.url, "POST", "/v2/workers/start", "{\"model_ref\":\"" HF_REF "\"}", &r), 409);
    json_decref(r);
    assert_true(tp_wait_status(&pool, id, "ready", 60000));
    json_t *s = tp_state(&pool);
    json_t *w = tp_worker(s, id);
    assert_false(json_is_true(json_object_get(w, "provisioning")));
    assert_true(tp_int(w, "memory_bytes") > 0);
    json_decref(s);
    pthread_mutex_lock(&hf.mu);
    assert_int_equal(hf.requests, 2);
    assert_int_equal(hf.ranged, 1);
    pthread_mutex_unlock(&hf.mu);
    char path[128];
    snprintf(path, sizeof path, "/v2/workers/%s/stop", id);
    assert_int_equal(tp_call(pool.url, "POST", path, "{}", NULL), 202);
    assert_true(tp_wait_status(&pool, id, "gone", 15000));

    /* the hub has no such file: the start is accepted, then fails and is reported */
    assert_int_equal(tp_call(pool.url, "POST", "/v2/workers/start",
                             "{\"model_ref\":\"hf:ggml-org/models::file=missing.gguf\"}", &r), 202);
    snprintf(id, sizeof id, "%s", tp_str(r, "worker_id"));
    json_decref(r);
    assert_true(tp_wait_status(&pool, id, "gone", 15000));
    json_t *rep = NULL;
    uint64_t t0 = tp_ms();
    while (!rep && tp_ms() - t0 < 5000) {
        pthread_mutex_lock(&orch.mu);
        for (int i = 0; i < orch.n; i++)
            if (!strcmp(orch.rec[i].kind, "failed") && !strcmp(tp_str(orch.rec[i].body, "worker_id"), id))
                rep = orch.rec[i].body;
        pthread_mutex_unlock(&orch.mu);
        usleep(20000);
    }
    assert_non_null(rep);
    assert_non_null(strstr(tp_str(rep, "stderr_tail"), "MODEL_NOT_FOUND"));
    assert_int_equal(tp_int(rep, "vram_released"), 0);
    assert_int_equal(tp_zombie_children(pool.pid), 0);
    assert_int_equal(tp_pool_stop(&pool), 0);
    tp_orch_stop(&orch);
    hf_stop(&hf);
}

/* a hub that ignores Range, and a .part kept from an earlier pull (its
 * first half): the resume is answered 200 with the whole file, so the pool
 * drops the .part and starts over; the second transfer completes with the
 * right digest and size (the expected size is this response's, not one
 * learnt while the stale .part was counted) */
static void test_hf_range_ignored(void **st) {
    (void)st;
    hf_double hf;
    hf_start(&hf);
    pthread_mutex_lock(&hf.mu);
    hf.ignore_range = 1;
    hf.cut_done = 1;
    pthread_mutex_unlock(&hf.mu);
    char ep[96];
    snprintf(ep, sizeof ep, "LLORCH_HF_ENDPOINT=http://127.0.0.1:%d", hf.port);
    const char *env[] = { ep, "LLORCH_MODEL_MIRROR=", NULL };
    const char *args[] = { "--inventory", "host", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args, env);
    char want[600], part[700];
    cached_paths(&pool, want, part, 1);
    FILE *pf = fopen(part, "wb");
    assert_non_null(pf);
    assert_int_equal(fwrite(hf.data, 1, hf.len / 2, pf), hf.len / 2);
    assert_int_equal(fclose(pf), 0);
    json_t *r = pull_wait(&pool, HF_REF);
    if (strcmp(tp_str(r, "state"), "done")) fail_msg("pull: %s", json_dumps(r, 0));
    assert_string_equal(tp_str(r, "sha256"), STORIES_SHA256);
    assert_int_equal(tp_int(r, "bytes"), (json_int_t)hf.len);
    json_decref(r);
    struct stat sb;
    assert_int_equal(stat(want, &sb), 0);
    assert_int_equal((size_t)sb.st_size, hf.len);
    pthread_mutex_lock(&hf.mu);
    assert_int_equal(hf.requests, 2); /* the resume answered whole (dropped), then whole */
    assert_int_equal(hf.ranged, 1);
    pthread_mutex_unlock(&hf.mu);
    assert_int_equal(tp_pool_stop(&pool), 0);
    hf_stop(&hf);
}

/* a full disk: (a) models.cache_reserve_bytes larger than any disk: the
 * pull is refused before a byte is written (INSUFFICIENT_STORAGE naming the
 * bytes needed and free), with ONE request to the hub (the network retries
 * do not apply), and the pool goes on serving; (b) the disk fills during
 * the transfer: the .part is a link to /dev/full, so every write fails
 * with the kernel's own ENOSPC: INSUFFICIENT_STORAGE again, one request,
 * no file moved into place; (c) space freed (the link removed): the next
 * pull of the same ref completes with the right digest. */
static void test_disk_full(void **st) {
    (void)st;
    hf_double hf;
    hf_start(&hf);
    pthread_mutex_lock(&hf.mu);
    hf.cut_done = 1; /* whole transfers: a cut would only add a resume */
    pthread_mutex_unlock(&hf.mu);
    char ep[96];
    snprintf(ep, sizeof ep, "LLORCH_HF_ENDPOINT=http://127.0.0.1:%d", hf.port);
    const char *env[] = { ep, "LLORCH_MODEL_MIRROR=", NULL };

    /* (a) */
    const char *args_reserve[] = { "--inventory", "host", "--cache-reserve-bytes", "1000000000000000000", NULL };
    tp_pool pool;
    tp_pool_start(&pool, args_reserve, env);
    json_t *r = pull_wait(&pool, HF_REF);
    if (strcmp(tp_str(r, "state"), "failed")) fail_msg("pull: %s", json_dumps(r, 0));
    json_t *e = json_object_get(r, "error");
    assert_string_equal(tp_str(e, "code"), "INSUFFICIENT_STORAGE");
    const char *msg = tp_str(e, "message");
    if (!strstr(msg, "1000000000") || !strstr(msg, "are free")) fail_msg("message: %s", msg);
    json_decref(r);
    char want[600], part[700];
    cached_paths(&pool, want, part, 0);
    struct stat sb;
    assert_int_not_equal(stat(want, &sb), 0);
    assert_true(stat(part, &sb) != 0 || sb.st_size == 0);
    pthread_mutex_lock(&hf.mu);
    assert_int_equal(hf.requests, 1);
    pthread_mutex_unlock(&hf.mu);
    assert_int_equal(tp_call(pool.url, "GET", "/v2/state", NULL, NULL), 200); /* still serving */
    assert_int_equal(tp_pool_stop(&pool), 0);

    /* (b) */
    const char *args[] = { "--inventory", "host", NULL };
    tp_pool_start(&pool, args, env);
    cached_paths(&pool, want, part, 1);
    assert_int_equal(symlink("/dev/full", part), 0);
    r = pull_wait(&pool, HF_REF);
    if (strcmp(tp_str(r, "state"), "failed")) fail_msg("pull: %s", json_dumps(r, 0));
    e = json_object_get(r, "error");
    assert_string_equal(tp_str(e, "code"), "INSUFFICIENT_STORAGE");
    if (!strstr(tp_str(e, "message"), "disk is full")) fail_msg("message: %s", tp_str(e, "message"));
    json_decref(r);
    assert_int_not_equal(stat(want, &sb), 0);
    pthread_mutex_lock(&hf.mu);
    assert_int_equal(hf.requests, 2);
    pthread_mutex_unlock(&hf.mu);

    /* (c) */
    assert_int_equal(unlink(part), 0);
    r = pull_wait(&pool, HF_REF);
    if (strcmp(tp_str(r, "state"), "done")) fail_msg("pull: %s", json_dumps(r, 0));
    assert_string_equal(tp_str(r, "sha256"), STORIES_SHA256);
    assert_int_equal(tp_int(r, "bytes"), (json_int_t)hf.len);
    json_decref(r);
    assert_int_equal(stat(want, &sb), 0);
    assert_int_equal((size_t)sb.st_size, hf.len);
    assert_int_equal(tp_pool_stop(&pool), 0);
    hf_stop(&hf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_resume_sha_rename),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_hf_range_ignored),
        cmocka_unit_test(test_mirror_first),
        cmocka_unit_test(test_start_provisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
