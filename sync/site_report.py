"""Close the night on site: the site's reconciliation on the hub, from its mirror, with no internet.

It is HQ's own report (sync/hq/reconcile.py) over the hub's HQ-shaped mirror store, so sales, cash per
shift, stock and double admissions across kits are counted exactly as HQ will count them.

The web process never builds it itself: SQLAlchemy and a night's events would stay in its memory for
good (bench/site_report.py measured +38 MB PSS after one view of 6,000 events, the whole kit then past
the small Pi's 150 MB). ``site_report_in_child`` runs ``fieldkit mirror report --format json`` as a
child process, one at a time, and reads its answer: the memory is the child's, and it ends with it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading

from sync.hq.sections import Report
from sync.mirror_proto import is_mirror

log = logging.getLogger("fieldkit.sync.site_report")

CHILD_TIMEOUT = 180  # seconds: a Pi 4 builds a night of three busy kits in a few
_one_at_a_time = threading.Lock()  # two leads refreshing at once build it once each, not side by side


class SiteReportError(Exception):
    """The report could not be built; the message says why, for the lead."""


def site_report(config) -> Report | None:
    """The site's report from this kit's mirror, built in this process; None when this kit keeps no mirror."""
    if not is_mirror(config):
        return None
    from sync.hq import store
    from sync.hq.reconcile import build_report
    from sync.mirror_hub import mirror_url

    engine = store.make_engine(mirror_url(config))
    try:
        store.create_schema(engine)
        return build_report(engine, site=config.site, tz=config["kit.timezone"] or "UTC",
                            card_match_minutes=int(config["hq.card_match_minutes"]))
    finally:
        engine.dispose()


def site_report_in_child(config, timeout: float = CHILD_TIMEOUT) -> Report | None:
    """The same report, built by a child process (see the module's note); None when this kit keeps no mirror."""
    if not is_mirror(config):
        return None
    if not _one_at_a_time.acquire(timeout=timeout):
        raise SiteReportError("Another site report is still being built: try again in a minute.")
    try:
        done = subprocess.run([sys.executable, "-m", "kit", "mirror", "report", "--format", "json"],
                              capture_output=True, timeout=timeout, env=os.environ.copy(), check=False)
    except subprocess.TimeoutExpired:
        log.error("event=site_report_failed reason=timeout seconds=%s", timeout)
        raise SiteReportError(f"The site report took longer than {timeout:.0f} s and was stopped.") from None
    finally:
        _one_at_a_time.release()
    if done.returncode != 0:
        why = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:300]
        log.error("event=site_report_failed reason=exit code=%s stderr=%r", done.returncode, why)
        raise SiteReportError(f"The site report could not be built: {why}")
    try:
        return Report.from_dict(json.loads(done.stdout))
    except (ValueError, KeyError, TypeError) as e:
        log.error("event=site_report_failed reason=unreadable error=%r", str(e)[:200])
        raise SiteReportError("The site report came back unreadable; see the web service's log.") from None
