// anygate console: the light layer over server-rendered pages (docs/console.md).
// Everything works without it but the live updates and the charts. No eval, no inline
// script: the page's CSP (script-src 'self') would refuse both.
"use strict";
(function () {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

  // <form data-confirm="Revoke this key?">: ask before a change that cannot be undone.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form instanceof HTMLFormElement && form.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // <button data-copy="element-id">: copy a shown-once secret to the clipboard.
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        () => { button.textContent = "Copied"; },
        () => { button.textContent = "Copy failed: select the text"; });
    }
  });

  // <section data-sse="/ui/overview/stream">: the server sends `fragment` events whose data is
  // {"id": element id, "html": its new inner HTML, rendered (and escaped) by the server}.
  // EventSource reconnects by itself; the page says when the feed is down.
  function follow(element) {
    const status = element.querySelector("[data-sse-status]");
    const source = new EventSource(element.dataset.sse);
    source.addEventListener("fragment", (event) => {
      const update = JSON.parse(event.data);
      const target = document.getElementById(update.id);
      if (target) {
        target.innerHTML = update.html;
        charts(target);
      }
      if (status) status.textContent = "live";
    });
    source.addEventListener("end", () => {
      source.close();
      if (status) status.textContent = "finished";
    });
    source.onerror = () => { if (status) status.textContent = "reconnecting…"; };
  }

  // <div class="chart" data-chart="json-element-id">: a uPlot chart of the JSON in a
  // <script type="application/json"> (data, never run): {"title", "x": [unix s], "series":
  // [{"label", "values": [...]}], "unit"}. The same figures are in a table beside it.
  // A y-axis tick that fits: three significant digits, and an exponent for a tiny cost.
  const tick = (v) => (v == null ? "" : v === 0 ? "0"
    : Math.abs(v) >= 1000 ? v.toLocaleString()
    : Math.abs(v) < 0.001 ? v.toExponential(1)
    : String(Number(v.toPrecision(3))));
  const palette = ["#0b5cad", "#b3261e", "#136c2e", "#8a5300", "#6a1b9a", "#00695c", "#37474f"];
  function charts(root) {
    if (typeof window.uPlot !== "function") return;
    root.querySelectorAll("[data-chart]").forEach((element) => {
      const source = document.getElementById(element.dataset.chart);
      if (!source) return;
      const spec = JSON.parse(source.textContent);
      element.textContent = "";
      const width = Math.max(element.clientWidth || 0, 280);
      const options = {
        title: spec.title, width, height: 220,
        scales: { x: { time: spec.time !== false } },
        series: [{}].concat(spec.series.map((s, i) => ({
          label: s.label, stroke: palette[i % palette.length], width: 2,
          value: (u, v) => (v == null ? "–" : v.toLocaleString() + (spec.unit ? " " + spec.unit : "")),
        }))),
        axes: [{}, { size: 70, values: (u, splits) => splits.map(tick) }],
      };
      const plot = new window.uPlot(options, [spec.x].concat(spec.series.map((s) => s.values)), element);
      // uPlot's legend is a table: name it (the figures themselves are in the page's table)
      plot.root.querySelector("table.u-legend")?.setAttribute("aria-label", (spec.title || "Chart") + ": legend");
      new ResizeObserver(() => plot.setSize({ width: Math.max(element.clientWidth, 280), height: 220 }))
        .observe(element);
    });
  }

  // fetch() for the few changes made without a page load sends the session's CSRF token.
  window.anygateConsole = {
    post: (url, body) => fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "x-csrf-token": csrf(), "content-type": "application/json" },
      body: JSON.stringify(body || {}),
    }),
  };

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-sse]").forEach(follow);
    charts(document);
  });
})();
