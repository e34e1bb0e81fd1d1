#!/usr/bin/env bash
# Dataset-build benchmark: retrain against the floor and the peer.
#
#   bash bench/dataset_build.sh [--count 3000] [--repeat 1] [--parts abcd]
#                               [--timeout 900] [--keep]
#
# Run from anywhere after a build; binaries come from build/bin/ (or
# $RETRAIN_BIN_DIR). Installs nothing. Everything it creates lives in one
# temp dir, removed at exit unless --keep. --repeat R runs every figure R
# times and keeps the fastest; --parts picks figures (e.g. ab).
#
# Figures, each on the same generated images with a warm page cache:
#   a) floor   retrain-bench-copy: the input files copied into one file
#   b) peer    bench/pillow_build.py (build_image_data.py with Pillow),
#              --num_threads 2 --train_shards 8 --validation_shards 2
#   c) retrain retrain-server + 1 retrain-worker (--threads 1), timed around
#              `retrain --output json build-dataset ... --wait` (exit 0 = success)
#   d) retrain same with 2 workers (--threads 1 each), fresh state and output
# images/s = images / seconds; MB/s = input bytes / 1e6 / seconds.
# Goals: d/b >= 5x and d/c >= 1.7x.
set -euo pipefail

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
}

COUNT=3000
KEEP=0
PARTS=abcd
TIMEOUT=900
REPEAT=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --count=*) COUNT="${1#*=}"; shift ;;
    --keep) KEEP=1; shift ;;
    --parts) PARTS="$2"; shift 2 ;;
    --parts=*) PARTS="${1#*=}"; shift ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --repeat=*) REPEAT="${1#*=}"; shift ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    --timeout=*) TIMEOUT="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "dataset_build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$COUNT" =~ ^[1-9][0-9]*$ ]] || { echo "dataset_build.sh: --count must be a positive integer" >&2; exit 2; }
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "dataset_build.sh: --repeat must be a positive integer" >&2; exit 2; }
[[ "$PARTS" =~ ^[abcd]+$ ]] || { echo "dataset_build.sh: --parts takes letters from abcd" >&2; exit 2; }
has_part() { [[ "$PARTS" == *"$1"* ]]; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${RETRAIN_BIN_DIR:-$REPO/build/bin}"
PY=/usr/bin/python3   # the system Python: it has Pillow and crcmod
PEER="$REPO/bench/pillow_build.py"

need_bin() {
  if [[ ! -x "$BIN/$1" ]]; then
    echo "dataset_build.sh: missing binary $BIN/$1 (build it: cmake --build build --target $1)" >&2
    exit 1
  fi
}
need_bin retrain-make-images
has_part a && need_bin retrain-bench-copy
if has_part c || has_part d; then
  need_bin retrain-server
  need_bin retrain-worker
  need_bin retrain
fi
if ! "$PY" -c 'import PIL, crcmod' 2>/dev/null; then
  echo "dataset_build.sh: $PY lacks Pillow or crcmod (Debian: python3-pil python3-crcmod)" >&2
  exit 1
fi

# --- temp dir and cleanup ---------------------------------------------------
WORK="$(mktemp -d /tmp/retrain-bench.XXXXXX)"
WORK="$(cd "$WORK" && pwd -P)"
PIDS=()
stop_pid() {  # stop_pid PID: TERM, up to 10 s, then KILL
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
}
cleanup() {
  local rc=$?
  stop_all
  if [[ $KEEP -eq 1 ]]; then
    echo "kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo "$EPOCHREALTIME"; }
# show KEY: one progress line with the figure so far (survives an interrupted run).
show() {
  awk -v s="${SECS[$1]}" -v n="$IMAGES" -v b="$INPUT_BYTES" -v runs="${RUNS[$1]}" \
    'BEGIN { printf "   %.3f s (runs: %s), %.1f images/s, %.1f MB/s\n", s, runs, n / s, b / 1e6 / s }'
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- data ---------------------------------------------------------------------
DATA="$WORK/data"
echo "generating $COUNT photo-like images (every 10th a PNG) ..."
"$BIN/retrain-make-images" photos --out "$DATA" --count "$COUNT" --png_every 10 --seed 1
TRAIN="$DATA/train"
VALID="$DATA/validation"
LABELS="$DATA/labels.txt"
INPUT_BYTES=$(find "$TRAIN" "$VALID" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
IMAGES=$(find "$TRAIN" "$VALID" -type f | wc -l)
PNGS=$(find "$TRAIN" "$VALID" -type f -name '*.png' | wc -l)
NVALID=$(find "$VALID" -type f | wc -l)
echo "warming the page cache ..."
find "$TRAIN" "$VALID" -type f -exec cat {} + >/dev/null

# Results: NAME -> seconds (fastest of the runs) / status / note
declare -A SECS STATUS NOTE RUNS
FAILED=0
# record KEY T0 T1: keeps the fastest time per figure and lists every run.
record() {
  local s
  s=$(elapsed "$2" "$3")
  RUNS[$1]="${RUNS[$1]:+${RUNS[$1]} }$s"
  if [[ -z "${SECS[$1]:-}" ]] || awk -v a="$s" -v b="${SECS[$1]}" 'BEGIN { exit !(a < b) }'; then
    SECS[$1]=$s
  fi
}

# verify OUTDIR -> sets NOTE[$2] to the record count check
verify_output() {
  local out="$1" key="$2" json records
  if json=$("$PY" "$PEER" --verify "$out" 2>&1); then
    records=$(printf '%s' "$json" | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["records"])')
    if [[ "$records" -eq "$IMAGES" ]]; then
      NOTE[$key]="verified $records records"
    else
      NOTE[$key]="MISMATCH: $records records for $IMAGES images"
      FAILED=1
    fi
  else
    NOTE[$key]="VERIFY FAILED: $json"
    FAILED=1
  fi
}

# --- a) floor -------------------------------------------------------------------
if has_part a; then
  echo "a) floor: retrain-bench-copy ..."
  for ((r = 0; r < REPEAT; r++)); do
    t0=$(now)
    "$BIN/retrain-bench-copy" --out "$WORK/floor.bin" "$TRAIN" "$VALID" >"$WORK/floor.json"
    t1=$(now)
    record a "$t0" "$t1"
    rm -f "$WORK/floor.bin"
  done
  show a
  STATUS[a]=ok
  NOTE[a]="input bytes into one file, then fsync"
fi

# --- b) peer --------------------------------------------------------------------
if has_part b; then
  echo "b) peer: pillow_build.py, 2 threads ..."
  for ((r = 0; r < REPEAT; r++)); do
    rm -rf "$WORK/out-peer"
    mkdir -p "$WORK/out-peer"
    t0=$(now)
    "$PY" "$PEER" --train_directory "$TRAIN" --validation_directory "$VALID" \
      --output_directory "$WORK/out-peer" --labels_file "$LABELS" \
      --train_shards 8 --validation_shards 2 --num_threads 2 \
      >"$WORK/peer.json" 2>"$WORK/peer.log"
    t1=$(now)
    record b "$t0" "$t1"
  done
  show b
  STATUS[b]=ok
  verify_output "$WORK/out-peer" b
  rm -rf "$WORK/out-peer"
fi

# --- c), d) retrain -------------------------------------------------------------
# run_retrain KEY WORKERS: fresh server + WORKERS workers, timed build-dataset.
run_retrain() {
  local key="$1" workers="$2" i w port="" pid
  local run="$WORK/retrain-$key"
  rm -rf "$run"
  mkdir -p "$run/state" "$run/out" "$run/logs"
  "$BIN/retrain-server" --listen 127.0.0.1:0 --port_file "$run/port" \
    --state_dir "$run/state" --data_root "$WORK" >"$run/logs/server.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for ((i = 0; i < 300; i++)); do  # up to 30 s
    if [[ -s "$run/port" ]]; then
      port=$(tr -dc '0-9' <"$run/port")
      [[ -n "$port" ]] && break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dataset_build.sh: retrain-server exited at start; its log:" >&2
      tail -n 20 "$run/logs/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  if [[ -z "$port" ]]; then
    echo "dataset_build.sh: retrain-server wrote no port to $run/port within 30 s; log:" >&2
    tail -n 20 "$run/logs/server.log" >&2
    exit 1
  fi
  for ((w = 1; w <= workers; w++)); do
    "$BIN/retrain-worker" --server "127.0.0.1:$port" --threads 1 \
      >"$run/logs/worker-$w.log" 2>&1 &
    PIDS+=("$!")
  done
  # Let the workers register before the clock starts (their log says
  # "registered"); carry on after 15 s either way.
  local ready=0
  for ((i = 0; i < 150; i++)); do
    ready=0
    for ((w = 1; w <= workers; w++)); do
      if grep -q registered "$run/logs/worker-$w.log" 2>/dev/null; then
        ready=$((ready + 1))
      fi
    done
    if [[ $ready -eq $workers ]]; then break; fi
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "dataset_build.sh: ($key) a retrain-server or retrain-worker exited before the build; logs:" >&2
      tail -n 10 "$run/logs/"*.log >&2 || true
      exit 1
    fi
  done
  if [[ $ready -ne $workers ]]; then
    echo "   (warning: $ready of $workers workers logged 'registered' within 15 s; timing anyway)"
  fi

  local t0 t1 rc=0
  t0=$(now)
  # --output is an option of `retrain` itself, so it goes before the subcommand.
  timeout "$TIMEOUT" "$BIN/retrain" --server "127.0.0.1:$port" --output json build-dataset \
    --train_directory "$TRAIN" --validation_directory "$VALID" \
    --output_directory "$run/out" --labels_file "$LABELS" \
    --train_shards 8 --validation_shards 2 --wait \
    >"$run/result.json" 2>"$run/logs/cli.log" || rc=$?
  t1=$(now)
  stop_all
  if [[ $rc -ne 0 ]]; then
    STATUS[$key]="FAILED"
    NOTE[$key]="retrain exited $rc; its output and logs are printed on stderr"
    if [[ $rc -eq 124 ]]; then NOTE[$key]="retrain timed out after ${TIMEOUT} s (--timeout)"; fi
    FAILED=1
    echo "dataset_build.sh: ($key) retrain build-dataset exited $rc; last lines of its output and logs:" >&2
    tail -n 5 "$run/result.json" "$run/logs/cli.log" "$run/logs/server.log" "$run/logs/worker-"*.log >&2 || true
  else
    record "$key" "$t0" "$t1"
    show "$key"
    STATUS[$key]=ok
    verify_output "$run/out" "$key"
    local job
    job=$("$PY" -c '
import json, sys
try:
  p = json.load(open(sys.argv[1])).get("progress", {})
  print("job: done %s, skipped %s" % (p.get("done", "?"), p.get("skipped", "?")))
except Exception:
  print("job: result not JSON")' "$run/result.json")
    NOTE[$key]="${NOTE[$key]}; $job"
  fi
  rm -rf "$run/out"
}
for ((r = 0; r < REPEAT; r++)); do
  if has_part c && [[ "${STATUS[c]:-}" != FAILED ]]; then
    echo "c) retrain, 1 worker ..."
    run_retrain c 1
  fi
  if has_part d && [[ "${STATUS[d]:-}" != FAILED ]]; then
    echo "d) retrain, 2 workers ..."
    run_retrain d 2
  fi
done

# --- report -----------------------------------------------------------------------
rate() {  # rate KEY -> "images/s MB/s"
  awk -v s="${SECS[$1]}" -v n="$IMAGES" -v b="$INPUT_BYTES" \
    'BEGIN { printf "%9.1f %9.1f", n / s, b / 1e6 / s }'
}
ratio() {  # ratio NUM DEN GOAL LABEL
  local num="$1" den="$2" goal="$3" label="$4"
  if [[ "${STATUS[$num]:-}" == ok && "${STATUS[$den]:-}" == ok ]]; then
    awk -v a="${SECS[$den]}" -v b="${SECS[$num]}" -v g="$goal" -v l="$label" \
      'BEGIN { r = a / b; printf "  %-34s %6.2fx  goal >= %.1fx  %s\n", l, r, g, (r >= g ? "PASS" : "MISS") }'
  else
    printf "  %-34s    n/a  goal >= %.1fx  (not measured)\n" "$label" "$goal"
  fi
}

echo
echo "== retrain dataset-build benchmark =="
echo "date:    $(date -Is)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "runs:    fastest of $REPEAT per figure, wall clock around each command"
echo "input:   $IMAGES images ($((IMAGES - NVALID)) train, $NVALID validation, $PNGS PNG), $(awk -v b="$INPUT_BYTES" 'BEGIN { printf "%.1f MB", b / 1e6 }'), page cache warm"
echo
printf "  %-34s %8s %9s %9s  %s\n" figure seconds images/s MB/s notes
declare -A LABEL=(
  [a]="a) floor: copy into one file"
  [b]="b) peer: Pillow, 2 threads"
  [c]="c) retrain, 1 worker"
  [d]="d) retrain, 2 workers"
)
for k in a b c d; do
  has_part "$k" || continue
  if [[ "${STATUS[$k]:-}" == ok ]]; then
    local_note="${NOTE[$k]:-}"
    if [[ $REPEAT -gt 1 ]]; then local_note="runs: ${RUNS[$k]} s; $local_note"; fi
    printf "  %-34s %8.3f %s  %s\n" "${LABEL[$k]}" "${SECS[$k]}" "$(rate "$k")" "$local_note"
  else
    printf "  %-34s %8s %9s %9s  %s\n" "${LABEL[$k]}" "${SECS[$k]:-}" - - "${STATUS[$k]:-not run}: ${NOTE[$k]:-}"
  fi
done
echo
echo "ratios (speed-ups, from seconds):"
ratio d b 5 "d/b retrain 2 workers vs peer"
ratio d c 1.7 "d/c 2 workers vs 1 worker"
if [[ "${STATUS[a]:-}" == ok ]]; then
  for k in b c d; do
    [[ "${STATUS[$k]:-}" == ok ]] || continue
    awk -v a="${SECS[a]}" -v b="${SECS[$k]}" -v l="$k" \
      'BEGIN { printf "  %-34s %6.1f%%  of the floor (info)\n", l " speed vs floor", 100 * a / b }'
  done
fi
if [[ $FAILED -ne 0 ]]; then
  echo "dataset_build.sh: some figures failed (see notes above)" >&2
  exit 1
fi
