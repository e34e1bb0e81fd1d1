#!/usr/bin/env bash
# Load test of the coordinator on loopback: many clients and fake workers at once.
#
#   bash bench/load.sh [--seconds 60] [--clients 200] [--workers 100]
#                      [--images 320] [--max_pending 500] [--max_watch 256]
#                      [--store sqlite|postgres] [--json FILE]
#                      [--keep] [-- RETRAIN_BENCH_LOAD_FLAGS...]
#
# Run from anywhere after a build; binaries come from build/bin/ (or
# $RETRAIN_BIN_DIR): retrain-server, retrain-bench-load, retrain-make-images.
# Installs nothing. Makes one temp dir (images, server state, build output
# directories, logs), removed at exit unless --keep. Starts retrain-server on
# a free loopback port with --max_pending_jobs_per_client MAX_PENDING and
# --max_watch_streams MAX_WATCH, runs retrain-bench-load against it for
# --seconds, prints each figure beside its target, PASS or MISS, and exits 1
# when any target is missed (2 on usage errors). Flags after "--" go to
# retrain-bench-load as they are (e.g. -- --think_ms 100 --hold_ms 0; see its
# --help). --store postgres keeps the server's state in a PostgreSQL server
# started in the temp dir (bench/postgres.sh) instead of SQLite; --json
# copies the figures there (bench/load_stores.sh compares the two stores).
set -euo pipefail

usage() {
  sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
}

SECONDS_RUN=60
CLIENTS=200
WORKERS=100
IMAGES=320
# Every bench client connects from 127.0.0.1, which the server counts as one
# client host. 500 (the server's default is 1000) is reached in about 25 s:
# from then on the queue holds steady near 500 jobs (about 3000 tasks) and
# further submits are refused (RESOURCE_EXHAUSTED, counted apart), so the
# second half of the run shows whether memory grows at a steady state.
MAX_PENDING=500
MAX_WATCH=256   # the server's default
KEEP=0
STORE=sqlite
JSON_COPY=""
EXTRA=()
posint() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "load.sh: $1 must be a positive integer" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) SECONDS_RUN="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --workers) WORKERS="$2"; shift 2 ;;
    --images) IMAGES="$2"; shift 2 ;;
    --max_pending) MAX_PENDING="$2"; shift 2 ;;
    --max_watch) MAX_WATCH="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --store) STORE="$2"; shift 2 ;;
    --json) JSON_COPY="$2"; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) echo "load.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
posint --seconds "$SECONDS_RUN"
posint --clients "$CLIENTS"
posint --workers "$WORKERS"
posint --images "$IMAGES"
posint --max_pending "$MAX_PENDING"
posint --max_watch "$MAX_WATCH"
[[ "$STORE" == sqlite || "$STORE" == postgres ]] ||
  { echo "load.sh: --store must be sqlite or postgres" >&2; exit 2; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${RETRAIN_BIN_DIR:-$REPO/build/bin}"
PY=/usr/bin/python3   # reads the figures (standard library only)
for b in retrain-server retrain retrain-bench-load retrain-make-images; do
  if [[ ! -x "$BIN/$b" ]]; then
    echo "load.sh: missing binary $BIN/$b (build it: cmake --build build --target $b)" >&2
    exit 1
  fi
done

# --- temp dir and cleanup ---------------------------------------------------
WORK="$(mktemp -d /tmp/retrain-load.XXXXXX)"
WORK="$(cd "$WORK" && pwd -P)"
SERVER_PID=""
cleanup() {
  local rc=$? i
  if [[ -n "$SERVER_PID" ]] && kill -TERM "$SERVER_PID" 2>/dev/null; then
    for ((i = 0; i < 100; i++)); do  # up to 10 s, then KILL
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  [[ "$STORE" == postgres ]] && stop_postgres
  if [[ $KEEP -eq 1 ]]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- data and server --------------------------------------------------------
echo "generating $IMAGES small images ..."
"$BIN/retrain-make-images" photos --out "$WORK/data" --count "$IMAGES" --width 64 --height 48 \
  --seed 1 >/dev/null
mkdir -p "$WORK/state" "$WORK/out"
STATE_FLAGS=(--state_dir "$WORK/state")
if [[ "$STORE" == postgres ]]; then
  source "$REPO/bench/postgres.sh"
  chmod 0755 "$WORK"  # the postgres user enters it
  start_postgres "$WORK/pg"
  STATE_FLAGS=(--state_db "$PG_URI" --state_db_password_file "$PG_PASSWORD_FILE")
fi
"$BIN/retrain-server" --listen 127.0.0.1:0 --port_file "$WORK/port" "${STATE_FLAGS[@]}" \
  --data_root "$WORK" --max_pending_jobs_per_client "$MAX_PENDING" \
  --max_watch_streams "$MAX_WATCH" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PORT=""
for ((i = 0; i < 300; i++)); do  # up to 30 s
  if [[ -s "$WORK/port" ]]; then
    PORT=$(tr -dc '0-9' <"$WORK/port")
    [[ -n "$PORT" ]] && break
  fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "load.sh: retrain-server exited at start; its log:" >&2
    tail -n 20 "$WORK/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z "$PORT" ]]; then
  echo "load.sh: retrain-server wrote no port within 30 s; its log:" >&2
  tail -n 20 "$WORK/server.log" >&2
  exit 1
fi

# With PostgreSQL the server stands by until it holds the lease.
for ((i = 0; i < 300; i++)); do
  "$BIN/retrain" --server "127.0.0.1:$PORT" --timeout_s 2 workers >/dev/null 2>&1 && break
  sleep 0.1
done

LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load: $CLIENTS clients, $WORKERS fake workers, $SECONDS_RUN s against 127.0.0.1:$PORT ($STORE)" \
  "(--max_pending_jobs_per_client $MAX_PENDING --max_watch_streams $MAX_WATCH) ..."
"$BIN/retrain-bench-load" --server "127.0.0.1:$PORT" --server_pid "$SERVER_PID" \
  --seconds "$SECONDS_RUN" --clients "$CLIENTS" --workers "$WORKERS" \
  --train_directory "$WORK/data/train" --validation_directory "$WORK/data/validation" \
  --labels_file "$WORK/data/labels.txt" --output_root "$WORK/out" \
  --json_out "$WORK/load.json" ${EXTRA[@]+"${EXTRA[@]}"}
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "load.sh: retrain-server died during the run; its log:" >&2
  tail -n 20 "$WORK/server.log" >&2
  exit 1
fi

# --- figures against targets --------------------------------------------------
echo
[[ -n "$JSON_COPY" ]] && cp "$WORK/load.json" "$JSON_COPY"
echo "== retrain coordinator load test ($STORE) =="
echo "date:    $(date -Is)"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "loadavg: $LOADAVG_BEFORE before the run, $(cut -d' ' -f1-3 /proc/loadavg) after (other work on the machine skews every figure)"
"$PY" - "$WORK/load.json" <<'EOF'
import json, sys

r = json.load(open(sys.argv[1]))
m = r["methods"]
misses = 0

def row(figure, value, unit, target, ok):
    global misses
    misses += 0 if ok else 1
    shown = f"{value:.1f} {unit}".strip() if isinstance(value, float) else f"{value} {unit}".strip()
    print(f"  {figure:<44} {shown:>14}   {target:<26} {'PASS' if ok else 'MISS'}")

def info(figure, text):
    print(f"  {figure:<44} {text}")

c = r["config"]
print(f"load:    {c['clients']} clients (think {c['think_ms']} ms), {c['workers']} fake workers "
      f"(hold {c['hold_ms']} ms, long-poll {c['lease_wait_ms']} ms), {r['load_seconds']:.1f} s")
print()
print(f"  {'figure':<44} {'measured':>14}   {'target':<26} result")
for name, target in [("SubmitDatasetBuild", 200), ("GetJob", 100), ("ListJobs", 200),
                     ("WatchJob", 200), ("Heartbeat", 100), ("ReportProgress", 100),
                     ("FailTask", 200)]:
    if name not in m:
        row(f"{name} calls", 0, "", "> 0", False)
        continue
    label = "WatchJob first snapshot" if name == "WatchJob" else name
    row(f"{label} p99 latency", m[name]["p99_ms"], "ms", f"< {target} ms",
        m[name]["p99_ms"] < target)
# Once the first task was handed out the queue is deep, so a lease that
# gets a task should get it at once. Leases that started before that waited
# for the first work to be planned; the bench counts them apart.
lease = m.get("LeaseTask (task)")
if lease:
    row("LeaseTask p99 latency, task handed out", lease["p99_ms"], "ms", "< 200 ms",
        lease["p99_ms"] < 200)
else:
    row("LeaseTask calls that got a task", 0, "", "> 0", False)
first = m.get("LeaseTask (first task)")
info("LeaseTask calls before the first task",
     f"{first['calls']} (max {first['max_ms']:.0f} ms)" if first else "0")
empty = m.get("LeaseTask (no task)")
info("LeaseTask calls that got no task", f"{empty['calls']} (max {empty['max_ms']:.0f} ms)"
     if empty else "0")

s = r["starvation"]
row("longest wait for an answer (past asked wait)", s["max_overdue_ms"], "ms", "< 1000 ms",
    s["max_overdue_ms"] < 1000)
row("threads that once waited > 1 s", s["threads_over_1s"], "", "0", s["threads_over_1s"] == 0)
row("calls past their deadline", s["deadline_exceeded"], "", "0", s["deadline_exceeded"] == 0)

# Expected: RESOURCE_EXHAUSTED from the server's limits on submits and
# watches; FAILED_PRECONDITION on FailTask for a lease the server already
# withdrew (its job failed meanwhile), as documented for stale leases.
# The bench records refusals as "<method> (refused)".
unexpected, limited, stale = [], {}, 0
for name, fig in m.items():
    for code, n in fig["codes"].items():
        if code == "OK":
            continue
        if code == "RESOURCE_EXHAUSTED" and name.endswith(" (refused)"):
            limited[name] = n
        elif (name, code) == ("FailTask", "FAILED_PRECONDITION"):
            stale += n
        else:
            unexpected.append(f"{name} {code} x{n}: {fig.get('first_error', '')[:80]}")
row("errors other than the expected ones", len(unexpected), "", "0", not unexpected)
for u in unexpected:
    info("", u)
info("RESOURCE_EXHAUSTED (server limits, expected)",
     ", ".join(f"{k.split()[0]} x{n} (p99 {m[k]['p99_ms']:.1f} ms)" for k, n in limited.items())
     or "0")
info("FailTask on a withdrawn lease (expected)", str(stale))

q = r["queue_at_end"]
if "error" in q:
    row("tasks queued at the end", 0, "", ">= 1000 (a deep queue)", False)
    info("", q["error"])
else:
    row("tasks queued at the end", q["pending_tasks"], "", ">= 1000 (a deep queue)",
        q["pending_tasks"] >= 1000)
    info("unfinished jobs at the end", f"{q['unfinished_jobs']} ({q['queued_jobs']} not yet planned)")
w = r["work"]
info("jobs submitted / tasks leased / handed back",
     f"{w['jobs_submitted']} / {w['tasks_leased']} / {w['tasks_handed_back']} "
     f"(leases revoked: {w['leases_revoked']})")

rss = r.get("server_rss_kib")
if rss:
    mib = lambda k: k / 1024
    row("server RSS growth in the second half", rss["second_half_growth_pct"], "%", "< 10 %",
        rss["second_half_growth_pct"] < 10)
    info("server RSS start / half time / peak / end",
         f"{mib(rss['start']):.1f} / {mib(rss['mid']):.1f} / {mib(rss['peak']):.1f} / "
         f"{mib(rss['end']):.1f} MiB")
else:
    row("server RSS sampled", 0, "", "> 0 samples", False)
if "server_cpu_seconds" in r:
    info("server CPU", f"{r['server_cpu_seconds']:.1f} s in {r['load_seconds']:.1f} s "
         f"({100 * r['server_cpu_seconds'] / r['load_seconds']:.0f} % of one core)")
if "server_threads" in r:
    info("server threads start / peak", f"{r['server_threads']['start']} / "
         f"{r['server_threads']['peak']}")
info("load generator CPU (this process, same cores)",
     f"{r['bench_cpu_seconds']:.1f} s")
info("all calls", f"{r['calls']} ({r['calls_per_s']:.1f}/s)")
print()
print("PASS: every target met" if misses == 0 else f"MISS: {misses} target(s) missed")
sys.exit(1 if misses else 0)
EOF
