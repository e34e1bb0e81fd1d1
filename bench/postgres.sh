# Sourced by the benchmarks that need a PostgreSQL server: Debian's
# initdb and postgres in a folder of the caller's, on a free loopback
# port, as the unprivileged "postgres" user when run as root, with
# password authentication. After `start_postgres DIR`: PG_URI (without the
# password), PG_PASSWORD_FILE and PG_PID are set; `stop_postgres` stops it.

# The newest of Debian's /usr/lib/postgresql/*/bin (or RETRAIN_POSTGRES_BIN_DIR).
postgres_bin_dir() {
  if [[ -n "${RETRAIN_POSTGRES_BIN_DIR:-}" ]]; then echo "$RETRAIN_POSTGRES_BIN_DIR"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# as_postgres CMD...: runs CMD as the postgres user when this is root.
as_postgres() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
  local dir="$1" bin port i
  bin=$(postgres_bin_dir)
  if [[ -z "$bin" ]]; then
    echo "no PostgreSQL server under /usr/lib/postgresql/*/bin: scripts/install-deps installs it" >&2
    return 1
  fi
  mkdir -p "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres "$dir"
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/password"
  chmod 0644 "$dir/password"
  as_postgres "$bin/initdb" -D "$dir/data" -U retrain --pwfile="$dir/password" \
    --auth=scram-sha-256 --encoding=UTF8 --no-sync >"$dir/initdb.log" 2>&1 || {
    echo "initdb failed: $(tail -n 3 "$dir/initdb.log")" >&2
    return 1
  }
  port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Not through as_postgres: a function put in the background is a subshell,
  # and PG_PID must be the process that waits for the server.
  local run=()
  [[ $(id -u) -eq 0 ]] && run=(runuser -u postgres --)
  "${run[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir/data" \
    -c listen_addresses=127.0.0.1 >"$dir/postgres.log" 2>&1 &
  PG_PID=$!
  PG_DATA="$dir/data"
  for ((i = 0; i < 300; i++)); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.1
  done
  PGPASSWORD=$(cat "$dir/password") "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U retrain \
    -d postgres -c "CREATE DATABASE retrain" || return 1
  PG_URI="postgresql://retrain@127.0.0.1:$port/retrain"
  PG_PASSWORD_FILE="$dir/password"
}

# A fast shutdown (SIGINT to the postmaster, whose pid heads postmaster.pid).
stop_postgres() {
  if [[ -n "${PG_PID:-}" ]]; then
    [[ -s "$PG_DATA/postmaster.pid" ]] && kill -INT "$(head -n 1 "$PG_DATA/postmaster.pid")" 2>/dev/null
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=""
  fi
}
