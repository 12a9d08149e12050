#!/usr/bin/env bash
# The "before" figure of the `flood` scenario (docs/PERFORMANCE.md): the
# same load and the same junk against the server of 81dcadb, the last
# commit before the handshake gate.
#
# That server reads a HELLO without mac1 and mac2, so this tree's clients
# (whose HELLOs end with them) cannot open a session with it, and
# `--server-bin OLD` alone would measure nothing honest. So the bench is
# built from 81dcadb as well, with this tree's bench sources copied in (all
# but server.rs, whose only change since is a server flag the old server
# lacks) and bench/peers/flood-81dcadb.patch applied: HELLOs without the
# MACs, no cookie replies. The junk keeps 32 bytes where the MACs would be,
# so it has the same size before and after.
#
#   bench/peers/flood-before.sh                  # full run, spoofed flood only
#   bench/peers/flood-before.sh --quick
#
# Arguments go to the old tree's `udpchat-bench`, before the scenario's
# name; `flood --spoofed-only` is added (the old server sends no cookies).
# The old tree is a git worktree at $BEFORE_DIR (default target/before-gate);
# its JSON goes to target/bench-results/before-gate unless --out is given.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=$PWD
BEFORE=${BEFORE_DIR:-$HERE/target/before-gate}

if [ ! -d "$BEFORE" ]; then
    echo "== git worktree add $BEFORE 81dcadb" >&2
    git worktree add --detach "$BEFORE" 81dcadb
fi
echo "== copying this tree's bench sources (but server.rs) into $BEFORE" >&2
git -C "$BEFORE" checkout -- bench
# Files this tree has moved or removed must not linger there.
find "$BEFORE/bench/src" -name '*.rs' ! -name server.rs -delete
(cd bench/src && find . -name '*.rs' ! -name server.rs) | while read -r f; do
    mkdir -p "$(dirname "$BEFORE/bench/src/$f")"
    cp "bench/src/$f" "$BEFORE/bench/src/$f"
done
(cd "$BEFORE" && patch -p1 --quiet < "$HERE/bench/peers/flood-81dcadb.patch")

echo "== building the 81dcadb server and bench (release)" >&2
(cd "$BEFORE" && cargo build --release --locked -p udpchat-server -p udpchat-bench)

OUT=(--out target/bench-results/before-gate)
for arg in "$@"; do
    case "$arg" in --out | --out=*) OUT=() ;; esac
done
"$BEFORE/target/release/udpchat-bench" "${OUT[@]}" "$@" flood --spoofed-only
