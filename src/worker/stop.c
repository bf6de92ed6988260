/* stop — stop strings are matched on the decoded output text (SPEC §3.4),
 * never on token ids. Text is released to the client only once it can no
 * longer be the beginning of a stop string, so a stop string is never
 * emitted, even when its bytes arrive split over several tokens. */
#include <stdlib.h>
#include <string.h>

#include "worker/worker.h"

void wk_stop_init(wk_stop *s, const char *const *stops, int n) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < n && i < WK_MAX_STOPS; i++) {
        if (!stops[i] || !*stops[i]) continue;
        s->stops[s->n] = stops[i];
        s->lens[s->n] = strlen(stops[i]);
        s->n++;
    }
}

void wk_stop_free(wk_stop *s) {
    free(s->held);
    s->held = NULL;
    s->held_len = s->held_cap = 0;
}

static int hold(wk_stop *s, const char *t, size_t n) {
    if (s->held_len + n > s->held_cap) {
        size_t nc = s->held_cap ? s->held_cap : 64;
        while (nc < s->held_len + n) nc *= 2;
        char *nb = realloc(s->held, nc);
        if (!nb) return -1;
        s->held = nb;
        s->held_cap = nc;
    }
    memcpy(s->held + s->held_len, t, n);
    s->held_len += n;
    return 0;
}

int wk_stop_push(wk_stop *s, const char *text, size_t n, struct util_sb *out) {
    if (n == 0) return 0;
    if (s->n == 0) {
        util_sb_putn(out, text, n);
        return 0;
    }
    if (hold(s, text, n)) { /* OOM: degrade to no holding rather than lose text */
        util_sb_putn(out, s->held, s->held_len);
        util_sb_putn(out, text, n);
        s->held_len = 0;
        return 0;
    }
    /* earliest complete match */
    size_t best = (size_t)-1;
    for (int i = 0; i < s->n; i++) {
        const char *p = memmem(s->held, s->held_len, s->stops[i], s->lens[i]);
        if (p && (size_t)(p - s->held) < best) best = (size_t)(p - s->held);
    }
    if (best != (size_t)-1) {
        util_sb_putn(out, s->held, best);
        s->held_len = 0;
        return 1;
    }
    /* keep the longest suffix that is a proper prefix of some stop string */
    size_t keep = 0;
    for (int i = 0; i < s->n; i++) {
        size_t maxk = UTIL_MIN(s->lens[i] - 1, s->held_len);
        for (size_t k = maxk; k > keep; k--)
            if (memcmp(s->held + s->held_len - k, s->stops[i], k) == 0) {
                keep = k;
                break;
            }
    }
    size_t rel = s->held_len - keep;
    util_sb_putn(out, s->held, rel);
    memmove(s->held, s->held + rel, keep);
    s->held_len = keep;
    return 0;
}

void wk_stop_flush(wk_stop *s, struct util_sb *out) {
    if (s->held_len) util_sb_putn(out, s->held, s->held_len);
    s->held_len = 0;
}
