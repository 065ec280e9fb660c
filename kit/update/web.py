"""The lead's update page: upload a bundle, see what the kit found (USB, HQ), "Update to X now / tonight after close".

The web process never applies an update itself (it is one of the services an update restarts, and on the
appliance it may not touch the units): it stores the upload in ``updates/uploads/`` and the lead's choice
in ``updates/pending.json``; `fieldkit update pickup` (started by `fieldkit up`, or by
fieldkit-update.path on the appliance) applies it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from flask import Blueprint, jsonify, render_template, request

from kit.files import safe_filename
from kit.update.bundle import BundleError
from kit.web.auth import require_role
from kit.web.context import json_object, kit
from kit.web.openapi import api_doc

log = logging.getLogger("fieldkit.update")
bp = Blueprint("update", __name__, template_folder="templates")


def _status() -> dict:
    from kit.update.status import update_status

    return update_status(kit().config)


@bp.route("/update")
@require_role("lead")
def update_page():
    return render_template("kit/update.html", status=_status())


@bp.route("/api/v1/update", methods=["GET"])
@require_role("lead")
@api_doc("The running release, bundles found (USB, uploads, HQ), an update in progress, the last outcome")
def update_status_api():
    return jsonify(_status())


@bp.route("/api/v1/update/upload", methods=["POST"])
@require_role("lead")
@api_doc(
    "Upload a release bundle (.fkb); it is verified and offered, not applied",
    responses={200: "what the kit found in it", 400: "no file, or the kit refuses it"},
)
def update_upload():
    from kit.update.status import assess

    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return jsonify(error="choose a release bundle (.fkb) to upload"), 400
    name = safe_filename(upload.filename, default="bundle.fkb")
    if not name.endswith(".fkb"):
        return jsonify(error="a release bundle is a .fkb file"), 400
    folder = kit().config.data_dir / "updates" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    tmp = folder / f".{name}.part"
    try:
        upload.save(tmp)  # streamed from werkzeug's spooled file, never held whole in memory
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        return jsonify(error=f"could not store the upload ({e.strerror}); is the data partition full?"), 400
    result = assess(kit().config, target)
    if result["refused"]:
        target.unlink(missing_ok=True)
        log.warning("event=update_upload_refused name=%s reason=%r", name, result["refused"])
        return jsonify(error=f"{name} was refused: {result['refused']}"), 400
    log.info("event=update_uploaded name=%s version=%s", name, result["version"])
    return jsonify(result)


@bp.route("/api/v1/update/choose", methods=["POST"])
@require_role("lead")
@api_doc(
    "Apply a found bundle now, or tonight once the doors are shut and the merch table has stopped",
    request={
        "type": "object",
        "required": ["path", "when"],
        "properties": {"path": {"type": "string"}, "when": {"enum": ["now", "after_close"]}},
    },
    responses={200: "the choice is recorded", 400: "not a bundle the kit found, or refused"},
)
def update_choose():
    from kit.update.status import choose

    body = json_object()
    if (
        body is None
        or not isinstance(body.get("path"), str)
        or body.get("when") not in ("now", "after_close")
    ):
        return jsonify(
            error='send {"path": "<a bundle from the list>", "when": "now" | "after_close"}', code="bad_body"
        ), 400
    try:
        pending = choose(kit().config, body["path"], body["when"], by="lead")
    except BundleError as e:
        return jsonify(error=str(e)), 400
    start_pickup(kit().config)
    return jsonify(pending)


def start_pickup(config) -> None:
    """Under `fieldkit up`, start the pickup now (detached: it outlives this process's restart)."""
    from kit.update.trial import supervisor_pid

    if supervisor_pid(config) is None:
        return  # the appliance: fieldkit-update.path starts it as root
    subprocess.Popen(
        [sys.executable, "-m", "kit", "update", "pickup"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=str(Path(config.data_dir)),
    )
