"""`fieldkit release bundle`: the kit's wheel, its dependency wheels for one architecture, units, installer.

Dependency wheels come from PyPI (``pip download --only-binary=:all: --platform ... --python-version``)
for CPython 3.11 (Bookworm) and 3.13 (Trixie). What the kit takes from Debian is left out, as
image-build/provision.sh does (FIELDKIT_DEBIAN_PYTHON): numpy, OpenCV, Picamera2, lgpio, evdev.
``wheels_dir`` / ``no_deps`` build a bundle without the network (tests, a local wheelhouse).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from kit.update.bundle import ARCHES, BundleError, Manifest, key_id, parse_version, write_bundle
from kit.update.keys import load_private, public_raw_of

log = logging.getLogger("fieldkit.update")

# Debian's packages on the kit (image-build/provision.sh's FIELDKIT_DEBIAN_PYTHON), by PyPI name.
FROM_DEBIAN = (
    "numpy",
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "picamera2",
    "lgpio",
    "rpi-lgpio",
    "evdev",
)
PYTHONS = ("3.11", "3.13")
PLATFORMS = {  # pip --platform tags, newest first; Bookworm has glibc 2.36, Trixie 2.41
    "aarch64": [
        "manylinux_2_36_aarch64",
        "manylinux_2_28_aarch64",
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
        "linux_aarch64",
    ],
    "x86_64": [
        "manylinux_2_36_x86_64",
        "manylinux_2_28_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
        "linux_x86_64",
    ],
}
UNIT_SUFFIXES = (".service", ".target", ".path", ".timer", ".rules")
INSTALLER_FILES = ("image-build/provision.sh", "image-build/files/fieldkit-wrapper")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_version(wheel: Path) -> str:
    m = re.match(r"^fieldkit-([^-]+)-", wheel.name)
    if not m:
        raise BundleError(f"{wheel.name} is not a fieldkit wheel")
    parse_version(m.group(1))
    return m.group(1)


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist without extras' requirements."""
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    reqs = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    return [r for r in reqs if "extra ==" not in r]


def build_kit_wheel(source: Path, out: Path) -> Path:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    wheels = sorted(out.glob("fieldkit-*.whl"))
    if done.returncode != 0 or not wheels:
        raise BundleError(f"building the kit's wheel from {source} failed: {done.stderr.strip()[-400:]}")
    return wheels[-1]


def download_dependencies(wheel: Path, arch: str, out: Path) -> list[Path]:
    """Every dependency wheel for ``arch`` and CPython 3.11 and 3.13, except Debian's; needs PyPI."""
    reqs = [
        r
        for r in wheel_requirements(wheel)
        if _norm(re.split(r"[ <>=!~;\[(]", r, maxsplit=1)[0]) not in FROM_DEBIAN
    ]
    for py in PYTHONS:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--only-binary=:all:",
            "--python-version",
            py,
            "--implementation",
            "cp",
            "--abi",
            f"cp{py.replace('.', '')}",
            "--abi",
            "abi3",
            "--abi",
            "none",
            "-d",
            str(out),
            *(a for p in PLATFORMS[arch] for a in ("--platform", p)),
            *reqs,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BundleError(
                f"downloading dependency wheels for {arch} / CPython {py} failed "
                f"(is PyPI reachable?): {done.stderr.strip()[-400:]}"
            )
    kept = []
    for w in sorted(out.glob("*.whl")):
        if _norm(w.name.split("-", 1)[0]) in FROM_DEBIAN:
            w.unlink()  # pulled in by another dependency; the kit uses Debian's
        else:
            kept.append(w)
    return kept


def repo_files(source: Path) -> dict[str, Path]:
    files = {
        f"systemd/{p.name}": p for p in sorted((source / "systemd").glob("*")) if p.suffix in UNIT_SUFFIXES
    }
    files |= {
        f"installer/{Path(rel).name}": source / rel for rel in INSTALLER_FILES if (source / rel).exists()
    }
    return files


def migration_names() -> dict[str, list[str]]:
    from kit.features import all_migration_sets

    return {s.name: [m.name for m in s.migrations] for s in all_migration_sets()}


def build_release_bundle(
    key_path: Path,
    out: Path,
    arch: str,
    *,
    source: Path | None = None,
    wheel: Path | None = None,
    wheels_dir: Path | None = None,
    no_deps: bool = False,
    min_from: str = "0.0.0",
) -> tuple[Path, Manifest]:
    if arch not in ARCHES:
        raise BundleError(f"unknown architecture {arch!r}: use one of {', '.join(ARCHES)}")
    key = load_private(key_path)
    parse_version(min_from)
    source = source or Path.cwd()
    with tempfile.TemporaryDirectory(prefix="fieldkit-bundle-") as tmp:
        tmpdir = Path(tmp)
        if wheel is None:
            if not (source / "pyproject.toml").exists():
                raise BundleError(f"{source} is not a Field Kit source tree (give --source or --wheel)")
            wheel = build_kit_wheel(source, tmpdir / "kit")
        version = wheel_version(wheel)
        files = {f"wheels/{wheel.name}": wheel}
        if wheels_dir is not None:
            files |= {
                f"wheels/{w.name}": w
                for w in sorted(wheels_dir.glob("*.whl"))
                if not w.name.startswith("fieldkit-") and _norm(w.name.split("-", 1)[0]) not in FROM_DEBIAN
            }
        elif not no_deps:
            files |= {f"wheels/{w.name}": w for w in download_dependencies(wheel, arch, tmpdir / "deps")}
        if (source / "systemd").is_dir():
            files |= repo_files(source)
        pub = public_raw_of(key)
        manifest = Manifest(
            version=version,
            arch=arch,
            min_from_version=min_from,
            migrations=migration_names(),
            members={},
            dependencies_included=not no_deps,
            python=list(PYTHONS),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            key_id=key_id(pub),
        )
        write_bundle(out, manifest, files, key.sign)
    from kit.update.bundle import read_manifest

    return out, read_manifest(out)
