#!/usr/bin/env bash
# What tracing costs the rpc example, in server CPU per request, in
# interleaved rounds:
#
#   bash bench/trace.sh
#
# Each round starts a fresh `rpc serve` (pinned to core $SERVER_CPU) for
# each kind, in an order that rotates from round to round, and drives it
# with `echo-load rpc` from core $LOAD_CPU: $CONNS connections, $WARMUP s
# warm-up + $DUR s measured.
#
#   before   $BEFORE serve: the rpc example built before tracing existed
#            (main at 9cff79d; see BENCHMARKS.md for how it was built)
#   off      examples/rpc serve                  tracing off
#   on       ... --otlp-endpoint (examples/otlp_sink on loopback, pinned to $LOAD_CPU)
#   down     ... --otlp-endpoint (a port nobody listens on)
#
# Server CPU per request: the server's CPU time over the measured window
# (echo-load --pid; the export thread is in the server process) / requests.
# After an `on` or `down` run, `syncnet_trace_spans_dropped_total` is read
# from the server's /metrics. Prints one line per run, then medians and
# the median of the per-round ratios on/off, down/off and off/before.
#
# Knobs: ROUNDS=9 CONNS=16 DUR=5 WARMUP=1 SIZE=64 SERVER_CPU=0 LOAD_CPU=1
#        LOAD=path/to/echo-load (default: built from a copy of the
#        comparison tools at ../shared/tools)  BEFORE=path/to/rpc-before
#        (without it, the `before` kind is skipped)  ONLY="off on ..."
#        OUT=file for the raw lines.
set -euo pipefail
ROUNDS=${ROUNDS:-9}
CONNS=${CONNS:-16}
DUR=${DUR:-5}
WARMUP=${WARMUP:-1}
SIZE=${SIZE:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BEFORE=${BEFORE:-}
default_only="off on down"
[ -n "$BEFORE" ] && default_only="before $default_only"
ONLY=${ONLY:-$default_only}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
work=$(mktemp -d) # builds and server logs; removed at exit
OUT=${OUT:-$(mktemp "${TMPDIR:-/tmp}/trace-bench.XXXXXX.jsonl")}
SINK_PID=
cleanup() { [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== building (release): examples/rpc, examples/otlp_sink" >&2
cargo build --release -q --manifest-path "$ROOT/Cargo.toml" --example rpc --example otlp_sink
RPC=$ROOT/target/release/examples/rpc
SINK=$ROOT/target/release/examples/otlp_sink
if [ -z "${LOAD:-}" ]; then
  if [ ! -d "$ROOT/../shared/tools/echo-load" ]; then
    echo "bench/trace.sh needs the echo-load load generator: set LOAD=path/to/echo-load," >&2
    echo "or have the comparison tools at $ROOT/../shared/tools (see BENCHMARKS.md)." >&2
    exit 2
  fi
  echo "== building echo-load from a copy of ../shared/tools" >&2
  cp -r "$ROOT/../shared/tools" "$work/"
  cargo build --release -q --manifest-path "$work/tools/echo-load/Cargo.toml"
  LOAD=$work/tools/echo-load/target/release/echo-load
fi
ulimit -n "$(ulimit -Hn)"
. "$(dirname "$0")/lib.sh" # free_port, start_server, stop

# The sink, for the whole run.
SINK_PORT=$(free_port)
taskset -c "$LOAD_CPU" "$SINK" "127.0.0.1:$SINK_PORT" 2>"$work/sink.log" &
SINK_PID=$!
DOWN_PORT=$(free_port)

# `syncnet_trace_spans_dropped_total` of the server on $ADMIN (0 without it).
dropped() {
  { exec 3<>"/dev/tcp/127.0.0.1/$ADMIN" &&
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3; } 2>/dev/null |
    awk '/^syncnet_trace_spans_dropped_total /{print $2; found=1} END{if(!found) print 0}'
}

# One run of `kind`; appends "kind {json}" to $OUT.
run_one() {
  local kind=$1 out drops=0
  local serve=(serve --listen "127.0.0.1:{port}" --admin "127.0.0.1:{admin}" --log-format json)
  case $kind in
    before) start_server "$BEFORE" "${serve[@]}" ;;
    off) start_server "$RPC" "${serve[@]}" ;;
    on) start_server "$RPC" "${serve[@]}" --otlp-endpoint "http://127.0.0.1:$SINK_PORT" ;;
    down) start_server "$RPC" "${serve[@]}" --otlp-endpoint "http://127.0.0.1:$DOWN_PORT" ;;
  esac
  out=$(taskset -c "$LOAD_CPU" "$LOAD" rpc -a "127.0.0.1:$PORT" -c "$CONNS" -d "$DUR" \
        --warmup "$WARMUP" --size "$SIZE" --pid "$PID" 2>/dev/null | tail -n 1)
  case $kind in on|down) drops=$(dropped) ;; esac
  stop "$PID"
  echo "$kind {\"dropped\":$drops,${out#\{}" | tee -a "$OUT"
}

read -r -a kinds <<< "$ONLY"
for round in $(seq 1 "$ROUNDS"); do
  n=${#kinds[@]}
  for i in $(seq 0 $((n - 1))); do
    run_one "${kinds[$(((i + round - 1) % n))]}"
  done
done
echo "sink: $(tail -n 1 "$work/sink.log")" >&2

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
                                      "p99": d["p99_us"], "errors": d["errors"],
                                      "dropped": d["dropped"], "requests": d["requests"]})
med = statistics.median
print("\n| run | rounds | server CPU µs/request, median (min–max) | requests/s, median | p50 µs | p99 µs | errors | spans dropped, median per run |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for kind, rs in runs.items():
    cpu = [r["cpu"] for r in rs]
    print(f"| {kind} | {len(rs)} | {med(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) | "
          f"{med([r['rps'] for r in rs]):,.0f} | {med([r['p50'] for r in rs]):.0f} | "
          f"{med([r['p99'] for r in rs]):.0f} | {sum(r['errors'] for r in rs)} | "
          f"{med([r['dropped'] for r in rs]):,.0f} |")
def ratio(a, b, key):
    if a not in runs or b not in runs:
        return
    rs = [x[key] / y[key] for x, y in zip(runs[a], runs[b])]
    print(f"{a} / {b}, {key}: median {med(rs):.3f} (rounds: {' '.join(f'{r:.3f}' for r in rs)})")
print()
ratio("on", "off", "cpu")
ratio("down", "off", "cpu")
ratio("off", "before", "cpu")
ratio("on", "off", "rps")
PY
echo "raw lines: $OUT" >&2
