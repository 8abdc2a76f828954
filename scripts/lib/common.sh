# Shared by scripts/setup, scripts/test, scripts/demo. Source it; it sets paths and helpers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_MAJOR=15
PG_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
export PGRX_HOME=$ROOT/pgrx-config
export PATH=$HOME/.cargo/bin:$PATH
# The OS user that runs Postgres clusters (Postgres refuses to run as root).
PG_OS_USER=${MOBILECLIP_PG_USER:-postgres}
# The CLI that setup builds (cargo honours CARGO_TARGET_DIR, so do we).
CLI=${CARGO_TARGET_DIR:-$ROOT/target}/release/mobileclip

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as the Postgres OS user (we are root), with a neutral working directory.
as_pg() { (cd / && runuser -u "$PG_OS_USER" -- "$@"); }

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

# start_cluster DIR PORT [SERVER_OPTIONS] [ADDRESS_SPACE_KB]: initdb (if needed) and start a
# cluster in DIR owned by the Postgres OS user, listening on 127.0.0.1:PORT and a socket in
# DIR; with ADDRESS_SPACE_KB, the postmaster and every backend run under that `ulimit -v`.
start_cluster() {
  local dir=$1 port=$2 extra=${3:-} limit=${4:-unlimited}
  mkdir -p "$dir"
  chown "$PG_OS_USER" "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  # RUST_BACKTRACE from a developer's shell would make pgrx append backtraces to ERROR
  # details; a server normally runs without it.
  as_pg env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE bash -c "ulimit -v $limit && exec \"\$@\"" _ \
    "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $extra" start >/dev/null \
    || { tail -n 30 "$dir/server.log" >&2; die "postgres did not start (log above)"; }
}

stop_cluster() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}
