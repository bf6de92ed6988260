#!/usr/bin/env bash
# gpu-run.sh — runs ON the GPU machine, in the repository root, after
# tools/gpu-bundle.sh made .gpu-bundle/ here. Runs the GPU tests, then
# compute-sanitizer memcheck and racecheck on the op tests, then the
# benchmarks; writes ONE results file, $OUT/gpu-results.txt (or ./gpu-results.txt).
# Steps can be chosen: tools/gpu-run.sh [tests] [memcheck] [racecheck] [bench] [compare] [models] [profile] [worker] [cli-bench] [pool]
# (worker: the worker contract tests against worker-orcd, and — with "models" — worker-orcd on the
# synthetic Qwen2.5-0.5B Q4_K_M; cli-bench: `llorch bench --backend cuda` on the generated models)
# (compare: kernel bench again with the v1 mat-vec and with each prefill tile; profile: per-op GPU time
# of the model bench with LLORCH_CUDA_PROFILE=1, and the bench without graphs)
# "models" generates synthetic Qwen2.5-0.5B Q4_K_M and Llama-2-7B Q4_0 with the
# bundled `llorch gguf make` (in the background, from the start) and adds them
# to the benchmark.
set -uo pipefail
cd "$(dirname "$0")/.."
# LLORCH_BUNDLE_DIR: the bundle folder (default .gpu-bundle; helpers working in
# another checkout copy theirs to .gpu-bundle-NAME here and carry that)
BD=${LLORCH_BUNDLE_DIR:-.gpu-bundle}
[ -d "$BD" ] || { echo "no $BD (run tools/gpu-bundle.sh here first, carry it)" >&2; exit 1; }
# a large bundle carries its binaries packed (gpu-bundle.sh)
if [ -f "$BD/bin.tar.xz" ] && [ ! -d "$BD/bin" ]; then xz -dc "$BD/bin.tar.xz" | tar -C "$BD" -xf - || exit 1; fi
R=${OUT:-.}/gpu-results.txt
export LD_LIBRARY_PATH=$PWD/$BD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LLORCH_MODELS_DIR=$PWD/$BD/models
export LLORCH_SRC_DIR=$PWD LLORCH_FIXTURES=$PWD/tests/fixtures LLORCH_BUILD_DIR=$PWD/$BD/bin
SAN=/usr/local/cuda/bin/compute-sanitizer
steps=${*:-tests memcheck racecheck bench}
has() { case " $steps " in *" $1 "*) return 0;; esac; return 1; }
run() { # name timeout cmd...
    local name=$1 to=$2; shift 2
    local t0=$(date +%s)
    echo "---- $name: $*"
    timeout "$to" "$@"; local rc=$?
    echo "---- $name: rc=$rc ($(( $(date +%s) - t0 )) s)"
    echo "$name rc=$rc" >> /tmp/gpu-summary
}
rm -f /tmp/gpu-summary
MD=/tmp/llorch-models
if has models && [ -x $BD/bin/llorch ]; then
    mkdir -p $MD
    ( $BD/bin/llorch gguf make --preset qwen2.5-0.5b --type Q4_K_M -o $MD/qwen2.5-0.5b-q4_k_m.gguf > $MD/qwen.log 2>&1 ) &
    QPID=$!
    ( $BD/bin/llorch gguf make --preset llama-2-7b --type Q4_0 -o $MD/llama-2-7b-q4_0.gguf > $MD/llama.log 2>&1 ) &
    LPID=$!
fi
{
    echo "==== llama-orch GPU run $(date -u +%FT%TZ)  commit $(cat $BD/COMMIT)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader
    if has tests; then
        for t in $BD/bin/test_cuda_*; do
            case $t in *perf) continue;; esac
            run "$(basename "$t")" 150 "$t"
        done
    fi
    if has memcheck && [ -x "$SAN" ]; then
        # LLORCH_TEST_QUICK=1: the shape sets that run every kernel body once
        # (the full sweeps take minutes under the sanitizers)
        LLORCH_TEST_QUICK=1 run memcheck 150 "$SAN" --tool memcheck --leak-check full --report-api-errors no --error-exitcode 9 $BD/bin/test_cuda_ops
        run memcheck-e2e 120 "$SAN" --tool memcheck --leak-check full --report-api-errors no --error-exitcode 9 $BD/bin/test_cuda_e2e
    fi
    if has racecheck && [ -x "$SAN" ]; then
        LLORCH_TEST_QUICK=1 LLORCH_TEST_SKIP=test_sample run racecheck 150 "$SAN" --tool racecheck --error-exitcode 9 $BD/bin/test_cuda_ops
    fi
    if has worker; then
        for t in test_worker test_worker_lifecycle test_worker_utf8; do
            [ -x $BD/bin/$t ] && LLORCH_WORKER_BIN=worker-orcd run "$t-orcd" 240 $BD/bin/$t
        done
    fi
    if has pool && [ -x $BD/bin/test_pool_nvml ]; then
        run test_pool_nvml 300 $BD/bin/test_pool_nvml
    fi
    if has bench; then
        LLORCH_CUDA_BENCH=1 run perf 150 $BD/bin/test_cuda_perf
        if has compare; then
            LLORCH_CUDA_BENCH=1 LLORCH_CUDA_MMV=1 run perf-mmv-v1 150 $BD/bin/test_cuda_perf
            LLORCH_CUDA_BENCH=1 LLORCH_CUDA_MMV=2 run perf-mmv-v2-generic 150 $BD/bin/test_cuda_perf
            LLORCH_CUDA_BENCH=1 LLORCH_CUDA_MM_BN=64 run perf-mm-bn64 150 $BD/bin/test_cuda_perf
            LLORCH_CUDA_BENCH=1 LLORCH_CUDA_MM_BN=128 run perf-mm-bn128 150 $BD/bin/test_cuda_perf
        fi
    fi
    if has models && [ -n "${QPID:-}" ]; then
        t0=$(date +%s)
        while kill -0 "$QPID" 2>/dev/null || kill -0 "$LPID" 2>/dev/null; do sleep 1; done
        echo "---- models generated (waited $(( $(date +%s) - t0 )) s)"
        cat $MD/*.log; ls -la $MD
        if has tests && [ -x $BD/bin/test_cuda_decode_kl ]; then # decode KL vs the CPU at the real shape
            LLORCH_GPU_QWEN_MODEL=$MD/qwen2.5-0.5b-q4_k_m.gguf run decode-kl-qwen 240 $BD/bin/test_cuda_decode_kl
        fi
        if has tests && [ -x $BD/bin/test_cuda_pipeline ]; then # decode pipelining at the real shape
            LLORCH_GPU_QWEN_MODEL=$MD/qwen2.5-0.5b-q4_k_m.gguf run pipeline-qwen 240 $BD/bin/test_cuda_pipeline
        fi
        if has worker && [ -x $BD/bin/test_gpu_worker_qwen ]; then
            LLORCH_GPU_QWEN_MODEL=$MD/qwen2.5-0.5b-q4_k_m.gguf run worker-orcd-qwen 180 $BD/bin/test_gpu_worker_qwen
        fi
        if has cli-bench; then
            for m in qwen2.5-0.5b-q4_k_m llama-2-7b-q4_0; do
                run "llorch-bench-$m" 240 $BD/bin/llorch bench --backend cuda --model $MD/$m.gguf -p 512 -n 128 -r 5
            done
            # A/B: decode pipelining off (tg only)
            LLORCH_PIPELINE=0 run "llorch-bench-qwen-nopipe" 120 $BD/bin/llorch bench --backend cuda \
                --model $MD/qwen2.5-0.5b-q4_k_m.gguf -p 0 -n 128 -r 5
        fi
        if has bench; then
        LLORCH_CUDA_BENCH=1 LLORCH_BENCH_SKIP_KERNELS=1 LLORCH_BENCH_MODELS="$MD/qwen2.5-0.5b-q4_k_m.gguf $MD/llama-2-7b-q4_0.gguf" \
            run model-bench 240 $BD/bin/test_cuda_perf
        fi
        if has profile; then
            LLORCH_CUDA_BENCH=1 LLORCH_BENCH_SKIP_KERNELS=1 LLORCH_CUDA_PROFILE=1 LLORCH_BENCH_MODELS="$MD/qwen2.5-0.5b-q4_k_m.gguf" \
                run model-profile-qwen 120 $BD/bin/test_cuda_perf
            LLORCH_CUDA_BENCH=1 LLORCH_BENCH_SKIP_KERNELS=1 LLORCH_CUDA_PROFILE=1 LLORCH_BENCH_MODELS="$MD/llama-2-7b-q4_0.gguf" \
                run model-profile-llama 120 $BD/bin/test_cuda_perf
            LLORCH_CUDA_BENCH=1 LLORCH_BENCH_SKIP_KERNELS=1 LLORCH_CUDA_NO_GRAPH=1 LLORCH_BENCH_MODELS="$MD/qwen2.5-0.5b-q4_k_m.gguf" \
                run model-bench-nograph 120 $BD/bin/test_cuda_perf
        fi
    fi
    echo "==== summary"; cat /tmp/gpu-summary
} 2>&1 | tee "$R"
