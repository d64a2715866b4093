// The runs page: re-drawn every 2 s from /api/runs, as `grid status` would show.
"use strict";
(function () {
  const body = document.querySelector("#runs tbody");
  async function poll() {
    try {
      const runs = await grid.json("/api/runs");
      if (runs.length) {
        body.replaceChildren(...runs.map((r) => {
          const tr = grid.el("tr", { "data-run": r.name });
          const cells = [grid.el("a", { href: `/runs/${r.name}`, text: r.name }), grid.status(r.status),
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
  setTimeout(poll, 2000);
})();
