/* The door screen: verdicts from the event stream, counts, instant search, manual admit, demo panel. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const door = $("door");
  const isLead = door.dataset.role === "lead";
  const WORDS = { green: "ADMIT", red: "STOP", amber: "CALL A LEAD" };
  // A flagged guest is admitted and counted in: the word says both, so a second scan's "ALREADY IN" is no surprise.
  const AMBER_ADMIT = "ADMIT — CALL A LEAD";
  // The three meanings of the GPIO buzzer: admitted, refused, admitted-but-get-a-lead.
  const SOUNDS = { green: "admit", red: "reject", amber: "lead" };
  const VERDICT_WORDS = { exit: "EXIT", admit_reentry: "RE-ENTRY", already_in: "ALREADY IN", blocked: "BLOCKED" };
  let rehearsal = door.dataset.rehearsal === "true";
  let direction = door.dataset.direction;
  let fullTimer = null;

  function text(el, value) { el.textContent = value == null ? "" : String(value); }

  function showVerdict(v) {
    const admitted = v.verdict === "admit" || v.verdict === "admit_reentry";
    const word = (admitted && v.colour === "amber") ? AMBER_ADMIT : (VERDICT_WORDS[v.verdict] || WORDS[v.colour] || v.verdict);
    if (window.fkSound) fkSound.play(SOUNDS[v.colour] || "reject");
    const who = [v.name, v.ticket_type].filter(Boolean).join(" · ");
    for (const [box, w, h, y] of [[$("verdict"), $("verdict-word"), $("verdict-who"), $("verdict-why")],
                                   [$("verdict-full"), $("full-word"), $("full-who"), $("full-why")]]) {
      box.className = (box.id === "verdict" ? "verdict " : "verdict-full ") + v.colour + (v.rehearsal ? " rehearsal" : "");
      box.dataset.verdict = v.verdict;
      text(w, (v.rehearsal ? "PRACTICE: " : "") + word);
      w.classList.toggle("long", w.textContent.length > 12);
      text(h, who);
      text(y, v.reason);
    }
    const full = $("verdict-full");
    full.hidden = false;
    clearTimeout(fullTimer);
    fullTimer = setTimeout(() => { full.hidden = true; }, 2500);
  }
  $("verdict-full").addEventListener("click", () => { $("verdict-full").hidden = true; });

  function renderScans(rows) {
    const ul = $("last-scans");
    ul.replaceChildren();
    for (const s of rows) {
      const li = document.createElement("li");
      if (s.undone) li.className = "undone";
      const dot = document.createElement("span");
      dot.className = "dot " + s.colour;
      const info = document.createElement("span");
      info.className = "info";
      const who = [s.name || s.order_code, s.ticket_type].filter(Boolean).join(" · ");
      text(info, `#${s.seq} ${s.time} ${s.verdict.replace(/_/g, " ")}${who ? " — " + who : ""}${s.rehearsal ? " (practice)" : ""}`);
      li.append(dot, info);
      if (isLead && (s.admitted || s.verdict === "exit") && !s.undone) {
        const b = document.createElement("button");
        b.className = "btn"; b.type = "button"; b.textContent = "Undo";
        b.onclick = async () => {
          const reason = prompt("Why undo this admission?", "scanned by mistake");
          if (reason === null) return;
          const r = await fk.post("/api/v1/checkin/undo", { seq: s.seq, reason: reason });
          text($("action-result"), r.ok ? `Scan #${s.seq} undone` : r.data.error);
          refresh();
        };
        li.append(b);
      }
      ul.append(li);
    }
  }

  function renderArrivals(counts) {
    const svg = $("arrivals");
    const max = Math.max(1, ...counts);
    svg.replaceChildren();
    counts.forEach((n, i) => {
      const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      const h = 38 * n / max;
      r.setAttribute("x", i * 10 + 1); r.setAttribute("width", 8);
      r.setAttribute("y", 40 - h); r.setAttribute("height", h);
      svg.append(r);
    });
  }

  // arrivals[14] is the current clock minute (as /api/v1/checkin/stats counts them)
  let lastScans = [], arrivals = new Array(15).fill(0), arrivalsMinute = Math.floor(Date.now() / 60000);

  function renderCounts(s) {
    text($("count-in"), s.in);
    text($("count-expected"), s.expected);
    const table = $("by-type");
    table.replaceChildren();
    for (const t of s.by_type) {
      const tr = document.createElement("tr");
      const a = document.createElement("td"), b = document.createElement("td");
      text(a, t.type); text(b, `${t.in} / ${t.expected}`);
      tr.append(a, b); table.append(tr);
    }
    const m = s.by_method || {};
    text($("by-method"), `admitted by scan ${m.scan || 0} · second check ${m.second_check || 0} · lead ${m.lead_override || 0}`);
  }

  function renderStats(s) {
    renderCounts(s);
    arrivals = s.arrivals_last_15_min.slice();
    arrivalsMinute = Math.floor(Date.now() / 60000);
    renderArrivals(arrivals);
    lastScans = s.last_scans;
    renderScans(lastScans);
    text($("peers"), (s.peers || []).map(p => `${p.kit}: last heard ${new Date(p.last_seen * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`).join(" · "));
    setMode(s.rehearsal, s.direction);
    const doubles = s.double_admissions || [];
    const banner = $("double-banner");
    banner.hidden = doubles.length === 0;
    if (doubles.length) {
      const d = doubles[doubles.length - 1];
      text(banner, `Double admission: ${d.name || "a ticket"} at ${d.first.door} ${d.first.time} and ${d.second.door} ${d.second.time}` +
                   (doubles.length > 1 ? ` (+${doubles.length - 1} more)` : "") + " — tell a lead");
    }
  }

  function setMode(r, dir) {
    rehearsal = r; direction = dir;
    $("rehearsal-banner").hidden = !r;
    text($("direction"), dir);
    // the state and the action apart: "Rehearsal: ON" beside "Stop rehearsal"
    if ($("rehearsal-state")) {
      text($("rehearsal-state"), r ? "Rehearsal: ON" : "Rehearsal: off");
      $("rehearsal-state").classList.toggle("on", r);
    }
    if ($("rehearsal-btn")) text($("rehearsal-btn"), r ? "Stop rehearsal" : "Start rehearsal");
    if ($("direction-btn")) text($("direction-btn"), dir === "exit" ? "Switch to entries" : "Switch to exits");
  }

  let refreshing = false;
  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const r = await fk.get("/api/v1/checkin/stats");
      if (r.ok) renderStats(r.data);
    } finally { refreshing = false; }
  }

  // Search: instant, newest answer wins.
  let searchSeq = 0, searchTimer = null;
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, 80);
  });
  async function runSearch() {
    const q = $("search").value.trim();
    const mine = ++searchSeq;
    if (q.length < 2) { $("results").replaceChildren(); return; }
    const r = await fk.get("/api/v1/checkin/search?q=" + encodeURIComponent(q));
    if (mine !== searchSeq || !r.ok) return;
    const ul = $("results");
    ul.replaceChildren();
    if (!r.data.results.length) {
      const li = document.createElement("li"); text(li, "No guest found"); ul.append(li);
    }
    for (const g of r.data.results) {
      const li = document.createElement("li");
      const info = document.createElement("span");
      info.className = "info";
      const state = g.inside ? ` — IN (${g.checked_in})` : (g.status !== "valid" ? ` — ${g.status.toUpperCase()}` : "");
      text(info, `${g.name} · ${g.ticket_type} · ${g.order_code} · ${g.email}${state}`);
      li.append(info);
      const admittable = !g.inside && g.status === "valid" && g.can_admit !== false;
      if (!g.inside && g.status === "valid" && g.can_admit === false) {
        // say why before anyone tries: no Admit button that the kit would then refuse
        const why = document.createElement("span");
        why.className = "refusal"; text(why, g.admit_refusal);
        li.append(why);
      }
      if (admittable || (g.status === "valid" && !g.revoked)) {
        // the guest is in (someone else used the code?) or cannot be admitted: a lead may still reissue
        const b = document.createElement("button");
        b.className = "btn" + (admittable ? " ok" : ""); b.type = "button";
        b.textContent = admittable ? "Admit" : "Reissue";
        b.onclick = () => openAdmit(g, admittable);
        li.append(b);
      } else if (g.revoked && isLead) {
        // a lead lifts a revocation (a file's, this door's or another door's) with a reason: shared with the site
        const b = document.createElement("button");
        b.className = "btn"; b.type = "button"; b.textContent = "Lift";
        b.onclick = async () => {
          const reason = prompt("Why may this code admit again?", "");
          if (!reason) return;
          const r = await fk.post("/api/v1/checkin/lift", { ticket_key: g.ticket_key, reason: reason });
          text($("action-result"), r.ok ? `Revocation lifted: ${g.name}` : r.data.error);
          runSearch();
        };
        li.append(b);
      }
      ul.append(li);
    }
  }

  // The attendee: a second check (two identifiers the list holds), else a lead admits or reissues.
  let admitting = null;
  function openAdmit(g, admittable) {
    admitting = g;
    text($("admit-name"), g.name);
    text($("admit-detail"), `${g.ticket_type} · order ${g.order_code} · ${g.email}` + (g.attention ? " · needs special attention" : ""));
    const consent = Object.entries(g.consent || {}).map(([k, v]) => `${k}: ${v}`).join(" · ");
    text($("admit-consent"), consent ? "Consent — " + consent : "");
    const box = $("check-inputs");
    box.replaceChildren();
    for (const f of g.identifiers || []) {
      const wrap = document.createElement("div");
      const label = document.createElement("label"), input = document.createElement("input");
      input.id = "check-" + f.field; input.dataset.field = f.field; input.autocomplete = "off";
      if (f.field === "phone_last4") { input.inputMode = "numeric"; input.maxLength = 4; }
      label.htmlFor = input.id; text(label, f.label);
      wrap.append(label, input); box.append(wrap);
    }
    $("check-fields").hidden = (g.identifiers || []).length < 2;
    $("admit-confirm").hidden = !admittable || (g.identifiers || []).length < 2;
    $("override-btn").hidden = !admittable;
    $("lead-part").open = !admittable || (g.identifiers || []).length < 2;
    $("admit-reason").value = "";
    if ($("lead-pin")) $("lead-pin").value = "";
    text($("admit-error"), "");
    $("admit-dialog").showModal();
  }
  function identifiers() {
    const out = {};
    for (const input of $("check-inputs").querySelectorAll("input")) if (input.value.trim()) out[input.dataset.field] = input.value;
    return out;
  }
  function leadPart() {
    const body = { ticket_key: admitting.ticket_key, reason: $("admit-reason").value };
    if ($("lead-pin")) body.lead_pin = $("lead-pin").value;
    return body;
  }
  async function admitRequest(body) {
    const r = await fk.post("/api/v1/checkin/admit", body);
    if (!r.ok) { text($("admit-error"), r.data.error); return; }
    $("admit-dialog").close();
    admitting = null;
    runSearch();
  }
  $("admit-confirm").onclick = () => admitRequest({ ticket_key: admitting.ticket_key, identifiers: identifiers(), reason: "" });
  $("override-btn").onclick = () => admitRequest(leadPart());
  $("admit-cancel").onclick = () => { $("admit-dialog").close(); admitting = null; };
  $("reissue-btn").onclick = async () => {
    const body = leadPart();
    const given = identifiers();
    if (Object.keys(given).length) body.identifiers = given;
    const r = await fk.post("/api/v1/checkin/reissue", body);
    if (!r.ok) { text($("admit-error"), r.data.error); return; }
    $("admit-dialog").close();
    admitting = null;
    $("reissued-qr").innerHTML = r.data.qr_svg;  // an SVG the kit drew (segno), no outside content
    text($("reissued-code"), r.data.ticket_key);
    text($("reissued-detail"), `${r.data.name} · ${r.data.ticket_type} — the old code is revoked at every door. ` +
         (r.data.printed ? "Printing on the receipt printer." : "Printer not reachable: let the guest photograph this."));
    $("reissued-dialog").showModal();
    runSearch();
  };
  $("reissued-close").onclick = () => $("reissued-dialog").close();

  async function modeChange(body) {
    const r = await fk.post("/api/v1/checkin/mode", body);
    if (r.ok) setMode(r.data.rehearsal, r.data.direction); else text($("action-result"), r.data.error);
  }
  if ($("direction-btn")) $("direction-btn").onclick = () => modeChange({ direction: direction === "exit" ? "entry" : "exit" });
  if ($("rehearsal-btn")) $("rehearsal-btn").onclick = () => modeChange({ rehearsal: !rehearsal });
  if ($("print-sheet-btn")) $("print-sheet-btn").onclick = async () => {
    const r = await fk.post("/api/v1/checkin/rehearsal-sheet/print", {});
    text($("action-result"), r.ok ? `Practice tickets sent to the receipt printer (${r.data.tickets})` : r.data.error);
  };

  for (const b of document.querySelectorAll("#demo-panel [data-sample]")) {
    b.onclick = async () => {
      const r = await fk.post("/api/v1/checkin/demo/show", { sample: b.dataset.sample, source: $("demo-source").value });
      if (!r.ok) text($("action-result"), r.data.error);
    };
  }

  // A verdict carries the door's counts: update from it alone, no stats request per scan.
  function applyVerdict(v) {
    if (v.counts) renderCounts(v.counts);
    if (v.verdict === "admit" && !v.rehearsal) {
      const minute = Math.floor(v.at / 60), shift = Math.min(15, minute - arrivalsMinute);
      if (shift > 0) {
        arrivals = arrivals.slice(shift).concat(new Array(shift).fill(0));
        arrivalsMinute = minute;
      }
      const i = 14 - (arrivalsMinute - minute);
      if (i >= 0) arrivals[i] += 1;
      renderArrivals(arrivals);
    }
    lastScans = [{ ...v, undone: false }].concat(lastScans.filter((s) => s.seq !== v.seq)).slice(0, 12);
    renderScans(lastScans);
  }
  // Rare events (undo, mode, a peer's scan, a double admission) re-read the stats, at most every 2 s.
  let refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, 2000);
  }
  fk.subscribe("checkin/event/scanned", (v) => { showVerdict(v); if (v.counts) applyVerdict(v); else refresh(); });
  fk.subscribe("checkin/event/+", (_m, topic) => { if (!topic.endsWith("/scanned")) refreshSoon(); });
  fk.subscribe("checkin/preview", (m) => {
    if (!m.jpeg) return;
    $("preview").src = "data:image/jpeg;base64," + m.jpeg;
    $("preview").hidden = false; $("preview-none").hidden = true;
  });
  if (window.fkSound) fkSound.controls($("sound-controls"));
  // Back on the live stream after a gap (kit.js marks the page disconnected): re-read what was missed.
  let wasDown = false;
  new MutationObserver(() => {
    const down = document.body.classList.contains("disconnected");
    if (wasDown && !down) refresh();
    wasDown = down;
  }).observe(document.body, { attributes: true, attributeFilter: ["class"] });
  refresh();
  setInterval(refresh, 30000);  // slow refresh: arrivals age, peers' cursors, anything missed while offline
})();
