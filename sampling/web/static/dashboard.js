// The dashboard's chart and connection state. The figures themselves arrive as
// HTML from the server (htmx SSE extension); this only redraws the uPlot chart
// from the minutes each update carries and shows whether the stream is live.
"use strict";

(function () {
  let plot = null;

  function series() {
    const el = document.getElementById("spm-data");
    return el ? JSON.parse(el.textContent) : [[], []];
  }

  function draw() {
    const box = document.getElementById("chart");
    if (!box || typeof uPlot === "undefined") return;
    const data = series();
    if (plot) {
      plot.setData(data);
      return;
    }
    const tz = document.body.dataset.tz || "Asia/Shanghai";
    const hhmm = new Intl.DateTimeFormat("en-GB", { timeZone: tz, hour: "2-digit", minute: "2-digit", hour12: false });
    plot = new uPlot(
      {
        width: Math.max(box.clientWidth, 280),
        height: 220,
        legend: { show: false },
        // Minutes on the axis in the district's time zone, whatever the screen's.
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), tz),
        scales: { x: { time: true } },
        series: [
          {},
          { label: box.dataset.label, stroke: "#1565c0", fill: "rgba(21,101,192,0.15)", width: 2, points: { show: false } },
        ],
        axes: [{ values: (u, splits) => splits.map((ts) => hhmm.format(new Date(ts * 1e3))) }, { size: 56 }],
      },
      data,
      box,
    );
    window.addEventListener("resize", () => plot.setSize({ width: Math.max(box.clientWidth, 280), height: 220 }));
  }

  function status(live) {
    const el = document.getElementById("status");
    if (!el) return;
    el.classList.toggle("offline", !live);
    el.querySelector(".text").textContent = live ? el.dataset.live : el.dataset.offline;
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:sseMessage", draw);
  document.addEventListener("htmx:sseOpen", (ev) => {
    status(true);
    // The server ends the stream with "signout" when the token was revoked or expired.
    ev.detail.source.addEventListener("signout", () => {
      window.location.assign("/ui/login?expired=1&next=" + encodeURIComponent(location.pathname));
    });
  });
  document.addEventListener("htmx:sseError", () => {
    status(false);
    // A refused reconnect (401) means the sign-in ended: api() then goes to the login page.
    window.api("GET", "/v1/whoami").catch(() => {});
  });
})();
