/* unicode — tok_ucat: category flags of a code point, from the generated
 * range tables (unicode_tables.c). Latin-1 is a direct lookup; above it a
 * binary search over the ~3k sorted range starts (12 probes). */
#include "tokenizer/pretok.h"
#include "tokenizer/unicode.h"

unsigned tok_ucat(uint32_t cp) {
    if (cp < 0x100) return tok_ucat_latin1[cp];
    if (cp > 0x10FFFF) return TOK_UCAT_C;
    /* last i with tok_ucat_start[i] <= cp; start[0] == 0 so it exists */
    uint32_t lo = 0, hi = tok_ucat_nranges; /* invariant: start[lo] <= cp < start[hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tok_ucat_start[mid] <= cp) lo = mid;
        else hi = mid;
    }
    return tok_ucat_flags[lo];
}
