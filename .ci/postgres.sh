#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests (docs/OPERATIONS.md).
#
#   .ci/postgres.sh start DIR [--until PID] [--tls PORT]   prints the cluster's URL
#   .ci/postgres.sh stop DIR
#
# The cluster lives in DIR (made if missing) and listens only on a Unix
# socket in DIR, so clusters started side by side never clash. With
# --tls PORT it also listens on 127.0.0.1:PORT, for TLS only (plain TCP is
# refused), with a certificate for 127.0.0.1 and localhost signed by a CA
# made for it (DIR/ca.crt); the URL printed is then the TLS one. PostgreSQL
# refuses to run as root: as root, it runs as the `postgres` user (made by
# Debian's package) or `nobody`. With --until PID, a watchdog stops the
# cluster and removes DIR once that process has exited (the tests' helper
# uses it, as a test process cannot stop what it started when it ends).
set -euo pipefail

usage() { echo "usage: $0 start DIR [--until PID] [--tls PORT] | stop DIR" >&2; exit 2; }
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

# A CA and a server certificate for 127.0.0.1 and localhost, signed by it,
# in the cluster's data dir (the key readable by the cluster's owner only).
make_certificates() {
    local data=$1 tmp
    tmp=$(mktemp -d)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=udpchat test CA" -keyout "$tmp/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/CN=localhost" -keyout "$data/server.key" -out "$tmp/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tmp/ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$dir/ca.crt" -CAkey "$tmp/ca.key" \
        -CAcreateserial -days 2 -extfile "$tmp/ext" -out "$data/server.crt" 2>/dev/null
    rm -rf "$tmp"
    chmod 600 "$data/server.key"
    chmod 644 "$dir/ca.crt"
    [ ${#as[@]} -eq 0 ] || chown "$owner" "$data/server.key" "$data/server.crt"
}

case "$cmd" in
start)
    until_pid='' tls_port=''
    while [ $# -gt 0 ]; do
        case "$1" in
        --until) until_pid=${2:-}; shift 2 ;;
        --tls) tls_port=${2:-}; shift 2 ;;
        *) usage ;;
        esac
    done
    bin=$(bindir)
    mkdir -p "$dir"
    [ ${#as[@]} -eq 0 ] || chown "$owner" "$dir"
    chmod 700 "$dir"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -U udpchat -A trust -E UTF8 \
        --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    options="-c listen_addresses='' -k $dir -p 5432 -c max_connections=300"
    if [ -n "$tls_port" ]; then
        make_certificates "$dir/data"
        # TLS over TCP, and nothing else over TCP; the socket stays.
        printf 'local all all trust\nhostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n' |
            "${as[@]}" tee "$dir/data/pg_hba.conf" >/dev/null
        options="-c listen_addresses=127.0.0.1 -k $dir -p $tls_port -c max_connections=300"
        options="$options -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
    fi
    "${as[@]}" "$bin/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/postgres.log" \
        -o "$options" >/dev/null ||
        { cat "$dir/postgres.log" >&2; exit 1; }
    if [ -n "$until_pid" ]; then
        pid=$until_pid
        setsid bash -c '
            while kill -0 '"$pid"' 2>/dev/null; do sleep 1; done
            '"${as[*]} $bin/pg_ctl"' stop -D "'"$dir"'/data" -m immediate >/dev/null 2>&1
            rm -rf "'"$dir"'"
        ' </dev/null >/dev/null 2>&1 &
    fi
    if [ -n "$tls_port" ]; then
        echo "postgres://udpchat@127.0.0.1:$tls_port/postgres?sslmode=require"
    else
        # The socket's directory, percent-encoded as the URL's host.
        echo "postgres://udpchat@${dir//\//%2F}:5432/postgres"
    fi
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
