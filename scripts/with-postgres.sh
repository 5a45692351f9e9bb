#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL 15 server: initdb in a temp dir, a
# free loopback port, torn down afterwards whatever the command's outcome.
# Exports to the command:
#   VOXQ_TEST_PG_URL      postgresql://postgres@127.0.0.1:PORT/postgres
#   VOXQ_TEST_PG_RESTART  a shell command that restarts the server (fast stop, start)
#   VOXQ_REQUIRE_PG=1     tests that need the server fail instead of skipping
# Server settings are PostgreSQL's defaults (fsync=on, synchronous_commit=on),
# as for the peers in ../shared/peers, with max_connections raised to 200.
set -euo pipefail
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL 15 in $PG_BIN (scripts/install-deps.sh installs it)" >&2; exit 1; }

port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
port=$(( 20000 + RANDOM % 20000 ))
while ! port_free "$port"; do port=$(( 20000 + RANDOM % 20000 )); done

dir=$(mktemp -d /tmp/voxq-pg.XXXXXX)
asuser=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root: run it as the postgres user.
  chown postgres: "$dir"
  asuser=(runuser -u postgres --)
fi
cleanup() {
  "${asuser[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"${asuser[@]}" "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale \
  >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
CONF
"${asuser[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)" >&2

export VOXQ_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
export VOXQ_TEST_PG_RESTART="${asuser[*]} $PG_BIN/pg_ctl -D $dir/data -l $dir/server.log -m fast -w -t 60 restart >/dev/null"
export VOXQ_REQUIRE_PG=1
"$@"
