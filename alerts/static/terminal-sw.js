// The lobby terminal's service worker: the page opens without a network (installed as an app, or reloaded during
// an outage) and shows its last known cards, marked stale, until the box answers again.
// Network first, the cache only when the network fails: the page itself and the photos and snapshots its cards
// show. Nothing else is cached (the alert stream, acks and the API stay live), and nothing from another origin.
'use strict';

var CACHE = 'sb-terminal-v1';
var PAGE = '/terminal';
var MEDIA = /^\/api\/(persons\/[^/]+\/photo|snapshots\/[^/]+)$/;

self.addEventListener('install', function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) { return cache.add(PAGE); })
    .then(function () { return self.skipWaiting(); }));
});

self.addEventListener('activate', function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

function networkFirst(request, key) {
  return fetch(request).then(function (response) {
    if (response.ok) {
      var copy = response.clone();
      caches.open(CACHE).then(function (cache) { return cache.put(key, copy); });
    }
    return response;
  }, function (error) {
    return caches.match(key).then(function (cached) { if (cached) return cached; throw error; });
  });
}

self.addEventListener('fetch', function (event) {
  var request = event.request;
  if (request.method !== 'GET') return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname === PAGE && request.mode === 'navigate') {
    event.respondWith(networkFirst(request, PAGE));   // one copy of the page, whatever its query
  } else if (MEDIA.test(url.pathname)) {
    event.respondWith(networkFirst(request, request));
  }
});
