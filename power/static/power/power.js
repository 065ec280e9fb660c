/* The power page: live tiles from power/state, and a chart drawn here as inline SVG (no library). */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const fmt = (v, digits, unit) => (v === null || v === undefined) ? "—" : Number(v).toFixed(digits) + (unit || "");
  let hours = 24;

  function hoursText(h) {
    if (h === null || h === undefined) return "";
    if (h >= 48) return "about " + Math.round(h / 24) + " days at this load";
    if (h >= 1) return "about " + Math.round(h) + " h at this load";
    return "about " + Math.max(1, Math.round(h * 60)) + " min at this load";
  }

  function render(s) {
    const live = !!s.live;
    $("power-live").textContent = live ? "· live" : "· not live";
    $("power-live").className = live ? "green" : "red";
    const stale = $("power-stale");
    stale.hidden = live;
    stale.textContent = live ? "" : "No live power readings: " + (s.reason || "unknown") + ".";
    const b = s.battery || {}, sol = s.solar || {}, load = s.load || {}, est = s.estimate || {};
    $("tile-battery").classList.toggle("stale", !b.available);
    $("tile-solar").classList.toggle("stale", !sol.available);
    $("tile-load").classList.toggle("stale", !load.available);
    $("battery-soc").textContent = b.soc !== null && b.soc !== undefined ? fmt(b.soc, 0, " %") : fmt(b.voltage, 2, " V");
    $("battery-detail").textContent = b.available ?
      [fmt(b.voltage, 2, " V"), fmt(b.current, 1, " A"), fmt(b.power, 0, " W")].join(" · ") : "unavailable";
    $("time-left").textContent = hoursText(est.hours_left);
    $("solar-power").textContent = fmt(sol.power, 0, " W");
    $("solar-detail").textContent = sol.available ?
      [fmt(sol.voltage, 1, " V"), sol.charge_state || "", "today " + fmt(sol.yield_today_kwh, 2, " kWh")].join(" · ") :
      "unavailable";
    $("solar-error").textContent = sol.error ? "Charger error: " + sol.error : "";
    $("load-power").textContent = fmt(load.consumption_w, 0, " W");
    $("load-detail").textContent = load.output_on === null || load.output_on === undefined ? "" :
      "load output " + (load.output_on ? "on" : "off");
    const low = $("power-low");
    low.hidden = !s.low || s.low === "ok";
    low.className = "banner " + (s.low === "critical" ? "fail" : "warn");
    low.textContent = s.low === "critical" ? "Battery critical: the kit is shutting down cleanly." :
      (s.low === "warning" ? "Battery low: charge or swap the battery soon." : "");
  }

  const NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Split a series into runs without gaps: a null value or a jump in time longer than `gap` breaks the line.
  function path(samples, key, x, y, gap) {
    let d = "", prevT = null;
    for (const s of samples) {
      const v = s[key];
      if (v === null || v === undefined) { prevT = null; continue; }
      d += (prevT === null || s.t - prevT > gap ? "M" : "L") + x(s.t).toFixed(1) + "," + y(v).toFixed(1);
      prevT = s.t;
    }
    return d;
  }

  function drawChart(data, since, until) {
    const W = 800, H = 300, L = 44, R = 52, T = 12, B = 30;
    const box = $("power-chart");
    const svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img" });
    svg.appendChild(el("title", {}, "Battery % and solar W over the last " + (hours >= 48 ? Math.round(hours / 24) + " days" : hours + " h")));
    const samples = data.samples || [];
    const maxW = Math.max(10, ...samples.map(s => s.solar_w || 0));
    const x = (t) => L + (t - since) / Math.max(1, until - since) * (W - L - R);
    const ySoc = (v) => T + (1 - v / 100) * (H - T - B);
    const yW = (v) => T + (1 - v / maxW) * (H - T - B);
    const grid = el("g", { class: "grid" });
    for (let p = 0; p <= 100; p += 25) {
      grid.appendChild(el("line", { x1: L, x2: W - R, y1: ySoc(p), y2: ySoc(p) }));
      svg.appendChild(el("text", { x: L - 6, y: ySoc(p) + 4, "text-anchor": "end" }, p + "%"));
      svg.appendChild(el("text", { x: W - R + 6, y: ySoc(p) + 4 }, Math.round(maxW * p / 100) + " W"));
    }
    const span = until - since, ticks = 6;
    for (let i = 0; i <= ticks; i++) {
      const t = since + span * i / ticks, d = new Date(t * 1000);
      const label = span > 2 * 86400 ? (d.getMonth() + 1) + "/" + d.getDate() :
        String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
      grid.appendChild(el("line", { x1: x(t), x2: x(t), y1: T, y2: H - B }));
      svg.appendChild(el("text", { x: x(t), y: H - 8, "text-anchor": "middle" }, label));
    }
    svg.insertBefore(grid, svg.firstChild);
    const step = samples.length > 1 ? (until - since) / Math.max(1, samples.length) : 60;
    const gap = Math.max(step * 3, data.resolution === "fine" ? 40 : 1200);
    svg.appendChild(el("path", { class: "solar", d: path(samples, "solar_w", x, yW, gap) }));
    svg.appendChild(el("path", { class: "soc", d: path(samples, "soc", x, ySoc, gap) }));
    box.replaceChildren(svg);
    $("chart-note").textContent = samples.length ? samples.length + " points (" + data.resolution + " resolution)" :
      "No history yet for this period.";
  }

  async function loadChart() {
    const until = Date.now() / 1000, since = until - hours * 3600;
    const r = await fk.get("/api/v1/power/history?since=" + Math.floor(since));
    if (r.ok) drawChart(r.data, since, until);
    else $("chart-note").textContent = (r.data && r.data.error) || "history unavailable";
  }

  document.querySelectorAll("#range-buttons button").forEach((b) => b.addEventListener("click", () => {
    hours = Number(b.dataset.hours);
    document.querySelectorAll("#range-buttons button").forEach((o) => o.classList.toggle("primary", o === b));
    loadChart();
  }));

  // Readings arrive over the bus; the age check lives in the API, so refresh it when messages stop.
  let lastMessage = Date.now();
  fk.subscribe("power/state", (s) => { lastMessage = Date.now(); render(Object.assign({ live: true }, s)); });
  fk.subscribe("power/health", (h) => { if (h.state === "offline") refreshState(); });
  async function refreshState() {
    const r = await fk.get("/api/v1/power/state");
    if (r.ok) render(r.data);
  }
  setInterval(() => { if (Date.now() - lastMessage > 5000) refreshState(); }, 5000);
  setInterval(loadChart, 60000);
  render(JSON.parse($("power-initial").textContent));
  loadChart();
})();
