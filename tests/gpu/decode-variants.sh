#!/usr/bin/env bash
# decode-variants.sh — runs ON the GPU machine after `tools/gpu-run.sh ... models`
# (needs the synthetic models in /tmp/llorch-models and .gpu-bundle/ here).
# Checks the opt-in CUDA paths with the op and e2e tests, then compares the
# decode switches of the CUDA backend in one process order on one card:
# model bench (tg128/pp512) per variant and the kernel bench with ACTCACHE=0
# (so mat-vec times include the activation quantization, like the old tables).
# Writes ${OUT:-.}/variants.txt and prints its short lines.
# Here, before the device call: tools/gpu-bundle.sh, then keep the bundle under
# the 64 MiB transfer limit (rm the worker-* / test_worker* / test_gpu_worker_qwen /
# test_pool_nvml binaries, strip the rest, drop libraries the rest do not ldd).
# Device command: bash tools/gpu-run.sh tests memcheck racecheck bench models; bash tests/gpu/decode-variants.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
B=.gpu-bundle/bin MD=/tmp/llorch-models V=${OUT:-.}/variants.txt
export LD_LIBRARY_PATH=$PWD/.gpu-bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
M="$MD/qwen2.5-0.5b-q4_k_m.gguf $MD/llama-2-7b-q4_0.gguf"
OFF="LLORCH_CUDA_PDL=0 LLORCH_CUDA_ACTCACHE=0 LLORCH_CUDA_ATTN_FUSED=0"
{
    for e in LLORCH_CUDA_PDL=2 LLORCH_CUDA_MMV=4 LLORCH_CUDA_ARGMAX=1; do
        for t in test_cuda_ops test_cuda_e2e; do
            env $e timeout 100 $B/$t > /tmp/dv-test.log 2>&1
            echo "test $e $t rc=$?"
            grep -iE "fail|mismatch" /tmp/dv-test.log | head -5
        done
    done
    for v in "$OFF" "X=default" "LLORCH_CUDA_MMV=5" "LLORCH_CUDA_ARGMAX=1" "LLORCH_CUDA_MMV=5 LLORCH_CUDA_ARGMAX=1" \
             "LLORCH_CUDA_PDL=2" "$OFF" "X=default"; do
        echo "==== variant $v"
        env $v LLORCH_CUDA_BENCH=1 LLORCH_BENCH_SKIP_KERNELS=1 LLORCH_BENCH_MODELS="$M" timeout 60 $B/test_cuda_perf 2>&1 |
            grep -E "tg128|rror"
    done
    for k in X=default LLORCH_CUDA_MMV=4; do
        echo "==== kernels ACTCACHE=0 $k"
        env $k LLORCH_CUDA_ACTCACHE=0 LLORCH_CUDA_BENCH=1 timeout 60 $B/test_cuda_perf 2>&1 | grep -E "r=1 "
    done
} > "$V" 2>&1
grep -E "^test|variant|tg128|Q4_0 4096x4096|Q4_0 4096x11008|Q4_0 11008" "$V"
