/* The merch screen: product grid with variants, cart, pay dialog (change due), receipt status and preview,
   pickups from a keyboard-wedge scanner, sales per hour chart. All money in integer cents. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const root = $("pos");
  const currency = root.dataset.currency;
  const money = (c) => fk.money(c);
  let catalogue = [];          // [{name, variants: [...]}]
  let cart = [];               // [{sku, label, unit_cents, qty}]
  let unlocks = [];            // members-first drop unlocks of this buyer's tickets: spent by the sale
  let payKey = null;           // idempotency key of the Pay dialog: a double tap sends it twice
  let method = "cash";
  let parts = [];              // split payments already added
  let lastSale = null;
  let paying = false;
  let cartDiscount = null;     // {percent|amount, reason}: the server prices it (quote), the screen shows that
  let quoted = null;           // the server's totals for the current cart

  function parseCents(text) {
    const m = /^\s*(\d{1,8})(?:[.,](\d{1,2}))?\s*$/.exec(text || "");
    if (!m) return null;
    return parseInt(m[1], 10) * 100 + parseInt((m[2] || "0").padEnd(2, "0"), 10);
  }
  function newKey() {
    // The time first (as the kit's own ids): a new key lands beside the last one in the kit's index.
    const b = new Uint8Array(10);
    crypto.getRandomValues(b);
    return "pay-" + Date.now().toString(16).padStart(12, "0") + "-" +
      Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  function say(text, bad) { const m = $("message"); m.textContent = text || ""; m.className = "msg " + (bad ? "error" : "green"); }
  function focusScan() { setTimeout(() => $("scan").focus(), 0); }

  // --- catalogue and grid ----------------------------------------------------------------------
  async function loadCatalogue() {
    const r = await fk.get("/api/v1/pos/catalogue");
    if (!r.ok) { say(r.data && r.data.error || "cannot load the catalogue", true); return; }
    catalogue = r.data.products;
    renderGrid();
  }
  function leftText(v) {
    if (v.remaining === null || v.remaining === undefined) return "";
    return v.remaining <= 0 ? "sold out (" + v.remaining + ")" : v.remaining + " left";
  }
  function renderGrid() {
    const grid = $("products");
    grid.textContent = "";
    for (const g of catalogue) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "product";
      b.dataset.product = g.name;
      const prices = [...new Set(g.variants.map((v) => v.price_cents))];
      b.innerHTML = "";
      b.append(g.name);
      const p = document.createElement("span"); p.className = "price";
      p.textContent = money(Math.min(...prices)) + (prices.length > 1 ? "+" : "");
      b.append(p);
      if (g.variants.length === 1) {
        const l = document.createElement("span"); l.className = "left" + (g.variants[0].remaining <= 0 ? " low" : "");
        l.textContent = leftText(g.variants[0]); b.append(l);
      }
      b.addEventListener("click", () => { tapped(b); if (g.variants.length === 1) add(g.variants[0]); else showVariants(g); });
      grid.append(b);
    }
  }
  function showVariants(g) {
    const box = $("variants");
    box.textContent = "";
    const title = document.createElement("b"); title.textContent = g.name + ":"; box.append(title);
    for (const v of g.variants) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "btn"; b.dataset.sku = v.sku;
      b.textContent = v.variant || v.sku;
      b.title = leftText(v);
      b.addEventListener("click", () => { tapped(b); add(v); box.hidden = true; });
      box.append(b);
    }
    const close = document.createElement("button");
    close.type = "button"; close.className = "btn"; close.textContent = "×";
    close.addEventListener("click", () => { box.hidden = true; focusScan(); });
    box.append(close);
    box.hidden = false;
  }

  // --- cart ----------------------------------------------------------------------------------
  // Every tap shows at once: the button flashes, its product shows how many are in the cart.
  function tapped(b) {
    b.classList.remove("tapped");
    void b.offsetWidth;  // restart the flash on a quick second tap
    b.classList.add("tapped");
  }
  function markInCart() {
    for (const b of document.querySelectorAll("#products .product")) {
      const g = catalogue.find((x) => x.name === b.dataset.product);
      const n = g ? cart.filter((l) => g.variants.some((v) => v.sku === l.sku)).reduce((s, l) => s + l.qty, 0) : 0;
      let badge = b.querySelector(".in-cart");
      if (!n) { if (badge) badge.remove(); continue; }
      if (!badge) { badge = document.createElement("span"); badge.className = "in-cart"; b.append(badge); }
      badge.textContent = n + " in cart";
    }
  }
  let justAdded = null;
  function add(v) {
    justAdded = v.sku;
    const line = cart.find((l) => l.sku === v.sku);
    if (line) line.qty += 1;
    else cart.push({ sku: v.sku, label: (v.name + " " + (v.variant || "")).trim(), unit_cents: v.price_cents, qty: 1 });
    say("");
    renderCart();
    focusScan();
  }
  function subtotal() { return cart.reduce((s, l) => s + l.unit_cents * l.qty, 0); }
  function total() { return quoted ? quoted.total_cents : subtotal(); }
  function cartBody() {
    return { items: cart.map((l) => ({ sku: l.sku, qty: l.qty, discount: l.discount || null })), discount: cartDiscount,
             unlocks: unlocks };
  }
  let quoteSeq = 0;
  async function refreshQuote() {
    const mine = ++quoteSeq;
    quoted = null;
    if (!cart.length) { showTotals(); return; }
    const r = await fk.post("/api/v1/pos/quote", cartBody());
    if (mine !== quoteSeq) return;  // the cart changed meanwhile
    if (r.ok) quoted = r.data;
    else {
      // A discount the kit refuses (more than the line, no reason...) is dropped, and the screen says why.
      say(r.data.error, true);
      if (cartDiscount || cart.some((l) => l.discount)) { cartDiscount = null; cart.forEach((l) => { l.discount = null; }); renderCart(); return; }
    }
    showTotals();
  }
  function showTotals() {
    $("cart-total").textContent = money(total());
    $("pay").textContent = cart.length ? "Pay " + money(total()) : "Pay";
    $("discount-label").textContent = quoted && quoted.discount_cents
      ? "Discounts −" + money(quoted.discount_cents) + (cartDiscount ? " (cart:" + discountText(cartDiscount) + ")" : "") : "";
  }
  let discountLine = null;  // null: the whole cart; else the cart line the discount is for
  function openDiscount(line) {
    discountLine = line;
    $("discount-value").placeholder = line ? "10% or 2.00 off " + line.label : "10% or 2.00 off the cart";
    $("discount-form").hidden = false;
    $("discount-value").focus();
  }
  function applyDiscount() {
    const v = $("discount-value").value.trim(), reason = $("discount-reason").value.trim();
    let d = null;
    if (v && !reason) { say("A discount needs a reason.", true); return; }
    if (v) d = v.endsWith("%") ? { percent: v.slice(0, -1), reason: reason } : { amount: v, reason: reason };
    if (discountLine) discountLine.discount = d; else cartDiscount = d;
    $("discount-form").hidden = true;
    $("discount-value").value = ""; $("discount-reason").value = "";
    say("");
    renderCart();
    focusScan();
  }
  function discountText(d) { return d ? " −" + (d.percent !== undefined ? d.percent + "%" : d.amount) + " " + d.reason : ""; }
  function renderCart() {
    const ul = $("cart");
    ul.textContent = "";
    for (const l of cart) {
      const li = document.createElement("li");
      li.dataset.sku = l.sku;
      const minus = document.createElement("button"); minus.type = "button"; minus.textContent = "−"; minus.setAttribute("aria-label", "one less");
      const qty = document.createElement("span"); qty.className = "qty"; qty.textContent = l.qty;
      const plus = document.createElement("button"); plus.type = "button"; plus.textContent = "+"; plus.setAttribute("aria-label", "one more");
      const label = document.createElement("button"); label.type = "button"; label.className = "label";
      label.textContent = l.label + discountText(l.discount);
      label.title = "Tap for a discount on this line";
      label.addEventListener("click", () => openDiscount(l));
      const amount = document.createElement("span"); amount.textContent = money(l.unit_cents * l.qty);
      minus.addEventListener("click", () => { l.qty -= 1; if (l.qty <= 0) cart = cart.filter((x) => x !== l); renderCart(); });
      plus.addEventListener("click", () => { l.qty += 1; renderCart(); });
      li.append(minus, qty, plus, label, amount);
      if (l.sku === justAdded) li.classList.add("just-added");
      ul.append(li);
      // keep the new line in view inside the cart's own scroll box (never scroll the page under the Pay bar)
      if (l.sku === justAdded) ul.scrollTop = Math.max(0, li.offsetTop + li.offsetHeight - ul.clientHeight);
    }
    justAdded = null;
    const items = cart.reduce((s, l) => s + l.qty, 0);
    $("cart-total").textContent = money(subtotal());
    $("cart-count").textContent = items ? "· " + items + (items === 1 ? " item" : " items") : "";
    $("pay").disabled = cart.length === 0;
    markInCart();
    refreshQuote();
  }

  // --- pay dialog ------------------------------------------------------------------------------
  async function openPay() {
    if (!cart.length) return;
    if (!quoted) await refreshQuote();
    if (!quoted) return;
    payKey = newKey();
    parts = [];
    $("tendered").value = "";
    $("card-ref").value = ""; $("card-last4").value = ""; $("card-amount").value = "";
    $("other-ref").value = ""; $("other-amount").value = "";
    $("pay-error").textContent = "";
    setMethod("cash");
    $("pay-total").textContent = money(total()) + " " + currency;
    renderQuick();
    updateChange();
    $("pay-dialog").hidden = false;
    $("tendered").focus();
  }
  function remaining() { return total() - parts.reduce((s, p) => s + p.amount_cents, 0); }
  function setMethod(m) {
    method = m;
    for (const b of document.querySelectorAll(".method")) b.classList.toggle("active", b.dataset.method === m);
    for (const d of document.querySelectorAll(".pay-entry [data-for]")) d.hidden = d.dataset.for !== m;
    $("keypad").hidden = m !== "cash";
    const rest = money(Math.max(remaining(), 0));
    if (m === "card" && !$("card-amount").value) $("card-amount").value = rest;
    if (m === "other" && !$("other-amount").value) $("other-amount").value = rest;
    updateChange();
  }
  function renderQuick() {
    const q = $("quick");
    q.textContent = "";
    const due = Math.max(remaining(), 0);
    const notes = [due, ...[500, 1000, 2000, 5000, 10000].filter((n) => n > due)].slice(0, 5);
    for (const n of notes) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "btn"; b.textContent = n === due ? "Exact" : money(n);
      b.addEventListener("click", () => { $("tendered").value = money(n); updateChange(); });
      q.append(b);
    }
    const pad = $("keypad");
    if (!pad.childElementCount) {
      for (const k of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", ".", "⌫"]) {
        const b = document.createElement("button");
        b.type = "button"; b.textContent = k;
        b.addEventListener("click", () => {
          const t = $("tendered");
          t.value = k === "⌫" ? t.value.slice(0, -1) : t.value + k;
          updateChange();
        });
        pad.append(b);
      }
    }
  }
  function currentEntry() {
    if (method === "cash") {
      const c = parseCents($("tendered").value);
      return c ? { method: "cash", amount_cents: c } : null;
    }
    if (method === "card") {
      const c = parseCents($("card-amount").value);
      return c ? { method: "card", amount_cents: c, reference: $("card-ref").value.trim(), last4: $("card-last4").value.trim() } : null;
    }
    const c = parseCents($("other-amount").value);
    return c ? { method: "other", amount_cents: c, reference: $("other-ref").value.trim() } : null;
  }
  function updateChange() {
    const entry = currentEntry();
    const paid = parts.reduce((s, p) => s + p.amount_cents, 0) + (entry ? entry.amount_cents : 0);
    const change = paid - total();
    $("change-due").textContent = change >= 0 ? money(change) : "—  (" + money(-change) + " short)";
    $("paid-parts").textContent = parts.length ? "Paid so far: " + parts.map((p) => p.method + " " + money(p.amount_cents)).join(", ")
      + " · left " + money(Math.max(remaining(), 0)) : "";
  }
  function addPart() {
    const e = currentEntry();
    if (!e) { $("pay-error").textContent = "Enter an amount first."; return; }
    if (e.amount_cents >= remaining()) { $("pay-error").textContent = "That covers everything: tap Confirm payment."; return; }
    parts.push(e);
    $("tendered").value = ""; $("card-amount").value = ""; $("other-amount").value = ""; $("card-ref").value = "";
    $("pay-error").textContent = "";
    renderQuick();
    setMethod("cash");
  }
  async function confirmPay() {
    if (paying) return;  // the key also protects a double tap that gets through
    const entry = currentEntry();
    const payments = parts.concat(entry ? [entry] : []);
    const body = Object.assign(cartBody(), { payments: payments, idempotency_key: payKey });
    paying = true;
    $("confirm-pay").disabled = true;
    try {
      const r = await fk.post("/api/v1/pos/sales", body);
      if (!r.ok) { $("pay-error").textContent = r.data.error; return; }
      showDone(r.data);
    } catch (e) {
      $("pay-error").textContent = "The kit did not answer. Tap Confirm again: it will not charge twice.";
    } finally {
      paying = false;
      $("confirm-pay").disabled = false;
    }
  }

  // --- after the sale --------------------------------------------------------------------------
  function showDone(data) {
    lastSale = data.sale;
    if (window.fkSound) fkSound.play("sale");
    $("pay-dialog").hidden = true;
    $("done-change").textContent = money(data.sale.change_cents);
    $("done-receipt").textContent = data.sale.receipt;
    $("receipt-preview").innerHTML = data.preview_html;  // built on the kit from the same data as the paper
    showPrint(data.print, data.printer);
    $("done-dialog").hidden = false;
    cart = []; unlocks = [];
    cartDiscount = null;
    $("discount-value").value = ""; $("discount-reason").value = "";
    renderCart();
    loadCatalogue();
    loadChart();
    pollPrint();
  }
  function showPrint(print, printer) {
    const el = $("print-status");
    if (!print) return;
    if (print.status === "done") { el.textContent = "Receipt printed"; el.className = "badge ok"; return; }
    if (print.status === "failed") { el.textContent = "Receipt could not print: " + print.error; el.className = "badge bad"; return; }
    const why = print.error || (printer && printer.reason) || "";
    el.textContent = why ? "Receipt waiting: " + why : "Receipt printing…";
    el.className = "badge " + (why ? "warn" : "");
  }
  let pollTimer = null;
  function pollPrint() {
    clearTimeout(pollTimer);
    if (!lastSale || $("done-dialog").hidden) return;
    pollTimer = setTimeout(async () => {
      const r = await fk.get("/api/v1/pos/sales/" + encodeURIComponent(lastSale.id));
      if (r.ok) showPrint(r.data.print);
      if (r.ok && r.data.print.status === "done") return;
      pollPrint();
    }, 1500);
  }
  function newSale() {
    $("done-dialog").hidden = true;
    lastSale = null;
    say("");
    focusScan();
  }

  // --- printer badge ----------------------------------------------------------------------------
  function showPrinter(s) {
    const el = $("printer-status");
    if (!s) return;
    if (s.printer === "online") { el.textContent = "Printer ready" + (s.queued ? " (" + s.queued + " waiting)" : ""); el.className = "badge ok"; }
    else if (s.printer === "unknown") { el.textContent = "Printer: no news from the pos service"; el.className = "badge warn"; }
    else { el.textContent = (s.printer === "no_paper" ? "Printer out of paper" : "Printer offline") + " — receipts queue"
           + (s.queued ? " (" + s.queued + " waiting)" : ""); el.className = "badge bad"; el.title = s.reason || ""; }
  }

  // --- scanner: pickups and barcodes -------------------------------------------------------------
  let pickupCode = null;
  // Members first: "Member ticket" on a drop's strip takes the next scan as the buyer's ticket; a
  // code that is neither a product nor a pickup is tried as one while a members' window is on.
  let memberDrop = null;
  $("drops").addEventListener("click", (e) => {
    const b = e.target.closest(".member-scan");
    if (!b) return;
    memberDrop = b.dataset.drop;
    $("scan").placeholder = "Scan the buyer's member ticket";
    say("Scan the buyer's ticket for " + memberDrop + ".");
    focusScan();
  });
  async function unlockMember(drop, code) {
    memberDrop = null;
    $("scan").placeholder = "Scan pickup QR or barcode here";
    const r = await fk.post("/api/v1/pos/drops/" + encodeURIComponent(drop) + "/unlock", { code: code });
    if (!r.ok) { say(r.data.error || "ticket refused", true); return; }
    unlocks.push(r.data.unlock_id);
    for (const g of catalogue) for (const v of g.variants) if (v.sku === r.data.sku) { add(v); break; }
    say(r.data.ticket_type + " ticket: one " + r.data.sku + " at the members' price.");
  }
  async function onScan(code) {
    code = code.trim();
    if (!code) return;
    if (memberDrop) { await unlockMember(memberDrop, code); return; }
    for (const g of catalogue) for (const v of g.variants) {
      if (v.sku === code || (v.barcode && v.barcode === code)) { add(v); return; }
    }
    const r = await fk.get("/api/v1/pos/pickups/" + encodeURIComponent(code));
    const members = window.fkMemberDrops || [];
    if (!r.ok && r.status === 404 && members.length === 1) { await unlockMember(members[0], code); return; }
    if (!r.ok) { say((r.data && r.data.error) || "unknown code " + code, true); return; }
    pickupCode = r.data.code;
    $("pickup-title").textContent = "Pickup " + r.data.code + (r.data.name ? " · " + r.data.name : "");
    const ul = $("pickup-items");
    ul.textContent = "";
    for (const it of r.data.items) {
      const li = document.createElement("li");
      li.textContent = it.qty + "× " + (it.description || it.sku) + " — hand over";
      ul.append(li);
    }
    const note = $("pickup-note");
    if (r.data.collected_at) {
      note.textContent = "Already collected at " + r.data.collected_at.slice(0, 16).replace("T", " ") + " UTC — do not hand over again.";
      note.className = "big-note red"; $("pickup-done").hidden = true;
    } else { note.textContent = ""; $("pickup-done").hidden = false; }
    $("pickup-dialog").hidden = false;
  }
  async function pickupDone() {
    const r = await fk.post("/api/v1/pos/pickups/" + encodeURIComponent(pickupCode) + "/collect", {});
    $("pickup-dialog").hidden = true;
    say(r.ok ? "Pickup " + pickupCode + " handed over." : r.data.error, !r.ok);
    focusScan();
  }

  // --- chart: sales per hour as inline SVG bars ---------------------------------------------------
  async function loadChart() {
    const r = await fk.get("/api/v1/pos/stats");
    if (!r.ok) return;
    const data = r.data.per_hour;
    const w = 24, gap = 6, h = 70, max = Math.max(1, ...data.map((d) => d.count));
    let svg = '<svg viewBox="0 0 ' + data.length * (w + gap) + ' 90" role="img" aria-label="Sales per hour">';
    data.forEach((d, i) => {
      const bh = Math.round((d.count / max) * h);
      svg += '<rect x="' + i * (w + gap) + '" y="' + (h - bh) + '" width="' + w + '" height="' + bh + '" fill="#0b57d0">'
        + "<title>" + d.hour + ":00 " + d.count + " sales " + money(d.total_cents) + "</title></rect>";
      svg += '<text x="' + (i * (w + gap) + w / 2) + '" y="86" font-size="11" text-anchor="middle">' + d.hour + "</text>";
      if (d.count) svg += '<text x="' + (i * (w + gap) + w / 2) + '" y="' + (h - bh - 2) + '" font-size="11" text-anchor="middle">' + d.count + "</text>";
    });
    $("chart").innerHTML = svg + "</svg>";
  }

  // --- refunds approved with a lead's PIN ------------------------------------------------------------
  let refundSale = null;
  async function findRefund() {
    const code = $("refund-receipt").value.trim();
    if (!code) return;
    const r = await fk.get("/api/v1/pos/sales/" + encodeURIComponent(code));
    const tb = document.querySelector("#refund-lines tbody");
    tb.textContent = "";
    if (!r.ok) { $("refund-msg").textContent = r.data.error; $("refund-msg").className = "msg error"; refundSale = null; return; }
    refundSale = r.data.sale;
    $("refund-msg").textContent = refundSale.receipt + " · " + money(refundSale.total_cents) + " " + refundSale.currency
      + (r.data.refunds.length ? " · already refunded: " + r.data.refunds.map((x) => x.receipt).join(", ") : "");
    $("refund-msg").className = "msg";
    for (const ln of refundSale.lines) {
      const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td></td><td><input inputmode='numeric' placeholder='0' aria-label='quantity to refund'></td>";
      tr.children[0].textContent = ln.qty + " × " + (ln.name + " " + ln.variant).trim();
      tr.children[1].textContent = money(ln.total_cents);
      tr.querySelector("input").dataset.line = ln.line_no;
      tb.append(tr);
    }
  }
  async function doRefund() {
    if (!refundSale) return;
    const items = [];
    for (const i of document.querySelectorAll("#refund-lines input")) {
      const q = parseInt(i.value, 10);
      if (q > 0) items.push({ line: parseInt(i.dataset.line, 10), qty: q });
    }
    const pin = $("refund-pin");  // absent for a lead: their own session approves
    const body = { reason: $("refund-reason").value, lead_pin: pin ? pin.value : "", items: items.length ? items : null };
    const r = await fk.post("/api/v1/pos/sales/" + encodeURIComponent(refundSale.id) + "/refund", body);
    if (pin) pin.value = "";
    if (!r.ok) { $("refund-msg").textContent = r.data.error; $("refund-msg").className = "msg error"; return; }
    $("refund-msg").textContent = "Refund " + r.data.refund.receipt + ": give back " + money(r.data.refund.total_cents)
      + " by " + r.data.refund.payments[0].method + ".";
    $("refund-msg").className = "msg green";
    refundSale = null;
    document.querySelector("#refund-lines tbody").textContent = "";
    loadCatalogue();
  }

  // --- wiring --------------------------------------------------------------------------------------
  $("refund-open").addEventListener("click", () => {
    $("refund-dialog").hidden = false; $("refund-msg").textContent = ""; $("refund-receipt").value = ""; $("refund-receipt").focus();
  });
  $("refund-close").addEventListener("click", () => { $("refund-dialog").hidden = true; focusScan(); });
  $("refund-find").addEventListener("click", findRefund);
  $("refund-receipt").addEventListener("keydown", (e) => { if (e.key === "Enter") findRefund(); });
  $("refund-go").addEventListener("click", doRefund);
  $("pay").addEventListener("click", openPay);
  $("clear").addEventListener("click", () => { cart = []; unlocks = []; cartDiscount = null; renderCart(); focusScan(); });
  $("discount-toggle").addEventListener("click", () => { if ($("discount-form").hidden) openDiscount(null); else $("discount-form").hidden = true; });
  $("discount-apply").addEventListener("click", applyDiscount);
  $("discount-remove").addEventListener("click", () => { $("discount-value").value = ""; $("discount-reason").value = ""; applyDiscount(); });
  $("pay-cancel").addEventListener("click", () => { $("pay-dialog").hidden = true; focusScan(); });
  for (const b of document.querySelectorAll(".method")) b.addEventListener("click", () => setMethod(b.dataset.method));
  for (const id of ["tendered", "card-amount", "other-amount"]) $(id).addEventListener("input", updateChange);
  $("tendered").addEventListener("keydown", (e) => { if (e.key === "Enter") confirmPay(); });
  $("add-part").addEventListener("click", addPart);
  $("confirm-pay").addEventListener("click", confirmPay);
  $("new-sale").addEventListener("click", newSale);
  $("reprint").addEventListener("click", async () => {
    if (!lastSale) return;
    const r = await fk.post("/api/v1/pos/sales/" + encodeURIComponent(lastSale.id) + "/reprint", {});
    $("print-status").textContent = r.ok ? "Copy queued" : r.data.error;
    pollPrint();
  });
  $("pickup-done").addEventListener("click", pickupDone);
  $("pickup-cancel").addEventListener("click", () => { $("pickup-dialog").hidden = true; focusScan(); });
  function takeScan() { const v = $("scan").value; $("scan").value = ""; keyTimes = []; onScan(v); }
  $("scan").addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === "Tab") { e.preventDefault(); clearTimeout(scanTimer); takeScan(); }
  });
  // Some scanners send no Enter: a burst of keys faster than anyone types, then silence, is a scan.
  let scanTimer = null, keyTimes = [];
  $("scan").addEventListener("input", () => {
    const now = performance.now();
    // A pause of more than 300 ms starts a new burst: only the keys of this one count.
    if (keyTimes.length && now - keyTimes[keyTimes.length - 1] > 300) keyTimes = [];
    keyTimes.push(now);
    clearTimeout(scanTimer);
    const v = $("scan").value;
    if (v.length < 4 || keyTimes.length < 4) return;
    const gaps = keyTimes.slice(1).map((t, i) => t - keyTimes[i]);
    if (gaps.reduce((a, b) => a + b, 0) / gaps.length < 35) scanTimer = setTimeout(takeScan, 200);
  });
  for (const b of document.querySelectorAll("[data-sim]")) b.addEventListener("click", async () => {
    await fk.post("/api/v1/pos/printer/sim", JSON.parse(b.dataset.sim));
  });
  if (window.fkSound) fkSound.controls($("sound-controls"));
  fk.subscribe("pos/state", showPrinter);
  fk.subscribe("pos/event/sale", () => { loadChart(); });
  fk.subscribe("pos/event/print", (msg) => { if (lastSale && msg.receipt === lastSale.receipt && msg.status === "printed") showPrint({ status: "done" }); });
  fk.get("/api/v1/pos/printer").then((r) => r.ok && showPrinter(r.data));
  loadCatalogue();
  loadChart();
  renderCart();
})();
