// The kiosk's service worker (registered by kiosk.js on the kit's own screen only): when the kit's
// web process is down or restarting, a navigation gets the local "starting…" page, which waits for
// the kit and then loads the page again, instead of the browser's "This site can't be reached".
const CACHE = "fieldkit-kiosk-1";
const STARTING = "/static/kiosk-starting.html";

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.add(STARTING)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener("fetch", (event) => {
  if (event.request.mode !== "navigate") return; // everything else goes to the kit as usual
  event.respondWith(fetch(event.request).catch(() => caches.match(STARTING, { cacheName: CACHE })));
});
