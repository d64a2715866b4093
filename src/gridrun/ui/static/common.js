// Shared by every page: CSRF token, number and time formatting, JSON fetching.
"use strict";
const grid = {
  csrf: document.querySelector('meta[name="csrf-token"]').content,
  async json(url) {
    const r = await fetch(url, { headers: { accept: "application/json" } });
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  },
  async post(url) {
    const r = await fetch(url, {
      method: "POST",
      headers: { accept: "application/json", "x-csrf-token": grid.csrf },
    });
    if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
    return r.json();
  },
  num(v) {
    if (v === null || v === undefined || v === "") return "-";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : String(+v.toPrecision(5));
  },
  when(ts) {
    if (!ts) return "-";
    const d = new Date(ts * 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  },
  el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  },
  // A performance mark the first time only (bench_ui.py prints them): a page left
  // open and polling must not grow the timeline forever.
  mark(name) {
    if (!performance.getEntriesByName(name, "mark").length) performance.mark(name);
  },
  // Text made safe to put in HTML, inside an element or a quoted attribute.
  escape(v) {
    return String(v ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  },
  status(s) {
    return grid.el("span", { class: `status ${s}`, text: s });
  },
};
for (const td of document.querySelectorAll("td[data-ts]")) td.textContent = grid.when(+td.dataset.ts);
