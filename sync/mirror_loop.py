"""The mirror's own thread in the sync service: this kit's sender, and the hub's store when it is a mirror.

It runs beside the HQ session loop, never inside it: a session waiting on a slow uplink must not
hold back the site mirror, whose target is every event on the hub within 2 s.
"""

from __future__ import annotations

import logging
import sqlite3

from kit.threads import start_vital
from sync.mirror import MirrorSender
from sync.mirror_proto import is_mirror
from sync.relay_docs import DocumentReceiver
from sync.replica import ReplicaWriter

log = logging.getLogger("fieldkit.sync.mirror_loop")
TICK_SECONDS = 0.1  # new ledger events are looked for this often (one MAX(seq) query)
RELAY_TICK_SECONDS = 2.0
REPLICA_TICK_SECONDS = 0.5  # every event on the stick within 2 s, with room for a slow fsync


def start_mirror(ctx):
    """Start the mirror thread of a sync service; returns (sender, hub or None)."""
    sender = MirrorSender(ctx.config, ctx.db, ctx.bus)
    hub = None
    if is_mirror(ctx.config):  # the hub's store is SQLAlchemy's (~15 MB): a kit that only sends never loads it
        from sync.mirror_hub import MirrorHub

        hub = MirrorHub(ctx.config, ctx.bus, db=ctx.db)
        hub.start()
        log.info("event=mirror_started kit=%s role=mirror", ctx.config.kit_id)
    sender.start()
    documents = DocumentReceiver(ctx.config, ctx.db, ctx.bus)  # HQ's documents, passed on by the hub
    documents.wake = sender.wake
    documents.start()

    def loop() -> None:
        while not ctx.stopping.is_set():
            try:
                if hub:
                    hub.pump()
                sender.pump()
                documents.pump()
            except sqlite3.Error as e:  # a busy database: the next turn tries again, nothing is lost
                log.warning("event=mirror_deferred error=%r", str(e))
            sender.wait(TICK_SECONDS)

    if hub:  # the hub's queue wakes the same loop
        hub.wake = sender.wake
    start_vital("sync-mirror", loop, ctx.stopping)
    start_vital("sync-replica", lambda: _replica_loop(ctx), ctx.stopping)
    if hub:
        from sync.relay import Relay
        from sync.relay_docs import DocumentRelay

        relay = Relay(ctx.config, hub)
        hub.hq_upto_of = relay.hq_upto
        docs = DocumentRelay(ctx.config, hub, ctx.bus, ctx.config.data_dir / "sync" / "relay_documents")
        docs.start()
        start_vital("sync-relay", lambda: _relay_loop(ctx, relay, docs), ctx.stopping)
    return sender, hub


def _relay_loop(ctx, relay, docs) -> None:
    """The hub's uplink for the site's kits; HQ being out of reach is normal and only means later."""
    from kit.config import ConfigError, load_config
    from sync.credentials import NotJoined, hq_credentials

    while not ctx.stopping.wait(RELAY_TICK_SECONDS):
        try:
            hq_credentials(relay.config)
        except NotJoined:
            try:  # `fieldkit sync join` may have run since the service started
                relay.config = load_config()
            except ConfigError:
                pass
            continue
        while relay.step() and not ctx.stopping.is_set():
            pass
        _pass_documents(relay, docs)


def _pass_documents(relay, docs) -> None:
    """HQ's documents for the site's kits, to them over the site link; HQ out of reach only means later."""
    from sync.client import SyncError
    from sync.credentials import NotJoined

    try:
        docs.pass_on(relay.hq_client())
    except NotJoined:
        return
    except SyncError as e:  # unreachable, or an HQ that does not relay documents (yet): the next pass asks again
        log.info("event=relay_docs_later reason=%r", str(e)[:200])


def _replica_loop(ctx) -> None:
    """The USB replica on a thread of its own: a stick that hangs on a write holds back only this."""
    writer = ReplicaWriter(ctx.config, ctx.db)
    ctx.replica = writer
    while not ctx.stopping.wait(REPLICA_TICK_SECONDS):
        writer.pump()
