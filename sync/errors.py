"""One clear line instead of a traceback for the sync and HQ commands."""

from __future__ import annotations

import logging
import sys

import click

log = logging.getLogger("fieldkit.sync.cli")


class FriendlyGroup(click.Group):
    def invoke(self, ctx):
        import sqlalchemy.exc

        from sync.client import SyncError
        from sync.credentials import NotJoined
        from sync.hq.store import HQError

        try:
            return super().invoke(ctx)
        except (HQError, SyncError, NotJoined) as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)
        except sqlalchemy.exc.OperationalError as e:
            click.secho(f"error: the HQ database cannot be reached: {str(e.orig).strip()[:300]}", fg="red", err=True)
            sys.exit(1)
        except ModuleNotFoundError as e:
            if e.name not in ("psycopg", "psycopg2"):
                raise
            click.secho("error: PostgreSQL needs psycopg 3: pip install 'fieldkit[postgres]' "
                        "(or apt-get install python3-psycopg)", fg="red", err=True)
            sys.exit(1)
        except sqlalchemy.exc.ArgumentError as e:
            click.secho(f"error: hq.database_url is not a database URL ({e})", fg="red", err=True)
            sys.exit(1)
