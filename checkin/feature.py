"""How the core finds the checkin feature's parts (see kit/features.py)."""

from kit.features import Feature

FEATURE = Feature(name="checkin", title="Checkin")
