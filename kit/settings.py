"""Setting declarations. Every setting is declared once, with its default and one line of help.

Features declare theirs in ``<feature>/settings.py`` as a module-level ``SETTINGS`` list; the
config loader collects them all, so an unknown key in any file is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list}


@dataclass(frozen=True)
class Setting:
    key: str  # dotted: "mqtt.port" is [mqtt] port = ... in TOML
    default: Any
    help: str
    type: str = ""  # inferred from the default when empty
    choices: tuple[str, ...] = ()
    secret: bool = False  # shown masked by `config show`

    @property
    def kind(self) -> str:
        if self.type:
            return self.type
        for name, typ in (("bool", bool), ("int", int), ("float", float), ("list", list)):
            if isinstance(self.default, typ):
                return name
        return "str"

    @property
    def env_name(self) -> str:
        return "FIELDKIT_" + self.key.upper().replace(".", "_").replace("-", "_")


# The core's own settings. Feature settings live in their packages.
SETTINGS = [
    Setting("kit.id", "kit1", "This kit's id: letters, digits, '-' and '_' (used in MQTT topics and receipt numbers)."),
    Setting("kit.site", "site1", "The site this kit belongs to; kits of one site share check-ins."),
    Setting("kit.event", "", "Name of the event shown on screens and receipts."),
    Setting("kit.timezone", "UTC", "IANA time zone for what people see and for schedules, e.g. Europe/Berlin."),
    Setting("kit.event_ends", "", "When the event ends, in kit.timezone (e.g. 2026-11-21T23:30); personal data is "
            "erased privacy.erase_after_hours later, once HQ holds everything. Empty: only `fieldkit privacy erase`."),
    Setting("privacy.erase_after_hours", 24.0, "Hours after kit.event_ends when the kit erases attendees' personal "
            "data by itself (only once HQ has acknowledged every event and personal record)."),
    Setting("ledger.keep_days", 30.0, "Ledger events older than this many days that HQ holds are deleted from the kit "
            "(a checkpoint keeps the chain verifiable); 0: keep every event."),
    Setting("kit.currency", "EUR", "ISO 4217 currency code for prices and money."),
    Setting("kit.simulate", False, "Use the simulated backend of every device (demo, rehearsal, tests)."),
    Setting("kit.simulate_host_actions", False, "When simulating, still run what changes the host (power off, "
            "timedatectl, nmcli); only for tests and rehearsals with stand-ins. Otherwise logged as 'would run'."),
    Setting("kit.clock_assume_synced", False, "Trust the wall clock even when the kernel says it is not synchronised."),
    Setting("kit.clock_method", "auto", "How a lead's clock correction is applied: timedated, offset or auto.",
            choices=("auto", "timedated", "offset")),
    Setting("mqtt.host", "127.0.0.1", "Address of the kit's own MQTT broker."),
    Setting("mqtt.port", 1883, "Port of the kit's own MQTT broker."),
    Setting("mqtt.username", "", "MQTT user name, when the broker asks for one."),
    Setting("mqtt.password", "", "MQTT password, when the broker asks for one.", secret=True),
    Setting("web.host", "0.0.0.0", "Address the web server listens on."),
    Setting("web.port", 8080, "Port the web server listens on."),
    Setting("web.threads", 32, "Waitress worker threads (each open live-update stream holds one)."),
    Setting("web.session_minutes", 720, "Minutes a staff sign-in lasts without activity."),
    Setting("web.login_max_wait_seconds", 30, "Longest wait one address is made to sit out after its last wrong PIN."),
    Setting("web.login_failures_per_minute", 20, "Wrong PINs the whole kit accepts per minute, from all addresses together."),
    Setting("web.public_url", "", "URL staff use to reach the kit (printed and shown as a QR); guessed when empty."),
    Setting("db.busy_timeout_ms", 5000, "How long a writer waits for another writer before giving up."),
    Setting("service.watchdog_seconds", 30, "Watchdog interval when not given by systemd (WATCHDOG_USEC)."),
    Setting("service.groups", [["status", "power", "cues", "sync", "lead"]],
            "Services that share one process (a service group: their loops as supervised threads), to save memory; "
            "each group is a list of services, every other service runs alone. "
            "Environment form: groups joined by '+', separated by ',' (status+power+cues+sync+lead).", type="list"),
    Setting("service.log_level", "INFO", "Log level for services: DEBUG, INFO, WARNING or ERROR.",
            choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Setting("doctor.min_free_mb", 200, "Free disk below this many MB on the data partition is a failure."),
    Setting("status_led.backend", "auto", "Status LED backend: gpio, sim, none or auto (sim when simulating).",
            choices=("auto", "gpio", "sim", "none")),
    Setting("status_led.pin", "GPIO17", "GPIO pin of the kit's status LED."),
    Setting("site.max_clock_ahead_seconds", 300,
            "A peer kit's event whose clock is further ahead of this kit's than this is refused (HLC bound)."),
    Setting("supervisor.start_broker", True, "`fieldkit up` starts a private Mosquitto when none answers."),
]
