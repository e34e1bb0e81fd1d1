#!/usr/bin/env bash
# Input-pipeline benchmark: the trainer's preprocessing against PIL + torchvision,
# per core, on the same JPEG bytes.
#
#   bash bench/input_pipeline.sh [--count 500] [--passes 3] [--repeat 1]
#                                [--image_size 299] [--large_count 40] [--keep]
#
# Run from anywhere after a build. retrain-bench-input comes from
# $RETRAIN_BENCH_BIN_DIR, else $RETRAIN_BIN_DIR, else build/bin/;
# retrain-make-images from $RETRAIN_BIN_DIR or build/bin/ (without it the
# images are made by bench/input_pipeline.py with PIL). Installs nothing:
# the peer needs Debian's python3-torchvision (and python3-torch, python3-pil).
#
# Figures, on --count photo-like 500x375 JPEGs (quality 90), one thread each,
# images per second of CPU time ("per core"; wall-clock figures beside them):
#   a) peer     bench/input_pipeline.py: PIL decode + RandomResizedCrop +
#               RandomHorizontalFlip + ColorJitter + ToTensor + Normalize
#               (and, for context, a') the same without ColorJitter)
#   b) retrain  retrain-bench-input "preprocess": DCT-scaled crop decode,
#               resize (the 4 methods in turn), flip, distort_color, [-1, 1] CHW
#   c) retrain  the whole InputPipeline with 1 preprocessing thread (plus its
#               reader thread, shards, shuffle buffer and batching)
# and the JPEG decode alone for the same random crops, on these images and on
# --large_count 2000x1500 ones (where crops are big enough for 1/2 and 1/4 DCT
# scaling): DCT-scaled crop decode, crop decode at full scale, full decode.
# Goal: b/a >= 3x. --repeat R keeps each figure's best of R runs.
set -euo pipefail

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }

COUNT=500
PASSES=3
REPEAT=1
SIZE=299
LARGE=40
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --count) COUNT="$2"; shift 2 ;;
    --passes) PASSES="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --image_size) SIZE="$2"; shift 2 ;;
    --large_count) LARGE="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "input_pipeline.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in COUNT PASSES REPEAT SIZE LARGE; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "input_pipeline.sh: --${v,,} must be a positive integer" >&2; exit 2; }
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${RETRAIN_BIN_DIR:-$REPO/build/bin}"
BENCH_BIN="${RETRAIN_BENCH_BIN_DIR:-$BIN}/retrain-bench-input"
PY=/usr/bin/python3
PEER="$REPO/bench/input_pipeline.py"

if [[ ! -x "$BENCH_BIN" ]]; then
  echo "input_pipeline.sh: missing $BENCH_BIN (build it: cmake --build build --target retrain-bench-input," \
       "or point RETRAIN_BENCH_BIN_DIR at its directory)" >&2
  exit 1
fi
if ! "$PY" -c 'import PIL, torch, torchvision' 2>/dev/null; then
  echo "input_pipeline.sh: $PY lacks torchvision (Debian: apt-get install python3-torchvision python3-torch)" >&2
  exit 1
fi

WORK="$(mktemp -d /tmp/retrain-bench-input.XXXXXX)"
cleanup() {
  local rc=$?
  if [[ $KEEP -eq 1 ]]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- data -----------------------------------------------------------------------
IMAGES="$WORK/images"
LARGE_IMAGES="$WORK/large"
if [[ -x "$BIN/retrain-make-images" ]]; then
  echo "generating $COUNT photo-like JPEGs with retrain-make-images ..."
  "$BIN/retrain-make-images" photos --out "$IMAGES" --count "$COUNT" --png_every 0 \
    --validation_fraction 0 --seed 1 >/dev/null
  "$BIN/retrain-make-images" photos --out "$LARGE_IMAGES" --count "$LARGE" --png_every 0 \
    --validation_fraction 0 --seed 2 --width 2000 --height 1500 >/dev/null
else
  echo "generating $COUNT photo-like JPEGs with PIL (no $BIN/retrain-make-images) ..."
  "$PY" "$PEER" --make_images "$IMAGES" --count "$COUNT" --seed 1
fi
BYTES=$(find "$IMAGES" -type f -name '*.jpg' -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
NFILES=$(find "$IMAGES" -type f -name '*.jpg' | wc -l)
echo "$NFILES JPEGs, mean $(awk -v b="$BYTES" -v n="$NFILES" 'BEGIN { printf "%.1f", b / n / 1000 }') KB;" \
     "CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores"
find "$IMAGES" -type f -exec cat {} + >/dev/null   # page cache

# best KEY JSON FIELD...: keeps the run with the most images per CPU second.
declare -A BEST
keep_best() {
  local key="$1" json="$2" v
  v=$(printf '%s' "$json" | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["images_per_cpu_s"])')
  if [[ -z "${BEST[$key]:-}" ]] || awk -v a="$v" -v b="$(printf '%s' "${BEST[$key]}" | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read())["images_per_cpu_s"])')" 'BEGIN { exit !(a > b) }'; then
    BEST[$key]="$json"
  fi
}
field() { printf '%s' "$1" | "$PY" -c "import json,sys; print('%.1f' % json.loads(sys.stdin.read())['$2'])"; }

for ((r = 1; r <= REPEAT; r++)); do
  echo "run $r/$REPEAT: a) peer ..."
  out=$("$PY" "$PEER" --images "$IMAGES" --passes "$PASSES" --image_size "$SIZE")
  keep_best a "$(printf '%s\n' "$out" | tail -1)"
  echo "run $r/$REPEAT: a') peer without ColorJitter ..."
  out=$("$PY" "$PEER" --images "$IMAGES" --passes "$PASSES" --image_size "$SIZE" --no_color)
  keep_best a2 "$(printf '%s\n' "$out" | tail -1)"
  echo "run $r/$REPEAT: b), c) retrain-bench-input ..."
  out=$("$BENCH_BIN" --images "$IMAGES" --passes "$PASSES" --image_size "$SIZE" --work "$WORK/dataset")
  printf '%s\n' "$out" | sed -n '2,5p' | sed 's/^/   /'
  last=$(printf '%s\n' "$out" | tail -1)
  keep_best b "$(printf '%s' "$last" | "$PY" -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read())["preprocess"]))')"
  keep_best c "$(printf '%s' "$last" | "$PY" -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.read())["pipeline"]))')"
  rm -rf "$WORK/dataset"
done

if [[ -d "$LARGE_IMAGES" ]]; then
  echo "decode of 2000x1500 JPEGs ..."
  "$BENCH_BIN" --images "$LARGE_IMAGES" --passes 1 --image_size "$SIZE" --batches 0 | sed -n '3,4p' |
    sed 's/^/   /'
fi

A=$(field "${BEST[a]}" images_per_cpu_s)
A2=$(field "${BEST[a2]}" images_per_cpu_s)
B=$(field "${BEST[b]}" images_per_cpu_s)
C=$(field "${BEST[c]}" images_per_cpu_s)
echo
echo "images/s per core (CPU time), ${SIZE}px training crops, best of $REPEAT:"
printf '  a) peer: PIL + torchvision, 1 thread          %8s   (wall %s)\n' "$A" "$(field "${BEST[a]}" images_per_s)"
printf "  a') peer without ColorJitter, 1 thread        %8s   (wall %s)\n" "$A2" "$(field "${BEST[a2]}" images_per_s)"
printf '  b) retrain preprocessing, 1 thread            %8s   (wall %s)\n' "$B" "$(field "${BEST[b]}" images_per_s)"
printf '  c) retrain InputPipeline, 1 preprocess thread %8s   (wall %s)\n' "$C" "$(field "${BEST[c]}" images_per_s)"
RATIO=$(awk -v b="$B" -v a="$A" 'BEGIN { printf "%.2f", b / a }')
RATIO_C=$(awk -v c="$C" -v a="$A" 'BEGIN { printf "%.2f", c / a }')
VERDICT=$(awk -v r="$RATIO" 'BEGIN { print (r >= 3.0 ? "PASS" : "MISS") }')
RATIO_A2=$(awk -v b="$B" -v a="$A2" 'BEGIN { printf "%.2f", b / a }')
echo "  b/a = ${RATIO}x (goal >= 3x: $VERDICT); c/a = ${RATIO_C}x; b/a' = ${RATIO_A2}x (ours with colour" \
     "distortion against the peer without it)"
