#!/usr/bin/env bash
# What --recv-buffer / --send-buffer (SO_RCVBUF / SO_SNDBUF of accepted
# sockets) change: bulk throughput, and memory per connection whose buffers
# are full. Needs only the project (a release `syncnet`) and python3.
#
#   bench/buffers.sh [BIN]        # BIN defaults to target/release/syncnet
#
# For each SIZE in $SIZES (0 = the kernel's autotuning, the default), in
# interleaved rounds (round r runs every size, in rotated order, fresh servers):
#   bulk:  BIN serve --listen 127.0.0.1:P --admin off --recv-buffer SIZE --send-buffer SIZE
#          (pinned to core $SERVER_CPU) <- BIN bench --mode bulk -c 1 -d $DUR
#          (pinned to core $LOAD_CPU); MB/s echoed (10^6 bytes).
#   full:  the same server with --workers 4096; $N clients (python3, each
#          with SO_RCVBUF = SO_SNDBUF = 64 KiB set before connecting, so only
#          the server's side varies) send without ever reading until no
#          socket accepts another byte: every buffer on the path is full (the
#          echo worker is blocked writing). Then, per connection:
#            kernel: the growth of "TCP: mem" in /proc/net/sockstat (pages of
#                    4 KiB; both ends are on this machine), in KiB;
#            rss:    the growth of the server's VmRSS, in KiB;
#            bytes:  what each client got to send before everything stopped.
# Prints one line per run and the median per SIZE.
#
# Knobs: SIZES="0 65536 1048576" ROUNDS=5 DUR=5 N=200 SERVER_CPU=0 LOAD_CPU=1
set -euo pipefail
BIN=${1:-target/release/syncnet}
SIZES=${SIZES:-0 65536 1048576}
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-5}
N=${N:-200}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
if [ ! -x "$BIN" ]; then
  echo "bench/buffers.sh needs a syncnet binary: $BIN is missing (cargo build --release)" >&2
  exit 2
fi
for tool in python3 taskset; do
  command -v "$tool" >/dev/null || { echo "bench/buffers.sh needs $tool" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d -t syncnet-buffers.XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# start_server SIZE EXTRA...: sets server_pid and port.
start_server() {
  local size=$1; shift
  taskset -c "$SERVER_CPU" "$BIN" serve --listen 127.0.0.1:0 --admin off --log-format json \
    --recv-buffer "$size" --send-buffer "$size" "$@" 2>"$work/log" &
  server_pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(grep -o '"listen":"127.0.0.1:[0-9]*"' "$work/log" 2>/dev/null | head -1 | grep -o '[0-9]*"$' | tr -d '"') || true
    [ -n "$port" ] && return 0
    sleep 0.05
  done
  echo "the server did not start: $(cat "$work/log")" >&2
  exit 1
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

fill() {
  python3 - "$port" "$N" "$server_pid" <<'EOF'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def tcp_mem_pages():
    for line in open("/proc/net/sockstat"):
        if line.startswith("TCP:"):
            f = line.split()
            return int(f[f.index("mem") + 1])
def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
mem0, rss0 = tcp_mem_pages(), rss_kib()
socks, sent = [], [0] * n
for _ in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    socks.append(s)
chunk = b"x" * 65536
deadline = time.monotonic() + 60
quiet = 0
while quiet < 5 and time.monotonic() < deadline:
    moved = 0
    for i, s in enumerate(socks):
        try:
            k = s.send(chunk)
            sent[i] += k
            moved += k
        except BlockingIOError:
            pass
    quiet = quiet + 1 if moved == 0 else 0
    if moved == 0:
        time.sleep(0.1)  # pacing: let the kernel and the server move bytes
mem1, rss1 = tcp_mem_pages(), rss_kib()
sent.sort()
print(f"kernel_kib {(mem1 - mem0) * 4 / n:.1f} rss_kib {(rss1 - rss0) / n:.1f} "
      f"bytes {sent[n // 2]}")
for s in socks:
    s.close()
EOF
}

read -r -a sizes <<<"$SIZES"
for round in $(seq "$ROUNDS"); do
  # Rotate the order each round so drift does not favour one size.
  for i in "${!sizes[@]}"; do
    size=${sizes[$(( (i + round) % ${#sizes[@]} ))]}
    start_server "$size"
    mbps=$(taskset -c "$LOAD_CPU" "$BIN" bench --connect "127.0.0.1:$port" --mode bulk -c 1 \
      -d "${DUR}s" --json | grep -o '"mbps":[0-9.]*' | cut -d: -f2)
    stop_server
    start_server "$size" --workers 4096
    full=$(fill)
    stop_server
    echo "round $round size $size bulk_mbps $mbps $full" | tee -a "$work/results"
  done
done

echo "== medians over $ROUNDS rounds (N=$N full connections)"
python3 - "$work/results" <<'EOF'
import sys, statistics, collections
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    f = line.split()
    size = f[3]
    for key, value in zip(f[4::2], f[5::2]):
        rows[size][key].append(float(value))
print(f"{'size':>9} {'bulk MB/s':>10} {'kernel KiB/conn':>16} {'rss KiB/conn':>13} {'bytes/conn':>11}")
for size, cols in rows.items():
    m = {k: statistics.median(v) for k, v in cols.items()}
    print(f"{size:>9} {m['bulk_mbps']:>10.0f} {m['kernel_kib']:>16.1f} {m['rss_kib']:>13.1f} {m['bytes']:>11.0f}")
EOF
