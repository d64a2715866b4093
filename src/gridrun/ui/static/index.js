// The runs page: re-drawn every 2 s from /api/runs, as `grid status` would show; runs
// ticked here open together on /compare.
"use strict";
(function () {
  const body = document.querySelector("#runs tbody");
  const button = document.getElementById("compare");
  const picked = new Set();
  function update() { button.disabled = picked.size < 2; }
  body.addEventListener("change", (ev) => {
    if (!ev.target.classList.contains("pick")) return;
    if (ev.target.checked) picked.add(ev.target.value); else picked.delete(ev.target.value);
    update();
  });
  button.addEventListener("click", () => {
    location.href = `/compare?runs=${[...picked].map(encodeURIComponent).join(",")}`;
  });
  async function poll() {
    try {
      const runs = await grid.json("/api/runs");
      if (runs.length) {
        body.replaceChildren(...runs.map((r) => {
          const tr = grid.el("tr", { "data-run": r.name });
          const pick = grid.el("input", { type: "checkbox", class: "pick", value: r.name, "aria-label": `compare ${r.name}` });
          pick.checked = picked.has(r.name);
          const cells = [pick, grid.el("a", { href: `/runs/${r.name}`, text: r.name }), grid.status(r.status),
            grid.when(r.created_at), r.duration, r.experiments, r.running, r.queued, r.completed, r.failed, r.stopped];
          for (const c of cells) { const td = grid.el("td"); td.append(c instanceof Node ? c : String(c)); tr.append(td); }
          return tr;
        }));
      }
    } catch (err) {
      console.warn(err);
    }
    setTimeout(poll, 2000);
  }
  update();
  setTimeout(poll, 2000);
})();
