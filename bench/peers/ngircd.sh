#!/usr/bin/env bash
# Runs udpchat-bench's `fanout` against udpchat and, in the same run, the
# same load through a channel of a real IRC server: ngircd, started here on
# 127.0.0.1 with a config of this script's own (no DNS or ident lookups,
# no connection limits, an operator the bench's sender logs in as to lift
# ngircd's per-user flood limit).
#
#   bench/peers/ngircd.sh                 # M = 10, 100, 1000
#   bench/peers/ngircd.sh --quick         # M = 10, short
#   bench/peers/ngircd.sh --members 10,100 --duration 5
#
# Arguments go to `udpchat-bench fanout`. Installs ngircd from Debian when
# it is missing, and builds the bench and the server when they are.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

NGIRCD=$(command -v ngircd || true)
[ -z "$NGIRCD" ] && [ -x /usr/sbin/ngircd ] && NGIRCD=/usr/sbin/ngircd
if [ -z "$NGIRCD" ]; then
    echo "== installing ngircd (apt-get)" >&2
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y ngircd
    NGIRCD=$(command -v ngircd || echo /usr/sbin/ngircd)
    # The package starts a system-wide ngircd where it can; it is not
    # the one measured here, and must not hold CPU during the run.
    as_root systemctl stop ngircd 2>/dev/null || true
fi

BENCH=${UDPCHAT_BENCH:-target/release/udpchat-bench}
if [ ! -x "$BENCH" ] || [ ! -x target/release/udpchat-server ]; then
    echo "== building udpchat-bench and udpchat-server (release)" >&2
    cargo build --release -p udpchat-bench -p udpchat-server
fi

# A free port on 127.0.0.1: the first that nothing answers on.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=16667
while port_in_use "$PORT"; do PORT=$((PORT + 1)); done

DIR=$(mktemp -d)
NGIRCD_PID=
cleanup() {
    if [ -n "$NGIRCD_PID" ]; then kill "$NGIRCD_PID" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

cat >"$DIR/ngircd.conf" <<EOF
# Written by udpchat's bench/peers/ngircd.sh for one benchmark run.
[Global]
    Name = bench.irc.localhost
    Info = udpchat-bench peer
    Listen = 127.0.0.1
    Ports = $PORT
    MotdPhrase = "udpchat-bench"
    PidFile = $DIR/ngircd.pid

[Limits]
    # The bench opens up to 1000 connections from one address.
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 16
    # No penalty delays; the sender also gets user mode +F (see below).
    MaxPenaltyTime = 0
    PingTimeout = 600
    PongTimeout = 600

[Options]
    DNS = no
    Ident = no
    PAM = no
    RequireAuthPing = no
    OperCanUseMode = yes

[Operator]
    # udpchat-bench's sender OPERs as this and sets +F ("relaxed flood
    # protection"), so ngircd does not hold it to a few lines a second.
    Name = bench
    Password = bench
EOF

"$NGIRCD" --nodaemon --config "$DIR/ngircd.conf" >"$DIR/ngircd.log" 2>&1 &
NGIRCD_PID=$!

for _ in $(seq 100); do
    port_in_use "$PORT" && break
    if ! kill -0 "$NGIRCD_PID" 2>/dev/null; then
        echo "ngircd did not start:" >&2
        cat "$DIR/ngircd.log" >&2
        exit 1
    fi
    sleep 0.1
done
port_in_use "$PORT" || { echo "ngircd is not listening on 127.0.0.1:$PORT" >&2; exit 1; }
echo "== $("$NGIRCD" --version | head -1) on 127.0.0.1:$PORT (pid $NGIRCD_PID)" >&2

"$BENCH" fanout --irc "127.0.0.1:$PORT" --irc-pid "$NGIRCD_PID" "$@"
