"""The dashboard's network page: hotspot and uplink status, and "Go online" for a sync.

Registered by the web app (kit/web/app.py). The switch runs in a background thread of the web
process; its progress is retained on ``fieldkit/<kit>/appliance/state`` so every open page follows it,
even a phone that rejoins the hotspot after the switch.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from kit.appliance.network import NetworkError, Nmcli, network_status
from kit.appliance.online import OnlineSwitch
from kit.web.auth import require_role
from kit.web.context import kit
from kit.web.openapi import api_doc

STATUS_SCHEMA = {"type": "object", "properties": {
    "hotspot_active": {"type": "boolean"}, "uplinks": {"type": "array"}, "devices": {"type": "array"},
    "uplink_ssid": {"type": "string"}, "online": {"type": "object"}, "error": {"type": "string"}}}


def _switch() -> OnlineSwitch:
    """One switch per web process (a second tap while one runs is refused, not queued)."""
    switch = current_app.extensions.get("fieldkit-online")
    if switch is None:
        ctx = kit()
        dry_run = ctx.config.simulate and not ctx.config["kit.simulate_host_actions"]  # a demo laptop's Wi-Fi
        nm = current_app.extensions.get("fieldkit-nmcli") or Nmcli(timeout=20, dry_run=dry_run)
        switch = OnlineSwitch(ctx.config, ctx.bus, nm)
        current_app.extensions["fieldkit-online"] = switch
    return switch


def _status() -> tuple[dict, int]:
    config = kit().config
    switch = _switch()
    body: dict = {"uplink_ssid": config["network.uplink_ssid"], "online": switch.state}
    if switch.busy:  # nmcli answers slowly while the radio switches; the switch's own state says enough
        return body | {"hotspot_active": False, "uplinks": [], "devices": []}, 200
    try:
        body |= network_status(switch.nm, config["network.hotspot_interface"]).as_dict()
    except NetworkError as e:
        return body | {"hotspot_active": False, "uplinks": [], "devices": [], "error": str(e)}, 503
    return body, 200


bp = Blueprint("appliance", __name__, template_folder="templates")


@bp.get("/network")
@require_role("lead")
def network_page():
    body, _ = _status()
    return render_template("appliance/network.html", status=body,
                           online_minutes=kit().config["network.online_minutes"])


@bp.get("/api/v1/network")
@require_role("lead")
@api_doc("The kit's network: hotspot, connected uplinks, and the state of \"Go online\"",
         responses={200: STATUS_SCHEMA, 503: STATUS_SCHEMA})
def network_api():
    body, code = _status()
    return jsonify(body), code


@bp.post("/api/v1/network/online")
@require_role("lead")
@api_doc("Go online: sync through any uplink, or move the onboard Wi-Fi to the uplink network and back",
         responses={202: {"type": "object"}, 409: {"type": "object"}})
def go_online_api():
    switch = _switch()
    if not switch.start():
        return jsonify(error="the kit is already going online", online=switch.state), 409
    return jsonify(started=True, online=switch.state), 202


def blueprint() -> Blueprint:
    """The feature contract (kit/features.py): routes are module-level, registered once per app."""
    return bp
