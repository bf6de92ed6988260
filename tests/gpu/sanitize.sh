#!/usr/bin/env bash
# sanitize.sh — runs ON the GPU machine: compute-sanitizer memcheck over the
# op tests (all but the many-variant prefill matmul sweep, which memcheck
# makes too slow for one device call; its kernels are covered by test_matmul),
# the e2e and gpt-oss tests, then racecheck over the ops whose kernels share
# memory between threads (prefill matmul, prefill attention, fused mat-vecs).
# Writes ${OUT:-.}/sanitize.txt. Needs the bundle (LLORCH_BUNDLE_DIR, default .gpu-bundle).
set -uo pipefail
cd "$(dirname "$0")/../.."
BD=${LLORCH_BUNDLE_DIR:-.gpu-bundle}
B=$BD/bin S=/usr/local/cuda/bin/compute-sanitizer R=${OUT:-.}/sanitize.txt
if [ -f "$BD/bin.tar.xz" ] && [ ! -d "$BD/bin" ]; then xz -dc "$BD/bin.tar.xz" | tar -C "$BD" -xf - || exit 1; fi
export LD_LIBRARY_PATH=$PWD/$BD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LLORCH_MODELS_DIR=$PWD/$BD/models LLORCH_SRC_DIR=$PWD LLORCH_FIXTURES=$PWD/tests/fixtures LLORCH_BUILD_DIR=$PWD/$B
san() { # label timeout tool args...
    local label=$1 to=$2 tool=$3; shift 3
    local t0=$(date +%s)
    timeout "$to" "$S" --tool "$tool" --error-exitcode 9 "$@" > /tmp/san.log 2>&1
    local rc=$?
    echo "$label rc=$rc ($(( $(date +%s) - t0 )) s)"
    grep -E "ERROR SUMMARY|LEAK SUMMARY|RACECHECK SUMMARY|Hazard|PASSED|FAILED" /tmp/san.log | head -6
}
{
    LLORCH_TEST_SKIP=test_matmul_prefill san "memcheck test_cuda_ops (all but test_matmul_prefill)" 240 memcheck --leak-check full --report-api-errors no $B/test_cuda_ops
    san "memcheck test_cuda_e2e" 60 memcheck --leak-check full --report-api-errors no $B/test_cuda_e2e
    san "memcheck test_cuda_gptoss" 60 memcheck --leak-check full --report-api-errors no $B/test_cuda_gptoss
    for t in test_matmul test_attention test_fused_matmul; do
        LLORCH_TEST_ONLY=$t san "racecheck $t" 80 racecheck $B/test_cuda_ops
    done
} 2>&1 | tee "$R"
