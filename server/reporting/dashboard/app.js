// The smartmeters dashboard: fleet figures from /fleet and the /events
// stream, the meter list from /meters, and a meter page (#/meters/ID) with
// its consumption from /meters/ID/consumption. No build step: plain script.
//
// The view lives in the URL's fragment, so that a link shares it:
// #/?range=6h&state=silent&sort=last&q=meter- for the fleet,
// #/meters/7?range=7d or #/meters/7?from=…&to=… (a zoom) for a meter, and
// tz=utc on either for times in UTC rather than the browser's zone.
"use strict";

const $ = (id) => document.getElementById(id);
const fmtInt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const fmt1 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const fmt2 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const fmt3 = new Intl.NumberFormat(undefined, { minimumFractionDigits: 3, maximumFractionDigits: 3 });

const MIN = 60e3, HOUR = 3600e3, DAY = 86400e3;
const REFRESH = 5000;

// ---- units -------------------------------------------------------------------

// watts renders a power with a unit that keeps the number short.
function watts(w) {
  const a = Math.abs(w);
  if (a >= 1e6) return fmt2.format(w / 1e6) + " MW";
  if (a >= 1e3) return fmt2.format(w / 1e3) + " kW";
  return fmt1.format(w) + " W";
}

// energyUnit picks Wh, kWh or MWh for amounts up to max Wh, so that small
// amounts do not round to zero and large ones stay short.
function energyUnit(max) {
  const a = Math.abs(max);
  if (a >= 1e6) return { name: "MWh", div: 1e6, fmt: fmt2 };
  if (a >= 1e3) return { name: "kWh", div: 1e3, fmt: fmt2 };
  return { name: "Wh", div: 1, fmt: fmtInt };
}

// energy renders Wh in the unit its magnitude calls for.
function energy(wh) {
  const u = energyUnit(wh);
  return u.fmt.format(wh / u.div) + " " + u.name;
}

// register renders a cumulative register in kWh to the Wh, so that a
// reading's increments show.
function register(wh) { return fmt3.format(wh / 1e3) + " kWh"; }

// ---- time ----------------------------------------------------------------------

// tz is "utc" or "local"; the URL's tz wins, then the last choice.
let tz = "local";
const timeFormats = {};

function timeFormat(kind) {
  const key = tz + kind;
  if (!timeFormats[key]) {
    const opts = kind === "short"
      ? { hour: "2-digit", minute: "2-digit", timeZoneName: "short" }
      : { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" };
    if (tz === "utc") opts.timeZone = "UTC";
    timeFormats[key] = new Intl.DateTimeFormat(undefined, opts);
  }
  return timeFormats[key];
}

// when renders an instant with its zone.
function when(t) { return timeFormat("long").format(new Date(t)); }

function zoneName() {
  return tz === "utc" ? "UTC" : (Intl.DateTimeFormat().resolvedOptions().timeZone || "local time");
}

function ago(iso) {
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.max(s, 0) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return when(iso);
}

// chartDate is uPlot's clock for the chosen zone.
function chartDate(ts) {
  const d = new Date(ts * 1e3);
  return tz === "utc" ? uPlot.tzDate(d, "Etc/UTC") : d;
}

// ---- the URL -------------------------------------------------------------------

function parseHash() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const m = (path || "/").match(/^\/meters\/(\d+)$/);
  return { meter: m ? m[1] : null, params: new URLSearchParams(query || "") };
}

// setParams changes the view's parameters in the URL without a new history
// entry and without a hashchange; null removes one.
function setParams(changes) {
  const { meter, params } = parseHash();
  for (const [k, v] of Object.entries(changes)) {
    if (v == null || v === "") params.delete(k); else params.set(k, v);
  }
  const q = params.toString();
  history.replaceState(null, "", "#" + (meter ? "/meters/" + meter : "/") + (q ? "?" + q : ""));
  updateLinks();
}

// link builds a fragment that keeps the time zone choice.
function link(path, extra) {
  const p = new URLSearchParams(extra || {});
  if (tz === "utc") p.set("tz", "utc");
  const q = p.toString();
  return "#" + path + (q ? "?" + q : "");
}

function updateLinks() {
  $("brand").href = $("nav-fleet").href = link("/");
  $("silent-card").href = link("/", { state: "silent" });
  for (const b of document.querySelectorAll(".tz button")) b.classList.toggle("on", b.dataset.tz === tz);
}

// ---- helpers --------------------------------------------------------------------

class HTTPError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function getJSON(url) {
  const res = await fetch(url, { headers: { Accept: "application/json" } });
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (_) {}
    throw new HTTPError(res.status, detail);
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

const stateLabels = { reporting: "reporting", silent: "silent", rejected: "recently rejected", revoked: "revoked" };

function stateBadge(state) {
  return el("span", { class: "state state-" + state }, stateLabels[state] || state);
}

// chartWidth sizes a chart to its container.
function chartWidth(id) { return Math.max($(id).clientWidth, 200); }

function cssVar(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

// axis styles a uPlot axis in the page's colours (light or dark).
function axis(extra) {
  return Object.assign({ stroke: cssVar("--muted"), grid: { stroke: cssVar("--line") }, ticks: { stroke: cssVar("--line") } }, extra);
}

// ---- live figures and their staleness ---------------------------------------------

let lastFleetEvent = 0;
let stale = null; // unknown until the stream opens or fails

function markStale(on) {
  if (on === stale) return;
  stale = on;
  document.body.classList.toggle("stale", on);
  $("stale-note").hidden = !on;
  if (on) $("stale-since").textContent = lastFleetEvent ? when(lastFleetEvent) : "never";
  $("conn").textContent = on ? "stale: reconnecting…" : "live";
  $("conn").className = "pill " + (on ? "pill-off" : "pill-on");
}

let silentAfter = "60 s";

function showFleet(f) {
  const win = f.reportingWindow.replace(/^1m0s$/, "60 s").replace(/m0s$/, " min").replace(/h0m$/, " h");
  silentAfter = win;
  $("meters-registered").textContent = fmtInt.format(f.metersRegistered);
  $("meters-reporting").textContent = fmtInt.format(f.metersReporting);
  $("meters-silent").textContent = fmtInt.format(f.metersSilent);
  $("reporting-window").textContent = "(last " + win + ")";
  $("silent-window").textContent = "(nothing for " + win + ")";
  $("silent-card").classList.toggle("alert", f.metersSilent > 0);
  $("readings-per-second").textContent = fmt1.format(f.readingsPerSecond);
  $("readings-stored").textContent = fmtInt.format(f.readingsStored);
  $("rejected-total").textContent = fmtInt.format(f.rejectedTotal);
  const reasons = Object.entries(f.rejected || {}).sort((a, b) => b[1] - a[1]);
  $("rejected-reasons").replaceChildren(...reasons.map(([r, n]) =>
    el("li", {}, el("span", { class: "reason" }, r), el("span", { class: "count" }, fmtInt.format(n)))));
  showEmptyFleet(f.metersRegistered === 0);
}

function showEmptyFleet(empty) {
  $("empty-fleet").hidden = !empty;
  if (empty) {
    $("register-example").textContent =
      `curl -s ${location.origin}/register -H 'Content-Type: application/json' -d '{\n` +
      `  "username": "meter-1",\n  "base64PublicKey": "MCowBQYDK2VwAyEA…"\n}'`;
  }
}

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("open", () => markStale(false));
  es.addEventListener("error", () => markStale(true));
  es.addEventListener("fleet", (e) => {
    lastFleetEvent = Date.now();
    markStale(false);
    showFleet(JSON.parse(e.data));
  });
  // The server sends a fleet event every second: three missed ones mean
  // the stream is down even when the connection has not said so.
  setInterval(() => { if (lastFleetEvent && Date.now() - lastFleetEvent > 3500) markStale(true); }, 1000);
}

// ---- fleet power --------------------------------------------------------------------

// Each range with the bucket it is drawn in: the day ranges in days of the
// zone the page shows, from the server's rollups, so that a year costs what
// a day does.
const fleetRanges = {
  "30m": [30 * MIN, "1m"], "6h": [6 * HOUR, "5m"], "24h": [DAY, "15m"],
  "7d": [7 * DAY, "1h"], "30d": [30 * DAY, "1d"], "1y": [365 * DAY, "1d"],
};
let powerPlot = null, powerKey = "";
let fleetShow = 0; // the latest refreshFleet: an older one's answer is dropped

function powerData(buckets) {
  const xs = [], ins = [], outs = [];
  for (const b of buckets) {
    xs.push(Date.parse(b.start) / 1000);
    // The bucket in progress is left out (meters that have not reported
    // past its start would make it look like a drop), and so is a bucket
    // with no energy either way: no meter reported, which is a gap, not 0 W.
    const gap = b.partial || (b.whIn === 0 && b.whOut === 0);
    ins.push(gap ? null : b.wattsIn);
    outs.push(gap ? null : b.wattsOut);
  }
  return [xs, ins, outs];
}

function drawPower(fleet, key) {
  const data = powerData(fleet.energy.buckets);
  if (powerPlot && powerKey === key) { powerPlot.setData(data); return; }
  if (powerPlot) powerPlot.destroy();
  powerKey = key;
  const w = (u, v) => v == null ? "–" : watts(v);
  powerPlot = new uPlot({
    width: chartWidth("power-chart"), height: 300, tzDate: chartDate,
    scales: { x: { time: true } },
    series: [
      { value: (u, v) => v == null ? "–" : when(v * 1e3) },
      { label: "Import", stroke: cssVar("--import"), width: 2, fill: cssVar("--import-fill"), value: w, spanGaps: false },
      { label: "Export", stroke: cssVar("--export"), width: 2, fill: cssVar("--export-fill"), value: w, spanGaps: false },
    ],
    axes: [axis(), axis({ size: 80, values: (u, vs) => vs.map(watts) })],
  }, data, $("power-chart"));
}

async function refreshFleet() {
  const range = fleetRanges[$("fleet-range").value] ? $("fleet-range").value : "30m";
  const [span, bucket] = fleetRanges[range];
  const show = ++fleetShow;
  try {
    const zone = tz === "utc" ? "UTC" : Intl.DateTimeFormat().resolvedOptions().timeZone;
    const f = await getJSON(`/fleet?bucket=${bucket}&from=${Date.now() - span}` +
      (bucket === "1d" && zone ? `&tz=${encodeURIComponent(zone)}` : ""));
    if (show !== fleetShow) return;
    showFleet(f);
    drawPower(f, range + tz);
    const gaps = f.energy.buckets.filter((b) => !b.partial && b.whIn === 0 && b.whOut === 0).length;
    $("power-hint").textContent = `mean import and export power per ${bucket} bucket, times in ${zoneName()}` +
      (gaps ? ` · ${gaps} bucket${gaps === 1 ? "" : "s"} without readings left as gaps` : "");
  } catch (e) { console.warn("fleet:", e); }
}

// ---- meter list ------------------------------------------------------------------------

const PAGE = 50;
let metersShown = PAGE; // rows asked for: More adds a page, the refresh keeps them

function meterRow(m) {
  const r = m.lastReading;
  return el("tr", { "data-meter": String(m.id) },
    el("td", { class: "narrow-hide" }, String(m.id)),
    el("td", { class: "username" }, el("a", { href: link("/meters/" + m.id) }, m.username)),
    el("td", {}, stateBadge(m.state)),
    el("td", { title: r ? when(r.timestamp) : "" }, r ? ago(r.timestamp) : "never"),
    el("td", { class: "num" }, r ? register(r.whIn) : "–"),
    el("td", { class: "num narrow-hide" }, r ? register(r.whOut) : "–"));
}

const sorts = {
  id: null, // the API's order
  state: null, // one state after the other, each in the API's order
  last: (a, b) => (a.lastReading ? Date.parse(a.lastReading.timestamp) : -Infinity) -
    (b.lastReading ? Date.parse(b.lastReading.timestamp) : -Infinity) || a.id - b.id,
};

let meterLoad = 0;

// States in the order "By state" lists them: those that need a look first.
const stateSequence = ["silent", "rejected", "revoked", "reporting"];

// fetchMeters reads pages of base until want meters, and says whether
// there are more.
async function fetchMeters(base, want) {
  const meters = [];
  let next = null;
  do {
    const limit = Math.min(want - meters.length, 1000);
    const page = await getJSON(base + "&limit=" + limit + (next != null ? "&after=" + next : ""));
    meters.push(...page.meters);
    next = page.next ?? null;
  } while (next != null && meters.length < want);
  return { meters, more: next != null };
}

// loadMeters shows the first metersShown meters that match the filters,
// reading as many pages as that takes. Sorted by state, it asks for each
// state in turn, so that the whole fleet is sorted, not only the rows shown.
async function loadMeters() {
  const load = ++meterLoad;
  const prefix = $("meter-filter").value.trim();
  const state = $("meter-state").value;
  const sort = $("meter-sort").value;
  const base = "/meters?username=" + encodeURIComponent(prefix);
  let meters = [], more = false;
  try {
    const states = state ? [state] : sort === "state" ? stateSequence : [""];
    for (const [i, st] of states.entries()) {
      const got = await fetchMeters(base + (st ? "&state=" + st : ""), metersShown - meters.length);
      meters.push(...got.meters);
      more = got.more;
      if (meters.length >= metersShown) { more = more || i < states.length - 1; break; }
    }
  } catch (e) { console.warn("meters:", e); return; }
  if (load !== meterLoad) return; // a newer load is under way
  if (sort === "last") meters.sort(sorts.last);
  const body = $("meter-rows");
  body.replaceChildren(...meters.map(meterRow));
  if (!meters.length) {
    const filtered = prefix || state;
    body.append(el("tr", {}, el("td", { colspan: "6", class: "empty" },
      filtered ? "No meters match." : "No meters yet: see above for how to register one.")));
  }
  $("more-meters").hidden = !more;
  $("meter-count").textContent = meters.length ? `${meters.length} meter${meters.length === 1 ? "" : "s"} shown` +
    (sort === "last" ? " (sorted among those shown)" : "") : "";
}

// ---- meter page ----------------------------------------------------------------------------

const meterRanges = { "1h": HOUR, "6h": 6 * HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY };
const bucketWidths = [["1m", MIN], ["5m", 5 * MIN], ["15m", 15 * MIN], ["1h", HOUR], ["1d", DAY]];

// bucketFor picks the finest bucket that gives at most 240 bars.
function bucketFor(span) {
  for (const [name, w] of bucketWidths) if (span / w <= 240) return [name, w];
  return bucketWidths[bucketWidths.length - 1];
}

let currentMeter = null;
let meterShow = 0; // the latest showMeter: an older one's answers are dropped
let consumptionPlot = null, consumptionKey = "";
let consumptionUnit = energyUnit(0);
const firstReadings = {}; // meter id → timestamp of its first reading, or null

function clearMeter(title) {
  $("meter-title").textContent = title;
  $("meter-state-badge").replaceChildren();
  $("meter-facts").replaceChildren();
  $("meter-export").hidden = true;
  $("meter-consumption").hidden = true;
  $("meter-readings").hidden = true;
  $("reading-rows").replaceChildren();
  $("consumption-note").textContent = "";
  if (consumptionPlot) { consumptionPlot.destroy(); consumptionPlot = null; consumptionKey = ""; }
}

// meterWindow is the window the page shows: a zoom or a range from the
// URL, or else the last 24 hours, or the shortest range that covers the
// meter's life when it is younger than that, ending at its last reading
// when it has been silent for longer than that.
function meterWindow(m, first, params) {
  const now = Date.now();
  const from = Date.parse(params.get("from")), to = Date.parse(params.get("to"));
  if (from < to) return { from, to, range: "custom" };
  let range = params.get("range");
  if (meterRanges[range]) return { from: now - meterRanges[range], to: now, range };
  const born = Math.min(Date.parse(m.registeredAt), first ?? Infinity);
  range = Object.keys(meterRanges).find((r) => meterRanges[r] >= Math.min(now - born, DAY));
  const span = meterRanges[range];
  const last = m.lastReading ? Date.parse(m.lastReading.timestamp) : now;
  if (now - last > span) return { from: last - span + MIN, to: last + MIN, range: "custom" };
  return { from: now - span, to: now, range };
}

async function showMeter(id) {
  const show = ++meterShow;
  const current = () => show === meterShow && currentMeter === id;
  let m;
  try {
    m = await getJSON("/meters/" + id);
    if (!(id in firstReadings)) {
      const page = await getJSON(`/meters/${id}/readings?from=0&limit=1`);
      firstReadings[id] = page.readings.length ? Date.parse(page.readings[0].timestamp) : null;
    }
  } catch (e) {
    if (!current()) return;
    clearMeter(e.status === 404 ? "No meter " + id : "Meter " + id + ": " + e.message);
    return;
  }
  if (!current()) return; // the page moved on meanwhile
  $("meter-title").textContent = m.username + " (meter " + m.id + ")";
  $("meter-state-badge").replaceChildren(stateBadge(m.state));
  $("meter-export").hidden = false;
  $("meter-consumption").hidden = false;
  $("meter-readings").hidden = false;
  const r = m.lastReading;
  const facts = [
    ["Algorithm", m.algorithm], ["Registered", when(m.registeredAt)],
    ["Last reading", r ? ago(r.timestamp) : "never"],
    ["Import register", r ? register(r.whIn) : "–"], ["Export register", r ? register(r.whOut) : "–"],
    ["Key fingerprint", m.fingerprint.slice(0, 16) + "…"],
  ];
  if (m.lastRejection) facts.push(["Last rejection", m.lastRejection.reason + ", " + ago(m.lastRejection.at)]);
  $("meter-facts").replaceChildren(...facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  const win = meterWindow(m, firstReadings[id], parseHash().params);
  $("meter-range").value = win.range;
  $("meter-export").href = `/meters/${id}/export.csv` + (win.range === "custom" ?
    `?from=${new Date(win.from).toISOString()}&to=${new Date(win.to).toISOString()}` : "");
  await Promise.all([showConsumption(id, win, current), showReadings(id, current)]).catch((e) => console.warn("meter " + id + ":", e));
}

async function showConsumption(id, win, current) {
  const [bucket] = bucketFor(win.to - win.from);
  const c = await getJSON(`/meters/${id}/consumption?bucket=${bucket}&from=${Math.floor(win.from)}&to=${Math.ceil(win.to)}`);
  if (!current()) return;
  let max = 0, missing = 0;
  for (const b of c.buckets) {
    if (b.complete) max = Math.max(max, b.whIn, b.whOut); else missing++;
  }
  const unit = energyUnit(max);
  $("consumption-unit").textContent = unit.name + " per bucket";
  const xs = [], ins = [], outs = [];
  for (const b of c.buckets) {
    xs.push(Date.parse(b.start) / 1000);
    ins.push(b.complete ? b.whIn / unit.div : null);
    outs.push(b.complete ? b.whOut / unit.div : null);
  }
  $("consumption-note").textContent =
    `${when(Date.parse(c.from))} to ${when(Date.parse(c.to))}, ${bucket} buckets: ` +
    `${energy(c.total.whIn)} imported, ${energy(c.total.whOut)} exported` +
    (missing ? ` · ${missing} of ${c.buckets.length} buckets without data on both edges are left blank` : "") +
    (win.range === "custom" ? " · double-click the chart to zoom out" : " · drag across the chart to zoom");
  const key = [id, bucket, unit.name, tz].join("|");
  const data = [xs, ins, outs];
  if (consumptionPlot && consumptionKey === key) {
    consumptionPlot.setData(data);
    return;
  }
  if (consumptionPlot) consumptionPlot.destroy();
  consumptionKey = key;
  consumptionUnit = unit;
  const fmtE = (v) => consumptionUnit.fmt.format(v) + " " + consumptionUnit.name;
  const value = (u, v) => v == null ? "–" : fmtE(v);
  // Import and export side by side in each bucket.
  const barsIn = uPlot.paths.bars({ size: [0.4, 30], align: -1 });
  const barsOut = uPlot.paths.bars({ size: [0.4, 30], align: 1 });
  consumptionPlot = new uPlot({
    width: chartWidth("consumption-chart"), height: 300, tzDate: chartDate,
    scales: { x: { time: true } },
    cursor: { drag: { x: true, y: false, setScale: false } },
    hooks: { setSelect: [zoomTo] },
    series: [
      { value: (u, v) => v == null ? "–" : when(v * 1e3) },
      { label: "Import", stroke: cssVar("--import"), fill: cssVar("--import-bar"), paths: barsIn, points: { show: false }, value },
      { label: "Export", stroke: cssVar("--export"), fill: cssVar("--export-bar"), paths: barsOut, points: { show: false }, value },
    ],
    axes: [axis(), axis({ size: 80, values: (u, vs) => vs.map(fmtE) })],
  }, data, $("consumption-chart"));
  consumptionPlot.over.addEventListener("dblclick", () => {
    if (!parseHash().params.get("from")) return;
    setParams({ from: null, to: null });
    showMeter(currentMeter);
  });
}

// zoomTo keeps a drag-selected window in the URL and shows it, in finer
// buckets where they fit: the refresh then shows the same window.
function zoomTo(u) {
  if (u.select.width < 5) return;
  const from = u.posToVal(u.select.left, "x") * 1e3, to = u.posToVal(u.select.left + u.select.width, "x") * 1e3;
  u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
  if (!(to - from >= MIN)) return;
  setParams({ range: null, from: new Date(from).toISOString(), to: new Date(to).toISOString() });
  showMeter(currentMeter);
}

async function showReadings(id, current) {
  const page = await getJSON(`/meters/${id}/readings?from=0&order=desc&limit=20`);
  if (!current()) return;
  const rows = page.readings.map((r) =>
    el("tr", {},
      el("td", { "data-ts": r.timestamp }, when(r.timestamp)),
      el("td", { class: "narrow-hide", title: when(r.receivedAt) }, ago(r.receivedAt)),
      el("td", { class: "num" }, register(r.whIn)),
      el("td", { class: "num" }, register(r.whOut))));
  $("reading-rows").replaceChildren(...(rows.length ? rows :
    [el("tr", {}, el("td", { colspan: "4", class: "empty" }, "No readings yet"))]));
}

// ---- routing and refresh ------------------------------------------------------------------

function route() {
  const { meter, params } = parseHash();
  const t = params.get("tz");
  if (t === "utc" || t === "local") { tz = t; localStorage.setItem("smartmeters.tz", t); }
  updateLinks();
  $("fleet-view").hidden = !!meter;
  $("meter-view").hidden = !meter;
  if (meter) {
    if (meter !== currentMeter) clearMeter("Meter " + meter);
    currentMeter = meter;
    showMeter(meter);
    return;
  }
  currentMeter = null;
  $("fleet-range").value = fleetRanges[params.get("range")] ? params.get("range") : "30m";
  $("meter-state").value = stateLabels[params.get("state")] ? params.get("state") : "";
  $("meter-sort").value = params.get("sort") in sorts ? params.get("sort") : "id";
  $("meter-filter").value = params.get("q") || "";
  metersShown = PAGE;
  loadMeters();
  refreshFleet();
}

// refresh shows the view's figures anew; body's data-refreshes counts the
// refreshes done.
let refreshing = false;

async function refresh() {
  if (refreshing) return; // a slow server is not asked twice at once
  refreshing = true;
  try {
    await (currentMeter ? showMeter(currentMeter) : Promise.all([refreshFleet(), loadMeters()]));
  } finally {
    refreshing = false;
  }
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}

function setZone(z) {
  tz = z;
  localStorage.setItem("smartmeters.tz", z);
  setParams({ tz: z === "utc" ? "utc" : null });
  consumptionKey = powerKey = ""; // charts are drawn again in the new zone
  refresh();
}

let filterTimer = null;
$("meter-filter").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => { setParams({ q: $("meter-filter").value.trim() }); metersShown = PAGE; loadMeters(); }, 250);
});
$("meter-state").addEventListener("change", () => { setParams({ state: $("meter-state").value }); metersShown = PAGE; loadMeters(); });
$("meter-sort").addEventListener("change", () => { setParams({ sort: $("meter-sort").value === "id" ? null : $("meter-sort").value }); loadMeters(); });
$("more-meters").addEventListener("click", () => { metersShown += PAGE; loadMeters(); });
$("fleet-range").addEventListener("change", () => { setParams({ range: $("fleet-range").value === "30m" ? null : $("fleet-range").value }); refreshFleet(); });
$("meter-range").addEventListener("change", () => {
  if ($("meter-range").value === "custom") return;
  setParams({ range: $("meter-range").value, from: null, to: null });
  if (currentMeter) showMeter(currentMeter);
});
for (const b of document.querySelectorAll(".tz button")) b.addEventListener("click", () => setZone(b.dataset.tz));
window.addEventListener("hashchange", route);
window.addEventListener("resize", () => {
  if (powerPlot) powerPlot.setSize({ width: chartWidth("power-chart"), height: 300 });
  if (consumptionPlot) consumptionPlot.setSize({ width: chartWidth("consumption-chart"), height: 300 });
});
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => { consumptionKey = powerKey = ""; refresh(); });

tz = localStorage.getItem("smartmeters.tz") === "utc" ? "utc" : "local";
setInterval(refresh, REFRESH);
route();
connect();
