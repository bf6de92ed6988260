#!/usr/bin/env bash
# ref_gguf_mix.sh — llama.cpp's own per-tensor type choices, as fixtures.
# For each model and file type: llama_model_quantize (tools/ref/ref_gguf_quantize.c,
# built as /tmp/ref_quantize, see its header) quantizes the model, and the
# resulting tensor table (name, type, shape, in file order) is written to
# tests/fixtures/gguf/mix/<model>.<TYPE>.tsv.
# Models: stories260K (../shared/models) and synthetic tiny llama/qwen2/phi3/gpt-oss
# (8 layers, F16) made by `llorch gguf make`; plus Qwen2.5-0.5B at full size
# (Q4_K_M only: its F16 input is 1.3 GB).
# usage: tools/ref/ref_gguf_mix.sh BUILD_DIR   (BUILD_DIR holds llorch)
set -euo pipefail
B=${1:?build dir}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/tests/fixtures/gguf/mix
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$OUT"
declare -A FT=([Q4_0]=2 [Q4_1]=3 [Q8_0]=7 [Q5_0]=8 [Q5_1]=9 [Q2_K]=10 [Q3_K_S]=11 [Q3_K_M]=12 [Q3_K_L]=13
               [Q4_K_S]=14 [Q4_K_M]=15 [Q5_K_S]=16 [Q5_K_M]=17 [Q6_K]=18 [MXFP4_MOE]=38)
table() { "$B/llorch" gguf inspect "$1" --json | python3 -c '
import json,sys
for t in json.load(sys.stdin)["tensors"]: print("%s\t%s\t%s" % (t["name"], t["type"], "x".join(map(str, t["shape"]))))'; }
for a in llama qwen2 phi3 gpt-oss; do "$B/llorch" gguf make --preset tiny --arch $a --layers 8 --type F16 -o "$W/tiny-$a.gguf"; done
cp "$ROOT/../shared/models/stories260K.gguf" "$W/stories260K.gguf"
for m in stories260K tiny-llama tiny-qwen2 tiny-phi3 tiny-gpt-oss; do
  for t in "${!FT[@]}"; do
    /tmp/ref_quantize "$W/$m.gguf" "$W/out.gguf" "${FT[$t]}" > "$W/log" 2>&1
    table "$W/out.gguf" > "$OUT/$m.$t.tsv"
  done
done
"$B/llorch" gguf make --preset qwen2.5-0.5b --type F16 -o "$W/q.gguf"
/tmp/ref_quantize "$W/q.gguf" "$W/out.gguf" 15 > "$W/log" 2>&1
table "$W/out.gguf" > "$OUT/qwen2.5-0.5b.Q4_K_M.tsv"
ls -la "$W/out.gguf"
# Byte-level ground truth: llama.cpp's quantized stories260K, hashed per tensor
# (tests/fixtures/gguf/stories260K.quant.fnv): llorch's quantize must reproduce
# every byte.
: > "$ROOT/tests/fixtures/gguf/stories260K.quant.fnv"
for t in Q8_0 Q5_0 Q5_1 Q4_0 Q4_1 Q2_K Q3_K_M Q4_K_M Q5_K_M Q6_K; do
  /tmp/ref_quantize "$W/stories260K.gguf" "$W/out.gguf" "${FT[$t]}" > "$W/log" 2>&1
  python3 "$ROOT/tools/ref/ref_gguf_hashes.py" "$B/llorch" "$W/out.gguf" $t >> "$ROOT/tests/fixtures/gguf/stories260K.quant.fnv"
done
