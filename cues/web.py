"""The cue screen (role lead): the cue list, GO, a huge STOP ALL, live outputs; and its JSON API.

The web process owns no lights: every button becomes a ``cues/cmd/*`` message to the cues service,
which answers with the request's id. The screen follows ``cues/state`` over the event stream.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, jsonify, render_template, request

from kit.web.auth import require_role
from kit.web.context import kit
from kit.web.openapi import api_doc

HERE = Path(__file__).parent
ANSWER_SECONDS = 4.0
CUE_BODY = {"type": "object", "properties": {"cue": {"type": "string", "maxLength": 40}}, "required": ["cue"]}
SIMPLE = {  # route name -> (bus command, what the route does)
    "go": ("go", "GO: fire the cue standing by and move to the next one"),
    "stop-all": ("stop_all", "STOP ALL: stop every running cue and all sound"),
    "next": ("next", "Move the playhead to the next cue without firing"),
    "back": ("back", "Move the playhead back one cue without firing"),
}


def current_state() -> dict | None:
    return kit().bus.hub.latest().get("cues/state")


def ask_service(command: str, payload: dict):
    answer = kit().bus.request("cues", command, {**payload, "by": "screen"}, timeout=ANSWER_SECONDS)
    if answer is None:
        return jsonify(error="the cues service does not answer: check it on the dashboard", code="cues_offline"), 503
    if not answer.get("ok"):
        return jsonify(error=answer.get("error", "refused"), code="refused"), 400
    return jsonify(ok=True, message=answer.get("message", ""))


bp = Blueprint("cues", __name__, template_folder=str(HERE / "templates"))


@bp.get("/cues")
@require_role("lead")
def screen():
    return render_template("cues/screen.html", state=current_state())


@bp.get("/api/v1/cues/state")
@require_role("lead")
@api_doc("The cue list, what is running and every output's level, as the cues service last reported",
         responses={200: "the state", 503: "the cues service has not reported yet"})
def state():
    current = current_state()
    if current is None:
        return jsonify(error="the cues service has not reported yet", code="cues_offline"), 503
    return jsonify(current)


@bp.post("/api/v1/cues/fire")
@require_role("lead")
@api_doc("Fire one cue by name now (cooldowns and conditions do not apply to a lead)", request=CUE_BODY,
         responses={200: "fired", 400: "no such cue or a bad body", 503: "the cues service does not answer"})
def fire():
    body = request.get_json(silent=True)
    cue = body.get("cue") if isinstance(body, dict) else None
    if not isinstance(cue, str) or not 0 < len(cue) <= 40:
        return jsonify(error="send {\"cue\": \"<name>\"}", code="bad_body"), 400
    return ask_service("fire", {"cue": cue})


@bp.post("/api/v1/cues/simulate")
@require_role("lead")
@api_doc("Act out a sensor (demo, rehearsal): only while the kit's GPIO is simulated",
         request={"type": "object", "properties": {"sensor": {"type": "string", "maxLength": 40},
                                                    "active": {"type": "boolean"}}, "required": ["sensor"]},
         responses={200: "done", 400: "no such sensor, or GPIO is not simulated",
                    503: "the cues service does not answer"})
def simulate():
    body = request.get_json(silent=True)
    sensor = body.get("sensor") if isinstance(body, dict) else None
    active = body.get("active", True) if isinstance(body, dict) else None
    if not isinstance(sensor, str) or not 0 < len(sensor) <= 40 or not isinstance(active, bool):
        return jsonify(error="send {\"sensor\": \"<name>\", \"active\": true|false}", code="bad_body"), 400
    return ask_service("simulate", {"sensor": sensor, "active": active})


def simple_route(route: str, command: str, summary: str) -> None:
    def view():
        return ask_service(command, {})

    view.__name__ = f"cues_{command}"
    bp.add_url_rule(f"/api/v1/cues/{route}", view.__name__,
                    require_role("lead")(api_doc(summary, responses={
                        200: "done", 503: "the cues service does not answer"})(view)), methods=["POST"])


for route, (command, summary) in SIMPLE.items():
    simple_route(route, command, summary)


def blueprint() -> Blueprint:
    """The feature contract (kit/features.py): routes are module-level, registered once per app."""
    return bp
