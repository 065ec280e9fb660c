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
    const open = drops.filter((d) => (d.phase === "open" || d.phase === "members") && d.ends_at > now);
    box.hidden = !open.length;
    box.replaceChildren(...open.map((d) => {
      const el = document.createElement("div");
      const left = d.ends_at - now;
      const members = d.phase === "members" && d.members_until > now;
      el.className = "drop" + (left <= 60 ? " last-minute" : "") + (members ? " members" : "");
      el.dataset.drop = d.name;
      const words = document.createElement("span");
      // Members first: who may buy and for how long leads; the rest is the drop's usual line, kept short
      // so the product grid stays on the 7-inch screen.
      words.textContent = members
        ? "MEMBERS FIRST (" + d.member_types.join(", ") + ") " + span(d.members_until - now) + " · " + d.name + " " +
          fk.money(d.price_cents, currency) + " · " + d.left + " left"
        : "DROP " + d.name + " · " + d.sku + " at " + fk.money(d.price_cents, currency) + " · " + d.left + " left · " + span(left);
      el.append(words);
      if (members) {  // merch.js takes the next scan as the buyer's ticket
        const b = document.createElement("button");
        b.type = "button"; b.className = "btn member-scan"; b.dataset.drop = d.name; b.textContent = "Member ticket";
        el.append(b);
      }
      return el;
    }));
    window.fkMemberDrops = open.filter((d) => d.phase === "members" && d.members_until > now).map((d) => d.name);
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
