"""The run-sheet: the evening's micro-stage slots, a TOML reference document (kind ``lead.runsheet``).

::

    name = "Courtyard, Friday"
    date = "2026-12-04"        # the evening, in kit.timezone; a slot whose clock time is earlier
                               # than the slot before it is after midnight
    [[slot]]
    name = "Poetry bench"
    start = "19:30"            # or a full local time, 2026-12-04T19:30
    minutes = 20
    stage = "Bench"
    host = "Ana"
    note = "Mic check at 19:25"
    [slot.drop]                # optional: a live drop this slot opens (pos checks the SKU when it does)
    sku = "POSTER"
    price = "8.00"
    quantity = 30
    minutes = 10               # default: until the slot ends
    at = "ending"              # "start" (default) or "ending": in the slot's last minute
    members_minutes = 5        # optional, members first: for its first 5 minutes only these types buy
    member_types = ["Member"]

Every error names its line, like cue sheets. A sheet with overlapping slots, a slot longer than the
night or an unknown key is refused whole; the running sheet stays. The document travels to the
site's other kits inside one site-link message, so it is small (MAX_BYTES).
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from kit.toml_lines import LineIndex, Path

MAX_BYTES = 32 * 1024  # one site-link message carries it (the link's limit is 64 KiB)
MAX_SLOTS = 100
NIGHT_HOURS = 18  # first start to last end; a sheet (or slot) longer than this is a typo
TEXT_LIMITS = {"name": 80, "stage": 40, "host": 60, "note": 300}
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class RunSheetError(ValueError):
    """The run-sheet cannot be used; ``line`` is where the problem is (None when unknown)."""

    def __init__(self, message: str, line: int | None = None, filename: str = "run-sheet"):
        self.line, self.reason = line, message
        super().__init__(f"{filename} line {line}: {message}" if line else f"{filename}: {message}")


@dataclass(frozen=True)
class Slot:
    index: int
    name: str
    start: float  # unix seconds, as planned
    minutes: float
    stage: str = ""
    host: str = ""
    note: str = ""
    drop: dict | None = None  # {"name", "sku", "price_cents", "quantity", "minutes", "at"}

    @property
    def end(self) -> float:
        return self.start + self.minutes * 60

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunSheet:
    name: str
    evening: str  # ISO date
    slots: tuple[Slot, ...]
    digest: str  # sha256 of the document: what the lead's adjustments refer to
    text: str

    def slot_named(self, name: str) -> Slot | None:
        return next((s for s in self.slots if s.name == name), None)


def parse_runsheet(data: bytes | str, tz: ZoneInfo, filename: str = "run-sheet") -> RunSheet:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_BYTES:
        raise RunSheetError(f"{len(raw)} bytes; a run-sheet is at most {MAX_BYTES} bytes", None, filename)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RunSheetError("not UTF-8 text", None, filename) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        match = re.search(r"line (\d+)", str(e))
        raise RunSheetError(f"not valid TOML ({e})", int(match.group(1)) if match else None, filename) from None
    lines = LineIndex(text)

    def fail(path: Path, message: str) -> RunSheetError:
        return RunSheetError(message, lines.line_of(path), filename)

    for key in doc:
        if key not in ("name", "date", "slot"):
            raise fail((key,), f"unknown key {key!r} (expected name, date and [[slot]] tables)")
    name = _text(doc, "name", (), "the run-sheet", fail, required=True)
    evening = doc.get("date")
    if isinstance(evening, str):
        try:
            evening = date.fromisoformat(evening)
        except ValueError:
            raise fail(("date",), f"date {evening!r} is not a date like 2026-12-04") from None
    if not isinstance(evening, date) or isinstance(evening, datetime):
        raise fail(("date",), "date is missing or not a date like 2026-12-04 (the evening, in kit.timezone)")
    raw_slots = doc.get("slot", [])
    if not isinstance(raw_slots, list) or not raw_slots:
        raise fail(("slot",), "no [[slot]] tables: a run-sheet lists at least one slot")
    if len(raw_slots) > MAX_SLOTS:
        raise fail(("slot",), f"{len(raw_slots)} slots; at most {MAX_SLOTS}")
    slots: list[Slot] = []
    day = datetime(evening.year, evening.month, evening.day, tzinfo=tz)
    for i, table in enumerate(raw_slots):
        path = ("slot", i)
        if not isinstance(table, dict):
            raise fail(path, f"slot {i + 1} must be a [[slot]] table")
        what = f"slot {i + 1}" + (f" ({table['name'][:80]})" if isinstance(table.get("name"), str) else "")
        for key in table:
            if key not in ("name", "start", "minutes", "stage", "host", "note", "drop"):
                raise fail((*path, key), f"{what}: unknown key {key!r} (expected name, start, minutes, stage, host, note, drop)")
        what = f"slot {i + 1}"
        slot_name = _text(table, "name", path, what, fail, required=True)
        what = f"slot {i + 1} ({slot_name})"
        minutes = table.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
            raise fail((*path, "minutes"), f"{what}: minutes must be a number above 0")
        if minutes > NIGHT_HOURS * 60:
            raise fail((*path, "minutes"), f"{what}: {minutes:g} minutes is longer than the night ({NIGHT_HOURS} h)")
        start = _start(table.get("start"), day, tz, slots[-1].start if slots else None)
        if start is None:
            raise fail((*path, "start"), f"{what}: start must be a time like 19:30 or 2026-12-04T19:30")
        drop = _drop(table.get("drop"), (*path, "drop"), what, slot_name, float(minutes), fail) if "drop" in table else None
        slot = Slot(i, slot_name, start, float(minutes), _text(table, "stage", path, what, fail),
                    _text(table, "host", path, what, fail), _text(table, "note", path, what, fail), drop)
        if slots and slot.start < slots[-1].end:
            before = slots[-1]
            raise fail((*path, "start"), f"{what} starts at {_clock(slot.start, tz)}, before {before.name!r} "
                                         f"ends at {_clock(before.end, tz)}: slots may not overlap (list them in time order)")
        if slots and slot.end - slots[0].start > NIGHT_HOURS * 3600:
            raise fail((*path, "start"), f"{what} ends {(slot.end - slots[0].start) / 3600:.1f} h after the first slot "
                                         f"starts; a night is at most {NIGHT_HOURS} h")
        if slot_name in {s.name for s in slots}:
            raise fail((*path, "name"), f"{what}: two slots called {slot_name!r}; cues and the numbers tell them by name")
        slots.append(slot)
    return RunSheet(name, evening.isoformat(), tuple(slots), hashlib.sha256(raw).hexdigest(), text)


DROP_NAME = re.compile(r"^[\w .:'&+#-]{1,60}$")
DROP_KEYS = ("name", "sku", "price", "quantity", "minutes", "at", "members_minutes", "member_types")


def _drop(raw: object, path: Path, what: str, slot_name: str, slot_minutes: float, fail) -> dict:
    """A slot's drop, checked as far as the run-sheet can: whether the SKU sells is pos's to say when it opens."""
    if not isinstance(raw, dict):
        raise fail(path, f"{what}: drop must be a [slot.drop] table")
    for key in raw:
        if key not in DROP_KEYS:
            raise fail((*path, key), f"{what} drop: unknown key {key!r} (expected {', '.join(DROP_KEYS)})")
    name = raw.get("name", f"{slot_name} drop")
    if not isinstance(name, str) or not DROP_NAME.match(name.strip()[:60]):
        raise fail((*path, "name"), f"{what} drop: name must be 1-60 letters, digits, spaces or .:'&+#-")
    sku = raw.get("sku")
    if not isinstance(sku, str) or not 0 < len(sku.strip()) <= 64:
        raise fail((*path, "sku"), f"{what} drop: sku is missing")
    price = raw.get("price")
    try:
        cents = Decimal(str(price).strip().replace(",", ".")) * 100 if isinstance(price, str) else None
    except InvalidOperation:
        cents = None
    if cents is None or cents < 0 or cents != cents.to_integral_value():
        raise fail((*path, "price"), f"{what} drop: price must be an amount as text, like \"8.00\" (not negative)")
    quantity = raw.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 100_000:
        raise fail((*path, "quantity"), f"{what} drop: quantity must be a whole number from 1 to 100000")
    at = raw.get("at", "start")
    if at not in ("start", "ending"):
        raise fail((*path, "at"), f"{what} drop: at must be \"start\" or \"ending\" (the slot's last minute)")
    minutes = raw.get("minutes", slot_minutes if at == "start" else 1)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes) or not 0 < minutes <= 1440:
        raise fail((*path, "minutes"), f"{what} drop: minutes must be above 0 and at most 1440")
    out = {"name": name.strip(), "sku": sku.strip(), "price_cents": int(cents), "quantity": quantity,
           "minutes": float(minutes), "at": at}
    if "members_minutes" in raw or "member_types" in raw:
        members, types = raw.get("members_minutes"), raw.get("member_types")
        if isinstance(members, bool) or not isinstance(members, int | float) or not 0 < members < minutes:
            raise fail((*path, "members_minutes"), f"{what} drop: members_minutes must be above 0 and shorter than the drop")
        if not isinstance(types, list) or not types or not all(isinstance(t, str) and 0 < len(t.strip()) <= 80 for t in types):
            raise fail((*path, "member_types"), f"{what} drop: member_types must list ticket types, like [\"Member\"]")
        out.update(members_minutes=float(members), member_types=[t.strip() for t in types][:20])
    return out


def _text(table: dict, key: str, path: Path, what: str, fail, required: bool = False) -> str:
    value = table.get(key)
    if value is None:
        if required:
            raise fail(path, f"{what}: {key} is missing")
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise fail((*path, key), f"{what}: {key} must be text")
    value = value.strip()
    if len(value) > TEXT_LIMITS[key]:
        raise fail((*path, key), f"{what}: {key} is longer than {TEXT_LIMITS[key]} characters")
    if any(ord(ch) < 32 for ch in value):
        raise fail((*path, key), f"{what}: {key} holds control characters")
    return value


def _start(value: object, day: datetime, tz: ZoneInfo, previous: float | None) -> float | None:
    if isinstance(value, datetime):  # a TOML local date-time (no offset): kit.timezone
        return (value if value.tzinfo else value.replace(tzinfo=tz)).timestamp()
    if not isinstance(value, str):
        return None
    clock = _CLOCK.match(value.strip())
    if clock:
        moment = day.replace(hour=int(clock.group(1)), minute=int(clock.group(2)))
        if previous is not None and moment.timestamp() < previous:
            moment = (day + timedelta(days=1)).replace(hour=moment.hour, minute=moment.minute)  # after midnight
        return moment.timestamp()
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).timestamp()


def _clock(at: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, tz).strftime("%H:%M")
