#!/usr/bin/env bash
# Data-parallel scaling on this machine's CPUs: retrain-trainer with one rank
# against N CPU ranks (Gloo all-reduce) on the same total batch, same data.
#
#   bash bench/data_parallel.sh [--data_dir DIR] [--replicas 2] [--model small]
#                               [--batch_size 64] [--steps 200] [--rounds 2]
#
# DIR: a dataset built by `retrain build-dataset` (default build/demo/out, the
# MNIST sample that scripts/demo builds; run scripts/demo first). Three
# runs: one rank with all the cores as LibTorch threads, one rank with
# cores / N threads (what each of the N ranks gets), and the N ranks. Each side runs --rounds times alternately; the figure is the
# best round's examples/s over the steps after the first log interval
# (warm-up). Prints examples/s of both, the speed-up, and the all-reduce
# wait per step (the communication that overlap with backward did not hide).
set -euo pipefail

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$REPO/build/demo/out"
REPLICAS=2
MODEL=small
BATCH=64
STEPS=200
ROUNDS=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data_dir) DATA="$2"; shift 2 ;;
    --replicas) REPLICAS="$2"; shift 2 ;;
    --model) MODEL="$2"; shift 2 ;;
    --batch_size) BATCH="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "data_parallel.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
BIN="${RETRAIN_BIN_DIR:-$REPO/build/bin}/retrain-trainer"
[[ -x "$BIN" ]] || { echo "data_parallel.sh: missing $BIN (build first)" >&2; exit 1; }
[[ -f "$DATA/dataset.json" ]] || {
  echo "data_parallel.sh: no dataset at $DATA (run scripts/demo, or give --data_dir)" >&2; exit 1; }
CORES=$(nproc)
PER_RANK_THREADS=$(( CORES / REPLICAS > 0 ? CORES / REPLICAS : 1 ))
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run NAME THREADS [extra flags]: trains STEPS steps into a fresh dir; the
# JSON step events go to $WORK/NAME.jsonl.
run() {
  local name="$1" threads="$2"; shift 2
  rm -rf "$WORK/$name.dir"
  "$BIN" train --data_dir "$DATA" --train_dir "$WORK/$name.dir" --model "$MODEL" \
    --batch_size "$BATCH" --max_steps "$STEPS" --log_every_steps 20 \
    --checkpoint_every_steps 0 --num_intra_op_threads "$threads" \
    --num_preprocess_threads 1 --seed 1 "$@" >"$WORK/$name.jsonl" 2>"$WORK/$name.log" || {
      echo "data_parallel.sh: the $name run failed:" >&2; tail -5 "$WORK/$name.log" >&2; exit 1; }
}

summary() {  # FILE -> "examples/s allreduce_ms" over the events after the first
  python3 - "$1" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"event":"step"' in l]
steps = steps[1:] or steps
rate = sum(s["examples_per_sec"] for s in steps) / len(steps)
wait = sum(s.get("allreduce_wait_ms", 0) for s in steps) / len(steps)
print(f"{rate:.1f} {wait:.2f}")
PY
}

best1=0; bestp=0; bestn=0; waitn=0
greater() { python3 -c "import sys; sys.exit(0 if $1 > $2 else 1)"; }
for ((round = 1; round <= ROUNDS; round++)); do
  run one "$CORES"
  read -r r1 _ < <(summary "$WORK/one.jsonl")
  run part "$PER_RANK_THREADS"
  read -r rp _ < <(summary "$WORK/part.jsonl")
  run many "$PER_RANK_THREADS" --num_replicas "$REPLICAS"
  read -r rn wn < <(summary "$WORK/many.jsonl")
  echo "round $round: 1 rank x $CORES threads $r1, 1 rank x $PER_RANK_THREADS $rp," \
       "$REPLICAS ranks $rn examples/s (all-reduce wait $wn ms/step)"
  if greater "$r1" "$best1"; then best1=$r1; fi
  if greater "$rp" "$bestp"; then bestp=$rp; fi
  if greater "$rn" "$bestn"; then bestn=$rn; waitn=$wn; fi
done
echo
echo "model $MODEL, total batch $BATCH, $STEPS steps, $CORES cores, $(date -u +%Y-%m-%d)"
printf '%-28s %14s %22s\n' "run" "examples/s" "all-reduce wait/step"
printf '%-28s %14s %22s\n' "1 rank x $CORES threads" "$best1" "-"
printf '%-28s %14s %22s\n' "1 rank x $PER_RANK_THREADS thread(s)" "$bestp" "-"
printf '%-28s %14s %19s ms\n' "$REPLICAS ranks x $PER_RANK_THREADS thread(s)" "$bestn" "$waitn"
python3 -c "print(f'$REPLICAS ranks vs 1 rank of all cores: {$bestn / $best1:.2f}x;'
               f' vs 1 rank of one rank\'s share: {$bestn / $bestp:.2f}x'
               f' (ideal $REPLICAS.00x)')"
