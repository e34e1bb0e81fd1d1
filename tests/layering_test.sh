#!/usr/bin/env bash
# Which way dependencies point (docs/architecture.md), checked on the
# sources' #include lines: each rule greps a folder for what it must not
# include; and that the contract libraries throw nothing. Prints
# "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
passed=0 failed=0
# forbid NAME REGEX PATHS...: no #include line in PATHS matches REGEX.
forbid() {
  local name="$1" regex="$2" found
  shift 2
  found=$(grep -rnE --include='*.h' --include='*.cc' "^#include [<\"]($regex)" "$@" 2>/dev/null)
  if [ -z "$found" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAILED: $name"; echo "$found" | sed 's/^/  /'; fi
}
forbid "the dataset contract includes nothing of the services, the trainer or their libraries" \
  'torch/|ATen/|c10/|grpc|absl/|vips/|google/protobuf|retrain/v1/|server/|worker/|trainer/|client/' \
  dataset
forbid "retrain_base stays free of abseil, gRPC, libvips and LibTorch" \
  'torch/|ATen/|c10/|grpc|absl/|vips/' \
  common/crc32c.h common/crc32c.cc common/clock.h common/clock.cc common/logging.h \
  common/logging.cc common/proto_wire.h common/proto_wire.cc common/system_memory.h \
  common/system_memory.cc common/tfrecord.h common/tfrecord.cc
forbid "the worker includes no trainer code (it runs retrain-trainer as a process), the training spec aside" \
  'trainer/[^s]|trainer/s[^p]' worker
forbid "the server never includes LibTorch" 'torch/|ATen/|c10/' server
forbid "the server includes of the trainer only the training spec (trainer/spec/)" \
  'trainer/[^s]|trainer/s[^p]' server
forbid "the client includes no server, worker or trainer code (the training spec's knobs aside)" \
  'server/|worker/|trainer/[^s]|trainer/s[^p]|torch/' client
forbid "the training spec (trainer/spec/) includes only the standard library, JSON and dataset/" \
  'torch/|ATen/|c10/|grpc|absl/|vips/|google/|retrain/v1/|common/|server/|worker/|client/|trainer/[^s]|trainer/s[^p]' \
  trainer/spec
forbid "the trainer's input pipeline never includes LibTorch, gRPC, abseil or libvips" \
  'torch/|ATen/|c10/|grpc|absl/|vips/' trainer/input
# The contract libraries report errors as values: no throw statement.
found=$(grep -rnE --include='*.h' --include='*.cc' '(^|[^a-z_/"])throw( |;|$)' dataset trainer/spec |
  grep -vE ':[0-9]+: *//')
if [ -z "$found" ]; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAILED: dataset/ and trainer/spec/ throw nothing"
  echo "$found" | sed 's/^/  /'; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
