"""How the core finds the sync feature's parts (see kit/features.py)."""

from kit.features import Feature

FEATURE = Feature(name="sync", title="Sync")
