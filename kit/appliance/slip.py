"""The setup slip: how to join the kit, printed through the POS print queue, shown on the console and
on the kiosk screen (a page served to loopback only, kit/web/kiosk.py).

It carries the hotspot name and password, the kit's address (also as a QR code), and the lead's
first PIN until the lead has set a PIN of their own.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import segno

from kit import topics
from kit.config import Config
from kit.secrets import Secrets

log = logging.getLogger("fieldkit.appliance.slip")


@dataclass(frozen=True)
class SetupInfo:
    kit_id: str
    site: str
    event: str
    ssid: str
    password: str
    url: str
    lead_pin: str | None


def kit_url(config: Config) -> str:
    """The address staff open: ``web.public_url`` when set, else the kit on its own hotspot."""
    if config["web.public_url"]:
        return config["web.public_url"]
    port = config["web.port"]
    host = config["network.hotspot_address"]
    return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"


def setup_info(config: Config, ssid: str, password: str) -> SetupInfo:
    return SetupInfo(
        kit_id=config.kit_id,
        site=config.site,
        event=config["kit.event"],
        ssid=ssid,
        password=password,
        url=kit_url(config),
        lead_pin=Secrets(config.secrets_dir).initial_lead_pin(),
    )


def slip_payload(info: SetupInfo, request_id: str | None = None) -> dict:
    """The ``pos/cmd/print`` payload (kit/topics.py): lines of text, a QR code, a cut."""
    lines: list[dict] = [
        {"text": "FIELD KIT SETUP", "align": "center", "bold": True, "size": "double"},
        {"text": f"Kit {info.kit_id} - site {info.site}", "align": "center"},
    ]
    if info.event:
        lines.append({"text": info.event, "align": "center"})
    lines += [
        {"text": ""},
        {"text": "1. Join this Wi-Fi:", "bold": True},
        {"text": f"Name:     {info.ssid}"},
        {"text": f"Password: {info.password}"},
        {"text": ""},
        {"text": "2. Open this address (scan):", "bold": True},
        {"qr": info.url},
        {"text": info.url, "align": "center"},
        {"text": ""},
    ]
    if info.lead_pin:
        lines += [
            {"text": "3. Sign in as lead with PIN:", "bold": True},
            {"text": info.lead_pin, "align": "center", "bold": True, "size": "double"},
            {"text": "Set your own lead PIN, then this slip stops showing it."},
        ]
    else:
        lines.append({"text": "3. Sign in with your lead PIN.", "bold": True})
    lines.append({"cut": True})
    return {"id": request_id or uuid.uuid4().hex, "source": "appliance.setup_slip", "lines": lines}


def console_text(info: SetupInfo) -> str:
    """The same slip for the HDMI console (agetty's issue file): text plus a QR code in block characters."""
    qr = io.StringIO()
    segno.make(info.url, error="m").terminal(out=qr, compact=True, border=2)
    pin = f"Lead PIN:  {info.lead_pin}  (until the lead sets their own)\n" if info.lead_pin else ""
    event = f" - {info.event}" if info.event else ""
    # agetty expands backslash escapes in issue files: double every backslash the text might carry.
    body = (
        f"\nField Kit {info.kit_id} (site {info.site}{event})\n\n"
        f"Wi-Fi:     {info.ssid}\n"
        f"Password:  {info.password}\n"
        f"Address:   {info.url}\n"
        f"{pin}\n{qr.getvalue()}\n"
    )
    return body.replace("\\", "\\\\")


def write_console(info: SetupInfo, issue_path: Path | None, tty: Path | None) -> list[str]:
    """Write the slip where the HDMI console shows it; returns where it went (missing targets are skipped)."""
    text = console_text(info)
    written = []
    if issue_path is not None:
        try:
            issue_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = issue_path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if info.lead_pin else 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, issue_path)
            written.append(str(issue_path))
            # Running gettys re-read their issue files and redraw the login prompt.
            subprocess.run(["agetty", "--reload"], capture_output=True, timeout=5, check=False)
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("event=issue_write_failed path=%s error=%s", issue_path, e)
    if tty is not None and tty.exists():
        try:
            with open(tty, "w") as f:
                f.write(text.replace("\\\\", "\\"))
            written.append(str(tty))
        except OSError as e:
            log.warning("event=tty_write_failed path=%s error=%s", tty, e)
    return written


def wait_for_pos(bus, kit_id: str, timeout: float) -> bool:
    """Wait until the pos service says it is up (any state but offline): then it hears print commands."""
    seen = threading.Event()

    def on_health(_topic: str, payload: dict) -> None:
        if payload.get("state") not in (None, "offline"):
            seen.set()

    bus.subscribe(topics.health(kit_id, "pos"), on_health)
    return seen.wait(timeout)


def publish_slip(bus, kit_id: str, payload: dict, pos_timeout: float = 120.0, answer_timeout: float = 15.0) -> str:
    """Queue the slip with the POS service (QoS 1). Returns its answer: "queued", "rejected: <why>",
    or "no answer" when the POS service did not confirm (it may not be running)."""
    answers: dict[str, dict] = {}
    answered = threading.Event()

    def on_answer(_topic: str, message: dict) -> None:
        if message.get("id") == payload["id"]:
            answers["answer"] = message
            answered.set()

    bus.subscribe(topics.event(kit_id, "pos", "print"), on_answer, qos=1)
    if not wait_for_pos(bus, kit_id, pos_timeout):
        log.warning("event=pos_not_up seconds=%.0f action=publishing_anyway", pos_timeout)
    info = bus.client.publish(topics.cmd(kit_id, *topics.POS_PRINT), json.dumps(payload), qos=1)
    try:
        info.wait_for_publish(timeout=10)  # the broker has it before this process exits
    except (RuntimeError, ValueError) as e:
        log.warning("event=slip_publish_unconfirmed error=%s", e)
    if not answered.wait(answer_timeout):
        log.warning("event=setup_slip_unanswered id=%s", payload["id"])
        return "no answer"
    answer = answers["answer"]
    status = str(answer.get("status"))
    log.info("event=setup_slip_sent id=%s status=%s", payload["id"], status)
    return f"rejected: {answer.get('error')}" if status == "rejected" else status


def page_parts(info: SetupInfo) -> dict:
    """What the kiosk's slip page (kit/web/kiosk.py, loopback only) shows besides ``info``: the QR as SVG."""
    from markupsafe import Markup

    svg = segno.make(info.url, error="m").svg_inline(scale=6, border=2, dark="#000", light="#fff")
    return {"qr_svg": Markup(svg)}
