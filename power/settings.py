"""Settings of the power feature (see kit/settings.py for the declaration rules)."""

from kit.settings import Setting

SETTINGS: list[Setting] = []
