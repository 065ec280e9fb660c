"""Settings of the checkin feature (see kit/settings.py for the declaration rules)."""

from drivers.scan_settings import SETTINGS as SCAN_SETTINGS
from kit.settings import Setting

SETTINGS: list[Setting] = [
    Setting("checkin.door_name", "", "Name of this door as staff say it ('Door 2'); the kit id when empty."),
    Setting("checkin.allowed_types", [], "Ticket types admitted at this door (empty: every type).", type="list"),
    Setting("checkin.entry_windows", [], "Times this door admits, as 'HH:MM-HH:MM' in kit.timezone (empty: always).",
            type="list"),
    Setting("checkin.reentry", True, "Admit a ticket again after an exit scan."),
    Setting("checkin.exit_scans", True, "Staff may switch this door to scanning exits."),
    Setting("checkin.share", True, "Share check-ins with the other kits of the site (kit.site) over MQTT."),
    Setting("checkin.catchup_seconds", 15, "How often to ask the other doors for check-ins this kit missed."),
    Setting("checkin.consent_columns", ["consent", "opt-in", "opt in", "marketing"],
            "Opt-in columns of an attendee import, kept and shown on the attendee: a header containing any of "
            "these words (case and punctuation ignored).", type="list"),
    Setting("checkin.preview", True, "Send small camera preview frames to the door page."),
] + SCAN_SETTINGS
