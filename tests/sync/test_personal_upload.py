"""Personal records (a signup's e-mail) go to HQ through their own endpoint, once each, never in the ledger."""

from __future__ import annotations

import json

import sqlalchemy as sa

from kit import personal
from sync.hq import schema, store
from tests.lead.test_signups import sign_up


def test_the_sync_agent_uploads_signups_to_hq_once(ctx, joined, hq):
    from sync.agent import SyncAgent

    sign_up(ctx)
    sign_up(ctx, email="sam@example.org", receipt="kit1-7")
    agent = SyncAgent(joined, ctx.db)
    result = agent.run_session()
    assert result.personal == 2 and personal.counts(ctx.db) == {"total": 2, "waiting": 0}
    with hq.engine.connect() as conn:
        rows = conn.execute(sa.select(schema.personal_records.c.kind, schema.personal_records.c.body)).all()
    assert sorted(json.loads(r.body)["email"] for r in rows) == ["ana@example.org", "sam@example.org"]
    assert agent.run_session().personal == 0  # nothing left to send; HQ holds each once
    with hq.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.personal_records)).scalar() == 2


def test_hq_refuses_hostile_records_one_by_one(hq):
    from sync.hq.personal import store_personal

    store.add_kit(hq.engine, "door9", "market")
    good = {"id": "a" * 36, "kind": "lead.signup", "body": {"email": "x@example.org"}}
    answers = store_personal(hq.engine, "door9", [good, {"id": "b" * 36, "kind": "x", "body": {}},
                                                   {"id": "c" * 36, "kind": "lead.signup", "body": {"e": "\x00"}},
                                                   "not a record", good])
    assert [a["status"] for a in answers] == ["stored", "refused", "refused", "refused", "stored"]
    assert store_personal(hq.engine, "other", [good])[0] == {"id": "a" * 36, "status": "refused",
                                                             "error": "another kit sent a record with this id"}
