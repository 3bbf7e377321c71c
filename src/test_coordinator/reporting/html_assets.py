"""The report page's stylesheet and script, inlined into every report.html.

No fonts, images or scripts are fetched: the page uses the system's fonts, and
its Content-Security-Policy lets only these two blocks (by hash) run.
"""

from __future__ import annotations

STYLE = """
:root {
  --passed: #1a7f37; --failed: #cf222e; --error: #8250df; --skipped: #6e7781;
  --fault: #d1242f; --window: #ffebe9; --healthy: #2da44e; --load: #0969da;
  --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --paper: #ffffff; --shade: #f6f8fa;
}
* { box-sizing: border-box; }
body {
  margin: 0; color: var(--ink); background: var(--paper);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
}
main { max-width: 1280px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 {
  font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre, .mono {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
.meta { color: var(--muted); margin: 0 0 12px; }
.meta span { margin-right: 16px; display: inline-block; overflow-wrap: anywhere; }
.verdict { border-radius: 6px; padding: 14px 18px; margin: 12px 0; color: #fff; }
.verdict .word { font-size: 28px; font-weight: 700; letter-spacing: 0.04em; }
.verdict .reason {
  font-size: 15px; margin-top: 4px; white-space: pre-wrap; overflow-wrap: anywhere; }
.verdict.passed { background: var(--passed); }
.verdict.failed, .verdict.deviated, .verdict.timed-out, .verdict.not-started {
  background: var(--failed); }
.verdict.error { background: var(--error); }
.verdict.interrupted, .verdict.aborted, .verdict.unknown { background: #9a6700; }
.summary { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 8px 0 0; }
.summary div { white-space: nowrap; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td {
  border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left;
  vertical-align: top; }
th { background: var(--shade); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.detail { overflow-wrap: anywhere; white-space: pre-wrap; }
tr.row-failed td, tr.row-error td { background: #fff5f5; }
table.kv { width: auto; margin: 2px 0; }
table.kv td { overflow-wrap: break-word; max-width: 32em; }
table.kv code { white-space: pre-wrap; overflow-wrap: anywhere; }
table.kv th { white-space: nowrap; }
table.kv + table.kv { border-top: 2px solid var(--line); }
section { max-width: 100%; overflow-x: auto; }
table.kv th { background: none; font-weight: 500; color: var(--muted); }
.badge {
  display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px;
  font-weight: 600; color: #fff; }
.badge.passed, .badge.done { background: var(--passed); }
.badge.failed { background: var(--failed); }
.badge.error { background: var(--error); }
.badge.skipped, .badge.other { background: var(--skipped); }
.note { color: var(--muted); font-size: 13px; }
.timeline-box {
  border: 1px solid var(--line); border-radius: 6px; padding: 4px; overflow-x: auto; }
.legend {
  display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 12px; color: var(--muted);
  margin: 6px 2px; }
.swatch {
  display: inline-block; width: 14px; height: 10px; margin-right: 5px; vertical-align: middle;
  border-radius: 2px; }
.swatch.fault { background: var(--fault); }
.swatch.window { background: var(--window); border: 1px solid var(--fault); }
.swatch.restored { background: none; border-left: 2px dashed var(--fault); width: 4px; }
.swatch.outage { background: #fff1c2; border: 1px solid #bf8700; }
.swatch.healthy { background: var(--healthy); border-radius: 50%; width: 10px; }
.swatch.unhealthy { background: var(--failed); width: 10px; }
.swatch.step { background: var(--passed); }
.swatch.load { background: var(--load); }
.swatch.errors { background: var(--failed); }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
.lane-even { fill: #ffffff; }
.lane-odd { fill: var(--shade); }
.lane-label { font-size: 12px; font-weight: 600; fill: var(--ink); }
.lane-line { stroke: var(--line); stroke-width: 1; }
.axis { stroke: var(--muted); stroke-width: 1; }
.tick-label { font-size: 10px; fill: var(--muted); text-anchor: middle; }
.step { stroke: rgba(0, 0, 0, 0.25); stroke-width: 0.5; }
.step.status-passed { fill: #8fd19e; }
.step.status-failed { fill: #ff8182; }
.step.status-error { fill: #c297ff; }
.step.status-skipped, .step.status-other { fill: #d0d7de; }
.step-label { font-size: 10.5px; fill: var(--ink); pointer-events: none; }
.recovery-window { fill: var(--window); stroke: var(--fault); stroke-width: 1; }
.recovery-window.open { fill: #ffcecb; stroke-dasharray: 4 3; }
.recovery-label { font-size: 11px; font-weight: 700; fill: var(--fault); }
.outage-window { fill: #fff1c2; stroke: #bf8700; stroke-width: 1; opacity: 0.9; }
.outage-label { font-size: 11px; font-weight: 600; fill: #7d4e00; }
.recovered { stroke: var(--healthy); stroke-width: 2; }
.restored { stroke: var(--fault); stroke-width: 2; stroke-dasharray: 3 2; }
.fault-mark { fill: var(--fault); }
.fault-line {
  stroke: var(--fault); stroke-width: 1; stroke-dasharray: 3 3; opacity: 0.55;
  pointer-events: none; }
.mark-healthy { fill: var(--healthy); stroke: #fff; stroke-width: 1; }
.mark-unhealthy { stroke: var(--failed); stroke-width: 2.5; fill: none; }
.start-tick { stroke: var(--muted); stroke-width: 2; }
.load-span { fill: var(--load); opacity: 0.5; }
.load-sent { fill: #9ecbff; }
.load-errors { fill: var(--failed); }
.load-window { fill: none; stroke-width: 1.5; }
.load-window.status-passed { stroke: var(--passed); }
.load-window.status-failed { stroke: var(--failed); }
.window-label { font-size: 10px; fill: var(--muted); }
#cursor { stroke: var(--ink); stroke-width: 1; opacity: 0.6; pointer-events: none; }
#cursor-label { font-size: 11px; fill: var(--ink); pointer-events: none; }
pre.log { background: #0d1117; color: #e6edf3; padding: 8px 10px; border-radius: 6px;
  margin: 4px 0 10px; overflow-x: auto; font-size: 12px; line-height: 1.4; }
pre.log .at { color: #8b949e; }
pre.log .inside { background: rgba(248, 81, 73, 0.18); display: inline-block; min-width: 100%; }
pre.log .gap { color: #8b949e; font-style: italic; }
details { margin: 6px 0; }
details.data > summary { color: var(--load); font-size: 13px; }
summary { cursor: pointer; }
.fault-block { border-left: 3px solid var(--fault); padding: 2px 0 2px 12px; margin: 12px 0; }
:target { outline: 2px solid var(--load); outline-offset: 2px; }
"""

SCRIPT = """
(function () {
  "use strict";
  var svg = document.getElementById("timeline");
  if (!svg || !svg.getScreenCTM) { return; }
  var cursor = document.getElementById("cursor");
  var label = document.getElementById("cursor-label");
  var x0 = parseFloat(svg.getAttribute("data-x0"));
  var x1 = parseFloat(svg.getAttribute("data-x1"));
  var endMs = parseFloat(svg.getAttribute("data-end-ms"));
  function hide() {
    cursor.setAttribute("visibility", "hidden");
    label.setAttribute("visibility", "hidden");
  }
  svg.addEventListener("mousemove", function (event) {
    var matrix = svg.getScreenCTM();
    if (!matrix) { return; }
    var point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    var local = point.matrixTransform(matrix.inverse());
    if (local.x < x0 || local.x > x1) { hide(); return; }
    var ms = (local.x - x0) / (x1 - x0) * endMs;
    cursor.setAttribute("x1", local.x);
    cursor.setAttribute("x2", local.x);
    label.setAttribute("x", Math.min(local.x + 4, x1 - 60));
    label.textContent = ms.toFixed(1) + " ms";
    cursor.setAttribute("visibility", "visible");
    label.setAttribute("visibility", "visible");
  });
  svg.addEventListener("mouseleave", hide);
})();
"""
