#!/usr/bin/env bash
# ncu-pwdot.sh — runs ON the GPU machine: Nsight Compute profiles (--set
# full, source counters) of single dot-phase microbenchmark launches
# (pw_dot_bench.cu via test_cuda_perf LLORCH_BENCH_KERNELS=pwdot), one per
# case index in NCU_CASES (default "0 1 9": D through pw_dotf, D on the
# tensor cores, E Q4_K through pw_dotf; indices of test_cuda_perf's pwdot
# table). Writes ${OUT:-.}/pwdot-<i>-sass.csv.xz and -details.csv.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/gpu/ncu-env.sh
for i in ${NCU_CASES:-0 1 9}; do
    env LLORCH_CUDA_BENCH=1 LLORCH_BENCH_KERNELS=pwdot LLORCH_PWDOT_CASE=$i timeout 200 "$NCU" -k regex:k_pwdot_bench \
        --launch-count 1 --set full --import-source yes -o /tmp/pwd$i -f "$BD/bin/test_cuda_perf" > "$O/ncu-pwdot-$i.log" 2>&1
    echo "case $i: ncu rc=$? $(grep -E '^  [A-Za-z]' "$O/ncu-pwdot-$i.log" | head -2 | tr '\n' ' ')"
    "$NCU" --import /tmp/pwd$i.ncu-rep --page details --csv > "$O/pwdot-$i-details.csv" 2>&1
    "$NCU" --import /tmp/pwd$i.ncu-rep --page source --csv --print-source sass 2>/dev/null | xz -T4 -6 > "$O/pwdot-$i-sass.csv.xz"
done
