#!/usr/bin/env bash
# What the server's heap holds per idle client, by function (the table of
# docs/PERFORMANCE.md, eighth part of issue 14): `presence` at K clients
# against the release server run under heaptrack, then each byte live at
# the heap's peak charged to the innermost udpchat function on its stack.
#
#   bench/peers/server-heap.sh              # K = 10,000 (about 3 minutes)
#   bench/peers/server-heap.sh 2000
#
# Needs heaptrack (apt-get install heaptrack) and python3. Build the bench
# first (cargo build --release -p udpchat-bench); the server is built here
# without jemalloc, whose malloc, built into the binary, heaptrack would
# not see (what is live is the same under either allocator).
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${1:-10000}
OUT=$PWD/target/bench-results/server-heap
cargo build --release -p udpchat-server --no-default-features \
    --target-dir target/server-heap
BIN=$PWD/target/release
SERVER=$PWD/target/server-heap/release/udpchat-server
rm -rf "$OUT"
mkdir -p "$OUT"
# The bench starts the server it is given with its own arguments, and
# kills that process when done. heaptrack and the server under it outlive
# it, so heaptrack's pid is kept, to stop the server after the bench.
{
    echo '#!/bin/sh'
    echo "heaptrack -o '$OUT/heap' '$SERVER' \"\$@\" &"
    echo "echo \$! > '$OUT/heaptrack.pid'"
    echo 'wait'
} > "$OUT/server"
chmod +x "$OUT/server"
"$BIN/udpchat-bench" presence --counts "$K" --idle 10 --no-progress \
    --server-bin "$OUT/server" --out "$OUT"
HEAPTRACK=$(cat "$OUT/heaptrack.pid")
# Killed, not stopped: a server going down pushes to every client, and
# that burst would be the heap's peak.
pkill -KILL -P "$HEAPTRACK" -f udpchat-server || true
# heaptrack finishes its file once the server has stopped.
for _ in $(seq 1 120); do
    kill -0 "$HEAPTRACK" 2> /dev/null || break
    sleep 1
done
heaptrack_print -f "$OUT"/heap*.zst --print-peaks 0 --print-allocators 0 \
    --print-temporary 0 --print-leaks 0 \
    -F "$OUT/peak.stacks" --flamegraph-cost-type peak | grep "peak heap"
python3 - "$OUT/peak.stacks" "$K" << 'PYTHON'
import collections, sys

held = collections.Counter()
for line in open(sys.argv[1]):
    stack, _, size = line.rstrip().rpartition(" ")
    frames = stack.split(";")
    owner = next((f for f in reversed(frames) if "udpchat" in f), "(outside udpchat)")
    held[owner.split("::h")[0]] += int(size)
clients = int(sys.argv[2])
print(f"{sum(held.values()) / clients:8.1f} B per client in all")
for owner, size in held.most_common(20):
    print(f"{size / clients:8.1f} B per client  {owner[:110]}")
PYTHON
