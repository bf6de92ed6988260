#!/usr/bin/env bash
# test_cli_commands — llorch run/status/pull/place against a real system that
# tools/up.sh starts with the model taken from an hf: ref (the pool's
# provisioner downloads it from a local stand-in for the Hugging Face hub: a
# plain HTTP file server, LLORCH_HF_ENDPOINT — the only test double here).
#   1. up.sh with an hf: model: fetched into the run directory's cache
#      (byte-identical to the original), loaded, served;
#   2. llorch pull: path + sha256 on stdout, progress on stderr; a missing
#      file fails with the pool's code;
#   3. llorch run: greedy text, stdin prompt, seeded sampling reproducible,
#      batch priority; refusals exit 1 with the orchestrator's code, usage 2;
#   4. a job waiting over 2 s says so on stderr;
#      Ctrl-C: on a queued job (cancelled at once; kept queued by freezing the
#      pool manager so no second worker can start) and on a running job whose
#      worker is frozen (cancelled by the orchestrator's deadline): exit 130,
#      the job's state is "cancelled", the worker serves the next job;
#   5. llorch place / place --remove; removing twice is NOT_FOUND (exit 1);
#   6. llorch status --json counts the cancelled tasks;
#   7. llorch status shows a pool that stopped heartbeating as UNAVAILABLE,
#      and available again once it resumes;
#   8. a cut event stream is resumed with Last-Event-ID: same text;
#   9. LLORCH_TOKEN reaches a lab orchestrator as the bearer token.
set -u
SRC=${LLORCH_SRC_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${LLORCH_BUILD_DIR:-$SRC/build}
MODELS=${LLORCH_MODELS_DIR:-$SRC/../shared/models}
MODEL=$MODELS/stories260K.gguf
LLORCH=$BUILD/llorch
REF="hf:ggml-org/models@main::file=tinyllamas/stories260K.gguf"

fail() { echo "FAIL: $*" >&2; exit 1; }
[ -r "$MODEL" ] || { echo "SKIP: $MODEL not found"; exit 77; }
for b in llorch orchestratord pool-managerd worker-cpud; do
  [ -x "$BUILD/$b" ] || fail "$BUILD/$b is not built"
done
command -v curl >/dev/null || { echo "SKIP: curl is needed"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the stand-in hub"; exit 77; }
command -v sha256sum >/dev/null || { echo "SKIP: sha256sum is needed"; exit 77; }

RUN=$(mktemp -d "${TMPDIR:-/tmp}/llorch-cli-test.XXXXXX")
UP="" HUB="" FROZEN="" PROXY="" LAB=""
alive() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
  local st
  st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
wait_exit() { # pid seconds → the exit status, 124 when still running
  local n=$(($2 * 10))
  while [ $n -gt 0 ] && alive "$1"; do sleep 0.1; n=$((n - 1)); done
  alive "$1" && return 124
  wait "$1"
}
cleanup() {
  local rc=$?
  for f in $FROZEN; do kill -CONT "$f" 2>/dev/null; done
  if alive "$UP"; then kill -TERM "$UP"; wait_exit "$UP" 40 >/dev/null; fi
  if alive "$HUB"; then kill -TERM "$HUB"; wait "$HUB" 2>/dev/null; fi
  if alive "$PROXY"; then kill -TERM "$PROXY"; wait "$PROXY" 2>/dev/null; fi
  if alive "$LAB"; then kill -TERM "$LAB"; wait "$LAB" 2>/dev/null; fi
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    for f in up.stdout up.stderr orchestratord.log pool-managerd.log hub.log; do
      [ -f "$RUN/$f" ] && { echo "--- $f (tail)" >&2; tail -n 20 "$RUN/$f" >&2; }
    done
  fi
  rm -rf "$RUN"
}
trap cleanup EXIT
metric() { curl -s "$ORCH_URL/metrics" | sed -n "s/^$1{[^}]*$2[^}]*} //p" | head -1; }
wait_metric() { # name label value seconds
  local n=$(($4 * 10))
  while [ $n -gt 0 ]; do [ "$(metric "$1" "$2")" = "$3" ] && return 0; sleep 0.1; n=$((n - 1)); done
  return 1
}

# ---- the stand-in hub --------------------------------------------------------------
mkdir -p "$RUN/hub/ggml-org/models/resolve/main/tinyllamas"
cp "$MODEL" "$RUN/hub/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$RUN/hub" >"$RUN/hub.log" 2>&1 &
HUB=$!
HUB_PORT=""
for _ in $(seq 1 100); do
  HUB_PORT=$(sed -n 's/.*port \([0-9][0-9]*\).*/\1/p' "$RUN/hub.log" | head -1)
  [ -n "$HUB_PORT" ] && break
  sleep 0.1
done
[ -n "$HUB_PORT" ] || fail "the stand-in hub did not start"

# ---- 1. up.sh with an hf: model --------------------------------------------------------
set -m
LLORCH_UP_BUILD_DIR=$BUILD LLORCH_UP_RUN_DIR=$RUN/up LLORCH_UP_ORCH_PORT=0 LLORCH_UP_POOL_PORT=0 \
LLORCH_UP_POOL_ID=pool-clitest LLORCH_UP_HEARTBEAT_MS=1000 LLORCH_UP_MODEL_REF=$REF LLORCH_UP_READY_TIMEOUT_S=60 \
LLORCH_HF_ENDPOINT=http://127.0.0.1:$HUB_PORT LLORCH_MODEL_MIRROR='' \
  "$SRC/tools/up.sh" >"$RUN/up.stdout" 2>"$RUN/up.stderr" &
UP=$!
set +m
for _ in $(seq 1 1200); do
  [ -s "$RUN/up/up.env" ] && break
  alive "$UP" || break
  sleep 0.1
done
ln -sf "$RUN/up/orchestratord.log" "$RUN/orchestratord.log"
ln -sf "$RUN/up/pool-managerd.log" "$RUN/pool-managerd.log"
[ -s "$RUN/up/up.env" ] || fail "up.sh did not come up with an hf: model"
. "$RUN/up/up.env"
[ -n "${WORKER_ID:-}" ] || fail "no worker ready"
grep -q "fetching $REF" "$RUN/up.stderr" || fail "up.sh did not say it fetches the model"
cached=$(find "$RUN/up/models" -name '*.gguf' -type f | head -1)
[ -n "$cached" ] || fail "nothing in the pool's cache $RUN/up/models"
want_sha=$(sha256sum "$MODEL" | cut -d' ' -f1)
[ "$(sha256sum "$cached" | cut -d' ' -f1)" = "$want_sha" ] || fail "the cached copy differs from the original"
grep -q "no worker started for the placement" "$RUN/up.stderr" &&
  echo "# note: orchestratord did not act on the placement; up.sh's 1-token fallback loaded the model"
echo "ok 1 - up.sh fetched $REF through the pool into its cache and serves it ($WORKER_ID)"

# ---- 2. llorch pull ------------------------------------------------------------------
out=$("$LLORCH" pull "$REF" --pool "$POOL_URL" 2>"$RUN/pull.err") || { cat "$RUN/pull.err" >&2; fail "pull exited $?"; }
[ "$(echo "$out" | sed -n 1p)" = "$cached" ] || fail "pull printed path '$(echo "$out" | sed -n 1p)', the cache has '$cached'"
echo "$out" | grep -qx "sha256 $want_sha" || fail "pull did not print the sha256: $out"
grep -q '100.0%' "$RUN/pull.err" || { cat "$RUN/pull.err" >&2; fail "no progress bar reaching 100%"; }
# by pool id and alias, through the orchestrator
out2=$("$LLORCH" pull stories --pool pool-clitest --url "$ORCH_URL" 2>/dev/null) || fail "pull by alias/pool id failed"
[ "$(echo "$out2" | sed -n 1p)" = "$cached" ] || fail "pull by alias gave '$out2'"
"$LLORCH" pull "hf:ggml-org/models@main::file=nope/missing.gguf" --pool "$POOL_URL" >/dev/null 2>"$RUN/pull2.err"
rc=$?
[ $rc -eq 1 ] || fail "pull of a missing file exited $rc"
grep -Eq '^llorch pull: [A-Z_]+: ' "$RUN/pull2.err" || { cat "$RUN/pull2.err" >&2; fail "no code in the failed pull's message"; }
"$LLORCH" pull "$REF" --pool http://127.0.0.1:1 >/dev/null 2>&1 && fail "pull from a closed port succeeded"
echo "ok 2 - llorch pull: path, sha256, progress; missing file -> $(sed -n 's/^llorch pull: \([A-Z_]*\): .*/\1/p' "$RUN/pull2.err")"

# ---- 3. llorch run ---------------------------------------------------------------------
export LLORCH_ORCH_URL=$ORCH_URL
greedy=$("$LLORCH" run stories "Once upon a time" --max-tokens 12 --temperature 0 2>/dev/null) || fail "run exited $?"
want=$("$LLORCH" generate --model "$MODEL" --prompt "Once upon a time" --max-tokens 12 --temperature 0 2>/dev/null)
[ "$greedy" = "$want" ] || fail "run '$greedy' != generate '$want'"
piped=$(printf 'Once upon a time' | "$LLORCH" run stories - --max-tokens 12 --temperature 0 -q 2>"$RUN/q.err") || fail "stdin prompt"
[ "$piped" = "$greedy" ] || fail "stdin prompt gave '$piped'"
[ -s "$RUN/q.err" ] && fail "--quiet still printed: $(cat "$RUN/q.err")"
s1=$("$LLORCH" run stories "Once upon a time" --max-tokens 24 --temperature 0.9 --seed 1234 --priority batch 2>/dev/null) || fail "seeded run"
s2=$("$LLORCH" run stories "Once upon a time" --max-tokens 24 --temperature 0.9 --seed 1234 2>/dev/null) || fail "seeded run 2"
[ -n "$s1" ] && [ "$s1" = "$s2" ] || fail "the same seed gave '$s1' and '$s2'"
"$LLORCH" run nosuchmodel "hi" >/dev/null 2>"$RUN/e1"
rc=$?
[ $rc -eq 1 ] && grep -q "MODEL_NOT_FOUND" "$RUN/e1" || fail "unknown model: exit $rc, $(cat "$RUN/e1")"
"$LLORCH" run stories "hi" --max-tokens 100000 >/dev/null 2>"$RUN/e2"
rc=$?
[ $rc -eq 1 ] && grep -q "CONTEXT_LENGTH_EXCEEDED" "$RUN/e2" || fail "too long: exit $rc, $(cat "$RUN/e2")"
"$LLORCH" run stories "hi" --temperature hot >/dev/null 2>&1
[ $? -eq 2 ] || fail "a bad flag value is not a usage error"
"$LLORCH" run stories "hi" --url http://127.0.0.1:1 >/dev/null 2>"$RUN/e3"
rc=$?
[ $rc -eq 1 ] && grep -q "cannot reach" "$RUN/e3" || fail "closed port: exit $rc, $(cat "$RUN/e3")"
echo "ok 3 - llorch run: greedy == generate, stdin, seeds, refusals (MODEL_NOT_FOUND, CONTEXT_LENGTH_EXCEEDED, usage, unreachable)"

# ---- 4. Ctrl-C ----------------------------------------------------------------------------
FROZEN=$(pgrep -P "$POOL_PID" | head -1)
[ -n "$FROZEN" ] || fail "no worker process"
kill -STOP "$FROZEN"
set -m # background jobs keep SIGINT
"$LLORCH" run stories "Once upon a time" --max-tokens 8 >"$RUN/a.out" 2>"$RUN/a.err" &
A=$!
set +m
wait_metric orchd_workers 'status="busy"' 1 30 || fail "job A never reached the (frozen) worker"
# the pool manager frozen too: the start of a second worker for B cannot
# complete, so B stays in the queue
kill -STOP "$POOL_PID"
FROZEN="$FROZEN $POOL_PID"
set -m
"$LLORCH" run stories "Once upon a time" --max-tokens 8 >"$RUN/b.out" 2>"$RUN/b.err" &
B=$!
set +m
wait_metric orchd_queue_depth 'priority="interactive"' 1 30 || fail "job B was not queued behind A"
for _ in $(seq 1 100); do grep -q "has not started yet" "$RUN/b.err" && break; sleep 0.1; done
grep -q "^\[job .* has not started yet (queue position [0-9]* at submission)\]$" "$RUN/b.err" ||
  fail "a job waiting for 2 s does not say so: $(cat "$RUN/b.err")"
kill -INT "$B"
wait_exit "$B" 10
rc=$?
[ $rc -eq 130 ] || fail "Ctrl-C on a queued job: exit $rc ($(cat "$RUN/b.err"))"
jb=$(sed -n 's/^\[cancelled, job \(.*\)\]$/\1/p' "$RUN/b.err")
[ -n "$jb" ] || fail "no '[cancelled, job …]' line: $(cat "$RUN/b.err")"
curl -s "$ORCH_URL/v2/tasks/$jb" | grep -q '"status":"cancelled"' || fail "job $jb is not cancelled: $(curl -s "$ORCH_URL/v2/tasks/$jb")"
kill -CONT "$POOL_PID" # (the orchestrator's pending start call to it completes)
FROZEN=${FROZEN% "$POOL_PID"}
kill -INT "$A"
wait_exit "$A" 30
rc=$?
[ $rc -eq 130 ] || fail "Ctrl-C on a running job: exit $rc ($(cat "$RUN/a.err"))"
ja=$(sed -n 's/^\[cancelled, job \(.*\)\]$/\1/p' "$RUN/a.err")
curl -s "$ORCH_URL/v2/tasks/$ja" | grep -q '"status":"cancelled"' || fail "job $ja is not cancelled"
kill -CONT "$FROZEN"
FROZEN=""
after=$("$LLORCH" run stories "Once upon a time" --max-tokens 12 --temperature 0 2>/dev/null) || fail "no run after the cancels"
[ "$after" = "$greedy" ] || fail "after the cancels: '$after'"
echo "ok 4 - Ctrl-C: queued job $jb and running job $ja cancelled (exit 130); the worker serves again"

# ---- 5. llorch place -----------------------------------------------------------------------
out=$("$LLORCH" place stories pool-clitest host) || fail "place exited $?"
echo "$out" | grep -q "^placed: stories" || fail "place said '$out'"
"$LLORCH" status | grep -Eq "^$WORKER_ID .* pinned$" || fail "the worker is not shown pinned"
"$LLORCH" place --remove stories pool-clitest host >/dev/null || fail "place --remove exited $?"
"$LLORCH" place --remove stories pool-clitest host >/dev/null 2>"$RUN/p.err"
rc=$?
[ $rc -eq 1 ] && grep -q NOT_FOUND "$RUN/p.err" || fail "removing twice: exit $rc, $(cat "$RUN/p.err")"
"$LLORCH" place stories pool-clitest gpu0 >/dev/null 2>&1
[ $? -eq 2 ] || fail "a bad GPU is not a usage error"
"$LLORCH" status | grep -Eq "^$WORKER_ID .* pinned$" && fail "the worker is still shown pinned after --remove"
"$LLORCH" place stories pool-clitest -1 >/dev/null || fail "place with -1 (host) failed"
# a pin to a pool that is not registered, or to a device the pool does not report, is refused
"$LLORCH" place stories pool-nope -1 >/dev/null 2>"$RUN/p.err"; rc=$?
[ $rc -eq 1 ] && grep -q NOT_FOUND "$RUN/p.err" || fail "unregistered pool: exit $rc, $(cat "$RUN/p.err")"
"$LLORCH" place stories pool-clitest 5 >/dev/null 2>"$RUN/p.err"; rc=$?
[ $rc -eq 1 ] && grep -q GPU_NOT_FOUND "$RUN/p.err" || fail "unknown device: exit $rc, $(cat "$RUN/p.err")"
echo "ok 5 - llorch place / --remove (twice: NOT_FOUND; unknown pool NOT_FOUND, unknown device GPU_NOT_FOUND)"

# ---- 6. status --json ------------------------------------------------------------------------
js=$("$LLORCH" status --json) || fail "status --json"
echo "$js" | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["health"]["status"] == "healthy", s["health"]
assert [p["pool_id"] for p in s["pools"]] == ["pool-clitest"], s["pools"]
assert s["metrics"]["tasks_ended"]["cancelled"] >= 2, s["metrics"]
assert any(w["status"] == "ready" for w in s["workers"]), s["workers"]
' || fail "status --json content"
echo "ok 6 - status --json: healthy, the pool, a ready worker, cancelled tasks counted"

# ---- 7. a pool that stops heartbeating shows UNAVAILABLE, then comes back ----------------
FROZEN=$POOL_PID
kill -STOP "$POOL_PID"
seen=""
for _ in $(seq 1 150); do # heartbeat 1 s x missed_threshold 3: within 15 s
  if "$LLORCH" status | grep -Eq '^pool-clitest +http://[0-9.:]+ +UNAVAILABLE +[0-9.]+s ago$'; then seen=1; break; fi
  sleep 0.1
done
kill -CONT "$POOL_PID"
FROZEN=""
[ -n "$seen" ] || fail "a silent pool is not shown UNAVAILABLE: $("$LLORCH" status)"
back=""
for _ in $(seq 1 150); do
  if "$LLORCH" status | grep -Eq '^pool-clitest +http://[0-9.:]+ +available +[0-9.]+s ago$'; then back=1; break; fi
  sleep 0.1
done
[ -n "$back" ] || fail "the pool is not shown available again after it resumed"
echo "ok 7 - status: a pool without heartbeats is UNAVAILABLE, then available again"

# ---- 8. a broken event stream is resumed with Last-Event-ID ------------------------------
# A small TCP proxy in front of the orchestrator cuts the first event stream
# after 3000 bytes; llorch run must reconnect with Last-Event-ID and print
# exactly the uninterrupted text.
cat > "$RUN/cutproxy.py" <<'PY'
# a TCP proxy in front of the orchestrator that cuts the first event stream
# after CUT bytes of its response; logs each events request (and its
# Last-Event-ID) and the cut
import socket, sys, threading
up_port, cut = int(sys.argv[1]), int(sys.argv[2])
log = open(sys.argv[3], "a", buffering=1)
state = {"cut_done": False}
lock = threading.Lock()
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(64)
print("port", srv.getsockname()[1], flush=True)
def pipe(a, b, limit=None):
    n = 0
    try:
        while True:
            d = a.recv(65536)
            if not d: break
            if limit is not None and n + len(d) >= limit:
                b.sendall(d[: limit - n]); log.write("cut after %d bytes\n" % limit); break
            b.sendall(d); n += len(d)
    except OSError: pass
    for s in (a, b):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
def handle(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(65536)
        if not d: c.close(); return
        head += d
    u = socket.create_connection(("127.0.0.1", up_port))
    u.sendall(head)
    first = head.split(b"\r\n")[0].decode()
    limit = None
    if "/events" in first:
        lei = [l for l in head.decode().split("\r\n") if l.lower().startswith("last-event-id:")]
        log.write("events %s\n" % (lei[0] if lei else "no-last-event-id"))
        with lock:
            if not state["cut_done"]: state["cut_done"] = True; limit = cut
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    pipe(u, c, limit)
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
PY
python3 -u "$RUN/cutproxy.py" "${ORCH_URL##*:}" 3000 "$RUN/proxy.log" >"$RUN/proxy.out" 2>&1 &
PROXY=$!
PP=""
for _ in $(seq 1 100); do PP=$(sed -n 's/^port //p' "$RUN/proxy.out"); [ -n "$PP" ] && break; sleep 0.1; done
[ -n "$PP" ] || fail "the cutting proxy did not start"
direct=$("$LLORCH" run stories "Once upon a time" --max-tokens 300 --temperature 0 2>/dev/null) || fail "direct run"
via=$("$LLORCH" run stories "Once upon a time" --max-tokens 300 --temperature 0 --url "http://127.0.0.1:$PP" 2>"$RUN/via.err") ||
  fail "run through the cutting proxy exited $?: $(cat "$RUN/via.err")"
kill "$PROXY"; wait "$PROXY" 2>/dev/null; PROXY=""
grep -q "^cut after 3000 bytes$" "$RUN/proxy.log" || fail "the proxy did not cut the stream: $(cat "$RUN/proxy.log")"
grep -Eq "^events Last-Event-ID: [0-9]+$" "$RUN/proxy.log" || fail "no reconnect with Last-Event-ID: $(cat "$RUN/proxy.log")"
[ "$via" = "$direct" ] || fail "the resumed stream printed other text than the uninterrupted one"
grep -q "300 tokens" "$RUN/via.err" || fail "the resumed run's summary: $(cat "$RUN/via.err")"
echo "ok 8 - a stream cut after 3000 bytes is resumed ($(grep Last-Event-ID "$RUN/proxy.log")), text identical"

# ---- 9. LLORCH_TOKEN: a lab orchestrator with client tokens ---------------------------------
cat > "$RUN/lab.yaml" <<YAML
deployment: lab
auth: {pool_tokens: [pool-secret], client_tokens: [client-secret]}
models:
  stories: {model_ref: 'file:$(cd "$MODELS" && pwd -P)/stories260K.gguf', context_length: 512}
YAML
"$BUILD/orchestratord" --config "$RUN/lab.yaml" --bind 127.0.0.1:0 --state "$RUN/lab.db" >"$RUN/lab.out" 2>"$RUN/lab.log" &
LAB=$!
LP=""
for _ in $(seq 1 100); do LP=$(sed -n 's/^orchestratord listening on .*:\([0-9][0-9]*\)$/\1/p' "$RUN/lab.out"); [ -n "$LP" ] && break; sleep 0.1; done
[ -n "$LP" ] || { fail "the lab orchestrator did not start: $(tail -3 "$RUN/lab.log")"; }
LAB_URL=http://127.0.0.1:$LP
r1=0; LLORCH_TOKEN='' "$LLORCH" status --url "$LAB_URL" >/dev/null 2>"$RUN/l1" || r1=$?
r2=0; LLORCH_TOKEN=client-secret "$LLORCH" status --url "$LAB_URL" >"$RUN/l2" 2>&1 || r2=$?
r3=0; LLORCH_TOKEN=wrong "$LLORCH" run stories "hi" --url "$LAB_URL" >/dev/null 2>"$RUN/l3" || r3=$?
r4=0; LLORCH_TOKEN=client-secret "$LLORCH" place stories pool-x host --url "$LAB_URL" >/dev/null 2>"$RUN/l4" || r4=$?
kill -TERM "$LAB"; wait "$LAB" 2>/dev/null
[ $r1 -eq 1 ] && grep -q "^llorch status: UNAUTHORIZED: " "$RUN/l1" || fail "status without a token: exit $r1, $(cat "$RUN/l1")"
[ "$(wc -l <"$RUN/l1")" -eq 1 ] || fail "a refused status printed more than one line: $(cat "$RUN/l1")"
[ $r2 -eq 0 ] && grep -q "healthy" "$RUN/l2" && grep -q "(no pool registered)" "$RUN/l2" || fail "status with the token: exit $r2, $(cat "$RUN/l2")"
[ $r3 -eq 1 ] && grep -q "UNAUTHORIZED" "$RUN/l3" || fail "run with a wrong token: exit $r3, $(cat "$RUN/l3")"
# the token is accepted: the refusal is about the pool (no pool is registered here), not auth
[ $r4 -eq 1 ] && grep -q "NOT_FOUND" "$RUN/l4" && ! grep -q "UNAUTHORIZED" "$RUN/l4" || fail "place with the token: exit $r4, $(cat "$RUN/l4")"
echo "ok 9 - LLORCH_TOKEN is sent as a bearer token (lab: 401 without, accepted with)"
