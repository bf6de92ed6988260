#!/usr/bin/env bash
# orch_bench.sh — orchestratord benchmarks (issue 6, acceptance 12). Not a test.
#   bench/orch_bench.sh [BUILD_DIR]          (default build-bench)
# Env: N_ADMIT (2000), N_STREAMS (1000), HOLD_S (10), REPS (7), MAX_TOKENS (256),
#      SCHED_ITERS (2000), LLORCH_MODELS_DIR (default ../shared/models),
#      PHASES (default "sched admit relay streams fanout": the ones to run).
# Starts one worker-cpud (stories260K, 1 thread) and one orchestratord, both on
# 127.0.0.1 ephemeral ports, state in a temp dir; the benchmark plays the
# pools (100 fake pools x 8 workers + one pool listing the real worker).
# Kills only the pids it started. The fan-out phase SIGSTOPs/SIGCONTs its own
# worker; a job-control shell that watches its process group may see that as a
# stopped job, so from such a shell run it as `setsid bench/orch_bench.sh`.
# Results and method: docs/PERF.md "Orchestrator".
set -u
cd "$(dirname "$0")/.."
B=${1:-build-bench}
N_ADMIT=${N_ADMIT:-2000} N_STREAMS=${N_STREAMS:-1000} HOLD_S=${HOLD_S:-10}
REPS=${REPS:-7} MAX_TOKENS=${MAX_TOKENS:-256} SCHED_ITERS=${SCHED_ITERS:-2000}
MD=${LLORCH_MODELS_DIR:-../shared/models}
PHASES=" ${PHASES:-sched admit relay streams fanout} "
on() { [[ "$PHASES" == *" $1 "* ]]; }
MODEL=$(realpath "$MD/stories260K.gguf") || { echo "no stories260K.gguf in $MD"; exit 1; }
for b in orchestratord worker-cpud bench_orch_load; do
  [ -x "$B/$b" ] || { echo "missing $B/$b (cmake --build $B --target orchestratord worker-cpud bench_orch_load bench_sched)"; exit 1; }
done
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
T=$(mktemp -d /tmp/orch-bench-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.3
            for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT INT TERM

start() { # start LOGNAME BIN ARGS... -> sets PORT and PID (waits for the "listening" line)
  local log=$T/$1; shift
  "$@" >"$log.out" 2>"$log.err" &
  PID=$!; PIDS+=("$PID")
  for _ in $(seq 100); do
    grep -q listening "$log.out" 2>/dev/null && break; sleep 0.1
  done
  PORT=$(grep -m1 listening "$log.out" | sed 's/.*://')
  [ -n "$PORT" ] || { echo "$1 did not start"; cat "$log.err"; exit 1; }
}

cat >"$T/orch.yaml" <<EOF
models:
  stories:
    model_ref: 'file:$MODEL'
    context_length: 512
    memory_bytes: 7GB      # > the real pool's free 6 GB: a job waits for w1, never starts a second worker
  fake:
    model_ref: 'hf:bench/fake::file=fake.gguf'
    context_length: 2048
    memory_bytes: 10GiB
queue:
  capacity: -1
heartbeat: {interval_ms: 3600000, missed_threshold: 3}
EOF

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); loadavg $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short=12 HEAD)"
if on sched && [ -x "$B/bench_sched" ]; then
  echo "== scheduling decision (bench_sched, in-process, 100 pools x 8 GPUs x 8 workers)"
  "$B/bench_sched" "$SCHED_ITERS"
fi

start worker "$B/worker-cpud" --worker-id w1 --model "$MODEL" --port 0 --threads 1
WPORT=$PORT WPID=$PID
start orch "$B/orchestratord" --config "$T/orch.yaml" --bind 127.0.0.1:0 --state "$T/state.db" --log-level warn
OPORT=$PORT OPID=$PID
[ -s "$T/orch.err" ] && grep -qi 'unknown\|usage' "$T/orch.err" && { cat "$T/orch.err"; exit 1; }
L=$B/bench_orch_load
$L setup "$OPORT" 100 8 'hf:bench/fake::file=fake.gguf' || exit 1
$L pool "$OPORT" real w1 "http://127.0.0.1:$WPORT" "file:$MODEL" || exit 1
if on admit; then
  echo "== admission (orchestratord, registry 100 pools x 8 workers + 1 real; loadavg $(cut -d' ' -f1 /proc/loadavg))"
  $L admit "$OPORT" "$N_ADMIT" fake
fi
if on relay; then
  echo "== relay (stories260K greedy, max_tokens $MAX_TOKENS, $REPS reps; loadavg $(cut -d' ' -f1 /proc/loadavg))"
  $L relay "$OPORT" "$WPORT" "$REPS" "$MAX_TOKENS" stories
fi
if on streams; then
  echo "== $N_STREAMS concurrent SSE streams (loadavg $(cut -d' ' -f1 /proc/loadavg))"
  $L streams "$OPORT" "$OPID" "$N_STREAMS" fake "$HOLD_S"
fi
if on fanout; then
  echo "== $N_STREAMS clients on one live job (fan-out; loadavg $(cut -d' ' -f1 /proc/loadavg))"
  $L fanout "$OPORT" "$OPID" "$WPID" "$N_STREAMS" "$MAX_TOKENS" stories
fi
echo "== orchestratord still alive: $(kill -0 "$OPID" 2>/dev/null && echo yes || echo NO); warnings/errors logged: $(grep -c . "$T/orch.err")"
grep -v '^$' "$T/orch.err" | head -5
echo "== loadavg at end $(cut -d' ' -f1-3 /proc/loadavg)"
