#!/usr/bin/env bash
# A/B comparison of server CPU per request, as interleaved pairs.
#
#   bench/ab.sh "<server A command>" "<server B command>"
#
# Each command must contain {port}; the server is pinned to core $SERVER_CPU,
# the load (echo-load pingpong, 64-byte messages) to core $LOAD_CPU. Each pair
# runs A then B (B then A on odd pairs, so drift cancels), fresh servers each
# time. With SCRAPE_B=1, /metrics of B's admin endpoint (admin port given as
# {admin} in the command) is fetched every 100 ms during B's runs, by one
# python3 process pinned to the load generator's core.
# Prints one line per run and the median of the per-pair ratios B/A of
# server CPU µs per request.
#
# Knobs: PAIRS=7 CONNS=16 DUR=5 WARMUP=1 SERVER_CPU=0 LOAD_CPU=1
#        LOAD=path/to/echo-load (default: built from ../shared/tools)
set -euo pipefail
if [ $# -lt 2 ]; then
  echo 'usage: bench/ab.sh "<server A command with {port}>" "<server B command with {port}>"' >&2
  exit 2
fi
A_CMD=$1
B_CMD=$2
PAIRS=${PAIRS:-7}
CONNS=${CONNS:-16}
DUR=${DUR:-5}
WARMUP=${WARMUP:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
SCRAPE_B=${SCRAPE_B:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "${LOAD:-}" ]; then
  if [ ! -d "$HERE/../../shared/tools/echo-load" ]; then
    echo "bench/ab.sh needs the echo-load load generator: set LOAD=path/to/echo-load," >&2
    echo "or have the comparison tools at $HERE/../../shared/tools (see BENCHMARKS.md)." >&2
    exit 2
  fi
  work=$(mktemp -d)
  cp -r "$HERE/../../shared/tools" "$work/"
  cargo build --release -q --manifest-path "$work/tools/echo-load/Cargo.toml"
  LOAD=$work/tools/echo-load/target/release/echo-load
fi
ulimit -n "$(ulimit -Hn)"
results=$(mktemp)

run_one() { # label command scrape
  local label=$1 cmd=$2 scrape=$3 port admin pid scraper=""
  port=$((20000 + RANDOM % 20000)); admin=$((port + 1))
  cmd=${cmd//\{port\}/$port}; cmd=${cmd//\{admin\}/$admin}
  taskset -c "$SERVER_CPU" $cmd 2>/dev/null &
  pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.05
  done
  if [ "$scrape" = 1 ]; then
    # One long-lived scraper process on the load generator's core, so the
    # scrapes cost the server only what it does to answer them.
    taskset -c "$LOAD_CPU" python3 - "$admin" <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
while True:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            while s.recv(65536):
                pass
    except OSError:
        pass
    time.sleep(0.1)
PY
    scraper=$!
  fi
  local out
  out=$(taskset -c "$LOAD_CPU" "$LOAD" pingpong -a "127.0.0.1:$port" -c "$CONNS" -d "$DUR" \
        --warmup "$WARMUP" --pid "$pid" 2>/dev/null | tail -n 1)
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  echo "$label $out" | tee -a "$results"
}

for i in $(seq 1 "$PAIRS"); do
  if [ $((i % 2)) = 1 ]; then
    run_one A "$A_CMD" 0; run_one B "$B_CMD" "$SCRAPE_B"
  else
    run_one B "$B_CMD" "$SCRAPE_B"; run_one A "$A_CMD" 0
  fi
done

python3 - "$results" <<'PY'
import json, statistics, sys
runs = {"A": [], "B": []}
for line in open(sys.argv[1]):
    label, data = line.split(" ", 1)
    d = json.loads(data)
    cpu_us = d["server_cpu_pct"] / 100 * d["secs"] / d["requests"] * 1e6
    runs[label].append((cpu_us, d["rps"], d["errors"]))
ratios = [b[0] / a[0] for a, b in zip(runs["A"], runs["B"])]
for label in "AB":
    cpu = [r[0] for r in runs[label]]
    rps = [r[1] for r in runs[label]]
    print(f"{label}: CPU us/request median {statistics.median(cpu):.2f} "
          f"(range {min(cpu):.2f}-{max(cpu):.2f}); rps median {statistics.median(rps):.0f}; "
          f"errors {sum(r[2] for r in runs[label])}")
print("pair ratios B/A:", " ".join(f"{r:.3f}" for r in ratios))
print(f"median ratio B/A: {statistics.median(ratios):.3f}")
PY
