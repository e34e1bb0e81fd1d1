#!/usr/bin/env bash
# docs/cli.md against the real programs' --help: every `retrain` command
# has its reference, and every flag a command, retrain-server or
# retrain-worker declares is named in the page. Prints "N passed, N failed".
set -uo pipefail
bin="${RETRAIN_BIN_DIR:?}"
doc="$(dirname "$0")/../../docs/cli.md"
passed=0 failed=0
check() {  # check NAME CONDITION-RESULT(0/1)
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1"; fi
}
declared() {  # the --flags an Options section of PROGRAM ARGS... --help declares
  "$@" --help 2>&1 | sed -n '/^Options:/,/^Subcommands:/p' |
    grep -oE '^ +(-[a-z],)?--[a-z_]+' | grep -oE -- '--[a-z_]+' | grep -v -- '--help' | sort -u
}
in_doc() { grep -qF -- "$1" "$doc"; echo $?; }
commands=$("$bin/retrain" --help 2>&1 | sed -n '/^Subcommands:/,$p' | grep -oE '^  [a-z-]+' | tr -d ' ')
[ -n "$commands" ]; check "retrain --help lists commands" $?
for command in $commands; do
  check "docs/cli.md: retrain $command" "$(in_doc "retrain $command")"
  for flag in $(declared "$bin/retrain" "$command"); do
    check "docs/cli.md: retrain $command $flag" "$(in_doc "$flag")"
  done
done
for flag in $(declared "$bin/retrain"); do check "docs/cli.md: retrain $flag" "$(in_doc "$flag")"; done
for program in retrain-server retrain-worker; do
  for flag in $(declared "$bin/$program"); do
    # retrain-server's --tls_* and --max_* rows name flags by pattern.
    case "$flag" in --tls_*|--max_*) flag="${flag%%_*}_" ;; esac
    check "docs/cli.md: $program $flag" "$(in_doc "$flag")"
  done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
