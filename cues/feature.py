"""How the core finds the cues feature's parts (see kit/features.py)."""

from kit.features import Feature

FEATURE = Feature(name="cues", title="Cues")
