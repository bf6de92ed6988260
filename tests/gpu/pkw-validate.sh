#!/usr/bin/env bash
# pkw-validate.sh — runs ON the GPU machine: what making pkw.cu the default
# decode path needs, in one call: the whole op test binary and the e2e test
# (default switches, i.e. the kernel), the decode KL test on the generated
# Qwen2.5-0.5B, compute-sanitizer memcheck and racecheck of the decode tests,
# and `llorch bench` of Qwen (default, LLORCH_CUDA_PERSIST=0) and, with
# VALIDATE_LLAMA=1, Llama-2-7B (which composes: its layers do not fit).
# Needs the bundle (LLORCH_BUNDLE_DIR, default .gpu-bundle) with test_cuda_ops,
# test_cuda_e2e, test_cuda_decode_kl, llorch. Writes ${OUT:-.}/validate.txt.
# VALIDATE_PARTS picks parts (default "tests san kl bench"); more parts:
# "tall" (test_matmul_tall, its memcheck and the vocabulary mat-vec kernel
# bench, LLORCH_BENCH_KERNELS=tall), "pipe" (test_cuda_pipeline on the
# generated Qwen). VALIDATE_BENCH: the `llorch bench` runs of Qwen, each a
# ","-joined list of VAR=VALUE settings or "default" (default: "default
# LLORCH_CUDA_PERSIST=0"), in that order. Part "timing": test_decode_layers
# with LLORCH_CUDA_PERSIST_TIMING=2 (every block's per-step sums) for each
# entry of VALIDATE_TIMING (same form as VALIDATE_BENCH; default "default").
# Part "pwdot": test_cuda_perf's dot-phase microbenchmark (pw_dot_bench.cu).
# Part "samp": test_sample (device sampler against the host, per-call
# timings) and `llorch generate` throughput greedy / sampled on Qwen; part
# "sampsan": test_sample under memcheck and racecheck, both with
# LLORCH_TEST_SAMPLE_QUICK=1 (2 draws per case, every case, no timings).
# Part "ab": VALIDATE_AB_ROUNDS (default 3) alternating `llorch bench` runs
# of Qwen by a baseline llorch (VALIDATE_BASE, default bin/llorch-base) and
# this bundle's.
# Part "abenv": VALIDATE_AB_ROUNDS alternating tg128 runs of this bundle's
# llorch under each env setting of VALIDATE_ABENV (see the part's comment).
# Part "head": test_head under memcheck and racecheck (LLORCH_TEST_QUICK=1)
# and greedy `llorch generate` on Qwen with the decode head on and off
# (LLORCH_CUDA_HEAD=0): the same text.
set -uo pipefail
cd "$(dirname "$0")/../.."
BD=${LLORCH_BUNDLE_DIR:-.gpu-bundle}
[ -d "$BD/bin" ] || xz -dc "$BD/bin.tar.xz" | tar -C "$BD" -xf -
B=$BD/bin MD=/tmp/llorch-models R=${OUT:-.}/validate.txt S=/usr/local/cuda/bin/compute-sanitizer
export LD_LIBRARY_PATH=$PWD/$BD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LLORCH_MODELS_DIR=$PWD/$BD/models LLORCH_SRC_DIR=$PWD LLORCH_FIXTURES=$PWD/tests/fixtures LLORCH_BUILD_DIR=$PWD/$B
mkdir -p $MD
Q=$MD/qwen2.5-0.5b-q4_k_m.gguf L=$MD/llama-2-7b-q4_0.gguf
[ -f $Q ] || $B/llorch gguf make --preset qwen2.5-0.5b --type Q4_K_M -o $Q > $MD/qwen.log 2>&1 &
if [ "${VALIDATE_LLAMA:-0}" = 1 ]; then
    [ -f $L ] || $B/llorch gguf make --preset llama-2-7b --type Q4_0 -o $L > $MD/llama.log 2>&1 &
fi
P=" ${VALIDATE_PARTS:-tests san kl bench} "
has() { case "$P" in *" $1 "*) return 0;; esac; return 1; }
step() { # label timeout cmd... (output in /tmp/v.log, summary lines into R)
    local label=$1 to=$2; shift 2
    local t0=$(date +%s)
    timeout "$to" "$@" > /tmp/v.log 2>&1
    local rc=$?
    echo "== $label rc=$rc ($(( $(date +%s) - t0 )) s)"
    grep -E "ERROR SUMMARY|^    [A-E] [a-z]+ wait|^    at |step ends|RACECHECK SUMMARY|Hazard|PASSED|FAILED|ERROR|mean KL|top-1 [0-9]|decode_layers pos [0-9]+ head_dim [0-9]+: ok|tg128|pp512|differs|Failure|error:|896x151936|pipeline|Invalid|Program hit|   at |by thread|speculate|per-block step|sample timing|device draws|tok/s|pkw dot|^  [A-E] [a-z]|DIFFERS|^ {4}[A-Ee][a-z]* |timing pos" /tmp/v.log | head -${VALIDATE_LINES:-30}
}
{
    echo "==== pkw-validate $(date -u +%FT%TZ) commit $(cat $BD/COMMIT)"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
    if has tests; then
        step test_cuda_ops 300 $B/test_cuda_ops
        step test_cuda_e2e 120 $B/test_cuda_e2e
    fi
    if has san; then
        LLORCH_TEST_ONLY=test_decode_layers step memcheck-decode_layers 300 $S --tool memcheck --error-exitcode 9 $B/test_cuda_ops
        LLORCH_TEST_ONLY=test_decode_layers step racecheck-decode_layers 300 $S --tool racecheck --error-exitcode 9 $B/test_cuda_ops
    fi
    wait
    has kl && LLORCH_GPU_QWEN_MODEL=$Q step test_cuda_decode_kl 240 $B/test_cuda_decode_kl
    if has tall; then
        LLORCH_TEST_ONLY=test_matmul_tall step test_matmul_tall 200 $B/test_cuda_ops
        LLORCH_TEST_ONLY=test_matmul_tall step memcheck-matmul_tall 300 $S --tool memcheck --error-exitcode 9 $B/test_cuda_ops
        LLORCH_CUDA_BENCH=1 LLORCH_BENCH_KERNELS=tall step "kernel bench tall" 120 $B/test_cuda_perf
    fi
    if has timing; then
        for v in ${VALIDATE_TIMING:-default}; do
            e=""
            [ "$v" != default ] && e=${v//,/ }
            VALIDATE_LINES=${VALIDATE_LINES:-60} LLORCH_TEST_ONLY=test_decode_layers LLORCH_CUDA_PERSIST_TIMING=2 \
                step "timing ($v)" 200 env $e $B/test_cuda_ops
        done
    fi
    has pwdot && VALIDATE_LINES=${VALIDATE_LINES:-40} LLORCH_CUDA_BENCH=1 LLORCH_BENCH_KERNELS=pwdot step "pwdot (dot phases alone)" 120 $B/test_cuda_perf
    if has samp; then
        VALIDATE_LINES=60 LLORCH_TEST_ONLY=test_sample step test_sample 300 $B/test_cuda_ops
        for a in "--temperature 0" "--temperature 1 --top-k 0 --top-p 1" "--temperature 0.8 --top-k 40 --top-p 0.95" \
            "--temperature 0.8 --top-k 0 --top-p 0.95"; do
            step "llorch generate qwen 256 ($a)" 120 $B/llorch generate --backend cuda --model $Q --prompt "Once upon a time" \
                --max-tokens 256 --seed 7 --min-p 0 $a
        done
    fi
    if has sampsan; then
        LLORCH_TEST_ONLY=test_sample LLORCH_TEST_SAMPLE_QUICK=1 step memcheck-test_sample 400 \
            $S --tool memcheck --error-exitcode 9 $B/test_cuda_ops
        LLORCH_TEST_ONLY=test_sample LLORCH_TEST_SAMPLE_QUICK=1 step racecheck-test_sample 500 \
            $S --tool racecheck --error-exitcode 9 $B/test_cuda_ops
    fi
    has pipe && LLORCH_GPU_QWEN_MODEL=$Q step test_cuda_pipeline 240 $B/test_cuda_pipeline
    if has head; then
        LLORCH_TEST_ONLY=test_head LLORCH_TEST_QUICK=1 step memcheck-test_head 300 \
            $S --tool memcheck --error-exitcode 9 $B/test_cuda_ops
        LLORCH_TEST_ONLY=test_head LLORCH_TEST_QUICK=1 step racecheck-test_head 300 \
            $S --tool racecheck --error-exitcode 9 $B/test_cuda_ops
        for h in 1 0; do
            LLORCH_CUDA_HEAD=$h $B/llorch generate --backend cuda --model $Q --prompt "Once upon a time" \
                --max-tokens 128 --seed 7 --temperature 0 > /tmp/gen-head$h.txt 2> /tmp/gen-head$h.err
        done
        if cmp -s /tmp/gen-head1.txt /tmp/gen-head0.txt && [ -s /tmp/gen-head1.txt ]; then
            echo "head greedy 128 tokens: PASSED (same text with LLORCH_CUDA_HEAD=0, $(wc -c < /tmp/gen-head1.txt) bytes)"
        else
            echo "head greedy 128 tokens: DIFFERS from LLORCH_CUDA_HEAD=0"; head -c 600 /tmp/gen-head1.txt /tmp/gen-head0.txt /tmp/gen-head1.err
        fi
    fi
    if has bench; then
        for v in ${VALIDATE_BENCH:-default LLORCH_CUDA_PERSIST=0}; do
            e=""
            [ "$v" != default ] && e=${v//,/ }
            step "llorch bench qwen ($v)" 240 env $e $B/llorch bench --backend cuda --model $Q -p 512 -n 128 -r 5
        done
    fi
    if has ab; then
        # alternating runs of a baseline llorch (VALIDATE_BASE, default
        # bin/llorch-base of the bundle) and this bundle's llorch in one call:
        # the card's run-to-run spread is +-1-2%, so only such pairs compare
        base=${VALIDATE_BASE:-$B/llorch-base}
        for i in $(seq ${VALIDATE_AB_ROUNDS:-3}); do
            step "ab $i base qwen" 240 $base bench --backend cuda --model $Q -p 512 -n 128 -r 5
            step "ab $i new qwen" 240 $B/llorch bench --backend cuda --model $Q -p 512 -n 128 -r 5
        done
    fi
    if has abenv; then
        # alternating tg128 runs (no prompt: -p 0) of this bundle's llorch
        # under each setting of VALIDATE_ABENV (","-joined VAR=VALUE lists
        # or "default"), VALIDATE_AB_ROUNDS rounds; then each setting's
        # per-run medians and their median. Runs differ by ~2% from process
        # to process on this card (the same binary), so only many
        # alternating rounds compare
        : > /tmp/abenv.txt
        for i in $(seq ${VALIDATE_AB_ROUNDS:-3}); do
            for v in ${VALIDATE_ABENV:-default}; do
                e=""
                [ "$v" != default ] && e=${v//,/ }
                t=$(env $e timeout 120 $B/llorch bench --backend cuda --model $Q -p 0 -n 128 -r 5 2>/dev/null |
                    awk -F'|' '/tg128/ {gsub(/ /, "", $3); print $3}')
                echo "$v ${t:-fail}" >> /tmp/abenv.txt
            done
        done
        for v in ${VALIDATE_ABENV:-default}; do
            runs=$(awk -v v="$v" '$1 == v && $2 != "fail" {printf " %s", $2}' /tmp/abenv.txt)
            printf '%s\n' $runs | sort -n | awk -v v="$v" -v runs="$runs" 'NF {a[++n] = $1} END {
                m = n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : 0
                printf "abenv %-40s tg128 median %.1f of %d runs:%s\n", v, m, n, runs }'
        done
    fi
    if has bench && [ "${VALIDATE_LLAMA:-0}" = 1 ]; then
        step "llorch bench llama (default)" 240 $B/llorch bench --backend cuda --model $L -p 512 -n 128 -r 5
    fi
} > "$R" 2>&1
cat "$R"
