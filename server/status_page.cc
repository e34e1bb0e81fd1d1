// The status page at "/": one self-contained HTML file (no build step, no
// external assets) that polls /v1/jobs and /v1/workers every two seconds.
// On a server with tokens it asks for the client token once and keeps it
// in the tab's sessionStorage.
#include "server/http_gateway.h"

namespace retrain::server {

const std::string& StatusPageHtml() {
  static const std::string html = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>retrain</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
  table { border-collapse: collapse; width: 100%; }
  td:first-child, td.nowrap { white-space: nowrap; }
  th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; vertical-align: middle; }
  th { background: #f4f4f4; font-weight: 600; }
  .bar { width: 12em; height: .9em; background: #eee; border-radius: .45em; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > span { display: block; height: 100%; background: #3b82f6; }
  .state-SUCCEEDED { color: #15803d; } .state-FAILED { color: #b91c1c; }
  .state-RUNNING { color: #1d4ed8; } .state-CANCELLED { color: #6b7280; } .state-QUEUED { color: #a16207; }
  #status { color: #6b7280; }
  #login { display: none; margin: 1em 0; }
  .muted { color: #6b7280; }
</style>
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
<script>
"use strict";
const short = (s, prefix) => (s || "").replace(prefix, "");
const gib = (b) => (Number(b || 0) / 1073741824).toFixed(1) + " GiB";
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
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
    cell(row, job.id);
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
async function get(path) {
  const token = sessionStorage.getItem("retrain-token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const res = await fetch(path, { headers });
  if (res.status === 401) throw new Error("401");
  if (!res.ok) throw new Error((await res.json()).message || res.statusText);
  return res.json();
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
    if (e.message === "401") {
      document.getElementById("login").style.display = "block";
      document.getElementById("status").textContent = "this server needs its client token";
    } else {
      document.getElementById("status").textContent = "cannot reach the server: " + e.message;
    }
  }
}
document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("retrain-token", document.getElementById("token").value.trim());
  refresh();
});
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)HTML";
  return html;
}

}  // namespace retrain::server
