#!/bin/sh
# ref_gptoss.sh — llama.cpp reference fixtures for gpt-oss on the CPU engine
# (tests/unit/test_engine_gptoss.c): teacher-forced distributions over 80
# positions (tools/ref/ref_dist.mjs) and greedy continuations
# (tools/ref/ref_greedy.mjs) of synthetic tiny gpt-oss models that our
# generator makes: 4 layers, width 256, 4 experts of width 256 with 2 used,
# sliding window 16 on layers 0 and 2 (so 80 positions exercise both
# attention kinds), YaRN as the real model, stories260K's 512-token vocabulary.
#
# Usage (from the repository root, with build/llorch built and the packages of
# tools/ref/package.json installed):
#   sh tools/ref/ref_gptoss.sh
# Output: tests/fixtures/engine/gptoss/{index.txt, gpt-oss-<type>.f16, greedy-<type>.txt}
set -eu
B=${B:-build}
W=${W:-/tmp/llorch-gptoss-ref}
OUT=tests/fixtures/engine/gptoss
M=../shared/models/stories260K.gguf
mkdir -p "$W" "$OUT"
for t in MXFP4 F16; do
  "$B/llorch" gguf make --preset tiny --arch gpt-oss --swa 16 --type $t --vocab-from "$M" --seed 1 -o "$W/gpt-oss-$t.gguf"
done
REF_DIST_TEXT="Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she found a big red ball under a tree. She was very happy and ran to show her mom. Her mom smiled and said they could play together." \
  node tools/ref/ref_dist.mjs "$OUT" 80 gpt-oss-MXFP4="$W/gpt-oss-MXFP4.gguf" gpt-oss-F16="$W/gpt-oss-F16.gguf"
for t in MXFP4 F16; do
  node tools/ref/ref_greedy.mjs "$W/gpt-oss-$t.gguf" 40 "$OUT/greedy-$t.txt" \
    "llorch gguf make --preset tiny --arch gpt-oss --swa 16 --type $t --vocab-from stories260K.gguf --seed 1" \
    "Once upon a time" "The little dog" "Lily wanted to"
done
