// The status page at "/": one self-contained HTML file (no build step, no
// external assets) that polls /v1/jobs and /v1/workers every two seconds
// and links each job to its page (job_page.cc). On a server with tokens it
// asks for the client token once and keeps it in the tab's sessionStorage
// (page_parts.h).
#include "absl/strings/str_cat.h"
#include "server/http_gateway.h"
#include "server/page_parts.h"

namespace retrain::server {

const std::string& StatusPageHtml() {
  static const std::string html = absl::StrCat(R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>retrain</title>
<style>)HTML",
                                               PageStyle(), R"HTML(</style>
</head>
<body>
<h1>retrain</h1>
<div id="status">loading&hellip;</div>
<form id="login"><label>Client token: <input id="token" type="password" autocomplete="off"></label>
  <button type="submit">Show jobs</button></form>
<h2>Jobs</h2>
<table id="jobs"><thead><tr><th>Job</th><th>Type</th><th>State</th><th>Phase</th><th>Progress</th>
  <th>Rate</th><th>ETA</th><th>Reason</th></tr></thead><tbody></tbody></table>
<h2>Workers</h2>
<table id="workers"><thead><tr><th>Worker</th><th>Host</th><th>State</th><th>Cores</th>
  <th>Memory free</th><th>GPUs</th><th>Last heartbeat</th></tr></thead><tbody></tbody></table>
<script>)HTML",
                                               PageScript(), R"HTML(
const gib = (b) => (Number(b || 0) / 1073741824).toFixed(1) + " GiB";
function fraction(job) {
  const p = job.progress || {};
  if (Number(p.max_steps) > 0) return [Number(p.step), Number(p.max_steps), "steps"];
  if (Number(p.total) > 0) return [Number(p.done), Number(p.total), p.unit || ""];
  return [0, 0, ""];
}
function eta(seconds) {
  seconds = Math.round(Number(seconds || 0));
  if (!seconds) return "";
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
}
function showJobs(jobs) {
  const body = document.querySelector("#jobs tbody");
  body.replaceChildren();
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.job = job.id;
    const state = short(job.state, "JOB_STATE_");
    const link = document.createElement("a");
    link.href = "/jobs/" + encodeURIComponent(job.id);
    link.textContent = job.id;
    row.insertCell().append(link);
    cell(row, short(job.type, "JOB_TYPE_").toLowerCase().replace("_", " "));
    cell(row, state, "state state-" + state);
    const p = job.progress || {};
    cell(row, p.phase || "");
    const [done, total, unit] = fraction(job);
    const td = row.insertCell();
    td.className = "nowrap";
    if (total > 0) {
      const pct = Math.min(100, 100 * done / total);
      td.innerHTML = '<span class="bar" role="progressbar"><span></span></span> ';
      td.querySelector(".bar").setAttribute("aria-valuenow", pct.toFixed(0));
      td.querySelector(".bar > span").style.width = pct.toFixed(1) + "%";
      td.append(done + " / " + total + " " + unit);
    }
    if (unit === "directories") td.append(", " + Number(p.found || 0) + " files found");
    const rate = Number(p.examples_per_sec || p.rate || 0);
    cell(row, rate ? rate.toFixed(1) + "/s" : "");
    cell(row, eta(p.eta_seconds));
    const history = job.history || [];
    cell(row, job.error || (history.length ? history[history.length - 1].reason : ""), "muted");
  }
}
function showWorkers(workers) {
  const body = document.querySelector("#workers tbody");
  body.replaceChildren();
  for (const w of workers) {
    const row = body.insertRow();
    const r = w.resources || {};
    cell(row, w.id);
    cell(row, w.hostname);
    cell(row, short(w.state, "WORKER_STATE_"));
    cell(row, r.cpu_cores || 0);
    cell(row, gib(r.free_memory_bytes) + " of " + gib(r.memory_bytes));
    cell(row, (r.gpus || []).map((g) => g.name + " (" + gib(g.free_memory_bytes) + " free)").join(", ") || "none");
    cell(row, w.last_heartbeat ? new Date(w.last_heartbeat).toLocaleTimeString() : "");
  }
}
async function refresh() {
  try {
    const [jobs, workers] = await Promise.all([get("/v1/jobs?page_size=200"), get("/v1/workers")]);
    showJobs(jobs.jobs || []);
    showWorkers(workers.workers || []);
    document.getElementById("login").style.display = "none";
    document.getElementById("status").textContent =
        (jobs.jobs || []).length + " jobs, " + (workers.workers || []).length +
        " workers; updated " + new Date().toLocaleTimeString();
  } catch (e) {
    showFailure(e);
  }
}
onLogin(refresh);
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)HTML");
  return html;
}

}  // namespace retrain::server
