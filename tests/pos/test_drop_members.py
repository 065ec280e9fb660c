"""Members first: a drop's price for holders of named ticket types for its first minutes, one unit per
ticket, once per site; asked of the real check-in service over the real bus (features never import)."""

from __future__ import annotations

import time

import pytest

from kit.bus import Bus
from kit.documents import import_document
from kit.testing import wait_for
from pos.checkout import CheckoutError, make_sale, parse_sale_request
from pos.drop_members import unlock
from pos.drops import DropError, start_drop, status
from tests.checkin.conftest import RunningService

ATTENDEES = (b"CODE,NAME,TYPE\n" b"MEM-0001,Ana Member,Member\n" b"MEM-0002,Bo Member,Member\n"
             b"GEN-0001,Cy General,General\n" b"REV-0001,Di Revoked,Member\n")


@pytest.fixture
def merch(config, db, pos_kit):
    """A merch kit that holds the guest list like a door and runs the real checkin service (its verify)."""
    import_document(config, db, "checkin.attendees", ATTENDEES, "list.csv")
    import_document(config, db, "checkin.revocations", b"REV-0001\n", "revoked.txt")
    service = RunningService(config)
    bus = Bus.from_config(config, "test-merch", will=False)
    assert bus.start(wait=5)
    pos_kit.bus = bus
    yield pos_kit
    bus.stop()
    service.stop()


def ask_checkin(pos_kit, code: str) -> dict | None:
    """What pos's web route does: ask check-in over the bus (never importing it)."""
    return pos_kit.bus.request("checkin", "verify", {"code": code}, timeout=5)


def members_drop(pos_kit, members_seconds: float = 300, started_ago: float = 0, **kw) -> dict:
    args = {"name": "Members poster", "sku": "POSTER", "price_cents": 800, "quantity": 3, "minutes": 15,
            "members_minutes": members_seconds / 60, "member_types": ["Member"],
            "starts_at": time.time() - started_ago if started_ago else None} | kw
    with pos_kit.db.transaction() as conn:
        return start_drop(conn, pos_kit.ledger, **args)


def do_unlock(pos_kit, code: str) -> dict:
    verified = ask_checkin(pos_kit, code)
    with pos_kit.db.transaction() as conn:
        return unlock(conn, pos_kit.ledger, "Members poster", verified, by="merch")


def sell(pos_kit, unlocks=(), qty: int = 1):
    request = parse_sale_request({"items": [{"sku": "POSTER", "qty": qty}], "unlocks": list(unlocks),
                                  "payments": [{"method": "cash", "amount": "50.00"}]})
    return [(ln["qty"], ln["unit_cents"]) for ln in make_sale(pos_kit.db, pos_kit.ledger, pos_kit.config, request).sale["lines"]]


def test_a_member_ticket_unlocks_the_price_once_and_a_non_member_is_refused(merch, config):
    view = members_drop(merch)
    assert view["phase"] == "members" and view["member_types"] == ["Member"]
    assert sell(merch) == [(1, 1250)]  # no member ticket scanned: the normal price in the members' window

    answer = ask_checkin(merch, "GEN-0001")
    assert answer["ok"] and answer["ticket_type"] == "General" and "GEN-0001" not in str(answer)  # a ref, not the code
    with pytest.raises(DropError, match="a General ticket does not unlock Members poster: members first"):
        do_unlock(merch, "GEN-0001")
    with pytest.raises(DropError, match="ticket refused: Not on the guest list"):
        do_unlock(merch, "NOPE-9999")
    with pytest.raises(DropError, match="ticket refused: Ticket revoked"):
        do_unlock(merch, "REV-0001")

    first = do_unlock(merch, "MEM-0001")
    assert first["ticket_type"] == "Member"
    with pytest.raises(DropError, match="this ticket already unlocked Members poster"):
        do_unlock(merch, "MEM-0001")  # once per ticket
    assert sell(merch, [first["unlock_id"]], qty=2) == [(1, 800), (1, 1250)]  # one unit per ticket at the drop price
    assert sell(merch, [first["unlock_id"]]) == [(1, 1250)]  # the unlock was spent by that sale
    second = do_unlock(merch, "MEM-0002")
    assert sell(merch, [second["unlock_id"]]) == [(1, 800)]
    d = status(merch.db.conn, time.time())[0]
    assert (d["sold"], d["left"], d["unlocks"], d["tickets_reused"]) == (2, 1, 2, 0)


def test_after_the_members_window_everyone_buys_at_the_drop_price(merch):
    members_drop(merch, members_seconds=2)
    wait_for(lambda: status(merch.db.conn, time.time())[0]["phase"] == "open", 10, what="the members' window ends")
    with pytest.raises(DropError, match="open to everyone now: no ticket is needed"):
        do_unlock(merch, "MEM-0001")
    assert sell(merch) == [(1, 800)]


def test_a_sale_with_a_malformed_unlock_list_is_refused(merch):
    members_drop(merch)
    with pytest.raises(CheckoutError, match="'unlocks' must list"):
        parse_sale_request({"items": [{"sku": "POSTER"}], "unlocks": "MEM-0001", "payments": []})
    assert sell(merch, ["0123456789abcdef"]) == [(1, 1250)]  # an unlock this kit never made buys nothing


@pytest.mark.parametrize("kw,words", [
    ({"members_minutes": 20}, "shorter than the drop's window"),
    ({"member_types": []}, "names the ticket types"),
])
def test_a_members_phase_that_makes_no_sense_is_refused(pos_kit, kw, words):
    with pytest.raises(DropError, match=words):
        members_drop(pos_kit, **kw)
