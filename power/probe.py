"""`fieldkit power probe`: what a lead runs when connecting a new charger or battery monitor."""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field

from drivers.vedirect import BlockMerger, VEDirectParser, VEDirectReader, decode, device_kind


class ProbeError(Exception):
    pass


@dataclass
class ProbeReport:
    source: str
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)
    devices: dict[str, dict] = field(default_factory=dict)  # kind -> {"fields": raw, "decoded": ...}
    hex_messages: list[dict] = field(default_factory=list)
    records: int = 0

    def as_dict(self) -> dict:
        return {"source": self.source, "seconds": round(self.seconds, 1), "records": self.records,
                **self.stats, "devices": self.devices, "hex_frames": self.hex_messages}


def _finish(report: ProbeReport, parser: VEDirectParser, records: list[dict[str, str]]) -> ProbeReport:
    report.stats = parser.stats.as_dict()
    report.records = len(records)
    for record in records:
        report.devices[device_kind(record)] = {"fields": record, "decoded": decode(record)}
    report.hex_messages = [{"command": m.command, "data": m.data.hex(), "valid": m.valid} for m in parser.hex_messages]
    return report


def probe_bytes(data: bytes, source: str = "bytes") -> ProbeReport:
    parser, merger = VEDirectParser(), BlockMerger()
    records = [r for b in parser.feed(data) for r in merger.add(b)]
    if not records:  # a capture shorter than one cycle: its first part is still worth showing
        records += merger.flush()
    return _finish(ProbeReport(source), parser, records)


def probe(path: str, seconds: float = 5.0) -> ProbeReport:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ProbeError(f"{path}: no such serial port or file (ls /dev/serial/by-id/ lists USB cables)") from None
    except PermissionError:
        raise ProbeError(f"{path}: permission denied (add this user to the dialout group)") from None
    if stat.S_ISREG(mode):
        with open(path, "rb") as f:
            return probe_bytes(f.read(), path)
    if not stat.S_ISCHR(mode):
        raise ProbeError(f"{path}: neither a serial port nor a file of captured bytes")
    reader = VEDirectReader(path, timeout=0.5)
    records: list[dict[str, str]] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            got = reader.read_once()
            if got is None and not reader.connected and reader.last_error:
                if "exclusively lock" in reader.last_error:
                    raise ProbeError(f"{path} is in use by another program, probably the power service: "
                                     "stop it first (systemctl stop fieldkit-power)")
                raise ProbeError(f"{path}: {reader.last_error}")
            records.extend(got or [])
        if not records:
            records.extend(reader.merger.flush())
    finally:
        reader.close()
    report = _finish(ProbeReport(path), reader.parser, records)
    report.seconds = time.monotonic() - started
    return report
