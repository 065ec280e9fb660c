"""cues feature."""
