// Overlaid metric charts with uPlot: one chart per metric, one line per experiment.
//
// uPlot wants one shared x array; experiments log at their own steps or times, so
// series are aligned on the union of their x values (nulls elsewhere, gaps spanned).
// Relative time is bucketed to 1/2000 of the longest experiment, which keeps the
// union small for a 200-experiment sweep and is below a pixel on any screen.
"use strict";
const charts = {
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
    const union = new Set();
    for (const n of present) for (const x of xsOf(series[n])) union.add(key(x));
    const xs = Float64Array.from(union).sort();
    const index = new Map();
    xs.forEach((x, i) => index.set(x, i));
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
        if (y === null || (logscale && y <= 0)) y = null;
        const j = index.get(key(x[i]));
        if (ys[j] === null && y !== null) count++;
        ys[j] = y;
      }
      points[n] = count;
      data.push(ys);
    }
    return { data, names: present, points };
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
    const series = [{ label: opts.xmode === "time" ? "seconds" : "step" }];
    aligned.names.forEach((name) => {
      const i = opts.allNames.indexOf(name);
      series.push({
        label: name,
        stroke: charts.palette(i, opts.allNames.length),
        width: n > 50 ? 1 : 1.5,
        spanGaps: true,
        points: { show: false },
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
        axes: [{ label: opts.xmode === "time" ? "relative time (s)" : "step" }, { size: 60 }],
        hooks: {
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
    return u;
  },

  caption(u, el) {
    const idx = u.cursor.idx;
    const focused = u.gridFocused;
    if (idx == null || !focused) { el.textContent = ""; return; }
    const v = u.data[focused][idx];
    el.textContent = ` ${u.series[focused].label}: ${grid.num(v)} at ${u.series[0].label} ${grid.num(u.data[0][idx])}`;
  },
};
