/* Field Kit page helpers: fk.post (JSON with the CSRF header) and fk.subscribe (live bus messages). */
(function () {
  "use strict";
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function post(url, body, opts) {
    const isForm = body instanceof FormData;
    const res = await fetch(url, Object.assign({
      method: "POST",
      credentials: "same-origin",
      headers: isForm ? { "X-CSRF-Token": csrf() } : { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: isForm ? body : JSON.stringify(body === undefined ? {} : body),
    }, opts || {}));
    let data = null;
    try { data = await res.json(); } catch (e) { data = { error: "the kit sent an unreadable answer" }; }
    if (!res.ok && data && !data.error) data.error = "HTTP " + res.status;
    return { ok: res.ok, status: res.status, data: data };
  }

  async function get(url) {
    const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { ok: res.ok, status: res.status, data: data };
  }

  // MQTT-style matching on topics relative to fieldkit/<kit>/ ("+" one level, "#" the rest).
  function matches(pattern, topic) {
    const p = pattern.split("/"), t = topic.split("/");
    for (let i = 0; i < p.length; i++) {
      if (p[i] === "#") return true;
      if (i >= t.length || (p[i] !== "+" && p[i] !== t[i])) return false;
    }
    return p.length === t.length;
  }

  const handlers = [];
  let source = null;
  function connect() {
    const patterns = [...new Set(handlers.map(h => h.pattern))].join(",");
    if (source) source.close();
    source = new EventSource("/events?topics=" + encodeURIComponent(patterns));
    source.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      for (const h of handlers) if (matches(h.pattern, msg.topic)) {
        try { h.fn(msg.payload, msg.topic); } catch (e) { console.error(e); }
      }
    };
    source.onopen = () => { document.body.classList.remove("disconnected"); document.body.dataset.stream = "open"; };
    source.onerror = () => {
      document.body.classList.add("disconnected");
      document.body.dataset.stream = "closed";  // what a test (or a kiosk watchdog) can wait on
      // The browser retries by itself after a dropped stream, but not after a refusal (a 503 while the kit's
      // stream slots are full, a restart answering 502): then this page asks again a little later.
      if (source.readyState === EventSource.CLOSED) { clearTimeout(pending); pending = setTimeout(connect, 3000); }
    };
  }
  let pending = null;
  function subscribe(pattern, fn) {
    handlers.push({ pattern: pattern, fn: fn });
    clearTimeout(pending);
    pending = setTimeout(connect, 0);  // one stream per page, opened once the page has subscribed
  }

  function fmtMoney(cents, currency) {
    const sign = cents < 0 ? "-" : "";
    const a = Math.abs(cents);
    return sign + Math.floor(a / 100) + "." + String(a % 100).padStart(2, "0") + (currency ? " " + currency : "");
  }

  window.fk = { post: post, get: get, subscribe: subscribe, matches: matches, money: fmtMoney };

  // --- the header: a Menu on narrow screens, and the kit's state live from the stream ------------------
  const top = document.getElementById("top"), toggle = document.getElementById("nav-toggle");
  if (toggle) {
    toggle.addEventListener("click", () => {
      const open = top.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.addEventListener("click", (e) => {
      if (top.classList.contains("open") && !top.contains(e.target)) { top.classList.remove("open"); toggle.setAttribute("aria-expanded", "false"); }
    });
  }

  // Every role sees one word for the kit and, on the door and merch screens, the device that screen needs:
  // the stream gives a door or merch session only the role-safe parts (kit/web/stream_roles.py).
  const pill = document.getElementById("kit-state");
  if (pill) {
    const role = document.body.dataset.role;
    const device = { door: "checkin", merch: "pos" }[role];
    const st = { kit: null, services: {}, reasons: {}, printer: null };
    const KIT_WORDS = { online: "Kit ok", degraded: "Kit degraded", offline: "Kit offline" };
    function render() {
      let cls = "unknown", words = "Kit: connecting…", title = "";
      const down = Object.keys(st.services).filter((n) => st.services[n] !== "ok");
      if (document.body.classList.contains("disconnected")) { cls = "offline"; words = "No connection to the kit"; }
      else if (role === "merch" && st.printer && st.printer.printer !== "online") {
        cls = st.printer.printer === "unknown" ? "degraded" : "offline";
        words = { no_paper: "Printer: no paper", unknown: "Printer: no news" }[st.printer.printer] || "Printer offline";
        title = (st.printer.reason || "") + " — receipts queue";
      } else if (device && st.services[device] && st.services[device] !== "ok") {
        cls = st.services[device] === "degraded" ? "degraded" : "offline";
        // the door's reason names the scanner or camera ("Camera not found"): the words staff can act on
        words = role === "door" ? (st.reasons[device] || "Scanner: " + st.services[device]) : "Merch: " + st.services[device];
        title = st.reasons[device] || "";
      } else if (st.kit) {
        cls = { online: "ok", degraded: "degraded" }[st.kit] || "offline";
        words = KIT_WORDS[st.kit] || "Kit " + st.kit;
        if (role === "lead" && down.length) {
          cls = cls === "ok" ? "degraded" : cls;
          words = down.length === 1 ? down[0] + ": " + st.services[down[0]] : down.length + " problems";
          title = down.map((n) => n + ": " + (st.reasons[n] || st.services[n])).join("; ");
        } else if (role === "merch" && st.printer && st.printer.printer === "online" && cls === "ok") words = "Kit ok · printer ready";
      } else if (Object.keys(st.services).length) {  // no word from the status service (yet): the services' own
        cls = down.length ? "degraded" : "ok";
        words = !down.length ? "Kit ok" : role === "lead" && down.length === 1 ? down[0] + ": " + st.services[down[0]]
          : down.length + (down.length === 1 ? " service down" : " services down");
        if (role === "lead") title = down.map((n) => n + ": " + (st.reasons[n] || st.services[n])).join("; ");
      }
      pill.className = "kit-state " + cls;
      pill.title = title;
      pill.dataset.state = cls;
      document.getElementById("kit-state-text").textContent = words;
    }
    subscribe("status", (s) => {
      st.kit = s.state;
      if (s.services) for (const n in s.services) if (!(n in st.reasons)) st.services[n] = s.services[n];
      render();
    });
    subscribe("+/health", (h, topic) => {
      const n = topic.split("/")[0];
      st.services[n] = h.state; st.reasons[n] = h.reason || "";
      render();
    });
    if (role === "merch") subscribe("pos/state", (p) => { st.printer = p; render(); });
    new MutationObserver(render).observe(document.body, { attributes: true, attributeFilter: ["class"] });
  }

  // The slot running now on the run-sheet, in the header of every screen (door, merch, lead alike).
  const kitName = document.getElementById("kit-name");
  if (kitName) {
    const showSlot = (s) => {  // the lead service publishes lead/state again whenever the slot changes
      const cur = s && s.current, running = !!cur;
      kitName.textContent = running ? "Now: " + cur.name + (cur.stage ? " · " + cur.stage : "") : kitName.dataset.plain;
      kitName.title = running ? kitName.dataset.plain : "";
      kitName.dataset.slot = running ? cur.name : "";
    };
    get("/api/v1/lead/now").then((r) => { if (r.ok) showSlot(r.data); });
    subscribe("lead/state", showSlot);
  }
})();
