// The run page: experiments table (sort, filter, columns), metric charts, parallel
// coordinates. Everything refreshes while the run is active.
"use strict";
(function () {
  let run = JSON.parse(document.getElementById("initial").textContent);
  const name = run.name;
  // Asked for before anything is drawn: the table renders while the points arrive.
  let pending = charts.fetch(run.metrics_api);
  const state = { sortCol: null, sortDir: 1, hidden: new Set(), filter: "", metrics: null };
  // Until the charts are on screen the table holds its first rows only (the scroller
  // shows ~17): laying out and painting 200 rows would delay the charts by a third.
  const FIRST_ROWS = 50;
  let firstPaint = true;
  const table = document.getElementById("experiments");
  window.gridCharts = {};
  window.gridChartsReady = false;

  // ------------------------------------------------------------ table
  function columns() {
    const cols = [
      { id: "name", label: "Experiment", get: (e) => e.name, link: true },
      ...(run.compare ? [{ id: "run", label: "Run", get: (e) => e.run }] : []),
      { id: "status", label: "Status", get: (e) => e.status, status: true },
      { id: "duration", label: "Run Duration", get: (e) => e.duration },
    ];
    for (const p of run.params) cols.push({ id: `p:${p}`, label: p, get: (e) => e.params[p] ?? "-", param: true });
    for (const m of run.metrics) {
      const best = m.higher_is_better ? "max" : "min";
      cols.push({ id: `m:${m.key}:last`, label: `${m.key} (last)`, get: (e) => e.metrics[m.key]?.last ?? null, metric: true });
      cols.push({ id: `m:${m.key}:best`, label: `${m.key} (${best})`, get: (e) => e.metrics[m.key]?.[best] ?? null, metric: true });
    }
    return cols;
  }

  function value(v) {
    if (v === null || v === undefined || v === "-") return null;
    const n = Number(v);
    return typeof v === "number" || (v !== "" && !Number.isNaN(n)) ? n : v;
  }

  // "lr>0.01 status=running adam": comparisons on columns, the rest matched as text.
  function matcher(text) {
    const tests = [];
    for (const tok of text.trim().split(/\s+/).filter(Boolean)) {
      const m = tok.match(/^([^<>=!]+)(>=|<=|!=|=|>|<)(.*)$/);
      if (!m) { const t = tok.toLowerCase(); tests.push((e, row) => row.includes(t)); continue; }
      const [, field, op, raw] = m;
      const want = value(raw);
      tests.push((e) => {
        let got = field === "status" ? e.status : field === "name" ? e.name
          : field in e.params ? e.params[field] : e.metrics[field]?.last;
        got = value(got);
        if (got === null) return false;
        switch (op) {
          case "=": return String(got) === String(want);
          case "!=": return String(got) !== String(want);
          case ">": return got > want;
          case "<": return got < want;
          case ">=": return got >= want;
          case "<=": return got <= want;
        }
        return true;
      });
    }
    return (e) => {
      const row = [e.name, e.status, ...Object.values(e.params)].join(" ").toLowerCase();
      return tests.every((t) => t(e, row));
    };
  }

  function visibleExperiments() {
    const ok = matcher(state.filter);
    return run.experiments.filter(ok);
  }

  function renderTable() {
    const cols = columns().filter((c) => !state.hidden.has(c.id));
    let rows = visibleExperiments();
    if (state.sortCol) {
      const col = columns().find((c) => c.id === state.sortCol);
      if (col) {
        rows = rows.slice().sort((a, b) => {
          const x = value(col.get(a)), y = value(col.get(b));
          if (x === null) return 1;
          if (y === null) return -1;
          return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), undefined, { numeric: true })) * state.sortDir;
        });
      }
    }
    // One HTML string for the whole table: the parser builds 200 rows many times
    // faster than as many createElement calls (~10x on a slow machine).
    const esc = grid.escape;
    const head = cols.map((c) => {
      const cls = [c.metric ? "num" : "", state.sortCol === c.id ? (state.sortDir > 0 ? "asc" : "desc") : ""].join(" ").trim();
      return `<th data-col="${esc(c.id)}"${cls ? ` class="${cls}"` : ""}>${esc(c.label)}</th>`;
    }).join("");
    const n = run.experiments.length;
    const index = new Map(run.experiments.map((e, i) => [e, i]));
    const body = (firstPaint ? rows.slice(0, FIRST_ROWS) : rows).map((e) => {
      const cells = cols.map((c) => {
        const v = c.get(e);
        if (c.link) {
          const color = charts.palette(index.get(e), n);
          const best = e.best ? ` <span class="best-mark" title="the search's best so far">★ best</span>` : "";
          return `<td><span class="swatch" style="background:${color}"></span><a href="/experiments/${encodeURIComponent(e.name)}">${esc(v)}</a>${best}</td>`;
        }
        if (c.status) {
          const why = e.prune_reason ? ` title="${esc(e.prune_reason)}"` : "";
          return `<td><span class="status ${esc(v)}"${why}>${esc(v)}</span></td>`;
        }
        return c.metric ? `<td class="num">${esc(grid.num(v))}</td>` : `<td>${esc(v)}</td>`;
      });
      return `<tr data-experiment="${esc(e.name)}">${cells.join("")}</tr>`;
    }).join("");
    table.innerHTML = `<thead><tr>${head}</tr></thead><tbody>${body}</tbody>`;
    document.getElementById("run-counts").textContent =
      `${run.experiments.length} experiments: ${run.running} running, ${run.queued} queued, ` +
      `${run.completed} completed, ${run.failed} failed, ${run.stopped} stopped` +
      (run.pruned ? `, ${run.pruned} pruned` : "") +
      (rows.length !== run.experiments.length ? ` (${rows.length} shown)` : "");
  }

  table.addEventListener("click", (ev) => {
    const th = ev.target.closest("th[data-col]");
    if (!th) return;
    const id = th.dataset.col;
    state.sortDir = state.sortCol === id ? -state.sortDir : 1;
    state.sortCol = id;
    renderTable();
  });

  function renderToggles() {
    const box = document.getElementById("column-toggles");
    box.replaceChildren();
    for (const c of columns().slice(1)) {
      const cb = grid.el("input", { type: "checkbox" });
      cb.checked = !state.hidden.has(c.id);
      cb.addEventListener("change", () => {
        if (cb.checked) state.hidden.delete(c.id); else state.hidden.add(c.id);
        renderTable();
      });
      box.append(grid.el("label", {}, cb, ` ${c.label}`));
    }
  }

  document.getElementById("filter").addEventListener("input", (ev) => {
    state.filter = ev.target.value;
    renderTable();
    applyVisibility();
    drawParcoords();
  });

  // ------------------------------------------------------------ charts
  const controls = {
    xmode: document.getElementById("xaxis"),
    log: document.getElementById("logscale"),
    smoothing: document.getElementById("smoothing"),
  };
  function chartOpts() {
    const shown = new Set(visibleExperiments().map((e) => e.name));
    return {
      xmode: controls.xmode.value,
      logscale: controls.log.checked,
      smoothing: +controls.smoothing.value,
      allNames: run.experiments.map((e) => e.name),
      visible: (n) => shown.has(n),
      describe: describeExperiment,
    };
  }

  // A line's name in legends and on hover: the values swept (what tells lines apart).
  function describeExperiment(name) {
    const e = run.experiments.find((x) => x.name === name);
    if (!e) return "";
    const swept = run.params.filter((p) => new Set(run.experiments.map((x) => x.params[p])).size > 1);
    const shown = (swept.length ? swept : run.params).map((p) => `${p}=${e.params[p] ?? "-"}`);
    return (run.runs && run.runs.length > 1 ? [e.run, ...shown] : shown).join(" ");
  }

  function drawCharts() {
    const m = state.metrics;
    const box = document.getElementById("charts");
    if (!m || !m.keys.length) return;
    document.getElementById("no-metrics")?.remove();
    const opts = chartOpts();
    for (const key of m.keys) {
      let holder = box.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (!holder) { holder = grid.el("div", { class: "chart", "data-key": key }); box.append(holder); }
      const aligned = charts.align(m.series[key] || {}, m.experiments, opts.xmode, opts.smoothing, opts.logscale);
      const old = window.gridCharts[key];
      const sameShape = old && old.gridMode === `${opts.xmode}/${opts.logscale}` &&
        old.series.length - 1 === aligned.names.length;
      if (sameShape) {
        old.setData(aligned.data);
        old.gridPoints = aligned.points;
      } else {
        if (old) old.destroy();
        const u = charts.make(holder, key, aligned, opts);
        u.gridMode = `${opts.xmode}/${opts.logscale}`;
        u.gridNames = aligned.names;
        window.gridCharts[key] = u;
      }
    }
  }

  function applyVisibility() {
    const shown = new Set(visibleExperiments().map((e) => e.name));
    for (const u of Object.values(window.gridCharts)) {
      u.batch(() => u.gridNames.forEach((n, i) => {
        const show = shown.has(n);
        if (u.series[i + 1].show !== show) u.setSeries(i + 1, { show });
      }));
    }
  }

  for (const c of [controls.xmode, controls.log]) c.addEventListener("change", () => { for (const u of Object.values(window.gridCharts)) u.destroy(); window.gridCharts = {}; drawCharts(); });
  controls.smoothing.addEventListener("input", () => {
    document.getElementById("smoothing-value").textContent = controls.smoothing.value;
    drawCharts();
  });

  async function loadMetrics() {
    grid.mark("metrics-fetch");
    state.metrics = await (pending || charts.fetch(run.metrics_api));
    pending = null;
    grid.mark("metrics-parsed");
    drawCharts();
    grid.mark("charts-drawn");
    // On screen once the frame holding the charts was presented: the next frame.
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.gridChartsReadyAt ??= performance.now();
      pageComplete();
    }));
  }

  function pageComplete() {
    if (firstPaint) {
      firstPaint = false;
      if (run.experiments.length > FIRST_ROWS) renderTable();
    }
    window.gridChartsReady = true;
  }

  // ------------------------------------------------ parallel coordinates
  const pc = { loading: null, visible: false };
  const pcMetric = document.getElementById("pc-metric");
  const pcStat = document.getElementById("pc-stat");
  function renderMetricChoices() {
    const current = pcMetric.value;
    pcMetric.replaceChildren(...run.metrics.map((m) => grid.el("option", { value: m.key, text: m.key })));
    if (current && run.metrics.some((m) => m.key === current)) pcMetric.value = current;
    else {
      // A metric that is not also a parameter, a loss if there is one.
      const own = run.metrics.map((m) => m.key).filter((k) => !run.params.includes(k));
      const pick = own.find((k) => /loss/i.test(k)) || own[0];
      if (pick) pcMetric.value = pick;
    }
  }
  function loadPlotly() {
    // 4.8 MB: fetched only when the view scrolls into sight, so the charts come first.
    pc.loading ??= new Promise((resolve, reject) => {
      const s = grid.el("script", { src: "/static/vendor/plotly.js-dist-min/plotly.min.js" });
      s.onload = resolve; s.onerror = reject;
      document.body.append(s);
    });
    return pc.loading;
  }
  async function drawParcoords() {
    if (!pc.visible || !run.params.length) return;
    await loadPlotly();
    const exps = visibleExperiments();
    const dims = run.params.map((p) => {
      const raw = exps.map((e) => e.params[p]);
      const nums = raw.map(Number);
      if (raw.every((v, i) => v !== undefined && v !== "" && !Number.isNaN(nums[i]))) return { label: p, values: nums };
      const cats = [...new Set(raw.map(String))].sort();
      return { label: p, values: raw.map((v) => cats.indexOf(String(v))), tickvals: cats.map((_, i) => i), ticktext: cats };
    });
    const key = pcMetric.value;
    const meta = run.metrics.find((m) => m.key === key);
    const stat = pcStat.value === "best" ? (meta?.higher_is_better ? "max" : "min") : "last";
    let color = null;
    if (key) {
      const vals = exps.map((e) => e.metrics[key]?.[stat] ?? NaN);
      dims.push({ label: `${key} (${stat})`, values: vals });
      color = vals;
    }
    const line = color ? { color, colorscale: "Viridis", showscale: true } : { color: "#3b6fd4" };
    const el = document.getElementById("parcoords");
    el.querySelector("p.muted")?.remove();
    el.classList.add("drawn");
    await Plotly.react(el, [{ type: "parcoords", line, dimensions: dims }],
      { margin: { l: 60, r: 60, t: 40, b: 20 }, height: 360 }, { displaylogo: false, responsive: true });
    el.dataset.lines = exps.length;
  }
  // On request only: Plotly is big and its WebGL lines are slow without a GPU, and
  // nothing of it must delay the line charts.
  document.getElementById("pc-draw").addEventListener("click", () => {
    pc.visible = true;
    drawParcoords();
  });
  pcMetric.addEventListener("change", drawParcoords);
  pcStat.addEventListener("change", drawParcoords);

  // ------------------------------------------------------------ search
  // A bayesian search: its best trial, and the objective over trials with the best so
  // far (the line a search should bend), drawn with the same uPlot as the metrics.
  let searchChart = null;
  function renderSearch() {
    const s = run.search;
    const box = document.getElementById("search-chart");
    if (!s || !box) return;
    const best = document.getElementById("search-best");
    const done = s.trials.filter((t) => !["building", "pending", "running"].includes(t.status)).length;
    const pruned = s.trials.filter((t) => t.status === "pruned").length;
    const counts = `${done} of ${s.num_trials} trials finished${pruned ? `, ${pruned} pruned` : ""}`;
    if (s.best) {
      const params = Object.entries(s.best.params).map(([k, v]) => `${k}=${v}`).join(", ");
      best.innerHTML = `Best so far: <a href="/experiments/${encodeURIComponent(s.best.name)}">${grid.escape(s.best.name)}</a> ` +
        `${grid.escape(s.objective)} <b id="search-best-value">${grid.escape(grid.num(s.best.value))}</b> (${grid.escape(params)}); ${counts}.`;
    } else {
      best.textContent = `Best so far: none yet; ${counts}.`;
    }
    const prunedList = s.trials.filter((t) => t.prune_reason);
    document.getElementById("search-pruned-box").hidden = !prunedList.length;
    document.getElementById("search-pruned").innerHTML = prunedList.map((t) =>
      `<li><a href="/experiments/${encodeURIComponent(t.name)}">${grid.escape(t.name)}</a>: ${grid.escape(t.prune_reason)}</li>`).join("");
    const xs = s.trials.map((t) => t.trial);
    const data = [xs, s.trials.map((t) => t.value), s.trials.map((t) => t.best_so_far),
      s.trials.map((t) => t.pruned_at)];
    if (searchChart) { searchChart.setData(data); return; }
    box.innerHTML = "";
    searchChart = new uPlot({
      width: Math.max(300, box.clientWidth - 8),
      height: 220,
      scales: { x: { time: false } },
      series: [
        { label: "trial" },
        { label: s.objective, stroke: "hsl(210, 70%, 45%)", width: 0, points: { show: true, size: 6 }, value: (u, v) => grid.num(v) },
        { label: "best so far", stroke: "hsl(140, 60%, 35%)", width: 2, spanGaps: true, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false }, value: (u, v) => grid.num(v) },
        { label: "pruned at", stroke: "hsl(28, 90%, 45%)", width: 0, points: { show: true, size: 6 }, value: (u, v) => grid.num(v) },
      ],
      axes: [{ label: "trial" }, { size: 70, values: (u, splits) => charts.ticks(splits) }],
    }, data, box);
    window.gridSearchChart = searchChart;
  }

  // ------------------------------------------------------------- live
  function renderAll() {
    const status = document.getElementById("run-status");
    status.textContent = run.status;
    status.className = `status ${run.status}`;
    document.getElementById("run-duration").textContent = run.duration;
    const stop = document.querySelector("#stop-run button");
    if (stop) stop.disabled = !run.active;
    renderTable();
    renderSearch();
  }
  async function poll() {
    const wasActive = run.active;
    try {
      const keysBefore = run.metrics.map((m) => m.key).join();
      run = await grid.json(run.api);
      renderAll();
      if (run.metrics.map((m) => m.key).join() !== keysBefore) { renderToggles(); renderMetricChoices(); }
      await loadMetrics();
      drawParcoords();
    } catch (err) {
      console.warn(err);
    }
    if (run.active || wasActive) setTimeout(poll, 2000);
  }

  renderToggles();
  renderMetricChoices();
  renderAll();
  grid.mark("table-drawn");
  loadMetrics().catch((err) => { console.warn(err); pageComplete(); });
  if (run.active) setTimeout(poll, 2000);
})();
