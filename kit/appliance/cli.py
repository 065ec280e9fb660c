"""``fieldkit appliance ...``: what the systemd units and the image run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kit.config import ConfigError, load_config


def _config():
    ctx = click.get_current_context()
    obj = ctx.ensure_object(dict)
    if "config" not in obj:
        from kit.up_record import with_recorded_broker

        obj["config"] = with_recorded_broker(load_config())  # a laptop's `fieldkit up` broker, if one runs
    return obj["config"]


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


@click.group("appliance")
def appliance() -> None:
    """Appliance tasks run by systemd units and the image.

    \b
    Example:
      fieldkit appliance network
    """


@appliance.command("boot")
@click.option("--etc", "etc", default="/etc", show_default=True, type=click.Path(file_okay=False),
              help="Where the system configuration lives (another root when preparing an image).")
@click.option("--issue", default="/etc/issue.d/fieldkit.issue", show_default=True,
              help="Console notice written when fieldkit.toml cannot be used.")
def boot_cmd(etc: str, issue: str) -> None:
    """First boot and every boot: secrets and PINs (once), migrations, Mosquitto, time zone.

    Re-applies the lead's fieldkit.toml from the boot partition. When that file has a mistake the
    HDMI console says which, and the command fails so the kit's services do not start half-set.

    \b
    Example:
      fieldkit appliance boot
    """
    from kit.appliance.boot import config_error_notice, run_boot
    from kit.appliance.broker import BrokerConfigError

    try:
        report = run_boot(Path(etc), echo=click.echo)
    except (ConfigError, BrokerConfigError) as e:
        try:
            Path(issue).parent.mkdir(parents=True, exist_ok=True)
            Path(issue).write_text(config_error_notice(e))
        except OSError:
            pass
        _fail(str(e))
    if report.first_boot:
        click.echo("First boot done: the lead PIN is on the setup slip.")
    click.echo("Boot settings applied.")


@appliance.command("hotspot")
def hotspot_cmd() -> None:
    """Bring up the kit's Wi-Fi hotspot and store the uplink network (NetworkManager).

    \b
    Example:
      fieldkit appliance hotspot
    """
    from kit.appliance.boot import hotspot_credentials
    from kit.appliance.network import NetworkError, Nmcli, configure_hotspot, configure_uplink, hotspot_up

    config = _config()
    ssid, password = hotspot_credentials(config, create=False)
    nm = Nmcli()
    interface = config["network.hotspot_interface"]
    try:
        configure_hotspot(nm, ssid, password, interface, config["network.hotspot_address"])
        if config["network.uplink_ssid"]:
            configure_uplink(nm, config["network.uplink_ssid"], config["network.uplink_password"])
        hotspot_up(nm, interface)
    except NetworkError as e:
        _fail(str(e))
    click.echo(f"Hotspot {ssid!r} is up on {interface}.")


@appliance.command("slip")
@click.option("--console", "tty", default=None, help="Also write the slip to this terminal (e.g. /dev/tty1).")
@click.option("--issue", default=None, help="Also write it to this agetty issue file (shown at the login prompt).")
@click.option("--no-print", is_flag=True, help="Do not send it to the receipt printer.")
@click.option("--wait", "pos_wait", default=120.0, show_default=True, help="Seconds to wait for the POS service.")
def slip_cmd(tty: str | None, issue: str | None, no_print: bool, pos_wait: float) -> None:
    """Print the setup slip (hotspot, address as QR, first lead PIN) and show it on the console.

    \b
    Example:
      fieldkit appliance slip --console /dev/tty1 --issue /etc/issue.d/fieldkit.issue
    """
    from kit.appliance.boot import hotspot_credentials
    from kit.appliance.slip import publish_slip, setup_info, slip_payload, write_console
    from kit.bus import Bus

    config = _config()
    ssid, password = hotspot_credentials(config, create=False)
    info = setup_info(config, ssid, password)
    for where in write_console(info, Path(issue) if issue else None, Path(tty) if tty else None):
        click.echo(f"shown on {where}")
    if no_print:
        return
    bus = Bus.from_config(config, "appliance-slip", will=False)
    if not bus.start(wait=30):
        _fail(f"the kit's broker at {config['mqtt.host']}:{config['mqtt.port']} does not answer; the slip was not printed")
    try:
        answer = publish_slip(bus, config.kit_id, slip_payload(info), pos_timeout=pos_wait)
    finally:
        bus.stop(clean=False)
    if answer in ("queued", "printed"):
        click.echo("Setup slip queued for the receipt printer.")
    elif answer.startswith("rejected"):
        _fail(f"the POS service refused the setup slip ({answer})")
    else:
        click.echo("Setup slip sent, but the POS service did not answer: check `fieldkit doctor`.")


@appliance.command("network")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def network_cmd(as_json: bool) -> None:
    """Show the network: whether the hotspot is up and which uplinks are connected.

    \b
    Example:
      fieldkit appliance network --json
    """
    from kit.appliance.network import NetworkError, Nmcli, network_status

    config = _config()
    try:
        status = network_status(Nmcli(), config["network.hotspot_interface"])
    except NetworkError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(status.as_dict(), indent=2))
        return
    click.echo(f"hotspot: {'up' if status.hotspot_active else 'down'}")
    if not status.uplinks:
        click.echo("uplink:  none (plug in Ethernet or a phone over USB, or use `fieldkit appliance online`)")
    for d in status.uplinks:
        click.echo(f"uplink:  {d.name} ({d.type}, {d.connection})")


@appliance.command("online")
def online_cmd() -> None:
    """Go online for a sync: use any connected uplink, else move the onboard Wi-Fi to the uplink and back.

    The hotspot is away while the onboard Wi-Fi is on the uplink (at most network.online_minutes).

    \b
    Example:
      fieldkit appliance online
    """
    from kit.appliance.online import OnlineSwitch
    from kit.bus import Bus

    config = _config()
    bus = Bus.from_config(config, "appliance-online", will=False)
    bus.start(wait=10)
    switch = OnlineSwitch(config, bus)
    switch.report = _echo_and(switch.report)
    try:
        result = switch.run()
    finally:
        bus.stop(clean=False)
    if result is None:
        _fail(switch.state["detail"])
    if not result.synced:
        sys.exit(2)


def _echo_and(report):
    def both(state: str, detail: str) -> None:
        click.echo(f"{state}: {detail}")
        report(state, detail)

    return both


@appliance.command("kiosk")
@click.option("--check", "check_only", is_flag=True,
              help="Decide whether the kiosk runs here (exit 0) or not (exit 1, with the reason).")
@click.option("--env", "env_file", default=None, type=click.Path(dir_okay=False),
              help="With --check: write the browser's destination here (the unit's EnvironmentFile).")
def kiosk_cmd(check_only: bool, env_file: str | None) -> None:
    """The kiosk on the attached screen: cage running chromium --kiosk on a kit page.

    fieldkit-kiosk.service runs `--check` as root first (exit 1 = the kiosk stays off, and says why),
    then this command without it as the kiosk user, which becomes cage.

    \b
    Example:
      fieldkit appliance kiosk --check
    """
    import os

    from kit.appliance import kiosk

    if check_only:
        decision = kiosk.check(Path(env_file) if env_file else None)
        click.echo(f"kiosk {decision.reason}")
        sys.exit(0 if decision.on else 1)
    argv = kiosk.command()
    try:
        kiosk.prepare_profile(kiosk.profile_dir(os.environ))
    except OSError as e:  # a read-only or full disk: the kiosk still starts, perhaps with a "save password" panel
        click.echo(f"kiosk: could not write the browser's preferences: {e}", err=True)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        _fail(f"cannot start {argv[0]}: {e} (install it: apt-get install cage chromium xwayland)")
