/* piece — token -> bytes (llama.cpp's token_to_piece) and sequence
 * detokenization (llama_detokenize, with its clean_up_tokenization_spaces
 * passes), plus the GPT-2 byte-level code point table both directions use.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tokenizer/tok_internal.h"

/* ---- GPT-2 byte-level mapping -------------------------------------------------
 * Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves;
 * the other 68 bytes map, in ascending order, to U+0100.. U+0143. */
static int printable_byte(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* non-printable bytes in order: 0x00-0x20 -> U+0100.., 0x7F-0xA0 -> U+0121.., 0xAD -> U+0143 */
static uint32_t byte_cp(unsigned b) {
    if (printable_byte(b)) return b;
    if (b <= 0x20) return 256 + b;
    if (b <= 0xA0) return 256 + 33 + (b - 0x7F);
    return 256 + 67; /* 0xAD */
}

int tok_byte_to_utf8(unsigned char b, char out[2]) {
    uint32_t cp = byte_cp(b);
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return printable_byte(cp) ? (int)cp : -1;
    if (cp <= 256 + 32) return (int)(cp - 256);
    if (cp <= 256 + 66) return (int)(0x7F + (cp - 256 - 33));
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

int tok_utf8_lenient(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (!(c & 0x80)) { *cp = c; return 1; }
    if (!(c & 0x40)) return 0;
    int len = !(c & 0x20) ? 2 : !(c & 0x10) ? 3 : !(c & 0x08) ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    uint32_t v = c & (0x7Fu >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    *cp = v;
    return len;
}

/* ---- rendered pieces ---------------------------------------------------------- */

/* llama_decode_text: byte-level code points back to bytes; a code point that
 * is not byte-level renders as "[UNK_BYTE_0x<hex>" + the token text + "]" */
static void bpe_decode_text(const char *t, size_t n, struct util_sb *sb) {
    const unsigned char *u = (const unsigned char *)t;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = tok_utf8_lenient(u + i, n - i, &cp);
        if (k == 0) {
            cp = 0xFFFD;
            k = 1;
        }
        i += (size_t)k;
        int b = tok_cp_to_byte(cp);
        if (b >= 0) {
            util_sb_putc(sb, (char)b);
            continue;
        }
        char enc[4];
        int el = util_utf8_encode(cp, enc);
        util_sb_puts(sb, "[UNK_BYTE_0x");
        for (int j = 0; j < el; j++) util_sb_printf(sb, "%02x", (unsigned char)enc[j]);
        util_sb_putn(sb, t, n);
        util_sb_putc(sb, ']');
    }
}

/* every code point of t is one of the 256 byte-level ones */
static int all_byte_level(const char *t, size_t n) {
    const unsigned char *u = (const unsigned char *)t;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = tok_utf8_lenient(u + i, n - i, &cp);
        if (k == 0 || tok_cp_to_byte(cp) < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* <0xNN> -> NN (strtol on text[3..5) as llama.cpp's token_to_byte) */
static char byte_token_value(const char *t, size_t n) {
    int v = 0;
    for (size_t i = 3; i < 5 && i < n; i++) {
        int h = hexval(t[i]);
        if (h < 0) break;
        v = v * 16 + h;
    }
    return (char)v;
}

static void render(const tok_vocab *v, int32_t id, struct util_sb *sb) {
    const char *t = tok_txt(v, id);
    size_t n = v->len[id];
    unsigned a = v->attr[id];
    if (a & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL | TOK_ATTR_USER_DEFINED)) {
        util_sb_putn(sb, t, n);
    } else if (a & TOK_ATTR_NORMAL) {
        if (v->kind == TOK_KIND_BPE && v->hf_json && !all_byte_level(t, n)) {
            util_sb_putn(sb, t, n); /* HF's ByteLevel decoder: such a token's own UTF-8 */
        } else if (v->kind == TOK_KIND_BPE) {
            bpe_decode_text(t, n, sb);
        } else { /* "▁" (E2 96 81) -> ' ' */
            for (size_t i = 0; i < n; i++) {
                if (i + 2 < n && (unsigned char)t[i] == 0xE2 && (unsigned char)t[i + 1] == 0x96 &&
                    (unsigned char)t[i + 2] == 0x81) {
                    util_sb_putc(sb, ' ');
                    i += 2;
                } else {
                    util_sb_putc(sb, t[i]);
                }
            }
        }
    } else if (a & TOK_ATTR_BYTE) {
        util_sb_putc(sb, byte_token_value(t, n));
    }
    /* unused / undefined: nothing */
}

int tok_build_pieces(tok_vocab *v) {
    struct util_sb sb;
    util_sb_init(&sb);
    v->poff = malloc(sizeof(uint32_t) * (size_t)v->n);
    v->plen = malloc(sizeof(uint32_t) * (size_t)v->n);
    if (!v->poff || !v->plen) return -ENOMEM;
    for (int32_t id = 0; id < v->n; id++) {
        size_t at = sb.len;
        render(v, id, &sb);
        if (sb.oom || sb.len > UINT32_MAX) {
            util_sb_free(&sb);
            return -ENOMEM;
        }
        v->poff[id] = (uint32_t)at;
        v->plen[id] = (uint32_t)(sb.len - at);
    }
    if (sb.len == 0) util_sb_putc(&sb, 0); /* keep a non-NULL pool */
    if (sb.oom) {
        util_sb_free(&sb);
        return -ENOMEM;
    }
    v->ppool = sb.buf; /* ownership moves to the vocab */
    return 0;
}

/* ---- token_to_piece / detokenize ---------------------------------------------- */

/* the piece with up to lstrip leading spaces removed */
static const char *piece_of(const tok_vocab *v, int32_t id, int render_special, int lstrip, size_t *n) {
    if (!render_special && (v->attr[id] & (TOK_ATTR_UNKNOWN | TOK_ATTR_CONTROL))) {
        *n = 0;
        return "";
    }
    const char *p = v->ppool + v->poff[id];
    size_t len = v->plen[id];
    for (int i = 0; i < lstrip && len && *p == ' '; i++) p++, len--;
    *n = len;
    return p;
}

int tok_piece(const tok_vocab *v, int32_t id, int render_special, char *out, int cap) {
    if (id < 0 || id >= v->n) return -EINVAL;
    size_t n;
    const char *p = piece_of(v, id, render_special, 0, &n);
    if (out && cap > 0) memcpy(out, p, n < (size_t)cap ? n : (size_t)cap);
    return (int)n;
}

int tok_detokenize(const tok_vocab *v, const int32_t *ids, int n, int remove_special, int render_special, char *out,
                   int cap) {
    if (n < 0) return -EINVAL;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v->n) return -EINVAL;
    int remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n > 0 && ids[0] == v->bos) {
        remove_space = 0;
        ids++, n--;
    }
    if (remove_special && v->add_eos && n > 0 && ids[n - 1] == v->eos) n--;

    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t k;
        piece_of(v, ids[i], render_special, 0, &k);
        total += k;
    }
    if (total > INT32_MAX) return -EOVERFLOW;
    char *t = malloc(total + 1);
    if (!t) return -ENOMEM;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        size_t k;
        const char *p = piece_of(v, ids[i], render_special, remove_space, &k);
        remove_space = 0;
        memcpy(t + len, p, k);
        len += k;
    }

    if (v->clean_spaces && len > 0) {
        /* pass 1: " ?", " !", " .", " ," lose the space */
        size_t w = 1;
        for (size_t i = 1; i < len; i++) {
            char x = t[i];
            if (t[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) w--;
            t[w++] = x;
        }
        len = w;
        /* pass 2: " ' " -> "'" */
        w = 1;
        for (size_t i = 1; i < len; i++) {
            char x = t[i];
            if (x == '\'' && i + 1 < len && t[i - 1] == ' ' && t[i + 1] == ' ') {
                w--;
                t[++i] = '\0'; /* the following space goes too (NUL as llama.cpp leaves it) */
            }
            t[w++] = x;
        }
        len = w;
        /* pass 3: " 's", " 'm", " 're", " 've" lose the space */
        w = 1;
        for (size_t i = 1; i < len; i++) {
            char x = t[i];
            if (t[i - 1] == ' ' && x == '\'' && i + 1 < len) {
                char x1 = t[i + 1];
                if (x1 == 's' || x1 == 'm') w--;
                else if (i + 2 < len && ((x1 == 'r' && t[i + 2] == 'e') || (x1 == 'v' && t[i + 2] == 'e'))) w--;
            }
            t[w++] = x;
        }
        len = w;
    }
    if (out && cap > 0) memcpy(out, t, len < (size_t)cap ? len : (size_t)cap);
    free(t);
    return (int)len;
}

int tok_decode(const tok_vocab *v, const int32_t *ids, int n, int render_special, char *out, int cap) {
    return tok_detokenize(v, ids, n, 0, render_special, out, cap);
}
