#include "server/page_parts.h"

namespace retrain::server {

const char* PageStyle() {
  return R"CSS(
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.4em; margin: 0 0 .2em; }
  h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
  a { color: #1d4ed8; }
  table { border-collapse: collapse; width: 100%; }
  td:first-child, td.nowrap { white-space: nowrap; }
  th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid #ddd; vertical-align: middle; }
  th { background: #f4f4f4; font-weight: 600; }
  .state-SUCCEEDED { color: #15803d; } .state-FAILED { color: #b91c1c; }
  .state-RUNNING { color: #1d4ed8; } .state-CANCELLED { color: #6b7280; } .state-QUEUED { color: #a16207; }
  #status { color: #6b7280; }
  #login { display: none; margin: 1em 0; }
  .muted { color: #6b7280; }
  .bar { width: 12em; height: .9em; background: #eee; border-radius: .45em; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > span { display: block; height: 100%; background: #3b82f6; }
)CSS";
}

const char* PageScript() {
  return R"JS(
"use strict";
const short = (s, prefix) => (s || "").replace(prefix, "");
function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
async function get(path) {
  const token = sessionStorage.getItem("retrain-token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const res = await fetch(path, { headers });
  if (res.status === 401) throw new Error("401");
  if (!res.ok) {
    const error = new Error((await res.json()).message || res.statusText);
    error.answered = true;
    throw error;
  }
  return res.json();
}
function showFailure(e) {
  if (e.message === "401") {
    document.getElementById("login").style.display = "block";
    document.getElementById("status").textContent = "this server needs its client token";
  } else {
    document.getElementById("status").textContent =
        (e.answered ? "the server says: " : "cannot reach the server: ") + e.message;
  }
}
function onLogin(refresh) {
  document.getElementById("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("retrain-token", document.getElementById("token").value.trim());
    refresh();
  });
}
)JS";
}

}  // namespace retrain::server
