"""Money: integer minor units (cents) everywhere; decimals parsed with Decimal, never floats.

Rounding is half-up on the cent (what a customer expects on paper). Shares of a discount or a
refund are split by the largest remainder so the parts always add up to the whole exactly.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Ten million in any currency is far beyond a merch table; anything larger is a typo or an attack.
MAX_CENTS = 10_000_000_00
MAX_QTY = 10_000
_AMOUNT_RE = re.compile(r"^\s*(-?)(\d{1,12})(?:[.,](\d{1,2}))?\s*$")


class MoneyError(ValueError):
    """An amount or a rate that cannot be money: the message says what is wrong."""


def parse_cents(text: str | int | Decimal, *, what: str = "amount", allow_negative: bool = False) -> int:
    """``"25.00"`` → 2500. Accepts at most two decimals, a dot or a comma; rejects floats and overflow."""
    if isinstance(text, bool):
        raise MoneyError(f"{what}: {text!r} is not an amount")
    if isinstance(text, int):
        raise MoneyError(f"{what}: write amounts as decimals such as 25.00, not {text!r}")
    if isinstance(text, Decimal):
        text = str(text)
    if not isinstance(text, str):
        raise MoneyError(f"{what}: {text!r} is not an amount (write it as a decimal string such as 25.00)")
    m = _AMOUNT_RE.match(text)
    if not m:
        raise MoneyError(f"{what}: {text!r} is not an amount like 25.00")
    sign, units, frac = m.groups()
    cents = int(units) * 100 + int((frac or "0").ljust(2, "0"))
    if sign:
        cents = -cents
    check_cents(cents, what=what, allow_negative=allow_negative)
    return cents


def check_cents(cents: object, *, what: str = "amount", allow_negative: bool = False) -> int:
    if not isinstance(cents, int) or isinstance(cents, bool):
        raise MoneyError(f"{what}: {cents!r} is not a whole number of cents")
    if cents < 0 and not allow_negative:
        raise MoneyError(f"{what}: {format_cents(cents)} is negative")
    if abs(cents) > MAX_CENTS:
        raise MoneyError(f"{what}: {format_cents(cents)} is larger than the limit of {format_cents(MAX_CENTS)}")
    return cents


def format_cents(cents: int, currency: str = "") -> str:
    """2500 → ``"25.00"`` (``"25.00 EUR"`` with a currency)."""
    sign = "-" if cents < 0 else ""
    a = abs(cents)
    text = f"{sign}{a // 100}.{a % 100:02d}"
    return f"{text} {currency}" if currency else text


def parse_rate(text: str | int | Decimal, *, what: str = "tax rate") -> int:
    """A percentage as basis points: ``"19"`` → 1900, ``"7.7"`` → 770. 0–100 %, at most two decimals."""
    try:
        d = Decimal(str(text).strip().rstrip("%").strip().replace(",", "."))
    except InvalidOperation:
        raise MoneyError(f"{what}: {text!r} is not a percentage like 19 or 7.7") from None
    if not d.is_finite() or d < 0 or d > 100:
        raise MoneyError(f"{what}: {text!r} must be between 0 and 100")
    bp = d * 100
    if bp != bp.to_integral_value():
        raise MoneyError(f"{what}: {text!r} has more than two decimals")
    return int(bp)


def format_rate(bp: int) -> str:
    d = Decimal(bp) / 100
    return f"{d.normalize():f}%"


def round_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half-up (away from zero on .5), exact for any size of int."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    n = abs(numerator)
    return sign * ((2 * n + denominator) // (2 * denominator))


def percent_of(cents: int, bp: int) -> int:
    """``bp`` basis points of ``cents``, rounded half-up to the cent."""
    return round_div(cents * bp, 10_000)


def tax_included(gross: int, bp: int) -> int:
    """The tax inside a tax-inclusive amount: gross − gross / (1 + rate), rounded half-up."""
    if bp == 0:
        return 0
    return gross - round_div(gross * 10_000, 10_000 + bp)


def tax_on_top(net: int, bp: int) -> int:
    return percent_of(net, bp)


def split_proportionally(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` over ``weights`` by the largest remainder: parts sum to ``total`` exactly.

    Used for a cart discount spread over lines (so each line's tax is right) and for refunds.
    """
    if total < 0:
        raise ValueError("total must not be negative")
    s = sum(weights)
    if s <= 0:
        if total:
            raise ValueError("cannot split a non-zero total over zero weights")
        return [0] * len(weights)
    floors = [total * w // s for w in weights]
    remainders = [total * w % s for w in weights]
    short = total - sum(floors)
    # Ties go to the earlier line so the result is deterministic.
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:short]:
        floors[i] += 1
    return floors
