// The handheld's service worker (served as /ui/sw.js, scope /ui/): the sampling
// page and its assets load with no network. Pages are network-first (a fresh
// page when online, the last one when not); assets cache-first. The JSON API is
// never cached: operations wait in the page's IndexedDB queue instead.
"use strict";
const CACHE = "handheld-v1";
const SHELL = [
  "/ui/scan",
  "/ui/static/app.css",
  "/ui/static/app.js",
  "/ui/static/favicon.svg",
  "/ui/static/vendor/htmx/htmx.min.js",
  "/ui/static/scan/checks.js",
  "/ui/static/scan/scan.js",
  "/ui/static/scan/scan.css",
  "/ui/static/scan/manifest.json",
];
const PAGES = ["/ui/scan", "/ui/scan/pair"];

self.addEventListener("install", (ev) => {
  ev.waitUntil(
    caches.open(CACHE).then((cache) =>
      // One by one: a page not reachable now (signed out) must not fail the rest.
      Promise.all(SHELL.map((url) => cache.add(new Request(url, { credentials: "same-origin" })).catch(() => null))),
    ).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    // Only a real page is kept (not a redirect to pairing, not an error).
    if (response.ok && response.type === "basic" && !response.redirected) {
      await cache.put(new URL(request.url).pathname, response.clone());
    }
    return response;
  } catch (err) {
    const hit = await cache.match(new URL(request.url).pathname);
    if (hit) return hit;
    throw err;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(request, { ignoreSearch: true });
  if (hit) {
    // Refresh in the background, so a new release arrives on the next load.
    fetch(request).then((r) => (r.ok ? cache.put(request, r) : null)).catch(() => null);
    return hit;
  }
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (PAGES.includes(url.pathname)) ev.respondWith(networkFirst(ev.request));
  else if (url.pathname.startsWith("/ui/static/")) ev.respondWith(cacheFirst(ev.request));
});
