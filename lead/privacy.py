"""The lead's personal data, erased after the event (kit/privacy.py calls this through the registration).

Signups (an e-mail given with consent) are kept in the core's personal-records outbox until HQ holds
them: the lead's own kind goes here. Incident notes are free text a person wrote (what happened, how it
was resolved, the site's peers' included): the incident log's own ``erase_notes`` blanks them; the
incidents themselves (category, severity, who did what, when) stay.
"""

from __future__ import annotations

SIGNUP_KIND = "lead.signup"
# The incident log's free-text columns (lead/migrations.py INCIDENTS), counted by `fieldkit privacy status`.
INCIDENT_NOTES = (
    ("incident notes (lead_incidents)", "lead_incidents"),
    ("incident resolution notes (lead_incident_actions)", "lead_incident_actions"),
)


def erase_personal_data(ctx) -> None:
    ctx.delete(
        "signups: e-mails given with consent (kit_personal_outbox)",
        "kit_personal_outbox",
        "kind = ?",
        (SIGNUP_KIND,),
    )
    _erase_incident_notes(ctx)


def _erase_incident_notes(ctx) -> None:
    if ctx.dry_run or not ctx.has_table("lead_incidents"):
        for what, table in INCIDENT_NOTES:  # counting only (or a database from before the incident log)
            ctx.blank(what, table, ("note",))
        return
    from lead.incidents import erase_notes  # the incident log's own rule: one place says what a note is

    counts = {
        what: ctx.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE note != ''").fetchone()[0]
        for what, table in INCIDENT_NOTES
    }
    erase_notes(ctx.conn)
    for what, n in counts.items():
        ctx.record(what, n)
