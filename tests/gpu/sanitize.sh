#!/usr/bin/env bash
# sanitize.sh — runs ON the GPU machine: compute-sanitizer memcheck over the
# op tests (all but the many-variant prefill matmul sweep, which runs under
# memcheck on its quick shape set, LLORCH_TEST_QUICK=1), the e2e and gpt-oss
# tests, then racecheck over the ops whose kernels share memory between
# threads (prefill matmul, prefill attention, fused mat-vecs). The fused
# mat-vecs run on the quick shape set once per Q4_0 body selection, so every
# fused body (the default ones and each opt-in LLORCH_CUDA_FUSED_Q40* body)
# runs under racecheck (the ones with shared memory) or memcheck (the
# register-only ones) at least once. Writes ${OUT:-.}/sanitize.txt. Needs the
# bundle (LLORCH_BUNDLE_DIR, default .gpu-bundle); tests whose binary is not
# in the bundle are reported as "absent", not run. SANITIZE_PARTS picks parts
# (default all: "ops prefill e2e gptoss race fused").
set -uo pipefail
cd "$(dirname "$0")/../.."
BD=${LLORCH_BUNDLE_DIR:-.gpu-bundle}
B=$BD/bin S=/usr/local/cuda/bin/compute-sanitizer R=${OUT:-.}/sanitize.txt
if [ -f "$BD/bin.tar.xz" ] && [ ! -d "$BD/bin" ]; then xz -dc "$BD/bin.tar.xz" | tar -C "$BD" -xf - || exit 1; fi
export LD_LIBRARY_PATH=$PWD/$BD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LLORCH_MODELS_DIR=$PWD/$BD/models LLORCH_SRC_DIR=$PWD LLORCH_FIXTURES=$PWD/tests/fixtures LLORCH_BUILD_DIR=$PWD/$B
san() { # label timeout tool binary args...
    local label=$1 to=$2 tool=$3 bin=$4; shift 4
    if [ ! -x "$B/$bin" ]; then echo "$label: absent ($B/$bin)"; return; fi
    local t0=$(date +%s)
    timeout "$to" "$S" --tool "$tool" --error-exitcode 9 "$@" "$B/$bin" > /tmp/san.log 2>&1
    local rc=$?
    echo "$label rc=$rc ($(( $(date +%s) - t0 )) s)"
    grep -E "ERROR SUMMARY|LEAK SUMMARY|RACECHECK SUMMARY|Hazard|PASSED|FAILED" /tmp/san.log | head -6
}
P=" ${SANITIZE_PARTS:-ops prefill e2e gptoss race fused} "
part() { [[ $P == *" $1 "* ]]; }
MC="--leak-check full --report-api-errors no"
# the fused Q4_0 body selections (fused.cu); "default" = warppf (K <= 4096), p1 (matmul_add above), pair (other
# ops above), generic (other formats)
SMEM_BODIES="default LLORCH_CUDA_FUSED_Q40=staged LLORCH_CUDA_FUSED_Q40=stream,LLORCH_CUDA_FUSED_BLOCKS=3
  LLORCH_CUDA_FUSED_Q40_LONG=pairpf,LLORCH_CUDA_FUSED_Q40_O=p1 LLORCH_CUDA_FUSED_Q40_LONG=p2
  LLORCH_CUDA_FUSED_Q40_LONG=pair LLORCH_CUDA_FUSED_Q40_LONG=p1 LLORCH_CUDA_FUSED_Q40_LONG=q1"
REG_BODIES="LLORCH_CUDA_FUSED_Q40=warp LLORCH_CUDA_FUSED_Q40_LONG=w6,LLORCH_CUDA_FUSED_Q40_O=w8
  LLORCH_CUDA_FUSED_Q40_LONG=w5 LLORCH_CUDA_FUSED_Q40=stream,LLORCH_CUDA_FUSED_SMEM_KB=16,LLORCH_CUDA_FUSED_BLOCKS=5"
{
    part ops && LLORCH_TEST_SKIP=test_matmul_prefill san "memcheck test_cuda_ops (all but test_matmul_prefill)" 240 memcheck test_cuda_ops $MC
    part prefill && LLORCH_TEST_QUICK=1 LLORCH_TEST_ONLY=test_matmul_prefill san "memcheck test_matmul_prefill (quick shapes)" 120 memcheck test_cuda_ops $MC
    part e2e && san "memcheck test_cuda_e2e" 60 memcheck test_cuda_e2e $MC
    part gptoss && san "memcheck test_cuda_gptoss" 60 memcheck test_cuda_gptoss $MC
    if part race; then
        for t in test_matmul test_attention test_attn_rope; do
            LLORCH_TEST_ONLY=$t san "racecheck $t" 80 racecheck test_cuda_ops
        done
    fi
    part fused || exit 0
    for v in $SMEM_BODIES; do
        ( [ "$v" = default ] || export ${v//,/ }; export LLORCH_TEST_QUICK=1 LLORCH_TEST_ONLY=test_fused_matmul
          san "racecheck test_fused_matmul (quick) $v" 60 racecheck test_cuda_ops )
    done
    for v in $REG_BODIES; do
        ( export ${v//,/ } LLORCH_TEST_QUICK=1 LLORCH_TEST_ONLY=test_fused_matmul
          san "memcheck test_fused_matmul (quick) $v" 60 memcheck test_cuda_ops $MC )
    done
} 2>&1 | tee "$R"
