"""Deciding a verdict: signature, revocations, validity window, door rules, who is inside.

Order (as pretix's offline check): signature → revoked → blocked → validity window (entries only) →
ticket type allowed at this door → entry window → presence (already in, re-entry, exit).
Nothing here writes; ``checkin.scans`` records the verdict in the ledger.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from checkin import keys as keymod
from checkin import signed

GREEN = ("admit", "admit_reentry", "exit")
VERDICTS = ("admit", "admit_reentry", "exit", "already_in", "unknown", "invalid_signature", "revoked", "blocked",
            "not_yet_valid", "expired", "not_valid_at_this_door")
MAX_PAYLOAD = 4096
PRESENCE_VERDICTS = ("admit", "admit_reentry", "exit")
WINDOW_RE = re.compile(r"^\s*([01]?\d|2[0-3]):[0-5]\d\s*-\s*([01]?\d|2[0-3]):[0-5]\d\s*$")


def colour(verdict: str, attention: bool) -> str:
    if verdict in GREEN:
        return "amber" if attention else "green"
    return "amber" if verdict == "blocked" else "red"


@dataclass(frozen=True)
class DoorRules:
    kit: str
    door: str
    tz: ZoneInfo
    allowed_types: tuple[str, ...] = ()
    entry_windows: tuple[str, ...] = ()  # "HH:MM-HH:MM" in the kit's time zone; may pass midnight
    reentry: bool = True
    exits: bool = True

    @classmethod
    def from_config(cls, config) -> DoorRules:
        for window in config["checkin.entry_windows"]:
            if not WINDOW_RE.match(str(window)):
                from kit.config import ConfigError

                raise ConfigError(f"checkin.entry_windows: {window!r} is not a time window like '18:00-23:30'")
        return cls(
            kit=config.kit_id,
            door=config["checkin.door_name"] or config.kit_id,
            tz=config.tz,
            allowed_types=tuple(t.strip().lower() for t in config["checkin.allowed_types"] if t.strip()),
            entry_windows=tuple(config["checkin.entry_windows"]),
            reentry=config["checkin.reentry"],
            exits=config["checkin.exit_scans"],
        )

    def clock_text(self, at: float) -> str:
        return _clock_minute(self.tz, int(at // 60))

    def day_text(self, at: float) -> str:
        return datetime.fromtimestamp(at, self.tz).strftime("%a %d %b %H:%M")

    def in_entry_window(self, now: float) -> bool:
        if not self.entry_windows:
            return True
        local = datetime.fromtimestamp(now, self.tz)
        minute = local.hour * 60 + local.minute
        for window in self.entry_windows:
            start, end = (_minutes(p) for p in window.split("-", 1))
            if (start <= minute < end) if start <= end else (minute >= start or minute < end):
                return True
        return False


@functools.lru_cache(maxsize=4096)  # the door's last scans and every verdict share a few minutes
def _clock_minute(tz: ZoneInfo, minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, tz).strftime("%H:%M")


def _minutes(hhmm: str) -> int:
    h, m = hhmm.strip().split(":")
    return int(h) * 60 + int(m)


@dataclass
class Ticket:
    key: str
    name: str = ""
    order_code: str = ""
    email: str = ""
    ticket_type: str = ""
    status: str = "valid"
    attention: bool = False
    valid_from: float | None = None
    valid_until: float | None = None
    comment: str = ""
    practice: bool = False


@dataclass
class Decision:
    verdict: str
    reason: str
    ticket: Ticket | None = None
    attention: bool = False
    attention_reason: str = ""
    code_excerpt: str = ""

    @property
    def admitted(self) -> bool:
        return self.verdict in ("admit", "admit_reentry")


@dataclass
class Presence:
    inside: bool = False
    ever_in: bool = False
    last_in: dict | None = None  # {"at", "door", "kit"}
    last_out: dict | None = None
    doubles: list[dict] = field(default_factory=list)


KEY_STAMP_SQL = "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM checkin_keys"


class KeyRing:
    """Public keys loaded once and reloaded when the table changes (cheap check per scan)."""

    def __init__(self):
        self._stamp: tuple | None = None
        self._keys: list = []
        self._lock = threading.Lock()

    def keys(self, conn: sqlite3.Connection, rehearsal: bool, stamp: tuple | None = None) -> list[tuple[str, object]]:
        """The keys to try; ``stamp`` is (count, max id) of checkin_keys when the caller read it already."""
        if stamp is None:
            stamp = tuple(conn.execute(KEY_STAMP_SQL).fetchone())
        with self._lock:
            if stamp != self._stamp:
                self._keys, self._stamp = keymod.load_keys(conn, include_rehearsal=True), stamp
            return [(fp, k) for fp, k, kind in self._keys if rehearsal or kind != "rehearsal"]

    def used(self, fingerprint: str) -> None:
        """Try the key that verified last first next time: most tickets of a night share one key."""
        with self._lock:
            for i, entry in enumerate(self._keys):
                if entry[0] == fingerprint and i:
                    self._keys.insert(0, self._keys.pop(i))
                    break

    def kind(self, fingerprint: str) -> str:
        return next((kind for fp, _k, kind in self._keys if fp == fingerprint), "")


def clean_payload(payload: str | bytes) -> str:
    """Text a scanner may send: bytes decoded leniently, line endings and control characters dropped."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    if not isinstance(payload, str):
        payload = str(payload)
    if payload.isprintable():  # what a scanner sends, mostly: no character to drop
        return payload[:MAX_PAYLOAD + 1].strip()
    return "".join(ch for ch in payload[:MAX_PAYLOAD + 1] if ch.isprintable()).strip()


def excerpt(text: str) -> str:
    return text[:40] + ("…" if len(text) > 40 else "")


def _row_ticket(row: sqlite3.Row) -> Ticket:
    return Ticket(row["ticket_key"], row["name"], row["order_code"], row["email"], row["ticket_type"], row["status"],
                  bool(row["attention"]), row["valid_from"], row["valid_until"], row["comment"])


def find_ticket(conn: sqlite3.Connection, text: str, keyring: KeyRing, rehearsal: bool,
                key_stamp: tuple | None = None) -> Ticket | Decision:
    """The ticket a code stands for, or a refusing Decision (unknown / invalid_signature)."""
    if not text:
        return Decision("unknown", "Unreadable code — scan again or search by name")
    if len(text) > MAX_PAYLOAD:
        return Decision("unknown", "Not a ticket: the code is far too long", code_excerpt=excerpt(text))
    try:
        verified = signed.verify(text, keyring.keys(conn, rehearsal, key_stamp))
    except signed.NotSignedTicket:
        row = conn.execute("SELECT * FROM checkin_tickets WHERE ticket_key = ?", (text,)).fetchone()
        if row is None:
            return Decision("unknown", "Not on the guest list for this event", code_excerpt=excerpt(text))
        return _row_ticket(row)
    except signed.MalformedTicket:
        return Decision("unknown", "Signed code with an unreadable ticket inside", code_excerpt=excerpt(text))
    if verified is None:
        known_practice = not rehearsal and signed.verify(text, keyring.keys(conn, True)) is not None
        if known_practice:
            return Decision("unknown", "Practice ticket from the rehearsal sheet — not valid for entry",
                            code_excerpt=excerpt(text))
        return Decision("invalid_signature", "Signature does not match this event's keys — forged or another event",
                        code_excerpt=excerpt(text))
    keyring.used(verified.key_fingerprint)
    t = verified.ticket
    row = conn.execute("SELECT * FROM checkin_tickets WHERE ticket_key = ?", (text,)).fetchone()
    ticket = _row_ticket(row) if row else Ticket(text)
    if not ticket.ticket_type:
        type_row = conn.execute("SELECT name FROM checkin_ticket_types WHERE item = ?", (t.item,)).fetchone()
        ticket.ticket_type = type_row[0] if type_row else (f"Product {t.item}" if t.item else "Ticket")
    if not ticket.order_code:
        ticket.order_code = signed.human_code(t.seed)
    ticket.valid_from = t.valid_from or ticket.valid_from
    ticket.valid_until = t.valid_until or ticket.valid_until
    ticket.practice = keyring.kind(verified.key_fingerprint) == "rehearsal"
    return ticket


# status, reason, door, at, whether a door made it (not a file), reissued: one primary-key read per scan
REVOKED_SQL = ("SELECT status, reason, door, at, origin != 'file', reissued FROM checkin_revocations"
               " WHERE secret = ?")
_MARKS = ",".join(f"'{v}'" for v in PRESENCE_VERDICTS)
# This kit's and its peers' admissions and exits of one ticket, in one statement (prepared once per connection).
PRESENCE_SQL = (
    f"SELECT hlc, at, verdict, door, event_id, ? FROM checkin_scans WHERE ticket_key = ? AND rehearsal = ?"
    f" AND undone = 0 AND verdict IN ({_MARKS})"
    f" UNION ALL SELECT hlc, at, verdict, door, event_id, origin_kit FROM checkin_peer_events p WHERE ticket_key = ?"
    f" AND rehearsal = ? AND type = 'checkin.scanned' AND verdict IN ({_MARKS}) AND NOT EXISTS"
    " (SELECT 1 FROM checkin_peer_events u WHERE u.undo_of = p.event_id)")


def presence(conn: sqlite3.Connection, rules: DoorRules, ticket_key: str, rehearsal: bool) -> Presence:
    """Fold this ticket's admissions and exits from this kit and its peers, in HLC order."""
    events = sorted(tuple(r) for r in conn.execute(PRESENCE_SQL, (rules.kit, ticket_key, int(rehearsal), ticket_key,
                                                                 int(rehearsal))))
    state = Presence()
    for _hlc, at, verdict, door, event_id, kit in events:
        info = {"at": at, "door": door, "kit": kit, "event_id": event_id}
        if verdict == "exit":
            state.inside, state.last_out = False, info
            continue
        if state.inside and verdict == "admit" and state.last_in:
            state.doubles.append({"first": state.last_in, "second": info})
        state.inside, state.ever_in, state.last_in = True, True, info
    return state


def decide(conn: sqlite3.Connection, rules: DoorRules, found: Ticket | Decision, *, now: float, direction: str,
           rehearsal: bool) -> Decision:
    if isinstance(found, Decision):
        return found
    t = found
    if t.practice and not rehearsal:
        return Decision("unknown", "Practice ticket from the rehearsal sheet — not valid for entry", t)
    revoked = conn.execute(REVOKED_SQL, (t.key,)).fetchone()
    status = revoked[0] if revoked else t.status
    # A door's revocation says where and why; a file's (or the list's own status) says refunded or cancelled.
    where = f" at {rules.clock_text(revoked[3])} at {revoked[2]} ({revoked[1]})" if revoked and revoked[4] else ""
    if status == "revoked" and revoked and revoked[5]:
        return Decision("revoked", f"Revoked — reissued{where}: only the new code admits", t)
    if status in ("revoked", "reissued"):
        if where:
            return Decision("revoked", f"Revoked{where} — do not admit", t)
        if status == "reissued":
            return Decision("revoked", "Revoked — this code was reissued: only the new code admits", t)
        why = t.comment if t.comment.startswith("not paid") else "refunded or cancelled"
        return Decision("revoked", f"Ticket {why} — do not admit", t)
    if status == "blocked":
        return Decision("blocked", f"Ticket blocked{where} — call a lead", t, attention=True,
                        attention_reason="blocked ticket")
    state = presence(conn, rules, t.key, rehearsal)
    if direction == "exit" and not rules.exits:
        return Decision("not_valid_at_this_door", f"{rules.door} does not record exits", t)
    if direction == "exit":
        reason = "Exit recorded" if state.inside else "Exit recorded (was not checked in)"
        return Decision("exit", reason, t)
    if t.valid_from and now < t.valid_from:
        return Decision("not_yet_valid", f"Not valid yet — valid from {rules.day_text(t.valid_from)}", t)
    if t.valid_until and now > t.valid_until:
        return Decision("expired", f"Expired — was valid until {rules.day_text(t.valid_until)}", t)
    if rules.allowed_types and t.ticket_type.strip().lower() not in rules.allowed_types:
        return Decision("not_valid_at_this_door", f"{t.ticket_type or 'This ticket'} is not admitted at {rules.door}", t)
    if not rules.in_entry_window(now):
        return Decision("not_valid_at_this_door", f"{rules.door} admits only {', '.join(rules.entry_windows)}", t)
    if state.inside and state.last_in:
        last = state.last_in
        flagged = " — flagged for special attention: call a lead" if t.attention else ""
        return Decision("already_in", f"Already checked in at {last['door']}, {rules.clock_text(last['at'])}{flagged}", t)
    attention = t.attention
    why = "requires special attention" if t.attention else ""
    if state.ever_in:
        if not rules.reentry:
            out = state.last_out or state.last_in or {"at": now, "door": rules.door}
            return Decision("already_in", f"Already used (left {out['door']} {rules.clock_text(out['at'])}) — "
                                          "no re-entry", t)
        return Decision("admit_reentry", "Re-entry — welcome back", t, attention, why)
    # One message: a flagged guest is admitted (counted in) and a lead must see them; no "Welcome" beside it.
    return Decision("admit", "Admitted — requires special attention: call a lead" if attention else "Welcome", t,
                    attention, why)
