"""How the core finds the pos feature's parts (see kit/features.py)."""

from kit.features import Feature

FEATURE = Feature(name="pos", title="Pos")
