#!/usr/bin/env bash
# Training-throughput benchmark: retrain's C++ trainer step against the same
# step in PyTorch, same model, batch, threads, loss and optimizer.
#
#   bash bench/train_throughput.sh [--models small,small:8,resnet50] [--rounds 2]
#                                  [--threads 2] [--device cpu] [--quick]
#                                  [--precision fp32|bf16] [--channels_last 0|1]
#                                  [--batch N] [--python_malloc same|default]
#
# Runs retrain-bench-train (from build/bin/ or $RETRAIN_BIN_DIR) and
# bench/train_throughput.py ($RETRAIN_PYTHON, default Debian's /usr/bin/python3
# with python3-torch and python3-torchvision: the same LibTorch 1.13.1 as the
# C++ build; on a GPU host point it at the Python whose LibTorch the C++
# build used) alternately, --rounds times
# each per model, and keeps each side's best steps/s over short timed runs
# (on a shared machine the best short run is the least disturbed one). Per
# model, on the CPU:
#   small         batch 64, 32 px: warm-up 5, 12 runs of 5 timed steps
#   small:8       batch 8 (framework overhead shows): warm-up 10, 10 runs of 20
#   resnet50      batch 4, 224 px: warm-up 2, 6 runs of 1 timed step
#   inception_v3  batch 4, 299 px: warm-up 1, 4 runs of 1 timed step
# --device cuda (GPU hosts; both sides use the PyTorch found there): batches
# of 256 (small) and 64 (resnet50, inception_v3), more steps.
# --quick: one round, fewer steps (a smoke test, not a figure).
# --precision bf16: both sides run the forward pass under autocast to bf16;
# --channels_last 1: NHWC weights and input on both; --batch N overrides the
# batch of every model.
# --python_malloc: the trainer keeps freed memory for reuse
# (trainer/host_allocator.h); `same` (the default) gives the Python side the
# same glibc malloc settings through GLIBC_TUNABLES, so that both measure the
# same kernels; `default` runs Python as it ships.
# Prints a table with steps/s, images/s and the ratio cpp/python (goal:
# >= 1.0, i.e. the C++ trainer at least as fast), and exits non-zero when a
# run fails or a ratio is below 0.95 (a tolerance for timing noise).
set -euo pipefail

usage() {
  sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'
}

MODELS=small,small:8,resnet50
ROUNDS=2
THREADS=2
DEVICE=cpu
QUICK=0
PRECISION=fp32
CHANNELS_LAST=0
BATCH_OVERRIDE=
PYTHON_MALLOC=same
while [[ $# -gt 0 ]]; do
  case "$1" in
    --models) MODELS="$2"; shift 2 ;;
    --models=*) MODELS="${1#*=}"; shift ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --rounds=*) ROUNDS="${1#*=}"; shift ;;
    --threads) THREADS="$2"; shift 2 ;;
    --threads=*) THREADS="${1#*=}"; shift ;;
    --device) DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#*=}"; shift ;;
    --quick) QUICK=1; ROUNDS=1; shift ;;
    --precision) PRECISION="$2"; shift 2 ;;
    --channels_last) CHANNELS_LAST="$2"; shift 2 ;;
    --batch) BATCH_OVERRIDE="$2"; shift 2 ;;
    --python_malloc) PYTHON_MALLOC="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "train_throughput.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "train_throughput.sh: --rounds must be a positive integer" >&2; exit 2; }
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "train_throughput.sh: --threads must be a positive integer" >&2; exit 2; }
case "$PYTHON_MALLOC" in
  same) PY_ENV=(env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647) ;;
  default) PY_ENV=(env) ;;
  *) echo "train_throughput.sh: --python_malloc must be same or default" >&2; exit 2 ;;
esac

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${RETRAIN_BIN_DIR:-$REPO/build/bin}"
CPP="$BIN/retrain-bench-train"
PY="${RETRAIN_PYTHON:-/usr/bin/python3}"
PYBENCH="$REPO/bench/train_throughput.py"

if [[ ! -x "$CPP" ]]; then
  echo "train_throughput.sh: missing binary $CPP (build it: cmake --build build --target retrain-bench-train)" >&2
  exit 1
fi
PY_MODULES=torch
[[ ",$MODELS," =~ ,(resnet50|inception_v3), ]] && PY_MODULES="torch, torchvision"
if ! "$PY" -c "import $PY_MODULES" 2>/dev/null; then
  echo "train_throughput.sh: $PY lacks $PY_MODULES (Debian: apt-get install -y python3-torch python3-torchvision)" >&2
  exit 1
fi

# args_for MODEL: the flags both implementations get (MODEL may be name:batch).
args_for() {
  local model="$1" key
  key="$model/$DEVICE/$QUICK"
  case "$key" in
    small:8/cpu/0)        echo "--model small --batch 8 --warmup 10 --steps 20 --repeats 10" ;;
    small:8/cpu/1)        echo "--model small --batch 8 --warmup 5 --steps 10 --repeats 1" ;;
    small/cpu/0)          echo "--model small --batch 64 --warmup 5 --steps 5 --repeats 12" ;;
    small/cpu/1)          echo "--model small --batch 64 --warmup 2 --steps 5 --repeats 1" ;;
    resnet50/cpu/0)       echo "--model resnet50 --batch 4 --warmup 2 --steps 1 --repeats 6" ;;
    resnet50/cpu/1)       echo "--model resnet50 --batch 4 --warmup 1 --steps 1 --repeats 1" ;;
    inception_v3/cpu/0)   echo "--model inception_v3 --batch 4 --warmup 1 --steps 1 --repeats 4" ;;
    inception_v3/cpu/1)   echo "--model inception_v3 --batch 2 --warmup 1 --steps 1 --repeats 1" ;;
    small/cuda*/0)        echo "--model small --batch 256 --warmup 20 --steps 100 --repeats 3" ;;
    small/cuda*/1)        echo "--model small --batch 256 --warmup 5 --steps 20 --repeats 1" ;;
    small:8/cuda*/0)      echo "--model small --batch 8 --warmup 20 --steps 100 --repeats 3" ;;
    small:8/cuda*/1)      echo "--model small --batch 8 --warmup 5 --steps 20 --repeats 1" ;;
    resnet50/cuda*/0)     echo "--model resnet50 --batch 64 --warmup 5 --steps 20 --repeats 3" ;;
    resnet50/cuda*/1)     echo "--model resnet50 --batch 64 --warmup 3 --steps 5 --repeats 1" ;;
    inception_v3/cuda*/0) echo "--model inception_v3 --batch 64 --warmup 5 --steps 20 --repeats 3" ;;
    inception_v3/cuda*/1) echo "--model inception_v3 --batch 64 --warmup 3 --steps 5 --repeats 1" ;;
    *) echo "train_throughput.sh: no settings for model '$model' on device '$DEVICE' (models: small, resnet50, inception_v3; devices: cpu, cuda)" >&2; exit 2 ;;
  esac
}

# field JSON KEY: a number from one JSON line.
field() {
  "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

STATUS=0
ROWS=()
IFS=',' read -r -a MODEL_LIST <<< "$MODELS"
for model in "${MODEL_LIST[@]}"; do
  args="$(args_for "$model") --threads $THREADS --device $DEVICE --precision $PRECISION --channels_last $CHANNELS_LAST"
  [[ -n "$BATCH_OVERRIDE" ]] && args="$args --batch $BATCH_OVERRIDE"
  best_cpp=0; best_py=0; batch=0; size=0
  for ((round = 1; round <= ROUNDS; round++)); do
    # Alternate which side goes first, so that drift on a shared machine
    # does not always favour the same one.
    if (( round % 2 )); then order="cpp py"; else order="py cpp"; fi
    for side in $order; do
      if [[ "$side" == cpp ]]; then
        # shellcheck disable=SC2086
        line="$("$CPP" $args)" || { echo "train_throughput.sh: $CPP $args failed" >&2; exit 1; }
      else
        # shellcheck disable=SC2086
        line="$("${PY_ENV[@]}" "$PY" "$PYBENCH" $args)" || { echo "train_throughput.sh: $PYBENCH $args failed" >&2; exit 1; }
      fi
      echo "$line"
      rate="$(field "$line" best_steps_per_s)"
      batch="$(field "$line" batch)"
      size="$(field "$line" image_size)"
      if [[ "$side" == cpp ]]; then
        best_cpp="$("$PY" -c "print(max($best_cpp, $rate))")"
      else
        best_py="$("$PY" -c "print(max($best_py, $rate))")"
      fi
    done
  done
  ratio="$("$PY" -c "print(f'{$best_cpp / $best_py:.3f}')")"
  verdict="$("$PY" -c "print('PASS' if $best_cpp >= $best_py else ('MISS' if $best_cpp < 0.95 * $best_py else 'TIE'))")"
  [[ "$verdict" == MISS ]] && STATUS=1
  ROWS+=("$("$PY" -c "
b=$batch
print(f'{\"$model\":<13} {b:>5} {$size:>5} {$THREADS:>7} {$best_cpp:>10.3f} {$best_cpp*b:>10.1f} {$best_py:>10.3f} {$best_py*b:>10.1f} {$ratio:>8} {\"$verdict\":>7}')")")
done

echo
echo "device: $DEVICE"
printf '%-13s %5s %5s %7s %10s %10s %10s %10s %8s %7s\n' model batch px threads cpp_step/s cpp_img/s py_step/s py_img/s cpp/py verdict
for row in "${ROWS[@]}"; do echo "$row"; done
exit "$STATUS"
