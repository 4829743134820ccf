// Draws the analytics charts from the JSON blocks of the page (no inline script: strict CSP).
(function () {
  "use strict";
  function read(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  var COLOURS = ["#0b57d0", "#b3261e", "#146c2e", "#7a4d00", "#6b3fa0", "#00637a"];

  function draw(canvasId, data, labels, key, parse) {
    var canvas = document.getElementById(canvasId);
    if (!canvas || typeof Chart === "undefined") { return; }
    var sets = data.assets.map(function (series, i) {
      return {
        label: series.asset + " " + labels[key],
        data: series[key].map(parse),
        borderColor: COLOURS[i % COLOURS.length],
        backgroundColor: COLOURS[i % COLOURS.length],
        spanGaps: true, tension: 0.2
      };
    });
    new Chart(canvas, {
      type: key === "volume" ? "bar" : "line",
      data: { labels: data.dates, datasets: sets },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
                 scales: { y: { beginAtZero: true } } }
    });
  }

  function start() {
    var data = read("analytics-data"), labels = read("analytics-labels");
    if (!data || !labels) { return; }
    // volumes are exact decimal strings; the chart only needs them to draw
    draw("volume-chart", data, labels, "volume", function (v) { return Number(v); });
    draw("conversion-chart", data, labels, "conversion", function (v) { return v; });
    document.documentElement.dataset.charts = String(data.assets.length);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else { start(); }
})();
