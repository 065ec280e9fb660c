"""checkin feature."""
