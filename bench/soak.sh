#!/usr/bin/env bash
# Soak: a release `syncnet serve` under mixed traffic with connection churn
# for a long time, sampling its RSS, open descriptors, threads and the p99
# latency every 10 s, to show whether any of them creeps up.
#
#   bench/soak.sh DURATION        # e.g. 30m, 90s, 1h
#
# Needs: a release build (cargo build --release; BIN=path overrides
# target/release/syncnet), python3 (standard library), gnuplot (the script
# installs gnuplot-nox with apt-get when it is missing and it runs as root),
# Linux /proc. Not run in CI.
#
# Traffic, all against one server on 127.0.0.1:
#   - churn: bench/soak_churn.py opens ~$CHURN connections/s (default 1000),
#     most echoing 16 B to 16 KiB and closing, some reset mid-message,
#     some closing without a byte;
#   - held: `syncnet bench --mode hold -c $HOLD` keeps idle connections open
#     for the whole run and checks their echo at the end;
#   - requests: back-to-back 10 s runs of `syncnet bench --mode pingpong
#     -c $CONNS --rate $RATE` (9 s measured after a 1 s warm-up); each run's
#     p99 is the sample's latency.
# After each pingpong run (every 10 s) one CSV row is written to
# bench/results/DATE-soak-DURATION.csv:
#   elapsed_s,rss_kib,fds,threads,p99_us,rps,bench_errors,connections_active,
#   accepted_total,churn_connections,churn_errors,churn_p99_ms
# (rss/fds/threads from /proc/PID of the server; active/accepted from its
# /metrics), and at the end a PNG of RSS, fds, threads and p99 over time
# next to it. Exits 1 if any check failed (a wrong echo, a bench error).
#
# Knobs: CHURN=1000 HOLD=200 CONNS=32 RATE=2000 BIN=target/release/syncnet
#        SERVE_ARGS="--workers 1024 --queue 256 --idle-timeout 1h"
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 1 ]; then
  echo "usage: bench/soak.sh DURATION   (e.g. 30m, 90s, 1h)" >&2
  exit 2
fi
DURATION=$1
case $DURATION in
  *h) seconds=$(( ${DURATION%h} * 3600 )) ;;
  *m) seconds=$(( ${DURATION%m} * 60 )) ;;
  *s) seconds=${DURATION%s} ;;
  *[0-9]) seconds=$DURATION ;;
  *) echo "soak.sh: DURATION must look like 30m, 90s or 1h, got '$DURATION'" >&2; exit 2 ;;
esac
if ! [ "$seconds" -ge 20 ] 2>/dev/null; then
  echo "soak.sh: DURATION must be at least 20s, got '$DURATION'" >&2
  exit 2
fi
CHURN=${CHURN:-1000}
HOLD=${HOLD:-200}
CONNS=${CONNS:-32}
RATE=${RATE:-2000}
BIN=${BIN:-target/release/syncnet}
SERVE_ARGS=${SERVE_ARGS:---workers 1024 --queue 256 --idle-timeout 1h}

# What the script needs, checked before anything starts.
if [ ! -x "$BIN" ]; then
  echo "soak.sh needs a release build at $BIN: run 'cargo build --release' (or set BIN=)" >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "soak.sh needs python3 (the churn client bench/soak_churn.py)" >&2
  exit 1
fi
if [ ! -r /proc/self/status ]; then
  echo "soak.sh needs Linux /proc (RSS, descriptors and threads of the server)" >&2
  exit 1
fi
if ! command -v gnuplot >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== gnuplot is missing: installing gnuplot-nox with apt-get (to draw the PNG)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null
  else
    echo "soak.sh needs gnuplot to draw the PNG: install it (Debian: apt-get install gnuplot-nox)" >&2
    exit 1
  fi
fi

ulimit -n "$(ulimit -Hn)"
mkdir -p bench/results
stem=bench/results/$(date -u +%F)-soak-$DURATION
csv=$stem.csv
png=$stem.png
work=$(mktemp -d -t syncnet-soak.XXXXXX)

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The server logs every close at info (part of the cost being soaked); only
# its first lines and any warning or error are kept.
mkfifo "$work/stderr"
# shellcheck disable=SC2086 # SERVE_ARGS is a list of flags
"$BIN" serve --listen 127.0.0.1:0 --admin 127.0.0.1:0 --log-format json $SERVE_ARGS \
  2>"$work/stderr" >/dev/null &
server=$!
pids+=("$server")
python3 -c '
import sys
head, warn = open(sys.argv[1], "w"), open(sys.argv[2], "w")
warned = 0
for n, line in enumerate(sys.stdin):
    if n < 20:
        head.write(line)
        head.flush()
    if warned < 1000 and ("\"level\":\"warn\"" in line or "\"level\":\"error\"" in line):
        warn.write(line)
        warn.flush()
        warned += 1
' "$work/head.log" "$work/warn.log" <"$work/stderr" &
pids+=("$!")

listen="" admin=""
for _ in $(seq 1 100); do
  if [ -s "$work/head.log" ]; then
    listen=$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' "$work/head.log" | head -1)
    admin=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$work/head.log" | head -1)
    [ -n "$listen" ] && break
  fi
  kill -0 "$server" 2>/dev/null || { echo "the server exited at start-up" >&2; exit 1; }
  sleep 0.1
done
if [ -z "$listen" ] || [ -z "$admin" ]; then
  echo "no start-up line from the server within 10 s" >&2
  exit 1
fi
echo "== server pid $server on $listen, admin $admin; $DURATION ($seconds s) -> $csv"

metric() { # name: the value of one unlabelled sample from /metrics
  python3 - "$admin" "$1" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for line in data.decode().splitlines():
    if line.startswith(sys.argv[2] + " "):
        print(int(float(line.split()[1])))
        break
EOF
}
rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$server/status"; }
threads() { awk '$1 == "Threads:" { print $2 }' "/proc/$server/status"; }
fds() { ls -U "/proc/$server/fd" | wc -l; }

# Held idle connections for the whole run (their echo is checked at its end).
"$BIN" bench --connect "$listen" --mode hold -c "$HOLD" -d "$((seconds + 5))s" --warmup 0s --json \
  >"$work/hold.json" 2>"$work/hold.err" &
hold=$!
pids+=("$hold")
# The churn, for the whole run.
python3 bench/soak_churn.py "$listen" "$CHURN" "$seconds" "$work/churn.stats" \
  >"$work/churn.out" 2>&1 &
churn=$!
pids+=("$churn")

echo "elapsed_s,rss_kib,fds,threads,p99_us,rps,bench_errors,connections_active,accepted_total,churn_connections,churn_errors,churn_p99_ms" >"$csv"
start=$(date +%s)
failed=0
while true; do
  elapsed=$(( $(date +%s) - start ))
  [ "$elapsed" -ge "$seconds" ] && break
  if ! "$BIN" bench --connect "$listen" --mode pingpong -c "$CONNS" --rate "$RATE" \
      -d 9s --warmup 1s --json >"$work/pingpong.json" 2>"$work/pingpong.err"; then
    echo "pingpong run failed at ${elapsed}s: $(head -c 300 "$work/pingpong.err")" >&2
    failed=1
  fi
  kill -0 "$server" 2>/dev/null || { echo "the server died" >&2; exit 1; }
  read -r p99 rps errs < <(python3 -c '
import json, sys
try:
    r = json.load(open(sys.argv[1]))
    print(r["p99_us"], round(r["rps"]), r["errors"] + r["connect_errors"])
except Exception:
    print("nan nan nan")
' "$work/pingpong.json")
  churn_stats="0 0 0 0"
  [ -s "$work/churn.stats" ] && churn_stats=$(cat "$work/churn.stats")
  read -r c_n c_err _c_bad c_p99 <<<"$churn_stats"
  row="$(( $(date +%s) - start )),$(rss_kib),$(fds),$(threads),$p99,$rps,$errs"
  row="$row,$(metric syncnet_connections_active),$(metric syncnet_connections_accepted_total)"
  row="$row,$c_n,$c_err,$c_p99"
  echo "$row" >>"$csv"
  echo "$row"
done

# The churn and the hold end by themselves; wait for their verdicts.
if ! wait "$churn"; then
  echo "churn client reported wrong echoes: $(cat "$work/churn.out")" >&2
  failed=1
fi
cat "$work/churn.out"
if ! wait "$hold"; then
  echo "hold run failed: $(head -c 300 "$work/hold.err") $(cat "$work/hold.json")" >&2
  failed=1
fi
echo "hold: $(cat "$work/hold.json")"
if [ -s "$work/warn.log" ]; then
  echo "server warnings/errors (first lines):"
  head -5 "$work/warn.log"
fi

gnuplot <<EOF
set datafile separator ","
set terminal pngcairo size 1200,900 font ",10"
set output "$png"
set multiplot layout 2,2 title "syncnet serve soak, $DURATION: churn about $CHURN conn/s, $HOLD held, pingpong $CONNS conns at $RATE req/s"
set xlabel "minutes"
set grid
set key off
set yrange [0:*]
set xrange [0:*]
set title "RSS (MiB)"
plot "$csv" every ::1 using (\$1/60):(\$2/1024) with lines lw 2
set title "open file descriptors"
plot "$csv" every ::1 using (\$1/60):3 with lines lw 2
set title "threads"
plot "$csv" every ::1 using (\$1/60):4 with lines lw 2
set title "pingpong p99 (µs, log scale), each 9 s run"
set logscale y
set yrange [*:*]
plot "$csv" every ::1 using (\$1/60):5 with lines lw 2
unset multiplot
EOF
echo "== wrote $csv and $png"
exit "$failed"
