#!/usr/bin/env bash
# gpu-run.sh — runs ON the GPU machine, in the repository root, after
# tools/gpu-bundle.sh made .gpu-bundle/ here. Runs the GPU tests, then
# compute-sanitizer memcheck and racecheck on the op tests, then the
# benchmarks; writes ONE results file, $OUT/gpu-results.txt (or ./gpu-results.txt).
# Steps can be chosen: tools/gpu-run.sh [tests] [memcheck] [racecheck] [bench] [e2e]
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu-bundle ] || { echo "no .gpu-bundle (run tools/gpu-bundle.sh here first, carry it)" >&2; exit 1; }
R=${OUT:-.}/gpu-results.txt
export LD_LIBRARY_PATH=$PWD/.gpu-bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LLORCH_MODELS_DIR=$PWD/.gpu-bundle/models
export LLORCH_SRC_DIR=$PWD LLORCH_FIXTURES=$PWD/tests/fixtures LLORCH_BUILD_DIR=$PWD/.gpu-bundle/bin
SAN=/usr/local/cuda/bin/compute-sanitizer
steps=${*:-tests memcheck racecheck bench}
has() { case " $steps " in *" $1 "*) return 0;; esac; return 1; }
run() { # name timeout cmd...
    local name=$1 to=$2; shift 2
    local t0=$(date +%s.%N)
    echo "---- $name: $*"
    timeout "$to" "$@"; local rc=$?
    printf -- "---- %s: rc=%d (%.1f s)\n" "$name" "$rc" "$(echo "$(date +%s.%N) - $t0" | bc)"
    echo "$name rc=$rc" >> /tmp/gpu-summary
}
rm -f /tmp/gpu-summary
{
    echo "==== llama-orch GPU run $(date -u +%FT%TZ)  commit $(cat .gpu-bundle/COMMIT)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader
    if has tests; then
        for t in .gpu-bundle/bin/test_cuda_*; do
            case $t in *perf) continue;; esac
            run "$(basename "$t")" 300 "$t"
        done
    fi
    if has memcheck && [ -x "$SAN" ]; then
        run memcheck 200 "$SAN" --tool memcheck --leak-check full --error-exitcode 9 .gpu-bundle/bin/test_cuda_ops
    fi
    if has racecheck && [ -x "$SAN" ]; then
        run racecheck 200 "$SAN" --tool racecheck --error-exitcode 9 .gpu-bundle/bin/test_cuda_ops
    fi
    if has bench; then
        LLORCH_CUDA_BENCH=1 run perf 240 .gpu-bundle/bin/test_cuda_perf
    fi
    echo "==== summary"; cat /tmp/gpu-summary
} 2>&1 | tee "$R"
