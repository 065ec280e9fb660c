"""Who may read which bus topic on the live stream (``/events``): the REST API's rule, applied to the bus.

Each rule names a topic pattern (relative to ``fieldkit/<kit>/``) and the API route that shows the same
information; the rule's role *is* that route's ``require_role``, read from the running app, so the stream
and the API cannot drift apart. A topic no rule matches is relayed to nobody (denied by default), and so
is a rule whose route the app does not have. Health and status also have a summary view (the state words
only, as the unauthenticated ``/api/v1/health`` shows them) for the roles below the full view.

Every screen's header shows a role-safe kit status (kit/web/static/kit/kit.js): the kit's state word from
``status`` and, for the screen that depends on a device, that device's state with its reason: the door
page's scanner and camera (``checkin/health``, readable in full by whoever may open ``/door``) and the
merch page's printer (``pos/state``, already the merch screen's). ``device_summary`` is that middle view.

A new topic needs a rule here; ``tests/kit/test_stream_roles.py`` fails for a published topic without one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from kit.bus import topic_matches

log = logging.getLogger("fieldkit.web.stream")

ANY_SIGNED_IN = "any"  # a route without require_role, or require_role(SIGNED_IN): every signed-in role
NOBODY = None


@dataclass(frozen=True)
class StreamRule:
    pattern: str  # MQTT pattern relative to fieldkit/<kit>/ (or to fieldkit/ for the site tree)
    route: str  # "METHOD /path" of the API route (or page) that shows the same data; its role applies
    # "" when no route shows it; then this explicit role applies (only ever "lead": no screen needs it)
    summary_route: str = ""  # route whose role may read the summary view (the payload's summary_fields)
    summary_fields: tuple[str, ...] = ()
    why: str = ""
    role: str | None = None
    # (route, fields): whoever may open that page also reads these fields (the state and its reason of the
    # device that page depends on), between the summary and the full view
    device_summary: tuple[str, tuple[str, ...]] | None = None


# First match wins: specific rules before broad ones.
KIT_RULES: tuple[StreamRule, ...] = (
    StreamRule("status", "GET /api/v1/status", "GET /api/v1/health", ("state", "services"),
               why="the kit's verdict: everyone sees online/degraded/offline, only the dashboard the detail"),
    StreamRule("checkin/health", "GET /api/v1/status", "GET /api/v1/health", ("state",),
               device_summary=("GET /door", ("state", "reason")),
               why="the door screen's header says what is wrong with its scanner or camera"),
    StreamRule("pos/health", "GET /api/v1/status", "GET /api/v1/health", ("state",),
               device_summary=("GET /merch", ("state", "reason")),
               why="the merch screen's header says what is wrong with its printer"),
    StreamRule("+/health", "GET /api/v1/status", "GET /api/v1/health", ("state",),
               why="a service's health: the state word is public (/api/v1/health), its detail is the lead's"),
    StreamRule("+/cmd/#", "", role="lead",
               why="commands between services (print jobs, cue fires): no screen reads them; leads only"),
    StreamRule("checkin/preview", "GET /door", why="the door camera's frames, for the door page"),
    StreamRule("checkin/#", "GET /api/v1/checkin/stats", why="admissions, as the door page's stats show"),
    StreamRule("pos/state", "GET /api/v1/pos/printer", why="the printer state the merch screen shows"),
    StreamRule("pos/#", "GET /api/v1/pos/sales", why="sales and print results, as the merch screen lists them"),
    StreamRule("power/#", "GET /api/v1/power/state"),
    StreamRule("cues/#", "GET /api/v1/cues/state"),
    StreamRule("lead/#", "GET /api/v1/lead/now", why="the run-sheet's current slot and its moments: every screen shows the slot"),
    StreamRule("sync/#", "GET /api/v1/sync/state"),
    StreamRule("appliance/#", "GET /api/v1/network"),
    StreamRule("kit/#", "GET /documents", why="a reference document was imported"),
)

# The site tree (fieldkit/site/<site>/...; patterns relative to fieldkit/). The hub does not relay it
# today; these rules say who may once it does (peer admissions, catch-up requests between kits).
SITE_RULES: tuple[StreamRule, ...] = (
    StreamRule("site/+/catchup/#", "", role="lead", why="kit-to-kit catch-up requests: leads only"),
    StreamRule("site/+/checkin/#", "GET /api/v1/checkin/stats", why="peer doors' admissions"),
    StreamRule("site/#", "", role="lead", why="other site-wide feeds: leads only until they get a rule"),
)


def route_roles(app) -> dict[str, str | None]:
    """Every route of the app as ``"METHOD /path"`` -> its required role (ANY_SIGNED_IN if none)."""
    out: dict[str, str | None] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            out[f"{method} {rule.rule}"] = getattr(view, "required_role", ANY_SIGNED_IN)
    return out


def _allows(role: str, needed: str | None) -> bool:
    if needed is NOBODY:
        return False
    return needed == ANY_SIGNED_IN or role == needed or role == "lead"


class StreamRoles:
    """The rules resolved against one app: ``view(role, topic, payload)`` is what that role may see."""

    def __init__(self, roles_by_route: dict[str, str | None], rules: tuple[StreamRule, ...] = KIT_RULES):
        self.rules = rules
        self.resolved: list[tuple[StreamRule, str | None, str | None]] = []
        for r in rules:
            full = roles_by_route.get(r.route, NOBODY) if r.route else r.role
            summary = roles_by_route.get(r.summary_route, NOBODY) if r.summary_route else NOBODY
            if r.route and r.route not in roles_by_route:
                log.info("event=stream_rule_unresolved topic=%s reason=no route %r on this kit: relayed to nobody",
                         r.pattern, r.route)
            self.resolved.append((r, full, summary))
        # the device views, by rule pattern: (role of the page, fields)
        self.device: dict[str, tuple[str | None, tuple[str, ...]]] = {
            r.pattern: (roles_by_route.get(r.device_summary[0], NOBODY), r.device_summary[1])
            for r in rules if r.device_summary}
        self._unlisted_logged: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def for_app(cls, app) -> StreamRoles:
        return cls(route_roles(app))

    def rule_for(self, topic: str) -> tuple[StreamRule, str | None, str | None] | None:
        for entry in self.resolved:
            if topic_matches(entry[0].pattern, topic):
                return entry
        return None

    def view(self, role: str, topic: str, payload: dict) -> dict | None:
        """The payload as ``role`` may see it, or None when the role may not read this topic at all."""
        entry = self.rule_for(topic)
        if entry is None:
            kind = topic.split("/", 1)[0]
            with self._lock:
                first = kind not in self._unlisted_logged and len(self._unlisted_logged) < 64
                self._unlisted_logged.add(kind)
            if first:
                log.warning("event=stream_topic_denied topic=%s reason=no stream rule: relayed to nobody", topic)
            return None
        rule, full, summary = entry
        if _allows(role, full):
            return payload
        device = self.device.get(rule.pattern)
        if device and _allows(role, device[0]) and isinstance(payload, dict):
            return {k: payload[k] for k in device[1] if k in payload}
        if rule.summary_fields and _allows(role, summary) and isinstance(payload, dict):
            return {k: payload[k] for k in rule.summary_fields if k in payload}
        return None
