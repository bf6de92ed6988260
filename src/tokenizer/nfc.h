/* nfc — the tables of the NFC normalizer (nfc.c, data in nfc_tables.c made
 * by tools/gen_nfc.py). Only src/tokenizer/ includes this; tok_nfc() is
 * declared in tok_internal.h. */
#ifndef LLORCH_TOK_NFC_H
#define LLORCH_TOK_NFC_H

#include <stdint.h>

struct tok_nfc_ccc { uint32_t first, last; uint8_t ccc; };
struct tok_nfc_range { uint32_t first, last; };
struct tok_nfc_dec { uint32_t cp, a, b; };          /* b == 0: singleton */
struct tok_nfc_comp { uint32_t a, b, composite; }; /* sorted by (a, b) */

extern const struct tok_nfc_ccc tok_nfc_ccc[];
extern const int tok_nfc_n_ccc;
extern const struct tok_nfc_range tok_nfc_qc[];
extern const int tok_nfc_n_qc;
extern const struct tok_nfc_dec tok_nfc_dec[];
extern const int tok_nfc_n_dec;
extern const struct tok_nfc_comp tok_nfc_comp[];
extern const int tok_nfc_n_comp;

#endif
