"""`fieldkit power ...`: probe a VE.Direct device, show the battery and solar state."""

from __future__ import annotations

import json
import sys
import threading

import click

from kit import topics


@click.group("power")
def power_group() -> None:
    """Battery and solar: test a charger's cable, read the kit's power state.

    \b
    Example:
      fieldkit power probe /dev/serial/by-id/usb-VictronEnergy_BV_VE_Direct_cable-if00-port0
      fieldkit power status
    """


@power_group.command("probe")
@click.argument("port_or_file")
@click.option("--seconds", default=5.0, show_default=True, help="How long to listen to a serial port.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def probe_cmd(port_or_file: str, seconds: float, as_json: bool) -> None:
    """Read a VE.Direct device (a serial port, or a file of captured bytes) and say what it decoded.

    Prints how many blocks passed their checksum and how many were rejected (and why), the HEX
    messages seen, and every field of the last record of each device. Stop the power service first
    if it holds the port. Exit code 1 when no block was accepted.

    \b
    Example:
      fieldkit power probe /dev/ttyUSB0 --seconds 10
      fieldkit power probe capture.bin --json
    """
    from power.probe import ProbeError, probe

    try:
        report = probe(port_or_file, seconds)
    except ProbeError as e:
        click.secho(f"error: {e}", fg="red", err=True)
        sys.exit(1)
    data = report.as_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"{report.source}: {data['accepted']} block(s) accepted, {data['rejected']} rejected"
                   + (f" ({', '.join(f'{k} {v}' for k, v in data['reasons'].items())})" if data["reasons"] else "")
                   + f", {data['hex_messages']} HEX message(s), {data['bytes']} bytes")
        for kind, device in report.devices.items():
            click.secho(f"\n{kind}", bold=True)
            for label, value in device["fields"].items():
                click.echo(f"  {label:<8} {value}")
            decoded = {k: v for k, v in device["decoded"].items() if v not in (None, "")}
            click.echo("  decoded: " + ", ".join(f"{k}={v}" for k, v in decoded.items()))
        if not report.devices:
            click.echo("No VE.Direct data: check the cable, that the device is on, and that nothing else reads the port.")
    sys.exit(0 if data["accepted"] else 1)


def read_published_state(config, wait: float = 2.0) -> tuple[dict | None, dict | None]:
    """The retained power state and the power service's health, from the kit's broker."""
    from kit.bus import Bus

    got: dict[str, dict] = {}
    state_topic, health_topic = topics.state(config.kit_id, "power"), topics.health(config.kit_id, "power")
    done = threading.Event()

    def on(topic: str, payload: dict) -> None:
        got[topic] = payload
        if state_topic in got and health_topic in got:
            done.set()

    bus = Bus.from_config(config, "cli-power", will=False)
    bus.subscribe(state_topic, on)
    bus.subscribe(health_topic, on)
    if not bus.start(wait=wait):
        bus.stop(clean=False)
        raise click.ClickException(f"no MQTT broker at {config['mqtt.host']}:{config['mqtt.port']}")
    done.wait(wait)
    bus.stop(clean=False)
    return got.get(state_topic), got.get(health_topic)


def _fmt(value, unit: str, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} {unit}"


def describe(view: dict) -> list[str]:
    b, s, est = view["battery"], view["solar"], view["estimate"]
    if not view.get("live", False):
        return [f"Power: not live — {view.get('reason', 'no data')}."]
    lines = [f"Battery  {_fmt(b.get('soc'), '%', 0)}  {_fmt(b.get('voltage'), 'V', 2)}  "
             f"{_fmt(b.get('current'), 'A')}  {_fmt(b.get('power'), 'W', 0)}"]
    if est.get("hours_left") is not None:
        lines.append(f"         about {est['hours_left']:.0f} h at this load ({_fmt(est.get('consumption_w'), 'W')})")
    if s.get("available"):
        lines.append(f"Solar    {_fmt(s.get('power'), 'W', 0)}  {_fmt(s.get('voltage'), 'V')}  {s.get('charge_state')}"
                     f"  today {_fmt(s.get('yield_today_kwh'), 'kWh', 2)}" + (f"  ERROR: {s['error']}" if s.get("error") else ""))
    else:
        lines.append("Solar    unavailable")
    if view.get("health"):
        lines.append(f"Attention: {view['health']}")
    return lines


@power_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_cmd(as_json: bool) -> None:
    """Show the battery, solar and load as the power service last published them.

    Values are shown only while they are live: a stopped service or an old reading says so instead.

    \b
    Example:
      fieldkit power status --json
    """
    from kit.cli import get_config
    from kit.clock import KitClock
    from power.live import live_view

    config = get_config()
    state, health = read_published_state(config)
    now = KitClock(config.data_dir, config["kit.clock_assume_synced"], config["kit.clock_method"]).time()
    view = live_view(state, health, now, config["power.stale_seconds"], config["power.publish_seconds"])
    if as_json:
        click.echo(json.dumps(view, indent=2))
    else:
        click.echo("\n".join(describe(view)))
