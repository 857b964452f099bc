// A small operator page at /ui: pipes with their pump state and last run, datasets with counts,
// refreshed every few seconds. Static HTML + fetch() against the same API anyone can call; the
// page itself is public and holds no data: it logs in (POST /api/auth/token), keeps the token in
// sessionStorage and sends it with every call.
#include <sluice/kernel/node.hpp>

#include "api_internal.hpp"

namespace sluice::kernel::api {

namespace {

const char* kPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
 h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:2rem}
 table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}
 .failed{color:#b00020} .completed{color:#1b5e20} .running{color:#0d47a1} small{color:#666}
 button{font-size:.8rem}
</style></head><body>
<h1>Sluice <small id="version"></small></h1>
<form id="login" style="display:none" onsubmit="login(event)">
 <input id="user" placeholder="user" value="admin"> <input id="password" type="password" placeholder="password">
 <button>log in</button> <small id="login-error" class="failed"></small></form>
<h2>Pipes</h2>
<table><thead><tr><th>pipe</th><th>state</th><th>last run</th><th>entities</th><th>changes</th><th>error</th><th></th></tr></thead>
<tbody id="pipes"></tbody></table>
<h2>Datasets</h2>
<table><thead><tr><th>dataset</th><th>entities</th><th>deleted</th><th>versions</th><th>circuit breaker</th></tr></thead>
<tbody id="datasets"></tbody></table>
<p><small>API: <a href="/api/openapi.json">/api/openapi.json</a> · <a href="/metrics">/metrics</a></small></p>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
async function api(path, opts = {}) {
  opts.headers = Object.assign({}, opts.headers, {"Authorization": "Bearer " + (sessionStorage.getItem("sluice-token") || "")});
  const r = await window.fetch(path, opts);
  if (r.status === 401) { document.getElementById("login").style.display = ""; throw new Error("log in first"); }
  return r;
}
async function login(ev) {
  ev.preventDefault();
  const r = await window.fetch("/api/auth/token", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username: document.getElementById("user").value, password: document.getElementById("password").value})});
  const body = await r.json();
  if (!r.ok) { document.getElementById("login-error").textContent = body.detail || body.error; return; }
  sessionStorage.setItem("sluice-token", body.access_token);
  document.getElementById("login").style.display = "none";
  refresh();
}
async function pump(id, op) {
  await api(`/api/pipes/${encodeURIComponent(id)}/pump`, {method: "POST",
    headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "operation=" + op});
  refresh();
}
async function breaker(id, op) {
  const r = await fetch(`/api/datasets/${encodeURIComponent(id)}`, {method: "POST",
    headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "operation=" + op + "-circuit-breaker"});
  if (!r.ok) alert((await r.json()).detail);
  refresh();
}
async function refresh() {
  const status = await (await api("/api/status")).json();
  document.getElementById("version").textContent = status.node_version + " · " + status.storage;
  const pipes = await (await api("/api/pipes")).json();
  const rows = await Promise.all(pipes.map(async p => {
    const r = (await (await api(`/api/pipes/${encodeURIComponent(p._id)}/pump`)).json()).runtime;
    const last = r["last-run"] || {};
    const state = r["is-running"] ? "running" : (last.status || "");
    return `<tr><td>${esc(p._id)}</td><td class="${esc(state)}">${esc(state)}${r["is-disabled"] ? " (disabled)" : ""}</td>
      <td>${last.ended_us ? new Date(last.ended_us / 1000).toLocaleString() : ""}</td>
      <td>${esc(last.entities ?? "")}</td><td>${esc(last.changes ?? "")}</td><td class="failed">${esc(last.error)}</td>
      <td><button onclick="pump('${esc(p._id)}','start')">run</button></td></tr>`;
  }));
  document.getElementById("pipes").innerHTML = rows.join("");
  const datasets = await (await api("/api/datasets")).json();
  document.getElementById("datasets").innerHTML = datasets.map(d => `<tr>
    <td><a href="/api/datasets/${encodeURIComponent(d._id)}/entities?history=false&limit=100">${esc(d._id)}</a></td>
    <td>${esc(d.runtime["count-index-exists"])}</td><td>${esc(d.runtime["count-index-deleted"])}</td>
    <td>${esc(d.runtime["count-log-exists"])}</td>
    <td>${d.runtime["circuit-breaker-tripped"] ? `<span class="failed">tripped: ${esc(d.circuit_breaker.reason)}</span>
      (${esc(d.runtime["count-uncommitted"])} staged,
      <a href="/api/datasets/${encodeURIComponent(d._id)}/entities?uncommitted=true&since=${esc(d.runtime["last-offset"] ?? "")}">see</a>)
      <button onclick="breaker('${esc(d._id)}','commit')">commit</button>
      <button onclick="breaker('${esc(d._id)}','rollback')">roll back</button>` : ""}</td></tr>`).join("");
}
refresh(); setInterval(refresh, 3000);
</script></body></html>
)HTML";

void send_page(HTTPServerResponse& res) {
    const std::string page = kPage;
    res.setStatus(HTTPResponse::HTTP_OK);
    res.setContentType("text/html; charset=utf-8");
    res.setContentLength(static_cast<std::streamsize>(page.size()));
    res.send() << page;
}

}  // namespace

void register_ui_routes(Router& r, Node&) {
    r.add("GET", "/ui", [](Request&, HTTPServerResponse& res) { send_page(res); });
    r.add("GET", "/", [](Request&, HTTPServerResponse& res) {
        res.redirect("/ui");
    });
}

}  // namespace sluice::kernel::api
