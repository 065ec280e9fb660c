"""Settings of the lead feature (see kit/settings.py for the declaration rules)."""

from kit.settings import Setting

SETTINGS: list[Setting] = [
    Setting("lead.ending_seconds", 60,
            "Seconds before a slot's end when it is announced as ending (cue trigger slot/ending, amber countdown)."),
    Setting("lead.late_minutes", 5, "Minutes the Running late button adds to the running slot (and every later one)."),
]
SETTINGS += [
    Setting("lead.signup_consent",
            "I agree that the organisers may e-mail me about their next events. I can unsubscribe at any time.",
            "The sentence a guest agrees to when staff add their e-mail to the organiser's list (stored with each signup)."),
    Setting("lead.signup_consent_version", "1",
            "The version of that sentence: change it whenever the sentence changes (stored with each signup)."),
]
SETTINGS += [
    Setting("lead.device_gone_seconds", 120.0,
            "Seconds a scanner (the door's check-in service) or the receipt printer may be gone before the kit "
            "logs an incident by itself (one per outage)."),
    Setting("lead.catchup_seconds", 30.0,
            "Seconds between two asks of the site's other kits for the run-sheet and incident events this kit missed "
            "(a kit also asks when its own link to the hub comes back)."),
]
