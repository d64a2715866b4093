// The new-run form: the number of experiments the arguments expand to, as you type.
"use strict";
(function () {
  const args = document.getElementById("args");
  const strategy = document.getElementById("strategy");
  const trials = document.getElementById("num_trials");
  const out = document.getElementById("sweep-count");
  let timer = null, seq = 0;
  async function update() {
    const mine = ++seq;
    const q = new URLSearchParams({ args: args.value, strategy: strategy.value, num_trials: trials.value });
    try {
      // A malformed sweep is a 400 whose body says why, shown under the box.
      const resp = await fetch(`/api/sweep/count?${q}`, { headers: { accept: "application/json" } });
      const r = await resp.json();
      if (mine !== seq) return;
      out.textContent = r.error ? r.error : `${r.count} experiment${r.count === 1 ? "" : "s"}`;
      out.className = r.error ? "hint error" : "hint";
      out.dataset.count = r.count ?? "";
    } catch (err) {
      console.warn(err);
    }
  }
  for (const el of [args, strategy, trials]) el.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(update, 120); });
  update();
})();
