#!/usr/bin/env bash
# Dataset-build benchmark: retrain against floors and the peer, measured in
# the same run on the same files and cores.
#
#   bash bench/dataset_build.sh [--count 3000] [--repeat 1] [--parts aebcds]
#                               [--inputs jpeg,mixed] [--timeout 900] [--keep]
#                               [--perf]
#
# Run from anywhere after a build; binaries come from build/bin/ (or
# $RETRAIN_BIN_DIR). Installs nothing. Everything it creates lives in one
# temp dir, removed at exit unless --keep. --repeat R runs every figure R
# times and keeps the fastest; --parts picks figures, --inputs the inputs.
# --perf runs c) once more, untimed, with its worker and the coordinator
# under `perf record -g` (Debian's linux-perf), and prints where their time
# went, by shared object and by function.
#
# Two inputs of --count photo-like images each: "jpeg" (JPEGs only) and
# "mixed" (every 10th a PNG). Figures, each on an input with a warm page cache:
#   a) copy floor        retrain-bench-copy: the files copied into one file
#   e) validation floor  retrain-bench-validate: every JPEG entropy-decoded,
#                        every other image decoded and re-encoded, a process a core
#   b) peer              bench/pillow_build.py (build_image_data.py with Pillow),
#                        --num_threads 2 --train_shards 8 --validation_shards 2
#   c) retrain           retrain-server + 1 retrain-worker (--threads 1), timed
#                        around `retrain build-dataset ... --wait` (exit 0 = success)
#   d) retrain           the same with 2 workers (--threads 1 each)
#   s) retrain           2 workers with --verify structure
# images/s = images / seconds; MB/s = input bytes / 1e6 / seconds.
# Goals (PASS/MISS printed beside each):
#   mixed: d >= 85 % of e's speed, and d >= 1.5x b
#   jpeg:  s >= 5x b, and s >= 40 % of a's speed; d >= 1.8x c
set -euo pipefail

usage() {
  sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'
}

COUNT=3000
KEEP=0
PARTS=aebcds
PARTS_ALL=aebcds
INPUTS=jpeg,mixed
TIMEOUT=900
REPEAT=1
PERF=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --count=*) COUNT="${1#*=}"; shift ;;
    --keep) KEEP=1; shift ;;
    --perf) PERF=1; shift ;;
    --parts) PARTS="$2"; shift 2 ;;
    --parts=*) PARTS="${1#*=}"; shift ;;
    --inputs) INPUTS="$2"; shift 2 ;;
    --inputs=*) INPUTS="${1#*=}"; shift ;;
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
[[ "$PARTS" =~ ^[abcdes]+$ ]] || { echo "dataset_build.sh: --parts takes letters from $PARTS_ALL" >&2; exit 2; }
[[ "$INPUTS" =~ ^(jpeg|mixed)(,(jpeg|mixed))?$ ]] || { echo "dataset_build.sh: --inputs takes jpeg, mixed or both (jpeg,mixed)" >&2; exit 2; }
has_part() { [[ "$PARTS" == *"$1"* ]]; }
IFS=, read -r -a INPUT_LIST <<<"$INPUTS"

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
has_part e && need_bin retrain-bench-validate
if has_part c || has_part d || has_part s; then
  need_bin retrain-server
  need_bin retrain-worker
  need_bin retrain
fi
if [[ $PERF -eq 1 ]] && ! command -v perf >/dev/null; then
  echo "dataset_build.sh: --perf needs perf (Debian: linux-perf)" >&2
  exit 1
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
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# --- inputs ---------------------------------------------------------------------
# Per input NAME: its directories and sizes.
declare -A TRAIN VALID LABELS IMAGES INPUT_BYTES PNGS NVALID
make_input() {  # make_input NAME PNG_EVERY
  local name="$1" data="$WORK/data-$1"
  echo "input $name: generating $COUNT photo-like images (PNG every: ${2/#0/none}) ..."
  "$BIN/retrain-make-images" photos --out "$data" --count "$COUNT" --png_every "$2" --seed 1
  TRAIN[$name]="$data/train"
  VALID[$name]="$data/validation"
  LABELS[$name]="$data/labels.txt"
  INPUT_BYTES[$name]=$(find "$data/train" "$data/validation" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
  IMAGES[$name]=$(find "$data/train" "$data/validation" -type f | wc -l)
  PNGS[$name]=$(find "$data/train" "$data/validation" -type f -name '*.png' | wc -l)
  NVALID[$name]=$(find "$data/validation" -type f | wc -l)
}
for input in "${INPUT_LIST[@]}"; do
  if [[ $input == jpeg ]]; then make_input jpeg 0; else make_input mixed 10; fi
done

# Results, by "INPUT:PART": seconds (fastest of the runs) / status / note / runs.
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
# show KEY: one progress line with the figure so far (survives an interrupted run).
show() {
  local input="${1%%:*}"
  awk -v s="${SECS[$1]}" -v n="${IMAGES[$input]}" -v b="${INPUT_BYTES[$input]}" -v runs="${RUNS[$1]}" \
    'BEGIN { printf "   %.3f s (runs: %s), %.1f images/s, %.1f MB/s\n", s, runs, n / s, b / 1e6 / s }'
}

# verify OUTDIR KEY -> sets NOTE[KEY] to the record count check
verify_output() {
  local out="$1" key="$2" json records input="${2%%:*}"
  if json=$("$PY" "$PEER" --verify "$out" 2>&1); then
    records=$(printf '%s' "$json" | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["records"])')
    if [[ "$records" -eq "${IMAGES[$input]}" ]]; then
      NOTE[$key]="verified $records records"
    else
      NOTE[$key]="MISMATCH: $records records for ${IMAGES[$input]} images"
      FAILED=1
    fi
  else
    NOTE[$key]="VERIFY FAILED: $json"
    FAILED=1
  fi
}

# --- floors and peer --------------------------------------------------------------
warm() {  # warm INPUT: the page cache holds the input
  find "${TRAIN[$1]}" "${VALID[$1]}" -type f -exec cat {} + >/dev/null
}
copy_floor() {  # copy_floor INPUT
  local key="$1:a" t0 t1
  t0=$(now)
  "$BIN/retrain-bench-copy" --out "$WORK/floor.bin" "${TRAIN[$1]}" "${VALID[$1]}" >"$WORK/floor.json"
  t1=$(now)
  rm -f "$WORK/floor.bin"
  record "$key" "$t0" "$t1"
  show "$key"
  STATUS[$key]=ok
  NOTE[$key]="input bytes into one file, then fsync"
}
validation_floor() {  # validation_floor INPUT
  local key="$1:e" t0 t1 bad
  t0=$(now)
  "$BIN/retrain-bench-validate" "${TRAIN[$1]}" "${VALID[$1]}" >"$WORK/validate.json"
  t1=$(now)
  record "$key" "$t0" "$t1"
  show "$key"
  bad=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["bad"])' "$WORK/validate.json")
  STATUS[$key]=ok
  NOTE[$key]="$(nproc) processes; $bad bad"
}
peer() {  # peer INPUT
  local key="$1:b" out="$WORK/out-peer" t0 t1
  rm -rf "$out"
  mkdir -p "$out"
  t0=$(now)
  "$PY" "$PEER" --train_directory "${TRAIN[$1]}" --validation_directory "${VALID[$1]}" \
    --output_directory "$out" --labels_file "${LABELS[$1]}" \
    --train_shards 8 --validation_shards 2 --num_threads 2 \
    >"$WORK/peer.json" 2>"$WORK/peer.log"
  t1=$(now)
  record "$key" "$t0" "$t1"
  show "$key"
  STATUS[$key]=ok
  verify_output "$out" "$key"
  rm -rf "$out"
}

# --- retrain ----------------------------------------------------------------------
# run_retrain INPUT PART WORKERS VERIFY [PROFILE]: fresh server + WORKERS
# workers, timed build-dataset; with PROFILE=1 untimed, under perf instead.
run_retrain() {
  local input="$1" key="$1:$2" workers="$3" verify="$4" profile="${5:-0}" i w port="" pid
  local run="$WORK/retrain-$1-$2"
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

  local t0 t1 rc=0 server_cpu perf_pids=()
  if [[ $profile -eq 1 ]]; then
    # PIDS: the server, then the worker.
    for pid in "${PIDS[0]}" "${PIDS[1]}"; do
      perf record -q -F 499 -g -p "$pid" -o "$run/perf-$pid.data" 2>"$run/logs/perf-$pid.log" &
      perf_pids+=("$!")
    done
    sleep 0.5
  fi
  t0=$(now)
  # --output is an option of `retrain` itself, so it goes before the subcommand.
  timeout "$TIMEOUT" "$BIN/retrain" --server "127.0.0.1:$port" --output json build-dataset \
    --train_directory "${TRAIN[$input]}" --validation_directory "${VALID[$input]}" \
    --output_directory "$run/out" --labels_file "${LABELS[$input]}" \
    --train_shards 8 --validation_shards 2 --verify "$verify" --wait \
    >"$run/result.json" 2>"$run/logs/cli.log" || rc=$?
  t1=$(now)
  # The coordinator's CPU time during the build (user + system clock ticks).
  server_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/${PIDS[0]}/stat")
  for pid in "${perf_pids[@]}"; do kill -INT "$pid"; wait "$pid" 2>/dev/null || true; done
  if [[ ${#perf_pids[@]} -gt 0 ]]; then
    for pid in "${PIDS[0]}" "${PIDS[1]}"; do
      local who=worker
      [[ $pid == "${PIDS[0]}" ]] && who=coordinator
      {
        echo "== perf ($key, $who): samples by shared object"
        perf report -i "$run/perf-$pid.data" --stdio --no-children --sort dso -g none 2>/dev/null |
          grep -v '^#' | grep -v '^$' | head -n 12 || true
        echo "== perf ($key, $who): samples by function"
        perf report -i "$run/perf-$pid.data" --stdio --no-children --sort dso,sym -g none \
          2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 30 || true
      } | tee -a "$WORK/perf.txt"
    done
  fi
  stop_all
  if [[ $profile -eq 1 ]]; then
    rm -rf "$run/out"
    return
  fi
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
    NOTE[$key]="${NOTE[$key]}; coordinator CPU ${server_cpu} s"
  fi
  rm -rf "$run/out"
}

for input in "${INPUT_LIST[@]}"; do
  warm "$input"
  for ((r = 0; r < REPEAT; r++)); do
    if has_part a; then echo "$input a) copy floor ..."; copy_floor "$input"; fi
    if has_part e; then echo "$input e) validation floor ..."; validation_floor "$input"; fi
    if has_part b; then echo "$input b) peer: Pillow, 2 threads ..."; peer "$input"; fi
    if has_part c && [[ "${STATUS[$input:c]:-}" != FAILED ]]; then
      echo "$input c) retrain, 1 worker ..."
      run_retrain "$input" c 1 full
    fi
    if has_part d && [[ "${STATUS[$input:d]:-}" != FAILED ]]; then
      echo "$input d) retrain, 2 workers ..."
      run_retrain "$input" d 2 full
    fi
    if has_part s && [[ "${STATUS[$input:s]:-}" != FAILED ]]; then
      echo "$input s) retrain, 2 workers, --verify structure ..."
      run_retrain "$input" s 2 structure
    fi
  done
  if [[ $PERF -eq 1 ]]; then
    echo "$input c) retrain, 1 worker, once more under perf (untimed) ..."
    run_retrain "$input" c 1 full 1
  fi
done

# --- report -----------------------------------------------------------------------
rate() {  # rate KEY -> "images/s MB/s"
  local input="${1%%:*}"
  awk -v s="${SECS[$1]}" -v n="${IMAGES[$input]}" -v b="${INPUT_BYTES[$input]}" \
    'BEGIN { printf "%9.1f %9.1f", n / s, b / 1e6 / s }'
}
# goal NUM DEN GOAL LABEL: NUM's speed over DEN's (from seconds) against a
# goal: a factor (e.g. 1.5 for 1.5x) or, with PERCENT as GOAL's unit, a share.
goal() {
  local num="$1" den="$2" want="$3" label="$4"
  if [[ "${STATUS[$num]:-}" == ok && "${STATUS[$den]:-}" == ok ]]; then
    awk -v a="${SECS[$den]}" -v b="${SECS[$num]}" -v g="$want" -v l="$label" 'BEGIN {
      r = a / b
      if (g ~ /%$/) { g += 0; printf "  %-44s %6.1f%%  goal >= %d%%  %s\n", l, 100 * r, g, (100 * r >= g ? "PASS" : "MISS") }
      else { printf "  %-44s %6.2fx  goal >= %.1fx  %s\n", l, r, g, (r >= g ? "PASS" : "MISS") }
    }'
  else
    printf "  %-44s    n/a  goal >= %s  (not measured)\n" "$label" "$want"
  fi
}

echo
echo "== retrain dataset-build benchmark =="
echo "date:    $(date -Is)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "runs:    fastest of $REPEAT per figure, wall clock around each command"
declare -A LABEL=(
  [a]="a) copy floor: into one file"
  [e]="e) validation floor: all cores"
  [b]="b) peer: Pillow, 2 threads"
  [c]="c) retrain, 1 worker"
  [d]="d) retrain, 2 workers"
  [s]="s) retrain, 2 workers, --verify structure"
)
for input in "${INPUT_LIST[@]}"; do
  echo
  echo "input $input: ${IMAGES[$input]} images ($((IMAGES[$input] - NVALID[$input])) train, ${NVALID[$input]} validation, ${PNGS[$input]} PNG), $(awk -v b="${INPUT_BYTES[$input]}" 'BEGIN { printf "%.1f MB", b / 1e6 }'), page cache warm"
  printf "  %-44s %8s %9s %9s  %s\n" figure seconds images/s MB/s notes
  for k in a e b c d s; do
    has_part "$k" || continue
    key="$input:$k"
    if [[ "${STATUS[$key]:-}" == ok ]]; then
      local_note="${NOTE[$key]:-}"
      if [[ $REPEAT -gt 1 ]]; then local_note="runs: ${RUNS[$key]} s; $local_note"; fi
      printf "  %-44s %8.3f %s  %s\n" "${LABEL[$k]}" "${SECS[$key]}" "$(rate "$key")" "$local_note"
    else
      printf "  %-44s %8s %9s %9s  %s\n" "${LABEL[$k]}" "${SECS[$key]:-}" - - "${STATUS[$key]:-not run}: ${NOTE[$key]:-}"
    fi
  done
done
echo
echo "goals (speeds, from seconds):"
goal mixed:d mixed:e 85% "mixed: d) 2 workers vs validation floor"
goal mixed:d mixed:b 1.5 "mixed: d) 2 workers vs peer"
goal jpeg:s jpeg:b 5 "jpeg: s) structure vs peer"
goal jpeg:s jpeg:a 40% "jpeg: s) structure vs copy floor"
goal jpeg:d jpeg:c 1.8 "jpeg: d) 2 workers vs c) 1 worker"
if [[ $FAILED -ne 0 ]]; then
  echo "dataset_build.sh: some figures failed (see notes above)" >&2
  exit 1
fi
