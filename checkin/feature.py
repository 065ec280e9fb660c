"""How the core finds the checkin feature's parts (see kit/features.py)."""

from checkin.documents import DOCUMENTS
from checkin.migrations import MIGRATIONS, PROJECTION_TABLES
from checkin.scans import apply_event
from kit.features import Feature

FEATURE = Feature(
    name="checkin",
    title="Door check-in",
    migrations=MIGRATIONS,
    projection_tables=PROJECTION_TABLES,
    apply_event=apply_event,
    documents=DOCUMENTS,
)
