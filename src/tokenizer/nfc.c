/* nfc — Unicode Normalization Form C (UAX #15) for the hf-json NFC
 * normalizer: canonical decomposition (recursive; Hangul algorithmic),
 * canonical ordering by combining class, then canonical composition of
 * unblocked pairs. Text that passes the quick check (every code point
 * NFC_QC=Yes, combining classes in order) is returned as is without work.
 * Invalid UTF-8 bytes stay in place, unchanged, and block composition.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tokenizer/nfc.h"
#include "tokenizer/tok_internal.h"

#define SBASE 0xAC00u
#define LBASE 0x1100u
#define VBASE 0x1161u
#define TBASE 0x11A7u
#define LCOUNT 19u
#define VCOUNT 21u
#define TCOUNT 28u
#define NCOUNT (VCOUNT * TCOUNT)
#define SCOUNT (LCOUNT * NCOUNT)
#define RAW_BYTE 0x110000u /* RAW_BYTE + b: an invalid input byte kept as is */

static int ccc_of(uint32_t cp) {
    if (cp < 0x300) return 0;
    int lo = 0, hi = tok_nfc_n_ccc - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (cp < tok_nfc_ccc[m].first) hi = m - 1;
        else if (cp > tok_nfc_ccc[m].last) lo = m + 1;
        else return tok_nfc_ccc[m].ccc;
    }
    return 0;
}

static int qc_not_yes(uint32_t cp) {
    if (cp < 0x300) return 0;
    int lo = 0, hi = tok_nfc_n_qc - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (cp < tok_nfc_qc[m].first) hi = m - 1;
        else if (cp > tok_nfc_qc[m].last) lo = m + 1;
        else return 1;
    }
    return 0;
}

static const struct tok_nfc_dec *dec_of(uint32_t cp) {
    int lo = 0, hi = tok_nfc_n_dec - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (cp < tok_nfc_dec[m].cp) hi = m - 1;
        else if (cp > tok_nfc_dec[m].cp) lo = m + 1;
        else return &tok_nfc_dec[m];
    }
    return NULL;
}

static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = tok_nfc_n_comp - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        const struct tok_nfc_comp *c = &tok_nfc_comp[m];
        if (a < c->a || (a == c->a && b < c->b)) hi = m - 1;
        else if (a > c->a || b > c->b) lo = m + 1;
        else return c->composite;
    }
    return 0;
}

/* appends the full canonical decomposition of cp; depth is bounded by the data (<= 4) */
static size_t decompose(uint32_t cp, uint32_t *o) {
    if (cp >= SBASE && cp < SBASE + SCOUNT) {
        uint32_t s = cp - SBASE, t = s % TCOUNT;
        o[0] = LBASE + s / NCOUNT;
        o[1] = VBASE + (s % NCOUNT) / TCOUNT;
        if (!t) return 2;
        o[2] = TBASE + t;
        return 3;
    }
    const struct tok_nfc_dec *d = cp < 0xC0 ? NULL : dec_of(cp);
    if (!d) {
        o[0] = cp;
        return 1;
    }
    size_t n = decompose(d->a, o);
    if (d->b) n += decompose(d->b, o + n);
    return n;
}

int tok_nfc(const char *s, size_t n, char **out, size_t *olen) {
    *out = NULL;
    *olen = 0;
    const unsigned char *u = (const unsigned char *)s;
    /* quick check */
    size_t i = 0;
    int last = 0, need = 0;
    while (i < n && !need) {
        if (u[i] < 0x80) {
            last = 0;
            i++;
            continue;
        }
        uint32_t cp;
        int k = util_utf8_decode(s + i, n - i, &cp);
        if (!k) {
            last = 0;
            i++;
            continue;
        }
        int c = ccc_of(cp);
        if (qc_not_yes(cp) || (c && c < last)) need = 1;
        last = c;
        i += (size_t)k;
    }
    if (!need) return 1;

    /* decompose: 2 code points per input byte is always enough (a 1-byte
     * character or an invalid byte gives 1; the densest full decompositions
     * are 3 code points from a 2-byte character, e.g. U+01D5, and 4 from a
     * 3-byte one, e.g. U+1F82; Hangul 3 from 3 bytes: at most 1.5 per byte) */
    uint32_t *cps = malloc(sizeof *cps * (n * 2 + 4));
    if (!cps) return -ENOMEM;
    size_t m = 0;
    for (i = 0; i < n;) {
        uint32_t cp;
        int k = util_utf8_decode(s + i, n - i, &cp);
        if (!k) {
            cps[m++] = RAW_BYTE + u[i];
            i++;
            continue;
        }
        m += decompose(cp, cps + m);
        i += (size_t)k;
    }
    /* canonical ordering: stable insertion sort of each run of non-starters */
    for (size_t a = 0; a < m;) {
        if (cps[a] >= RAW_BYTE || !ccc_of(cps[a])) {
            a++;
            continue;
        }
        size_t b = a;
        while (b < m && cps[b] < RAW_BYTE && ccc_of(cps[b])) b++;
        for (size_t x = a + 1; x < b; x++) {
            uint32_t c = cps[x];
            int cc = ccc_of(c);
            size_t y = x;
            while (y > a && ccc_of(cps[y - 1]) > cc) {
                cps[y] = cps[y - 1];
                y--;
            }
            cps[y] = c;
        }
        a = b;
    }
    /* composition */
    size_t w = 0;
    ptrdiff_t starter = -1;
    int last_cc = 0;
    for (size_t r = 0; r < m; r++) {
        uint32_t c = cps[r];
        if (c >= RAW_BYTE) {
            cps[w++] = c;
            starter = -1;
            continue;
        }
        int cc = ccc_of(c);
        if (starter >= 0) {
            int adjacent = (ptrdiff_t)w - 1 == starter;
            if (adjacent || (last_cc != 0 && last_cc < cc)) {
                uint32_t p = compose(cps[starter], c);
                if (p) {
                    cps[starter] = p;
                    continue;
                }
            }
        }
        if (cc == 0) {
            starter = (ptrdiff_t)w;
            last_cc = 0;
        } else {
            last_cc = cc;
        }
        cps[w++] = c;
    }
    /* encode */
    size_t bytes = 0;
    for (size_t r = 0; r < w; r++)
        bytes += cps[r] >= RAW_BYTE ? 1 : cps[r] < 0x80 ? 1 : cps[r] < 0x800 ? 2 : cps[r] < 0x10000 ? 3 : 4;
    char *o = malloc(bytes ? bytes : 1);
    if (!o) {
        free(cps);
        return -ENOMEM;
    }
    size_t at = 0;
    for (size_t r = 0; r < w; r++) {
        if (cps[r] >= RAW_BYTE) o[at++] = (char)(cps[r] - RAW_BYTE);
        else at += (size_t)util_utf8_encode(cps[r], o + at);
    }
    LLORCH_ASSERT(at == bytes);
    free(cps);
    *out = o;
    *olen = at;
    return 0;
}
