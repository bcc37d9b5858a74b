/* MedVision prediction viewer (written for lmms-eval-medvision; no libraries, no network).
 * Data arrive as scripts: data/table.js calls MV.table(...), data/detail-NNNN.js calls MV.detail(n, ...).
 * Every record string is shown through textContent, never parsed as markup. */
"use strict";

var MV = (function () {
  var COLORS = { gt: "#00ff00", pred: "#ff00ff", minor: "#00ffff", point: "#ffff00" };
  var PAGE = 50;
  var MAX_PEERS = 12;
  var METRICS = ["iou", "f1", "precision", "recall", "mae_coord", "mae", "mre"];
  var FILTERS = [
    ["model", "m"], ["family", "f"], ["task", "t"], ["dataset", "d"], ["label", "l"], ["parse", "ok"], ["excluded", "x"]
  ];
  var state = {
    rows: [], meta: {}, shown: [], page: 0, sort: null, asc: true, keys: null, current: null,
    chunks: {}, waiting: {}, bySample: {}
  };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "class") { node.className = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
      });
    }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function $(id) { return document.getElementById(id); }

  function fmt(v) {
    if (v === null || v === undefined) { return "-"; }
    if (typeof v === "number") { return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(4).replace(/0+$/, "").replace(/\.$/, ""); }
    if (typeof v === "boolean") { return v ? "yes" : "no"; }
    if (Array.isArray(v)) { return "[" + v.map(fmt).join(", ") + "]"; }
    return String(v);
  }

  function value(row, key) {
    if (key === "parse") { return row.ok ? "parsed" : "failed"; }
    if (key === "excluded") { return row.x ? "yes" : "no"; }
    var name = null;
    FILTERS.forEach(function (f) { if (f[0] === key) { name = f[1]; } });
    var v = row[name];
    return v === null || v === undefined ? "(none)" : String(v);
  }

  function fillFilters() {
    FILTERS.forEach(function (f) {
      var select = $("f-" + f[0]);
      var seen = {};
      if (f[0] === "parse") { seen = { parsed: true, failed: true }; }
      if (f[0] === "excluded") { seen = { no: true, yes: true }; }
      state.rows.forEach(function (r) { seen[value(r, f[0])] = true; });
      select.textContent = "";
      select.appendChild(el("option", { value: "" }, "all"));
      Object.keys(seen).sort().forEach(function (v) { select.appendChild(el("option", { value: v }, v)); });
      select.addEventListener("change", function () { state.page = 0; apply(); });
    });
  }

  function readHash() {
    var hash = window.location.hash.replace(/^#/, "");
    if (!hash) { return; }
    hash.split("&").forEach(function (part) {
      var i = part.indexOf("=");
      if (i < 0) { return; }
      var k = decodeURIComponent(part.slice(0, i)), v = decodeURIComponent(part.slice(i + 1));
      if (k === "keys") {
        state.keys = {};
        v.split("|").forEach(function (key) { if (key) { state.keys[key] = true; } });
        $("f-keys").hidden = false;
        $("f-keys-text").textContent = v.split("|").join(", ");
      } else if (k === "sample") {
        state.current = v;
      } else {
        var select = $("f-" + k);
        if (select) {
          var ok = Array.prototype.some.call(select.options, function (o) { return o.value === v; });
          if (ok) { select.value = v; }
        }
      }
    });
  }

  function apply() {
    var wanted = {};
    FILTERS.forEach(function (f) { wanted[f[0]] = $("f-" + f[0]).value; });
    state.shown = state.rows.filter(function (r) {
      for (var i = 0; i < FILTERS.length; i++) {
        var name = FILTERS[i][0];
        if (wanted[name] && value(r, name) !== wanted[name]) { return false; }
      }
      return !state.keys || (r.k !== null && state.keys[r.k] === true);
    });
    if (state.sort) {
      var key = state.sort, sign = state.asc ? 1 : -1;
      state.shown.sort(function (a, b) {
        var va = sortValue(a, key), vb = sortValue(b, key);
        if (va === null && vb === null) { return 0; }
        if (va === null) { return 1; }
        if (vb === null) { return -1; }
        return va < vb ? -sign : va > vb ? sign : 0;
      });
    }
    var count = $("count");
    count.dataset.shown = String(state.shown.length);
    count.dataset.total = String(state.rows.length);
    count.textContent = "Showing " + state.shown.length + " of " + state.rows.length + " samples (" +
      (state.meta.images || 0) + " images pre-rendered, selection: " + state.meta.selection + ")";
    var pages = Math.max(1, Math.ceil(state.shown.length / PAGE));
    if (state.page >= pages) { state.page = pages - 1; }
    drawTable();
  }

  function sortValue(row, key) {
    if (METRICS.indexOf(key) >= 0) {
      var v = row.mt ? row.mt[key] : null;
      return typeof v === "number" ? v : null;
    }
    if (key === "row" || key === "slice") { return key === "row" ? row.r : row.s; }
    return value(row, key);
  }

  var COLUMNS = [["model", "model"], ["family", "family"], ["task", "subtask"], ["label", "label"], ["row", "row"],
    ["parse", "parse"], ["excluded", "excl."]]
    .concat(METRICS.map(function (m) { return [m, m]; }));

  function drawHead() {
    var head = $("head");
    head.textContent = "";
    COLUMNS.forEach(function (c) {
      var th = el("th", { "data-key": c[0] }, c[1]);
      if (state.sort === c[0]) { th.className = state.asc ? "sorted-asc" : "sorted-desc"; }
      th.addEventListener("click", function () {
        if (state.sort === c[0]) { state.asc = !state.asc; } else { state.sort = c[0]; state.asc = true; }
        drawHead();
        apply();
      });
      head.appendChild(th);
    });
  }

  function drawTable() {
    var body = $("rows");
    body.textContent = "";
    var start = state.page * PAGE;
    state.shown.slice(start, start + PAGE).forEach(function (r) {
      var tr = el("tr", { "data-sid": r.i });
      if (!r.ok) { tr.className = "failed"; }
      if (r.i === state.current) { tr.className += " selected"; }
      [r.m, r.f, r.t.replace(/^medvision_/, ""), r.l === null ? "" : r.l, r.r].forEach(function (v) {
        tr.appendChild(el("td", { title: String(v) }, v));
      });
      tr.appendChild(el("td", { "class": "parse" }, r.ok ? "parsed" : "failed"));
      tr.appendChild(el("td", null, r.x ? "yes" : ""));
      METRICS.forEach(function (m) { tr.appendChild(el("td", { "class": "num" }, r.mt && m in r.mt ? fmt(r.mt[m]) : "")); });
      tr.addEventListener("click", function () { select(r.i); });
      body.appendChild(tr);
    });
    var pages = Math.max(1, Math.ceil(state.shown.length / PAGE));
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
  }

  function rowOf(sid) {
    for (var i = 0; i < state.rows.length; i++) { if (state.rows[i].i === sid) { return state.rows[i]; } }
    return null;
  }

  function loadChunk(n, done) {
    if (state.chunks[n]) { done(); return; }
    if (state.waiting[n]) { state.waiting[n].push(done); return; }
    state.waiting[n] = [done];
    var s = document.createElement("script");
    s.src = "data/detail-" + ("000" + n).slice(-4) + ".js";
    s.onerror = function () { $("detail").textContent = "cannot load " + s.src; };
    document.body.appendChild(s);
  }

  function select(sid) {
    var row = rowOf(sid);
    if (!row) { return; }
    state.current = sid;
    var index = state.shown.indexOf(row);
    if (index >= 0) { state.page = Math.floor(index / PAGE); }
    drawTable();
    var peers = $("side-by-side").checked ? (state.bySample[row.sk] || [row]) : [row];
    peers = [row].concat(peers.filter(function (p) { return p.i !== row.i; }).slice(0, MAX_PEERS - 1));
    var needed = {};
    peers.forEach(function (p) { needed[p.c] = true; });
    var chunks = Object.keys(needed);
    var left = chunks.length;
    chunks.forEach(function (n) {
      loadChunk(Number(n), function () {
        left -= 1;
        if (left === 0 && state.current === sid) { drawDetail(row, peers); }
      });
    });
  }

  function move(step) {
    if (!state.shown.length) { return; }
    var row = state.current ? rowOf(state.current) : null;
    var index = row ? state.shown.indexOf(row) : -1;
    var next = Math.min(state.shown.length - 1, Math.max(0, index + step));
    select(state.shown[next].i);
  }

  function kv(pairs) {
    var table = el("table", { "class": "kv" });
    pairs.forEach(function (p) {
      var tr = el("tr");
      tr.appendChild(el("td", null, p[0]));
      var td = el("td", null, fmt(p[1]));
      if (p[2]) { td.className = p[2]; }
      tr.appendChild(td);
      table.appendChild(tr);
    });
    return table;
  }

  function drawDetail(row, peers) {
    var box = $("detail");
    box.textContent = "";
    var first = state.chunks[row.c][row.i];
    box.appendChild(el("h2", null, first.task + " \u2022 row " + first.row));
    box.appendChild(kv([["dataset", first.dataset], ["config", first.config], ["label", first.label_name || first.metric_key],
      ["slice", "dim " + first.slice_dim + ", index " + first.slice_idx], ["image", first.image_file_rel]]));
    var cards = el("div", { "class": "cards" });
    var ordered = [row].concat(peers.filter(function (p) { return p.i !== row.i; }));
    ordered.forEach(function (p) { cards.appendChild(card(state.chunks[p.c][p.i], p.i === row.i)); });
    box.appendChild(cards);
    var all = (state.bySample[row.sk] || []).length;
    if (all > ordered.length) {
      box.appendChild(el("p", { "class": "hint" }, (all - ordered.length) + " more model(s) answered this sample; " +
        "filter by model to see them"));
    }
  }

  function unitOf(d) {
    if (d.family === "detection") { return ""; }
    if (d.family === "ad" && d.metric_type === "angle") { return " deg"; }
    return " mm";
  }

  function card(d, current) {
    var node = el("div", { "class": current ? "card current" : "card", "data-sid": d.sid });
    node.appendChild(el("h3", null, d.model + (d.pretrained ? " (" + d.pretrained + ")" : "")));
    node.appendChild(stage(d));
    node.appendChild(legend(d));
    var pairs = [];
    if (d.family === "tl") {
      pairs.push(["GT major / minor", fmt(d.target) + " mm"]);
      pairs.push(["predicted", d.parsed ? fmt(d.parsed) + " mm" : "-"]);
    } else if (d.family === "ad") {
      pairs.push(["GT " + (d.metric_type || ""), fmt(d.target) + unitOf(d)]);
      pairs.push(["predicted", d.parsed ? fmt(d.parsed) + unitOf(d) : "-"]);
    } else {
      pairs.push(["GT box", fmt(d.target)]);
      pairs.push(["predicted box", d.parsed ? fmt(d.parsed) : "-"]);
    }
    pairs.push(["parse", d.success ? "parsed" : "failed: " + d.failure, d.success ? "ok" : "fail"]);
    Object.keys(d.metrics || {}).forEach(function (m) { pairs.push([m, d.metrics[m]]); });
    if (d.excluded) { pairs.push(["excluded", d.exclusion_reason || "yes", "fail"]); }
    if (d.truncated) { pairs.push(["truncated", "hit max_new_tokens", "fail"]); }
    if (d.generation_error) { pairs.push(["generation error", d.generation_error, "fail"]); }
    if (d.geometry) { pairs.push(["canvas (H, W)", d.geometry.canvas]); pairs.push(["geometry", d.geometry.rule_string || d.geometry.rule]); }
    pairs.push(["source", d.source]);
    node.appendChild(kv(pairs));
    node.appendChild(el("h4", null, "system prompt"));
    node.appendChild(el("pre", { "class": "prompt-system" }, d.system || "(none)"));
    node.appendChild(el("h4", null, "user prompt"));
    node.appendChild(el("pre", { "class": "prompt-user" }, d.prompt === null ? "" : d.prompt));
    node.appendChild(el("div", { "class": "hint prompt-source" }, d.prompt_source));
    node.appendChild(el("h4", null, "response (raw)"));
    var response = el("pre", { "class": "response" }, d.response);
    if (d.response.length > 600) {
      var details = el("details", { "class": "cot" });
      details.appendChild(el("summary", null, d.response.length + " characters (long response; click to expand)"));
      details.appendChild(response);
      node.appendChild(el("pre", { "class": "response-tail" }, "\u2026" + d.response.slice(-300)));
      node.appendChild(details);
    } else {
      node.appendChild(response);
    }
    return node;
  }

  function legend(d) {
    var box = el("div", { "class": "legend" });
    function item(color, text) {
      var span = el("span");
      var sw = el("span", { "class": "swatch" });
      sw.style.background = color;
      span.appendChild(sw);
      span.appendChild(document.createTextNode(text));
      box.appendChild(span);
    }
    var o = d.overlay || {};
    if (d.family === "detection") {
      item(COLORS.gt, "GT box (inside edge)");
      item(COLORS.pred, "predicted box (outside edge)");
      box.appendChild(el("span", null, "IoU " + fmt(d.metrics ? d.metrics.iou : null)));
    } else if (d.family === "tl") {
      item(COLORS.gt, "GT major axis");
      item(COLORS.minor, "GT minor axis");
    } else {
      item(COLORS.gt, "GT " + (d.metric_type || "measurement"));
      item(COLORS.point, "GT landmarks");
    }
    if (o.note) { box.appendChild(el("span", { "class": "fail" }, o.note)); }
    return box;
  }

  function stage(d) {
    var o = d.overlay || {};
    var w = o.frame ? o.frame[0] : 64, h = o.frame ? o.frame[1] : 64;
    var zoom = 480 / Math.max(w, h);
    if (zoom >= 1) { zoom = Math.floor(zoom); }
    var wrap = el("div", { "class": "stage" });
    var canvas = el("canvas", { "class": "overlay", width: String(Math.round(w * zoom)), height: String(Math.round(h * zoom)),
      "data-zoom": String(zoom) });
    wrap.appendChild(canvas);
    var note = el("div", { "class": "note" });
    wrap.appendChild(note);
    var ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    var src = d.image;
    if (!src && window.location.protocol.indexOf("http") === 0) { src = "render/" + d.sid + ".png"; }
    if (src) {
      var img = new Image();
      img.onload = function () {
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
        shapes(ctx, o, zoom);
        canvas.setAttribute("data-ready", "image");
      };
      img.onerror = function () {
        note.textContent = d.image_note || ("image unavailable: " + d.image_file_rel);
        shapes(ctx, o, zoom);
        canvas.setAttribute("data-ready", "no-image");
      };
      img.src = src;
    } else {
      note.textContent = d.image_note || "image unavailable";
      shapes(ctx, o, zoom);
      canvas.setAttribute("data-ready", "no-image");
    }
    return wrap;
  }

  function shapes(ctx, o, z) {
    ctx.lineWidth = 2;
    if (o.gt_box) { // GT: the 2 px just inside its outline
      var g = o.gt_box;
      ctx.strokeStyle = COLORS.gt;
      ctx.strokeRect(g[0] * z + 1, g[1] * z + 1, (g[2] - g[0]) * z - 2, (g[3] - g[1]) * z - 2);
    }
    if (o.pred_box) { // prediction: the 2 px just outside its outline, so an exact answer shows both
      var p = o.pred_box;
      ctx.strokeStyle = COLORS.pred;
      ctx.strokeRect(p[0] * z - 1, p[1] * z - 1, (p[2] - p[0]) * z + 2, (p[3] - p[1]) * z + 2);
    }
    if (o.points) {
      (o.lines || []).forEach(function (line) {
        var a = o.points[line[0]], b = o.points[line[1]];
        if (!a || !b) { return; }
        ctx.strokeStyle = line[2] === "minor" ? COLORS.minor : COLORS.gt;
        ctx.beginPath();
        ctx.moveTo(a[0] * z, a[1] * z);
        ctx.lineTo(b[0] * z, b[1] * z);
        ctx.stroke();
      });
      Object.keys(o.points).forEach(function (name) {
        var q = o.points[name];
        ctx.fillStyle = COLORS.point;
        ctx.beginPath();
        ctx.arc(q[0] * z, q[1] * z, 3, 0, 2 * Math.PI);
        ctx.fill();
        ctx.font = "11px sans-serif";
        ctx.fillText(name, q[0] * z + 5, q[1] * z - 4);
      });
    }
  }

  function table(payload) {
    state.rows = payload.rows;
    state.meta = payload.meta || {};
    state.rows.forEach(function (r) {
      (state.bySample[r.sk] = state.bySample[r.sk] || []).push(r);
    });
    var warn = $("warnings");
    (state.meta.warnings || []).forEach(function (w) { warn.appendChild(el("li", null, w)); });
    fillFilters();
    drawHead();
    readHash();
    apply();
    if (state.current) { select(state.current); }
  }

  function detail(n, items) {
    state.chunks[n] = items;
    var callbacks = state.waiting[n] || [];
    delete state.waiting[n];
    callbacks.forEach(function (f) { f(); });
  }

  function init() {
    $("prev-page").addEventListener("click", function () { if (state.page > 0) { state.page -= 1; drawTable(); } });
    $("next-page").addEventListener("click", function () {
      if ((state.page + 1) * PAGE < state.shown.length) { state.page += 1; drawTable(); }
    });
    $("f-keys-clear").addEventListener("click", function () { state.keys = null; $("f-keys").hidden = true; apply(); });
    $("side-by-side").addEventListener("change", function () { if (state.current) { select(state.current); } });
    document.addEventListener("keydown", function (e) {
      if (e.target && /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) { return; }
      if (e.key === "j" || e.key === "ArrowDown") { move(1); e.preventDefault(); }
      if (e.key === "k" || e.key === "ArrowUp") { move(-1); e.preventDefault(); }
    });
  }

  document.addEventListener("DOMContentLoaded", init);
  return { table: table, detail: detail, state: state };
})();
