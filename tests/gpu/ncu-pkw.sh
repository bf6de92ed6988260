#!/usr/bin/env bash
# ncu-pkw.sh — runs ON the GPU machine: an Nsight Compute profile (--set
# full, source counters) of ONE weights-in-shared-memory decode launch
# (pkw.cu k_pw_layers) inside test_decode_layers (3 Qwen-shaped layers).
# Writes to ${OUT:-.}: ncu-run.log, pw-details.csv (the details page),
# pw-sass.csv.xz (per SASS instruction: executed instructions and warp stall
# samples by reason), pw-cuda.csv.xz (the same per CUDA source line of
# pkw.cu) and pw-raw.csv.xz (every raw metric: pipe utilizations etc.).
# NCU_K (default "bool\)1": the flagged-hand-off instantiations, matched
# against the demangled name) and NCU_SKIP (default 1: the second such
# launch) pick the launch; NCU_ENV adds VAR=VALUE settings (e.g.
# LLORCH_CUDA_PKW_LL=0). Needs the bundle (tools/gpu-bundle.sh, carried).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/gpu/ncu-env.sh
env LLORCH_TEST_ONLY=test_decode_layers ${NCU_ENV:-} timeout 400 "$NCU" --kernel-name-base demangled -k "regex:k_pw_layers.*${NCU_K:-bool\)1}" \
    --launch-skip "${NCU_SKIP:-1}" --launch-count 1 --set full --import-source yes -o /tmp/pw -f \
    "$BD/bin/test_cuda_ops" > "$O/ncu-run.log" 2>&1
echo "ncu rc=$? ($(tail -c 300 "$O/ncu-run.log" | tr '\n' ' '))"
"$NCU" --import /tmp/pw.ncu-rep --page details --csv > "$O/pw-details.csv" 2>&1
"$NCU" --import /tmp/pw.ncu-rep --page raw --csv 2>&1 | xz -T4 -6 > "$O/pw-raw.csv.xz"
for v in sass cuda; do
    "$NCU" --import /tmp/pw.ncu-rep --page source --csv --print-source $v > /tmp/pw-$v.csv 2> /tmp/pw-$v.err
    echo "source page ($v): rc=$? $(wc -c < /tmp/pw-$v.csv) bytes $(head -c 200 /tmp/pw-$v.err)"
    xz -T4 -6 < /tmp/pw-$v.csv > "$O/pw-$v.csv.xz"
done
