/* The merch screen's live drops: a strip per open drop with its offer price, units left and a countdown.
   The price itself is the kit's to apply (the cart's total comes from the kit's own quote). */
(function () {
  "use strict";
  const box = document.getElementById("drops");
  if (!box) return;
  const currency = (document.getElementById("pos") || { dataset: {} }).dataset.currency || "EUR";
  let drops = [], offset = 0;
  const span = (s) => { s = Math.max(0, Math.round(s)); return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0"); };
  function render() {
    const now = Date.now() / 1000 + offset;
    const open = drops.filter((d) => d.phase === "open" && d.ends_at > now);
    box.hidden = !open.length;
    box.replaceChildren(...open.map((d) => {
      const el = document.createElement("div");
      const left = d.ends_at - now;
      el.className = "drop" + (left <= 60 ? " last-minute" : "");
      el.dataset.drop = d.name;
      el.textContent = "DROP " + d.name + " · " + d.sku + " at " + fk.money(d.price_cents, currency) + " · " +
        d.left + " left · " + span(left);
      return el;
    }));
  }
  async function refresh() {
    const r = await fk.get("/api/v1/pos/drops");
    if (r.ok) { drops = r.data.drops; offset = r.data.now - Date.now() / 1000; render(); }
  }
  fk.subscribe("pos/event/drop", refresh);
  fk.subscribe("pos/event/sale", refresh);
  setInterval(render, 500);
  setInterval(refresh, 15000);
  refresh();
})();
