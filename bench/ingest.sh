#!/usr/bin/env bash
# Durable ingestion (BENCHMARKS.md, "Durable ingestion: the ingest example"):
# records/s acknowledged only once fsynced, 8 connections x 64 in flight,
# 100-byte records, three servers, interleaved, ROUNDS rounds:
#
#   ingest       examples/ingest serve (group commit)
#                  <- ingest produce --producers 8 --window 64 --size 100
#   redis        redis-server --appendonly yes --appendfsync always --save ''
#                  <- redis-benchmark -t set -c 8 -P 64 -d 100
#   every-record examples/ingest serve --fsync-every-record (the baseline)
#                  <- the same ingest produce
#
#   bash bench/ingest.sh          # ROUNDS=3 RECORDS=400000 BASELINE_RECORDS=20000
#
# Needs redis-server and redis-benchmark (Debian: apt-get install -y
# redis-server redis-tools). Files go to a fresh directory under /var/tmp
# (a disk, never tmpfs: an fsync there costs nothing); ports are picked
# free. Prints one JSON line per run, then the medians; the raw lines are
# also written to $OUT (default: the work directory).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-400000}
BASELINE_RECORDS=${BASELINE_RECORDS:-20000}

for tool in redis-server redis-benchmark redis-cli python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench/ingest.sh: $tool is missing" >&2; exit 1; }
done
work=$(mktemp -d /var/tmp/ingest-bench.XXXXXX)
OUT=${OUT:-$work/results.jsonl}
fs=$(stat -f -c %T "$work")
if [ "$fs" = tmpfs ] || [ "$fs" = ramfs ]; then
  echo "bench/ingest.sh: $work is on $fs, not a disk" >&2
  exit 1
fi
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --quiet --release --example ingest --manifest-path "$ROOT/Cargo.toml"
INGEST="$ROOT/target/release/examples/ingest"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (at most 10 s) until something accepts on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 200); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# timed CPU_FILE CMD...: runs CMD; writes the CPU seconds it used (user +
# system, all threads) to CPU_FILE.
timed() {
  python3 -c '
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
used = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.3f" % (used.ru_utime + used.ru_stime))
sys.exit(code)' "$@"
}

# The CPU seconds process $1 has used so far.
proc_cpu() {
  awk -v tck="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / tck }' "/proc/$1/stat"
}

metric() { # metric ADMIN_PORT NAME
  curl -fsS "http://127.0.0.1:$1/metrics" | awk -v name="$2" '$1 == name { print $2 }'
}

# run_ingest NAME RECORDS [serve flags...]: one server, one produce run.
run_ingest() {
  local name=$1 records=$2; shift 2
  local port admin dir
  port=$(free_port); admin=$(free_port); dir="$work/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  "$INGEST" serve --file "$dir/records.jsonl" --listen "127.0.0.1:$port" \
    --admin "127.0.0.1:$admin" --log-format json "$@" 2>"$dir/serve.log" &
  local server=$!
  pids+=("$server")
  wait_port "$port"
  local report
  report=$(timed "$dir/client.cpu" "$INGEST" produce --connect "127.0.0.1:$port" --producers 8 --window 64 \
    --size 100 --records "$records" --id-prefix "$name-")
  local fsyncs stored
  fsyncs=$(metric "$admin" syncnet_ingest_fsyncs_total)
  stored=$(metric "$admin" syncnet_ingest_records_total)
  local server_cpu
  server_cpu=$(proc_cpu "$server")
  kill -TERM "$server"
  wait "$server"
  python3 - "$name" "$report" "$fsyncs" "$stored" "$server_cpu" "$(cat "$dir/client.cpu")" <<'EOF'
import json, sys
name, report, fsyncs, stored = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
report.update(server=name, fsyncs=int(fsyncs), fsyncs_per_sec=round(fsyncs / report["secs"]),
              records_per_fsync=round(stored / max(fsyncs, 1), 1),
              server_cpu_s=float(sys.argv[5]), client_cpu_s=float(sys.argv[6]))
print(json.dumps(report))
EOF
}

run_redis() {
  local port dir
  port=$(free_port); dir="$work/redis"
  rm -rf "$dir"; mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
    --appendfsync always --save '' --logfile "$dir/redis.log" &
  local server=$!
  pids+=("$server")
  wait_port "$port"
  [ "$(redis-cli -p "$port" config get appendfsync | tail -1)" = always ] || { echo "redis: appendfsync is not always" >&2; exit 1; }
  # Redis counts no fsyncs: with COUNT_FSYNCS=1 (a run outside the rounds:
  # tracing costs Redis 10-20 %), perf counts its fdatasync calls.
  local perf=""
  if [ "${COUNT_FSYNCS:-0}" = 1 ]; then
    perf stat -e syscalls:sys_enter_fdatasync -x, -o "$dir/perf.csv" -p "$server" &
    perf=$!
    sleep 0.2 # perf attaches
  fi
  local out
  out=$(timed "$dir/client.cpu" redis-benchmark -h 127.0.0.1 -p "$port" -t set -c 8 -P 64 -d 100 -r 1000000 \
    -n "$RECORDS" -q 2>/dev/null | tr '\r' '\n' | grep 'requests per second' | tail -1)
  local fsyncs=""
  if [ -n "$perf" ]; then
    kill -INT "$perf"; wait "$perf" || true
    fsyncs=$(awk -F, '/fdatasync/ { print $1 }' "$dir/perf.csv")
  fi
  local server_cpu
  server_cpu=$(proc_cpu "$server")
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$server" || true
  python3 - "$out" "$RECORDS" "$fsyncs" "$server_cpu" "$(cat "$dir/client.cpu")" <<'EOF'
import json, re, sys
out, records, fsyncs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rps = float(re.search(r"([\d.]+) requests per second", out).group(1))
p50 = re.search(r"p50=([\d.]+) msec", out)
report = {"server": "redis", "records": records, "records_per_sec": round(rps),
          "secs": round(records / rps, 3), "p50_ms": float(p50.group(1)) if p50 else None,
          "server_cpu_s": float(sys.argv[4]), "client_cpu_s": float(sys.argv[5])}
if fsyncs:
    # Counted from the benchmark's start to its end (plus perf's 0.2 s start).
    report.update(fsyncs=int(fsyncs), fsyncs_per_sec=round(int(fsyncs) / report["secs"]),
                  records_per_fsync=round(records / max(int(fsyncs), 1), 1))
print(json.dumps(report))
EOF
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), files on $fs ($work)"
for round in $(seq "$ROUNDS"); do
  # Rotate the order so that no server always runs first.
  case $((round % 3)) in
    1) order="ingest redis every-record" ;;
    2) order="redis every-record ingest" ;;
    0) order="every-record ingest redis" ;;
  esac
  for server in $order; do
    case $server in
      ingest) line=$(run_ingest ingest "$RECORDS") ;;
      redis) line=$(run_redis) ;;
      every-record) line=$(run_ingest every-record "$BASELINE_RECORDS" --fsync-every-record) ;;
    esac
    echo "$line" | python3 -c "import json,sys; d=json.load(sys.stdin); d['round']=$round; print(json.dumps(d))" | tee -a "$OUT"
  done
done

# One more Redis run, not in the medians, with its fdatasync calls counted.
if perf stat -e syscalls:sys_enter_fdatasync -x, -o /dev/null true 2>/dev/null; then
  COUNT_FSYNCS=1 run_redis | python3 -c "import json,sys; d=json.load(sys.stdin); d['server']='redis-counted'; print(json.dumps(d))" | tee -a "$OUT"
fi

python3 - "$OUT" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
counted = [r for r in runs if r["server"] == "redis-counted"]
med = lambda server, key: statistics.median(r[key] for r in runs if r["server"] == server and r.get(key) is not None)
ingest, redis, every = (med(s, "records_per_sec") for s in ("ingest", "redis", "every-record"))
print(f"medians of {sum(r['server'] == 'redis' for r in runs)} rounds, records/s: ingest {ingest:.0f}, redis {redis:.0f}, "
      f"every-record {every:.0f}; ingest/redis {ingest / redis:.2f}x, ingest/every-record {ingest / every:.1f}x; "
      f"ingest {med('ingest', 'fsyncs_per_sec'):.0f} fsyncs/s, {med('ingest', 'records_per_fsync'):.1f} records/fsync; "
      f"every-record {med('every-record', 'fsyncs_per_sec'):.0f} fsyncs/s")
cpu = lambda server: med(server, "server_cpu_s") * 1e5 / med(server, "records")
print(f"server CPU per 100 000 records: ingest {cpu('ingest'):.2f} s, redis {cpu('redis'):.2f} s; "
      f"client: produce {med('ingest', 'client_cpu_s') * 1e5 / med('ingest', 'records'):.2f} s, "
      f"redis-benchmark {med('redis', 'client_cpu_s') * 1e5 / med('redis', 'records'):.2f} s")
for r in counted:
    print(f"redis (one more run, perf attached): {r['records_per_sec']} records/s, "
          f"{r['fsyncs_per_sec']} fsyncs/s, {r['records_per_fsync']} records/fsync")
EOF
