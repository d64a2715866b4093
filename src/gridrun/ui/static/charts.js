// Overlaid metric charts with uPlot: one chart per metric, one line per experiment.
//
// uPlot wants one shared x array; experiments log at their own steps or times, so
// series are aligned on the union of their x values (nulls elsewhere, gaps spanned).
// Relative time is bucketed to 1/2000 of the longest experiment, which keeps the
// union small for a 200-experiment sweep and is below a pixel on any screen.
"use strict";
const charts = {
  // GET the binary metrics API (layout in gridrun/ui/charts.py) as
  // {keys, experiments, series: {key: {exp: {step, t, v}}}} over typed arrays.
  async fetch(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    const buf = await r.arrayBuffer();
    grid.mark("metrics-received");
    return charts.decode(buf);
  },

  decode(buf) {
    const hlen = new DataView(buf).getUint32(0, true);
    const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, hlen)));
    let off = 4 + hlen + ((8 - ((4 + hlen) % 8)) % 8);
    const series = {};
    for (const k of header.keys) series[k] = {};
    for (const [key, exp, n, t0] of header.series) {
      const step = new Float64Array(buf, off, n); off += 8 * n;
      const wall = new Float64Array(buf, off, n); off += 8 * n;
      const v = new Float64Array(buf, off, n); off += 8 * n;
      const t = new Float64Array(n);
      for (let i = 0; i < n; i++) t[i] = wall[i] - t0;
      series[key][exp] = { step, t, v };
    }
    return { keys: header.keys, experiments: header.experiments, series };
  },

  // Tick labels with the digits the tick spacing needs: 1e-4, 1.5e-4, 2e-4 or 0.0025,
  // never "0" for every tick of a learning rate (uPlot's default rounds them away).
  ticks(splits) {
    const finite = splits.filter((v) => v !== null && Number.isFinite(v));
    if (!finite.length) return splits.map(() => "");
    let step = 0;
    for (let i = 1; i < finite.length; i++) {
      const d = Math.abs(finite[i] - finite[i - 1]);
      if (d > 0 && (!step || d < step)) step = d;
    }
    const mag = Math.max(...finite.map(Math.abs));
    if (!step) step = mag || 1;
    // Decimal places that show the step exactly (2.5e-4 needs one more than 1e-4).
    let places = Math.max(0, -Math.floor(Math.log10(step)));
    while (places < 20 && Math.abs(+step.toFixed(places) - step) > step * 1e-6) places++;
    if (mag && (mag < 1e-3 || mag >= 1e6)) {
      const digits = Math.max(0, Math.min(15, Math.floor(Math.log10(mag)) - Math.floor(Math.log10(step))
        + (places - Math.max(0, -Math.floor(Math.log10(step))))));
      return splits.map((v) => (v === null || !Number.isFinite(v) ? ""
        : v === 0 ? "0" : v.toExponential(digits).replace(/\.?0+e/, "e")));
    }
    return splits.map((v) => (v === null || !Number.isFinite(v) ? "" : v.toFixed(places)));
  },

  palette(i, n) {
    const hue = (i * 137.508) % 360; // golden angle: neighbours differ
    return `hsl(${hue.toFixed(0)}, 70%, ${n > 40 ? 48 : 42}%)`;
  },

  // series: {exp: {step: [], t: [], v: []}} -> {data: [xs, ys...], names: [...], points: {exp: n}}
  align(series, names, xmode, smoothing, logscale) {
    const present = names.filter((n) => series[n] && series[n].v.length);
    const xsOf = (s) => (xmode === "time" ? s.t : s.step);
    let bucket = 0;
    if (xmode === "time") {
      let maxT = 0;
      for (const n of present) { const t = series[n].t; if (t.length) maxT = Math.max(maxT, t[t.length - 1]); }
      bucket = maxT > 0 ? maxT / 2000 : 0;
    }
    const key = (x) => (bucket ? Math.round(x / bucket) * bucket : x);
    let xs = charts.sharedSteps(present.map((n) => xsOf(series[n])), bucket);
    const shared = xs !== null;
    if (!shared) {
      const union = new Set();
      for (const n of present) for (const x of xsOf(series[n])) union.add(key(x));
      xs = Float64Array.from(union).sort();
    }
    const index = new Map();
    if (!shared) xs.forEach((x, i) => index.set(x, i));
    const data = [xs];
    const points = {};
    for (const n of present) {
      const s = series[n];
      const ys = new Array(xs.length).fill(null);
      const x = xsOf(s);
      const v = charts.smooth(s.v, smoothing);
      let count = 0;
      for (let i = 0; i < x.length; i++) {
        let y = v[i];
        if (y === null || !Number.isFinite(y) || (logscale && y <= 0)) y = null; // NaN, inf: a gap
        const j = shared ? i : index.get(key(x[i]));
        if (ys[j] === null && y !== null) count++;
        ys[j] = y;
      }
      points[n] = count;
      data.push(ys);
    }
    return { data, names: present, points };
  },

  // The common case of a sweep: every experiment logged the same increasing steps.
  // Then they are the x values as they are, with no union to build.
  sharedSteps(arrays, bucket) {
    if (bucket || !arrays.length) return null;
    const first = arrays.reduce((a, b) => (b.length > a.length ? b : a));
    for (let i = 1; i < first.length; i++) if (!(first[i] > first[i - 1])) return null;
    for (const a of arrays) {
      if (a.length > first.length) return null;
      for (let i = 0; i < a.length; i++) if (a[i] !== first[i]) return null;
    }
    return Float64Array.from(first);
  },

  // TensorBoard's smoothing: an exponential moving average, debiased at the start.
  smooth(values, weight) {
    if (!weight) return values;
    const out = new Array(values.length);
    let last = 0, n = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v === null || !Number.isFinite(v)) { out[i] = null; continue; }
      last = last * weight + (1 - weight) * v;
      n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  },

  make(container, key, aligned, opts) {
    container.innerHTML = "";
    const title = grid.el("div", { class: "chart-title" }, grid.el("b", { text: key }));
    const caption = grid.el("span", { class: "chart-caption" });
    title.append(caption);
    container.append(title);
    const width = Math.max(300, container.clientWidth - 8);
    const n = aligned.names.length;
    const few = aligned.data[0].length <= 30; // single points would not show as lines
    const series = [{ label: opts.xmode === "time" ? "seconds" : "step" }];
    aligned.names.forEach((name) => {
      const i = opts.allNames.indexOf(name);
      series.push({
        label: name,
        stroke: charts.palette(i, opts.allNames.length),
        width: n > 50 ? 1 : 1.5,
        spanGaps: true,
        points: { show: few },
        value: (u, v) => grid.num(v),
        show: opts.visible ? opts.visible(name) : true,
      });
    });
    const u = new uPlot(
      {
        width,
        height: opts.height || 240,
        series,
        legend: { show: false },
        cursor: { focus: { prox: 16 }, points: { size: 5 } },
        focus: { alpha: 0.25 },
        scales: { x: { time: false }, y: { distr: opts.logscale ? 3 : 1 } },
        axes: [
          { label: opts.xmode === "time" ? "relative time (s)" : "step" },
          { size: 70, values: (u, splits) => charts.ticks(splits) },
        ],
        hooks: {
          draw: [() => grid.mark(`uplot-draw-${key}`)], // first draw, for bench_ui
          setCursor: [(u) => charts.caption(u, caption)],
          setSeries: [
            (u, sidx, o) => {
              if (o && "focus" in o) u.gridFocused = o.focus ? sidx : null;
              charts.caption(u, caption);
            },
          ],
        },
      },
      aligned.data,
      container,
    );
    u.gridPoints = aligned.points;
    u.gridDescribe = opts.describe || null;
    if (opts.describe && n <= 12) {
      // A legend for a few lines: each named by what was swept (hover names any line).
      const legend = grid.el("div", { class: "chart-legend" });
      aligned.names.forEach((name, j) => {
        const item = grid.el("span", {}, grid.el("span", { class: "swatch" }), opts.describe(name) || name);
        item.firstChild.style.background = series[j + 1].stroke;
        item.title = name;
        legend.append(item);
      });
      container.append(legend);
    }
    return u;
  },

  caption(u, el) {
    const idx = u.cursor.idx;
    const focused = u.gridFocused;
    if (idx == null || !focused) { el.textContent = ""; return; }
    const v = u.data[focused][idx];
    const label = u.series[focused].label;
    const about = u.gridDescribe ? u.gridDescribe(label) : "";
    el.textContent = ` ${label}${about ? ` (${about})` : ""}: ${grid.num(v)} at ${u.series[0].label} ${grid.num(u.data[0][idx])}`;
  },
};
