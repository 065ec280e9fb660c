/* The merch lead's live drops: start one, see every drop of the site (sold, left, oversold), stop one. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  if (!$("drop-card")) return;
  const currency = ($("lead") || { dataset: {} }).dataset.currency || "EUR";
  const say = (text) => { $("drop-msg").textContent = text; };
  function row(d) {
    const tr = document.createElement("tr");
    const words = d.name + " · " + d.sku + " at " + fk.money(d.price_cents, currency) + " · " + d.sold + "/" + d.quantity +
      " sold · " + d.phase + (d.oversold ? " · OVERSOLD BY " + d.oversold : "") +
      (d.tickets_reused ? " · MEMBER TICKET USED TWICE ×" + d.tickets_reused : "");
    const td = document.createElement("td");
    td.textContent = words;
    tr.append(td);
    const cell = document.createElement("td");
    if (d.phase === "open" || d.phase === "members" || d.phase === "upcoming") {
      const stop = document.createElement("button");
      stop.className = "btn"; stop.type = "button"; stop.textContent = "Stop";
      stop.onclick = async () => {
        const r = await fk.post("/api/v1/pos/drops/" + encodeURIComponent(d.name) + "/stop", {});
        say(r.ok ? "Stopped: back at the normal price." : r.data.error);
        refresh();
      };
      cell.append(stop);
    }
    tr.append(cell);
    return tr;
  }
  async function refresh() {
    const r = await fk.get("/api/v1/pos/drops");
    if (r.ok) $("drops-table").tBodies[0].replaceChildren(...r.data.drops.map(row));
  }
  $("drop-start").onclick = async () => {
    const body = { name: $("drop-name").value.trim(), sku: $("drop-sku").value.trim(), price: $("drop-price").value.trim(),
                   quantity: parseInt($("drop-quantity").value, 10), minutes: parseFloat($("drop-minutes").value) };
    const members = parseFloat($("drop-members-minutes").value);
    if (members > 0) {  // members first: only these ticket types buy at the drop price for that long
      body.members_minutes = members;
      body.member_types = $("drop-member-types").value.split(",").map((t) => t.trim()).filter(Boolean);
    }
    const r = await fk.post("/api/v1/pos/drops", body);
    say(r.ok ? "Started on every merch kit of the site." : r.data.error);
    refresh();
  };
  fk.subscribe("pos/event/drop", refresh);
  refresh();
})();
