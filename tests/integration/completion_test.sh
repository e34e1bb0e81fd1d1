#!/usr/bin/env bash
# The bash completion script against the real CLI: its flag lists are
# exactly the flags each `retrain COMMAND --help` declares, and completing
# words gives what a user expects. Prints "N passed, N failed".
set -uo pipefail
bin="${RETRAIN_BIN_DIR:?}"
script="$(dirname "$0")/../../client/retrain-completion.bash"
passed=0 failed=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAILED: $1"; echo "  expected: $2"; echo "  actual:   $3"; fi
}
# shellcheck source=/dev/null
source "$script"
declared() {  # the --flags an Options section declares, sorted
  "$bin/retrain" "$@" --help 2>&1 | sed -n '/^Options:/,/^Subcommands:/p' |
    grep -oE '^ +(-[a-z],)?--[a-z_]+' | grep -oE -- '--[a-z_]+' | grep -v -- '--help' | sort | tr '\n' ' '
}
words() { tr ' ' '\n' <<<"$*" | grep -v '^$' | sort | tr '\n' ' '; }
for command in $_retrain_commands; do
  var="_retrain_flags_${command//-/_}"
  check "flags of $command" "$(declared "$command")" "$(words ${!var})"
done
check "global flags" "$(declared) " "$(words ${_retrain_global_flags/--help/}) "
check "commands" "$(words $_retrain_commands)" \
  "$("$bin/retrain" --help 2>&1 | sed -n '/^Subcommands:/,$p' | grep -oE '^  [a-z-]+' | tr -d ' ' | sort | tr '\n' ' ')"

complete_line() {  # the completions bash offers for the words given
  COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=()
  _retrain
  printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
}
check "a command" "build-dataset " "$(complete_line retrain bu)"
check "a flag" "--train_directory " "$(complete_line retrain build-dataset --train_d)"
check "train flags" "--train_dir " "$(complete_line retrain train --train_)"
check "a value" "bf16 " "$(complete_line retrain train --precision b)"
check "output values" "json text " "$(complete_line retrain list --output '')"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
