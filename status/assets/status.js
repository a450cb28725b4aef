// The status page's only script: polls /api/status and redraws the tables.
// It builds elements with textContent, never HTML strings, so that no
// stream or sink name can inject markup.
"use strict";

const POLL_MS = 1000;
const STAGE_TITLES = {
  received: "received", rejected: "rejected", refused: "refused", in_kafka: "in Kafka",
  stored: "stored", published: "published", dead_lettered: "dead-lettered",
};
// What each stage counts, shown when the pointer rests on its column title.
const STAGE_HELP = {
  received: "every event a collector answered for: in Kafka + rejected + refused",
  rejected: "invalid or malformed events, answered as such or dead-lettered",
  refused: "valid events not taken (load, shed stream, Kafka unavailable); producers retry them",
  in_kafka: "events Kafka acknowledged: what the collectors accepted",
  stored: "events written to ClickHouse",
  published: "events published to NATS",
  dead_lettered: "events sent to the dead-letter topic, by the collectors or the workers",
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function fmtRate(v) {
  if (v === 0) return "0";
  if (v < 10) return v.toFixed(2);
  if (v < 100) return v.toFixed(1);
  return Math.round(v).toLocaleString("en-US");
}

function fmtCount(v) { return Math.round(v).toLocaleString("en-US"); }

function fmtBytes(v) {
  if (v >= 1 << 30) return (v / (1 << 30)).toFixed(2) + " GiB";
  return (v / (1 << 20)).toFixed(1) + " MiB";
}

function fmtDuration(s) {
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (d > 0) return `${d}d ${h % 24}h`;
  if (h > 0) return `${h}h ${m % 60}m`;
  return `${m}m ${Math.floor(s % 60)}s`;
}

function fill(table, head, rows, emptyText) {
  if (head) table.tHead.replaceChildren(el("tr", {}, ...head));
  const body = table.tBodies[0];
  if (rows.length === 0) {
    const cols = table.tHead.rows[0] ? table.tHead.rows[0].cells.length : 1;
    body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: cols }, emptyText)));
    return;
  }
  body.replaceChildren(...rows);
}

function drawStreams(st) {
  const head = [el("th", {}, "stream"), ...st.stages.map(s => el("th", { class: "num", title: STAGE_HELP[s] || "" }, STAGE_TITLES[s] || s))];
  const rows = st.streams.map(stream => el("tr", { "data-stream": stream.name },
    el("td", {}, stream.name),
    ...st.stages.map(stage => {
      const f = stream.stages[stage] || { rate: 0, total: 0 };
      return el("td", { class: "num" + (f.rate === 0 ? " zero" : ""), "data-stage": stage, "data-rate": String(f.rate) },
        fmtRate(f.rate) + "/s", el("span", { class: "total" }, fmtCount(f.total)));
    })));
  fill(document.getElementById("streams"), head, rows, "no streams");
}

function drawSinks(st) {
  const rows = st.sinks.map(s => el("tr", { "data-sink": s.name },
    el("td", {}, s.name),
    el("td", {}, el("span", { class: "state " + s.state }, s.state)),
    el("td", { class: "num" }, fmtRate(s.rate)),
    el("td", { class: "num" + (s.error_rate === 0 ? " zero" : "") }, fmtRate(s.error_rate)),
    el("td", {}, (s.failing_streams || []).join(", "))));
  fill(document.getElementById("sinks"), null, rows, "this process writes to no sink");
}

function meter(label, used, limit) {
  const frac = limit > 0 ? used / limit : 0;
  const cls = "meter" + (frac > 1 ? " over" : frac > 0.85 ? " high" : "");
  const right = limit > 0 ? `${fmtBytes(used)} of ${fmtBytes(limit)} (${Math.round(frac * 100)}%)` : `${fmtBytes(used)} (no limit)`;
  return el("div", { class: cls },
    el("div", { class: "label" }, el("span", {}, label), el("span", {}, right)),
    el("div", { class: "track" }, el("div", { class: "fill", style: `width:${Math.min(100, frac * 100).toFixed(1)}%` })));
}

function drawMemory(st) {
  const m = st.memory;
  document.getElementById("memory").replaceChildren(
    meter("resident set against --memory-limit", m.resident_bytes, m.limit_bytes),
    meter("Go runtime against its limit", m.go_used_bytes, m.go_limit_bytes));
}

function drawPartitions(st) {
  const sinks = [...new Set(st.partitions.flatMap(p => Object.keys(p.lag || {})))].sort();
  const head = [el("th", {}, "stream"), el("th", { class: "num" }, "partition"), el("th", { class: "num" }, "backlog age"),
    ...sinks.map(s => el("th", { class: "num" }, "lag " + s))];
  const rows = st.partitions.map(p => el("tr", { "data-stream": p.stream, "data-partition": String(p.partition) },
    el("td", {}, p.stream),
    el("td", { class: "num" }, String(p.partition)),
    el("td", { class: "num" + (p.alarm ? " alarm" : "") }, fmtDuration(p.backlog_age_seconds) + (p.alarm ? " ⚠ near retention" : "")),
    ...sinks.map(s => el("td", { class: "num" }, p.lag && s in p.lag ? fmtCount(p.lag[s]) : "–"))));
  fill(document.getElementById("partitions"), head, rows, "no partitions watched yet");
}

function draw(st) {
  document.getElementById("role").textContent = "role: " + st.role;
  document.title = `Sluice ${st.role} · status`;
  document.getElementById("uptime").textContent = "up " + fmtDuration(st.uptime_seconds);
  document.getElementById("window").textContent = st.window_seconds.toFixed(0);
  drawStreams(st);
  drawSinks(st);
  drawMemory(st);
  drawPartitions(st);
}

function setConn(live, text) {
  const c = document.getElementById("conn");
  c.className = "conn " + (live ? "live" : "stale");
  c.textContent = text;
}

async function poll() {
  try {
    const resp = await fetch("/api/status", { cache: "no-store" });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    const st = await resp.json();
    draw(st);
    setConn(true, "live · " + new Date(st.sampled_at).toLocaleTimeString());
  } catch (err) {
    setConn(false, "not answering: " + err.message);
  }
  setTimeout(poll, POLL_MS);
}

poll();
