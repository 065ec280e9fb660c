"""``fieldkit run web``: the kit's only HTTP server (waitress), stopped cleanly with the service."""

from __future__ import annotations

import logging
import threading

from waitress.server import create_server

from kit.service import ServiceContext
from kit.web.app import create_app

log = logging.getLogger("fieldkit.web")

# What waitress may hold for one slow or stalled client before the thread writing to it waits. Its default
# (16 MB, the first 1 MB in memory, the rest in a temporary file) let every frozen tablet's live stream pile up
# buffered events; at 256 KB a stalled stream waits here and its hub queue drops the oldest news instead.
OUTBUF_HIGH_WATERMARK = 256 * 1024
STOP_SECONDS = 5  # how long the requests in flight may take to finish when the service stops


def server_options(config) -> dict:
    """waitress's options for the kit's server (the tests build their servers from these too)."""
    # channel_request_lookahead: waitress keeps reading a connection while its request runs, so it sees a
    # closed tab and a live stream can ask (environ["waitress.client_disconnected"]) and give its thread back
    return {"threads": config["web.threads"], "channel_timeout": 3600, "ident": "fieldkit",
            "outbuf_high_watermark": OUTBUF_HIGH_WATERMARK, "channel_request_lookahead": 1}


def stop_server(server, loop: threading.Thread, hub=None) -> None:
    """End the live streams, let the requests in flight finish, then close every socket in waitress's own loop.

    The order matters: a worker thread that finishes a response wakes the loop through its trigger pipe, so
    closing the server while streams still run made each of them die on EBADF with a traceback (Ctrl-C on
    ``make demo`` printed one per open page). Closing from inside the loop lets the loop end by itself.
    """
    if hub is not None:
        hub.close()

    def in_loop(fn) -> None:
        if not loop.is_alive():
            fn()
            return
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        try:
            server.trigger.pull_trigger(run)
        except OSError:  # the loop is gone already
            fn()
            return
        done.wait(STOP_SECONDS)

    def close_stalled() -> None:
        # A frozen tablet's stream is blocked writing into a full buffer, and would hold its thread (and the
        # stop) for STOP_SECONDS: hang up on it now, which wakes that writer.
        for channel in list(server._map.values()):
            if getattr(channel, "total_outbufs_len", 0) > server.adj.outbuf_high_watermark:
                channel.handle_close()

    def close_all() -> None:
        for channel in list(server._map.values()):  # the listener, every connection, the trigger itself
            channel.close()

    in_loop(close_stalled)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=STOP_SECONDS)
    in_loop(close_all)
    loop.join(STOP_SECONDS)


def run_web(ctx: ServiceContext) -> None:
    app = create_app(ctx)
    host, port = ctx.config["web.host"], ctx.config["web.port"]
    server = create_server(app, host=host, port=port, **server_options(ctx.config))
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    log.info("event=listening url=http://%s:%s/", host, port)
    ctx.health("ok", url=f"http://{host}:{port}/")
    while ctx.sleep(1.0):
        if not thread.is_alive():
            raise RuntimeError("the web server thread stopped")
    stop_server(server, thread, ctx.bus.hub)
