// The hosted payment page's live updates, countdown, copy buttons and return redirect.
// Polling (not SSE, see ADR 0040): GET <page>/status with If-None-Match every 1 s, x1.5 while
// nothing changes, up to data-poll-max; paused while the tab is hidden; errors back off to 30 s.
// A changed state brings the panel's new server-rendered HTML, which replaces the old one.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var panel = document.getElementById("panel");
  if (!main || !panel || !main.dataset.statusUrl) return;
  var url = main.dataset.statusUrl, etag = main.dataset.etag || "";
  var max = parseInt(main.dataset.pollMax, 10) || 4000, delay = 1000, timer = null, busy = false;
  var final = false, clockTimer = null, redirectTimer = null;

  function schedule(ms) { clearTimeout(timer); if (!final) timer = setTimeout(poll, ms); }

  function poll() {
    if (busy) return;
    if (document.hidden) { timer = null; return; }
    busy = true;
    fetch(url, { headers: { "If-None-Match": etag, "Accept": "application/json" },
                 cache: "no-store", credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 304) { delay = Math.min(max, delay * 1.5); return null; }
        if (!r.ok) { delay = Math.min(30000, delay * 2); return null; }
        return r.json();
      })
      .then(function (s) {
        if (s) { etag = s.etag; apply(s); delay = 1000; }
      })
      .catch(function () { delay = Math.min(30000, delay * 2); })
      .then(function () { busy = false; schedule(delay); });
  }

  function apply(s) {
    var active = document.activeElement && panel.contains(document.activeElement);
    panel.innerHTML = s.html;
    main.dataset.state = s.state;
    final = !!s.final;
    wire();
    if (active) {
      var heading = panel.querySelector("h2");
      if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
    }
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function countdown() {
    clearInterval(clockTimer);
    var el = panel.querySelector(".countdown");
    if (!el) return;
    var offset = parseInt(el.dataset.now, 10) - Date.now() / 1000;
    var until = parseInt(el.dataset.expires, 10);
    function tick() {
      var left = Math.max(0, Math.floor(until - (Date.now() / 1000 + offset)));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), sec = left % 60;
      el.textContent = (h ? h + ":" + pad(m) : pad(m)) + ":" + pad(sec);
      if (left === 0) { clearInterval(clockTimer); delay = 1000; schedule(0); }
    }
    tick();
    clockTimer = setInterval(tick, 1000);
  }

  function copyButtons() {
    var buttons = panel.querySelectorAll("button.copy");
    Array.prototype.forEach.call(buttons, function (b) {
      if (!navigator.clipboard) return;
      b.hidden = false;
      b.addEventListener("click", function () {
        navigator.clipboard.writeText(b.dataset.copy).then(function () {
          var label = b.textContent;
          b.textContent = b.dataset.copied || label;
          setTimeout(function () { b.textContent = label; }, 2000);
        });
      });
    });
  }

  function autoReturn() {
    clearTimeout(redirectTimer);
    var link = panel.querySelector("a[data-auto]");
    if (!link) return;
    var seconds = parseInt(link.dataset.auto, 10);
    if (isNaN(seconds)) return;
    redirectTimer = setTimeout(function () { window.location.assign(link.href); }, seconds * 1000);
  }

  function wire() { countdown(); copyButtons(); autoReturn(); }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !timer && !final) { delay = 1000; schedule(0); }
  });
  wire();
  final = main.dataset.state === "succeeded" || main.dataset.state === "canceled";
  schedule(delay);
})();
