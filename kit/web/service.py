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


def server_options(config) -> dict:
    """waitress's options for the kit's server (the tests build their servers from these too)."""
    return {"threads": config["web.threads"], "channel_timeout": 3600, "ident": "fieldkit",
            "outbuf_high_watermark": OUTBUF_HIGH_WATERMARK}


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
    ctx.bus.hub.closed.set()
    server.close()
