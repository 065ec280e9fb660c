"""Files the kit promises to keep: written whole or not at all, and still there after a power cut."""

from __future__ import annotations

import os
import re
from pathlib import Path


def write_durably(path: Path | str, data: bytes | str, mode: int = 0o640) -> Path:
    """Write ``data`` to ``path`` atomically and durably.

    A temp file is written and fsynced, renamed over ``path``, and the directory is fsynced too:
    without that last step a power cut can lose the rename, and with it the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data.encode() if isinstance(data, str) else data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # O_CREAT's mode is masked by the umask; secrets must be exactly this
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def safe_filename(name: str, limit: int = 80, default: str = "document") -> str:
    """A file name from outside (an upload, HQ) made safe to store: no directories, no odd characters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)[:limit] or default
