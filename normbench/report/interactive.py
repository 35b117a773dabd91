"""The interactive part of report.html: curves as inline SVG, drawn by a small inline script.

No network and no library: the data is a JSON block in the page and the script draws small
multiples (one panel per learning rate), hover read-outs, legend toggles, a per-seed
throughput strip that shows timing noise, and sortable tables. Everything stays one file.
"""

from __future__ import annotations

import html
import json
from typing import Any

from normbench.analysis.aggregate import NOISY_NOTE
from normbench.analysis.query import LR_KEY, name_of
from normbench.analysis.stats import CI_MIN_SEEDS
from normbench.report.palette import PALETTE, Palette

CURVE_METRICS = (
    ("test_acc", "test accuracy"),
    ("test_loss", "test loss"),
    ("train_loss", "train loss"),
    ("train_probe_acc", "train accuracy (probe)"),
)


def _band_label(n: int) -> str:
    return (
        f"95 % CI of the mean ({n} seeds)"
        if n >= CI_MIN_SEEDS
        else f"min–max of {n} seed{'s' if n != 1 else ''} (too few for a CI)"
    )


def _round(values: list[Any] | None) -> list[Any]:
    # 4 significant digits are more than a chart shows and keep the page small.
    return [None if v is None else float(f"{v:.4g}") for v in values or []]


def chart_data(summary: dict[str, Any]) -> dict[str, Any]:
    """Panels (one per lr_mult, or one), series (the other swept keys) and their curves."""
    swept = list(summary.get("swept") or [])
    panel_key = LR_KEY if LR_KEY in swept else None
    series_keys = [k for k in swept if k != panel_key]
    series: dict[str, dict[str, Any]] = {}
    panels: dict[str, dict[str, Any]] = {}
    palette = Palette(summary)  # the plots' colours and dashes: a variant looks the same in both
    for v in summary["variants"]:
        labels = v.get("labels") or {}
        key = name_of(labels, series_keys) if series_keys else "all"
        if key not in series:
            series[key] = {
                "key": key,
                "color": palette.colour(labels),
                "dash": palette.svg_dash(labels),
            }
        ptitle = f"{panel_key} = {labels.get(panel_key)}" if panel_key else "all variants"
        panel = panels.setdefault(ptitle, {"title": ptitle, "lines": []})
        curves = v.get("curves") or {}
        steps = curves.get("step") or []
        line: dict[str, Any] = {
            "series": key,
            "variant": v["variant_name"],
            "step": steps,
            "status": v.get("counts") or {},
        }
        for metric, _ in CURVE_METRICS:
            c = curves.get(metric)
            if not isinstance(c, dict) or not c.get("mean"):
                continue
            n = min((x for x in c.get("n") or [0] if x), default=0)
            line[metric] = {
                "mean": _round(c["mean"]),
                "lo": _round(c.get("ci_low")),
                "hi": _round(c.get("ci_high")),
                "band": _band_label(n),
            }
        panel["lines"].append(line)
    metrics = [
        {"key": m, "label": label}
        for m, label in CURVE_METRICS
        if any(m in line for p in panels.values() for line in p["lines"])
    ]
    return {
        "panels": list(panels.values()),
        "series": list(series.values()),
        "metrics": metrics,
        "throughput": throughput_data(summary, series_keys, series),
    }


def throughput_data(
    summary: dict[str, Any], series_keys: list[str], series: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per variant: every seed's samples/s, so the spread (timing noise) is visible."""
    rows = []
    for v in summary["variants"]:
        s = (v.get("metrics") or {}).get("samples_per_sec") or {}
        values = [x for x in s.get("values") or [] if x is not None]
        if not values:
            continue
        key = name_of(v.get("labels") or {}, series_keys) if series_keys else "all"
        rows.append(
            {
                "variant": v["variant_name"],
                "series": key,
                "color": series.get(key, {}).get("color", PALETTE[0]),
                "values": [round(x, 1) for x in values],
                "noisy": bool(v.get("timing_noisy")),
            }
        )
    return rows


CSS = """
.nb-controls { margin: 6px 0 10px; display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.nb-controls button, .nb-legend button { font: inherit; font-size: 12.5px; border: 1px solid
  var(--line); background: #fff; border-radius: 4px; padding: 2px 8px; cursor: pointer; }
.nb-controls button[aria-pressed="true"] { background: var(--accent); color: #fff; }
.nb-legend { display: flex; flex-wrap: wrap; gap: 6px; margin: 4px 0 8px; }
.nb-legend button[aria-pressed="false"] { opacity: .4; text-decoration: line-through; }
.nb-swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 5px; vertical-align: -1px; }
.nb-panels { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr));
  gap: 12px; }
.nb-panel { border: 1px solid var(--line); border-radius: 4px; padding: 4px; position: relative; }
.nb-panel h4 { margin: 2px 6px; font-size: 13px; }
.nb-panel svg { width: 100%; height: auto; display: block; }
.nb-tip { position: absolute; pointer-events: none; background: rgba(255,255,255,.96);
  border: 1px solid var(--line); border-radius: 4px; padding: 4px 6px; font-size: 12px;
  white-space: nowrap; display: none; z-index: 2; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
.nb-hidden { display: none; }
#nb-throughput svg { width: 100%; max-width: 860px; height: auto; display: block; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " ▲"; }
table.sortable th[aria-sort="descending"]::after { content: " ▼"; }
"""

JS = (
    r"""
(function () {
  'use strict';
  var blob = document.getElementById('nb-data');
  var data = blob ? JSON.parse(blob.textContent) : {metrics: [], series: [], panels: [], """
    r"""throughput: []};
  var NS = 'http://www.w3.org/2000/svg';
  var hidden = {};
  var metric = data.metrics.length ? data.metrics[0].key : null;
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  // Every string from the data reaches the page through these (text nodes, style properties):
  // a variant named '<img onerror=...>' is shown as those characters, never parsed as markup.
  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }
  function text(parent, value, tag) {
    var node = tag ? document.createElement(tag) : document.createTextNode(String(value));
    if (tag) { node.textContent = String(value); }
    parent.appendChild(node);
    return node;
  }
  function swatch(color) {
    var s = document.createElement('span'); s.className = 'nb-swatch';
    s.style.background = color;
    return s;
  }
  function fmt(x) {
    if (x === null || x === undefined) { return '—'; }
    var a = Math.abs(x);
    return a >= 1000 ? Math.round(x).toLocaleString('en') : a >= 1 ? x.toFixed(3) : x.toFixed(4);
  }
  function colorOf(key) {
    for (var i = 0; i < data.series.length; i++) {
      if (data.series[i].key === key) { return data.series[i].color; }
    }
    return '#333';
  }
  function dashOf(key) {
    for (var i = 0; i < data.series.length; i++) {
      if (data.series[i].key === key) { return data.series[i].dash || ''; }
    }
    return '';
  }
  function extent(values) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (v !== null && isFinite(v)) { lo = Math.min(lo, v); hi = """
    r"""Math.max(hi, v); } });
    if (lo === Infinity) { return [0, 1]; }
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    return [lo, hi];
  }
  function ticks(lo, hi, n) {
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    [1, 2, 5, 10].some(function (m) { if ((hi - lo) / (step * m) <= n) { step *= m; return true; """
    r"""} return false; });
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) { """
    r"""out.push(+t.toPrecision(6)); }
    return out;
  }
  var W = 420, H = 250, L = 52, R = 18, T = 10, B = 32;
  function drawPanel(panel, box) {
    clear(box);
    var h = document.createElement('h4'); h.textContent = panel.title; box.appendChild(h);
    var tip = document.createElement('div'); tip.className = 'nb-tip'; box.appendChild(tip);
    var svg = el('svg', {viewBox: '0 0 ' + W + ' ' + H, role: 'img',
                         'aria-label': panel.title + ': ' + metric}, box);
    var lines = panel.lines.filter(function (l) { return l[metric]; });
    var xs = [], ys = [];
    lines.forEach(function (l) {
      xs = xs.concat(l.step);
      if (!hidden[l.series]) { ys = ys.concat(l[metric].lo, l[metric].hi, l[metric].mean); }
    });
    var xr = extent(xs), yr = extent(ys);
    function X(v) { return L + (v - xr[0]) / (xr[1] - xr[0]) * (W - L - R); }
    function Y(v) { return T + (1 - (v - yr[0]) / (yr[1] - yr[0])) * (H - T - B); }
    ticks(yr[0], yr[1], 5).forEach(function (t) {
      el('line', {x1: L, x2: W - R, y1: Y(t), y2: Y(t), stroke: '#eee'}, svg);
      el('text', {x: L - 4, y: Y(t) + 4, 'text-anchor': 'end', 'font-size': 10, fill: """
    r"""'#57606a'}, svg).textContent = String(t);
    });
    ticks(xr[0], xr[1], 5).forEach(function (t) {
      el('text', {x: X(t), y: H - B + 14, 'text-anchor': 'middle', 'font-size': 10, fill: """
    r"""'#57606a'}, svg).textContent = t.toLocaleString('en');
    });
    el('text', {x: (L + W - R) / 2, y: H - 4, 'text-anchor': 'middle', 'font-size': 11, fill: """
    r"""'#57606a'}, svg).textContent = 'step';
    el('rect', {x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none', stroke: """
    r"""'#d0d7de'}, svg);
    lines.forEach(function (l) {
      var m = l[metric], c = colorOf(l.series);
      var g = el('g', {'data-series': l.series, 'class': hidden[l.series] ? 'nb-series """
    r"""nb-hidden' : 'nb-series'}, svg);
      var up = [], down = [], path = [];
      l.step.forEach(function (s, i) {
        if (m.hi[i] !== null && m.lo[i] !== null && m.hi[i] !== undefined) { up.push(X(s) + ',' """
    r"""+ Y(m.hi[i])); down.unshift(X(s) + ',' + Y(m.lo[i])); }
        if (m.mean[i] !== null && isFinite(m.mean[i])) { path.push((path.length ? 'L' : 'M') + """
    r"""X(s).toFixed(1) + ',' + Y(m.mean[i]).toFixed(1)); }
      });
      if (up.length) { el('polygon', {points: up.concat(down).join(' '), fill: c, """
    r"""'fill-opacity': 0.14, stroke: 'none'}, g); }
      var line = el('path', {d: path.join(''), fill: 'none', stroke: c, 'stroke-width': 1.8}, """
    r"""g);
      if (dashOf(l.series)) { line.setAttribute('stroke-dasharray', dashOf(l.series)); }
    });
    var guide = el('line', {y1: T, y2: H - B, stroke: '#888', 'stroke-dasharray': '3,3', """
    r"""visibility: 'hidden'}, svg);
    svg.addEventListener('mousemove', function (ev) {
      var r = svg.getBoundingClientRect();
      var x = (ev.clientX - r.left) / r.width * W;
      var step = xr[0] + (x - L) / (W - L - R) * (xr[1] - xr[0]);
      var rows = [], at = null;
      lines.forEach(function (l) {
        if (hidden[l.series]) { return; }
        var best = 0;
        l.step.forEach(function (s, i) { if (Math.abs(s - step) < Math.abs(l.step[best] - step)) """
    r"""{ best = i; } });
        at = l.step[best];
        var m = l[metric];
        rows.push({series: l.series, mean: m.mean[best], lo: m.lo[best], hi: m.hi[best]});
      });
      if (at === null) { tip.style.display = 'none'; return; }
      guide.setAttribute('x1', X(at)); guide.setAttribute('x2', X(at)); """
    r"""guide.setAttribute('visibility', 'visible');
      var band = (lines[0][metric] || {}).band || '';
      clear(tip);
      text(tip, 'step ' + at.toLocaleString('en'), 'b');
      text(tip, ' · mean [' + band + ']');
      rows.forEach(function (r) {
        tip.appendChild(document.createElement('br'));
        tip.appendChild(swatch(colorOf(r.series)));
        text(tip, r.series + ': ');
        text(tip, fmt(r.mean), 'b');
        text(tip, ' [' + fmt(r.lo) + ', ' + fmt(r.hi) + ']');
      });
      tip.style.display = 'block';
      var bx = box.getBoundingClientRect();
      tip.style.left = Math.min(ev.clientX - bx.left + 12, bx.width - tip.offsetWidth - 4) + 'px';
      tip.style.top = (ev.clientY - bx.top + 12) + 'px';
    });
    svg.addEventListener('mouseleave', function () { tip.style.display = 'none'; """
    r"""guide.setAttribute('visibility', 'hidden'); });
  }
  function bandNote() {
    var labels = {};
    data.panels.forEach(function (p) { p.lines.forEach(function (l) { if (l[metric]) { """
    r"""labels[l[metric].band] = 1; } }); });
    return 'Line: mean over seeds. Band: ' + Object.keys(labels).join('; ') + '.';
  }
  function drawAll() {
    var root = document.getElementById('nb-panels');
    clear(root);
    data.panels.forEach(function (p) {
      var box = document.createElement('div'); box.className = 'nb-panel'; """
    r"""root.appendChild(box); drawPanel(p, box);
    });
    document.getElementById('nb-band-note').textContent = bandNote();
    drawThroughput();
  }
  function legend() {
    var root = document.getElementById('nb-legend');
    data.series.forEach(function (s) {
      var b = document.createElement('button');
      b.type = 'button'; b.setAttribute('aria-pressed', 'true'); b.setAttribute('data-series', """
    r"""s.key);
      b.appendChild(swatch(s.color));
      text(b, s.key);
      b.title = 'click to hide or show ' + s.key;
      b.addEventListener('click', function () {
        hidden[s.key] = !hidden[s.key];
        b.setAttribute('aria-pressed', hidden[s.key] ? 'false' : 'true');
        drawAll();
      });
      root.appendChild(b);
    });
  }
  function controls() {
    var root = document.getElementById('nb-metric');
    data.metrics.forEach(function (m) {
      var b = document.createElement('button');
      b.type = 'button'; b.textContent = m.label; b.setAttribute('data-metric', m.key);
      b.setAttribute('aria-pressed', m.key === metric ? 'true' : 'false');
      b.addEventListener('click', function () {
        metric = m.key;
        Array.prototype.forEach.call(root.querySelectorAll('button'), function (x) {
          x.setAttribute('aria-pressed', x === b ? 'true' : 'false');
        });
        drawAll();
      });
      root.appendChild(b);
    });
  }
  function drawThroughput() {
    var root = document.getElementById('nb-throughput');
    if (!root) { return; }
    clear(root);
    var rows = data.throughput.filter(function (r) { return !hidden[r.series]; });
    if (!rows.length) { return; }
    var rowH = 18, w = 760, left = 300, h = rows.length * rowH + 34;
    var svg = el('svg', {viewBox: '0 0 ' + w + ' ' + h, role: 'img', 'aria-label': 'samples per """
    r"""second, each seed'}, root);
    var all = [];
    rows.forEach(function (r) { all = all.concat(r.values); });
    var xr = extent(all);
    var pad = (xr[1] - xr[0]) * 0.05; xr = [xr[0] - pad, xr[1] + pad];
    function X(v) { return left + (v - xr[0]) / (xr[1] - xr[0]) * (w - left - 16); }
    ticks(xr[0], xr[1], 6).forEach(function (t) {
      el('line', {x1: X(t), x2: X(t), y1: 4, y2: h - 26, stroke: '#eee'}, svg);
      el('text', {x: X(t), y: h - 12, 'text-anchor': 'middle', 'font-size': 10, fill: """
    r"""'#57606a'}, svg).textContent = t.toLocaleString('en');
    });
    el('text', {x: w - 16, y: h - 1, 'text-anchor': 'end', 'font-size': 10, fill: '#57606a'}, """
    r"""svg).textContent = 'samples/s (not from 0)';
    rows.forEach(function (r, i) {
      var y = 12 + i * rowH;
      el('text', {x: left - 8, y: y + 4, 'text-anchor': 'end', 'font-size': 11}, """
    r"""svg).textContent = r.variant + (r.noisy ? ' (noisy)' : '');
      var lo = Math.min.apply(null, r.values), hi = Math.max.apply(null, r.values);
      el('line', {x1: X(lo), x2: X(hi), y1: y, y2: y, stroke: r.color, 'stroke-width': 2, """
    r"""'stroke-opacity': 0.5}, svg);
      r.values.forEach(function (v, k) {
        var c = el('circle', {cx: X(v), cy: y, r: 4, fill: r.color, 'fill-opacity': 0.8}, svg);
        el('title', {}, c).textContent = r.variant + ', seed #' + (k + 1) + ': ' + """
    r"""Math.round(v).toLocaleString('en') + ' samples/s';
      });
    });
  }
  function sortable() {
    Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
      var heads = table.tHead ? table.tHead.rows[0].cells : [];
      Array.prototype.forEach.call(heads, function (th, col) {
        th.title = 'click to sort';
        th.addEventListener('click', function () {
          var asc = th.getAttribute('aria-sort') !== 'ascending';
          Array.prototype.forEach.call(heads, function (x) { x.removeAttribute('aria-sort'); });
          th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
          var body = table.tBodies[0];
          var rows = Array.prototype.slice.call(body.rows);
          function key(row) {
            var text = (row.cells[col] || {}).textContent || '';
            var m = text.replace(/,/g, '').match(/^\s*[<>]?\s*(-?\d+(\.\d+)?([eE][-+]?\d+)?)/);
            return m ? [0, parseFloat(m[1])] : [text === '—' || text === 'not reached' ? 2 : 1, """
    r"""text];
          }
          rows.sort(function (a, b) {
            var ka = key(a), kb = key(b);
            if (ka[0] !== kb[0]) { return ka[0] - kb[0]; }
            var c = ka[1] < kb[1] ? -1 : ka[1] > kb[1] ? 1 : 0;
            return asc ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  }
  if (metric) { controls(); legend(); drawAll(); }
  sortable();
})();
"""
)


def script_json(data: Any) -> str:
    """``data`` as JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` are written
    as ``\\u`` escapes, so no value can close the element or open a comment (the JSON reads
    back the same)."""
    text = json.dumps(data, separators=(",", ":"))  # ensure_ascii: U+2028 is escaped too
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_html(summary: dict[str, Any]) -> str:
    """The interactive figure's markup, its data block and the script (empty without curves)."""
    data = chart_data(summary)
    if not data["metrics"]:
        return ""
    blob = script_json(data)
    e = html.escape
    lr = LR_KEY in (summary.get("swept") or [])
    intro = (
        "One panel per learning-rate multiplier" if lr else "Every variant"
    ) + "; hover a panel for the values at a step, click a legend entry to hide or show it."
    throughput = ""
    if data["throughput"]:
        throughput = (
            '<h3>Throughput, seed by seed</h3><div id="nb-throughput"></div>'
            '<p class="note">Each dot is one seed\'s samples/s (a line joins its range): '
            "the spread is the timing noise of this machine, so small differences "
            "between variants may not be real. " + e(NOISY_NOTE) + ".</p>"
        )
    return (
        f'<p>{e(intro)}</p><div class="nb-controls" id="nb-metric"></div>'
        '<div class="nb-legend" id="nb-legend"></div><div class="nb-panels" id="nb-panels">'
        '</div><p class="note" id="nb-band-note"></p>'
        + throughput
        + f'<script type="application/json" id="nb-data">{blob}</script>'
    )


def script_html() -> str:
    """The page's one script; placed last in <body> so every table exists when it runs."""
    return f"<script>{JS}</script>"


__all__ = ["CSS", "chart_data", "figure_html", "script_html", "script_json"]
