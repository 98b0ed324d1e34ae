// micmon web page: live level and scores (server-sent events), the event history, clips.
"use strict";

const SERIES_SECONDS = 60;
const LEVEL_FLOOR = -80;
const state = { labels: [], thresholds: {}, series: { time: [], level: [], scores: {} },
                historyVersion: -1, playing: null };

const $ = (sel) => document.querySelector(sel);

function fmtTime(iso) {
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return today ? time : `${d.toLocaleDateString()} ${time}`;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "going on";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

// -- charts ----------------------------------------------------------------------------------------
function sizeCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = Number(canvas.getAttribute("height"));
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    canvas.style.height = `${height}px`;
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [ctx, width, height];
}

function drawSeries(canvas, times, values, lo, hi, { threshold = null, colour, ticks = false } = {}) {
  const [ctx, w, h] = sizeCanvas(canvas);
  const css = getComputedStyle(document.documentElement);
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = css.getPropertyValue("--grid");
  ctx.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    ctx.beginPath(); ctx.moveTo(0, (h * i) / 4); ctx.lineTo(w, (h * i) / 4); ctx.stroke();
  }
  if (ticks) {
    ctx.fillStyle = css.getPropertyValue("--muted");
    ctx.font = "10px system-ui, sans-serif";
    for (let i = 1; i < 4; i++) ctx.fillText(`${Math.round(hi - ((hi - lo) * i) / 4)}`, 2, (h * i) / 4 - 2);
  }
  const now = Date.now() / 1000;
  const x = (t) => w - ((now - t) / SERIES_SECONDS) * w;
  const y = (v) => h - ((Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo)) * h;
  if (threshold !== null) {
    ctx.strokeStyle = css.getPropertyValue("--hit");
    ctx.setLineDash([4, 4]);
    ctx.beginPath(); ctx.moveTo(0, y(threshold)); ctx.lineTo(w, y(threshold)); ctx.stroke();
    ctx.setLineDash([]);
  }
  ctx.strokeStyle = colour || css.getPropertyValue("--line");
  ctx.lineWidth = 2;
  ctx.beginPath();
  let pen = false;
  for (let i = 0; i < times.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) { pen = false; continue; }
    if (pen) ctx.lineTo(x(times[i]), y(v)); else ctx.moveTo(x(times[i]), y(v));
    pen = true;
  }
  ctx.stroke();
}

function trimSeries() {
  const cutoff = Date.now() / 1000 - SERIES_SECONDS;
  const s = state.series;
  let n = 0;
  while (n < s.time.length && s.time[n] < cutoff) n++;
  if (n) {
    s.time.splice(0, n); s.level.splice(0, n);
    for (const k of Object.keys(s.scores)) s.scores[k].splice(0, n);
  }
}

function redraw() {
  const s = state.series;
  drawSeries($("#level-chart"), s.time, s.level, LEVEL_FLOOR, 0, { ticks: true });
  for (const label of state.labels) {
    const canvas = document.getElementById(`chart-${label}`);
    if (canvas) drawSeries(canvas, s.time, s.scores[label] || [], 0, 1,
                           { threshold: state.thresholds[label] ?? null });
  }
}

// -- live state ------------------------------------------------------------------------------------
function buildLabels() {
  const box = $("#labels");
  box.replaceChildren();
  for (const label of state.labels) {
    const card = el("div", { class: "card label", "data-label": label });
    const row = el("div", { class: "row" });
    row.append(el("h2", {}, label), el("span", { class: "state off", id: `state-${label}` }, "quiet"));
    const score = el("div", { class: "row muted" });
    score.append(el("span", {}, "score"), el("span", { class: "value", id: `score-${label}` }, "–"));
    card.append(row, score, el("canvas", { id: `chart-${label}`, height: "60",
                                           "aria-label": `${label} score over the last minute` }));
    box.append(card);
  }
}

function applyLive(data) {
  const health = $("#health");
  health.textContent = data.health === "ok" ? "listening" : data.health;
  health.className = `badge ${data.health}`;
  $("#level").textContent = data.level_dbfs === null ? "–" : `${data.level_dbfs.toFixed(1)} dBFS`;
  for (const label of state.labels) {
    const score = data.scores[label];
    const on = label in data.active;
    const node = document.getElementById(`state-${label}`);
    if (node) { node.textContent = on ? "DETECTED" : "quiet"; node.className = `state ${on ? "on" : "off"}`; }
    const value = document.getElementById(`score-${label}`);
    if (value) value.textContent = score === undefined ? "–" : score.toFixed(2);
  }
  const s = state.series;
  const last = s.time.length ? s.time[s.time.length - 1] : 0;
  const windowTime = data.time - (data.last_window_age ?? 0);
  if (data.capturing && data.last_window_age !== null && windowTime > last + 0.01) {
    s.time.push(windowTime);
    s.level.push(data.level_dbfs);
    for (const label of state.labels) (s.scores[label] ||= []).push(data.scores[label] ?? null);
  }
  trimSeries();
  redraw();
  if (data.stats) {
    const st = data.stats;
    $("#stats").textContent = `${st.windows} windows scored, ${st.detections} detections, ${st.reconnects} capture restarts`;
  }
  if (data.history_version !== state.historyVersion) {
    state.historyVersion = data.history_version;
    loadEvents();
  }
}

function connectLive() {
  const source = new EventSource("api/live");
  source.onmessage = (msg) => applyLive(JSON.parse(msg.data));
  source.onerror = () => {
    const health = $("#health");
    health.textContent = "offline"; health.className = "badge offline";
  };
}

// -- events ----------------------------------------------------------------------------------------
function filters() {
  const params = new URLSearchParams({ limit: "100" });
  const label = $("#filter-label").value;
  if (label) params.set("label", label);
  const day = $("#filter-day").value;
  if (day) {
    const start = new Date(`${day}T00:00:00`);
    const end = new Date(start); end.setDate(end.getDate() + 1);
    params.set("since", (start.getTime() / 1000).toString());
    params.set("until", (end.getTime() / 1000).toString());
  }
  return params;
}

async function loadEvents() {
  const response = await fetch(`api/events?${filters()}`);
  if (!response.ok) return;
  const data = await response.json();
  const body = $("#events tbody");
  body.replaceChildren();
  for (const e of data.events) {
    const tr = el("tr", { "data-key": e.key });
    tr.append(el("td", {}, fmtTime(e.start)), el("td", {}, e.label),
              el("td", {}, e.interrupted ? "interrupted" : fmtDuration(e.duration)),
              el("td", {}, e.peak.toFixed(2)));
    const cell = el("td");
    if (e.clip_url) {
      const playing = state.playing === e.clip_url && !$("#player").paused;
      const button = el("button", { type: "button", class: playing ? "play playing" : "play", "data-clip": e.clip_url,
                                    "aria-label": `play the clip of ${e.label} at ${fmtTime(e.start)}` }, "▶");
      if (playing) button.textContent = "❚❚";
      button.addEventListener("click", () => play(button));
      cell.append(button);
    }
    tr.append(cell);
    body.append(tr);
  }
  $("#no-events").hidden = data.events.length > 0;
  $("#events-count").textContent = data.events.length ? `${data.events.length} shown` : "";
}

function play(button) {
  const player = $("#player");
  const url = button.dataset.clip;
  document.querySelectorAll("button.play.playing").forEach((b) => { b.classList.remove("playing"); b.textContent = "▶"; });
  if (state.playing === url && !player.paused) { player.pause(); state.playing = null; return; }
  player.hidden = false;
  player.src = url;
  state.playing = url;
  button.classList.add("playing");
  button.textContent = "❚❚";
  player.play().catch(() => {});  // no sound device or autoplay rules: the controls stay usable
}

async function init() {
  const response = await fetch("api/status");
  const data = await response.json();
  state.labels = data.targets;
  state.thresholds = data.thresholds;
  state.series = { time: data.series.time, level: data.series.level_dbfs, scores: data.series.scores };
  $("#model").textContent = data.model ? `model ${data.model.split("/").filter(Boolean).pop()}` : "";
  $("#model").title = data.model || "";
  const select = $("#filter-label");
  for (const label of [...new Set([...data.targets, ...data.history_labels])]) {
    select.append(el("option", { value: label }, label));
  }
  buildLabels();
  applyLive(data);
  $("#filter-label").addEventListener("change", loadEvents);
  $("#filter-day").addEventListener("change", loadEvents);
  $("#filter-clear").addEventListener("click", () => { $("#filter-label").value = ""; $("#filter-day").value = ""; loadEvents(); });
  $("#player").addEventListener("ended", () => document.querySelectorAll("button.play.playing").forEach((b) => { b.classList.remove("playing"); b.textContent = "▶"; }));
  window.addEventListener("resize", redraw);
  connectLive();
}

init();
