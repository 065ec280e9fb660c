"""Release slots: ``<data_dir>/releases/<version>/`` each a venv; ``releases/current`` names the running one.

The units (and ``fieldkit up`` started from a slot) run ``releases/current/bin/fieldkit``, so switching
release is one atomic rename of a symlink. On the appliance the image's own install, ``/opt/fieldkit``,
is the first target of ``current`` (image-build/provision.sh), so there is always a release to go back to.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from kit.files import write_durably


def _dies_with_updater() -> None:
    """In the pip / venv child: killed with the updater (PR_SET_PDEATHSIG), so an updater killed mid-install
    never leaves a pip writing into a slot the next start's recovery has already removed."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def stop_processes_in(slot: Path, wait: float = 10.0) -> int:
    """Kill every process still running from ``slot`` (its python as argv[0] or an argument); the count.

    PR_SET_PDEATHSIG reaches only the updater's own children: ``pip --python`` runs the real install as
    a grandchild of the target interpreter, which outlives a killed updater and went on writing into a
    slot recovery had just removed (seen once in CI: a 0.1.3 slot back after the rollback)."""
    prefix = str(slot).rstrip("/") + "/"
    victims: list[Path] = []
    for _ in range(3):  # again, for a child the builder forked while the last pass was reading /proc
        found = _kill_running_from(prefix, skip={v.name for v in victims})
        victims += found
        if not found:
            break
    killed = len(victims)
    deadline = time.monotonic() + wait
    while victims and time.monotonic() < deadline:
        victims = [v for v in victims if v.exists() and "Z" not in _state(v)]
        time.sleep(0.05)
    return killed


def _kill_running_from(prefix: str, skip: set[str]) -> list[Path]:
    victims = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or proc.name in skip or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.decode(errors="replace").startswith(prefix) for a in argv if a):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                victims.append(proc)
            except OSError:
                pass
    return victims


def _state(proc: Path) -> str:
    try:
        return proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


RELEASE_FILE = "fieldkit-release.json"  # inside a slot: its version and where it came from
BASE_PTH = "fieldkit-base.pth"  # a development bundle (no dependency wheels) sees the installing environment


def releases_dir(config) -> Path:
    return config.data_dir / "releases"


def current_link(config) -> Path:
    return releases_dir(config) / "current"


def current_slot(config) -> Path | None:
    link = current_link(config)
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    return target if target.is_absolute() else link.parent / target


def switch_current(config, slot: Path) -> None:
    """Point ``current`` at ``slot`` atomically (a new link renamed over the old) and durably."""
    link = current_link(config)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name("current.new")
    tmp.unlink(missing_ok=True)
    target = slot.name if slot.parent == link.parent else str(slot)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fd = os.open(link.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def running_version() -> str:
    try:
        return metadata.version("fieldkit")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def slot_version(slot: Path | None) -> str | None:
    if slot is None:
        return None
    try:
        return str(json.loads((slot / RELEASE_FILE).read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        python = slot / "bin" / "python"
        if not python.exists():
            return None
        done = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('fieldkit'))"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        return done.stdout.strip() or None


def clean_env(extra: dict | None = None) -> dict:
    """The environment for a slot's python: no PYTHONPATH pointing at some checkout instead of the slot."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, **(extra or {})}


def base_python() -> str:
    """The interpreter a slot venv is made from: the system one (with Debian's numpy, OpenCV, ...)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _site_packages(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        check=True,
    )
    return done.stdout.strip()


def inherited_paths() -> list[str]:
    """Where the installing environment finds the kit's dependencies (for a development bundle)."""
    here = (
        Path(sys.prefix)
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "site-packages"
    )
    base = here / BASE_PTH
    if base.exists():
        return [line for line in base.read_text().splitlines() if line.strip()]
    return [str(here)]


def pip_command() -> list[str]:
    """A pip that can install into another environment (``--python``): ours, or the system's."""
    for python in (sys.executable, base_python(), "/usr/bin/python3"):
        done = subprocess.run(
            [python, "-m", "pip", "--version"], capture_output=True, text=True, env=clean_env()
        )
        if done.returncode == 0:
            return [python, "-m", "pip"]
    raise RuntimeError("no pip found to install the release with (install python3-pip)")


def create_slot(slot: Path, wheels: Path, version: str, inherit: bool, log_to) -> None:
    """A venv with the system's packages, the kit installed from ``wheels`` only (no network).

    A slot is code the service user runs, made by root: readable and searchable by everyone, whatever
    umask the caller has. The CLI's own (0027, for data files) made every slot root-only 0750, and on
    the appliance each unit then failed at exec with "Permission denied" and every update rolled back
    (found by the image test's update step)."""
    old_umask = os.umask(0o022)  # inherited by venv and pip below
    try:
        _create_slot(slot, wheels, version, inherit, log_to)
    finally:
        os.umask(old_umask)


def _create_slot(slot: Path, wheels: Path, version: str, inherit: bool, log_to) -> None:
    if slot.exists():
        shutil.rmtree(slot)
    subprocess.run(
        [base_python(), "-m", "venv", "--system-site-packages", "--without-pip", str(slot)],
        preexec_fn=_dies_with_updater,
        check=True,
        capture_output=True,
        timeout=300,
    )
    python = str(slot / "bin" / "python")
    if inherit:
        Path(_site_packages(python), BASE_PTH).write_text("\n".join(inherited_paths()) + "\n")
    cmd = [
        *pip_command(),
        "--python",
        python,
        "install",
        "--no-index",
        "--find-links",
        str(wheels),
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--no-warn-script-location",
        "-q",
        f"fieldkit=={version}",
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=1800, env=clean_env(), preexec_fn=_dies_with_updater
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install the release: {done.stderr.strip()[-600:]}")
    log_to(f"installed fieldkit {version} into {slot}")
    check = subprocess.run(
        [python, "-m", "kit", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        cwd=str(slot),
    )
    if check.returncode != 0 or version not in check.stdout:
        raise RuntimeError(
            f"the installed release does not run: {(check.stderr or check.stdout).strip()[-400:]}"
        )
    write_durably(slot / RELEASE_FILE, json.dumps({"version": version}), mode=0o644)


def list_slots(config) -> list[tuple[str, Path]]:
    root = releases_dir(config)
    if not root.is_dir():
        return []
    return sorted(
        (v, p)
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and (v := slot_version(p)) is not None
    )
