// fer-edge serve page: video from /stream.mjpg, faces from /events, the rest from /stats.json.
// No library, no build step. The page's state is mirrored on <body> for tests:
// data-faces (face cards shown), data-chart-points (timeline points drawn),
// data-events (face events received), data-video ("on" once a frame is shown),
// data-source (the source's state).
"use strict";

const Q = document.body.dataset.query || "";           // "?token=..." when one is needed
const COLORS = ["#e6194b", "#3cb44b", "#b15cd6", "#ffd21f", "#4a7bf0", "#f58231", "#a9a9a9",
                "#46f0f0", "#f032e6", "#bcf60c"];
const $ = (id) => document.getElementById(id);
let labels = [];
let faces = new Map();        // face_id -> {label, probs: [..], frame}
let events = 0;
let timeline = [];
let bucketS = 2;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderFaces() {
  const box = $("faces");
  box.replaceChildren();
  const ids = [...faces.keys()].sort((a, b) => a - b);
  for (const id of ids) {
    const f = faces.get(id);
    const card = el("div", "face");
    card.dataset.faceId = id;
    const head = el("div", "head");
    head.append(el("span", "", `#${id} ${f.label || "…"}`));
    if (f.probs) head.append(el("span", "dim", `${Math.round(100 * Math.max(...f.probs))} %`));
    card.append(head);
    (f.probs || []).forEach((p, k) => {
      const row = el("div", labels[k] === f.label ? "bar top" : "bar");
      const track = el("div", "track");
      const fill = el("div", "fill");
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      fill.style.background = COLORS[k % COLORS.length];
      track.append(fill);
      row.append(el("span", "", labels[k] || `class ${k}`), track,
                 el("span", "pct", `${(100 * p).toFixed(0)}%`));
      card.append(row);
    });
    box.append(card);
  }
  if (!ids.length) box.append(el("p", "dim", "no face in view"));
  $("face-count").textContent = ids.length;
  document.body.dataset.faces = ids.length;
}

function onFace(e) {
  const ev = JSON.parse(e.data);
  events += 1;
  document.body.dataset.events = events;
  faces.set(ev.face_id, {label: ev.label, probs: labels.map((l) => ev.probs[l]), frame: ev.frame});
  renderFaces();
}

function drawTimeline() {
  const cv = $("timeline");
  const dpr = window.devicePixelRatio || 1;
  const w = cv.clientWidth, h = 180;
  cv.width = Math.round(w * dpr);
  cv.height = Math.round(h * dpr);
  const g = cv.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const span = 300, now = Date.now() / 1000, left = 34, bottom = h - 18, top = 6;
  const x = (t) => left + (w - left - 6) * (1 - (now - t) / span);
  const y = (v) => bottom - (bottom - top) * v;
  g.fillStyle = "#999";
  g.font = "11px system-ui, sans-serif";
  for (const v of [0, 0.5, 1]) g.fillText(`${v * 100}%`, 2, y(v) + 4);
  for (const m of [5, 4, 3, 2, 1, 0]) g.fillText(m ? `-${m} min` : "now", x(now - 60 * m) - (m ? 18 : 22), h - 4);
  const pts = timeline.filter((p) => now - p.t <= span + bucketS);
  if (pts.length) {
    const C = pts[0].mix.length;
    const base = pts.map(() => 0);
    for (let k = 0; k < C; k++) {
      g.beginPath();
      pts.forEach((p, i) => { const X = x(p.t + bucketS / 2), Y = y(base[i] + p.mix[k]); i ? g.lineTo(X, Y) : g.moveTo(X, Y); });
      for (let i = pts.length - 1; i >= 0; i--) g.lineTo(x(pts[i].t + bucketS / 2), y(base[i]));
      g.closePath();
      g.fillStyle = COLORS[k % COLORS.length];
      g.globalAlpha = 0.85;
      g.fill();
      g.globalAlpha = 1;
      pts.forEach((p, i) => { base[i] += p.mix[k]; });
    }
    if (pts.length === 1) {  // one bucket so far: show it as a bar
      g.strokeStyle = "#eee";
      g.strokeRect(x(pts[0].t) , y(1), Math.max(2, x(pts[0].t + bucketS) - x(pts[0].t)), y(0) - y(1));
    }
  }
  cv.dataset.points = pts.length;
  document.body.dataset.chartPoints = pts.length;
}

function renderLegend() {
  const ul = $("legend");
  ul.replaceChildren();
  labels.forEach((l, k) => {
    const li = el("li");
    li.append(el("span", `swatch c${k % COLORS.length}`), document.createTextNode(l));
    ul.append(li);
  });
}

function showStats(s) {
  if (labels.join() !== (s.labels || []).join()) { labels = s.labels || []; renderLegend(); }
  $("running").textContent = `model ${s.model}${s.model_default ? " (packaged)" : ""} · ` +
    `${s.backend} · detector ${s.detector} · profile ${s.profile} · source ${s.source}`;
  $("fps").textContent = `${s.fps} FPS`;
  for (const k of ["detect", "classify", "serve", "frame"]) {
    const v = (s.stages_ms || {})[k];
    $(`ms-${k}`).textContent = v === undefined ? "–" : `${v} ms`;
  }
  const visible = new Set((s.faces || []).map((f) => f.face_id));
  for (const id of [...faces.keys()]) if (!visible.has(id)) faces.delete(id);
  for (const f of s.faces || []) {
    if (!faces.has(f.face_id) && f.probs) faces.set(f.face_id, {label: f.label, probs: f.probs});
  }
  renderFaces();
  timeline = s.timeline || [];
  bucketS = s.timeline_bucket_s || 2;
  drawTimeline();
  const b = $("banner");
  document.body.dataset.source = s.source_state;
  b.hidden = !(s.source_state === "lost" || s.source_state === "ended" || s.source_state === "stopped");
  b.className = s.source_state === "lost" ? "lost" : "";
  b.textContent = s.source_state === "lost" ? `Camera lost: ${s.source_message}` :
    `Source ${s.source_state}${s.source_message ? ": " + s.source_message : ""}`;
  $("counters").textContent = `· ${s.frames} frames · ${events} events here · ` +
    `${s.video_streams}/${s.max_streams} video streams`;
}

async function poll() {
  try {
    const r = await fetch(`/stats.json${Q}`, {cache: "no-store"});
    if (r.ok) showStats(await r.json());
  } catch (err) {
    $("banner").hidden = false;
    $("banner").textContent = "server unreachable; retrying";
  }
  const img = $("video");
  document.body.dataset.video = img.complete && img.naturalWidth > 0 ? "on" : "off";
  setTimeout(poll, 1000);
}

$("video").src = `/stream.mjpg${Q}`;
new EventSource(`/events${Q}`).addEventListener("face", onFace);
window.addEventListener("resize", drawTimeline);
poll();
