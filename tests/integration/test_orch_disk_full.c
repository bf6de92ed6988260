// test-libs: llorch_net llorch_core PkgConfig::JANSSON PkgConfig::SQLITE PkgConfig::MHD
/* orchestratord on a full disk, for real: its state file lives on a tmpfs of
 * 512 KiB mounted for this test at DIR_/state (a real file system that
 * really fills; no double; the logs stay outside it), and jobs with ~3 KB
 * prompts are submitted until it is full:
 *   - the first refusal is 507 INSUFFICIENT_STORAGE saying the state disk
 *     is full (not 500 INTERNAL), and it comes before 400 submissions;
 *   - the orchestrator keeps serving: an accepted job is still readable,
 *     /metrics answers, the next submission is refused the same way;
 *   - a job that ends while the disk is full (a queued one cancelled, with
 *     a filler file taking the last free bytes) ends for its client at
 *     once, and its row, left queued by the refused write, reads
 *     "cancelled" within seconds of space being freed (the orchestrator
 *     writes the finish again: a row left queued would run again after a
 *     restart);
 *   - once space is freed (the tmpfs grown to 8 MiB) a submission is
 *     accepted again and recorded in the state file.
 * Mounting needs CAP_SYS_ADMIN: without it the program says why and exits
 * 77, which CTest reports as skipped (never as passed). */
#include "test_orch_util.h"

#include <sys/mount.h>

static int g_mounted;
static char g_mnt[140];

/* a tmpfs of `bytes` at g_mnt (remount when already mounted); 0 or -errno */
static int mount_tmpfs(long bytes) {
    char opts[64];
    snprintf(opts, sizeof opts, "size=%ld,mode=0700", bytes);
    unsigned long flags = g_mounted ? MS_REMOUNT : 0;
    if (mount("tmpfs", g_mnt, "tmpfs", flags, opts) != 0) return -errno;
    g_mounted = 1;
    return 0;
}

/* fills the file system of path with a file there until it refuses
 * (ENOSPC): what little the state file could still grow into goes */
static void fill(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    assert_true(fd >= 0);
    static char blk[4096];
    for (size_t n = sizeof blk; n >= 1; n /= 2)
        while (write(fd, blk, n) == (ssize_t)n) {
        }
    close(fd);
}

static long submit_prompt(const char *base, int i, char **resp) {
    char body[3400];
    int n = snprintf(body, sizeof body, "{\"model\":\"stories\",\"max_tokens\":2,\"prompt\":\"job %d ", i);
    for (; n < 3300; n++) body[n] = (char)('a' + n % 26);
    snprintf(body + n, sizeof body - (size_t)n, "\"}");
    return req("POST", base, "/v2/tasks", body, resp);
}

static void test_state_disk_full(void **s) {
    (void)s;
    if (!have_bins(0)) skip();
    assert_int_equal(mount_tmpfs(512 << 10), 0);
    write_config(8192, "1GB", NULL);
    struct proc o;
    assert_int_equal(start_orch(&o, "orch.log", (const char *const[]){ "--queue-capacity", "-1", NULL }), 0);
    /* no pool: every accepted job stays queued, its row and body in the store */
    char *first = NULL, *resp = NULL, *ids[400] = { NULL };
    long st = 0;
    int i = 0;
    for (; i < 400; i++) {
        free(resp);
        resp = NULL;
        st = submit_prompt(o.base, i, &resp);
        if (st != 202) break;
        ids[i] = jstr(resp, "job_id");
        if (!first) first = jstr(resp, "job_id");
    }
    print_message("the state disk filled after %d accepted jobs\n", i);
    if (st != 507) { dump(&o); fail_msg("submission %d: status %ld (%s), not 507", i, st, resp ? resp : ""); }
    assert_true(i > 0);
    json_t *j = json_loads(resp, 0, NULL);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "INSUFFICIENT_STORAGE");
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "state disk is full"));
    json_decref(j);
    free(resp);
    resp = NULL;
    /* still serving */
    char path[128];
    snprintf(path, sizeof path, "/v2/tasks/%s", first);
    assert_int_equal(req("GET", o.base, path, NULL, NULL), 200);
    assert_int_equal(req("GET", o.base, "/metrics", NULL, NULL), 200);
    assert_int_equal(submit_prompt(o.base, i + 1, NULL), 507);
    /* a finish the disk refuses: the last accepted job cancelled with the
     * disk filled to the byte. The orchestrator's WAL checkpoint (every 10
     * s) frees space; should one land between the filling and the cancel,
     * the write goes through: then the next job is tried */
    char filler[160], *cancelled = NULL;
    snprintf(filler, sizeof filler, "%s/filler", g_mnt);
    for (int k = i - 1; k >= 1 && !cancelled; k--) {
        fill(filler);
        char cp[128];
        snprintf(cp, sizeof cp, "/v2/tasks/%s", ids[k]);
        assert_int_equal(req("DELETE", o.base, cp, NULL, &resp), 202);
        char *js = jstr(resp, "status");
        assert_string_equal(js, "cancelled"); /* ended for its client at once */
        free(js);
        free(resp);
        resp = NULL;
        char *rs = row_str("status", ids[k]);
        if (rs && !strcmp(rs, "queued")) cancelled = ids[k];
        else print_message("the cancel of %s was written (%s): the disk had room, trying another job\n", ids[k],
                           rs ? rs : "no row");
        free(rs);
    }
    if (!cancelled) { dump(&o); fail_msg("no finish was refused by the full disk"); }
    /* space freed: the finish is written again, ... */
    assert_int_equal(mount_tmpfs(8 << 20), 0);
    char *rs = NULL;
    for (int t = 0; t < 100; t++) {
        free(rs);
        rs = row_str("status", cancelled);
        if (rs && !strcmp(rs, "cancelled")) break;
        usleep(100 * 1000);
    }
    if (!rs || strcmp(rs, "cancelled")) { dump(&o); fail_msg("the row of %s reads %s 10 s after space was freed", cancelled, rs ? rs : "nothing"); }
    free(rs);
    /* ... and submissions are accepted again, and recorded */
    assert_int_equal(submit_prompt(o.base, i + 2, &resp), 202);
    char *id = jstr(resp, "job_id");
    assert_non_null(id);
    char q[200];
    snprintf(q, sizeof q, "SELECT COUNT(*) FROM jobs WHERE id = '%s'", id);
    assert_int_equal(q1(q), 1);
    free(id);
    free(resp);
    free(first);
    for (int k = 0; k < 400; k++) free(ids[k]);
    stop(&o, SIGTERM);
}

static int setup(void **s) {
    (void)s;
    if (orch_util_setup("orch-diskfull") != 0) return -1;
    snprintf(g_mnt, sizeof g_mnt, "%s/state", DIR_);
    snprintf(DB, sizeof DB, "%s/state.db", g_mnt);
    return mkdir(g_mnt, 0700);
}
static int teardown(void **s) {
    (void)s;
    reap_all();
    if (g_mounted && umount2(g_mnt, MNT_DETACH) != 0) print_message("umount %s: %s\n", g_mnt, strerror(errno));
    g_mounted = 0;
    return orch_util_teardown();
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    /* can this process mount? (a probe on a scratch directory of its own) */
    char probe[] = "/tmp/llorch-mount-probe-XXXXXX";
    if (!mkdtemp(probe)) return 1;
    int ok = mount("tmpfs", probe, "tmpfs", 0, "size=64k") == 0;
    int why = errno;
    if (ok) umount2(probe, MNT_DETACH);
    rmdir(probe);
    if (!ok) {
        fprintf(stderr, "test_orch_disk_full: cannot mount a tmpfs here (%s): skipped\n", strerror(why));
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
