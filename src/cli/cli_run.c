/* llorch run — submit one task to the orchestrator and stream its text.
 *
 *   llorch run MODEL "prompt" [--max-tokens N] [--temperature T] [--top-p P] [--top-k K]
 *              [--seed S] [--stop STR]... [--priority interactive|batch] [--timeout-ms MS]
 *              [--url URL] [--quiet]
 *
 * POST /v2/tasks, then GET /v2/tasks/{id}/events (SSE): token text goes to
 * stdout as it arrives (then one newline, like `llorch generate`), a summary
 * to stderr at the end. A stream that breaks before its terminal event is
 * resumed with Last-Event-ID (the orchestrator replays with no gap and no
 * duplicate). Ctrl-C (SIGINT/SIGTERM) sends DELETE /v2/tasks/{id}, waits for
 * the CANCELLED event (at most ~7 s) and exits 130; a second Ctrl-C exits at
 * once. Exit codes: 0 end event, 1 error event / refused task / unreachable
 * orchestrator, 2 usage, 130 cancelled.
 *
 * Threads: the stream is read on its own thread; the main thread owns the
 * signals (blocked everywhere, taken with sigtimedwait) and the cancel.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_http.h"
#include "common/util.h"

int cli_run(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: llorch run MODEL PROMPT [options]     (PROMPT '-' reads stdin)\n"
            "  --max-tokens N        tokens to generate (default: the orchestrator's)\n"
            "  --temperature T       0 = greedy (default 1.0)\n"
            "  --top-p P, --top-k K, --min-p P, --repetition-penalty R\n"
            "  --seed S              sampling seed (0 .. 2^64-1)\n"
            "  --stop STR            stop string (repeatable, at most 4)\n"
            "  --priority P          interactive (default) | batch\n"
            "  --timeout-ms MS       job deadline\n"
            "  --url URL             orchestrator (default $LLORCH_ORCH_URL or %s)\n"
            "  -q, --quiet           no summary on stderr\n"
            "Bearer token: $LLORCH_TOKEN. Ctrl-C cancels the task (exit 130).\n",
            CLI_DEFAULT_ORCH_URL);
}

struct run_state {
    char base[1024];
    char job_id[64];
    char last_id[32];          /* last SSE id seen, for Last-Event-ID */
    int terminal;              /* 1 end, 2 error */
    atomic_int started;        /* a started event was seen */
    atomic_llong queue_pos;    /* from the queued event (-1: none yet) */
    int printed;               /* any text written */
    int64_t tokens_in, tokens_out;
    double decode_ms, first_ms;
    char stop_reason[32];
    char err_code[64];
    char err_msg[512];
    char fail[512];            /* a transport/HTTP failure of the stream itself */
    uint64_t t0_ns;
    atomic_int done;
    atomic_int cancelling;
};

static int on_event(void *user, const sse_event *ev) {
    struct run_state *s = user;
    if (ev->id && *ev->id) snprintf(s->last_id, sizeof s->last_id, "%s", ev->id);
    json_t *d = json_loadb(ev->data, ev->data_len, 0, NULL);
    int stop = 0;
    if (!strcmp(ev->event, "queued")) {
        json_t *qp = json_object_get(d, "queue_position");
        if (json_is_integer(qp)) atomic_store(&s->queue_pos, (long long)json_integer_value(qp));
    } else if (!strcmp(ev->event, "started")) {
        atomic_store(&s->started, 1);
    } else if (!strcmp(ev->event, "token")) {
        const char *t = json_string_value(json_object_get(d, "t"));
        if (t && *t) {
            fputs(t, stdout);
            fflush(stdout);
            s->printed = 1;
        }
    } else if (!strcmp(ev->event, "end")) {
        s->terminal = 1;
        s->tokens_in = json_integer_value(json_object_get(d, "tokens_in"));
        s->tokens_out = json_integer_value(json_object_get(d, "tokens_out"));
        s->decode_ms = json_number_value(json_object_get(d, "decode_time_ms"));
        s->first_ms = json_number_value(json_object_get(d, "first_token_ms"));
        const char *sr = json_string_value(json_object_get(d, "stop_reason"));
        snprintf(s->stop_reason, sizeof s->stop_reason, "%s", sr ? sr : "?");
        stop = 1;
    } else if (!strcmp(ev->event, "error")) {
        s->terminal = 2;
        const char *c = json_string_value(json_object_get(d, "code"));
        const char *m = json_string_value(json_object_get(d, "message"));
        snprintf(s->err_code, sizeof s->err_code, "%s", c ? c : "INTERNAL");
        snprintf(s->err_msg, sizeof s->err_msg, "%s", m ? m : "");
        stop = 1;
    }
    json_decref(d);
    return stop;
}

static void *stream_thread(void *arg) {
    struct run_state *s = arg;
    char url[1400], auth[600], lei[64];
    const char *hdrs[3];
    snprintf(url, sizeof url, "%s/v2/tasks/%s/events", s->base, s->job_id);
    for (int attempt = 0; attempt < 6 && !s->terminal; attempt++) {
        if (attempt) {
            struct timespec ts = { 0, 500 * 1000000L * (attempt < 4 ? attempt : 4) };
            nanosleep(&ts, NULL);
        }
        if (s->last_id[0]) snprintf(lei, sizeof lei, "Last-Event-ID: %s", s->last_id);
        cli_headers(s->last_id[0] ? lei : NULL, auth, hdrs);
        /* no whole-transfer timeout (jobs may queue); the orchestrator sends a
         * keep-alive comment every 15 s, so 60 s of silence means a dead link */
        http_client_req rq = { .url = url, .headers = hdrs, .connect_timeout_ms = 3000, .idle_timeout_ms = 60000 };
        http_resp r;
        char e2[256] = "";
        int rc = http_client_sse(&rq, on_event, s, &r, e2, sizeof e2);
        if (s->terminal) { http_resp_free(&r); break; }
        if (rc == 0 && (r.status < 200 || r.status >= 300)) { /* refused: no point retrying */
            json_t *b = r.len ? json_loadb(r.body, r.len, 0, NULL) : NULL;
            json_t *e = json_object_get(b, "error");
            const char *c = json_string_value(json_object_get(e, "code"));
            const char *m = json_string_value(json_object_get(e, "message"));
            snprintf(s->fail, sizeof s->fail, "events: %s%s%s (HTTP %ld)", c ? c : "", c ? ": " : "",
                     m ? m : r.body, r.status);
            json_decref(b);
            http_resp_free(&r);
            break;
        }
        snprintf(s->fail, sizeof s->fail, "event stream ended before the job did (%s)",
                 rc < 0 ? (e2[0] ? e2 : "transport error") : "closed");
        http_resp_free(&r);
    }
    atomic_store(&s->done, 1);
    return NULL;
}

static int read_stdin(char **out) {
    struct util_sb sb;
    util_sb_init(&sb);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) util_sb_putn(&sb, buf, n);
    if (sb.oom) { util_sb_free(&sb); return -1; }
    *out = sb.buf ? sb.buf : strdup("");
    return *out ? 0 : -1;
}

/* DELETE the task; prints what the orchestrator said */
static void cancel_task(struct run_state *s) {
    char path[128], err[512];
    long st;
    json_t *b = NULL;
    snprintf(path, sizeof path, "/v2/tasks/%s", s->job_id);
    if (cli_request("DELETE", s->base, path, NULL, &st, &b, NULL, err, sizeof err) < 0)
        fprintf(stderr, "\nllorch run: cancel failed: %s\n", err);
    else if (st != 202 && st != 200)
        cli_print_error("run", st, b, NULL);
    else
        fprintf(stderr, "\nllorch run: cancelling job %s\n", s->job_id);
    json_decref(b);
}

int cli_run(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *url = NULL, *prio = NULL;
    const char *stops[8];
    int nstop = 0, quiet = 0;
    long long max_tokens = -1, top_k = -1, timeout_ms = -1;
    double temp = -1, top_p = -1, min_p = -1, rep = -1;
    const char *seed = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
        if (a[0] == '-' && a[1] == '-') {
            if (i + 1 >= argc) { fprintf(stderr, "llorch run: %s needs a value\n", a); return 2; }
            const char *v = argv[++i];
            int bad = 0;
            if (!strcmp(a, "--max-tokens")) bad = cli_parse_long(v, &max_tokens) || max_tokens < 1;
            else if (!strcmp(a, "--temperature")) bad = cli_parse_double(v, &temp) || temp < 0;
            else if (!strcmp(a, "--top-p")) bad = cli_parse_double(v, &top_p) || top_p < 0;
            else if (!strcmp(a, "--min-p")) bad = cli_parse_double(v, &min_p) || min_p < 0;
            else if (!strcmp(a, "--repetition-penalty")) bad = cli_parse_double(v, &rep) || rep <= 0;
            else if (!strcmp(a, "--top-k")) bad = cli_parse_long(v, &top_k) || top_k < 0;
            else if (!strcmp(a, "--timeout-ms")) bad = cli_parse_long(v, &timeout_ms) || timeout_ms < 1;
            else if (!strcmp(a, "--seed")) {
                char *end;
                errno = 0;
                (void)strtoull(v, &end, 10);
                bad = errno || *end || !*v || v[0] == '-';
                seed = v;
            } else if (!strcmp(a, "--stop")) {
                if (nstop >= 8) bad = 1;
                else stops[nstop++] = v;
            } else if (!strcmp(a, "--priority")) {
                bad = strcmp(v, "interactive") && strcmp(v, "batch");
                prio = v;
            } else if (!strcmp(a, "--url")) url = v;
            else { fprintf(stderr, "llorch run: unknown option %s\n", a); usage(stderr); return 2; }
            if (bad) { fprintf(stderr, "llorch run: bad value for %s: '%s'\n", a, v); return 2; }
        } else if (!model) model = a;
        else if (!prompt) prompt = a;
        else { fprintf(stderr, "llorch run: unexpected argument '%s'\n", a); usage(stderr); return 2; }
    }
    if (!model || !prompt) { usage(stderr); return 2; }

    struct run_state *s = calloc(1, sizeof *s);
    char *stdin_prompt = NULL;
    if (!s) return 1;
    cli_endpoint(url, "LLORCH_ORCH_URL", CLI_DEFAULT_ORCH_URL, s->base, sizeof s->base);
    if (!strcmp(prompt, "-")) {
        if (read_stdin(&stdin_prompt) < 0) { fprintf(stderr, "llorch run: cannot read stdin\n"); free(s); return 1; }
        prompt = stdin_prompt;
    }

    /* the task */
    json_t *t = json_object();
    json_object_set_new(t, "model", json_string(model));
    json_object_set_new(t, "prompt", json_string(prompt));
    if (!json_object_get(t, "prompt")) {
        fprintf(stderr, "llorch run: the prompt is not valid UTF-8\n");
        json_decref(t);
        free(stdin_prompt);
        free(s);
        return 2;
    }
    if (max_tokens > 0) json_object_set_new(t, "max_tokens", json_integer(max_tokens));
    if (temp >= 0) json_object_set_new(t, "temperature", json_real(temp));
    if (top_p >= 0) json_object_set_new(t, "top_p", json_real(top_p));
    if (min_p >= 0) json_object_set_new(t, "min_p", json_real(min_p));
    if (rep > 0) json_object_set_new(t, "repetition_penalty", json_real(rep));
    if (top_k >= 0) json_object_set_new(t, "top_k", json_integer(top_k));
    if (timeout_ms > 0) json_object_set_new(t, "timeout_ms", json_integer(timeout_ms));
    if (prio) json_object_set_new(t, "priority", json_string(prio));
    if (seed) {
        unsigned long long sv = strtoull(seed, NULL, 10);
        json_object_set_new(t, "seed", sv <= INT64_MAX ? json_integer((json_int_t)sv) : json_string(seed));
    }
    if (nstop) {
        json_t *arr = json_array();
        for (int i = 0; i < nstop; i++) json_array_append_new(arr, json_string(stops[i]));
        json_object_set_new(t, "stop", arr);
    }
    char *body = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    free(stdin_prompt);
    if (!body) { free(s); return 1; }

    /* signals: blocked in every thread, taken by the main thread below */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* kept blocked until exit: a late Ctrl-C must not kill us mid-summary */

    int ret = 1;
    long st;
    json_t *resp = NULL;
    char *raw = NULL, err[1024];
    s->t0_ns = util_now_ns();
    int rc = cli_request("POST", s->base, "/v2/tasks", body, &st, &resp, &raw, err, sizeof err);
    free(body);
    if (rc < 0) {
        fprintf(stderr, "llorch run: cannot reach the orchestrator: %s\n", err);
        goto out;
    }
    const char *jid = json_string_value(json_object_get(resp, "job_id"));
    if (st != 202 || !jid || strlen(jid) >= sizeof s->job_id) {
        cli_print_error("run", st, resp, raw);
        goto out;
    }
    snprintf(s->job_id, sizeof s->job_id, "%s", jid);
    atomic_store(&s->queue_pos, -1);

    pthread_t th;
    if (pthread_create(&th, NULL, stream_thread, s) != 0) {
        fprintf(stderr, "llorch run: cannot start a thread\n");
        goto out;
    }
    int nsig = 0, said_waiting = 0;
    uint64_t cancel_ns = 0;
    while (!atomic_load(&s->done)) {
        struct timespec ts = { 0, 50 * 1000000L };
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig > 0) {
            if (++nsig >= 2) {
                fprintf(stderr, "llorch run: interrupted again; leaving without waiting (job %s)\n", s->job_id);
                ret = 130;
                pthread_detach(th);
                goto out_nojoin;
            }
            atomic_store(&s->cancelling, 1);
            cancel_task(s);
            cancel_ns = util_now_ns();
        }
        /* a job still waiting after 2 s: say so once, so a silent screen is explained */
        if (!quiet && !said_waiting && !cancel_ns && !atomic_load(&s->started) &&
            util_now_ns() - s->t0_ns > 2000000000ull) {
            long long qp = atomic_load(&s->queue_pos);
            if (qp >= 0) fprintf(stderr, "[job %s has not started yet (queue position %lld at submission)]\n", s->job_id, qp);
            else fprintf(stderr, "[job %s has not started yet]\n", s->job_id);
            said_waiting = 1;
        }
        if (cancel_ns && util_now_ns() - cancel_ns > 7000000000ull) {
            fprintf(stderr, "llorch run: no CANCELLED event after 7 s; leaving (job %s)\n", s->job_id);
            ret = 130;
            pthread_detach(th);
            goto out_nojoin;
        }
    }
    pthread_join(th, NULL);
    if (s->printed || s->terminal == 1) fputc('\n', stdout);
    fflush(stdout);
    double wall = (double)(util_now_ns() - s->t0_ns) / 1e9;
    if (s->terminal == 1) {
        ret = 0;
        if (!quiet) {
            double tps = s->decode_ms > 0 ? (double)s->tokens_out * 1000.0 / s->decode_ms : 0;
            fprintf(stderr, "[%lld tokens, %.1f tokens/s, first token %.0f ms, %.2f s total, stop: %s, job %s]\n",
                    (long long)s->tokens_out, tps, s->first_ms, wall, s->stop_reason, s->job_id);
        }
    } else if (s->terminal == 2) {
        if (atomic_load(&s->cancelling) && !strcmp(s->err_code, "CANCELLED")) {
            fprintf(stderr, "[cancelled, job %s]\n", s->job_id);
            ret = 130;
        } else {
            fprintf(stderr, "llorch run: %s: %s (job %s)\n", s->err_code, s->err_msg, s->job_id);
            ret = atomic_load(&s->cancelling) ? 130 : 1;
        }
    } else {
        fprintf(stderr, "llorch run: %s (job %s)\n", s->fail[0] ? s->fail : "no terminal event", s->job_id);
        ret = atomic_load(&s->cancelling) ? 130 : 1;
    }
out:
    free(s);
out_nojoin: /* the stream thread may still use s: left to the process exit */
    json_decref(resp);
    free(raw);
    return ret;
}
