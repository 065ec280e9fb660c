"""The image test's device scenario, host side (image-build/test/scenario.sh): the guest reports each
step on the second serial port and the host decides. A step the guest could not run is never a pass,
a missing step fails, a failed step fails even when it is not one the host asks for."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_SH = ROOT / "image-build/test/scenario.sh"


def bash(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f'. "{SCENARIO_SH}"; {script}', "scenario", *args], capture_output=True, text=True
    )


def required_steps() -> list[str]:
    return bash("echo $SCENARIO_STEPS").stdout.split()


def report(results: dict[str, str], extra: str = "") -> str:
    lines = ["FKTEST end", "FKSCN start"]
    lines += [
        f"FKSCN step={name} result={r} seconds=1.5 detail=what happened to {name}"
        for name, r in results.items()
    ]
    return "\r\n".join(lines + ([extra] if extra else []) + ["FKSCN end seconds=42.0", ""])


def verdict(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    log = tmp_path / "report.log"
    log.write_text(text)
    return bash('lines=$(scenario_lines "$1"); scenario_verdict "$lines"', str(log))


def test_every_required_step_passing_is_a_pass_and_the_table_names_each(tmp_path: Path):
    steps = required_steps()
    assert {"hid.scan_enter", "hid.replug", "ina219.change", "clock.timedated", "services.alive"} <= set(
        steps
    )
    text = report(dict.fromkeys(steps, "pass") | {"wifi.hwsim": "notrun"})
    assert verdict(tmp_path, text).returncode == 0
    log = tmp_path / "report.log"
    table = bash('scenario_table "$(scenario_lines "$1")"', str(log)).stdout.splitlines()
    assert len(table) == len(steps) + 1
    assert table[-1].split()[:3] == ["wifi.hwsim", "NOT", "RUN"]


def test_a_required_step_not_run_or_missing_or_failed_is_named(tmp_path: Path):
    steps = required_steps()
    results = dict.fromkeys(steps, "pass") | {"hid.replug": "notrun", "ina219.read": "fail"}
    del results["clock.timedated"]
    got = verdict(tmp_path, report(results))
    assert got.returncode == 1
    assert set(got.stdout.split()) == {"hid.replug(notrun)", "ina219.read(fail)", "clock.timedated(missing)"}


def test_a_failed_step_fails_even_when_not_required(tmp_path: Path):
    results = dict.fromkeys(required_steps(), "pass") | {"printer.usb": "fail"}
    got = verdict(tmp_path, report(results))
    assert got.returncode == 1 and got.stdout.split() == ["printer.usb(fail)"]


def test_an_unfinished_scenario_is_no_report_and_the_last_finished_one_counts(tmp_path: Path):
    steps = required_steps()
    unfinished = report(dict.fromkeys(steps, "pass")).replace("FKSCN end seconds=42.0", "")
    log = tmp_path / "report.log"
    log.write_text(unfinished)
    assert bash('scenario_lines "$1"', str(log)).stdout == ""
    assert verdict(tmp_path, unfinished).returncode == 1  # nothing reported: every step is missing
    # A scenario run twice (say the guest restarted it): the last complete one decides.
    first = report(dict.fromkeys(steps, "fail"))
    assert verdict(tmp_path, first + report(dict.fromkeys(steps, "pass"))).returncode == 0
