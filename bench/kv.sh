#!/usr/bin/env bash
# The kv example against redis-server, interleaved, with redis-benchmark.
#
#   bash bench/kv.sh            # ROUNDS=3 by default
#
# Both servers are pinned to core $SERVER_CPU, redis-benchmark to core
# $LOAD_CPU. Each round starts a fresh kv (`--release`) and a fresh
# redis-server (`--save '' --appendonly no`), then for each pipeline depth
# (-P 1, -P 16) and each test (PING_INLINE, PING_MBULK, SET, GET) runs
#   redis-benchmark -t TEST -c 50 -n 200000 -P DEPTH --csv
# against both, back to back (the order alternates), reading the server's
# CPU time (utime + stime from /proc/PID/stat, in clock ticks) before and
# after each run. Prints every run, then per depth and test: the median
# requests/s over the rounds (and their range), the server CPU µs per
# request (all rounds' ticks over all their requests: one tick is 10 ms,
# 0.05 µs per request of a single run), and the ratios kv / Redis.
#
# Knobs: ROUNDS=3 REQUESTS=200000 CLIENTS=50 SERVER_CPU=0 LOAD_CPU=1
#        OUT=file (the raw lines; default: a temporary file)
set -euo pipefail
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp)}
TESTS=(ping_inline ping_mbulk set get)
TICK=$(getconf CLK_TCK)

for tool in redis-server redis-benchmark taskset python3; do
  command -v "$tool" >/dev/null || { echo "bench/kv.sh needs $tool" >&2; exit 1; }
done
cargo build --release --quiet --example kv --manifest-path "$HERE/../Cargo.toml"
KV=$(cd "$HERE/.." && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/kv
ulimit -n "$(ulimit -Hn)"
: > "$OUT"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# Starts kv on a port the kernel picks; sets kv_pid and kv_port.
start_kv() {
  local log
  log=$(mktemp)
  taskset -c "$SERVER_CPU" "$KV" --listen 127.0.0.1:0 --log-format json 2>"$log" &
  kv_pid=$!
  for _ in $(seq 1 200); do
    kv_port=$(sed -n 's/.*"listen":"127.0.0.1:\([0-9]*\)".*/\1/p' "$log" | head -n 1)
    [ -n "$kv_port" ] && { rm -f "$log"; return 0; }
    sleep 0.05
  done
  echo "kv did not start: $(cat "$log")" >&2
  exit 1
}

# Starts redis-server on a free port (another one if the first is taken);
# sets redis_pid and redis_port.
start_redis() {
  for _ in 1 2 3 4 5; do
    redis_port=$((20000 + RANDOM % 20000))
    taskset -c "$SERVER_CPU" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
      --appendonly no --daemonize no --logfile '' >/dev/null &
    redis_pid=$!
    for _ in $(seq 1 100); do
      kill -0 "$redis_pid" 2>/dev/null || break # it exited: the port was taken
      [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && return 0
      sleep 0.05
    done
    kill "$redis_pid" 2>/dev/null || true
  done
  echo "redis-server did not start" >&2
  exit 1
}

cpu_ticks() { # pid: utime + stime, all threads (fields 14 and 15)
  awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

run_one() { # name pid port depth test
  local name=$1 pid=$2 port=$3 depth=$4 test=$5 before after line
  before=$(cpu_ticks "$pid")
  line=$(taskset -c "$LOAD_CPU" redis-benchmark -p "$port" -t "$test" -c "$CLIENTS" \
    -n "$REQUESTS" -P "$depth" --csv 2>/dev/null | tail -n 1)
  after=$(cpu_ticks "$pid")
  # "TEST","rps",... -> name depth TEST rps cpu_us_per_request cpu_ticks
  echo "$line" | tr -d '"' | awk -F, -v n="$name" -v d="$depth" -v t=$((after - before)) \
    -v hz="$TICK" -v r="$REQUESTS" '{ printf "%s P%s %s %s %.3f %d\n", n, d, $1, $2, t * 1e6 / hz / r, t }' |
    tee -a "$OUT"
}

for round in $(seq 1 "$ROUNDS"); do
  start_kv; pids=("$kv_pid")
  start_redis; pids+=("$redis_pid")
  echo "== round $round (kv pid $kv_pid, redis-server pid $redis_pid)"
  i=0
  for depth in 1 16; do
    for test in "${TESTS[@]}"; do
      if [ $(((round + i) % 2)) = 0 ]; then
        run_one kv "$kv_pid" "$kv_port" "$depth" "$test"
        run_one redis "$redis_pid" "$redis_port" "$depth" "$test"
      else
        run_one redis "$redis_pid" "$redis_port" "$depth" "$test"
        run_one kv "$kv_pid" "$kv_port" "$depth" "$test"
      fi
      i=$((i + 1))
    done
  done
  kill "$kv_pid" "$redis_pid"; wait "$kv_pid" "$redis_pid" 2>/dev/null || true
  pids=()
done

echo "== medians of $ROUNDS rounds (raw lines: $OUT)"
python3 - "$OUT" "$TICK" "$REQUESTS" <<'PY'
import statistics, sys
tick_us, requests = 1e6 / int(sys.argv[2]), int(sys.argv[3])
runs = {}
for line in open(sys.argv[1]):
    name, depth, test, rps, _, ticks = line.split()
    runs.setdefault((depth, test), {}).setdefault(name, []).append((float(rps), int(ticks)))
print("req/s: median (min–max) of the rounds; CPU: all rounds' ticks over all their requests")
print("| depth | test | kv req/s | Redis req/s | kv / Redis | kv CPU µs/req | Redis CPU µs/req | CPU kv / Redis |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for (depth, test), by in runs.items():
    kv, redis = by.get("kv", []), by.get("redis", [])
    if not kv or not redis:
        continue
    rps = lambda xs: statistics.median(x[0] for x in xs)
    span = lambda xs: f"{min(x[0] for x in xs) / 1000:.0f}–{max(x[0] for x in xs) / 1000:.0f}k"
    cpu = lambda xs: sum(x[1] for x in xs) * tick_us / (requests * len(xs))
    print(f"| {depth} | {test} | {rps(kv) / 1000:.0f}k ({span(kv)}) | {rps(redis) / 1000:.0f}k ({span(redis)}) "
          f"| {rps(kv) / rps(redis):.2f} | {cpu(kv):.2f} | {cpu(redis):.2f} | {cpu(kv) / cpu(redis):.2f} |")
PY
