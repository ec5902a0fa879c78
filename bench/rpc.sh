#!/usr/bin/env bash
# The rpc example against the same service on tokio, and pooled `forward`
# calls against a connection per call, in interleaved rounds.
#
#   bash bench/rpc.sh
#
# Each round starts fresh servers (pinned to core $SERVER_CPU) and drives
# them from core $LOAD_CPU, $CONNS connections, $WARMUP s warm-up + $DUR s
# measured, in an order that rotates from round to round:
#
#   rpc          examples/rpc serve                  echo-load rpc (JSON-RPC `echo`, $SIZE-byte string)
#   tokio-rpc    ../shared/anchors/tokio-rpc          echo-load rpc (the same requests)
#   echo         syncnet serve                        echo-load pingpong ($SIZE bytes)
#   tokio-echo   ../shared/anchors/tokio-echo         echo-load pingpong (what tokio saves on
#                                                     a bare echo, for comparison)
#   fwd-pool     rpc serve --forward B  (A), and B    rpc_load: `forward` to B's `echo`
#   fwd-percall  the same, --forward-per-call         rpc_load
#
# Server CPU per request: the server's CPU time over the measured window
# (echo-load --pid; for forward, rpc_load sums A's and B's) / requests.
# Prints one JSON line per run, then medians over the rounds and the median
# of the per-round ratios.
#
# Knobs: ROUNDS=5 CONNS=16 DUR=5 WARMUP=1 SIZE=64 SERVER_CPU=0 LOAD_CPU=1
#        LOAD=path/to/echo-load   TOKIO_RPC=path/to/tokio-rpc   TOKIO_ECHO=path/to/tokio-echo
#        (default: built from a copy of ../shared in a temporary directory)
#        ONLY="rpc tokio-rpc ..." to run a subset; OUT=file for the raw lines.
# With the project alone (no ../shared): ONLY="fwd-pool fwd-percall".
set -euo pipefail
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-16}
DUR=${DUR:-5}
WARMUP=${WARMUP:-1}
SIZE=${SIZE:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ONLY=${ONLY:-"rpc tokio-rpc echo tokio-echo fwd-pool fwd-percall"}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
work=$(mktemp -d) # builds; removed at exit
trap 'rm -rf "$work"' EXIT
OUT=${OUT:-$(mktemp "${TMPDIR:-/tmp}/rpc-bench.XXXXXX.jsonl")}

echo "== building (release): syncnet, examples/rpc, bench/rpc_load.rs" >&2
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" --bin syncnet --example rpc
SYNCNET=$ROOT/target/release/syncnet
RPC=$ROOT/target/release/examples/rpc
rustc -O --edition 2021 -o "$work/rpc_load" "$HERE/rpc_load.rs"
RPC_LOAD=$work/rpc_load
# echo-load and the tokio anchors, from a copy of ../shared, only when a
# selected run needs them (the forward runs need neither).
need() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
if [ -z "${LOAD:-}" ] && { need rpc || need tokio-rpc || need echo || need tokio-echo; }; then
  echo "== building echo-load from a copy of ../shared/tools" >&2
  cp -r "$ROOT/../shared/tools" "$work/"
  cargo build --release -q --manifest-path "$work/tools/echo-load/Cargo.toml"
  LOAD=$work/tools/echo-load/target/release/echo-load
fi
if { [ -z "${TOKIO_RPC:-}" ] && need tokio-rpc; } || { [ -z "${TOKIO_ECHO:-}" ] && need tokio-echo; }; then
  echo "== building tokio-rpc and tokio-echo from a copy of ../shared/anchors" >&2
  cp -r "$ROOT/../shared/anchors" "$work/"
  cargo build --release -q --manifest-path "$work/anchors/Cargo.toml" -p tokio-rpc -p tokio-echo
  TOKIO_RPC=${TOKIO_RPC:-$work/anchors/target/release/tokio-rpc}
  TOKIO_ECHO=${TOKIO_ECHO:-$work/anchors/target/release/tokio-echo}
fi
ulimit -n "$(ulimit -Hn)"
. "$(dirname "$0")/lib.sh" # free_port, start_server, stop

# One run of `kind`; appends "kind {json}" to $OUT.
run_one() {
  local kind=$1 out upstream_pid upstream_port
  case $kind in
    rpc)
      start_server "$RPC" serve --listen "127.0.0.1:{port}" --admin 127.0.0.1:0 --log-format json
      out=$(taskset -c "$LOAD_CPU" "$LOAD" rpc -a "127.0.0.1:$PORT" -c "$CONNS" -d "$DUR" \
            --warmup "$WARMUP" --size "$SIZE" --pid "$PID" 2>/dev/null | tail -n 1)
      stop "$PID" ;;
    tokio-rpc)
      start_server "$TOKIO_RPC" "{port}"
      out=$(taskset -c "$LOAD_CPU" "$LOAD" rpc -a "127.0.0.1:$PORT" -c "$CONNS" -d "$DUR" \
            --warmup "$WARMUP" --size "$SIZE" --pid "$PID" 2>/dev/null | tail -n 1)
      stop "$PID" ;;
    echo|tokio-echo)
      if [ "$kind" = echo ]; then
        start_server "$SYNCNET" serve --listen "127.0.0.1:{port}" --admin 127.0.0.1:0 --log-format json
      else
        start_server "$TOKIO_ECHO" "{port}"
      fi
      out=$(taskset -c "$LOAD_CPU" "$LOAD" pingpong -a "127.0.0.1:$PORT" -c "$CONNS" -d "$DUR" \
            --warmup "$WARMUP" --size "$SIZE" --pid "$PID" 2>/dev/null | tail -n 1)
      stop "$PID" ;;
    fwd-pool|fwd-percall)
      start_server "$RPC" serve --listen "127.0.0.1:{port}" --admin off --log-format json
      upstream_pid=$PID; upstream_port=$PORT
      local per_call=()
      [ "$kind" = fwd-percall ] && per_call=(--forward-per-call)
      start_server "$RPC" serve --listen "127.0.0.1:{port}" --admin off --log-format json \
        --forward "127.0.0.1:$upstream_port" "${per_call[@]}"
      out=$(taskset -c "$LOAD_CPU" "$RPC_LOAD" "127.0.0.1:$PORT" "$CONNS" "$DUR" "$WARMUP" \
            "$PID" "$upstream_pid" | tail -n 1)
      stop "$PID" "$upstream_pid" ;;
  esac
  echo "$kind $out" | tee -a "$OUT"
}

read -r -a kinds <<< "$ONLY"
for round in $(seq 1 "$ROUNDS"); do
  n=${#kinds[@]}
  for i in $(seq 0 $((n - 1))); do
    run_one "${kinds[$(((i + round - 1) % n))]}"
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    kind, data = line.split(" ", 1)
    d = json.loads(data)
    if "server_cpu_us_per_req" in d:
        cpu = d["server_cpu_us_per_req"]
    else:
        cpu = d["server_cpu_pct"] / 100 * d["secs"] / d["requests"] * 1e6
    runs.setdefault(kind, []).append({"cpu": cpu, "rps": d["rps"], "p50": d["p50_us"],
                                      "p99": d["p99_us"], "errors": d["errors"]})
med = statistics.median
print("\n| run | rounds | server CPU µs/request, median (min–max) | requests/s, median | p50 µs | p99 µs | errors |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for kind, rs in runs.items():
    cpu = [r["cpu"] for r in rs]
    print(f"| {kind} | {len(rs)} | {med(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) | "
          f"{med([r['rps'] for r in rs]):,.0f} | {med([r['p50'] for r in rs]):.0f} | "
          f"{med([r['p99'] for r in rs]):.0f} | {sum(r['errors'] for r in rs)} |")
def ratio(a, b, key):
    if a not in runs or b not in runs:
        return
    rs = [x[key] / y[key] for x, y in zip(runs[a], runs[b])]
    print(f"{a} / {b}, {key}: median {med(rs):.3f} (rounds: {' '.join(f'{r:.3f}' for r in rs)})")
print()
ratio("rpc", "tokio-rpc", "cpu")
ratio("rpc", "echo", "cpu")
ratio("echo", "tokio-echo", "cpu")
ratio("rpc", "tokio-rpc", "rps")
ratio("fwd-pool", "fwd-percall", "rps")
ratio("fwd-pool", "fwd-percall", "p99")
ratio("fwd-pool", "fwd-percall", "cpu")
PY
echo "raw lines: $OUT" >&2
