"""``fieldkit checkin reissue|revoke|lift`` and the second check of ``fieldkit checkin admit --check``.

The command line is a lead's tool on the kit itself: what it does is recorded as the lead's.
"""

from __future__ import annotations

import sys
import uuid

import click

REFUSED_EXIT = 2


def parse_checks(checks: tuple[str, ...]) -> dict | None:
    """``--check email=a@b.org --check postcode=AB1`` → {"email": ..., "postcode": ...}; None when none given."""
    from checkin.identity import FIELDS

    if not checks:
        return None
    out = {}
    for item in checks:
        field, sep, value = item.partition("=")
        if not sep or field.strip() not in FIELDS:
            raise click.UsageError(f"--check {item!r}: give FIELD=VALUE, FIELD one of {', '.join(FIELDS)}")
        out[field.strip()] = value
    return out


def _refused(message: str) -> None:
    click.secho(f"refused: {message}", fg="red", err=True)
    sys.exit(REFUSED_EXIT)


def register(group: click.Group) -> None:
    from checkin.cli import _publish, _rules, cli_context

    @group.command("reissue")
    @click.argument("ticket")
    @click.option("--reason", required=True, help="Why, e.g. 'code shared online'.")
    @click.option(
        "--check",
        "checks",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Identifiers the guest gave (order_code, email, phone_last4, postcode, birth_date); "
        "when given, two must match the list.",
    )
    @click.option("--no-print", is_flag=True, help="Do not send the new code to the receipt printer.")
    def reissue_cmd(ticket: str, reason: str, checks: tuple[str, ...], no_print: bool) -> None:
        """Revoke TICKET (its code, order code or attendee id) and print a new code for the same guest.

        Every door of the site refuses the old code within a second ("revoked — reissued at 20:14 at
        Door 1 (reason)"); the new one admits once. Exit 2 when refused.

        \b
        Example:
          fieldkit checkin reissue ABC12 --reason "screenshot shared" --check email=anna@example.org --check postcode=N1
        """
        from checkin.identity import confirm
        from checkin.reissue import print_job, reissue, resolve
        from checkin.scans import CheckinError
        from checkin.validate import KeyRing
        from kit import topics

        ctx = cli_context()
        rules, keyring = _rules(), KeyRing()
        given = parse_checks(checks)
        try:
            if given is not None:
                ticket_key = resolve(ctx.db.conn, ticket, keyring).key
                row = ctx.db.conn.execute(
                    "SELECT * FROM checkin_tickets WHERE ticket_key = ?", (ticket_key,)
                ).fetchone()
                if row is None:
                    raise CheckinError(
                        "this code is not on the guest list: nothing to check the identifiers against"
                    )
                confirm(row, given)
            result = reissue(
                ctx.db,
                ctx.ledger,
                rules,
                keyring,
                ticket,
                reason,
                by="cli",
                identity="second_check" if given is not None else "cli",
            )
        except CheckinError as e:
            _refused(str(e))
            return
        click.echo(f"reissued: {result['old_ticket_key'][:40]} is revoked at every door")
        click.secho(f"new code: {result['ticket_key']}", bold=True)
        click.echo(
            f"{result['ticket_type'] or 'Ticket'} · order {result['order_code'] or '-'} · "
            f"{result['time']} at {result['door']}"
        )
        if not no_print:
            job = print_job(result, ctx.config["kit.event"] or "", uuid.uuid4().hex)
            if _publish(ctx.config, topics.cmd(ctx.config.kit_id, *topics.POS_PRINT), job):
                click.echo("sent to the receipt printer")
            else:
                click.echo("no MQTT broker answers: not printed — read the new code above to the guest")

    @group.command("revoke")
    @click.argument("ticket")
    @click.option("--reason", required=True, help="Why the code must no longer admit.")
    @click.option("--blocked", is_flag=True, help="Block instead (amber: call a lead).")
    def revoke_cmd(ticket: str, reason: str, blocked: bool) -> None:
        """Revoke TICKET at every door of the site (a ledger event). Exit 2 when refused.

        \b
        Example:
          fieldkit checkin revoke ABC12 --reason "chargeback"
        """
        from checkin.reissue import revoke
        from checkin.scans import CheckinError
        from checkin.validate import KeyRing

        ctx = cli_context()
        try:
            done = revoke(ctx.db, ctx.ledger, _rules(), KeyRing(), ticket, reason, by="cli", blocked=blocked)
        except CheckinError as e:
            _refused(str(e))
            return
        click.echo(f"{done['status']}: {done['ticket_key'][:40]} (event {done['seq']})")

    @group.command("lift")
    @click.argument("ticket")
    @click.option("--reason", required=True, help="Why the code admits again.")
    def lift_cmd(ticket: str, reason: str) -> None:
        """Lift a revocation of TICKET (a file's, this door's or another door's), shared with the site.

        \b
        Example:
          fieldkit checkin lift ABC12 --reason "refund cancelled"
        """
        from checkin.reissue import lift
        from checkin.scans import CheckinError
        from checkin.validate import KeyRing

        ctx = cli_context()
        try:
            done = lift(ctx.db, ctx.ledger, _rules(), KeyRing(), ticket, reason, by="cli")
        except CheckinError as e:
            _refused(str(e))
            return
        click.echo(f"lifted: {done['ticket_key'][:40]} admits again (event {done['seq']})")
