"""Close the night on site: the site's reconciliation on the hub, from its mirror, with no internet.

It is HQ's own report (sync/hq/reconcile.py) over the hub's HQ-shaped mirror store, so sales, cash per
shift, stock and double admissions across kits are counted exactly as HQ will count them. The engine
is opened per request and disposed after, so the web process holds no pool between reports.
"""

from __future__ import annotations

from sync.hq import store
from sync.hq.reconcile import build_report
from sync.hq.sections import Report
from sync.mirror_hub import mirror_url
from sync.mirror_proto import is_mirror


def site_report(config) -> Report | None:
    """The site's report from this kit's mirror, or None when this kit keeps no mirror."""
    if not is_mirror(config):
        return None
    engine = store.make_engine(mirror_url(config))
    try:
        store.create_schema(engine)
        return build_report(engine, site=config.site, tz=config["kit.timezone"] or "UTC",
                            card_match_minutes=int(config["hq.card_match_minutes"]))
    finally:
        engine.dispose()
