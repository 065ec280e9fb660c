"""The power feature's tables: battery and solar history at two resolutions."""

from kit.db import Migration, MigrationSet

_COLUMNS = """
    t REAL PRIMARY KEY,          -- start of the bucket, unix seconds
    soc REAL,                    -- battery state of charge, %
    battery_v REAL,
    battery_w REAL,              -- positive: charging
    solar_w REAL,
    consumption_w REAL,          -- the kit's own draw
    hours_left REAL
"""

MIGRATIONS = MigrationSet("power", [
    Migration("0001_history", f"""
CREATE TABLE power_history_fine ({_COLUMNS});
CREATE TABLE power_history_coarse ({_COLUMNS});
"""),
])
