"""The report page: one HTML file with its styles, script and data inside, that opens from disk
with no server and no internet. The data are the cards as JSON; the script draws them, grouped
by top class, and filters and sorts them. The filter is kept in the address (``#species=roe_deer
&review=1&sort=low``), so a view can be bookmarked or sent. Thumbnails are files beside the page,
loaded lazily, so that the page stays light at 10,000 files.
"""

from __future__ import annotations

import html
import json
from typing import Any, Sequence

CARD_CLASSES = 3  # classes shown per card


def render_page(title: str, runs: Sequence[dict[str, Any]], cards: Sequence[dict[str, Any]], failures: Sequence[dict[str, Any]], thumbs: str) -> str:
    """The page. ``runs``: what made the results (shown in the header); ``cards``: one per file
    that was read (see :func:`kifaru.report.card`); ``failures``: one per file that was not;
    ``thumbs``: the thumbnails' folder, relative to the page."""
    data = {"title": title, "runs": list(runs), "cards": list(cards), "failures": list(failures), "thumbs": thumbs}
    # "</" inside a script element would end it: JSON allows the escaped form.
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return _TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
:root { --ink: #1d2327; --muted: #5f6b73; --line: #d9dee2; --paper: #f6f7f8; --flag: #b3261e; --accent: #2f6f4f; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--paper); }
header { background: #fff; border-bottom: 1px solid var(--line); padding: 16px 24px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.runs { color: var(--muted); margin: 0; padding: 0; list-style: none; }
main { padding: 0 24px 48px; }
.summary { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid var(--line); }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
#counts tr[data-label] { cursor: pointer; }
#counts tr[data-label]:hover { background: #eef3f0; }
.controls { position: sticky; top: 0; z-index: 2; background: var(--paper); padding: 12px 0; display: flex; flex-wrap: wrap; gap: 16px; align-items: center; border-bottom: 1px solid var(--line); }
.controls label { display: flex; gap: 6px; align-items: center; }
#shown { color: var(--muted); }
.group h2 .n { color: var(--muted); font-weight: normal; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
/* Cards out of view are not laid out or painted: 10,000 of them stay quick to scroll and filter. */
.group { content-visibility: auto; contain-intrinsic-size: auto 2000px; }
.card.review { border-color: var(--flag); box-shadow: 0 0 0 1px var(--flag); }
.card .pic { display: block; width: 100%; aspect-ratio: 16 / 9; object-fit: contain; background: #222; }
.card .nopic { display: flex; align-items: center; justify-content: center; aspect-ratio: 16 / 9; background: #eee; color: var(--muted); padding: 8px; text-align: center; }
.card .body { padding: 8px 10px; }
.card .file { font-weight: 600; word-break: break-all; }
.card ol { margin: 4px 0; padding-left: 20px; }
.card .meta { color: var(--muted); }
.card .flag { color: var(--flag); }
.bar { display: inline-block; height: 6px; background: var(--accent); vertical-align: middle; margin-left: 6px; border-radius: 3px; }
[hidden] { display: none !important; }
</style>
</head>
<body>
<header><h1 id="title"></h1><ul class="runs" id="runs"></ul></header>
<main>
<div class="summary">
  <div><h2>Files per class</h2><table id="counts"><thead><tr><th>Class</th><th>Files</th></tr></thead><tbody></tbody></table></div>
  <div><h2>To review</h2><p id="review-summary"></p></div>
</div>
<div class="controls">
  <label>Class <select id="species"><option value="">all</option></select></label>
  <label><input type="checkbox" id="review"> only files to review</label>
  <label>Sort <select id="sort"><option value="high">most confident first</option><option value="low">least confident first</option><option value="name">by file name</option></select></label>
  <span id="shown"></span>
</div>
<div id="gallery"></div>
<section id="failures-section"><h2>Files that could not be read <span id="failure-count"></span></h2>
<table id="failures"><thead><tr><th>File</th><th>Stage</th><th>Reason</th></tr></thead><tbody></tbody></table></section>
</main>
<script type="application/json" id="kifaru-data">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("kifaru-data").textContent);
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const pct = (p) => (p === null || p === undefined) ? "" : (100 * p).toFixed(1) + "%";
const seconds = (s) => s.toFixed(1) + " s";

$("title").textContent = data.title;
for (const run of data.runs) {
  const li = document.createElement("li");
  li.textContent = run.text;
  $("runs").appendChild(li);
}

const labels = [...new Set(data.cards.map((c) => c.label))].sort((a, b) => {
  const count = (l) => data.cards.filter((c) => c.label === l).length;
  return count(b) - count(a) || a.localeCompare(b);
});
const counts = {};
for (const c of data.cards) counts[c.label] = (counts[c.label] || 0) + 1;
const countRows = labels.map((l) => `<tr data-label="${esc(l)}"><td>${esc(l)}</td><td class="n">${counts[l]}</td></tr>`);
if (data.failures.length) countRows.push(`<tr><td>could not be read</td><td class="n">${data.failures.length}</td></tr>`);
$("counts").tBodies[0].innerHTML = countRows.join("");
$("species").insertAdjacentHTML("beforeend", labels.map((l) => `<option value="${esc(l)}">${esc(l)} (${counts[l]})</option>`).join(""));
const flagged = data.cards.filter((c) => c.review.length).length;
$("review-summary").textContent = flagged
  ? `${flagged} of ${data.cards.length} files: low confidence, or the detector and the classifier disagree.`
  : `None of the ${data.cards.length} files.`;

function cardHtml(c) {
  const pic = c.thumb
    ? `<img class="pic" data-src="${esc(data.thumbs + "/" + c.thumb)}" alt="${esc(c.file)}">`
    : `<div class="nopic">${esc(c.nopic || "no picture")}</div>`;
  const classes = c.classes.map(([name, p]) => `<li>${esc(name)} ${pct(p)}<span class="bar" style="width:${Math.round(60 * p)}px"></span></li>`).join("");
  const meta = [];
  if (c.detector !== null) meta.push(`detector ${c.detector.toFixed(2)}`);
  if (c.seen) meta.push(`animal seen ${c.seen.map((s) => seconds(s[0]) + "–" + seconds(s[1]) + (s[2] ? ` (${esc(s[2])})` : "")).join(", ")}`);
  if (c.taken) meta.push(`taken ${esc(c.taken)}`);
  const flags = c.review.map((r) => `<div class="flag">${esc(r)}</div>`).join("");
  const notes = c.notes.map((n) => `<div class="meta">${esc(n)}</div>`).join("");
  return `<article class="card${c.review.length ? " review" : ""}" data-label="${esc(c.label)}" data-file="${esc(c.file)}">${pic}
<div class="body"><div class="file">${esc(c.file)}</div>${classes ? `<ol>${classes}</ol>` : ""}<div class="meta">${meta.join(" · ")}</div>${flags}${notes}</div></article>`;
}

function state() {
  const params = new URLSearchParams(location.hash.slice(1));
  return {species: params.get("species") || "", review: params.get("review") === "1", sort: params.get("sort") || "high"};
}

function setState(s) {
  const params = new URLSearchParams();
  if (s.species) params.set("species", s.species);
  if (s.review) params.set("review", "1");
  if (s.sort !== "high") params.set("sort", s.sort);
  const hash = params.toString();
  if (hash !== location.hash.slice(1)) history.replaceState(null, "", hash ? "#" + hash : location.pathname);
  render();
}

function ordered(cards, sort) {
  const byName = (a, b) => a.file.localeCompare(b.file);
  const p = (c) => (c.probability === null ? c.detector ?? -1 : c.probability);
  if (sort === "name") return cards.slice().sort(byName);
  const sign = sort === "low" ? 1 : -1;
  return cards.slice().sort((a, b) => sign * (p(a) - p(b)) || byName(a, b));
}

// Pictures are fetched as they come near the window (not all 10,000 at once), by the page itself
// rather than the browser's loading="lazy", whose distance and support vary by browser.
const pictures = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    entry.target.src = entry.target.dataset.src;
    pictures.unobserve(entry.target);
  }
}, {rootMargin: "800px 0px"});

function render() {
  const s = state();
  $("species").value = labels.includes(s.species) ? s.species : "";
  $("review").checked = s.review;
  $("sort").value = s.sort;
  const chosen = data.cards.filter((c) => (!s.species || c.label === s.species) && (!s.review || c.review.length));
  const parts = [];
  for (const label of labels) {
    const group = ordered(chosen.filter((c) => c.label === label), s.sort);
    if (!group.length) continue;
    parts.push(`<section class="group" data-label="${esc(label)}"><h2>${esc(label)} <span class="n">${group.length}</span></h2><div class="cards">${group.map(cardHtml).join("")}</div></section>`);
  }
  $("gallery").innerHTML = parts.join("") || "<p>No file matches.</p>";
  for (const img of $("gallery").querySelectorAll("img[data-src]")) pictures.observe(img);
  $("shown").textContent = `${chosen.length} of ${data.cards.length} files shown`;
  document.body.dataset.shown = String(chosen.length);
}

$("species").addEventListener("change", (e) => setState({...state(), species: e.target.value}));
$("review").addEventListener("change", (e) => setState({...state(), review: e.target.checked}));
$("sort").addEventListener("change", (e) => setState({...state(), sort: e.target.value}));
$("counts").addEventListener("click", (e) => {
  const row = e.target.closest("tr[data-label]");
  if (row) setState({...state(), species: row.dataset.label});
});
window.addEventListener("hashchange", render);
// Which pictures loaded (a test, or a person wondering about a blank card, can read it off the page).
document.addEventListener("load", (e) => { if (e.target.tagName === "IMG") e.target.dataset.loaded = "1"; }, true);
document.addEventListener("error", (e) => { if (e.target.tagName === "IMG") e.target.dataset.failed = "1"; }, true);

$("failure-count").textContent = `(${data.failures.length})`;
$("failures-section").hidden = !data.failures.length;
$("failures").tBodies[0].innerHTML = data.failures.map((f) => `<tr><td>${esc(f.file)}</td><td>${esc(f.stage)}</td><td>${esc(f.reason)}</td></tr>`).join("");
const started = performance.now();
render();
document.body.dataset.renderMs = String(Math.round(performance.now() - started));
document.body.dataset.ready = "1";
</script>
</body>
</html>
"""
