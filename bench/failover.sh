#!/usr/bin/env bash
# Failover time of two coordinators on one PostgreSQL database: kills the
# leader (SIGKILL) --kills times and measures, each time, how long until
# the other one answers as the leader; the killed one is started again and
# stands by. Prints each time, their median and maximum beside the target.
#
#   bash bench/failover.sh [--kills 10] [--lease_ms 10000]
#
# Binaries from build/bin/ (or $RETRAIN_BIN_DIR): retrain-server, retrain.
# A PostgreSQL server from Debian's packages is started in a temp dir
# (bench/postgres.sh), removed at exit. Exits 1 when the target is missed.
set -euo pipefail
KILLS=10
LEASE_MS=10000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --kills) KILLS="$2"; shift 2 ;;
    --lease_ms) LEASE_MS="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "failover.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${RETRAIN_BIN_DIR:-$REPO/build/bin}"
source "$REPO/bench/postgres.sh"
WORK="$(mktemp -d /tmp/retrain-failover.XXXXXX)"
chmod 0755 "$WORK"
PIDS=(0 0)
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do [[ $pid -gt 0 ]] && kill -KILL "$pid" 2>/dev/null || true; done
  stop_postgres
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
start_postgres "$WORK/pg"
PORTS=()
for i in 0 1; do
  PORTS+=("$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')")
done
mkdir -p "$WORK/data"
start_coordinator() {  # start_coordinator I
  "$BIN/retrain-server" --listen "127.0.0.1:${PORTS[$1]}" --state_db "$PG_URI" \
    --state_db_password_file "$PG_PASSWORD_FILE" --leader_lease_ms "$LEASE_MS" \
    --data_root "$WORK/data" >>"$WORK/server-$1.log" 2>&1 &
  PIDS[$1]=$!
}
leads() {  # leads I: whether coordinator I answers as the leader
  "$BIN/retrain" --server "127.0.0.1:${PORTS[$1]}" --timeout_s 2 workers >/dev/null 2>&1
}
wait_for_leader() {  # prints the index of the leader (60 s at most)
  local i
  for ((t = 0; t < 1200; t++)); do
    for i in 0 1; do if leads "$i"; then echo "$i"; return 0; fi; done
    sleep 0.05
  done
  return 1
}
start_coordinator 0
start_coordinator 1
times=()
for ((k = 1; k <= KILLS; k++)); do
  leader=$(wait_for_leader) || { echo "failover.sh: no coordinator leads" >&2; exit 1; }
  other=$((1 - leader))
  # Let the other one stand by for a moment, as it would in service.
  sleep 1
  start=$(date +%s%N)
  kill -KILL "${PIDS[$leader]}"
  wait "${PIDS[$leader]}" 2>/dev/null || true
  until leads "$other"; do sleep 0.02; done
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  times+=("$ms")
  echo "kill $k: coordinator $leader killed, coordinator $other led after $ms ms"
  start_coordinator "$leader"
done
/usr/bin/python3 - "$LEASE_MS" "${times[@]}" <<'PY'
import statistics, sys
lease = int(sys.argv[1])
t = sorted(int(x) for x in sys.argv[2:])
target = lease + 5000
print()
print(f"== failover: {len(t)} kills of the leader, --leader_lease_ms {lease} ==")
print(f"  median {statistics.median(t):.0f} ms, max {max(t)} ms"
      f"   target: max < lease + 5 s = {target} ms   {'PASS' if max(t) < target else 'MISS'}")
sys.exit(0 if max(t) < target else 1)
PY
