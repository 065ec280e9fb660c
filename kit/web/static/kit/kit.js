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
    source.onopen = () => document.body.classList.remove("disconnected");
    source.onerror = () => document.body.classList.add("disconnected");
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
})();
