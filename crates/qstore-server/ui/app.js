// qstore web view: plain JavaScript and SVG, no framework, no build step (served by the
// qstore binary itself). Every datum comes from the API with the token in an Authorization
// header; the token lives in this tab's sessionStorage, never in a URL. Text from the
// repository is only ever set as textContent (never parsed as HTML).
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const TOKEN_KEY = "qstore-token";
const state = { token: null, repo: null, scope: null, prefix: null, graphOffset: 0, commits: [] };

// ---- small helpers ----------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "title") e.title = v;
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  n = Number(n);
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(2)) + " " + u[i];
}

function when(ms) { return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC"; }

function fmt(x, digits) {
  if (x === null || x === undefined) return "–";
  return Number(x).toPrecision(digits || 6);
}

/// Colour of a phase (radians): the hue wheel, red at 0.
function phaseColour(phase, lightness) {
  const deg = ((phase * 180 / Math.PI) % 360 + 360) % 360;
  return `hsl(${deg.toFixed(1)}, 80%, ${lightness === undefined ? 50 : lightness}%)`;
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = !msg;
}

async function call(path, opts) {
  opts = opts || {};
  const headers = Object.assign({}, opts.headers || {});
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method: opts.method || "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = { error: text }; }
  if (!r.ok) {
    const err = new Error((body && body.error) || r.statusText);
    err.status = r.status;
    throw err;
  }
  return body;
}

function api(route, opts) {
  return call("/v1/repos/" + encodeURIComponent(state.repo) + route, opts);
}

function enc(path) { return path.split("/").map(encodeURIComponent).join("/"); }

function guard(f) {
  return async (...args) => {
    showError("");
    try { await f(...args); } catch (e) {
      if (e.status === 401) { signOut(e.message); return; }
      showError(e.message);
    }
  };
}

function canWrite() { return state.scope === "write" || state.scope === "admin"; }

// ---- signing in ---------------------------------------------------------------------------

async function start() {
  // `qstore ui` puts a one-time login code after '#': exchange it, then drop it from the URL.
  const frag = new URLSearchParams(location.hash.slice(1));
  const code = frag.get("code");
  if (code) {
    history.replaceState(null, "", location.pathname);
    try {
      const r = await call("/ui/session", { method: "POST", headers: { Authorization: "Bearer " + code } });
      sessionStorage.setItem(TOKEN_KEY, r.token);
    } catch (e) {
      showError("login code refused: " + e.message + " (run qstore ui again for a new one)");
    }
  }
  state.token = sessionStorage.getItem(TOKEN_KEY);
  if (!state.token) { showLogin(); return; }
  await openRepositories();
}

function showLogin() {
  $("login").hidden = false;
  $("app").hidden = true;
  $("repo-label").hidden = true;
  $("signout").hidden = true;
  $("who").textContent = "";
}

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showLogin();
  showError(why || "");
}

async function openRepositories() {
  let r;
  try { r = await call("/v1/repos"); } catch (e) { signOut(e.message); return; }
  const sel = clear($("repo"));
  for (const x of r.repositories) sel.append(el("option", { value: x.name }, x.name));
  if (!r.repositories.length) { signOut("this token opens no repository here"); return; }
  $("login").hidden = true;
  $("app").hidden = false;
  $("repo-label").hidden = false;
  $("signout").hidden = false;
  await selectRepository(r.repositories[0].name);
}

async function selectRepository(name) {
  state.repo = name;
  const who = await api("/whoami");
  state.scope = who.scope;
  state.prefix = who.branch_prefix;
  $("who").textContent = `token ${who.token} · ${who.scope}` +
    (who.branch_prefix ? ` (branches ${who.branch_prefix}…)` : "") +
    (who.tls_group ? ` · TLS ${who.tls_group}` : "");
  document.body.dataset.scope = who.scope;
  for (const w of document.querySelectorAll("form.write-control")) w.hidden = !canWrite();
  await loadHistory();
}

// ---- history --------------------------------------------------------------------------------

async function loadHistory() {
  const refs = await api("/refs");
  const list = (ul, kind, entries) => {
    clear(ul);
    for (const [name, id] of Object.entries(entries)) {
      const li = el("li", { "data-ref": `${kind}/${name}` },
        el("a", { href: "#", className: "ref", onclick: (ev) => { ev.preventDefault(); guard(showCommit)(id); } }, name),
        " ", el("code", {}, id.slice(0, 10)));
      if (canWrite()) {
        const del = el("button", { type: "button", className: "write-control small", title: `delete ${kind}/${name}` }, "delete");
        del.onclick = guard(async () => {
          if (!confirm(`Delete ${kind}/${name}?`)) return;
          await api("/refs?name=" + encodeURIComponent(`${kind}/${name}`), { method: "DELETE" });
          await loadHistory();
        });
        li.append(" ", del);
      }
      ul.append(li);
    }
  };
  list($("branches"), "branches", refs.branches);
  list($("tags"), "tags", refs.tags);
  state.graphOffset = 0;
  state.commits = [];
  await loadGraphPage();
}

async function loadGraphPage() {
  const page = await api(`/graph?offset=${state.graphOffset}&limit=50`);
  state.commits = state.commits.concat(page.commits);
  state.graphOffset += page.commits.length;
  $("more").hidden = !page.more;
  drawGraph();
}

/// Lanes: each commit takes the lane that waits for it (or a free one); its first parent
/// inherits the lane, other parents take free lanes.
function layout(commits) {
  const lanes = [];
  const pos = new Map();
  commits.forEach((c, row) => {
    let lane = lanes.indexOf(c.id);
    if (lane < 0) { lane = lanes.indexOf(null); if (lane < 0) { lane = lanes.length; lanes.push(null); } }
    for (let i = 0; i < lanes.length; i++) if (lanes[i] === c.id) lanes[i] = null;
    pos.set(c.id, { row, lane });
    c.parents.forEach((p, k) => {
      if (lanes.includes(p)) return;
      if (k === 0 && lanes[lane] === null) { lanes[lane] = p; return; }
      let free = lanes.indexOf(null);
      if (free < 0) { free = lanes.length; lanes.push(null); }
      lanes[free] = p;
    });
  });
  return { pos, width: Math.max(1, lanes.length) };
}

function drawGraph() {
  const commits = state.commits;
  const { pos, width } = layout(commits);
  const ROW = 28, LANE = 16;
  const box = clear($("graph"));
  const pic = svg("svg", { width: width * LANE + 8, height: commits.length * ROW, class: "lanes" });
  const x = (lane) => 8 + lane * LANE;
  const y = (row) => row * ROW + ROW / 2;
  for (const c of commits) {
    const a = pos.get(c.id);
    for (const p of c.parents) {
      const b = pos.get(p);
      const bx = b ? x(b.lane) : x(a.lane), by = b ? y(b.row) : commits.length * ROW;
      pic.append(svg("path", { d: `M${x(a.lane)},${y(a.row)} C${x(a.lane)},${y(a.row) + ROW / 2} ${bx},${by - ROW / 2} ${bx},${by}`, class: "edge" }));
    }
  }
  for (const c of commits) {
    const a = pos.get(c.id);
    const dot = svg("circle", { cx: x(a.lane), cy: y(a.row), r: 5, class: c.refs.length ? "node head" : "node" });
    dot.append(svg("title", {}, c.id));
    pic.append(dot);
  }
  const ol = el("ol", { className: "commits" });
  for (const c of commits) {
    const li = el("li", { className: "commit", "data-commit": c.id, title: c.id });
    li.append(el("code", {}, c.id.slice(0, 10)), " ");
    for (const r of c.refs) li.append(el("span", { className: r.startsWith("tags/") ? "badge tag" : "badge" }, r.replace(/^(branches|tags)\//, "")), " ");
    li.append(el("span", { className: "message" }, c.message || "(no message)"), " ",
      el("span", { className: "meta" }, `${c.author || "?"} · ${when(c.time_ms)}` +
        (Object.keys(c.metadata).length ? ` · ${Object.keys(c.metadata).length} metadata` : "")));
    li.onclick = () => guard(showCommit)(c.id);
    ol.append(li);
  }
  box.append(pic, ol);
}

async function showCommit(id) {
  const c = state.commits.find((x) => x.id === id);
  const box = clear($("commit-detail"));
  const states = await api("/states?ref=" + id);
  box.append(el("h2", {}, "Commit ", el("code", {}, id.slice(0, 12))));
  if (c) {
    box.append(el("p", { className: "message" }, c.message), el("p", { className: "meta" }, `${c.author} · ${when(c.time_ms)}`));
    const meta = Object.entries(c.metadata);
    if (meta.length) {
      const t = el("table", { className: "kv" });
      for (const [k, v] of meta) t.append(el("tr", {}, el("th", {}, k), el("td", {}, v.length > 80 ? v.slice(0, 80) + "…" : v)));
      box.append(el("h3", {}, "Metadata"), t);
    }
  }
  box.append(el("h3", {}, `States (${states.length})`));
  const ul = el("ul", { className: "states" });
  const paths = clear($("paths"));
  for (const s of states) {
    paths.append(el("option", { value: s.path }));
    const a = el("a", { href: "#", "data-path": s.path }, s.path);
    a.onclick = (ev) => { ev.preventDefault(); guard(openInspector)(id, s.path); };
    ul.append(el("li", {}, a, " ", el("span", { className: "meta" },
      `${s.entry.kind} · ${s.entry.qubits} qubits · ${s.entry.encoding}` + (s.entry.lossy ? ` · lossy F=${fmt(s.entry.lossy.fidelity, 8)}` : ""))));
  }
  box.append(ul);
  if (c && c.parents.length) {
    const b = el("button", { type: "button" }, "Diff against parent");
    b.onclick = () => guard(openDiff)(c.parents[0], id);
    box.append(b);
  }
  if (canWrite()) {
    $("ref-target").value = id;
  }
}

// ---- inspector ---------------------------------------------------------------------------

function openInspector(ref, path) {
  $("inspect-ref").value = ref;
  $("inspect-path").value = path;
  selectTab("inspect");
  return inspect();
}

async function inspect() {
  const ref = $("inspect-ref").value.trim() || "main";
  const path = $("inspect-path").value.trim();
  const k = $("inspect-k").value || 16;
  const box = clear($("inspector"));
  if (!path) return;
  const v = await api(`/inspect/${enc(path)}?ref=${encodeURIComponent(ref)}&k=${k}`);
  const e = v.entry;
  const info = el("table", { className: "kv", id: "state-info" });
  const row = (k, val) => info.append(el("tr", {}, el("th", {}, k), el("td", { "data-key": k }, val)));
  row("path", v.path);
  row("commit", v.commit.slice(0, 12));
  row("kind", v.kind);
  row("dtype", v.dtype);
  if (v.kind !== "array") row("qubits", e.qubits);
  row("shape", JSON.stringify(e.shape));
  row("encoding", v.encoding + (v.sparse ? ` (${e.nnz} non-zero)` : ""));
  row("norm (stored)", fmt(e.norm, 12));
  if (v.norm !== undefined) row("norm (measured)", fmt(v.norm, 12));
  if (v.entropy_bits !== undefined) row("entropy", fmt(v.entropy_bits, 6) + " bits");
  row("logical bytes", bytes(v.size.logical_bytes));
  row("stored bytes", `${bytes(v.size.stored_bytes)} (${(Number(v.size.logical_bytes) / Math.max(1, v.size.stored_bytes)).toFixed(2)}x smaller)`);
  row("chunks", `${v.size.chunks} (${v.size.zero_chunks} zero, ${v.size.repeated_chunks} repeated)`);
  if (e.lossy) row("lossy", `${e.lossy.mode}, fidelity ${fmt(e.lossy.fidelity, 12)} to the exact state`);
  for (const [tk, tv] of Object.entries(e.tags || {})) row("tag " + tk, tv);
  box.append(el("h2", {}, v.path), info);

  if (v.top) box.append(el("h3", {}, `Top ${v.top.length} basis states`), topChart(v.top, v.kind === "statevector"),
    el("p", { className: "hint", id: "qubit-order" }, "Qubit order: " + v.qubit_order + "."));
  if (v.amplitudes) box.append(el("h3", {}, "Amplitudes (colour = phase, opacity = magnitude)"), amplitudeStrip(v.amplitudes));
  if (v.marginals) box.append(el("h3", {}, "Per-qubit marginals and Bloch vectors"), qubitTable(v.marginals, v.bloch));
  if (v.heatmap) box.append(el("h3", {}, `Density matrix (${v.heatmap.side}×${v.heatmap.side}` +
    (v.heatmap.block > 1 ? `, each cell the mean of ${v.heatmap.block}×${v.heatmap.block} elements` : "") + ")"), heatmap(v.heatmap));
  const un = Object.entries(v.unavailable || {});
  if (un.length) {
    const ul = el("ul", { className: "hint" });
    for (const [what, why] of un) ul.append(el("li", {}, `${what}: ${why}`));
    box.append(el("h3", {}, "Not shown"), ul);
  }
}

function topChart(top, withPhase) {
  const W = 48, H = 160, PAD = 44, TOP = 20;
  const max = Math.max(...top.map((t) => t.probability), 1e-300);
  const labelH = 10 + 7 * Math.max(...top.map((t) => t.bits.length));
  const pic = svg("svg", { width: PAD + top.length * W + 10, height: TOP + H + labelH + 20, class: "bars", id: "topk" });
  pic.append(svg("line", { x1: PAD, y1: TOP, x2: PAD, y2: TOP + H, class: "axis" }));
  pic.append(svg("text", { x: PAD - 4, y: TOP + 4, class: "tick", "text-anchor": "end" }, fmt(max, 3)));
  pic.append(svg("text", { x: PAD - 4, y: TOP + H, class: "tick", "text-anchor": "end" }, "0"));
  top.forEach((t, i) => {
    const h = (t.probability / max) * H;
    const x = PAD + 6 + i * W;
    const bar = svg("rect", {
      x, y: TOP + H - h, width: W - 12, height: Math.max(h, 0.5), class: "bar",
      fill: withPhase && t.phase !== undefined ? phaseColour(t.phase) : "#4a7bd0",
      "data-bits": t.bits, "data-probability": t.probability,
    });
    bar.append(svg("title", {}, `|${t.bits}⟩ p=${t.probability}` + (t.phase !== undefined ? ` phase=${fmt(t.phase, 4)} rad` : "")));
    pic.append(bar);
    pic.append(svg("text", { x: x + (W - 12) / 2, y: TOP - 4 + H - h, class: "value", "text-anchor": "middle" }, t.probability.toFixed(4)));
    const lx = x + (W - 12) / 2, ly = TOP + H + 12;
    pic.append(svg("text", { x: lx, y: ly, class: "label", "text-anchor": "end", transform: `rotate(-60 ${lx} ${ly})` }, t.bits));
  });
  if (withPhase) {
    const wrap = el("div", { className: "chart" }, pic, phaseLegend());
    return wrap;
  }
  return pic;
}

function phaseLegend() {
  const pic = svg("svg", { width: 180, height: 34, class: "legend" });
  for (let i = 0; i < 36; i++) {
    const ph = -Math.PI + (i / 36) * 2 * Math.PI;
    pic.append(svg("rect", { x: 10 + i * 4, y: 4, width: 4, height: 12, fill: phaseColour(ph) }));
  }
  pic.append(svg("text", { x: 10, y: 30, class: "tick" }, "−π"));
  pic.append(svg("text", { x: 82, y: 30, class: "tick", "text-anchor": "middle" }, "phase 0"));
  pic.append(svg("text", { x: 154, y: 30, class: "tick", "text-anchor": "end" }, "π"));
  return pic;
}

function amplitudeStrip(amps) {
  const n = amps.length, CELL = Math.max(2, Math.min(16, Math.floor(900 / n)));
  const perRow = Math.floor(900 / CELL);
  const rows = Math.ceil(n / perRow);
  const max = Math.max(...amps.map((a) => Math.hypot(a[0], a[1])), 1e-300);
  const pic = svg("svg", { width: Math.min(n, perRow) * CELL, height: rows * CELL, class: "amplitudes" });
  amps.forEach((a, i) => {
    const m = Math.hypot(a[0], a[1]);
    if (m === 0) return;
    const r = svg("rect", { x: (i % perRow) * CELL, y: Math.floor(i / perRow) * CELL, width: CELL, height: CELL,
      fill: phaseColour(Math.atan2(a[1], a[0])), "fill-opacity": (0.15 + 0.85 * m / max).toFixed(3) });
    r.append(svg("title", {}, `${i}: ${fmt(a[0], 4)} ${a[1] < 0 ? "−" : "+"} ${fmt(Math.abs(a[1]), 4)}i`));
    pic.append(r);
  });
  return pic;
}

function qubitTable(marginals, bloch) {
  const t = el("table", { className: "qubits", id: "qubits" });
  t.append(el("tr", {}, el("th", {}, "qubit"), el("th", {}, "P(1)"), el("th", {}, ""), el("th", {}, "Bloch x, y, z"), el("th", {}, "x–z plane"), el("th", {}, "|r|")));
  marginals.forEach((p, q) => {
    const bar = svg("svg", { width: 120, height: 12 });
    bar.append(svg("rect", { x: 0, y: 1, width: 120, height: 10, class: "track" }));
    bar.append(svg("rect", { x: 0, y: 1, width: (120 * p).toFixed(2), height: 10, class: "fill" }));
    const b = bloch ? bloch[q] : null;
    let disc = "–", r = "–", xyz = "–";
    if (b) {
      disc = svg("svg", { width: 36, height: 36, class: "bloch" });
      disc.append(svg("circle", { cx: 18, cy: 18, r: 16, class: "sphere" }));
      disc.append(svg("line", { x1: 18, y1: 18, x2: (18 + 16 * b[0]).toFixed(2), y2: (18 - 16 * b[2]).toFixed(2), class: "vector" }));
      disc.append(svg("circle", { cx: (18 + 16 * b[0]).toFixed(2), cy: (18 - 16 * b[2]).toFixed(2), r: 2.5, fill: phaseColour(Math.atan2(b[1], b[0])) }));
      xyz = b.map((c) => c.toFixed(3)).join(", ");
      r = Math.hypot(b[0], b[1], b[2]).toFixed(3);
    }
    t.append(el("tr", { "data-qubit": q }, el("td", {}, q), el("td", {}, p.toFixed(4)), el("td", {}, bar), el("td", {}, xyz), el("td", {}, disc), el("td", {}, r)));
  });
  return t;
}

function heatmap(h) {
  const CELL = Math.max(4, Math.floor(384 / h.side));
  const max = Math.max(...h.magnitude, 1e-300);
  const pic = svg("svg", { width: h.side * CELL, height: h.side * CELL, class: "heatmap", id: "heatmap" });
  for (let i = 0; i < h.side; i++) {
    for (let j = 0; j < h.side; j++) {
      const m = h.magnitude[i * h.side + j];
      const r = svg("rect", { x: j * CELL, y: i * CELL, width: CELL, height: CELL,
        fill: m === 0 ? "#ffffff" : phaseColour(h.phase[i * h.side + j], 92 - 52 * (m / max)) });
      r.append(svg("title", {}, `[${i},${j}] |ρ|=${fmt(m, 4)} phase=${fmt(h.phase[i * h.side + j], 3)}`));
      pic.append(r);
    }
  }
  return el("div", { className: "chart" }, pic, el("p", { className: "hint" }, "darker = larger |ρᵢⱼ|, hue = phase"), phaseLegend());
}

// ---- diff -----------------------------------------------------------------------------------

function openDiff(from, to) {
  $("diff-from").value = from;
  $("diff-to").value = to;
  selectTab("diff");
  return diff();
}

async function diff() {
  const from = $("diff-from").value.trim(), to = $("diff-to").value.trim();
  const box = clear($("diff"));
  if (!from || !to) return;
  const d = await api(`/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
  if (!d.length) { box.append(el("p", {}, "No differences.")); return; }
  const t = el("table", { className: "diff", id: "diff-table" });
  t.append(el("tr", {}, el("th", {}, "change"), el("th", {}, "path"), el("th", {}, "chunks changed"), el("th", {}, "fidelity between versions")));
  for (const x of d) {
    const link = el("a", { href: "#" }, x.path);
    link.onclick = (ev) => { ev.preventDefault(); guard(openInspector)(x.change === "removed" ? from : to, x.path); };
    t.append(el("tr", { className: "diff-row " + x.change, "data-path": x.path, "data-change": x.change },
      el("td", {}, x.change + (x.tags_only ? " (tags only)" : "")), el("td", {}, link),
      el("td", {}, x.change === "changed" ? `${x.chunks_changed} / ${x.chunks_total}` : "–"),
      el("td", {}, x.change === "changed" ? fmt(x.fidelity, 10) : "–")));
  }
  box.append(t);
}

// ---- checkpoint series ----------------------------------------------------------------------

async function series() {
  const ref = $("series-ref").value.trim() || "main", path = $("series-path").value.trim();
  const fin = $("series-final").value.trim();
  const box = clear($("series"));
  if (!path) return;
  const s = await api(`/series/${enc(path)}?ref=${encodeURIComponent(ref)}` + (fin ? `&final=${encodeURIComponent(fin)}` : ""));
  const pts = s.points;
  if (!pts.length) { box.append(el("p", {}, `No versions of ${path} on ${ref}.`)); return; }
  const W = 640, H = 240, L = 50, R = 50, T = 14, B = 34;
  const maxH = Math.max(1e-9, ...pts.map((p) => p.entropy_bits));
  const px = (i) => L + (pts.length === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (pts.length - 1));
  const pyF = (f) => T + (1 - f) * (H - T - B);
  const pyH = (h) => T + (1 - h / maxH) * (H - T - B);
  const pic = svg("svg", { width: W, height: H, class: "series", id: "series-chart" });
  pic.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  pic.append(svg("line", { x1: W - R, y1: T, x2: W - R, y2: H - B, class: "axis" }));
  pic.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  pic.append(svg("text", { x: L - 4, y: T + 4, class: "tick fidelity", "text-anchor": "end" }, "1"));
  pic.append(svg("text", { x: L - 4, y: H - B, class: "tick fidelity", "text-anchor": "end" }, "0"));
  pic.append(svg("text", { x: W - R + 4, y: T + 4, class: "tick entropy" }, maxH.toFixed(2)));
  pic.append(svg("text", { x: W - R + 4, y: H - B, class: "tick entropy" }, "0"));
  pic.append(svg("text", { x: W / 2, y: H - 8, class: "tick", "text-anchor": "middle" }, "checkpoint (oldest → newest)"));
  const line = (f, cls) => svg("polyline", { points: pts.map((p, i) => `${px(i).toFixed(1)},${f(p).toFixed(1)}`).join(" "), class: "line " + cls });
  const fid = pts.filter((p) => p.fidelity_to_final !== null);
  if (fid.length === pts.length) pic.append(line((p) => pyF(p.fidelity_to_final), "fidelity"));
  pic.append(line((p) => pyH(p.entropy_bits), "entropy"));
  pts.forEach((p, i) => {
    if (p.fidelity_to_final !== null) {
      const c = svg("circle", { cx: px(i), cy: pyF(p.fidelity_to_final), r: 3, class: "point fidelity", "data-fidelity": p.fidelity_to_final });
      c.append(svg("title", {}, `${p.message}: fidelity ${p.fidelity_to_final}`));
      pic.append(c);
    }
    const c = svg("circle", { cx: px(i), cy: pyH(p.entropy_bits), r: 3, class: "point entropy", "data-entropy": p.entropy_bits });
    c.append(svg("title", {}, `${p.message}: entropy ${p.entropy_bits} bits`));
    pic.append(c);
  });
  box.append(el("p", { className: "legend-text" }, el("span", { className: "key fidelity" }, "■"), ` fidelity to ${s.final} (left axis)  `,
    el("span", { className: "key entropy" }, "■"), " entropy of the distribution, bits (right axis)"), pic);
  const t = el("table", { className: "diff" });
  t.append(el("tr", {}, el("th", {}, "#"), el("th", {}, "commit"), el("th", {}, "message"), el("th", {}, "fidelity to final"), el("th", {}, "entropy (bits)"), el("th", {}, "time")));
  pts.forEach((p, i) => t.append(el("tr", { className: "series-row" }, el("td", {}, i), el("td", {}, el("code", {}, p.commit.slice(0, 10))),
    el("td", {}, p.message), el("td", {}, fmt(p.fidelity_to_final, 10)), el("td", {}, fmt(p.entropy_bits, 6)), el("td", {}, when(p.time_ms)))));
  box.append(t);
}

// ---- storage -------------------------------------------------------------------------------

async function storage() {
  const s = await api("/storage");
  const st = s.stats;
  const box = clear($("storage"));
  const t = el("table", { className: "kv", id: "storage-table" });
  const row = (k, v) => t.append(el("tr", {}, el("th", {}, k), el("td", {}, v)));
  row("format version", st.format_version);
  row("repository id", st.repository_id);
  row("branches / tags / commits", `${st.branches} / ${st.tags} / ${st.commits}`);
  row("state versions", st.state_versions);
  row("logical bytes", bytes(st.logical_bytes));
  row("unique chunk bytes", bytes(st.unique_chunk_bytes));
  row("stored chunk bytes", bytes(st.stored_chunk_bytes));
  row("dedup ratio", st.dedup_ratio.toFixed(2) + "x");
  row("compression ratio", st.compression_ratio.toFixed(2) + "x");
  row("overall", st.overall_ratio.toFixed(2) + "x");
  row("packs", `${st.packs} (${bytes(st.pack_bytes)})`);
  row("files", st.files === null ? "– (object storage)" : st.files);
  row("objects", `${st.objects} (${st.chunk_objects} chunks)`);
  if (st.damaged_packs) row("damaged packs", st.damaged_packs);
  box.append(el("h2", {}, "Storage"), t, el("h2", {}, "Scratch spaces"));
  if (!s.scratch.length) { box.append(el("p", {}, "No scratch spaces.")); return; }
  const l = el("table", { className: "diff", id: "scratch-table" });
  l.append(el("tr", {}, el("th", {}, "id"), el("th", {}, "pid"), el("th", {}, "created"), el("th", {}, "lease expires"), el("th", {}, "live")));
  for (const x of s.scratch) l.append(el("tr", {}, el("td", {}, x.id), el("td", {}, x.pid), el("td", {}, when(x.created_ms)), el("td", {}, when(x.expires_ms)), el("td", {}, x.live ? "yes" : "no (reclaimable)")));
  box.append(l);
}

// ---- tabs and wiring ------------------------------------------------------------------------

function selectTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== "tab-" + name;
  if (name === "storage") guard(storage)();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => selectTab(b.dataset.tab);
  $("login-form").onsubmit = guard(async (ev) => {
    ev.preventDefault();
    const t = $("login-token").value.trim();
    $("login-token").value = "";
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    state.token = t;
    await openRepositories();
  });
  $("signout").onclick = () => signOut("");
  $("repo").onchange = guard(async () => selectRepository($("repo").value));
  $("more").onclick = guard(loadGraphPage);
  $("inspect-form").onsubmit = (ev) => { ev.preventDefault(); guard(inspect)(); };
  $("diff-form").onsubmit = (ev) => { ev.preventDefault(); guard(diff)(); };
  $("series-form").onsubmit = (ev) => { ev.preventDefault(); guard(series)(); };
  $("ref-form").onsubmit = guard(async (ev) => {
    ev.preventDefault();
    const name = `${$("ref-kind").value}/${$("ref-name").value.trim()}`;
    await api("/refs", { method: "POST", body: { name, target: $("ref-target").value.trim() || "main" } });
    $("ref-name").value = "";
    await loadHistory();
  });
  guard(start)();
});
