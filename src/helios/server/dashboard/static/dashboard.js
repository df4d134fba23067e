// Helios dashboard: the live stream, partial refreshes and the tasks-per-minute chart.
// Plain browser JavaScript, no build step; htmx handles the forms and links.
(function () {
  "use strict";

  const live = () => document.getElementById("live");

  function setLive(text, state) {
    const badge = live();
    if (badge) {
      badge.textContent = text;
      badge.dataset.state = state;
    }
  }

  // -- tasks per minute (uPlot) -------------------------------------------------------------
  let chart = null;

  function drawChart() {
    const holder = document.getElementById("per-minute-chart");
    const source = document.getElementById("per-minute-data");
    if (!holder || !source || typeof window.uPlot === "undefined") return;
    const data = JSON.parse(source.textContent);
    if (chart) chart.destroy();
    holder.textContent = "";
    const width = Math.max(320, holder.clientWidth || 800);
    chart = new window.uPlot(
      {
        width: width,
        height: 180,
        scales: { x: { time: true } },
        axes: [{}, { label: "tasks" }],
        series: [
          {},
          {
            label: "started",
            stroke: "#2563eb",
            fill: "rgba(37,99,235,0.35)",
            width: 1,
            points: { show: false },
            paths: window.uPlot.paths && window.uPlot.paths.bars
              ? window.uPlot.paths.bars({ size: [0.8, 24] })
              : undefined,
          },
        ],
        legend: { show: true },
      },
      [data.t, data.n],
      holder,
    );
  }

  // -- partial refresh after the ledger moves ------------------------------------------------
  let refreshing = false;
  let again = false;

  async function refresh() {
    const region = document.querySelector("[data-refresh]");
    if (!region) return;
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    try {
      const answer = await fetch(window.location.href, {
        headers: { "HX-Request": "true" },
        credentials: "same-origin",
      });
      if (answer.status === 401 || answer.status === 403) {
        window.location.reload();
        return;
      }
      if (answer.ok) {
        const open = new Set(
          Array.from(region.querySelectorAll("details[open]")).map((d) => d.closest("tr")?.id),
        );
        region.innerHTML = await answer.text();
        open.forEach((id) => id && document.querySelector(`#${CSS.escape(id)} details`)?.setAttribute("open", ""));
        if (window.htmx && typeof window.htmx.process === "function") window.htmx.process(region);
        drawChart();
        region.dispatchEvent(new CustomEvent("helios:refreshed", { bubbles: true }));
      }
    } finally {
      refreshing = false;
      if (again) {
        again = false;
        window.setTimeout(refresh, 500);
      }
    }
  }

  function follow() {
    if (!document.querySelector("[data-refresh]")) {
      setLive("", "off"); // nothing on this page follows the ledger
      return;
    }
    if (typeof window.EventSource === "undefined") return;
    const task = document.querySelector("[data-task][data-refresh]");
    const root = document.body.dataset.root || "";
    const url = root + "/dashboard/stream" + (task ? "?task=" + encodeURIComponent(task.dataset.task) : "");
    const source = new EventSource(url, { withCredentials: true });
    source.addEventListener("open", () => setLive("live", "open"));
    source.addEventListener("error", () => setLive("live: reconnecting", "closed"));
    source.addEventListener("ledger", (message) => {
      const data = JSON.parse(message.data);
      document.body.dataset.sequence = String(data.sequence);
      refresh();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    drawChart();
    // htmx swaps the overview (window changes): draw the new chart
    new MutationObserver(() => {
      const holder = document.getElementById("per-minute-chart");
      if (holder && !holder.firstChild) drawChart();
    }).observe(document.querySelector("main"), { childList: true, subtree: true });
    follow();
  });
  window.addEventListener("resize", () => drawChart());
})();
