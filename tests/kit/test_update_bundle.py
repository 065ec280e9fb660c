"""Release keys, bundles and their verification: what a kit accepts and, in words a lead reads, what it refuses.

Bundles here hold a small stand-in wheel (verification never opens a wheel); tests/system/test_update_apply.py
installs real ones.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from kit.update.apply import UpdateRefused, check_bundle, machine_arch
from kit.update.build import build_release_bundle
from kit.update.bundle import BundleError, read_manifest, verify
from kit.update.keys import load_public, new_key_pair

ROOT = Path(__file__).resolve().parents[2]


def stand_in_wheel(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"fieldkit-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            f"fieldkit-{version}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: fieldkit\nVersion: {version}\nRequires-Dist: flask>=2.3\n",
        )
        z.writestr("kit/__init__.py", "# " + "x" * 4000 + "\n")
    return path


@pytest.fixture
def keys(tmp_path):
    key, pub = new_key_pair(tmp_path / "keys")
    return key, pub


def make_bundle(tmp_path: Path, key: Path, version: str = "0.9.0", arch: str | None = None, **kw) -> Path:
    wheel = stand_in_wheel(tmp_path / "w", version)
    out, _ = build_release_bundle(
        key,
        tmp_path / f"fk-{version}.fkb",
        arch or machine_arch(),
        source=ROOT,
        wheel=wheel,
        no_deps=True,
        **kw,
    )
    return out


def flip_byte(path: Path, member: str) -> None:
    """Change one byte inside ``member``'s data in the tar file, leaving the archive structure intact."""
    with tarfile.open(path) as tar:
        info = tar.getmember(member)
        offset = info.offset_data + info.size // 2
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_key_pair_is_made_once_and_the_secret_half_is_private(keys, tmp_path):
    key, pub = keys
    assert key.stat().st_mode & 0o777 == 0o600
    assert pub.read_text().startswith("fieldkit-release-ed25519 ")
    assert len(load_public(pub)) == 32
    with pytest.raises(BundleError, match="already exists"):
        new_key_pair(tmp_path / "keys")


def test_a_bundle_holds_the_wheel_units_installer_and_a_signed_manifest(keys, tmp_path):
    key, pub = keys
    bundle = make_bundle(tmp_path, key, min_from="0.1.0")
    manifest = verify(bundle, [load_public(pub)])
    assert manifest.version == "0.9.0" and manifest.min_from_version == "0.1.0"
    assert manifest.python == ["3.11", "3.13"] and not manifest.dependencies_included
    assert "wheels/fieldkit-0.9.0-py3-none-any.whl" in manifest.members
    assert "systemd/fieldkit-web.service" in manifest.members and "installer/provision.sh" in manifest.members
    assert "pos" in manifest.migrations and manifest.migrations["kit"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", m["sha256"]) for m in manifest.members.values())


def test_dependency_wheels_from_a_folder_leave_out_what_debian_provides(keys, tmp_path):
    key, pub = keys
    deps = tmp_path / "deps"
    for name in (
        "flask-3.0.0-py3-none-any.whl",
        "numpy-1.26.0-cp311-cp311-manylinux_2_17_aarch64.whl",
        "evdev-1.7.0-cp311-cp311-linux_aarch64.whl",
    ):
        stand_in_wheel(deps, "0").rename(deps / name)
    bundle, manifest = build_release_bundle(
        key,
        tmp_path / "b.fkb",
        "aarch64",
        source=ROOT,
        wheel=stand_in_wheel(tmp_path / "w", "0.9.0"),
        wheels_dir=deps,
    )
    assert manifest.wheels() == [
        "wheels/fieldkit-0.9.0-py3-none-any.whl",
        "wheels/flask-3.0.0-py3-none-any.whl",
    ]
    assert manifest.dependencies_included and manifest.arch == "aarch64"


def test_one_byte_changed_in_a_member_is_refused(keys, tmp_path):
    key, pub = keys
    bundle = make_bundle(tmp_path, key)
    flip_byte(bundle, "wheels/fieldkit-0.9.0-py3-none-any.whl")
    with pytest.raises(BundleError, match="fieldkit-0.9.0-py3-none-any.whl inside it was changed or damaged"):
        verify(bundle, [load_public(pub)])


def test_one_byte_changed_in_the_manifest_is_refused(keys, tmp_path):
    key, pub = keys
    bundle = make_bundle(tmp_path, key)
    flip_byte(bundle, "manifest.json")
    with pytest.raises(BundleError, match="does not trust, or its manifest was changed"):
        verify(bundle, [load_public(pub)])


def test_a_truncated_bundle_is_refused(keys, tmp_path):
    key, pub = keys
    bundle = make_bundle(tmp_path, key)
    bundle.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    with pytest.raises(BundleError, match="incomplete|truncated"):
        verify(bundle, [load_public(pub)])


def test_a_file_added_after_signing_is_refused(keys, tmp_path):
    key, pub = keys
    bundle = make_bundle(tmp_path, key)
    raw = bundle.read_bytes()
    with tarfile.open(bundle, "a") as tar:
        info = tarfile.TarInfo("installer/evil.sh")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"rm\n"))
    assert bundle.read_bytes() != raw
    with pytest.raises(BundleError, match="manifest does not list"):
        verify(bundle, [load_public(pub)])


def test_a_bundle_signed_by_another_key_is_refused(keys, tmp_path):
    key, _pub = keys
    _other_key, other_pub = new_key_pair(tmp_path / "other")
    bundle = make_bundle(tmp_path, key)
    with pytest.raises(BundleError, match="signed by a key this kit does not trust"):
        verify(bundle, [load_public(other_pub)])
    with pytest.raises(BundleError, match="trusts no release key"):
        verify(bundle, [])


def test_read_manifest_shows_what_a_file_claims_without_trusting_it(keys, tmp_path):
    key, _pub = keys
    assert read_manifest(make_bundle(tmp_path, key)).title.startswith("Field Kit 0.9.0")
    junk = tmp_path / "junk.fkb"
    junk.write_bytes(b"not a tar file at all" * 100)
    with pytest.raises(BundleError, match="not a complete bundle file|no manifest"):
        read_manifest(junk)


def test_the_kit_refuses_older_foreign_or_too_big_bundles(keys, tmp_path, config):
    key, pub = keys
    trusted = [load_public(pub)]
    config = config.with_values(update__trusted_keys=[pub.read_text()])
    older = make_bundle(tmp_path / "a", key, version="0.0.9")
    with pytest.raises(UpdateRefused, match="version 0.0.9, not newer than the running 0.1.0"):
        check_bundle(config, older, trusted)
    other_arch = "x86_64" if machine_arch() == "aarch64" else "aarch64"
    foreign = make_bundle(tmp_path / "b", key, arch=other_arch)
    with pytest.raises(UpdateRefused, match=f"it is for {other_arch} kits; this kit is {machine_arch()}"):
        check_bundle(config, foreign, trusted)
    jump = make_bundle(tmp_path / "c", key, min_from="0.5.0")
    with pytest.raises(UpdateRefused, match="updates kits running 0.5.0 or newer; this kit runs 0.1.0"):
        check_bundle(config, jump, trusted)
    good = make_bundle(tmp_path / "d", key)
    assert check_bundle(config, good, trusted).version == "0.9.0"
    full = config.with_values(update__min_free_mb=10**9)
    with pytest.raises(UpdateRefused, match="the data partition is too full: installing needs"):
        check_bundle(full, good, trusted)


def test_update_verify_exits_0_or_1_and_says_why(keys, tmp_path, kit_env):
    key, pub = keys
    bundle = make_bundle(tmp_path, key)

    def verify_cli(*extra):
        return subprocess.run(
            [sys.executable, "-m", "kit", "update", "verify", str(bundle), *extra],
            env=kit_env["env"],
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = verify_cli("--key", str(pub))
    assert ok.returncode == 0 and "all" in ok.stdout and "intact" in ok.stdout
    untrusted = verify_cli()
    assert untrusted.returncode == 1 and "trusts no release key" in untrusted.stderr
    flip_byte(bundle, "systemd/fieldkit-web.service")
    tampered = verify_cli("--key", str(pub))
    assert tampered.returncode == 1 and "fieldkit-web.service inside it was changed" in tampered.stderr
    assert "Traceback" not in tampered.stderr
