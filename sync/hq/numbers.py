"""The evening's numbers at HQ, across kits: the same pure functions the kits use (kit/metrics.py)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from kit.metrics import MetricEvent, event_time, numbers_from

FIGURE_COLUMNS = ["figure", "value", "what it counts"]
SLOT_COLUMNS = ["slot", "stage", "start", "end", "people_in", "sales", "per_100", "drop_sell_through",
                "drop_minutes_to_sell_out"]
DROP_COLUMNS = ["drop", "sku", "start", "quantity", "sold", "sell_through", "minutes_to_sell_out", "status"]


def numbers_tables(series, events, tickets_sold: int | None, zone: ZoneInfo,
                   rsvp_count: int | None = None) -> tuple[list[list], list[list], list[list], dict]:
    """The figures (each with what it counts), the per-slot and per-drop rows, and the numbers themselves.

    ``series``: admissions, exits and sale times from the facts tables (report_facts.metric_series);
    ``events``: the report's other events (run-sheet, drops, pickups, sign-ups)."""
    others = sorted((MetricEvent(ev.kit, ev.type, ev.p, event_time(ev.p, ev.at), ev.id) for ev in events),
                    key=lambda e: e.at)
    n = numbers_from(*series, others, zone, tickets_sold, rsvp_count)
    a, g, c, help_ = n["attendance"], n["go_live"], n["conversion"], n["help"]
    show = lambda v: "" if v is None else v  # noqa: E731
    rows = [
        ["admitted", a["admitted"], help_["admitted"]],
        ["tickets_sold", show(a["tickets_sold"]), help_["tickets_sold"]],
        ["attendance_percent", show(a["attendance_percent"]), help_["attendance_percent"]],
        ["rsvps", show(a["rsvps"]), help_["rsvps"]],
        ["attendance_of_rsvps_percent", show(a["attendance_of_rsvps_percent"]), help_["attendance_of_rsvps_percent"]],
        ["exits", a["exits"], help_["exits"]],
        ["doors_open_at", show(g["doors_open_at"]), help_["doors_open_at"]],
        ["first_sale_at", show(g["first_sale_at"]), help_["first_sale_at"]],
        ["minutes_to_first_sale", show(g["minutes_to_first_sale"]), help_["minutes_to_first_sale"]],
        ["sales", c["sales"], help_["sales"]],
        ["sales_per_100", show(c["sales_per_100"]), help_["sales_per_100"]],
        ["pickups_collected_per_100", show(c["pickups_collected_per_100"]), help_["pickups_collected_per_100"]],
        ["stall_conversion", show(n["stall"]["stall_conversion"]), help_["stall_conversion"]],
        ["drop_sales_per_100", show(c["drop_sales_per_100"]), help_["drop_sales_per_100"]],
        ["signups_per_100", show(c["signups_per_100"]), help_["signups_per_100"]],
    ]
    slots = [[s["name"], s["stage"], s["start"], show(s["end"]), s["people_in"], s["buyers"], show(s["conversion_per_100"]),
              show(s["drop_sell_through_percent"]), show(s["drop_minutes_to_sell_out"])] for s in n["slots"]]
    drops = [[d["name"], d["sku"], d["start"], d["quantity"], d["sold"], show(d["sell_through_percent"]),
              show(d["minutes_to_sell_out"]), _drop_status(d)] for d in n["drops"]]
    return rows, slots, drops, n


def _drop_status(d: dict) -> str:
    """What the lead must look at: units sold past the quantity, member tickets that unlocked it twice."""
    flags = [f"OVERSOLD BY {d['oversold']}"] if d["oversold"] else []
    if d.get("member_tickets_reused"):
        flags.append(f"MEMBER TICKET USED TWICE ×{d['member_tickets_reused']}")
    return "; ".join(flags) or "ok"
