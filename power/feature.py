"""How the core finds the power feature's parts (see kit/features.py)."""

from kit.features import Feature

FEATURE = Feature(name="power", title="Power")
