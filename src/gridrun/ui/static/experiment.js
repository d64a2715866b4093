// The experiment page: [stdout], [stderr] and [build] lines streamed apart (SSE),
// its status, metrics and charts, refreshed while it runs.
"use strict";
(function () {
  let exp = JSON.parse(document.getElementById("initial").textContent);
  const MAX_LINES = 20000;
  const panes = {};
  for (const s of ["stdout", "stderr", "build"]) {
    panes[s] = { pre: document.getElementById(`log-${s}`), count: document.getElementById(`count-${s}`), n: 0 };
  }
  const logState = document.getElementById("log-state");
  window.gridCharts = {};

  function append(lines) {
    const chunks = {};
    for (const l of lines) {
      const pane = panes[l.stream] ? l.stream : "stdout";
      (chunks[pane] ??= []).push(l);
    }
    for (const [s, ls] of Object.entries(chunks)) {
      const p = panes[s];
      const atBottom = p.pre.scrollTop + p.pre.clientHeight >= p.pre.scrollHeight - 4;
      const frag = document.createDocumentFragment();
      for (const l of ls) {
        const line = grid.el("div", { class: "line" });
        line.append(grid.el("span", { class: "ts", text: l.ts ? l.ts.slice(11, 19) + " " : "" }), l.text);
        frag.append(line);
      }
      p.pre.append(frag);
      p.n += ls.length;
      while (p.pre.childElementCount > MAX_LINES) p.pre.firstElementChild.remove();
      p.count.textContent = p.n;
      if (atBottom) p.pre.scrollTop = p.pre.scrollHeight;
    }
  }

  function connect() {
    const es = new EventSource(`/api/experiments/${exp.name}/logs`);
    es.onopen = () => { logState.textContent = exp.active ? "Streaming live." : "Complete."; };
    es.addEventListener("lines", (ev) => append(JSON.parse(ev.data)));
    es.addEventListener("end", () => { es.close(); logState.textContent = "Complete: the experiment has finished."; });
    es.onerror = () => { logState.textContent = "Reconnecting…"; };
  }

  async function drawMetrics() {
    const m = await charts.fetch(`/api/runs/${exp.run}/metrics?experiments=${encodeURIComponent(exp.name)}`);
    const box = document.getElementById("charts");
    for (const key of m.keys) {
      let holder = box.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (!holder) { holder = grid.el("div", { class: "chart", "data-key": key }); box.append(holder); }
      const aligned = charts.align(m.series[key] || {}, m.experiments, "step", 0, false);
      const old = window.gridCharts[key];
      if (old && old.series.length - 1 === aligned.names.length) { old.setData(aligned.data); continue; }
      if (old) old.destroy();
      window.gridCharts[key] = charts.make(holder, key, aligned, { xmode: "step", allNames: m.experiments, height: 200 });
    }
  }

  function renderMetricsTable(metrics) {
    const body = document.querySelector("#exp-metrics tbody");
    const keys = Object.keys(metrics).sort();
    if (!keys.length) return;
    body.replaceChildren(...keys.map((k) => {
      const s = metrics[k];
      return grid.el("tr", {}, grid.el("td", { text: k }), grid.el("td", { text: grid.num(s.last) }),
        grid.el("td", { text: grid.num(s.min) }), grid.el("td", { text: grid.num(s.max) }), grid.el("td", { text: s.count }));
    }));
  }

  async function poll() {
    try {
      exp = await grid.json(`/api/experiments/${exp.name}`);
      const st = document.getElementById("exp-status");
      st.textContent = exp.status;
      st.className = `status ${exp.status}`;
      document.getElementById("exp-duration").textContent = exp.duration;
      document.querySelector("#stop-experiment button").disabled = !exp.active;
      renderMetricsTable(exp.metrics);
      await drawMetrics();
    } catch (err) {
      console.warn(err);
    }
    renderArtifacts(exp.artifacts);
    // One more poll after it ends: artifacts are saved as it finishes.
    if (exp.active || !finalPolled) {
      if (!exp.active) finalPolled = true;
      setTimeout(poll, 2000);
    }
  }
  let finalPolled = false;

  function renderArtifacts(files) {
    if (!files || !files.length) return;
    document.querySelector("#artifacts tbody").replaceChildren(...files.map((f) => {
      // The server encodes the name's own bytes: a name that is not UTF-8 still downloads.
      const link = grid.el("a", { href: f.href, download: "", text: f.path });
      return grid.el("tr", {}, grid.el("td", {}, link), grid.el("td", { text: f.human_size }));
    }));
    document.getElementById("artifacts").hidden = false;
    document.getElementById("no-artifacts").hidden = true;
  }

  connect();
  drawMetrics().catch((err) => console.warn(err));
  if (exp.active) setTimeout(poll, 2000);
})();
