"""power feature."""
