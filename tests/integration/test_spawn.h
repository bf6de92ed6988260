/* test_spawn — starting a service program (pool-managerd) from an
 * integration test so that it can never outlive the test, and watching the
 * children it started (ts_all_stopped): shared by test_orch_util.h and
 * test_pool_util.h.
 *
 * fork + execve (not posix_spawn) so that the child can ask for SIGTERM when
 * the test process dies: a failed assertion must not leave a pool running
 * (or ctest waiting on its pipes). Between fork and exec only
 * async-signal-safe calls. Header-only, static inline. */
#ifndef TEST_SPAWN_H
#define TEST_SPAWN_H

#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

/* starts bin with argv and envp (both NULL-terminated), its stdout and stderr
 * to the file log (appended; truncated first when trunc); the pid (asserts
 * that the log opens and fork works) */
static inline pid_t ts_spawn_logged(const char *bin, const char *const *argv, const char *const *envp,
                                    const char *log, int trunc) {
    int logfd = open(log, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : O_APPEND) | O_CLOEXEC, 0644);
    assert_true(logfd >= 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(127);
        dup2(logfd, 1);
        dup2(logfd, 2);
        execve(bin, (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    close(logfd);
    return pid;
}

/* argv[cap] for pool-managerd (bin) on an ephemeral loopback port, writing
 * that port to portf, its cache in cache, then the NULL-terminated lists a
 * and b (either may be NULL; cut at cap - 2 entries), NULL-terminated */
static inline void ts_pool_argv(const char **argv, int cap, const char *bin, const char *portf, const char *cache,
                                const char *const *a, const char *const *b) {
    int k = 0;
    argv[k++] = bin;
    argv[k++] = "--bind";
    argv[k++] = "127.0.0.1:0";
    argv[k++] = "--port-file";
    argv[k++] = portf;
    argv[k++] = "--cache-dir";
    argv[k++] = cache;
    for (int i = 0; a && a[i] && k < cap - 2; i++) argv[k++] = a[i];
    for (int i = 0; b && b[i] && k < cap - 2; i++) argv[k++] = b[i];
    argv[k] = NULL;
}

/* waits up to timeout_ms for the port the program writes to portf
 * (--port-file); if pid exits first, prints its log and fails the test
 * naming what; returns the port (asserts it came) */
static inline int ts_wait_port_file(const char *portf, pid_t pid, const char *log, const char *what, int timeout_ms) {
    int port = 0;
    for (uint64_t t0 = util_now_ns(); util_now_ns() - t0 < (uint64_t)timeout_ms * 1000000ull;) {
        FILE *f = fopen(portf, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
        if (port > 0) break;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            FILE *lf = fopen(log, "r");
            char line[2048];
            fprintf(stderr, "---- %s\n", log);
            while (lf && fgets(line, sizeof line, lf)) fputs(line, stderr);
            if (lf) fclose(lf);
            fail_msg("%s exited early (status %d)", what, st);
        }
        usleep(20000);
    }
    assert_true(port > 0);
    return port;
}

/* 1 when every thread of pid is stopped (or pid is gone): kill() only queues
 * SIGSTOP, and a thread woken by other means can run on until the group stop
 * reaches it. Reads /proc/<pid>/task/<tid>/stat: state T, t, Z or X. */
static inline int ts_all_stopped(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return 1; /* gone */
    int all = 1;
    struct dirent *e;
    while (all && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sp[384], buf[512];
        snprintf(sp, sizeof sp, "%s/%s/stat", path, e->d_name);
        FILE *f = fopen(sp, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *c = strrchr(buf, ')');
        if (c && c[1] == ' ' && c[2] != 'T' && c[2] != 't' && c[2] != 'Z' && c[2] != 'X') all = 0;
    }
    closedir(d);
    return all;
}

#endif
