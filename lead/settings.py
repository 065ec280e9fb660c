"""Settings of the lead feature (see kit/settings.py for the declaration rules)."""

from kit.settings import Setting

SETTINGS: list[Setting] = [
    Setting("lead.ending_seconds", 60,
            "Seconds before a slot's end when it is announced as ending (cue trigger slot/ending, amber countdown)."),
    Setting("lead.late_minutes", 5, "Minutes the Running late button adds to the running slot (and every later one)."),
]
