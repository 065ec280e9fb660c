"""``fieldkit init``: state dir, per-kit settings, database, secrets. Safe to run again."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from kit.config import ConfigError, load_config, update_toml_file
from kit.db import DatabaseLock, apply_migrations
from kit.features import all_migration_sets
from kit.secrets import Secrets


def init_kit(
    kit_id: str | None = None,
    site: str | None = None,
    demo: bool = False,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, str] | None:
    """Returns the new PINs in clear (once), or None when existing secrets were kept."""
    config = load_config()
    updates = {k: v for k, v in (("kit.id", kit_id), ("kit.site", site)) if v}
    if updates:
        update_toml_file(config.paths.boot_toml, updates)
        config = load_config()  # validates the new values
    data = config.data_dir
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except PermissionError:
        raise ConfigError(f"{data}: the data dir is not writable; fix its owner (chown fieldkit) or set FIELDKIT_HOME") from None
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{data}: the data dir is a file, not a directory; move it away or set FIELDKIT_DATA_DIR") from None
    secure_data_dir(data)
    lock = DatabaseLock(config.db_path)
    lock.exclusive()
    try:
        from kit.service import open_database

        db = open_database(config)
        applied = apply_migrations(db, all_migration_sets())
        if applied:
            echo(f"database {config.db_path}: {len(applied)} migration(s) applied")
        if demo:
            from kit.features import load_features

            for feature in load_features():
                if feature.demo_setup:
                    feature.demo_setup(config, db)
                    echo(f"demo data loaded for {feature.name}")
        db.close()
    finally:
        lock.release()
    secrets = Secrets(config.secrets_dir)
    try:
        if secrets.exists() and not force:
            return None
        return secrets.create(force=force)
    finally:
        secure_data_dir(data)


DATA_DIR_MODE = 0o751  # others may only pass through: Mosquitto (its own user) keeps persistence in <data>/mosquitto
DATABASE_NAMES = ("kit.db", "kit.db-wal", "kit.db-shm", "kit.db.lock", "hq.db", "hq.db-wal", "hq.db-shm")


def secure_data_dir(data: Path) -> None:
    """Modes a local user cannot read through: data dir 0751, secrets 0700 (files 0600), databases 0640.

    The units run with UMask=0027 and the CLI sets the same umask, so new files are 0640 anyway; this
    also repairs a data dir made by an older version (0644 databases, a 0755 secrets folder).
    """
    if not data.is_dir():
        return
    os.chmod(data, DATA_DIR_MODE)
    secrets_dir = data / "secrets"
    if secrets_dir.is_dir():
        os.chmod(secrets_dir, 0o700)
        for f in secrets_dir.iterdir():
            if f.is_file() and not f.is_symlink():
                os.chmod(f, 0o600)
    for name in DATABASE_NAMES:
        f = data / name
        if f.is_file() and not f.is_symlink():
            os.chmod(f, 0o640)
