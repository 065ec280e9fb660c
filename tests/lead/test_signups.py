"""Signups: the e-mail never enters the ledger, it reaches HQ once through its own endpoint, with the consent."""

from __future__ import annotations

import json

import pytest

from kit import personal
from kit.event_codec import unpack
from lead.evening import LeadError
from lead.signups import add_signup


def sign_up(ctx, **kw):
    with ctx.db.transaction() as conn:
        return add_signup(conn, ctx.ledger, ctx.config, **({"email": "ana@example.org", "consent": True} | kw))


def test_no_consent_or_no_address_is_refused_and_nothing_is_kept(ctx):
    with pytest.raises(LeadError, match="the guest must agree to"):
        sign_up(ctx, consent=False)
    with pytest.raises(LeadError, match="not an e-mail address"):
        sign_up(ctx, email="ana at example")
    assert personal.counts(ctx.db) == {"total": 0, "waiting": 0}
    assert ctx.db.scalar("SELECT COUNT(*) FROM events WHERE type = 'lead.signup'") == 0


def test_the_ledger_says_a_signup_happened_but_never_holds_the_address(ctx):
    made = sign_up(ctx, ticket="T-42")
    payloads = [unpack(r[0]) for r in ctx.db.query("SELECT payload FROM events")]
    assert not any("ana@example.org" in p for p in payloads)
    event = json.loads(payloads[-1])
    assert event == {"id": made["id"], "consent_version": "1", "linked": "ticket", "by": "door"}
    waiting = personal.pending(ctx.db)
    assert [(w["kind"], w["body"]["email"], w["body"]["ticket"]) for w in waiting] == [("lead.signup", "ana@example.org", "T-42")]
    assert waiting[0]["body"]["consent_text"] == ctx.config["lead.signup_consent"]
