"""`fieldkit release ...` (making keys and bundles) and `fieldkit update ...` (applying them on a kit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kit.update.bundle import ARCHES, BundleError


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


@click.group("release")
def release() -> None:
    """Make release keys and signed release bundles (on the organisation's build machine).

    \b
    Example:
      fieldkit release keys new --out ~/fieldkit-release
      fieldkit release bundle --key ~/fieldkit-release/release.key --out fieldkit-0.3.0-aarch64.fkb
    """


@release.group("keys")
def keys_group() -> None:
    """Release key pairs (Ed25519).

    \b
    Example:
      fieldkit release keys new --out ~/fieldkit-release
    """


@keys_group.command("new")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for release.key (secret, 0600) and release.pub (goes to every kit).",
)
def keys_new(out: Path) -> None:
    """Make a release key pair: DIR/release.key signs bundles, DIR/release.pub is what kits trust.

    \b
    Example:
      fieldkit release keys new --out ~/fieldkit-release
      image-build/personalise.sh fieldkit.img ... --release-key ~/fieldkit-release/release.pub
    """
    from kit.update.keys import new_key_pair

    try:
        key, pub = new_key_pair(out)
    except BundleError as e:
        _fail(str(e))
    click.echo(f"secret key:  {key}  (keep it off the kits; it signs what every kit installs)")
    click.echo(f"public key:  {pub}")
    click.echo(f'trust it on a kit: [update] trusted_keys = ["{pub.read_text().strip()}"]')


@release.command("bundle")
@click.option(
    "--key", "key", required=True, type=click.Path(dir_okay=False, path_type=Path), help="release.key"
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Bundle file to write.",
)
@click.option(
    "--arch", type=click.Choice(ARCHES), default="aarch64", show_default=True, help="Kit architecture."
)
@click.option(
    "--source", type=click.Path(file_okay=False, path_type=Path), help="Source tree (default: here)."
)
@click.option(
    "--wheel", type=click.Path(dir_okay=False, path_type=Path), help="A built fieldkit wheel to use."
)
@click.option(
    "--wheels",
    "wheels_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Take dependency wheels from this folder instead of PyPI (offline).",
)
@click.option(
    "--no-deps",
    is_flag=True,
    help="No dependency wheels: a development bundle, installed beside the dependencies the kit already has.",
)
@click.option("--min-from", default="0.0.0", show_default=True, help="Oldest version this bundle may update.")
def bundle_cmd(
    key: Path, out: Path, arch: str, source, wheel, wheels_dir, no_deps: bool, min_from: str
) -> None:
    """Build one signed bundle: the kit's wheel, dependency wheels for ARCH (CPython 3.11 and 3.13), units,
    installer pieces, a manifest and its signature. Dependencies come from PyPI unless --wheels/--no-deps.

    \b
    Example:
      fieldkit release bundle --key release.key --out fieldkit-0.3.0-aarch64.fkb --arch aarch64
    """
    from kit.update.build import build_release_bundle

    try:
        path, manifest = build_release_bundle(
            key,
            out,
            arch,
            source=source,
            wheel=wheel,
            wheels_dir=wheels_dir,
            no_deps=no_deps,
            min_from=min_from,
        )
    except BundleError as e:
        _fail(str(e))
    size = path.stat().st_size // 1024
    click.echo(
        f"{path}: {manifest.title}, {len(manifest.wheels())} wheel(s), {len(manifest.members)} files, "
        f"{size} KiB, signed by key {manifest.key_id}"
    )


@click.group("update")
def update() -> None:
    """Update this kit from a signed release bundle, with a trial and an automatic way back.

    \b
    Example:
      fieldkit update verify /media/fieldkit-usb/fieldkit-update/fieldkit-0.3.0-aarch64.fkb
      fieldkit update apply fieldkit-0.3.0-aarch64.fkb
    """


def _config():
    from kit.cli import get_config

    return get_config()


def _keys(config, key_file: Path | None) -> list[bytes]:
    from kit.update.keys import load_public, trusted_keys

    return [load_public(key_file)] if key_file else trusted_keys(config)


@update.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check against this release.pub instead of the kit's trusted keys.",
)
def verify_cmd(file: Path, key_file: Path | None) -> None:
    """Check a bundle's signature and every file in it; exit 0 if this kit may install it, 1 and why if not.

    \b
    Example:
      fieldkit update verify fieldkit-0.3.0-aarch64.fkb --key release.pub
    """
    from kit.update.bundle import verify

    try:
        manifest = verify(file, _keys(_config(), key_file))
    except BundleError as e:
        _fail(f"{file.name} was refused: {e}")
    click.echo(
        f"{file.name}: {manifest.title}, signed by key {manifest.key_id}, all {len(manifest.members)} "
        f"files intact; updates kits from {manifest.min_from_version}"
    )


@update.command("apply")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--now", "now", is_flag=True, help="Even while the doors are open or the merch table sells.")
def apply_cmd(file: Path, now: bool) -> None:
    """Install a bundle beside the running release, switch, try it, keep it or go back by itself.

    \b
    Example:
      fieldkit update apply fieldkit-0.3.0-aarch64.fkb
    """
    from kit.update.updater import apply_update

    config = _config()
    try:
        result = apply_update(config, file, _keys(config, None), even_if_busy=now, say=click.echo)
    except BundleError as e:
        _fail(f"{file.name} was not installed: {e}")
    if result["outcome"] != "applied":
        _fail(f"went back to {result['from_version']}: {result.get('reason', '')}")


@update.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(as_json: bool) -> None:
    """The running release, the slots on the kit, an update in progress and the last outcome.

    \b
    Example:
      fieldkit update status --json
    """
    from kit.update.status import update_status

    status = update_status(_config())
    if as_json:
        click.echo(json.dumps(status, indent=2))
        return
    click.echo(f"running: {status['version']}  ({status['current'] or 'not from a release slot'})")
    click.echo(f"slots:   {', '.join(status['slots']) or 'none'}")
    if status["in_progress"]:
        p = status["in_progress"]
        click.echo(f"now:     {p['from_version']} → {p['to_version']}, step {p['step']}")
    if status["last"]:
        last = status["last"]
        click.echo(
            f"last:    {last['outcome']} {last['from_version']} → {last['to_version']} {last.get('reason', '')}"
        )
    for b in status["available"]:
        click.echo(
            f"found:   {b['title']} in {b['path']}"
            + (f" (refused: {b['refused']})" if b.get("refused") else "")
        )


@update.command("rollback")
def rollback_cmd() -> None:
    """Go back to the previous release now (an interrupted update is undone with its snapshot).

    \b
    Example:
      fieldkit update rollback
    """
    from kit.update.updater import manual_rollback

    try:
        manual_rollback(_config(), say=click.echo)
    except BundleError as e:
        _fail(str(e))


@update.command("recover")
def recover_cmd() -> None:
    """Finish or undo an update a power cut interrupted (the boot unit runs it before the services).

    \b
    Example:
      fieldkit update recover
    """
    from kit.update.apply import ensure_current, recover

    config = _config()
    changed = recover(config)
    click.echo("an interrupted update was undone" if changed else "nothing to recover")
    if ensure_current(config):
        click.echo(f"`current` named no working release: it is the image's own install again ({sys.prefix})")


@update.command("pickup")
def pickup_cmd() -> None:
    """Look for bundles (USB folder, dashboard uploads, HQ downloads) and apply the newest when the kit is idle
    or a lead said "now".

    \b
    Example:
      fieldkit update pickup
    """
    from kit.update.status import pickup

    click.echo(pickup(_config(), say=click.echo))
