#!/usr/bin/env bash
# Run CMD with a throwaway PostgreSQL server: scripts/with_postgres.sh CMD [ARGS...]
#
# Creates a cluster in a temporary folder (initdb, trust authentication), starts it listening on
# 127.0.0.1 only at a free port, exports NAS_TEST_POSTGRES_URL (SQLAlchemy URL, psycopg 3
# driver), runs CMD, then stops the server by its pid and deletes the folder. Exits with CMD's
# status. Needs the PostgreSQL server binaries (Debian: apt-get install -y postgresql) and, for
# the tests, psycopg (pip install 'psycopg[binary]'). As root the server runs as `postgres`.
#
#   scripts/with_postgres.sh python -m pytest -m postgres tests/store
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 2
fi

bindir=""
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    bindir="$(pg_config --bindir)"
else
    bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "error: PostgreSQL server binaries not found; install them (apt-get install -y postgresql)" >&2
    exit 2
fi

workdir="$(mktemp -d "${TMPDIR:-/tmp}/nas-postgres.XXXXXX")"
run_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" -eq 0 ]; then chown postgres "$workdir"; fi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
server_pid=""
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -INT "$server_pid"  # fast shutdown
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf "$workdir"
}
trap stop_server EXIT

run_as_owner "$bindir/initdb" -D "$workdir/data" -A trust -U postgres -E UTF8 >"$workdir/initdb.log" \
    || { cat "$workdir/initdb.log" >&2; exit 1; }
run_as_owner "$bindir/pg_ctl" -D "$workdir/data" -l "$workdir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $workdir -c fsync=off" start >/dev/null \
    || { cat "$workdir/server.log" >&2; exit 1; }
server_pid="$(head -n 1 "$workdir/data/postmaster.pid")"

export NAS_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
echo "with_postgres: server pid $server_pid at $NAS_TEST_POSTGRES_URL" >&2
set +e
"$@"
status=$?
set -e
exit "$status"
