#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: syncnet beside the comparison servers of
# ../shared/anchors (Node.js, tokio, naive threads, C epoll), measured with
# ../shared/tools/echo-load by ../shared/tools/anchor-bench.sh, interleaved.
#
#   bench/compare.sh            # ROUNDS=3 by default; ~15 minutes
#
# The anchors and tools are copied to a temporary directory (../shared is
# read-only and none of it belongs in this project). Results: the markdown
# report and raw JSON lines are written next to the copy; the path is printed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
if [ ! -d "$ROOT/../shared/anchors" ]; then
  echo "bench/compare.sh needs the comparison servers and tools in $ROOT/../shared" >&2
  echo "(anchors/ and tools/; see BENCHMARKS.md): they are not part of this repository." >&2
  exit 2
fi
SHARED=$(cd "$ROOT/../shared" && pwd)
work=$(mktemp -d -t syncnet-compare.XXXXXX)
cp -r "$SHARED/anchors" "$SHARED/tools" "$work/"
cargo build --release --manifest-path "$ROOT/Cargo.toml"
cp "$ROOT/target/release/syncnet" "$work/syncnet"
export EXTRA_NAME=syncnet
export EXTRA_CMD="$work/syncnet serve --listen 127.0.0.1:{port} --admin 127.0.0.1:0 --workers 12000 --log-format json"
export ROUNDS=${ROUNDS:-3}
export OUT_MD=$work/anchor-results.md RAW=$work/anchor-results.jsonl
bash "$work/tools/anchor-bench.sh"
echo "report: $OUT_MD"
