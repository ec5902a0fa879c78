#!/usr/bin/env bash
# The container image, checked for real: builds the static binary on the host,
# the image from the Dockerfile with buildah (no registry, no daemon), then
# runs the image's entrypoint in its own root filesystem under chroot as the
# image's user (65532) and checks an echo and /healthz. Prints the image's
# size and fails above 10 MB. Needs root (chroot) and Debian's buildah.
#
# Usage: bash .ci/image-check.sh   (from anywhere; .ci/run calls it)
set -euo pipefail
cd "$(dirname "$0")/.."

binary=target/x86_64-unknown-linux-gnu/release/syncnet
tag=localhost/syncnet:ci
max_bytes=$((10 * 1000 * 1000))

echo "-- the static binary (release, crt-static), stripped"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --quiet --release --target x86_64-unknown-linux-gnu --bin syncnet
strip "$binary"
if readelf -l "$binary" | grep -q 'INTERP'; then
  echo "$binary asks for a dynamic loader: not static" >&2
  exit 1
fi

# A storage of its own (vfs: no overlay mounts needed), removed at the end,
# so the check leaves nothing behind and needs no configured storage.
store=$(mktemp -d)
bah=(buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs)
container=""
mnt=""
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  if [ -n "$container" ]; then
    "${bah[@]}" umount "$container" >/dev/null 2>&1 || true
    "${bah[@]}" rm "$container" >/dev/null 2>&1 || true
  fi
  "${bah[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$store"
}
trap cleanup EXIT

echo "-- buildah bud"
"${bah[@]}" bud --quiet --isolation chroot -t "$tag" . >/dev/null

# The image's configuration, as the Dockerfile promises it.
config=$("${bah[@]}" inspect --type image "$tag" | python3 -c '
import json, sys
c = json.load(sys.stdin)["OCIv1"]["config"]
print("|".join([c.get("User", ""), json.dumps(c.get("Entrypoint"), separators=(",", ":")),
                json.dumps(c.get("Cmd"), separators=(",", ":")),
                json.dumps(sorted(c.get("ExposedPorts", {})), separators=(",", ":"))]))')
echo "image config: $config"
expected='65532:65532|["/syncnet"]|["serve","--listen","0.0.0.0:3000","--admin","0.0.0.0:9464"]|["3000/tcp","9464/tcp"]'
if [ "$config" != "$expected" ]; then
  echo "unexpected image configuration; wanted: $expected" >&2
  exit 1
fi

container=$("${bah[@]}" from --quiet "$tag")
mnt=$("${bah[@]}" mount "$container")
# Nothing but the binary: no shell, no libraries.
contents=$(cd "$mnt" && find . -mindepth 1 -not -path './syncnet' | grep -v -E '^\./(dev|proc|sys|etc|run|tmp)(/|$)' || true)
if [ -n "$contents" ]; then
  echo "the image holds more than /syncnet:" >&2
  echo "$contents" >&2
  exit 1
fi
size=$("${bah[@]}" images --format '{{.Size}}' "$tag")
bytes=$(du -sb "$mnt" | cut -f1)
echo "image size: $size (root filesystem: $bytes bytes; limit $max_bytes)"
if [ "$bytes" -gt "$max_bytes" ]; then
  echo "the image is over 10 MB" >&2
  exit 1
fi

echo "-- the entrypoint under chroot --userspec=65532:65532"
read -r port admin_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
log=$(mktemp)
chroot --userspec=65532:65532 "$mnt" /syncnet serve \
  --listen "127.0.0.1:$port" --admin "127.0.0.1:$admin_port" --log-format json 2>"$log" &
server_pid=$!

# An echo and /healthz, each wait bounded (10 s to come up, 5 s per reply).
if ! python3 - "$port" "$admin_port" <<'EOF'
import socket, sys, time

port, admin = int(sys.argv[1]), int(sys.argv[2])

def connect(p, deadline):
    while True:
        try:
            return socket.create_connection(("127.0.0.1", p), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)

def read_all(s):
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    return data

deadline = time.monotonic() + 10
with connect(port, deadline) as s:
    s.sendall(b"hello from the image\n")
    s.shutdown(socket.SHUT_WR)
    echoed = read_all(s)
assert echoed == b"hello from the image\n", f"echo: {echoed!r}"
with connect(admin, deadline) as s:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: image\r\nConnection: close\r\n\r\n")
    reply = read_all(s)
assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\nok\n"), f"/healthz: {reply!r}"
print("echo: ok; /healthz: 200 ok")
EOF
then
  echo "the image's server failed the check; its log:" >&2
  cat "$log" >&2
  exit 1
fi

# SIGTERM: a graceful shutdown, exit 0, within 10 s.
kill -TERM "$server_pid"
for _ in $(seq 100); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
status=0
wait "$server_pid" || status=$?
server_pid=""
if [ "$status" -ne 0 ]; then
  echo "the image's server exited $status after SIGTERM; its log:" >&2
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
echo "-- image ok"
