#!/usr/bin/env bash
# decode-variants.sh — runs ON the GPU machine after `tools/gpu-run.sh ... models`
# (needs the synthetic models in /tmp/llorch-models and the bundle here).
# 1. the op, e2e and gpt-oss tests under each opt-in switch in $TEST_VARIANTS
#    (space-separated words; a word is one or more VAR=VALUE joined by ','),
# 2. the model bench (pp512 / tg128 for Qwen2.5-0.5B Q4_K_M and Llama-2-7B
#    Q4_0) under each setting in $BENCH_VARIANTS, in that order, in one call on
#    one card, so the rows compare; "X=default" is the default build.
# Writes ${OUT:-.}/variants.txt and prints its short lines.
# Device command: bash <bundle>/gpu-run.sh tests bench models; bash tests/gpu/decode-variants.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
BD=${LLORCH_BUNDLE_DIR:-.gpu-bundle}
B=$BD/bin MD=/tmp/llorch-models V=${OUT:-.}/variants.txt
export LD_LIBRARY_PATH=$PWD/$BD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LLORCH_MODELS_DIR=$PWD/$BD/models LLORCH_SRC_DIR=$PWD LLORCH_FIXTURES=$PWD/tests/fixtures LLORCH_BUILD_DIR=$PWD/$B
M="$MD/qwen2.5-0.5b-q4_k_m.gguf $MD/llama-2-7b-q4_0.gguf"
TEST_VARIANTS=${TEST_VARIANTS:-}
BENCH_VARIANTS=${BENCH_VARIANTS:-"X=default LLORCH_NO_FUSED=1 X=default"}
{
    for e in $TEST_VARIANTS; do
        for t in test_cuda_ops test_cuda_e2e test_cuda_gptoss; do
            [ -x $B/$t ] || continue
            env ${e//,/ } timeout 150 $B/$t > /tmp/dv-test.log 2>&1
            echo "test $e $t rc=$?"
            grep -iE "fail|mismatch|error" /tmp/dv-test.log | head -5
        done
    done
    for v in $BENCH_VARIANTS; do
        echo "==== variant $v"
        env ${v//,/ } LLORCH_CUDA_BENCH=1 LLORCH_BENCH_SKIP_KERNELS=1 LLORCH_BENCH_MODELS="$M" timeout 90 $B/test_cuda_perf 2>&1 |
            grep -E "pp512|tg128|rror"
    done
} > "$V" 2>&1
grep -E "^test|variant|pp512|tg128" "$V"
