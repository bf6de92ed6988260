/* provision — model refs to local files (SPEC §5).
 *
 *   file:/abs/path                     used in place
 *   hf:{org}/{repo}[@rev]::file={path} {mirror}/{org}/{repo}/{path} when LLORCH_MODEL_MIRROR
 *                                      holds it (offline sites; used in place), else
 *                                      {cache_dir}/hf/{org}/{repo}/{rev}/{path}, downloaded by a
 *                                      pull from {LLORCH_HF_ENDPOINT}/{org}/{repo}/resolve/{rev}/{path}
 *
 * A pull runs on its own thread: the body streams into "<final>.part"; an
 * interrupted transfer resumes with a Range request (automatically, up to
 * PULL_ATTEMPTS times, and on the next pull); the finished file is hashed
 * (SHA-256, checked against the hub's X-Linked-Etag/ETag when it is a sha256),
 * the digest written to "<final>.sha256", then renamed into place atomically.
 * HF_TOKEN, when set, is sent as a bearer token. Progress is in the pull's
 * record (GET /v2/models/pull) and logged at every 25 %.
 *
 * Disk: before a response's first byte is written, the bytes it announces
 * (Content-Length) plus models.cache_reserve_bytes must be free on the
 * cache's file system (statvfs), else the pull fails INSUFFICIENT_STORAGE
 * at once, naming both figures. A write that fails anyway (ENOSPC, EDQUOT:
 * another process filled the disk) fails the same way; either failure is
 * not retried (the attempts are for the network) and the .part is kept, so
 * the next pull after space is freed resumes. Any other write error fails
 * INTERNAL. A transfer that ends without error but short of the announced
 * size is retried from where it stopped, never hashed and moved into place.
 */
#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "pool/pool.h"
#include "common/sha256.h"

#define PULL_ATTEMPTS 5

/* Messages for humans may be cut short; paths never are (checked above).
 * (gcc only: clang has no such warning and rejects the unknown name.) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

struct hf_ref {
    char org[128], repo[128], rev[128], file[1024];
};

static int seg_ok(const char *s, int allow_slash) {
    if (!*s) return 0;
    if (!strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (const char *c = s; *c; c++) {
        if (isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.') continue;
        if (allow_slash && *c == '/') continue;
        return 0;
    }
    if (allow_slash) { /* no empty, "." or ".." component, no leading slash */
        if (s[0] == '/' || strstr(s, "//") || s[strlen(s) - 1] == '/') return 0;
        if (!strncmp(s, "../", 3) || strstr(s, "/../") || !strncmp(s, "./", 2) || strstr(s, "/./")) return 0;
        size_t n = strlen(s);
        if (n >= 3 && !strcmp(s + n - 3, "/..")) return 0;
    }
    return 1;
}

/* hf:{org}/{repo}[@rev]::file={path} */
static int parse_hf(const char *ref, struct hf_ref *h) {
    memset(h, 0, sizeof *h);
    if (strncmp(ref, "hf:", 3)) return -1;
    const char *s = ref + 3;
    const char *sep = strstr(s, "::file=");
    if (!sep) return -1;
    const char *slash = memchr(s, '/', (size_t)(sep - s));
    if (!slash) return -1;
    const char *at = memchr(slash, '@', (size_t)(sep - slash));
    size_t ol = (size_t)(slash - s), rl = (size_t)((at ? at : sep) - slash - 1);
    if (ol >= sizeof h->org || rl >= sizeof h->repo || strlen(sep + 7) >= sizeof h->file) return -1;
    memcpy(h->org, s, ol);
    memcpy(h->repo, slash + 1, rl);
    if (at) {
        size_t vl = (size_t)(sep - at - 1);
        if (vl >= sizeof h->rev) return -1;
        memcpy(h->rev, at + 1, vl);
    } else {
        snprintf(h->rev, sizeof h->rev, "main");
    }
    snprintf(h->file, sizeof h->file, "%s", sep + 7);
    if (!seg_ok(h->org, 0) || !seg_ok(h->repo, 0) || !seg_ok(h->rev, 0) || !seg_ok(h->file, 1)) return -1;
    return 0;
}

static int readable_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, R_OK) == 0;
}

static int cache_path(struct pool *p, const struct hf_ref *h, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s/hf/%s/%s/%s/%s", p->cache_dir, h->org, h->repo, h->rev, h->file);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int mirror_path(const struct hf_ref *h, char *out, size_t cap) {
    const char *m = getenv("LLORCH_MODEL_MIRROR");
    if (!m || !*m) return -1;
    int n = snprintf(out, cap, "%s/%s/%s/%s", m, h->org, h->repo, h->file);
    if (n < 0 || (size_t)n >= cap) return -1;
    return readable_file(out) ? 0 : -1;
}

enum err_code pool_model_resolve(struct pool *p, const char *ref, char *path, size_t cap, char *msg, size_t msglen) {
    if (!strncmp(ref, "file:", 5) || ref[0] == '/') {
        const char *f = ref[0] == '/' ? ref : ref + 5;
        if (f[0] != '/') {
            snprintf(msg, msglen, "file: refs need an absolute path");
            return ERR_INVALID_REQUEST;
        }
        snprintf(path, cap, "%s", f);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            snprintf(msg, msglen, "model file '%s' does not exist", f);
            return ERR_MODEL_NOT_FOUND;
        }
        return ERR_OK;
    }
    struct hf_ref h;
    if (parse_hf(ref, &h) < 0) {
        snprintf(msg, msglen, "model_ref must be file:/abs/path or hf:org/repo[@rev]::file=path");
        return ERR_INVALID_REQUEST;
    }
    if (mirror_path(&h, path, cap) == 0) return ERR_OK;
    if (cache_path(p, &h, path, cap) == 0 && readable_file(path)) return ERR_OK;
    snprintf(msg, msglen, "model is not in the cache; pull it first (POST /v2/models/pull)");
    return ERR_MODEL_NOT_FOUND;
}

/* ---- pulls ------------------------------------------------------------------------ */
struct pull_job {
    struct pool *p;
    struct pool_download *d;       /* owned by the pool's list */
    struct hf_ref h;
    FILE *f;
    uint64_t base;                 /* bytes already in .part when this attempt began */
    int last_quarter;
    long status;
    char etag[128];
    /* this attempt: the response's Content-Length (-1 unknown), whether its
     * space was checked, the first write errno (0 none) and, for ENOSPC,
     * the bytes it needed and found free */
    long long clen;
    int space_checked;
    int werr;
    uint64_t need, avail;
    char part[POOL_PATH_MAX + 8];
};

static size_t on_header(char *b, size_t sz, size_t n, void *u) {
    struct pull_job *j = u;
    size_t len = sz * n;
    if (len > 5 && !strncmp(b, "HTTP/", 5)) j->clen = -1; /* a new response (after a redirect) */
    if (len > 15 && !strncasecmp(b, "content-length:", 15)) {
        char num[32];
        size_t k = 0;
        for (size_t i = 15; i < len && k + 1 < sizeof num; i++)
            if (isdigit((unsigned char)b[i])) num[k++] = b[i];
            else if (k) break;
        num[k] = 0;
        if (k) j->clen = strtoll(num, NULL, 10);
    }
    const char *names[] = { "x-linked-etag:", "etag:" };
    for (int k = 0; k < 2; k++) {
        size_t nl = strlen(names[k]);
        if (len > nl && !strncasecmp(b, names[k], nl) && (k == 0 || !j->etag[0])) {
            const char *v = b + nl;
            size_t vl = len - nl;
            while (vl && (*v == ' ' || *v == '"' || *v == 'W' || *v == '/')) v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == '"')) vl--;
            if (vl < sizeof j->etag) {
                memcpy(j->etag, v, vl);
                j->etag[vl] = 0;
            }
        }
    }
    return len;
}

/* 0 when `need` bytes (+ the reserve) fit the file system of the .part;
 * else -ENOSPC with j->need / j->avail set. statvfs failing: no check. */
static int space_check(struct pull_job *j, uint64_t need) {
    char dir[POOL_PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s", j->part);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) return 0;
    const uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    need += j->p->cache_reserve_bytes;
    if (avail >= need) return 0;
    j->need = need;
    j->avail = avail;
    return -ENOSPC;
}

static size_t on_body(char *b, size_t sz, size_t n, void *u) {
    struct pull_job *j = u;
    if (!j->f || j->werr) return 0;
    if (!j->space_checked) {
        j->space_checked = 1;
        if (j->clen > 0 && space_check(j, (uint64_t)j->clen) < 0) {
            j->werr = ENOSPC;
            return 0; /* curl stops: CURLE_WRITE_ERROR */
        }
    }
    errno = 0;
    size_t w = fwrite(b, 1, sz * n, j->f);
    if (w < sz * n) j->werr = errno ? errno : EIO;
    pthread_mutex_lock(&j->p->mu);
    j->d->bytes += w;
    uint64_t bytes = j->d->bytes, total = j->d->total;
    pthread_mutex_unlock(&j->p->mu);
    if (total) {
        int q = (int)(bytes * 4 / total);
        if (q > j->last_quarter && q <= 4) {
            j->last_quarter = q;
            LOG_KV(LOG_INFO, POOL_COMPONENT, "model_pull_progress", NULL, "\"percent\":%d,\"bytes\":%llu,\"total\":%llu",
                   q * 25, (unsigned long long)bytes, (unsigned long long)total);
        }
    }
    return w;
}

static int on_progress(void *u, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    struct pull_job *j = u;
    (void)un;
    (void)ut;
    (void)dn;
    pthread_mutex_lock(&j->p->mu);
    int stop = j->p->shutting_down;
    if (dt > 0 && !j->d->total) j->d->total = j->base + (uint64_t)dt;
    pthread_mutex_unlock(&j->p->mu);
    return stop;
}

static void finish(struct pull_job *j, enum pool_dl_state st, enum err_code code, const char *fmt, const char *arg) {
    pthread_mutex_lock(&j->p->mu);
    j->d->state = st;
    j->d->error = code;
    snprintf(j->d->message, sizeof j->d->message, fmt, arg);
    pthread_cond_broadcast(&j->p->cv);
    pthread_mutex_unlock(&j->p->mu);
}

static int hash_file(const char *path, char out[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    struct sha256 s;
    sha256_init(&s);
    static __thread char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) return -EIO;
    sha256_final_hex(&s, out);
    return 0;
}

static int mkparents(const char *path) {
    char tmp[POOL_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -errno;
            *s = '/';
        }
    return 0;
}

static int write_digest(const char *final, const char *hex) {
    char p2[POOL_PATH_MAX + 16];
    snprintf(p2, sizeof p2, "%s.sha256", final);
    FILE *f = fopen(p2, "w");
    if (!f) return -errno;
    fprintf(f, "%s\n", hex);
    return fclose(f) == 0 ? 0 : -EIO;
}

static void *pull_main(void *arg) {
    struct pull_job *j = arg;
    struct pool_download *d = j->d;
    char url[2048], auth[600] = "";
    char *part = j->part;
    const char *ep = getenv("LLORCH_HF_ENDPOINT");
    if (!ep || !*ep) ep = "https://huggingface.co";
    snprintf(url, sizeof url, "%s/%s/%s/resolve/%s/%s", ep, j->h.org, j->h.repo, j->h.rev, j->h.file);
    snprintf(j->part, sizeof j->part, "%s.part", d->path);
    const char *tok = getenv("HF_TOKEN");
    if (tok && *tok) snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    if (mkparents(d->path) < 0) {
        finish(j, PDL_FAILED, ERR_INTERNAL, "cannot create the cache directory for %s", d->path);
        free(j);
        return NULL;
    }
    LOG_KV(LOG_INFO, POOL_COMPONENT, "model_pull_start", NULL, "\"url\":\"%s\"", url);
    int done = 0;
    for (int attempt = 1; attempt <= PULL_ATTEMPTS && !done; attempt++) {
        struct stat st;
        j->base = stat(part, &st) == 0 ? (uint64_t)st.st_size : 0;
        j->f = fopen(part, "ab");
        if (!j->f) {
            finish(j, PDL_FAILED, ERR_INTERNAL, "cannot write %s", part);
            free(j);
            return NULL;
        }
        pthread_mutex_lock(&j->p->mu);
        d->bytes = j->base;
        pthread_mutex_unlock(&j->p->mu);
        j->etag[0] = 0;
        j->clen = -1;
        j->space_checked = 0;
        j->werr = 0;
        CURL *c = curl_easy_init();
        struct curl_slist *hl = NULL;
        if (auth[0]) hl = curl_slist_append(hl, auth);
        char range[64];
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, j);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, j);
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        if (j->base) {
            snprintf(range, sizeof range, "%llu-", (unsigned long long)j->base);
            curl_easy_setopt(c, CURLOPT_RANGE, range);
            LOG_KV(LOG_INFO, POOL_COMPONENT, "model_pull_resume", NULL, "\"from_byte\":%llu,\"attempt\":%d",
                   (unsigned long long)j->base, attempt);
        }
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hl);
        curl_easy_cleanup(c);
        errno = 0;
        if (fclose(j->f) != 0 && !j->werr) j->werr = errno ? errno : EIO; /* the last buffered bytes */
        j->f = NULL;
        if (j->werr) break; /* the disk, not the network: retrying cannot help */
        if (rc == CURLE_OK && j->base && status == 200) { /* server ignored the range: start over */
            LOG_WARN(POOL_COMPONENT, "model_pull_resume", NULL, "server ignored Range; restarting");
            unlink(part);
            pthread_mutex_lock(&j->p->mu);
            d->total = 0; /* learnt again from the next response */
            pthread_mutex_unlock(&j->p->mu);
            continue;
        }
        if (rc == CURLE_OK) {
            /* complete when the file holds what was there plus this
             * response's Content-Length (unknown length: curl's OK) */
            struct stat ps = {0};
            const uint64_t total = j->clen >= 0 ? j->base + (uint64_t)j->clen : 0;
            if (!total || (stat(part, &ps) == 0 && (uint64_t)ps.st_size == total)) {
                done = 1;
                break;
            }
            LOG_KV(LOG_WARN, POOL_COMPONENT, "model_pull_retry", NULL,
                   "\"attempt\":%d,\"reason\":\"short transfer\",\"bytes\":%llu,\"total\":%llu", attempt,
                   (unsigned long long)ps.st_size, (unsigned long long)total);
            continue;
        }
        if (status == 404 || status == 401 || status == 403) {
            unlink(part);
            finish(j, PDL_FAILED, status == 404 ? ERR_MODEL_NOT_FOUND : ERR_UNAUTHORIZED,
                   "the hub answered %s", status == 404 ? "404" : "401/403 (HF_TOKEN?)");
            free(j);
            return NULL;
        }
        if (status == 416) unlink(part); /* our partial file is bad: start over */
        LOG_KV(LOG_WARN, POOL_COMPONENT, "model_pull_retry", NULL, "\"attempt\":%d,\"curl\":%d,\"status\":%ld",
               attempt, (int)rc, status);
        pthread_mutex_lock(&j->p->mu);
        int stop = j->p->shutting_down;
        pthread_mutex_unlock(&j->p->mu);
        if (stop) break;
        usleep(200000u * (unsigned)attempt);
    }
    if (j->werr) {
        char m[600];
        enum err_code code = ERR_INTERNAL;
        if (j->werr == ENOSPC || j->werr == EDQUOT) {
            code = ERR_INSUFFICIENT_STORAGE;
            if (j->need)
                snprintf(m, sizeof m,
                         "not enough disk space for %s in the model cache: the download needs %llu more bytes "
                         "(with models.cache_reserve_bytes %llu), %llu are free; free space and pull again (the .part "
                         "is kept for resume)",
                         j->h.file, (unsigned long long)j->need, (unsigned long long)j->p->cache_reserve_bytes,
                         (unsigned long long)j->avail);
            else
                snprintf(m, sizeof m, "the model cache's disk is full (%s) writing %s; free space and pull again "
                         "(the .part is kept for resume)", strerror(j->werr), part);
        } else {
            snprintf(m, sizeof m, "cannot write %s: %s", part, strerror(j->werr));
        }
        LOG_KV(LOG_ERROR, POOL_COMPONENT, "model_pull_failed", NULL, "\"code\":\"%s\",\"errno\":%d",
               err_name(code), j->werr);
        finish(j, PDL_FAILED, code, "%s", m);
        free(j);
        return NULL;
    }
    if (!done) {
        finish(j, PDL_FAILED, ERR_MODEL_LOAD_FAILED, "download of %s did not complete (the .part is kept for resume)",
               j->h.file);
        free(j);
        return NULL;
    }
    char hex[65];
    if (hash_file(part, hex) < 0) {
        finish(j, PDL_FAILED, ERR_INTERNAL, "cannot hash %s", part);
        free(j);
        return NULL;
    }
    if (strlen(j->etag) == 64 && strspn(j->etag, "0123456789abcdef") == 64 && strcmp(j->etag, hex)) {
        unlink(part);
        finish(j, PDL_FAILED, ERR_MODEL_LOAD_FAILED, "sha256 mismatch with the hub's etag for %s", j->h.file);
        free(j);
        return NULL;
    }
    if (write_digest(d->path, hex) < 0 || rename(part, d->path) != 0) {
        finish(j, PDL_FAILED, ERR_INTERNAL, "cannot move %s into place", part);
        free(j);
        return NULL;
    }
    pthread_mutex_lock(&j->p->mu);
    snprintf(d->sha256, sizeof d->sha256, "%s", hex);
    d->total = d->bytes;
    pthread_mutex_unlock(&j->p->mu);
    LOG_KV(LOG_INFO, POOL_COMPONENT, "model_pull_done", NULL, "\"sha256\":\"%s\",\"bytes\":%llu", hex,
           (unsigned long long)d->bytes);
    finish(j, PDL_DONE, ERR_OK, "%s", "");
    free(j);
    return NULL;
}

static void *mirror_hash_main(void *arg) {
    struct pull_job *j = arg;
    char hex[65];
    int rc = hash_file(j->d->path, hex);
    pthread_mutex_lock(&j->p->mu);
    if (rc == 0) snprintf(j->d->sha256, sizeof j->d->sha256, "%s", hex);
    pthread_mutex_unlock(&j->p->mu);
    finish(j, rc == 0 ? PDL_DONE : PDL_FAILED, rc == 0 ? ERR_OK : ERR_INTERNAL, "%s", rc == 0 ? "" : "hash failed");
    free(j);
    return NULL;
}

/* Thread entries: the job is freed by its body; the pool's thread count
 * (pool_thread_end) drops only after the body's last touch of the pool. */
static void *pull_thread(void *arg) {
    struct pool *p = ((struct pull_job *)arg)->p;
    pull_main(arg);
    pool_thread_end(p);
    return NULL;
}

static void *mirror_hash_thread(void *arg) {
    struct pool *p = ((struct pull_job *)arg)->p;
    mirror_hash_main(arg);
    pool_thread_end(p);
    return NULL;
}

static struct pool_download *find_dl_locked(struct pool *p, const char *ref) {
    for (struct pool_download *d = p->downloads; d; d = d->next)
        if (!strcmp(d->model_ref, ref)) return d;
    return NULL;
}

enum err_code pool_model_pull(struct pool *p, const char *ref, char *msg, size_t msglen) {
    char path[POOL_PATH_MAX];
    struct hf_ref h;
    int is_hf = parse_hf(ref, &h) == 0;
    pthread_mutex_lock(&p->mu);
    struct pool_download *d = find_dl_locked(p, ref);
    if (d && d->state != PDL_FAILED) {
        pthread_mutex_unlock(&p->mu);
        return ERR_OK; /* running or done: join it */
    }
    pthread_mutex_unlock(&p->mu);
    if (!is_hf) { /* file: refs are provisioned in place */
        enum err_code c = pool_model_resolve(p, ref, path, sizeof path, msg, msglen);
        if (c != ERR_OK) return c;
    }
    if (!d) {
        d = calloc(1, sizeof *d);
        if (!d) {
            snprintf(msg, msglen, "out of memory");
            return ERR_INTERNAL;
        }
        snprintf(d->model_ref, sizeof d->model_ref, "%s", ref);
        pthread_mutex_lock(&p->mu);
        d->next = p->downloads;
        p->downloads = d;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    d->state = PDL_RUNNING;
    d->error = ERR_OK;
    d->message[0] = 0;
    d->bytes = d->total = 0;
    d->from_mirror = 0;
    pthread_mutex_unlock(&p->mu);
    struct pull_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(msg, msglen, "out of memory");
        return ERR_INTERNAL;
    }
    j->p = p;
    j->d = d;
    j->h = h;
    j->last_quarter = 0;
    void *(*fn)(void *) = pull_thread;
    if (!is_hf) {
        snprintf(d->path, sizeof d->path, "%s", path);
        fn = mirror_hash_thread;
    } else if (mirror_path(&h, path, sizeof path) == 0) {
        snprintf(d->path, sizeof d->path, "%s", path);
        d->from_mirror = 1;
        LOG_KV(LOG_INFO, POOL_COMPONENT, "model_pull_mirror", NULL, "\"file\":\"%s\"", h.file);
        fn = mirror_hash_thread;
    } else {
        if (cache_path(p, &h, d->path, sizeof d->path) < 0) {
            free(j);
            pthread_mutex_lock(&p->mu);
            d->state = PDL_FAILED;
            pthread_mutex_unlock(&p->mu);
            snprintf(msg, msglen, "cache path too long");
            return ERR_INVALID_REQUEST;
        }
        if (readable_file(d->path)) fn = mirror_hash_thread; /* cached already: just (re)hash */
    }
    pthread_t t;
    pthread_mutex_lock(&p->mu);
    pool_thread_begin_locked(p);
    pthread_mutex_unlock(&p->mu);
    if (pthread_create(&t, NULL, fn, j) != 0) {
        free(j);
        pthread_mutex_lock(&p->mu);
        pool_thread_cancel_locked(p);
        d->state = PDL_FAILED;
        pthread_mutex_unlock(&p->mu);
        snprintf(msg, msglen, "cannot start a thread");
        return ERR_INTERNAL;
    }
    pthread_detach(t);
    return ERR_OK;
}

int pool_download_state_locked(struct pool *p, const char *ref, enum err_code *code, char *msg, size_t msglen) {
    struct pool_download *d = find_dl_locked(p, ref);
    if (!d) return -1;
    *code = d->error;
    snprintf(msg, msglen, "%s", d->message);
    return (int)d->state;
}

int pool_model_is_hf(const char *ref) {
    struct hf_ref h;
    return parse_hf(ref, &h) == 0;
}

int pool_download_json_locked(struct pool *p, const char *ref, struct util_sb *sb) {
    struct pool_download *d = find_dl_locked(p, ref);
    if (!d) return -ENOENT;
    static const char *st[] = { "running", "done", "failed" };
    util_sb_puts(sb, "{\"model_ref\":");
    util_sb_json_str(sb, d->model_ref);
    util_sb_printf(sb, ",\"state\":\"%s\",\"bytes\":%llu,\"total\":%llu,\"from_mirror\":%s,\"path\":", st[d->state],
                   (unsigned long long)d->bytes, (unsigned long long)d->total, d->from_mirror ? "true" : "false");
    util_sb_json_str(sb, d->path);
    util_sb_puts(sb, ",\"sha256\":");
    if (d->sha256[0]) util_sb_json_str(sb, d->sha256);
    else util_sb_puts(sb, "null");
    if (d->state == PDL_FAILED) {
        util_sb_printf(sb, ",\"error\":{\"code\":\"%s\",\"message\":", err_name(d->error));
        util_sb_json_str(sb, d->message);
        util_sb_puts(sb, "}");
    }
    util_sb_puts(sb, "}");
    return 0;
}

/* ---- hot-load: pre-read a cached model into the page cache ----------------------- */
struct preload_job {
    char path[POOL_PATH_MAX];
};

static void *preload_main(void *arg) {
    struct preload_job *j = arg;
    int fd = open(j->path, O_RDONLY | O_CLOEXEC);
    uint64_t total = 0, t0 = util_now_ns();
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
        static __thread char buf[1 << 20];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) total += (uint64_t)n;
        close(fd);
    }
    LOG_KV(LOG_INFO, POOL_COMPONENT, "model_preload", NULL, "\"bytes\":%llu,\"ms\":%.1f", (unsigned long long)total,
           (double)(util_now_ns() - t0) / 1e6);
    free(j);
    return NULL;
}

enum err_code pool_model_preload(struct pool *p, const char *ref, char *msg, size_t msglen) {
    struct preload_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(msg, msglen, "out of memory");
        return ERR_INTERNAL;
    }
    enum err_code c = pool_model_resolve(p, ref, j->path, sizeof j->path, msg, msglen);
    pthread_t t;
    if (c == ERR_OK && pthread_create(&t, NULL, preload_main, j) != 0) {
        snprintf(msg, msglen, "cannot start a thread");
        c = ERR_INTERNAL;
    }
    if (c != ERR_OK) {
        free(j);
        return c;
    }
    pthread_detach(t);
    return ERR_OK;
}

void pool_provision_shutdown(struct pool *p) {
    pthread_mutex_lock(&p->mu);
    p->shutting_down = 1;
    uint64_t deadline = util_now_ns() + 5000000000ull;
    for (;;) {
        int running = 0;
        for (struct pool_download *d = p->downloads; d; d = d->next) running |= d->state == PDL_RUNNING;
        if (!running || util_now_ns() > deadline) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    int running = 0;
    for (struct pool_download *d = p->downloads; d; d = d->next) running |= d->state == PDL_RUNNING;
    struct pool_download *d = running ? NULL : p->downloads; /* a stuck pull still uses its record: leave it */
    if (!running) p->downloads = NULL;
    pthread_mutex_unlock(&p->mu);
    while (d) {
        struct pool_download *n = d->next;
        free(d);
        d = n;
    }
}
