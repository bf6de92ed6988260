#!/usr/bin/env bash
# pkw-quick.sh — runs ON the GPU machine: the decode tests of the
# weights-in-shared-memory kernel (LLORCH_CUDA_PERSIST=2) and the Qwen2.5-0.5B
# model bench with it off/on, alternating, in one call on one card.
# Needs the bundle (tools/gpu-bundle.sh, carried). Writes ${OUT:-.}/pkw.txt.
# PKW_TESTS (default "test_decode_layers test_attn_rope test_decode_block"),
# PKW_VARIANTS (default "0 2 2,LLORCH_CUDA_PKW_WARPS=32 0 2 2,LLORCH_CUDA_PKW_WARPS=32": a
# LLORCH_CUDA_PERSIST value, then ","-joined VAR=VALUE settings), PKW_LLAMA=1 adds Llama-2-7B,
# PKW_E2E=1 runs test_cuda_e2e, PKW_CLI=1 adds `llorch bench` (Qwen) with 0 and 2, PKW_GREEDY=1 compares
# (PKW_KL=1: test_cuda_decode_kl on the generated Qwen) # 64 greedy ids (CPU, CUDA with 0 and 2; Qwen), PKW_ENV adds
# VAR=VALUE settings to every bench run (e.g. LLORCH_CUDA_PKW_WARPS=32).
set -uo pipefail
cd "$(dirname "$0")/../.."
BD=${LLORCH_BUNDLE_DIR:-.gpu-bundle}
[ -d "$BD/bin" ] || xz -dc "$BD/bin.tar.xz" | tar -C "$BD" -xf -
B=$BD/bin MD=/tmp/llorch-models R=${OUT:-.}/pkw.txt
export LD_LIBRARY_PATH=$PWD/$BD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LLORCH_MODELS_DIR=$PWD/$BD/models LLORCH_SRC_DIR=$PWD LLORCH_FIXTURES=$PWD/tests/fixtures LLORCH_BUILD_DIR=$PWD/$B
mkdir -p $MD
Q=$MD/qwen2.5-0.5b-q4_k_m.gguf L=$MD/llama-2-7b-q4_0.gguf
[ -f $Q ] || $B/llorch gguf make --preset qwen2.5-0.5b --type Q4_K_M -o $Q > $MD/qwen.log 2>&1 &
QP=$!
M=$Q
if [ "${PKW_LLAMA:-0}" = 1 ]; then
    [ -f $L ] || $B/llorch gguf make --preset llama-2-7b --type Q4_0 -o $L > $MD/llama.log 2>&1 &
    M="$Q $L"
fi
{
    echo "==== pkw-quick $(date -u +%FT%TZ) commit $(cat $BD/COMMIT)"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    for t in ${PKW_TESTS:-test_decode_layers test_attn_rope test_decode_block}; do
        LLORCH_TEST_ONLY=$t timeout 150 $B/test_cuda_ops > /tmp/pkw-t.log 2>&1
        echo "test $t rc=$?"
        grep -E "decode_layers pos|FAIL|rror|ok \(|PASSED" /tmp/pkw-t.log | head -40
    done
    [ -n "${PKW_E2E:-}" ] && { timeout 120 $B/test_cuda_e2e > /tmp/pkw-e.log 2>&1; echo "e2e rc=$?"; }
    wait
    if [ "${PKW_KL:-0}" = 1 ]; then # decode KL against the CPU on the real-shape Qwen, both kernels
        LLORCH_GPU_QWEN_MODEL=$Q timeout 240 $B/test_cuda_decode_kl > /tmp/pkw-kl.log 2>&1
        echo "test_cuda_decode_kl rc=$?"
        grep -E "mean KL|FAIL|rror|PASSED|skipped" /tmp/pkw-kl.log | head -10
    fi
    for w in ${PKW_VARIANTS:-0 2 2,LLORCH_CUDA_PKW_WARPS=32 0 2 2,LLORCH_CUDA_PKW_WARPS=32}; do
        v=${w%%,*} extra=""
        [ "$w" != "$v" ] && extra=${w#*,} && extra=${extra//,/ }
        echo "==== LLORCH_CUDA_PERSIST=$v $extra ${PKW_ENV:-}"
        env LLORCH_CUDA_PERSIST=$v $extra ${PKW_ENV:-} LLORCH_CUDA_BENCH=1 LLORCH_BENCH_SKIP_KERNELS=1 LLORCH_BENCH_MODELS="$M" \
            timeout 120 $B/test_cuda_perf 2>&1 | grep -E "pp512|tg128|rror|FAIL|llorch cuda"
    done
    if [ "${PKW_GREEDY:-0}" = 1 ]; then # greedy ids: CPU, CUDA composition, CUDA with the kernel
        for b in "cpu 0" "cuda 0" "cuda 2"; do
            set -- $b
            env LLORCH_CUDA_PERSIST=$2 timeout 200 $B/llorch generate --backend $1 --model $Q --prompt "The quick brown fox" \
                --max-tokens 64 --temperature 0 --print-ids 2>/dev/null | tail -1 > /tmp/pkw-ids-$1-$2.txt
            echo "greedy $1 PERSIST=$2: $(head -c 400 /tmp/pkw-ids-$1-$2.txt)"
        done
        for v in "cuda-0" "cuda-2"; do
            cmp -s /tmp/pkw-ids-cpu-0.txt /tmp/pkw-ids-$v.txt && echo "greedy $v: same ids as cpu" || echo "greedy $v: DIFFERS from cpu"
        done
    fi
    if [ "${PKW_CLI:-0}" = 1 ]; then # the issue's measurement: llorch bench, Qwen, persistent off / on
        for v in 0 2; do
            echo "==== llorch bench LLORCH_CUDA_PERSIST=$v"
            env LLORCH_CUDA_PERSIST=$v timeout 240 $B/llorch bench --backend cuda --model $Q -p 512 -n 128 -r 5 2>&1 | tail -6
        done
    fi
} > "$R" 2>&1
cat "$R"
