/* Lead screens: shift (X report, cash in/out, close with the count → Z report), refunds and voids, catalogue edits. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const money = (c) => fk.money(c);
  const say = (id, text, bad) => { $(id).textContent = text || ""; $(id).className = "msg " + (bad ? "error" : "green"); };

  function parseCents(text) {
    const m = /^\s*(\d{1,8})(?:[.,](\d{1,2}))?\s*$/.exec(text || "");
    return m ? parseInt(m[1], 10) * 100 + parseInt((m[2] || "0").padEnd(2, "0"), 10) : null;
  }

  // --- shift ------------------------------------------------------------------------------------
  async function loadShift() {
    const r = await fk.get("/api/v1/pos/shift");
    if (r.status === 404) {
      $("shift-state").textContent = "No shift open (the first sale opens one with a float of 0.00).";
      $("shift-open-form").hidden = false;
      return;
    }
    $("shift-open-form").hidden = true;
    const x = r.data;
    $("shift-state").textContent = "Shift " + x.shift.number + " open · sales " + money(x.sales.total_cents)
      + " · cash expected " + money(x.cash.expected_cents);
    $("report").innerHTML = x.preview_html;
  }
  function countedSum() {
    let sum = 0;
    for (const i of document.querySelectorAll("[data-denom]")) sum += (parseInt(i.value, 10) || 0) * parseInt(i.dataset.denom, 10);
    const total = parseCents($("counted").value);
    return total !== null && $("counted").value.trim() ? total : sum;
  }
  $("open-shift").addEventListener("click", async () => {
    const r = await fk.post("/api/v1/pos/shift/open", { float: $("float").value });
    say("shift-msg", r.ok ? "Shift " + r.data.number + " open." : r.data.error, !r.ok);
    loadShift();
  });
  for (const [id, out] of [["cash-in", false], ["cash-out", true]]) $(id).addEventListener("click", async () => {
    const r = await fk.post("/api/v1/pos/shift/cash", { amount: $("cash-amount").value, reason: $("cash-reason").value, out: out });
    say("shift-msg", r.ok ? (out ? "Cash out " : "Cash in ") + money(Math.abs(r.data.amount_cents)) : r.data.error, !r.ok);
    if (r.ok) { $("cash-amount").value = ""; $("cash-reason").value = ""; }
    loadShift();
  });
  document.querySelector(".denoms").addEventListener("input", () => { $("counted-sum").textContent = money(countedSum()); });
  $("counted").addEventListener("input", () => { $("counted-sum").textContent = money(countedSum()); });
  $("close-shift").addEventListener("click", async () => {
    const body = {};
    if ($("counted").value.trim()) body.counted = $("counted").value;
    else {
      body.denominations = {};
      for (const i of document.querySelectorAll("[data-denom]")) if (i.value.trim()) body.denominations[i.dataset.denom] = i.value.trim();
    }
    if (!confirm("Close the shift with " + money(countedSum()) + " counted?")) return;
    const r = await fk.post("/api/v1/pos/shift/close", body);
    if (!r.ok) { say("shift-msg", r.data.error, true); return; }
    const d = r.data.difference_cents;
    say("shift-msg", "Z report printed. Expected " + money(r.data.cash.expected_cents) + ", counted " + money(r.data.counted_cents)
      + ", difference " + (d > 0 ? "+" : "") + money(d), d !== 0);
    $("report").innerHTML = r.data.preview_html;
    $("shift-state").textContent = "Shift " + r.data.shift.number + " closed.";
    $("shift-open-form").hidden = false;
  });

  // --- refunds ------------------------------------------------------------------------------------
  let current = null;
  async function loadRecent() {
    const r = await fk.get("/api/v1/pos/sales?limit=15");
    if (!r.ok) return;
    const tb = document.querySelector("#recent tbody");
    tb.textContent = "";
    for (const s of r.data.sales) {
      const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td></td><td></td><td></td>";
      tr.children[0].textContent = s.receipt;
      tr.children[1].textContent = s.kind;
      tr.children[2].textContent = money(s.total_cents);
      const b = document.createElement("button"); b.className = "btn"; b.type = "button"; b.textContent = "Open";
      b.addEventListener("click", () => openSale(s.id));
      tr.children[3].append(b);
      tb.append(tr);
    }
  }
  async function openSale(id) {
    const r = await fk.get("/api/v1/pos/sales/" + encodeURIComponent(id.trim()));
    if (!r.ok) { say("refund-msg", r.data.error, true); $("refund-sale").hidden = false; return; }
    current = r.data;
    const s = current.sale;
    $("refund-title").textContent = s.receipt + " · " + s.kind + " · " + money(s.total_cents) + " " + s.currency;
    const done = {};
    for (const rf of current.refunds) done[rf.receipt] = rf;
    const tb = document.querySelector("#refund-lines tbody");
    tb.textContent = "";
    for (const ln of s.lines) {
      const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td></td><td><input inputmode='numeric' aria-label='refund quantity'></td>";
      tr.children[0].textContent = ln.qty + " × " + (ln.name + " " + ln.variant).trim();
      tr.children[1].textContent = money(ln.total_cents);
      tr.querySelector("input").dataset.line = ln.line_no;
      tr.querySelector("input").placeholder = "0";
      tb.append(tr);
    }
    $("refund-preview").innerHTML = current.preview_html;
    say("refund-msg", current.refunds.length ? "Earlier: " + current.refunds.map((x) => x.kind + " " + x.receipt + " " + money(x.total_cents)).join(", ") : "");
    $("refund-sale").hidden = false;
  }
  async function doRefund(isVoid) {
    if (!current) return;
    const items = [];
    for (const i of document.querySelectorAll("#refund-lines input")) {
      const q = parseInt(i.value, 10);
      if (q > 0) items.push({ line: parseInt(i.dataset.line, 10), qty: q });
    }
    if (!isVoid && !items.length) { say("refund-msg", "Enter how many of which line to take back.", true); return; }
    const body = { reason: $("refund-reason").value, method: $("refund-method").value || null, void: isVoid };
    if (!isVoid) body.items = items;
    const r = await fk.post("/api/v1/pos/sales/" + encodeURIComponent(current.sale.id) + "/refund", body);
    if (!r.ok) { say("refund-msg", r.data.error, true); return; }
    say("refund-msg", r.data.refund.kind + " " + r.data.refund.receipt + ": " + money(r.data.refund.total_cents) + " back by "
      + r.data.refund.payments[0].method);
    $("refund-preview").innerHTML = r.data.preview_html;
    loadRecent();
    loadShift();
  }
  $("refund-find").addEventListener("click", () => openSale($("refund-lookup").value));
  $("refund-lookup").addEventListener("keydown", (e) => { if (e.key === "Enter") openSale($("refund-lookup").value); });
  $("refund-go").addEventListener("click", () => doRefund(false));
  $("void-go").addEventListener("click", () => doRefund(true));

  // --- catalogue -----------------------------------------------------------------------------------
  async function loadProducts() {
    const r = await fk.get("/api/v1/pos/products");
    if (!r.ok) return;
    const tb = document.querySelector("#products-table tbody");
    tb.textContent = "";
    for (const p of r.data.products.concat([{ sku: "", name: "", variant: "", price: "", stock: null, remaining: null, active: true }])) {
      const tr = document.createElement("tr");
      tr.innerHTML = "<td><input name='sku'></td><td><input name='name'></td><td><input name='variant'></td><td><input name='price' inputmode='decimal'></td>"
        + "<td><input name='stock' inputmode='numeric'></td><td></td><td><input type='checkbox' name='active'></td><td><button class='btn' type='button'>Save</button></td>";
      const f = (n) => tr.querySelector("[name=" + n + "]");
      // each cell's input named for a screen reader: "Price of TS-L" (the column header is not its label)
      for (const [n, what] of [["sku", "SKU"], ["name", "Name"], ["variant", "Variant"], ["price", "Price"], ["stock", "Stock"], ["active", "On sale"]])
        f(n).setAttribute("aria-label", what + " of " + (p.sku || "the new product"));
      f("sku").value = p.sku; f("sku").readOnly = !!p.sku;
      f("name").value = p.name; f("variant").value = p.variant; f("price").value = p.price;
      f("stock").value = p.stock === null ? "" : p.stock; f("active").checked = p.active;
      tr.children[5].textContent = p.remaining === null ? "" : p.remaining;
      tr.dataset.sku = p.sku || "new";
      tr.querySelector("button").addEventListener("click", async () => {
        const sku = f("sku").value.trim();
        if (!sku) { say("catalogue-msg", "Give the new product a SKU.", true); return; }
        const body = { name: f("name").value, variant: f("variant").value, price: f("price").value,
                       stock: f("stock").value, active: f("active").checked };
        const res = await fk.post("/api/v1/pos/catalogue/" + encodeURIComponent(sku), body);
        say("catalogue-msg", res.ok ? "Saved " + sku + "." : res.data.error, !res.ok);
        if (res.ok) loadProducts();
      });
      tb.append(tr);
    }
  }

  fk.subscribe("pos/event/sale", () => { loadRecent(); loadShift(); });
  loadShift();
  loadRecent();
  loadProducts();
})();
