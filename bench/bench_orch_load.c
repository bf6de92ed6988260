/* bench_orch_load — load generator for orchestratord (issue 6, acceptance 12).
 * Not a test: prints numbers. Plain sockets + poll, libc only; traffic only to
 * 127.0.0.1; every loop is bounded in count and time.
 *
 *   bench_orch_load setup   ORCH_PORT NPOOLS NWORKERS MODEL_REF
 *       registers NPOOLS fake pools (8 devices each) and heartbeats each with
 *       NWORKERS workers serving MODEL_REF, status "busy" (uri 127.0.0.1:9):
 *       jobs for that model are scheduled (a full decision over every worker)
 *       and WAIT in the queue — nothing is dispatched.
 *   bench_orch_load pool    ORCH_PORT POOL_ID WORKER_ID WORKER_URI MODEL_REF
 *       registers one pool (one CPU device) whose heartbeat lists one real,
 *       ready worker.
 *   bench_orch_load admit   ORCH_PORT N MODEL
 *       N sequential POST /v2/tasks, each on a new connection (Connection:
 *       close): time from connect() to the end of the 202 response; each job is
 *       then cancelled (DELETE, untimed) so the queue stays at ~0-1 jobs.
 *       Then N GET /health the same way: the HTTP + connect floor.
 *   bench_orch_load relay   ORCH_PORT WORKER_PORT REPS MAX_TOKENS MODEL
 *       alternating reps: the same greedy request straight to the worker's
 *       POST /execute (SSE) and through the orchestrator (POST /v2/tasks then
 *       GET /v2/tasks/{id}/events); time from the first byte sent to the
 *       terminal event; tokens counted from `token` events.
 *   bench_orch_load streams ORCH_PORT ORCH_PID N MODEL HOLD_S
 *       submits N jobs (they stay queued), reads orchestratord's VmRSS/Threads,
 *       opens N concurrent GET /v2/tasks/{id}/events, waits until every stream
 *       has its `queued` event, holds HOLD_S seconds, reads VmRSS/Threads again,
 *       then DELETEs every job and waits for every stream's terminal `error`
 *       (CANCELLED) event. Errors: connect/HTTP failures, streams closed early,
 *       a stream with no terminal event.
 *   bench_orch_load fanout  ORCH_PORT ORCH_PID WORKER_PID N MAX_TOKENS MODEL
 *       fan-out of one live stream: SIGSTOPs the worker, submits one job (the
 *       orchestrator dispatches it; the worker cannot answer yet), opens N
 *       concurrent GET /v2/tasks/{id}/events, SIGCONTs the worker and checks
 *       that every client gets every token and `end`; VmRSS/Threads during.
 *
 * Build: CMake target bench_orch_load (guarded block in CMakeLists.txt), or
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -o bench_orch_load bench/bench_orch_load.c
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}
static uint64_t wall_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000ull + (uint64_t)t.tv_nsec / 1000000ull;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double pct(double *v, int n, double p) { /* v sorted */
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = { .tv_sec = 30 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
    return fd;
}
static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) { if (k < 0 && errno == EINTR) continue; return -1; }
        p += k; n -= (size_t)k;
    }
    return 0;
}
static int send_req(int fd, const char *method, const char *path, const char *body, int keep) {
    char h[1024];
    int n = snprintf(h, sizeof h, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s", method, path,
                     keep ? "" : "Connection: close\r\n", body ? "Content-Type: application/json\r\n" : "");
    if (body) n += snprintf(h + n, sizeof h - (size_t)n, "Content-Length: %zu\r\n", strlen(body));
    n += snprintf(h + n, sizeof h - (size_t)n, "\r\n");
    if (send_all(fd, h, (size_t)n)) return -1;
    return body ? send_all(fd, body, strlen(body)) : 0;
}
/* one request on a new connection (Connection: close); reads to EOF. Returns status, body in out (cap). */
static int http(int port, const char *method, const char *path, const char *body, char *out, size_t cap) {
    int fd = dial(port);
    if (fd < 0) return -1;
    if (send_req(fd, method, path, body, 0)) { close(fd); return -1; }
    size_t n = 0;
    static char buf[1 << 16];
    for (;;) {
        ssize_t k = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
        if (n >= sizeof buf - 1) break;
    }
    close(fd);
    buf[n] = 0;
    int st = -1;
    if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1) return -1;
    if (out) {
        char *b = strstr(buf, "\r\n\r\n");
        snprintf(out, cap, "%s", b ? b + 4 : "");
    }
    return st;
}
static int json_str(const char *s, const char *key, char *out, size_t cap) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\":\"", key);
    const char *p = s ? strstr(s, k) : NULL;
    if (!p) return -1;
    p += strlen(k);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < cap) out[i++] = *p++;
    out[i] = 0;
    return 0;
}

/* ---- setup ------------------------------------------------------------------ */
static int cmd_setup(int port, int npools, int nworkers, const char *model) {
    static char body[1 << 20], resp[4096];
    for (int p = 0; p < npools; p++) {
        int n = snprintf(body, sizeof body, "{\"pool_id\":\"fake-%03d\",\"endpoint\":\"http://127.0.0.1:9\",\"devices\":[", p);
        for (int g = 0; g < 8; g++)
            n += snprintf(body + n, sizeof body - (size_t)n, "%s{\"gpu_id\":%d,\"total_bytes\":85899345920,\"free_bytes\":1073741824}",
                          g ? "," : "", g);
        snprintf(body + n, sizeof body - (size_t)n, "]}");
        int st = http(port, "POST", "/v2/pools/register", body, resp, sizeof resp);
        if (st != 200) { fprintf(stderr, "register fake-%03d: %d %s\n", p, st, resp); return 1; }
        n = snprintf(body, sizeof body, "{\"pool_id\":\"fake-%03d\",\"ts\":%llu,\"devices\":[", p,
                     (unsigned long long)wall_ms());
        for (int g = 0; g < 8; g++)
            n += snprintf(body + n, sizeof body - (size_t)n, "%s{\"gpu_id\":%d,\"total_bytes\":85899345920,\"free_bytes\":1073741824}",
                          g ? "," : "", g);
        n += snprintf(body + n, sizeof body - (size_t)n, "],\"workers\":[");
        for (int w = 0; w < nworkers; w++)
            n += snprintf(body + n, sizeof body - (size_t)n,
                          "%s{\"worker_id\":\"fw-%03d-%d\",\"model_ref\":\"%s\",\"uri\":\"http://127.0.0.1:9\",\"status\":\"busy\","
                          "\"capabilities\":[\"text-gen\"],\"memory_bytes\":21474836480,\"gpu_ids\":[%d]}",
                          w ? "," : "", p, w, model, w % 8);
        snprintf(body + n, sizeof body - (size_t)n, "]}");
        char path[96];
        snprintf(path, sizeof path, "/v2/pools/fake-%03d/heartbeat", p);
        st = http(port, "POST", path, body, resp, sizeof resp);
        if (st != 200) { fprintf(stderr, "heartbeat fake-%03d: %d %s\n", p, st, resp); return 1; }
    }
    printf("setup: %d pools x %d workers (busy, model %s) registered\n", npools, nworkers, model);
    return 0;
}

static int cmd_pool(int port, const char *pool, const char *wid, const char *uri, const char *model) {
    char body[2048], resp[4096], path[128];
    snprintf(body, sizeof body, "{\"pool_id\":\"%s\",\"endpoint\":\"http://127.0.0.1:9\",\"devices\":[{\"gpu_id\":-1,"
             "\"total_bytes\":8000000000,\"free_bytes\":6000000000}]}", pool);
    int st = http(port, "POST", "/v2/pools/register", body, resp, sizeof resp);
    if (st != 200) { fprintf(stderr, "register %s: %d %s\n", pool, st, resp); return 1; }
    snprintf(body, sizeof body, "{\"pool_id\":\"%s\",\"ts\":%llu,\"devices\":[{\"gpu_id\":-1,\"total_bytes\":8000000000,"
             "\"free_bytes\":6000000000}],\"workers\":[{\"worker_id\":\"%s\",\"model_ref\":\"%s\",\"uri\":\"%s\","
             "\"status\":\"ready\",\"capabilities\":[\"text-gen\"],\"memory_bytes\":1000000}]}",
             pool, (unsigned long long)wall_ms(), wid, model, uri);
    snprintf(path, sizeof path, "/v2/pools/%s/heartbeat", pool);
    st = http(port, "POST", path, body, resp, sizeof resp);
    if (st != 200) { fprintf(stderr, "heartbeat %s: %d %s\n", pool, st, resp); return 1; }
    printf("pool %s: worker %s at %s\n", pool, wid, uri);
    return 0;
}

/* ---- admission ---------------------------------------------------------------- */
static void summary(const char *label, double *v, int n, const char *unit) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    printf("%s n=%d p50=%.1f p99=%.1f min=%.1f max=%.1f mean=%.1f %s\n", label, n, pct(v, n, .5), pct(v, n, .99), v[0],
           v[n - 1], s / n, unit);
}
static int cmd_admit(int port, int n, const char *model) {
    double *t = calloc((size_t)n, sizeof *t);
    char body[256], resp[4096], id[96], path[160];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"temperature\":0}", model);
    int bad = 0, ok = 0;
    uint64_t deadline = now_ns() + 120ull * 1000000000ull;
    for (int i = 0; i < n && now_ns() < deadline; i++) {
        uint64_t t0 = now_ns();
        int st = http(port, "POST", "/v2/tasks", body, resp, sizeof resp);
        uint64_t t1 = now_ns();
        if (st != 202 || json_str(resp, "job_id", id, sizeof id)) { bad++; if (bad < 3) fprintf(stderr, "admit: %d %s\n", st, resp); continue; }
        t[ok++] = (double)(t1 - t0) / 1e3;
        snprintf(path, sizeof path, "/v2/tasks/%s", id);
        if (http(port, "DELETE", path, NULL, NULL, 0) < 0) bad++;
    }
    if (!ok) return 1;
    summary("admission_us", t, ok, "us (connect -> 202 read, new connection each)");
    printf("admission_errors=%d\n", bad);
    /* the HTTP floor by the same method: GET /health (no admission, no store) */
    int nh = 0;
    for (int i = 0; i < n && now_ns() < deadline; i++) {
        uint64_t t0 = now_ns();
        int st = http(port, "GET", "/health", NULL, NULL, 0);
        if (st == 200) t[nh++] = (double)(now_ns() - t0) / 1e3;
    }
    if (nh) summary("health_floor_us", t, nh, "us (GET /health, same method: the HTTP + connect floor)");
    free(t);
    return bad ? 1 : 0;
}

/* ---- SSE reading ------------------------------------------------------------- */
struct sse { char buf[8192]; size_t n; int tokens, terminal, queued, events, eof; char last[32]; int status; int hdr; };
/* feeds bytes; counts events by their `event:` line */
static void sse_feed(struct sse *s, const char *p, size_t k) {
    while (k) {
        size_t c = sizeof s->buf - 1 - s->n;
        if (c > k) c = k;
        memcpy(s->buf + s->n, p, c);
        s->n += c; p += c; k -= c;
        s->buf[s->n] = 0;
        char *start = s->buf;
        if (!s->hdr) {
            char *e = strstr(start, "\r\n\r\n");
            if (!e) { if (s->n >= sizeof s->buf - 1) s->n = 0; continue; }
            sscanf(start, "HTTP/1.%*d %d", &s->status);
            s->hdr = 1;
            start = e + 4;
        }
        char *nl;
        while ((nl = strchr(start, '\n'))) {
            *nl = 0;
            if (strncmp(start, "event: ", 7) == 0 || strncmp(start, "event:", 6) == 0) {
                const char *ev = start + 6;
                while (*ev == ' ') ev++;
                s->events++;
                snprintf(s->last, sizeof s->last, "%s", ev);
                if (strncmp(ev, "token", 5) == 0) s->tokens++;
                else if (strncmp(ev, "queued", 6) == 0) s->queued = 1;
                else if (strncmp(ev, "end", 3) == 0 || strncmp(ev, "error", 5) == 0) s->terminal = 1;
            }
            start = nl + 1;
        }
        size_t rest = (size_t)(s->buf + s->n - start);
        memmove(s->buf, start, rest);
        s->n = rest;
    }
}
/* blocking read of one SSE response to its terminal event (or EOF / timeout) */
static int sse_run(int fd, struct sse *s, uint64_t deadline) {
    char b[16384];
    while (!s->terminal && now_ns() < deadline) {
        ssize_t k = recv(fd, b, sizeof b, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        sse_feed(s, b, (size_t)k);
    }
    return s->terminal ? 0 : -1;
}

/* ---- relay -------------------------------------------------------------------- */
static int cmd_relay(int oport, int wport, int reps, int maxtok, const char *model) {
    double *d = calloc((size_t)reps, sizeof *d), *o = calloc((size_t)reps, sizeof *o), *ov = calloc((size_t)reps, sizeof *ov);
    int *dt = calloc((size_t)reps, sizeof *dt), *ot = calloc((size_t)reps, sizeof *ot);
    char wbody[256], obody[256], resp[4096], id[96], path[160];
    snprintf(obody, sizeof obody, "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":%d,\"temperature\":0,\"seed\":1}",
             model, maxtok);
    int errs = 0;
    for (int r = -1; r < reps; r++) { /* r = -1: untimed warm-up of both paths */
        uint64_t dl = now_ns() + 60ull * 1000000000ull;
        /* direct (the worker wants a job_id; the orchestrator sends its own) */
        snprintf(wbody, sizeof wbody, "{\"job_id\":\"bench-direct-%d\",\"prompt\":\"Once upon a time\",\"max_tokens\":%d,"
                 "\"temperature\":0,\"seed\":1}", r + 1, maxtok);
        struct sse s;
        memset(&s, 0, sizeof s);
        uint64_t t0 = now_ns();
        int fd = dial(wport);
        if (fd < 0 || send_req(fd, "POST", "/execute", wbody, 0) || sse_run(fd, &s, dl) || s.status != 200) errs++;
        uint64_t t1 = now_ns();
        if (fd >= 0) close(fd);
        if (r >= 0) { d[r] = (double)(t1 - t0); dt[r] = s.tokens; }
        /* through the orchestrator */
        memset(&s, 0, sizeof s);
        t0 = now_ns();
        int st = http(oport, "POST", "/v2/tasks", obody, resp, sizeof resp);
        if (st != 202 || json_str(resp, "job_id", id, sizeof id)) { errs++; fprintf(stderr, "relay submit %d %s\n", st, resp); continue; }
        snprintf(path, sizeof path, "/v2/tasks/%s/events", id);
        fd = dial(oport);
        if (fd < 0 || send_req(fd, "GET", path, NULL, 0) || sse_run(fd, &s, dl) || s.status != 200 ||
            strcmp(s.last, "end") != 0) { errs++; fprintf(stderr, "relay stream: last=%s status=%d\n", s.last, s.status); }
        t1 = now_ns();
        if (fd >= 0) close(fd);
        if (r >= 0) { o[r] = (double)(t1 - t0); ot[r] = s.tokens; }
    }
    double *dts = calloc((size_t)reps, sizeof *dts), *ots = calloc((size_t)reps, sizeof *ots);
    for (int r = 0; r < reps; r++) {
        dts[r] = dt[r] / (d[r] / 1e9);
        ots[r] = ot[r] / (o[r] / 1e9);
        ov[r] = ot[r] ? (o[r] - d[r]) / 1e3 / ot[r] : 0; /* paired: rep r direct vs rep r orchestrated */
        printf("rep %d: direct %d tok %.1f ms %.0f tok/s | orch %d tok %.1f ms %.0f tok/s | overhead %.1f us/token\n", r, dt[r],
               d[r] / 1e6, dts[r], ot[r], o[r] / 1e6, ots[r], ov[r]);
    }
    summary("direct_tok_s", dts, reps, "tok/s");
    summary("orch_tok_s", ots, reps, "tok/s");
    summary("overhead_us_per_token", ov, reps, "us/token (paired reps)");
    printf("relay_errors=%d tokens_direct=%d tokens_orch=%d\n", errs, dt[0], ot[0]);
    return errs ? 1 : 0;
}

/* ---- 1000 streams ------------------------------------------------------------- */
static void proc_mem(int pid, long *rss_kb, long *threads) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    FILE *f = fopen(p, "r");
    *rss_kb = *threads = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) *rss_kb = atol(line + 6);
        if (strncmp(line, "Threads:", 8) == 0) *threads = atol(line + 8);
    }
    if (f) fclose(f);
}
static int drain(struct pollfd *pf, struct sse *s, int n, int want_terminal, uint64_t deadline, int *eof_early) {
    char b[16384];
    for (;;) {
        int pending = 0;
        for (int i = 0; i < n; i++)
            if (pf[i].fd >= 0 && !(want_terminal ? s[i].terminal : s[i].queued)) pending++;
        if (!pending || now_ns() >= deadline) return pending;
        if (poll(pf, (nfds_t)n, 200) < 0 && errno != EINTR) return -1;
        for (int i = 0; i < n; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t k = recv(pf[i].fd, b, sizeof b, MSG_DONTWAIT);
            if (k > 0) sse_feed(&s[i], b, (size_t)k);
            else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                if (!s[i].terminal) (*eof_early)++;
                close(pf[i].fd);
                pf[i].fd = -1;
            }
        }
    }
}
static int cmd_streams(int port, int pid, int n, const char *model, int hold_s) {
    char (*ids)[64] = calloc((size_t)n, sizeof *ids);
    struct sse *s = calloc((size_t)n, sizeof *s);
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    char body[256], resp[4096], path[160];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"temperature\":0}", model);
    int errs = 0, eof_early = 0;
    double *adm = calloc((size_t)n, sizeof *adm);
    int nadm = 0;
    for (int i = 0; i < n; i++) { /* admission again, now with the queue growing 0 -> n (nothing dispatchable) */
        uint64_t a0 = now_ns();
        int st = http(port, "POST", "/v2/tasks", body, resp, sizeof resp);
        double us = (double)(now_ns() - a0) / 1e3;
        if (st != 202 || json_str(resp, "job_id", ids[i], sizeof ids[i])) { errs++; fprintf(stderr, "submit %d: %d %s\n", i, st, resp); }
        else adm[nadm++] = us;
    }
    if (nadm) summary("admission_growing_queue_us", adm, nadm, "us (queue 0 -> N waiting jobs)");
    free(adm);
    long rss0, th0, rss1, th1, rss2, th2;
    sleep(1);
    proc_mem(pid, &rss0, &th0);
    uint64_t t0 = now_ns();
    int opened = 0;
    for (int i = 0; i < n; i++) {
        pf[i].fd = -1;
        if (!ids[i][0]) continue;
        int fd = dial(port);
        snprintf(path, sizeof path, "/v2/tasks/%s/events", ids[i]);
        if (fd < 0 || send_req(fd, "GET", path, NULL, 1)) { errs++; if (fd >= 0) close(fd); continue; }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        pf[i].fd = fd;
        pf[i].events = POLLIN;
        opened++;
    }
    int pend = drain(pf, s, n, 0, now_ns() + 60ull * 1000000000ull, &eof_early);
    double t_all = (double)(now_ns() - t0) / 1e6;
    int live = 0, non200 = 0;
    for (int i = 0; i < n; i++) {
        if (pf[i].fd >= 0 && s[i].queued) live++;
        if (s[i].hdr && s[i].status != 200) non200++;
    }
    printf("streams: opened=%d with_queued_event=%d missing=%d non200=%d closed_early=%d in %.0f ms\n", opened, live, pend,
           non200, eof_early, t_all);
    uint64_t hold_end = now_ns() + (uint64_t)hold_s * 1000000000ull;
    while (now_ns() < hold_end) { /* keep reading while holding (nothing should arrive, nothing should close) */
        drain(pf, s, n, 1, now_ns() + 1000000000ull, &eof_early);
    }
    proc_mem(pid, &rss1, &th1);
    int still = 0;
    for (int i = 0; i < n; i++) still += pf[i].fd >= 0;
    printf("held %d s: still_open=%d closed_early=%d\n", hold_s, still, eof_early);
    printf("orchestratord before streams: VmRSS=%ld kB Threads=%ld; with %d streams: VmRSS=%ld kB Threads=%ld; "
           "per stream=%.0f bytes\n", rss0, th0, still, rss1, th1, still ? (double)(rss1 - rss0) * 1024.0 / still : 0.0);
    /* cancel every job: every stream must get its terminal event */
    t0 = now_ns();
    int cancel_bad = 0;
    double *del = calloc((size_t)n, sizeof *del);
    int ndel = 0;
    for (int i = 0; i < n; i++) {
        if (!ids[i][0]) continue;
        snprintf(path, sizeof path, "/v2/tasks/%s", ids[i]);
        uint64_t a0 = now_ns();
        int st = http(port, "DELETE", path, NULL, NULL, 0);
        del[ndel++] = (double)(now_ns() - a0) / 1e3;
        if (st < 200 || st >= 300) cancel_bad++;
    }
    if (ndel) summary("cancel_queued_us", del, ndel, "us (DELETE of a queued job, queue N -> 0, its stream open)");
    free(del);
    pend = drain(pf, s, n, 1, now_ns() + 60ull * 1000000000ull, &eof_early);
    int term = 0, cancelled = 0;
    for (int i = 0; i < n; i++) {
        term += s[i].terminal;
        cancelled += s[i].terminal && strcmp(s[i].last, "error") == 0;
        if (pf[i].fd >= 0) close(pf[i].fd);
    }
    proc_mem(pid, &rss2, &th2);
    printf("cancel: DELETE failures=%d terminal_events=%d/%d (error CANCELLED=%d) pending=%d in %.0f ms; after: VmRSS=%ld kB Threads=%ld\n",
           cancel_bad, term, n, cancelled, pend, (double)(now_ns() - t0) / 1e6, rss2, th2);
    int total = errs + non200 + eof_early + cancel_bad + (n - term);
    printf("stream_errors=%d\n", total);
    return total ? 1 : 0;
}

static int cmd_fanout(int port, int pid, int wpid, int n, int maxtok, const char *model) {
    struct sse *s = calloc((size_t)n, sizeof *s);
    struct pollfd *pf = calloc((size_t)n, sizeof *pf);
    char body[256], resp[4096], id[96], path[160];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"max_tokens\":%d,\"temperature\":0,\"seed\":1}",
             model, maxtok);
    long rss0, th0, rss1, th1;
    proc_mem(pid, &rss0, &th0);
    if (wpid <= 1 || kill(wpid, SIGSTOP)) { fprintf(stderr, "bad worker pid %d\n", wpid); return 1; }
    int st = http(port, "POST", "/v2/tasks", body, resp, sizeof resp);
    if (st != 202 || json_str(resp, "job_id", id, sizeof id)) { kill(wpid, SIGCONT); fprintf(stderr, "submit %d %s\n", st, resp); return 1; }
    snprintf(path, sizeof path, "/v2/tasks/%s/events", id);
    int errs = 0, eof_early = 0, opened = 0;
    for (int i = 0; i < n; i++) {
        int fd = dial(port);
        pf[i].fd = -1;
        if (fd < 0 || send_req(fd, "GET", path, NULL, 1)) { errs++; if (fd >= 0) close(fd); continue; }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        pf[i].fd = fd;
        pf[i].events = POLLIN;
        opened++;
    }
    int pend = drain(pf, s, n, 0, now_ns() + 30ull * 1000000000ull, &eof_early); /* everyone has `queued` */
    usleep(500000);
    proc_mem(pid, &rss1, &th1);
    uint64_t t0 = now_ns();
    kill(wpid, SIGCONT);
    pend = drain(pf, s, n, 1, now_ns() + 120ull * 1000000000ull, &eof_early);
    double ms = (double)(now_ns() - t0) / 1e6;
    int ends = 0, full = 0, tmin = 1 << 30, tmax = 0;
    for (int i = 0; i < n; i++) {
        ends += s[i].terminal && strcmp(s[i].last, "end") == 0;
        if (s[i].tokens < tmin) tmin = s[i].tokens;
        if (s[i].tokens > tmax) tmax = s[i].tokens;
        if (pf[i].fd >= 0) close(pf[i].fd);
    }
    for (int i = 0; i < n; i++) full += s[i].tokens == tmax;
    printf("fanout: %d clients on one job: opened=%d end=%d tokens min=%d max=%d (all %d: %d clients) pending=%d "
           "closed_early=%d; worker resumed -> last end %.0f ms\n", n, opened, ends, tmin, tmax, tmax, full, pend, eof_early, ms);
    printf("orchestratord before: VmRSS=%ld kB Threads=%ld; %d clients attached: VmRSS=%ld kB Threads=%ld; per stream=%.0f bytes\n",
           rss0, th0, opened, rss1, th1, opened ? (double)(rss1 - rss0) * 1024.0 / opened : 0.0);
    int total = errs + (n - ends) + (n - full) + eof_early;
    printf("fanout_errors=%d\n", total);
    return total ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "setup")) return cmd_setup(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argv[5]);
    if (argc >= 7 && !strcmp(argv[1], "pool")) return cmd_pool(atoi(argv[2]), argv[3], argv[4], argv[5], argv[6]);
    if (argc >= 5 && !strcmp(argv[1], "admit")) return cmd_admit(atoi(argv[2]), atoi(argv[3]), argv[4]);
    if (argc >= 7 && !strcmp(argv[1], "relay"))
        return cmd_relay(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), argv[6]);
    if (argc >= 7 && !strcmp(argv[1], "streams"))
        return cmd_streams(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), argv[5], atoi(argv[6]));
    if (argc >= 8 && !strcmp(argv[1], "fanout"))
        return cmd_fanout(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), argv[7]);
    fprintf(stderr, "usage: see the header of bench/bench_orch_load.c\n");
    return 2;
}
