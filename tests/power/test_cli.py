"""`fieldkit power probe` on captured bytes and on a live pseudo-terminal; `fieldkit power status`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from drivers.vedirect_sim import SimulatedPowerKit, World
from kit.cli import cli
from kit.testing import wait_for


def block(*fields: tuple[str, str]) -> bytes:
    body = b"".join(b"\r\n" + k.encode() + b"\t" + v.encode() for k, v in fields) + b"\r\nChecksum\t"
    return body + bytes([(-sum(body)) % 256])


def test_probe_a_capture_file_counts_accepted_and_rejected_blocks(tmp_path):
    good = block(("PID", "0xA053"), ("V", "12850"), ("VPV", "18500"), ("PPV", "41"), ("CS", "3"), ("ERR", "0"))
    corrupt = good.replace(b"12850", b"12950")
    capture = tmp_path / "capture.bin"
    capture.write_bytes(good + corrupt + good[:30] + b":154\n" + good[30:] + b"\x00\xff\x13" + good)
    result = CliRunner().invoke(cli, ["power", "probe", str(capture), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["accepted"], report["rejected"], report["hex_messages"]) == (3, 1, 1)
    assert report["reasons"] == {"checksum": 1}
    charger = report["devices"]["charger"]
    assert charger["decoded"]["battery_v"] == 12.85 and charger["decoded"]["charge_state"] == "bulk"
    text = CliRunner().invoke(cli, ["power", "probe", str(capture)]).output
    assert "3 block(s) accepted, 1 rejected (checksum 1)" in text


def test_probe_a_file_of_noise_says_nothing_was_found_and_fails(tmp_path):
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(cli, ["power", "probe", str(noise)])
    assert result.exit_code == 1 and "0 block(s) accepted" in result.output and "No VE.Direct data" in result.output


def test_probe_a_serial_port_reads_the_simulated_charger(tmp_path):
    sim = SimulatedPowerKit(tmp_path, World(seed=2), interval=0.05).start()
    try:
        result = CliRunner().invoke(cli, ["power", "probe", sim.ports[1], "--seconds", "1", "--json"])
    finally:
        sim.stop()
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["accepted"] >= 6
    monitor = report["devices"]["monitor"]
    assert monitor["decoded"]["soc_percent"] > 80 and "H18" in monitor["fields"]


def test_status_shows_live_values_then_says_when_the_service_stopped(power_service):
    ctx = power_service.ctx
    wait_for(lambda: power_service.service.snapshot.get("available"), 10, what="a live state")
    runner = CliRunner()
    view = wait_for(lambda: (v := json.loads(runner.invoke(cli, ["power", "status", "--json"]).output))["live"] and v,
                    10, what="status to be live")
    assert view["battery"]["soc"] > 80 and view["solar"]["available"] is True
    text = runner.invoke(cli, ["power", "status"]).output
    assert text.startswith("Battery") and "Solar" in text
    ctx.stopping.set()
    ctx.bus.stop()  # a clean stop says offline on the health topic
    text = runner.invoke(cli, ["power", "status"]).output
    assert "not live" in text and "not running" in text and "Battery" not in text


def test_probe_refuses_a_port_another_reader_holds(tmp_path):
    from drivers.vedirect import VEDirectReader

    sim = SimulatedPowerKit(tmp_path, World(seed=2), interval=0.05, monitor=False).start()
    holder = VEDirectReader(sim.ports[0], timeout=0.2)
    try:
        wait_for(lambda: holder.read_once() is not None and holder.connected, 5, what="the holder to open the port")
        result = CliRunner().invoke(cli, ["power", "probe", sim.ports[0], "--seconds", "1"])
    finally:
        holder.close()
        sim.stop()
    assert result.exit_code == 1 and "in use by another program" in result.output
