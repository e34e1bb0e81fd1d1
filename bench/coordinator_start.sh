#!/usr/bin/env bash
# How long a coordinator takes to start on a state database of many finished jobs.
#
#   bash bench/coordinator_start.sh [--jobs 200000] [--repeat 3] [--compare SERVER] [--keep]
#
# Run after a build; binaries come from build/bin/ (or $RETRAIN_BIN_DIR):
# retrain-server, retrain-worker, retrain, retrain-make-images. Installs
# nothing; needs python3 (its sqlite3 module). In one temp dir (removed at
# exit unless --keep) it builds a small dataset for real (server + worker +
# `retrain build-dataset`), then copies that finished job --jobs times into
# fresh state databases (bench/fill_state.py) and starts retrain-server on
# them, timing exec to its "state loaded" log line and reading VmRSS there:
#  a) a database with the type/state/request_id job columns, --repeat times;
#  b) one without them, as written before they existed: the first start fills
#     them in, so a) is what every later start costs;
#  c) with --compare SERVER (say a retrain-server built from an earlier
#     commit), that binary on a copy of a), --repeat times.
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
JOBS=200000
REPEAT=3
COMPARE=""
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --jobs) JOBS="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --compare) COMPARE="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "coordinator_start.sh: unknown flag $1" >&2; usage >&2; exit 2 ;;
  esac
done
for n in "$JOBS" "$REPEAT"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "coordinator_start.sh: --jobs and --repeat take positive integers" >&2; exit 2; }
done
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="${RETRAIN_BIN_DIR:-$HERE/../build/bin}"
for b in retrain-server retrain-worker retrain retrain-make-images; do
  [[ -x "$BIN/$b" ]] || { echo "coordinator_start.sh: $BIN/$b is missing; build first (scripts/build)" >&2; exit 2; }
done
[[ -z "$COMPARE" || -x "$COMPARE" ]] || { echo "coordinator_start.sh: --compare $COMPARE is not an executable" >&2; exit 2; }

WORK="$(mktemp -d /tmp/retrain-start-bench.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ $KEEP == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Prints the port a server started with --port_file FILE wrote, waiting up to 30 s.
wait_port() {
  for _ in $(seq 300); do
    [[ -s "$1" ]] && { tr -dc '0-9' <"$1"; return; }
    sleep 0.1
  done
  echo "coordinator_start.sh: retrain-server wrote no port; see $WORK" >&2
  exit 1
}

# One real finished job to copy.
"$BIN/retrain-make-images" photos --out "$WORK/images" --count 40 --classes 4 >/dev/null
"$BIN/retrain-server" --listen 127.0.0.1:0 --port_file "$WORK/port" --state_dir "$WORK/source" \
  --data_root "$WORK" >"$WORK/source.log" 2>&1 &
PIDS+=($!)
PORT=$(wait_port "$WORK/port")
"$BIN/retrain-worker" --server "127.0.0.1:$PORT" --threads 2 >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
RETRAIN_SERVER="127.0.0.1:$PORT" "$BIN/retrain" build-dataset \
  --train_directory "$WORK/images/train" --validation_directory "$WORK/images/validation" \
  --labels_file "$WORK/images/labels.txt" --output_directory "$WORK/out" --wait >"$WORK/client.log" 2>&1
for p in "${PIDS[@]}"; do kill "$p"; done
wait 2>/dev/null || true
PIDS=()

mkdir -p "$WORK/a" "$WORK/b"
python3 "$HERE/fill_state.py" "$WORK/source/retrain.db" "$WORK/a/retrain.db" "$JOBS"
python3 "$HERE/fill_state.py" "$WORK/source/retrain.db" "$WORK/b/retrain.db" "$JOBS" --without_job_columns
if [[ -n "$COMPARE" ]]; then cp -r "$WORK/a" "$WORK/c"; fi

# start SERVER STATE_DIR LABEL: one start, timed to its "state loaded" line.
start() {
  local log="$WORK/start.log" t0 t1 pid rss
  rm -f "$log" "$WORK/start.port"
  t0=$(date +%s%N)
  "$1" --listen 127.0.0.1:0 --port_file "$WORK/start.port" --state_dir "$2" --data_root "$WORK" >"$log" 2>&1 &
  pid=$!
  PIDS=("$pid")
  until grep -q "state loaded" "$log"; do
    kill -0 "$pid" 2>/dev/null || { echo "coordinator_start.sh: $1 exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.01
  done
  t1=$(date +%s%N)
  rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  PIDS=()
  printf '%-44s %7.2f s  VmRSS %5d MiB\n' "$3" "$(( (t1 - t0) / 1000000 ))e-3" "$rss"
}

echo "coordinator start on $JOBS finished jobs ($(nproc) cores; seconds from exec to 'state loaded')"
for i in $(seq "$REPEAT"); do start "$BIN/retrain-server" "$WORK/a" "a) retrain-server, run $i"; done
start "$BIN/retrain-server" "$WORK/b" "b) without job columns: first start (fills)"
start "$BIN/retrain-server" "$WORK/b" "b) without job columns: second start"
if [[ -n "$COMPARE" ]]; then
  for i in $(seq "$REPEAT"); do start "$COMPARE" "$WORK/c" "c) $COMPARE, run $i"; done
fi
grep -o 'state loaded.*' "$WORK/start.log" 2>/dev/null || true
