#!/usr/bin/env bash
# Scale benchmark: dataset builds of many files, ImageNet's shard counts.
#
#   bash bench/scale.sh [--counts 20000,200000,2000000] [--data DIR]
#                       [--train_shards 1024] [--validation_shards 128]
#                       [--timeout 3600] [--keep]
#
# For each count N: N tiny JPEGs (retrain-make-images many: 64x48, 1000
# classes, 4 % validation, 1 % cut short, 1 % copies of another file),
# generated once into DIR/many-N (default: a temp dir; give --data to keep
# them between runs), then a fresh retrain-server (SQLite state) and two
# retrain-worker --threads 1 build them. While the build runs, `retrain list`
# and `retrain status` are timed about twice a second. Prints per count:
# wall time and files/s, the coordinator's and each worker's peak RSS
# (VmHWM), the state database's and dataset.json's sizes, the slowest
# `list` and `status` answers as the CLI saw them and, from the
# coordinator's own latency histogram (/metrics), a bound on its slowest
# ListJobs and GetJob; then the goals of a coordinator whose memory
# does not grow with the files, each with PASS or MISS:
#   coordinator peak RSS at the largest count <= 150 MiB and <= 25 MiB above
#   the smallest; files/s at the largest >= 90 % of the next largest;
#   `list` and `status` under 100 ms during the largest build.
# Binaries come from build/bin/ (or $RETRAIN_BIN_DIR). Exits non-zero when a
# build fails (not on a MISS).
set -euo pipefail

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
}

COUNTS=20000,200000,2000000
DATA=""
TRAIN_SHARDS=1024
VALIDATION_SHARDS=128
TIMEOUT=3600
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --counts) COUNTS="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --train_shards) TRAIN_SHARDS="$2"; shift 2 ;;
    --validation_shards) VALIDATION_SHARDS="$2"; shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "scale.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$COUNTS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
  { echo "scale.sh: --counts takes positive integers, comma-separated" >&2; exit 2; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${RETRAIN_BIN_DIR:-$REPO/build/bin}"
for b in retrain retrain-server retrain-worker retrain-make-images; do
  [[ -x "$BIN/$b" ]] ||
    { echo "scale.sh: missing binary $BIN/$b (build it: cmake --build build --target $b)" >&2; exit 1; }
done
PY=/usr/bin/python3

WORK="$(mktemp -d /tmp/retrain-scale.XXXXXX)"
[[ -n "$DATA" ]] || DATA="$WORK/data"
mkdir -p "$DATA"
DATA="$(cd "$DATA" && pwd -P)"
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  local rc=$?
  stop_all
  if [[ $KEEP -eq 1 ]]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# peak_mib PID: the process's peak resident set (VmHWM) in MiB.
peak_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# json_field KEY: a field of the JSON object on stdin ("" when absent).
json_field() { "$PY" -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
# timed_ms OUT CMD...: runs CMD with its output in the file OUT, prints its
# wall time in ms.
timed_ms() {
  local out="$1" t0=$EPOCHREALTIME
  shift
  "$@" >"$out" 2>&1 || true
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }'
}
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }
# server_side_ms HTTP_PORT: "L / S", the coordinator's own bound on its
# slowest ListJobs and GetJob answers (the smallest bucket of its latency
# histogram that holds them all), in ms.
server_side_ms() {
  "$PY" - "$1" <<'PYEOF'
import re, sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1]).read().decode()
out = []
for method in ("ListJobs", "GetJob"):
    buckets = [(float(le), float(n)) for m, le, n in re.findall(
        r'retrain_rpc_duration_seconds_bucket\{method="([^"]*)",le="([^"]+)"\} (\S+)', text)
        if m.endswith(method) and le != "+Inf"]
    total = [float(n) for m, n in re.findall(
        r'retrain_rpc_duration_seconds_count\{method="([^"]*)"\} (\S+)', text) if m.endswith(method)]
    bound = min((le for le, n in buckets if total and n >= total[0]), default=float("inf"))
    out.append("<=%g" % (bound * 1000))
print(" / ".join(out))
PYEOF
}

declare -A WALL RATE COORD WORKERS DB MANIFEST LIST STATUS SERVER_SIDE
IFS=',' read -r -a COUNT_LIST <<< "$COUNTS"
for n in "${COUNT_LIST[@]}"; do
  images="$DATA/many-$n"
  if [[ ! -f "$images/labels.txt" ]]; then
    rm -rf "$images"
    echo "generating $n files into $images ..."
    "$BIN/retrain-make-images" many --out "$images" --count "$n"
  fi
  run="$WORK/run-$n"
  mkdir -p "$run/state" "$run/logs"
  "$BIN/retrain-server" --listen 127.0.0.1:0 --port_file "$run/port" --state_dir "$run/state" \
    --http_listen 127.0.0.1:0 --http_port_file "$run/http.port" \
    --data_root "$images" --data_root "$run" >"$run/logs/server.log" 2>&1 &
  server=$!
  PIDS+=("$server")
  for _ in $(seq 100); do [[ -s "$run/port" ]] && break; sleep 0.1; done
  [[ -s "$run/port" ]] || { cat "$run/logs/server.log"; echo "scale.sh: the coordinator did not start" >&2; exit 1; }
  export RETRAIN_SERVER="127.0.0.1:$(cat "$run/port")"
  workers=()
  for i in 1 2; do
    "$BIN/retrain-worker" --threads 1 >"$run/logs/worker-$i.log" 2>&1 &
    workers+=($!)
    PIDS+=($!)
  done
  echo "building $n files: ${TRAIN_SHARDS} + ${VALIDATION_SHARDS} shards, 2 workers of 1 thread ..."
  t0=$EPOCHREALTIME
  id=$("$BIN/retrain" --output json build-dataset --train_directory "$images/train" \
         --validation_directory "$images/validation" --labels_file "$images/labels.txt" \
         --output_directory "$run/out" --train_shards "$TRAIN_SHARDS" \
         --validation_shards "$VALIDATION_SHARDS" | json_field id)
  list_ms=0 status_ms=0 state=""
  while :; do
    list_ms=$(max "$list_ms" "$(timed_ms /dev/null "$BIN/retrain" list)")
    status_ms=$(max "$status_ms" "$(timed_ms "$run/status.json" "$BIN/retrain" --output json status "$id")")
    state=$(json_field state < "$run/status.json" 2>/dev/null) || state=""
    case "$state" in
      *SUCCEEDED*|*FAILED*|*CANCELLED*) break ;;
    esac
    if awk -v a="$t0" -v b="$EPOCHREALTIME" -v m="$TIMEOUT" 'BEGIN { exit !(b - a > m) }'; then
      echo "scale.sh: the build of $n files ran past --timeout $TIMEOUT s" >&2
      exit 1
    fi
    sleep 0.5
  done
  t1=$EPOCHREALTIME
  if [[ "$state" != *SUCCEEDED* ]]; then
    "$BIN/retrain" status "$id" | tail -5
    echo "scale.sh: the build of $n files ended $state" >&2
    exit 1
  fi
  WALL[$n]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  RATE[$n]=$(awk -v s="${WALL[$n]}" -v n="$n" 'BEGIN { printf "%.0f", n / s }')
  COORD[$n]=$(peak_mib "$server")
  SERVER_SIDE[$n]=$(server_side_ms "$(cat "$run/http.port")")
  WORKERS[$n]="$(peak_mib "${workers[0]}") / $(peak_mib "${workers[1]}")"
  DB[$n]=$(du -sm "$run/state" | awk '{ print $1 }')
  MANIFEST[$n]=$(awk -v b="$(stat -c %s "$run/out/dataset.json")" 'BEGIN { printf "%.1f", b / 1024 }')
  LIST[$n]=$list_ms
  STATUS[$n]=$status_ms
  stop_all
  rm -rf "$run/out"
  echo "   ${WALL[$n]} s, ${RATE[$n]} files/s, coordinator peak ${COORD[$n]} MiB"
done

echo
printf '%-10s %9s %9s %13s %19s %9s %14s %9s %11s %18s\n' files "wall s" files/s "coord MiB" "workers MiB" "db MiB" "manifest KiB" "list ms" "status ms" "in server ms"
for n in "${COUNT_LIST[@]}"; do
  printf '%-10s %9s %9s %13s %19s %9s %14s %9s %11s %18s\n' "$n" "${WALL[$n]}" "${RATE[$n]}" "${COORD[$n]}" \
    "${WORKERS[$n]}" "${DB[$n]}" "${MANIFEST[$n]}" "${LIST[$n]}" "${STATUS[$n]}" "${SERVER_SIDE[$n]}"
done
echo
verdict() { if awk "BEGIN { exit !($1) }"; then echo PASS; else echo MISS; fi; }
small=${COUNT_LIST[0]}
large=${COUNT_LIST[${#COUNT_LIST[@]}-1]}
echo "coordinator peak RSS at $large files <= 150 MiB: ${COORD[$large]} MiB $(verdict "${COORD[$large]} <= 150")"
echo "coordinator peak RSS at $large files <= $small files' + 25 MiB: ${COORD[$large]} vs ${COORD[$small]} MiB $(verdict "${COORD[$large]} <= ${COORD[$small]} + 25")"
if [[ ${#COUNT_LIST[@]} -ge 2 ]]; then
  prev=${COUNT_LIST[${#COUNT_LIST[@]}-2]}
  echo "files/s at $large >= 90 % of $prev's: ${RATE[$large]} vs ${RATE[$prev]} $(verdict "${RATE[$large]} >= 0.9 * ${RATE[$prev]}")"
fi
echo "retrain list during the $large-file build < 100 ms: slowest ${LIST[$large]} ms $(verdict "${LIST[$large]} < 100")"
echo "retrain status during the $large-file build < 100 ms: slowest ${STATUS[$large]} ms $(verdict "${STATUS[$large]} < 100")"
