"""Where bundles come from (USB folder, dashboard uploads, HQ downloads), what the kit would do with them,
and `fieldkit update pickup`: apply the newest acceptable one when the kit is idle or a lead said "now"."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from kit.files import write_durably
from kit.update import hold, slots
from kit.update.apply import check_bundle, installed_version, last_outcome, read_journal, updates_dir
from kit.update.bundle import BundleError, parse_version

log = logging.getLogger("fieldkit.update")
PENDING = "pending.json"  # a lead's choice: {"path", "version", "when": "now"|"after_close", "by", "at"}


def sources(config) -> list[Path]:
    return [Path(config["update.path"]), updates_dir(config) / "incoming", updates_dir(config) / "uploads"]


def found_bundles(config) -> list[Path]:
    out = []
    for folder in sources(config):
        try:
            out += sorted(p for p in folder.glob("*.fkb") if p.is_file())
        except OSError:  # a USB stick pulled mid-listing
            continue
    return out


def _seen_path(config) -> Path:
    return updates_dir(config) / "seen.json"


def assess(config, path: Path) -> dict:
    """{"path", "version", "title", "refused"} for one bundle; cached by size and mtime (hashing is slow)."""
    from kit.update.keys import trusted_keys

    try:
        st = path.stat()
    except OSError as e:
        return {
            "path": str(path),
            "version": None,
            "title": path.name,
            "refused": f"cannot be read ({e.strerror})",
        }
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{installed_version(config)}"
    try:
        seen = json.loads(_seen_path(config).read_text())
    except (OSError, ValueError):
        seen = {}
    if key in seen:
        return seen[key]
    try:
        manifest = check_bundle(config, path, trusted_keys(config))
        result = {"path": str(path), "version": manifest.version, "title": manifest.title, "refused": ""}
    except BundleError as e:
        result = {"path": str(path), "version": None, "title": path.name, "refused": str(e)}
        log.warning("event=update_bundle_refused path=%s reason=%r", path, str(e))
    seen = {k: v for k, v in seen.items() if k.split("|", 1)[0] != str(path)} | {key: result}
    write_durably(_seen_path(config), json.dumps(seen), mode=0o640)
    return result


def read_pending(config) -> dict | None:
    try:
        p = json.loads((updates_dir(config) / PENDING).read_text())
        return p if isinstance(p, dict) else None
    except (OSError, ValueError):
        return None


def choose(config, path: str, when: str, by: str) -> dict:
    """A lead's "Update to X now / tonight after close" for a bundle the kit found."""
    if when not in ("now", "after_close"):
        raise BundleError("choose now or after_close")
    known = {str(p) for p in found_bundles(config)}
    if path not in known:
        raise BundleError("that bundle is no longer there (USB stick removed?)")
    result = assess(config, Path(path))
    if result["refused"]:
        raise BundleError(result["refused"])
    pending = {"path": path, "version": result["version"], "when": when, "by": by, "at": time.time()}
    write_durably(updates_dir(config) / PENDING, json.dumps(pending), mode=0o640)
    log.info("event=update_scheduled version=%s when=%s by=%s", result["version"], when, by)
    return pending


def update_status(config, assess_bundles: bool = True) -> dict:
    j = read_journal(config)
    current = slots.current_slot(config)
    available = [assess(config, p) for p in found_bundles(config)] if assess_bundles else []
    return {
        "version": installed_version(config),
        "current": str(current) if current else None,
        "slots": [v for v, _p in slots.list_slots(config)],
        "in_progress": {k: j.get(k) for k in ("id", "step", "from_version", "to_version", "mode")}
        if j
        else None,
        "hold": hold.read_hold(config.data_dir),
        "last": last_outcome(config),
        "available": available,
        "pending": read_pending(config),
    }


def pickup(config, say=print) -> str:
    """One pass: the newest acceptable bundle is applied when the kit is idle, or now if a lead chose so."""
    from kit.update.keys import trusted_keys
    from kit.update.updater import apply_update, kit_busy

    if read_journal(config) is not None:
        return "an update is in progress"
    good = [b for b in (assess(config, p) for p in found_bundles(config)) if not b["refused"]]
    if not good:
        return "no new release found"
    best = max(good, key=lambda b: parse_version(b["version"]))
    last = last_outcome(config) or {}
    pending = read_pending(config) or {}
    chosen = pending.get("version") == best["version"]
    if (
        last.get("to_version") == best["version"]
        and last.get("outcome") == "rolled_back"
        and not (chosen and pending.get("at", 0) > last.get("at", 0))
    ):
        return f"{best['version']} went back once ({last.get('reason')}); a lead must choose it again"
    now = chosen and pending.get("when") == "now"
    if not now and (why := kit_busy(config)):
        return f"{best['title']} waits: {why}"
    (updates_dir(config) / PENDING).unlink(missing_ok=True)
    result = apply_update(config, Path(best["path"]), trusted_keys(config), even_if_busy=now, say=say)
    return f"{result['outcome']}: {result.get('from_version')} → {result.get('to_version')} {result.get('reason', '')}"
