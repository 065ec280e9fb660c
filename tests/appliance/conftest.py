"""Fixtures of the appliance tests: the recording ``nmcli`` stand-in on PATH."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

STANDIN = Path(__file__).with_name("nmcli_standin.py")


class NmcliStandin:
    def __init__(self, directory: Path):
        self.dir = directory

    def set_state(self, devices: list[dict], connections: list[str] = (), fail_up: list[str] = ()) -> None:
        (self.dir / "state.json").write_text(json.dumps(
            {"devices": devices, "connections": list(connections), "fail_up": list(fail_up)}))

    @property
    def state(self) -> dict:
        return json.loads((self.dir / "state.json").read_text())

    @property
    def calls(self) -> list[list[str]]:
        path = self.dir / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def changes(self) -> list[list[str]]:
        """The calls that change something (not the queries)."""
        return [c for c in self.calls if "-t" not in c]

    def device(self, name: str) -> dict:
        return next(d for d in self.state["devices"] if d["name"] == name)


@pytest.fixture
def nmcli(tmp_path, monkeypatch) -> NmcliStandin:
    bin_dir = tmp_path / "nmcli-bin"
    bin_dir.mkdir()
    script = bin_dir / "nmcli"
    script.write_text(f"#!{sys.executable}\n" + STANDIN.read_text())
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("NMCLI_STANDIN_DIR", str(bin_dir))
    standin = NmcliStandin(bin_dir)
    standin.set_state([{"name": "wlan0", "type": "wifi", "state": "disconnected", "connection": ""}, {"name": "lo", "type": "loopback", "state": "connected (externally)",
                                 "connection": "lo"}])
    return standin
