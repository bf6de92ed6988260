#!/usr/bin/env bash
# llamacpp_check.sh — cross-checks the pre-tokenizer fixtures and the Unicode
# tables against llama.cpp itself: the llama.cpp source node-llama-cpp 3.21.1
# ships (tools/ref/node_modules/node-llama-cpp/llama/gitRelease.bundle), its
# unicode.cpp + unicode-data.cpp built with a small driver. Nothing of it is
# copied into the project. Run from the repository root after `npm ci` in
# tools/ref:
#     bash tools/ref/llamacpp_check.sh
# Checks: (1) every fixture split for gpt2/llama3/qwen2/o200k_llamacpp/
# llama_default equals llama.cpp's unicode_regex_split (o200k, the exact
# tokenizer.json regex, llama.cpp does not run); (2) tok_ucat's L, N, P, S, M
# and White_Space bits equal llama.cpp's flags for all 0x110000 code points.
set -euo pipefail
root=$(pwd)
work=${TMPDIR:-/tmp}/llorch-llamacpp-check
bundle=tools/ref/node_modules/node-llama-cpp/llama/gitRelease.bundle
rm -rf "$work" && mkdir -p "$work"
git -c advice.detachedHead=false clone -q "$bundle" "$work/llama.cpp"
src=$work/llama.cpp/src
g++ -std=c++17 -O2 -I"$src" tools/ref/llamacpp_pretok.cpp "$src/unicode.cpp" "$src/unicode-data.cpp" -o "$work/split"
for f in tests/fixtures/pretok/expected.txt tests/fixtures/pretok/random.txt; do
  grep '^S ' "$f" | cut -c3- | "$work/split" > "$work/got.txt"
  grep -v '^#' "$f" | grep -v '^o200k ' | grep -v '^o200k$' > "$work/want.txt"
  diff -q "$work/want.txt" "$work/got.txt" >/dev/null || { echo "MISMATCH: $f"; diff "$work/want.txt" "$work/got.txt" | head; exit 1; }
  echo "ok: $f agrees with llama.cpp"
done
cat > "$work/lflags.cpp" <<'CPP'
#include "unicode.h"
#include <cstdio>
int main() {
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        auto f = unicode_cpt_flags_from_cpt(cp);
        printf("%x %d%d%d%d%d%d\n", cp, f.is_letter, f.is_number, f.is_punctuation, f.is_symbol, f.is_accent_mark, f.is_whitespace);
    }
}
CPP
cat > "$work/oflags.c" <<'C'
#include <stdio.h>
#include "tokenizer/pretok.h"
int main(void) {
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        unsigned f = tok_ucat(cp);
        printf("%x %d%d%d%d%d%d\n", cp, !!(f & TOK_UCAT_L), !!(f & TOK_UCAT_N), !!(f & TOK_UCAT_P),
               !!(f & TOK_UCAT_S), !!(f & TOK_UCAT_M), !!(f & TOK_UCAT_WS));
    }
}
C
g++ -std=c++17 -O2 -I"$src" "$work/lflags.cpp" "$src/unicode.cpp" "$src/unicode-data.cpp" -o "$work/lflags"
cc -std=c11 -O2 -I"$root/src" "$work/oflags.c" src/tokenizer/unicode.c src/tokenizer/unicode_tables.c -o "$work/oflags"
"$work/lflags" > "$work/l.txt"
"$work/oflags" > "$work/o.txt"
n=$(diff "$work/l.txt" "$work/o.txt" | grep -c '^<' || true)
[ "$n" = 0 ] || { echo "MISMATCH: $n code points differ from llama.cpp's flags"; exit 1; }
echo "ok: tok_ucat equals llama.cpp's flags on all code points"
