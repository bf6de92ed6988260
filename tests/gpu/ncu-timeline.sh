#!/usr/bin/env bash
# ncu-timeline.sh — runs ON the GPU machine: what a greedy decode token runs,
# kernel by kernel. Profiles NCU_COUNT (default 60) consecutive kernel
# launches of `llorch bench -p 1 -n 64` (Qwen2.5-0.5B Q4_K_M shape) after
# skipping NCU_SKIP (default 60: decode steps of the warm-up run) with only
# gpu__time_duration (no cache flush, clocks left alone), and writes
# ${OUT:-.}/timeline.csv (one row per launch: name, grid, block, duration).
# The sum over one token's kernels against the bench's per-token time is
# the idle GPU time between kernels. NCU_ENV adds VAR=VALUE settings.
# Needs the bundle (tools/gpu-bundle.sh, carried).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/gpu/ncu-env.sh
MD=/tmp/llorch-models
Q=$MD/qwen2.5-0.5b-q4_k_m.gguf
mkdir -p $MD
[ -f $Q ] || "$BD/bin/llorch" gguf make --preset qwen2.5-0.5b --type Q4_K_M -o $Q > $MD/qwen.log 2>&1
env ${NCU_ENV:-} timeout 300 "$NCU" --cache-control none --clock-control none --metrics gpu__time_duration.sum \
    --launch-skip "${NCU_SKIP:-60}" --launch-count "${NCU_COUNT:-60}" --csv --print-units base \
    "$BD/bin/llorch" bench --backend cuda --model $Q -p 1 -n 64 -r 1 > "$O/timeline.csv" 2> "$O/timeline.err"
echo "ncu-timeline rc=$? rows=$(grep -c gpu__time_duration "$O/timeline.csv")"
