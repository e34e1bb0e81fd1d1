#!/usr/bin/env bash
# The coordinator's load test on each store, one after the other with the
# same clients, workers and flags (bench/load.sh --store sqlite, then
# --store postgres), and the two side by side: calls per second and p50/p99
# per method. Target: PostgreSQL serves at least half of SQLite's calls per
# second. Exits 1 when that or either run's targets are missed.
#
#   bash bench/load_stores.sh [LOAD_SH_FLAGS...]     (e.g. --seconds 60)
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(mktemp -d /tmp/retrain-load-stores.XXXXXX)"
trap 'rm -rf "$OUT"' EXIT
failed=0
for store in sqlite postgres; do
  bash "$REPO/bench/load.sh" --store "$store" --json "$OUT/$store.json" "$@" || failed=1
  echo
done
/usr/bin/python3 - "$OUT/sqlite.json" "$OUT/postgres.json" <<'PY' || failed=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print("== the two stores, same load ==")
print(f"  {'method':<24} {'SQLite p50/p99 ms':>20} {'PostgreSQL p50/p99 ms':>24}")
for name in sorted(set(a["methods"]) | set(b["methods"])):
    fa, fb = a["methods"].get(name), b["methods"].get(name)
    cell = lambda f: f"{f['p50_ms']:.1f} / {f['p99_ms']:.1f}" if f else "-"
    print(f"  {name:<24} {cell(fa):>20} {cell(fb):>24}")
ratio = b["calls_per_s"] / a["calls_per_s"] if a["calls_per_s"] else 0
ok = ratio >= 0.5
print(f"  calls per second: SQLite {a['calls_per_s']:.1f}, PostgreSQL {b['calls_per_s']:.1f}"
      f" ({100 * ratio:.0f} %)   target: >= 50 %   {'PASS' if ok else 'MISS'}")
sys.exit(0 if ok else 1)
PY
exit $failed
