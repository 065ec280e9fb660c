// Only on the kit's own screen (kit/web/kiosk.py adds it to the kiosk's pages).
// 1. A service worker answers a navigation the kit cannot answer with the local "starting…" page.
// 2. Every few seconds: is the kit there (if not, reload: the worker shows "starting…") and is this
//    screen still signed in (a lead may sign it out from the dashboard: then show the PIN pad).
(function () {
  "use strict";
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/kiosk/sw.js", { scope: "/" }).catch(() => {});
  }
  document.addEventListener("contextmenu", (e) => e.preventDefault()); // long press: no menu
  const EVERY_MS = 4000, MISSES_BEFORE_RELOAD = 2;
  let misses = 0;
  async function poll() {
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), 3000);
    try {
      const r = await fetch("/kiosk/state", { cache: "no-store", signal: stop.signal, credentials: "same-origin" });
      misses = 0;
      if (!r.ok) return;
      const s = await r.json();
      const here = location.pathname;
      if (s.slip !== (here === "/kiosk/slip")) location.replace("/kiosk");
      else if ((!s.kiosk || !s.signed_in) && here !== "/login" && here !== "/kiosk/slip") location.replace("/kiosk");
    } catch (e) {
      if (++misses >= MISSES_BEFORE_RELOAD) location.replace(location.href);
    } finally {
      clearTimeout(timer);
    }
  }
  setInterval(poll, EVERY_MS);
})();
