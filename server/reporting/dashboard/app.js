// The smartmeters dashboard: fleet figures from /fleet and the /events
// stream, the meter list from /meters, and a meter page (#/meters/ID) with
// its consumption from /meters/ID/consumption. No build step: plain script.
"use strict";

const $ = (id) => document.getElementById(id);
const fmtInt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const fmt1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const fmt2 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });

// watts renders a power with a unit that keeps the number short.
function watts(w) {
  const a = Math.abs(w);
  if (a >= 1e6) return fmt2.format(w / 1e6) + " MW";
  if (a >= 1e3) return fmt2.format(w / 1e3) + " kW";
  return fmt1.format(w) + " W";
}

// energy renders Wh as kWh (or MWh), the unit of bills.
function energy(wh) {
  if (Math.abs(wh) >= 1e6) return fmt2.format(wh / 1e6) + " MWh";
  return fmt2.format(wh / 1e3) + " kWh";
}

const fmt3 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 3, maximumFractionDigits: 3 });

// register renders a cumulative register in kWh to the Wh, so that a
// reading's increments show.
function register(wh) { return fmt3.format(wh / 1e3) + " kWh"; }

function ago(iso) {
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.max(s, 0) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return new Date(iso).toLocaleString();
}

async function getJSON(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (_) {}
    throw new Error(detail);
  }
  return res.json();
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function stateBadge(state) {
  const label = { reporting: "reporting", silent: "silent", rejected: "recently rejected" }[state] || state;
  return el("span", { class: "state state-" + state }, label);
}

// chartWidth sizes a chart to its container.
function chartWidth(id) { return Math.max($(id).clientWidth, 320); }

// ---- fleet figures -------------------------------------------------------

function showFleet(f) {
  $("meters-registered").textContent = fmtInt.format(f.metersRegistered);
  $("meters-reporting").textContent = fmtInt.format(f.metersReporting);
  $("reporting-window").textContent = "(last " + f.reportingWindow.replace("1m0s", "60 s") + ")";
  $("readings-per-second").textContent = fmt1.format(f.readingsPerSecond);
  $("readings-stored").textContent = fmtInt.format(f.readingsStored);
  $("rejected-total").textContent = fmtInt.format(f.rejectedTotal);
  const reasons = Object.entries(f.rejected || {}).sort((a, b) => b[1] - a[1]);
  $("rejected-reasons").textContent = reasons.map(([r, n]) => r + " " + fmtInt.format(n)).join(" · ");
}

let powerPlot = null;

function powerData(buckets) {
  const xs = [], ins = [], outs = [];
  for (const b of buckets) {
    xs.push(Date.parse(b.start) / 1000);
    // The bucket in progress is left out: meters that have not reported
    // past its start yet would make it look like a drop.
    ins.push(b.partial ? null : b.wattsIn);
    outs.push(b.partial ? null : b.wattsOut);
  }
  return [xs, ins, outs];
}

function drawPower(fleet) {
  const data = powerData(fleet.energy.buckets);
  if (powerPlot) { powerPlot.setData(data); return; }
  powerPlot = new uPlot({
    width: chartWidth("power-chart"), height: 300,
    scales: { x: { time: true } },
    series: [
      {},
      { label: "Import", stroke: "#2563eb", width: 2, fill: "rgba(37,99,235,.08)", value: (u, v) => v == null ? "–" : watts(v) },
      { label: "Export", stroke: "#16a34a", width: 2, fill: "rgba(22,163,74,.08)", value: (u, v) => v == null ? "–" : watts(v) },
    ],
    axes: [{}, { size: 80, values: (u, vs) => vs.map(watts) }],
  }, data, $("power-chart"));
}

async function refreshFleet() {
  try {
    const f = await getJSON("/fleet?bucket=1m&from=" + (Date.now() - 30 * 60e3));
    showFleet(f);
    drawPower(f);
  } catch (e) { console.warn("fleet:", e); }
}

// ---- meter list ------------------------------------------------------------

let meterCursor = null;

function meterRow(m) {
  const r = m.lastReading;
  return el("tr", {},
    el("td", {}, String(m.id)),
    el("td", {}, el("a", { href: "#/meters/" + m.id }, m.username)),
    el("td", {}, stateBadge(m.state)),
    el("td", { title: r ? r.timestamp : "" }, r ? ago(r.timestamp) : "never"),
    el("td", { class: "num" }, r ? register(r.whIn) : "–"),
    el("td", { class: "num" }, r ? register(r.whOut) : "–"));
}

async function loadMeters(append) {
  const prefix = $("meter-filter").value.trim();
  let url = "/meters?limit=50&username=" + encodeURIComponent(prefix);
  if (append && meterCursor != null) url += "&after=" + meterCursor;
  try {
    const page = await getJSON(url);
    const body = $("meter-rows");
    if (!append) body.replaceChildren();
    for (const m of page.meters) body.append(meterRow(m));
    if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: "6", class: "empty" }, "No meters")));
    meterCursor = page.next ?? null;
    $("more-meters").hidden = meterCursor == null;
  } catch (e) { console.warn("meters:", e); }
}

// ---- meter page --------------------------------------------------------------

let consumptionPlot = null;
let currentMeter = null;

const spans = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };

async function showMeter(id) {
  currentMeter = id;
  $("meter-export").href = "/meters/" + id + "/export.csv";
  try {
    const m = await getJSON("/meters/" + id);
    $("meter-title").textContent = m.username + " (meter " + m.id + ")";
    $("meter-state").replaceChildren(stateBadge(m.state));
    const r = m.lastReading;
    const facts = [
      ["Algorithm", m.algorithm], ["Registered", new Date(m.registeredAt).toLocaleString()],
      ["Last reading", r ? ago(r.timestamp) : "never"],
      ["Import register", r ? register(r.whIn) : "–"], ["Export register", r ? register(r.whOut) : "–"],
      ["Key fingerprint", m.fingerprint.slice(0, 16) + "…"],
    ];
    if (m.lastRejection) facts.push(["Last rejection", m.lastRejection.reason + ", " + ago(m.lastRejection.at)]);
    $("meter-facts").replaceChildren(...facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  } catch (e) {
    $("meter-title").textContent = "Meter " + id + ": " + e.message;
    return;
  }
  await Promise.all([showConsumption(id), showReadings(id)]);
}

async function showConsumption(id) {
  const [span, bucket] = $("meter-range").value.split("|");
  const to = Date.now(), from = to - spans[span];
  const c = await getJSON(`/meters/${id}/consumption?bucket=${bucket}&from=${from}&to=${to}`);
  const xs = [], ins = [], outs = [];
  let missing = 0;
  for (const b of c.buckets) {
    xs.push(Date.parse(b.start) / 1000);
    ins.push(b.complete ? b.whIn / 1000 : null);
    outs.push(b.complete ? b.whOut / 1000 : null);
    if (!b.complete) missing++;
  }
  $("consumption-note").textContent =
    `Total ${energy(c.total.whIn)} imported, ${energy(c.total.whOut)} exported` +
    (missing ? ` · ${missing} of ${c.buckets.length} buckets without data on both edges are left blank` : "");
  const kwh = (u, v) => v == null ? "–" : fmt2.format(v) + " kWh";
  // Import and export side by side in each bucket.
  const barsIn = uPlot.paths.bars({ size: [0.4, 30], align: -1 });
  const barsOut = uPlot.paths.bars({ size: [0.4, 30], align: 1 });
  const opts = {
    width: chartWidth("consumption-chart"), height: 300,
    scales: { x: { time: true } },
    series: [
      {},
      { label: "Import", stroke: "#2563eb", fill: "rgba(37,99,235,.6)", paths: barsIn, points: { show: false }, value: kwh },
      { label: "Export", stroke: "#16a34a", fill: "rgba(22,163,74,.6)", paths: barsOut, points: { show: false }, value: kwh },
    ],
    axes: [{}, { size: 80, values: (u, vs) => vs.map((v) => fmt2.format(v) + " kWh") }],
  };
  if (consumptionPlot) consumptionPlot.destroy();
  consumptionPlot = new uPlot(opts, [xs, ins, outs], $("consumption-chart"));
}

async function showReadings(id) {
  const to = Date.now();
  const page = await getJSON(`/meters/${id}/readings?from=${to - 3600e3}&to=${to + 1}&limit=1000`);
  const rows = page.readings.slice(-20).reverse().map((r) =>
    el("tr", {},
      el("td", {}, new Date(r.timestamp).toLocaleString()),
      el("td", {}, ago(r.receivedAt)),
      el("td", { class: "num" }, register(r.whIn)),
      el("td", { class: "num" }, register(r.whOut))));
  $("reading-rows").replaceChildren(...(rows.length ? rows :
    [el("tr", {}, el("td", { colspan: "4", class: "empty" }, "No readings in the last hour"))]));
}

// ---- routing and live updates ----------------------------------------------

function route() {
  const m = location.hash.match(/^#\/meters\/(\d+)$/);
  $("fleet-view").hidden = !!m;
  $("meter-view").hidden = !m;
  if (m) showMeter(m[1]); else { currentMeter = null; loadMeters(false); refreshFleet(); }
}

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").className = "pill pill-on"; });
  es.addEventListener("error", () => { $("conn").textContent = "reconnecting…"; $("conn").className = "pill pill-off"; });
  es.addEventListener("fleet", (e) => showFleet(JSON.parse(e.data)));
}

let filterTimer = null;
$("meter-filter").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => loadMeters(false), 250);
});
$("more-meters").addEventListener("click", () => loadMeters(true));
$("meter-range").addEventListener("change", () => currentMeter && showConsumption(currentMeter));
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => {
  if (powerPlot) powerPlot.setSize({ width: chartWidth("power-chart"), height: 300 });
  if (consumptionPlot) consumptionPlot.setSize({ width: chartWidth("consumption-chart"), height: 300 });
});
setInterval(() => {
  if (currentMeter) { showMeter(currentMeter); return; }
  refreshFleet();
  if (meterCursor == null) loadMeters(false); // only while the list fits one page
}, 5000);

route();
connect();
