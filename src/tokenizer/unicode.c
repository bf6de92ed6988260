/* unicode — tok_ucat: category flags of a code point, from the generated
 * range tables (unicode_tables.c). Latin-1 is a direct lookup; above it a
 * binary search over the ranges of the code point's 256-block only (most
 * blocks hold one to a few ranges). */
#include "tokenizer/pretok.h"
#include "tokenizer/unicode.h"

unsigned tok_ucat(uint32_t cp) {
    if (cp < 0x100) return tok_ucat_latin1[cp];
    if (cp > 0x10FFFF) return TOK_UCAT_C;
    /* last i with tok_ucat_start[i] <= cp, between the ranges holding the
     * first code points of this block and of the next */
    uint32_t lo = tok_ucat_block[cp >> 8], hi = (uint32_t)tok_ucat_block[(cp >> 8) + 1] + 1;
    if (hi > tok_ucat_nranges) hi = tok_ucat_nranges;
    /* invariant: start[lo] <= cp < start[hi] (or hi == nranges) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tok_ucat_start[mid] <= cp) lo = mid;
        else hi = mid;
    }
    return tok_ucat_flags[lo];
}
