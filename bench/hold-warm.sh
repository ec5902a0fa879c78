#!/usr/bin/env bash
# RSS per held idle connection on warm workers, A/B as interleaved pairs.
#
#   bench/hold-warm.sh BIN_A [BIN_B]     # e.g. target/release/syncnet /tmp/syncnet-before
#
# Each run starts a fresh server from the binary, pinned to core $SERVER_CPU:
#   BIN serve --listen 127.0.0.1:0 --admin off --workers 12000 --queue 0 --log-format json
# (the port is read from its start-up line). `syncnet bench --mode hold -c $N`
# (from $LOAD, pinned to core $LOAD_CPU) then holds N connections twice:
#   1. fresh: the hold starts N worker threads; the connections close at its
#      end and are logged, and the workers wait for the next ones;
#   2. warm: once the server has closed all of them (its open descriptors are
#      back to the idle count), N connections are held again on the same
#      workers.
# VmRSS (/proc/PID/status) is read on the idle server before the first hold,
# before the second, and during each hold once the server holds all N (its
# open descriptors say so) plus $SETTLE seconds. KiB per held connection:
#   fresh = (during 1st - idle) / N
#   warm  = (during 2nd - idle) / N   <- the figure this script is for: what
#           holding N connections costs a server whose workers have served
#           before (stack pages they touched then, e.g. logging a close, stay)
#   2nd hold alone = (during 2nd - before 2nd) / N: near 0, as those pages
#           were already resident.
# (BENCHMARKS.md's fresh figure comes from echo-load's hold, bench/compare.sh.)
# With two binaries each pair runs A then B (B then A on even pairs, so drift
# cancels), as bench/ab.sh does, and the median of the per-pair ratios B/A of
# the warm figure is printed.
#
# Knobs: N=10000 PAIRS=3 (1 with one binary) HOLD=5 SETTLE=1 SERVER_CPU=0 LOAD_CPU=1
#        LOAD=path/to/syncnet (the load generator, `syncnet bench`; default BIN_A)
#        SERVE_ARGS="--admin off --workers 12000 --queue 0 --log-format json"
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bench/hold-warm.sh BIN_A [BIN_B]   (e.g. target/release/syncnet)" >&2
  exit 2
fi
A_BIN=$1
B_BIN=${2:-}
N=${N:-10000}
if [ -n "$B_BIN" ]; then PAIRS=${PAIRS:-3}; else PAIRS=${PAIRS:-1}; fi
HOLD=${HOLD:-5}
SETTLE=${SETTLE:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
LOAD=${LOAD:-$A_BIN}
SERVE_ARGS=${SERVE_ARGS:---admin off --workers 12000 --queue 0 --log-format json}
if [ "$HOLD" -le "$((SETTLE + 1))" ]; then
  echo "HOLD ($HOLD s) must exceed SETTLE + 1 ($SETTLE + 1 s): RSS is read during the hold" >&2
  exit 2
fi
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d -t syncnet-hold-warm.XXXXXX)
results=$work/results

server_pid=""
load_pid=""
cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

fds() { ls -U "/proc/$1/fd" | wc -l; }
status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; } # pid field
threads() { awk '$1 == "Threads:" { print $2 }' "/proc/$1/status"; }

# Waits (polling every 0.1 s, at most $2 s) until `$1` is true; false on timeout.
wait_for() {
  local cond=$1 limit=$2 i
  for i in $(seq 1 "$((limit * 10))"); do
    if eval "$cond"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# One hold of N connections from the load generator against 127.0.0.1:$port;
# prints "rss_before rss_during threads_during establish_s" and leaves the
# bench's JSON report in $work/hold.json.
hold_once() {
  local port=$1 idle_fds=$2 before during nthreads
  before=$(status_kb "$server_pid" VmRSS)
  taskset -c "$LOAD_CPU" "$LOAD" bench --connect "127.0.0.1:$port" --mode hold \
    -c "$N" -d "${HOLD}s" --json >"$work/hold.json" 2>/dev/null &
  load_pid=$!
  # Every connection held by the server (one descriptor each), or the load gone.
  if ! wait_for "[ \$(fds $server_pid) -ge $((idle_fds + N)) ] || ! kill -0 $load_pid 2>/dev/null" 120 \
    || ! kill -0 "$load_pid" 2>/dev/null; then
    echo "the server never held $N connections (it has $(($(fds "$server_pid") - idle_fds)))" >&2
    wait "$load_pid" || true
    load_pid=""
    return 1
  fi
  sleep "$SETTLE" # the last connections' first echoes finish: a measured pause, not a wait for an event
  during=$(status_kb "$server_pid" VmRSS)
  nthreads=$(threads "$server_pid")
  wait "$load_pid" || true # its exit code says whether every echo came back; checked below
  load_pid=""
  local established
  established=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("established") or 0, d["errors"], d["connect_errors"], d.get("establish_secs") or 0)' "$work/hold.json")
  set -- $established
  if [ "$1" != "$N" ] || [ "$2" != 0 ] || [ "$3" != 0 ]; then
    echo "hold: established $1 of $N, errors $2, connect errors $3" >&2
    return 1
  fi
  echo "$before $during $nthreads $4"
}

run_number=0
run_one() { # label binary
  local label=$1 bin=$2 log port idle_fds idle fresh warm
  run_number=$((run_number + 1))
  log=$work/server-$run_number.log # each server its own: no stale start-up line
  # shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
  taskset -c "$SERVER_CPU" "$bin" serve --listen 127.0.0.1:0 $SERVE_ARGS 2>"$log" &
  server_pid=$!
  if ! wait_for "grep -q '\"listen\"' '$log' 2>/dev/null" 10; then
    echo "$label: no start-up line from $bin" >&2
    return 1
  fi
  port=$(head -n 1 "$log" | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["listen"].rsplit(":", 1)[1])')
  idle_fds=$(fds "$server_pid")
  idle=$(status_kb "$server_pid" VmRSS)
  fresh=$(hold_once "$port" "$idle_fds")
  # The server closes each connection when the bench closes its end.
  if ! wait_for "[ \$(fds $server_pid) -le $idle_fds ]" 60; then
    echo "$label: the server still has $(($(fds "$server_pid") - idle_fds)) connections open" >&2
    return 1
  fi
  sleep "$SETTLE" # the workers finish logging and go back to waiting
  warm=$(hold_once "$port" "$idle_fds")
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  echo "$label $idle $fresh $warm" | tee -a "$results"
}

echo "N=$N HOLD=${HOLD}s; per run: label, idle VmRSS kB, then for the fresh and the warm hold: VmRSS kB before, during, threads during, establish s"
for i in $(seq 1 "$PAIRS"); do
  if [ -z "$B_BIN" ]; then
    run_one A "$A_BIN"
  elif [ $((i % 2)) = 1 ]; then
    run_one A "$A_BIN"; run_one B "$B_BIN"
  else
    run_one B "$B_BIN"; run_one A "$A_BIN"
  fi
done

python3 - "$results" "$N" <<'PY'
import statistics, sys
n = int(sys.argv[2])
runs = {"A": [], "B": []}
for line in open(sys.argv[1]):
    label, *f = line.split()
    idle, fb, fd, ft, fe, wb, wd, wt, we = map(float, f)
    runs[label].append({"fresh": (fd - idle) / n, "warm": (wd - idle) / n,
                        "second": (wd - wb) / n, "threads": wt - ft, "establish": we})
def series(rs, key, fmt="{:.2f}"):
    return " ".join(fmt.format(r[key]) for r in rs)
for label in "AB":
    rs = runs[label]
    if not rs:
        continue
    med = lambda key: statistics.median(r[key] for r in rs)
    print(f"{label}: KiB per held connection: warm median {med('warm'):.2f} ({series(rs, 'warm')}); "
          f"fresh median {med('fresh'):.2f} ({series(rs, 'fresh')}); "
          f"2nd hold alone {series(rs, 'second')}; "
          f"threads added by the warm hold: {series(rs, 'threads', '{:.0f}')}; "
          f"warm establish s: {series(rs, 'establish')}")
if runs["B"]:
    ratios = [b["warm"] / a["warm"] for a, b in zip(runs["A"], runs["B"])]
    print("pair ratios B/A (warm):", " ".join(f"{r:.3f}" for r in ratios))
    print(f"median ratio B/A (warm): {statistics.median(ratios):.3f}")
PY
