"""Settings of the checkin feature (see kit/settings.py for the declaration rules)."""

from drivers.scan_settings import SETTINGS as SCAN_SETTINGS
from kit.settings import Setting

SETTINGS: list[Setting] = [] + SCAN_SETTINGS
