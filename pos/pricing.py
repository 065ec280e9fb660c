"""Pure cart arithmetic: line and cart discounts, tax per rate, payments and change. No I/O.

Everything is integer cents. Percent values are basis points (10 % = 1000). Tax is rounded once
per rate on the summed lines (what a tax summary on paper shows) and then shared back over the
lines by largest remainder, so line taxes add up to the summary exactly and refunds can use them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pos.money import (
    MAX_CENTS,
    MoneyError,
    format_cents,
    percent_of,
    split_proportionally,
    tax_included,
    tax_on_top,
)

PAYMENT_METHODS = ("cash", "card", "other")


class CheckoutError(ValueError):
    """The cart or the payments cannot make a sale; the message is for the person at the till."""


@dataclass(frozen=True)
class Discount:
    kind: str  # "percent" (value in basis points) or "amount" (value in cents)
    value: int
    reason: str = ""

    def amount_of(self, base: int) -> int:
        if self.kind == "percent":
            if not 0 <= self.value <= 10_000:
                raise CheckoutError(f"a discount of {self.value / 100}% is not between 0 and 100%")
            return percent_of(base, self.value)
        if self.value < 0:
            raise CheckoutError("a discount cannot be negative")
        if self.value > base:
            raise CheckoutError(f"a discount of {format_cents(self.value)} is more than the {format_cents(base)} it applies to")
        return self.value


@dataclass(frozen=True)
class CartItem:
    sku: str
    name: str
    variant: str
    qty: int
    unit_cents: int
    tax_bp: int
    discount: Discount | None = None


@dataclass
class PricedLine:
    line_no: int
    sku: str
    name: str
    variant: str
    qty: int
    unit_cents: int
    tax_bp: int
    gross_cents: int  # qty × unit, before discounts
    discount_cents: int  # line discount + this line's share of the cart discount
    total_cents: int  # after discounts; includes tax when prices include tax
    tax_cents: int = 0
    discount_reason: str = ""


@dataclass
class PricedCart:
    lines: list[PricedLine]
    subtotal_cents: int
    discount_cents: int
    tax_cents: int
    total_cents: int
    prices_include_tax: bool
    taxes: list[dict] = field(default_factory=list)  # [{"tax_bp", "net_cents", "tax_cents", "gross_cents"}]
    discount_reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def price_cart(items: list[CartItem], cart_discount: Discount | None, prices_include_tax: bool) -> PricedCart:
    if not items:
        raise CheckoutError("the cart is empty")
    lines: list[PricedLine] = []
    for i, it in enumerate(items, start=1):
        gross = it.qty * it.unit_cents
        if gross > MAX_CENTS:
            raise CheckoutError(f"{it.qty} × {it.name} comes to more than {format_cents(MAX_CENTS)}")
        d = it.discount.amount_of(gross) if it.discount else 0
        lines.append(PricedLine(i, it.sku, it.name, it.variant, it.qty, it.unit_cents, it.tax_bp, gross, d, gross - d,
                                discount_reason=it.discount.reason if it.discount else ""))
    subtotal = sum(line.gross_cents for line in lines)
    if subtotal > MAX_CENTS:
        raise CheckoutError(f"the cart comes to more than {format_cents(MAX_CENTS)}")
    after_lines = sum(line.total_cents for line in lines)
    cart_off = cart_discount.amount_of(after_lines) if cart_discount else 0
    for line, share in zip(lines, split_proportionally(cart_off, [ln.total_cents for ln in lines]), strict=True):
        line.discount_cents += share
        line.total_cents -= share
    taxes = []
    for bp in sorted({line.tax_bp for line in lines}):
        group = [line for line in lines if line.tax_bp == bp]
        base = sum(line.total_cents for line in group)
        tax = tax_included(base, bp) if prices_include_tax else tax_on_top(base, bp)
        for line, share in zip(group, split_proportionally(tax, [ln.total_cents for ln in group]), strict=True):
            line.tax_cents = share
        net = base - tax if prices_include_tax else base
        taxes.append({"tax_bp": bp, "net_cents": net, "tax_cents": tax, "gross_cents": net + tax})
    tax_total = sum(t["tax_cents"] for t in taxes)
    total = sum(line.total_cents for line in lines) + (0 if prices_include_tax else tax_total)
    return PricedCart(lines, subtotal, sum(line.discount_cents for line in lines), tax_total, total, prices_include_tax,
                      taxes, cart_discount.reason if cart_discount else "")


@dataclass(frozen=True)
class Tender:
    method: str  # cash | card | other
    amount_cents: int  # for cash: what the customer handed over
    reference: str = ""  # card terminal reference; voucher number; "comp" reason
    last4: str = ""


@dataclass
class Settlement:
    payments: list[dict]  # [{"method", "amount_cents" (applied), "tendered_cents", "reference", "last4"}]
    tendered_cents: int
    change_cents: int


def settle(total: int, tenders: list[Tender]) -> Settlement:
    """Apply tenders to a total: non-cash first and never over the total, cash covers the rest."""
    for t in tenders:
        if t.method not in PAYMENT_METHODS:
            raise CheckoutError(f"unknown payment method {t.method!r}; use cash, card or other")
        if t.amount_cents <= 0:
            raise CheckoutError(f"a {t.method} payment must be more than 0.00")
        if t.amount_cents > MAX_CENTS:
            raise CheckoutError(f"a {t.method} payment of more than {format_cents(MAX_CENTS)} is not accepted")
        if t.method == "card" and not t.reference.strip():
            raise CheckoutError("a card payment needs the terminal's reference")
        if t.last4 and not (len(t.last4) == 4 and t.last4.isdigit()):
            raise CheckoutError("the card's last digits must be exactly 4 digits")
    if not tenders:
        if total == 0:
            return Settlement([], 0, 0)
        raise CheckoutError(f"no payment given for a total of {format_cents(total)}")
    non_cash = sum(t.amount_cents for t in tenders if t.method != "cash")
    cash = sum(t.amount_cents for t in tenders if t.method == "cash")
    if non_cash > total:
        raise CheckoutError(f"card and other payments ({format_cents(non_cash)}) are more than the total "
                            f"{format_cents(total)}; only cash can give change")
    tendered = non_cash + cash
    if tendered < total:
        raise CheckoutError(f"tendered {format_cents(tendered)} is below the total {format_cents(total)}")
    change = tendered - total
    payments = []
    left_change = change
    # Change comes out of the cash tenders, last one first (the note handed over last).
    applied = {}
    for idx in reversed(range(len(tenders))):
        t = tenders[idx]
        take = min(left_change, t.amount_cents) if t.method == "cash" else 0
        applied[idx] = t.amount_cents - take
        left_change -= take
    for idx, t in enumerate(tenders):
        payments.append({"method": t.method, "amount_cents": applied[idx], "tendered_cents": t.amount_cents,
                         "reference": t.reference.strip()[:64], "last4": t.last4})
    return Settlement(payments, tendered, change)


def parse_discount(spec: object, what: str = "discount") -> Discount | None:
    """``{"percent": "10", "reason": ...}`` or ``{"amount": "2.00"}`` / ``{"amount_cents": 200}``."""
    from pos.money import parse_cents, parse_rate

    if spec in (None, {}, ""):
        return None
    if not isinstance(spec, dict):
        raise CheckoutError(f"{what} must be an object like {{\"percent\": \"10\", \"reason\": \"crew\"}}")
    reason = str(spec.get("reason", "")).strip()[:80]
    if not reason:
        raise CheckoutError(f"{what} needs a reason (e.g. crew, damaged, bundle)")
    try:
        if "percent" in spec:
            return Discount("percent", parse_rate(spec["percent"], what=f"{what} percent"), reason)
        if "amount_cents" in spec:
            from pos.money import check_cents

            return Discount("amount", check_cents(spec["amount_cents"], what=f"{what} amount"), reason)
        if "amount" in spec:
            return Discount("amount", parse_cents(spec["amount"], what=f"{what} amount"), reason)
    except MoneyError as e:
        raise CheckoutError(str(e)) from None
    raise CheckoutError(f"{what} needs 'percent' or 'amount'")
