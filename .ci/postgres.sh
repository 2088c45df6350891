#!/usr/bin/env bash
# A throw-away PostgreSQL server for the PostgreSQL store's tests and bench.
#
#   eval "$(bash .ci/postgres.sh)"      # exports PYUFTP_TEST_POSTGRESQL=postgresql://...
#   bash .ci/postgres.sh stop           # stops the server started last and deletes its data
#
# Installs Debian's postgresql package if it is missing (as root: apt-get), makes a cluster
# with initdb in a temporary directory as an unprivileged user (initdb refuses root), starts
# it with pg_ctl on 127.0.0.1 and a free port, creates a database "pyuftp_test", and prints
# the export line (the URL is also written to $PGDIR/url). Everything it prints on stdout is
# that one line; progress goes to stderr.
set -euo pipefail
STATE=/tmp/pyuftp-postgres.dir   # names the data directory of the server started last

run_as() {  # run_as USER COMMAND...: as that user when we are root, else as ourselves
    local user=$1; shift
    if [ "$(id -u)" = 0 ]; then
        su -s /bin/sh "$user" -c "$(printf '%q ' "$@")"
    else
        "$@"
    fi
}

if [ "${1:-}" = stop ]; then
    [ -f "$STATE" ] || { echo "no server started" >&2; exit 0; }
    PGDIR=$(cat "$STATE")
    BIN=$(cat "$PGDIR/bin")
    run_as "$(stat -c %U "$PGDIR/data")" "$BIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >&2 || true
    rm -rf "$PGDIR" "$STATE"
    exit 0
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { echo "postgresql is not installed; run this as root once" >&2; exit 1; }
    echo "installing postgresql (apt-get)" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

USER_NAME=$(id -un)
if [ "$(id -u)" = 0 ]; then
    USER_NAME=postgres
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
fi

PGDIR=$(mktemp -d /tmp/pyuftp-postgres.XXXXXX)
chmod 755 "$PGDIR"
echo "$BIN" > "$PGDIR/bin"
mkdir "$PGDIR/data" "$PGDIR/socket"
if [ "$(id -u)" = 0 ]; then chown -R "$USER_NAME" "$PGDIR"; fi
# A free port on loopback: let the kernel pick one, then hand it to the server.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

run_as "$USER_NAME" "$BIN/initdb" -D "$PGDIR/data" -U pyuftp --auth=trust -E UTF8 \
    --no-locale >&2
cat >> "$PGDIR/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$PGDIR/socket'
max_connections = 200
# a throw-away server: speed over durability (the tests kill clients, never the server)
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
run_as "$USER_NAME" "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 start >&2
run_as "$USER_NAME" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U pyuftp pyuftp_test >&2
echo "$PGDIR" > "$STATE"
URL="postgresql://pyuftp@127.0.0.1:$PORT/pyuftp_test"
echo "$URL" > "$PGDIR/url"
echo "export PYUFTP_TEST_POSTGRESQL=$URL"
