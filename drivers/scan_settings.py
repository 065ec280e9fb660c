"""Settings of the door's scan sources and feedback devices (included by checkin/settings.py)."""

from kit.settings import Setting

SETTINGS: list[Setting] = []
