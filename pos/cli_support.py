"""What the ``fieldkit pos`` commands share: the ledger for a command, and domain errors as one line."""

from __future__ import annotations

import functools
import logging
import sys

import click

log = logging.getLogger("fieldkit.pos")


def command_ledger(config):
    """The kit's ledger for one command (its clock as the services see it)."""
    from kit.clock import KitClock
    from kit.ledger import Ledger

    clock = KitClock(config.data_dir, config["kit.clock_assume_synced"], config["kit.clock_method"])
    return Ledger(config.kit_id, clock)


def domain_errors(fn):
    """Domain errors become one red line and exit code 1, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from pos.catalogue import CatalogueError
        from pos.pickups import PickupError
        from pos.pricing import CheckoutError
        from pos.shifts import ShiftError

        try:
            return fn(*args, **kwargs)
        except (CheckoutError, ShiftError, PickupError, CatalogueError, LookupError, ValueError) as e:
            log.warning("event=pos_cli_refused command=%s reason=%r", fn.__name__, str(e))
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)
    return wrapper
