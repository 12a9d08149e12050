#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests (docs/OPERATIONS.md).
#
#   .ci/postgres.sh start DIR [--until PID]   prints the cluster's URL
#   .ci/postgres.sh stop DIR
#
# The cluster lives in DIR (made if missing) and listens only on a Unix
# socket in DIR, so clusters started side by side never clash. PostgreSQL
# refuses to run as root: as root, it runs as the `postgres` user (made by
# Debian's package) or `nobody`. With --until PID, a watchdog stops the
# cluster and removes DIR once that process has exited (the tests' helper
# uses it, as a test process cannot stop what it started when it ends).
set -euo pipefail

usage() { echo "usage: $0 start DIR [--until PID] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
dir=$(realpath -m "$2")
shift 2

bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$found" ] && [ -x "$found/initdb" ]; then
        echo "$found"
    elif command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    else
        echo "no PostgreSQL found (apt-get install postgresql)" >&2
        return 1
    fi
}

# Who runs the cluster: ourselves, unless we are root.
as=()
if [ "$(id -u)" = 0 ]; then
    owner=postgres
    id -u "$owner" >/dev/null 2>&1 || owner=nobody
    as=(runuser -u "$owner" --)
fi

case "$cmd" in
start)
    bin=$(bindir)
    mkdir -p "$dir"
    [ ${#as[@]} -eq 0 ] || chown "$owner" "$dir"
    chmod 700 "$dir"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U udpchat -A trust -E UTF8 \
        --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    "${as[@]}" "$bin/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/postgres.log" \
        -o "-c listen_addresses='' -k $dir -p 5432 -c max_connections=300" >/dev/null ||
        { cat "$dir/postgres.log" >&2; exit 1; }
    if [ "${1:-}" = --until ] && [ -n "${2:-}" ]; then
        pid=$2
        setsid bash -c '
            while kill -0 '"$pid"' 2>/dev/null; do sleep 1; done
            '"${as[*]} $bin/pg_ctl"' stop -D "'"$dir"'/data" -m immediate >/dev/null 2>&1
            rm -rf "'"$dir"'"
        ' </dev/null >/dev/null 2>&1 &
    fi
    # The socket's directory, percent-encoded as the URL's host.
    echo "postgres://udpchat@${dir//\//%2F}:5432/postgres"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        bin=$(bindir)
        "${as[@]}" "$bin/pg_ctl" stop -D "$dir/data" -m fast >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    usage
    ;;
esac
