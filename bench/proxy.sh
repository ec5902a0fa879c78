#!/usr/bin/env bash
# `syncnet proxy` against HAProxy (TCP mode), both in front of Redis,
# interleaved, with redis-benchmark.
#
#   cargo build --release && bash bench/proxy.sh     # ROUNDS=3 by default
#
# Needs: redis-server, redis-cli and redis-benchmark (Debian: redis-server,
# redis-tools), haproxy (Debian: haproxy), taskset, python3, and a release
# build of syncnet (target/release/syncnet, or SYNCNET=path). perf is
# optional (PERF=0 skips it).
#
# Redis and both proxies are pinned to core $SERVER_CPU, redis-benchmark to
# core $LOAD_CPU. Each round starts a fresh redis-server (`--save ''
# --appendonly no`), a fresh `syncnet proxy --upstream REDIS --admin off
# --workers 256 --log-format json 2>/dev/null` and a fresh
# `haproxy -db` (nbthread 1, mode tcp, one backend server), then for each
# pipeline depth (-P 1, -P 16) and each test of `-t ping,set,get`
# (PING_INLINE, PING_MBULK, SET, GET: one redis-benchmark invocation each,
# so that the CPU can be told apart per test) runs
#   redis-benchmark -h 127.0.0.1 -p PORT -t TEST -c 50 -n 200000 -P DEPTH --csv
# against Redis directly, through syncnet proxy and through HAProxy, back
# to back, the order rotating from one test to the next and one round to
# the next. Around each run it reads utime + stime (/proc/PID/stat, clock
# ticks, all threads) of the proxy under test and of redis-server.
#
# Prints every run, then per depth and test: the median requests/s and
# median p99 (ms) over the rounds (with their range), the CPU µs per request
# of each proxy and of Redis (all rounds' ticks over all their requests; one
# tick is 10 ms, 0.05 µs per request of one 200 000-request run), and the
# ratios syncnet / HAProxy. Then, unless PERF=0, per request of one extra
# `-t get` run per depth and target, context switches, task-clock and
# system calls of the proxy and of redis-server, each counted on its own
# (`perf stat -e context-switches,task-clock,raw_syscalls:sys_enter -p PID`;
# perf needs kernel.perf_event_paranoid <= 1 or root for the tracepoint).
# `ROUNDS=0` runs only that part.
#
# Knobs: ROUNDS=3 REQUESTS=200000 CLIENTS=50 SERVER_CPU=0 LOAD_CPU=1
#        WORKERS=256 PERF=1 SYNCNET=path OUT=file (raw lines; default: a
#        temporary file)
set -euo pipefail
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
WORKERS=${WORKERS:-256}
PERF=${PERF:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
SYNCNET=${SYNCNET:-$HERE/../target/release/syncnet}
OUT=${OUT:-$(mktemp)}
TESTS=(ping_inline ping_mbulk set get)
TICK=$(getconf CLK_TCK)
P99_COL=

need() { echo "bench/proxy.sh needs $1" >&2; exit 1; }
for tool in redis-server redis-cli redis-benchmark taskset python3; do
  command -v "$tool" >/dev/null || need "$tool (Debian: redis-server, redis-tools; util-linux; python3)"
done
command -v haproxy >/dev/null || need "haproxy (Debian: haproxy)"
[ -x "$SYNCNET" ] || need "a release build of syncnet at $SYNCNET: run \`cargo build --release\` first (or set SYNCNET)"
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
  echo "perf not found: skipping the context-switch counts (PERF=0)" >&2
  PERF=0
fi
redis-benchmark --help 2>&1 | grep -q -- '--csv' || need "a redis-benchmark with --csv (Redis 6 or later)"
ulimit -n "$(ulimit -Hn)"
: > "$OUT"
echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cores; $(redis-server --version | cut -d' ' -f1-3);" \
  "$(haproxy -v | head -n 1 | cut -d' ' -f1-3); syncnet $(git -C "$HERE/.." rev-parse --short HEAD 2>/dev/null || echo '?')" |
  tee -a "$OUT"

pids=()
TMP=$(mktemp -d)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `redis-cli -p port ping` answers PONG (through a proxy: the
# whole chain is up); pid must stay alive meanwhile.
wait_pong() { # name pid port
  for _ in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || { echo "$1 exited at start" >&2; exit 1; }
    [ "$(redis-cli -h 127.0.0.1 -p "$3" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.05
  done
  echo "$1 did not answer on port $3" >&2
  exit 1
}

start_all() { # sets redis_{pid,port} syncnet_{pid,port} haproxy_{pid,port}
  redis_port=$(free_port)
  taskset -c "$SERVER_CPU" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly no --daemonize no --logfile '' >/dev/null &
  redis_pid=$!; pids+=("$redis_pid")
  wait_pong redis-server "$redis_pid" "$redis_port"

  syncnet_port=$(free_port)
  taskset -c "$SERVER_CPU" "$SYNCNET" proxy --listen "127.0.0.1:$syncnet_port" \
    --upstream "127.0.0.1:$redis_port" --admin off --workers "$WORKERS" --log-format json 2>/dev/null &
  syncnet_pid=$!; pids+=("$syncnet_pid")
  wait_pong "syncnet proxy" "$syncnet_pid" "$syncnet_port"

  haproxy_port=$(free_port)
  cat > "$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend bench
    bind 127.0.0.1:$haproxy_port
    default_backend redis
backend redis
    server redis 127.0.0.1:$redis_port
EOF
  taskset -c "$SERVER_CPU" haproxy -f "$TMP/haproxy.cfg" -db >/dev/null 2>&1 &
  haproxy_pid=$!; pids+=("$haproxy_pid")
  wait_pong haproxy "$haproxy_pid" "$haproxy_port"
}

stop_all() {
  kill "$syncnet_pid" "$haproxy_pid" "$redis_pid" 2>/dev/null || true
  wait "$syncnet_pid" "$haproxy_pid" "$redis_pid" 2>/dev/null || true
  pids=()
}

cpu_ticks() { # pid: utime + stime, all threads (fields 14 and 15)
  awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

bench() { # port depth test: redis-benchmark's last CSV line
  taskset -c "$LOAD_CPU" redis-benchmark -h 127.0.0.1 -p "$1" -t "$3" -c "$CLIENTS" \
    -n "$REQUESTS" -P "$2" --csv 2>/dev/null | tail -n 1
}

run_one() { # target depth test
  local target=$1 depth=$2 test=$3 port proxy_pid p0=0 p1=0 r0 r1 line
  case $target in
    redis) port=$redis_port; proxy_pid= ;;
    syncnet) port=$syncnet_port; proxy_pid=$syncnet_pid ;;
    haproxy) port=$haproxy_port; proxy_pid=$haproxy_pid ;;
  esac
  [ -n "$proxy_pid" ] && p0=$(cpu_ticks "$proxy_pid")
  r0=$(cpu_ticks "$redis_pid")
  line=$(bench "$port" "$depth" "$test")
  r1=$(cpu_ticks "$redis_pid")
  [ -n "$proxy_pid" ] && p1=$(cpu_ticks "$proxy_pid")
  # "TEST","rps",...,"p99_latency_ms",...
  #   -> target depth TEST rps p99_ms proxy_ticks redis_ticks
  echo "$line" | tr -d '"' | awk -F, -v n="$target" -v d="$depth" -v pt=$((p1 - p0)) -v rt=$((r1 - r0)) \
    -v c="$P99_COL" '{ printf "%s P%s %s %s %s %d %d\n", n, d, $1, $2, $c, pt, rt }' | tee -a "$OUT"
}

targets=(redis syncnet haproxy)
for round in $(seq 1 "$ROUNDS"); do
  start_all
  echo "== round $round (redis-server $redis_pid :$redis_port, syncnet $syncnet_pid :$syncnet_port," \
    "haproxy $haproxy_pid :$haproxy_port)"
  if [ "$round" = 1 ]; then
    header=$(redis-benchmark -h 127.0.0.1 -p "$redis_port" -t ping_inline -n 1000 --csv 2>/dev/null | head -n 1)
    echo "# redis-benchmark's CSV columns: $header" | tee -a "$OUT"
    P99_COL=$(echo "$header" | tr -d '"' | tr , '\n' | grep -n -x p99_latency_ms | cut -d: -f1 || true)
    [ -n "$P99_COL" ] || need "a redis-benchmark whose --csv has p99_latency_ms (Redis 7)"
  fi
  i=$round
  for depth in 1 16; do
    for test in "${TESTS[@]}"; do
      for k in 0 1 2; do
        run_one "${targets[$(((i + k) % 3))]}" "$depth" "$test"
      done
      i=$((i + 1))
    done
  done
  stop_all
done

echo "== medians of $ROUNDS rounds (raw lines: $OUT)"
python3 - "$OUT" "$TICK" "$REQUESTS" <<'PY'
import statistics, sys
tick_us, requests = 1e6 / int(sys.argv[2]), int(sys.argv[3])
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    f = line.split()
    if len(f) != 7:
        continue
    target, depth, test, rps, p99, pt, rt = f
    runs.setdefault((depth, test), {}).setdefault(target, []).append(
        (float(rps), float(p99), int(pt), int(rt)))
med = lambda xs, k: statistics.median(x[k] for x in xs)
rng = lambda xs, k, s, fmt: f"{fmt(min(x[k] for x in xs) / s)}–{fmt(max(x[k] for x in xs) / s)}"
cpu = lambda xs, k: sum(x[k] for x in xs) * tick_us / (requests * len(xs))
print("req/s and p99: median (min–max) of the rounds; CPU: all rounds' ticks over all their requests")
print("| depth | test | Redis req/s | syncnet req/s | HAProxy req/s | syncnet / HAProxy | "
      "Redis p99 ms | syncnet p99 ms | HAProxy p99 ms | p99 syncnet / HAProxy | "
      "syncnet CPU µs/req | HAProxy CPU µs/req | Redis CPU µs/req (direct / via syncnet / via HAProxy) |")
print("| --- " * 13 + "|")
k0 = lambda v: f"{v:.0f}"
k3 = lambda v: f"{v:.3f}"
for (depth, test), by in runs.items():
    r, s, h = by.get("redis", []), by.get("syncnet", []), by.get("haproxy", [])
    if not (r and s and h):
        continue
    print(f"| {depth[1:]} | {test} "
          f"| {med(r, 0) / 1000:.0f}k ({rng(r, 0, 1000, k0)}k) "
          f"| {med(s, 0) / 1000:.0f}k ({rng(s, 0, 1000, k0)}k) "
          f"| {med(h, 0) / 1000:.0f}k ({rng(h, 0, 1000, k0)}k) "
          f"| {med(s, 0) / med(h, 0):.2f} "
          f"| {med(r, 1):.3f} ({rng(r, 1, 1, k3)}) "
          f"| {med(s, 1):.3f} ({rng(s, 1, 1, k3)}) "
          f"| {med(h, 1):.3f} ({rng(h, 1, 1, k3)}) "
          f"| {med(s, 1) / med(h, 1):.2f} "
          f"| {cpu(s, 2):.2f} | {cpu(h, 2):.2f} "
          f"| {cpu(r, 3):.2f} / {cpu(s, 3):.2f} / {cpu(h, 3):.2f} |")
PY

if [ "$PERF" = 1 ]; then
  echo "== per request, one extra -t get run per depth and target (perf stat -p PID; the direct run: Redis only)"
  start_all
  perf_line() { # who target depth file req/s: the figures of one perf stat file
    awk -F, -v w="$1" -v n="$2" -v d="$3" -v q="$5" -v r="$REQUESTS" '
      $3 == "context-switches" { cs = $1 } $3 == "task-clock" { tc = $1 } $3 ~ /sys_enter/ { sc = $1 }
      END { printf "perf %s via %s P%s GET %s req/s: %.3f context switches, %.2f µs task-clock, %.2f system calls per request\n",
              w, n, d, q, cs / r, tc * 1000 / r, sc / r }' "$4"
  }
  for depth in 1 16; do
    for target in syncnet haproxy redis; do
      case $target in
        redis) port=$redis_port; pid= ;;
        syncnet) port=$syncnet_port; pid=$syncnet_pid ;;
        haproxy) port=$haproxy_port; pid=$haproxy_pid ;;
      esac
      events=context-switches,task-clock,raw_syscalls:sys_enter
      perf_pids=()
      if [ -n "$pid" ]; then
        perf stat -e "$events" -x, -o "$TMP/perf.proxy" -p "$pid" & perf_pids+=($!)
      fi
      perf stat -e "$events" -x, -o "$TMP/perf.redis" -p "$redis_pid" & perf_pids+=($!)
      sleep 0.3
      rps=$(bench "$port" "$depth" get | tr -d '"' | cut -d, -f2)
      kill -INT "${perf_pids[@]}"; wait "${perf_pids[@]}" 2>/dev/null || true
      [ -n "$pid" ] && perf_line "$target" "$target" "$depth" "$TMP/perf.proxy" "$rps" | tee -a "$OUT"
      perf_line redis-server "$target" "$depth" "$TMP/perf.redis" "$rps" | tee -a "$OUT"
    done
  done
  stop_all
fi
