// A job's page at "/jobs/<id>": one self-contained HTML file (no build
// step, no external assets; the charts are inline SVG drawn by its script)
// that reads the job's id from its address and shows, from the JSON
// endpoints (http_gateway.h):
//   - the job's facts, its request and its history with reasons;
//   - a dataset build's records per class and split, its shards, skipped
//     files and duplicates; a verification's findings;
//   - a training's or evaluation's loss, learning rate, examples/s and
//     precision over steps (its series, GET /v1/jobs/{id}/metrics), its
//     checkpoints and evaluations, and the last lines of its log.
// It polls every two seconds, reading only what is new of the series and
// the log, and stops once the job has ended and both are read to their
// end. Token handling as the status page's (page_parts.h).
#include "absl/strings/str_cat.h"
#include "server/http_gateway.h"
#include "server/page_parts.h"

namespace retrain::server {

namespace {

constexpr const char* kJobPageStyle = R"CSS(
  .facts { display: grid; grid-template-columns: max-content 1fr; gap: .15em 1.2em; margin: 0; }
  .facts dt { color: #6b7280; }
  .facts dd { margin: 0; overflow-wrap: anywhere; }
  .num { text-align: right; font-variant-numeric: tabular-nums; }
  table.compact { width: auto; min-width: 32em; }
  .charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(26em, 1fr)); gap: 1em; }
  .chart { border: 1px solid #ddd; border-radius: 4px; padding: .4em .6em .2em; }
  .chart h3 { font-size: .95em; font-weight: 600; margin: 0; }
  .chart .legend { font-size: .85em; color: #6b7280; }
  .chart .legend span { display: inline-block; width: .9em; height: .2em; vertical-align: middle; margin: 0 .2em 0 .6em; }
  .chart svg { display: block; width: 100%; height: auto; }
  .chart svg text { font-size: 11px; fill: #6b7280; }
  .chart svg .grid { stroke: #eee; }
  .chart svg .axis { stroke: #bbb; }
  #log { background: #f8f8f8; border: 1px solid #ddd; padding: .6em; max-height: 26em; overflow: auto;
         font-size: 12px; white-space: pre-wrap; margin: 0; }
  code { font-size: 12px; }
)CSS";

// The page's own script, after PageScript().
constexpr const char* kJobPageScript = R"JS(
const jobId = decodeURIComponent(location.pathname.replace(/^\/jobs\//, ""));
const kPageSize = 10000;        // points or lines a request
const kLogLinesShown = 1000;    // the log's last lines kept on the page
const series = { points: [], next: 0, ended: false, drawn: -1 };
const log = { lines: [], next: 0, ended: false };
const num = (v) => Number(v || 0);
const when = (t) => (t ? new Date(t).toLocaleString() : "");
const words = (s, prefix) => short(s, prefix).toLowerCase().replaceAll("_", " ");
const isFinal = (state) => ["JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"].includes(state);
const trains = (job) => job.type === "JOB_TYPE_TRAINING" || job.type === "JOB_TYPE_EVALUATION";

function bytes(b) {
  b = num(b);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; ++i; }
  return (i ? b.toFixed(1) : b) + " " + units[i];
}
function show(id, visible) { document.getElementById(id).hidden = !visible; }
// Fills a <dl> with [name, value] pairs; empty values are left out.
function facts(id, pairs) {
  const dl = document.getElementById(id);
  dl.replaceChildren();
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.append(value);
    dl.append(dt, dd);
  }
}
// Fills a table's body with one row per item; `cells(item)` gives
// [text, class] pairs.
function rows(id, items, cells) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const item of items) {
    const row = body.insertRow();
    for (const [text, cls] of cells(item)) cell(row, text, cls);
  }
}
function stateSpan(state) {
  const span = document.createElement("span");
  span.textContent = short(state, "JOB_STATE_");
  span.className = "state state-" + span.textContent;
  return span;
}
function progressOf(job) {
  const p = job.progress || {};
  const [done, total, unit] = num(p.max_steps) > 0 ? [num(p.step), num(p.max_steps), "steps"]
                                                   : [num(p.done), num(p.total), p.unit || ""];
  if (total <= 0) return "";
  const pct = Math.min(100, 100 * done / total);
  const span = document.createElement("span");
  span.innerHTML = '<span class="bar" role="progressbar"><span></span></span> ';
  span.querySelector(".bar").setAttribute("aria-valuenow", pct.toFixed(0));
  span.querySelector(".bar > span").style.width = pct.toFixed(1) + "%";
  const rate = isFinal(job.state) ? 0 : num(p.examples_per_sec || p.rate);
  span.append(done + " / " + total + " " + unit + (rate ? ", " + rate.toFixed(1) + "/s" : ""));
  return span;
}

function showJob(job) {
  document.getElementById("title").textContent =
      "Job " + job.id + " \u2014 " + words(job.type, "JOB_TYPE_");
  facts("facts", [
    ["State", stateSpan(job.state)],
    ["Phase", (job.progress || {}).phase],
    ["Progress", progressOf(job)],
    ["Error", job.error],
    ["Submitted", when(job.create_time)],
    ["Ended", when(job.end_time)],
    ["Submitter", job.submitter],
    ["Priority", num(job.priority) ? String(job.priority) : ""],
    ["Request id", job.request_id],
  ]);
  const spec = job.dataset_build || job.training || job.evaluation || job.dataset_verify || {};
  facts("spec", Object.entries(spec).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)]));
  rows("history", job.history || [], (e) => [[when(e.time), "nowrap"],
      [short(e.state, "JOB_STATE_"), "state-" + short(e.state, "JOB_STATE_")], [e.reason]]);
  showDatasetBuild(job.dataset_build_result);
  showVerification(job.dataset_verify_result);
  showTrainingResult(job);
}

function showDatasetBuild(r) {
  show("dataset-section", !!r);
  if (!r) return;
  const train = r.train || {}, validation = r.validation || {};
  facts("dataset-facts", [
    ["Output", r.output_directory],
    ["Manifest", r.manifest],
    ["Records", num(train.num_records) + " train, " + num(validation.num_records) + " validation"],
    ["Re-encoded", String(num(train.num_converted) + num(validation.num_converted))],
    ["Skipped", String(num(r.num_skipped))],
    ["Duplicate groups", String(num(r.num_duplicate_groups))],
  ]);
  const classes = new Map();
  for (const label of r.labels || []) classes.set(num(label.id), { name: label.name, train: 0, validation: 0 });
  for (const [split, result] of [["train", train], ["validation", validation]]) {
    for (const c of result.class_counts || []) {
      const entry = classes.get(num(c.label)) || { name: c.name, train: 0, validation: 0 };
      entry[split] = num(c.count);
      classes.set(num(c.label), entry);
    }
  }
  rows("classes", [...classes.entries()].sort((a, b) => a[0] - b[0]),
       ([label, c]) => [[String(label), "num"], [c.name], [String(c.train), "num"], [String(c.validation), "num"]]);
  const total = document.querySelector("#classes tfoot");
  total.replaceChildren();
  const row = total.insertRow();
  for (const [text, cls] of [["", ""], ["all", ""], [String(num(train.num_records)), "num"],
                             [String(num(validation.num_records)), "num"]]) {
    cell(row, text, cls);
  }
  const shards = [...(train.shards || []).map((s) => ["train", s]),
                  ...(validation.shards || []).map((s) => ["validation", s])];
  rows("shards", shards, ([split, s]) => [[split], [s.file], [String(num(s.num_records)), "num"],
                                          [bytes(s.num_bytes), "num"], [s.sha256, "muted"]]);
  const skipped = r.skipped || [];
  document.getElementById("skipped-summary").textContent =
      num(r.num_skipped) === 0 ? "none" :
      num(r.num_skipped) > skipped.length ? "the first " + skipped.length + " of " + num(r.num_skipped) +
                                                "; all are listed in " + r.skipped_file
                                          : num(r.num_skipped) + ", also listed in " + r.skipped_file;
  rows("skipped", skipped, (f) => [[f.split], [f.path], [words(f.reason, "SKIP_REASON_")], [f.detail, "muted"]]);
  show("skipped", skipped.length > 0);
  const groups = r.duplicates || [];
  show("duplicates-section", groups.length > 0);
  rows("duplicates", groups, (g) => [[String((g.paths || []).length), "num"], [(g.paths || []).join(", ")]]);
}

function showVerification(r) {
  show("verify-section", !!r);
  if (!r) return;
  facts("verify-facts", [
    ["Intact", r.intact ? "yes" : "no"],
    ["Checked", num(r.shards_checked) + " shards, " + num(r.records_checked) + " records, " +
                bytes(r.bytes_checked)],
    ["Damaged shards", (r.damaged_shards || []).join(", ")],
  ]);
  rows("damage", r.damage || [], (d) => [[d.file], [num(d.offset) < 0 ? "" : String(d.offset), "num"], [d.problem]]);
  show("damage", (r.damage || []).length > 0);
}

function showTrainingResult(job) {
  const t = job.training_result, e = job.evaluation_result || (t || {}).evaluation;
  show("result-section", !!(t || e));
  if (!t && !e) return;
  const pairs = [];
  if (t) pairs.push(["Steps", String(num(t.steps))], ["Final loss", num(t.final_loss).toFixed(4)],
                    ["Final checkpoint", t.final_checkpoint], ["Restarts", String(num(t.restarts))]);
  if (e && num(e.num_examples) > 0) {
    pairs.push(["Precision @ 1", num(e.precision_at_1).toFixed(4)],
               ["Precision @ 5", num(e.precision_at_5).toFixed(4)],
               ["Examples evaluated", String(num(e.num_examples))], ["Checkpoint evaluated", e.checkpoint]);
  }
  facts("result-facts", pairs);
}

// The series' points of one kind, one a step (a resumed run logs again the
// steps past its checkpoint: the later point stands), in step order.
function pointsOf(kind) {
  const byStep = new Map();
  for (const p of series.points) if (p.kind === kind) byStep.set(num(p.step), p);
  return [...byStep.values()].sort((a, b) => num(a.step) - num(b.step));
}

// Round tick values from lo to hi, about n of them.
function ticks(lo, hi, n) {
  const raw = (hi - lo) / n || 1;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}
function label(v) {
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1);
  return String(+v.toPrecision(3));
}

// A chart of lines over steps: an SVG polyline per line (with a marker per
// point while there are few), y from 0 to the largest value (or `yMax`).
function chart(id, title, lines, xMax, yMax) {
  const W = 400, H = 170, left = 44, right = 10, top = 10, bottom = 28;
  const all = lines.flatMap((l) => l.points);
  const yTop = yMax || Math.max(...all.map((p) => p[1]), 0) || 1;
  const yTicks = ticks(0, yTop, 4), xTicks = ticks(0, xMax, 5);
  const yEnd = Math.max(yTop, yTicks[yTicks.length - 1]);
  const x = (v) => left + (W - left - right) * v / (xMax || 1);
  const y = (v) => H - bottom - (H - top - bottom) * v / yEnd;
  let svg = `<svg id="${id}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${title} over steps"` +
            ` data-points="${lines[0].points.length}">`;
  for (const v of yTicks) {
    svg += `<line class="grid" x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}"/>` +
           `<text x="${left - 4}" y="${y(v) + 3}" text-anchor="end">${label(v)}</text>`;
  }
  for (const v of xTicks) {
    svg += `<text x="${x(v)}" y="${H - bottom + 13}" text-anchor="middle">${label(v)}</text>`;
  }
  svg += `<line class="axis" x1="${left}" x2="${W - right}" y1="${y(0)}" y2="${y(0)}"/>` +
         `<text x="${W - right}" y="${H - 3}" text-anchor="end">step</text>`;
  for (const l of lines) {
    const xy = l.points.map(([px, py]) => x(px).toFixed(1) + "," + y(py).toFixed(1));
    svg += `<polyline class="line" data-series="${l.name}" fill="none" stroke="${l.color}"` +
           ` stroke-width="1.5" points="${xy.join(" ")}"/>`;
    if (l.points.length <= 150) {
      for (const [px, py] of l.points) {
        svg += `<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="2.5" fill="${l.color}">` +
               `<title>step ${px}: ${l.name} ${label(py)}</title></circle>`;
      }
    }
  }
  svg += "</svg>";
  const box = document.createElement("div");
  box.className = "chart";
  const h = document.createElement("h3");
  h.textContent = title;
  const last = lines.map((l) => l.points.length ? l.name + " " + label(l.points[l.points.length - 1][1]) : "");
  const legend = document.createElement("div");
  legend.className = "legend";
  legend.innerHTML = lines.map((l) => `<span style="background:${l.color}"></span>`).join("");
  legend.querySelectorAll("span").forEach((s, i) => s.after(last[i] || lines[i].name));
  box.append(h, legend);
  box.insertAdjacentHTML("beforeend", svg);
  return box;
}

function drawSeries(job) {
  if (series.drawn === series.points.length) return;
  series.drawn = series.points.length;
  const steps = pointsOf("KIND_STEP"), evals = pointsOf("KIND_EVAL");
  const checkpoints = pointsOf("KIND_CHECKPOINT");
  const maxSteps = Math.max(num((job.training || {}).max_steps), num((job.progress || {}).max_steps),
                            ...series.points.map((p) => num(p.max_steps)),
                            ...series.points.map((p) => num(p.step)));
  const of = (points, field) => points.map((p) => [num(p.step), num(p[field])]);
  const charts = document.getElementById("charts");
  charts.replaceChildren();
  if (steps.length) {
    charts.append(chart("chart-loss", "Loss", [{ name: "loss", color: "#dc2626", points: of(steps, "loss") }], maxSteps),
                  chart("chart-learning-rate", "Learning rate",
                        [{ name: "learning rate", color: "#7c3aed", points: of(steps, "learning_rate") }], maxSteps),
                  chart("chart-examples-per-sec", "Examples per second",
                        [{ name: "examples/s", color: "#0891b2", points: of(steps, "examples_per_sec") }], maxSteps));
  }
  if (evals.length) {
    charts.append(chart("chart-precision", "Evaluation precision",
                        [{ name: "@ 1", color: "#16a34a", points: of(evals, "precision_at_1") },
                         { name: "@ 5", color: "#ca8a04", points: of(evals, "precision_at_5") }], maxSteps, 1));
  }
  show("charts-section", charts.childElementCount > 0);
  document.getElementById("series-summary").textContent =
      steps.length + " steps logged, " + evals.length + " evaluations, " + checkpoints.length + " checkpoints";
  const final = (job.training_result || {}).final_checkpoint;
  rows("checkpoints", checkpoints, (c) => [[String(num(c.step)), "num"], [when(c.time), "nowrap"],
                                           [c.checkpoint + (c.checkpoint === final ? "  (final)" : "")]]);
  show("checkpoints-section", checkpoints.length > 0);
  rows("evaluations", evals, (e) => [[String(num(e.step)), "num"], [num(e.precision_at_1).toFixed(4), "num"],
                                     [num(e.precision_at_5).toFixed(4), "num"],
                                     [String(num(e.num_examples)), "num"], [e.checkpoint]]);
  show("evaluations-section", evals.length > 0);
}

// Reads what is new of the series, or of the log, page by page.
async function readMore(what, field, path) {
  for (;;) {
    const r = await get(path + "?offset=" + what.next);
    const got = r[field] || [];
    what[field].push(...got);
    what.next = num(r.next_offset);
    what.ended = !!r.job_ended;
    if (got.length < kPageSize) return;
  }
}

function showLog() {
  if (log.lines.length > kLogLinesShown) log.lines.splice(0, log.lines.length - kLogLinesShown);
  const pre = document.getElementById("log");
  const following = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = log.lines.join("\n");
  if (following) pre.scrollTop = pre.scrollHeight;
  document.getElementById("log-summary").textContent = log.next === 0 ? "no lines yet" :
      (log.next > log.lines.length ? "the last " + log.lines.length + " of " : "") + log.next + " lines" +
      (log.ended ? "" : "; following");
}

async function refresh() {
  let done = false;
  try {
    const path = "/v1/jobs/" + encodeURIComponent(jobId);
    const job = await get(path);
    showJob(job);
    if (trains(job)) {
      if (!series.ended) await readMore(series, "points", path + "/metrics");
      if (!log.ended) await readMore(log, "lines", path + "/logs");
      drawSeries(job);
      show("log-section", true);
      showLog();
    }
    done = isFinal(job.state) && (!trains(job) || (series.ended && log.ended));
    document.getElementById("login").style.display = "none";
    document.getElementById("status").textContent =
        (done ? "ended; read " : "following; updated ") + new Date().toLocaleTimeString();
  } catch (e) {
    showFailure(e);
    done = e.answered === true && e.message.includes("no job");
  }
  if (!done) setTimeout(refresh, 2000);
}
document.title = "retrain " + jobId;
document.getElementById("title").textContent = "Job " + jobId;
onLogin(refresh);
refresh();
)JS";

}  // namespace

const std::string& JobPageHtml() {
  static const std::string html = absl::StrCat(R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>retrain job</title>
<style>)HTML",
                                               PageStyle(), kJobPageStyle, R"HTML(</style>
</head>
<body>
<div class="muted"><a href="/">&larr; all jobs</a></div>
<h1 id="title">Job</h1>
<div id="status">loading&hellip;</div>
<form id="login"><label>Client token: <input id="token" type="password" autocomplete="off"></label>
  <button type="submit">Show the job</button></form>
<h2>Summary</h2>
<dl class="facts" id="facts"></dl>
<section id="result-section" hidden><h2>Result</h2><dl class="facts" id="result-facts"></dl></section>
<section id="charts-section" hidden><h2>Training</h2>
  <p class="muted" id="series-summary"></p><div class="charts" id="charts"></div></section>
<section id="checkpoints-section" hidden><h2>Checkpoints</h2>
  <table id="checkpoints"><thead><tr><th class="num">Step</th><th>Written</th><th>Path</th></tr></thead><tbody></tbody></table></section>
<section id="evaluations-section" hidden><h2>Evaluations</h2>
  <table id="evaluations"><thead><tr><th class="num">Step</th><th class="num">Precision @ 1</th><th class="num">Precision @ 5</th>
  <th class="num">Examples</th><th>Checkpoint</th></tr></thead><tbody></tbody></table></section>
<section id="dataset-section" hidden><h2>Dataset</h2><dl class="facts" id="dataset-facts"></dl>
  <h2>Records per class</h2>
  <table id="classes" class="compact"><thead><tr><th class="num">Label</th><th>Class</th><th class="num">Train</th><th class="num">Validation</th></tr></thead>
  <tbody></tbody><tfoot></tfoot></table>
  <h2>Shards</h2>
  <table id="shards"><thead><tr><th>Split</th><th>File</th><th class="num">Records</th><th class="num">Bytes</th><th>SHA-256</th></tr></thead>
  <tbody></tbody></table>
  <h2>Skipped files</h2><p class="muted" id="skipped-summary"></p>
  <table id="skipped"><thead><tr><th>Split</th><th>File</th><th>Reason</th><th>Detail</th></tr></thead><tbody></tbody></table>
  <section id="duplicates-section" hidden><h2>Duplicates</h2>
  <table id="duplicates"><thead><tr><th class="num">Copies</th><th>Files</th></tr></thead><tbody></tbody></table></section>
</section>
<section id="verify-section" hidden><h2>Verification</h2><dl class="facts" id="verify-facts"></dl>
  <table id="damage"><thead><tr><th>File</th><th class="num">Offset</th><th>Problem</th></tr></thead><tbody></tbody></table></section>
<section id="history-section"><h2>History</h2>
  <table id="history"><thead><tr><th>Time</th><th>State</th><th>Reason</th></tr></thead><tbody></tbody></table></section>
<section id="log-section" hidden><h2>Log</h2><p class="muted" id="log-summary"></p><pre id="log"></pre></section>
<h2>Request</h2>
<dl class="facts" id="spec"></dl>
<script>)HTML",
                                               PageScript(), kJobPageScript, R"HTML(</script>
</body>
</html>
)HTML");
  return html;
}

}  // namespace retrain::server
