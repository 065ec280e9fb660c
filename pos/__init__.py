"""pos feature."""
