"""The receipt printer: ESC/POS bytes built with python-escpos, sent over usb, serial, network or a
device file, or kept by the simulated printer.

Rendering and sending are separate: ``render(lines, profile)`` turns a print document into the
exact ESC/POS bytes with a fresh ``Dummy`` printer (a fresh object per receipt, because after an
INIT the printer's code page is reset but the library's encoder would not know); a backend then
sends those bytes through a fresh connection. The simulated printer keeps every byte in files
under the data dir and can be switched offline or out of paper (rehearsals, demo, tests).

python-escpos prints to stdout and calls ``logging.basicConfig()`` at import, and caches its
capabilities as a pickle in ``ESCPOS_CAPABILITIES_PICKLE_DIR`` (a temp dir per process otherwise).
``_escpos()`` imports it once with a fixed cache dir, with the root logger left alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import platform
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from drivers.base import DeviceUnavailable, choose_backend
from drivers.printer_device import ask_paper_sensor, paper_from_status
from kit.files import write_durably

log = logging.getLogger("fieldkit.printer")
_import_lock = threading.Lock()
SIZES = {"normal": {}, "tall": {"double_height": True}, "wide": {"double_width": True},
         "double": {"double_height": True, "double_width": True}}


class PrinterOffline(DeviceUnavailable):
    """The printer cannot be reached; jobs wait in the queue."""


class PrinterOutOfPaper(DeviceUnavailable):
    """The printer answers but has no paper; jobs wait in the queue."""


@dataclass(frozen=True)
class PrinterStatus:
    online: bool
    paper: str  # ok | low | out | unknown
    reason: str = ""

    @property
    def ready(self) -> bool:
        return self.online and self.paper != "out"


def _cache_dir() -> Path:
    configured = os.environ.get("ESCPOS_CAPABILITIES_PICKLE_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fieldkit-escpos"


def _prepare_capabilities_cache() -> None:
    """Point python-escpos at a fixed cache dir and write its pickle atomically (processes race otherwise)."""
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".w"
        probe.write_text("")
        probe.unlink()
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"fieldkit-escpos-{os.getuid()}"
        folder.mkdir(parents=True, exist_ok=True)
    os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = str(folder)
    target = folder / f"{platform.python_version()}.capabilities.pickle"
    import importlib.util

    spec = importlib.util.find_spec("escpos")
    if spec is None or not spec.submodule_search_locations:
        return
    source = Path(next(iter(spec.submodule_search_locations))) / "capabilities.json"
    if target.exists() and source.exists() and target.stat().st_mtime >= source.stat().st_mtime:
        return
    data = json.loads(source.read_text())
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        pickle.dump(data, f, protocol=2)
    os.replace(tmp, target)


_ESCPOS: dict = {}


def _escpos(printer: bool = True) -> dict:
    """The python-escpos module objects we use, imported once without its side effects.

    ``printer=False`` is the profiles alone (YAML data): the pos service checks its profile at start, and
    the printer classes (PIL, qrcode, barcode: ~4 MB) are imported with the first job to render or send.
    """
    with _import_lock:
        if "get_profile" not in _ESCPOS or (printer and "printer" not in _ESCPOS):
            _prepare_capabilities_cache()
            root = logging.getLogger()
            guard = logging.NullHandler()
            added = not root.handlers
            if added:
                root.addHandler(guard)  # makes its logging.basicConfig() a no-op
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    from escpos.capabilities import get_profile

                    _ESCPOS["get_profile"] = get_profile
                    if printer:
                        from escpos import exceptions
                        from escpos import printer as printers

                        _ESCPOS.update(printer=printers, exceptions=exceptions)
            except Exception as e:  # a broken install must not take the pos service down
                raise DeviceUnavailable(f"python-escpos cannot be loaded: {e}") from None
            finally:
                if added:
                    root.removeHandler(guard)
        return _ESCPOS


def profile_info(profile: str) -> dict:
    """Columns, paper width in pixels and native QR support of a python-escpos profile."""
    try:
        p = _escpos(printer=False)["get_profile"](profile)
        return {"name": profile, "columns": p.get_columns("a"), "qr": bool(p.supports("qrCode")),
                "pixels": p.profile_data.get("media", {}).get("width", {}).get("pixels"),
                "code_pages": dict(p.codePages)}
    except Exception as e:
        raise DeviceUnavailable(f"unknown printer profile {profile!r} ({e}); see `python-escpos` profiles") from None


def render(lines: list[dict], profile: str) -> bytes:
    """A print document's lines → the exact ESC/POS bytes for ``profile``."""
    esc = _escpos()
    try:
        p = esc["printer"].Dummy(profile=profile)
    except Exception as e:  # a wrong setting, not a bad document: every job must wait for the fix
        raise DeviceUnavailable(f"unknown printer profile {profile!r} ({e}); set pos.printer.profile") from None
    native_qr = bool(p.profile.supports("qrCode"))
    p.hw("INIT")
    for line in lines:
        if "qr" in line:
            p.set(align="center")
            if native_qr:
                # Centre by alignment: python-escpos refuses center=True with native QR codes.
                p.qr(line["qr"], native=True, size=6)
            else:
                with contextlib.redirect_stdout(io.StringIO()):
                    p.qr(line["qr"], native=False, size=4, center=True)
            p.set(align="left")
        elif line.get("cut"):
            p.cut()
        else:
            p.set(align=line.get("align", "left"), bold=bool(line.get("bold")), normal_textsize=True,
                  **SIZES.get(line.get("size", "normal"), {}))
            p.textln(line.get("text", ""))
            if line.get("bold") or line.get("size", "normal") != "normal":
                p.set(bold=False, normal_textsize=True)
    return p.output


class ReceiptPrinter:
    """Send ESC/POS bytes to a printer; say whether it can print now."""

    name = "printer"
    description = ""

    def status(self) -> PrinterStatus:
        raise NotImplementedError

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def refuse_unless_ready(self) -> None:
        """Before a job: PrinterOffline or PrinterOutOfPaper (with the reason) unless it can print now."""
        st = self.status()
        if not st.online:
            raise PrinterOffline(st.reason)
        if st.paper == "out":
            raise PrinterOutOfPaper(st.reason)


class EscposReceiptPrinter(ReceiptPrinter):
    """usb / serial / network / file via python-escpos, with a fresh connection for every job."""

    def __init__(self, name: str, description: str, factory, offline_reason: str, can_query: bool):
        self.name = name
        self.description = description
        self._factory = factory
        self._offline_reason = offline_reason
        self._can_query = can_query

    def _open(self):
        try:
            p = self._factory()
            _ = p.device  # opens the connection now, so a missing printer is found here
            if p.device is None:
                raise PrinterOffline(self._offline_reason)
            return p
        except PrinterOffline:
            raise
        except DeviceUnavailable as e:
            raise PrinterOffline(str(e)) from None
        except Exception as e:  # escpos raises its own errors, OSError, usb.core errors, RuntimeError
            raise PrinterOffline(f"{self._offline_reason} ({type(e).__name__}: {str(e)[:120]})") from None

    def status(self) -> PrinterStatus:
        try:
            p = self._open()
        except PrinterOffline as e:
            return PrinterStatus(False, "unknown", str(e))
        try:
            if not self._can_query:
                return PrinterStatus(True, "unknown")
            try:
                paper = {0: "out", 1: "low", 2: "ok"}.get(p.paper_status(), "unknown")
            except Exception:  # many printers never answer status queries: assume it prints
                paper = "unknown"
            reason = f"{self.description}: out of paper; receipts will queue" if paper == "out" else ""
            return PrinterStatus(True, paper, reason)
        finally:
            with contextlib.suppress(Exception):
                p.close()

    def send(self, data: bytes) -> None:
        if self._can_query:
            self.refuse_unless_ready()
        p = self._open()
        try:
            p._raw(data)
            if hasattr(p, "flush"):
                p.flush()
        except Exception as e:
            raise PrinterOffline(f"{self._offline_reason} (while printing: {type(e).__name__}: {str(e)[:120]})") from None
        finally:
            with contextlib.suppress(Exception):
                p.close()


class DeviceFileReceiptPrinter(EscposReceiptPrinter):
    """A printer behind a device file (usblp's ``/dev/usb/lp0``): asked about its paper before each job.

    A printer that does not answer is not asked again for ``SILENT_RETRY`` seconds, so a one-way device
    costs one short wait, not one per receipt."""

    SILENT_RETRY = 300.0

    def __init__(self, path: str, factory):
        super().__init__("file", f"Printer device {path}", factory,
                         f"Printer device {path} cannot be written — check cable and permissions", False)
        self.path = path
        self._silent_until = 0.0

    def status(self) -> PrinterStatus:
        if not os.path.exists(self.path):
            return PrinterStatus(False, "unknown", f"Printer device {self.path} not found — check cable and power;"
                                                   " receipts will queue")
        if time.monotonic() < self._silent_until:
            return PrinterStatus(True, "unknown")
        answer = ask_paper_sensor(self.path)
        if answer is None:
            self._silent_until = time.monotonic() + self.SILENT_RETRY
            return PrinterStatus(True, "unknown")
        paper = paper_from_status(answer)
        reason = f"{self.description}: out of paper; receipts will queue" if paper == "out" else ""
        return PrinterStatus(True, paper, reason)

    def send(self, data: bytes) -> None:
        self.refuse_unless_ready()
        super().send(data)


_next_output: dict[Path, int] = {}  # a simulated printer's next output number, per folder


class SimulatedReceiptPrinter(ReceiptPrinter):
    """A printer that keeps the exact bytes: ``<folder>/out/<n>.bin`` per job, state in ``state.json``.

    Switch it offline or out of paper with ``set_state`` (the merch page's rehearsal panel and the
    tests do) to see jobs wait and print when it is back.
    """

    name = "sim"
    description = "Simulated printer"

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        (self.folder / "out").mkdir(parents=True, exist_ok=True)

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    def _state(self) -> dict:
        try:
            return {"online": True, "paper": "ok"} | json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {"online": True, "paper": "ok"}

    def set_state(self, online: bool | None = None, paper: str | None = None) -> dict:
        state = self._state()
        if online is not None:
            state["online"] = bool(online)
        if paper is not None:
            if paper not in ("ok", "low", "out"):
                raise ValueError("paper must be ok, low or out")
            state["paper"] = paper
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_path)
        return state

    def status(self) -> PrinterStatus:
        s = self._state()
        if not s["online"]:
            return PrinterStatus(False, "unknown", "Simulated printer is switched off; receipts will queue")
        if s["paper"] == "out":
            return PrinterStatus(True, "out", "Simulated printer is out of paper; receipts will queue")
        return PrinterStatus(True, s["paper"])

    def send(self, data: bytes) -> None:
        self.refuse_unless_ready()
        out = self.folder / "out"
        n = _next_output.get(out)
        if n is None:  # the folder is listed once per process, not for every receipt (a night is thousands)
            n = max((int(p.stem) for p in self.outputs() if p.stem.isdigit()), default=0) + 1
        while (out / f"{n:06d}.bin").exists():  # another process printed meanwhile
            n += 1
        write_durably(out / f"{n:06d}.bin", data)
        _next_output[out] = n + 1

    def outputs(self) -> list[Path]:
        return sorted((self.folder / "out").glob("*.bin"))


class NoPrinter(ReceiptPrinter):
    name = "none"
    description = "No printer configured"

    def status(self) -> PrinterStatus:
        return PrinterStatus(False, "unknown", "No receipt printer configured (pos.printer.backend = none)")

    def send(self, data: bytes) -> None:
        raise PrinterOffline(self.status().reason)


def sim_folder(config) -> Path:
    return config.data_dir / "printer-sim"


def open_printer(config) -> ReceiptPrinter:
    """The configured receipt printer (``sim`` whenever the kit simulates)."""
    profile = config["pos.printer.profile"]

    def usb() -> ReceiptPrinter:
        def make():
            try:
                import usb.core  # noqa: F401  (pyusb: the python-escpos Usb backend needs it)
            except ImportError:
                raise DeviceUnavailable("pyusb is not installed: USB printers need python3-usb (apt) or pyusb") from None
            vid, pid = int(str(config["pos.printer.usb_vendor"]), 16), int(str(config["pos.printer.usb_product"]), 16)
            return _escpos()["printer"].Usb(vid, pid, timeout=2000, profile=profile)
        return EscposReceiptPrinter("usb", "USB printer", make,
                                    "Printer not found on USB — check cable; receipts will queue", True)

    def serial() -> ReceiptPrinter:
        dev = config["pos.printer.serial_device"]
        return EscposReceiptPrinter(
            "serial", f"Serial printer {dev}",
            lambda: _escpos()["printer"].Serial(dev, baudrate=config["pos.printer.serial_baudrate"], timeout=1,
                                                profile=profile),
            f"Printer not found on {dev} — check cable and power; receipts will queue", True)

    def network() -> ReceiptPrinter:
        host, port = config["pos.printer.host"], config["pos.printer.port"]
        if not host:
            raise DeviceUnavailable("pos.printer.host is empty: set the network printer's address")
        return EscposReceiptPrinter(
            "network", f"Network printer {host}:{port}",
            lambda: _escpos()["printer"].Network(host, port=port, timeout=5, profile=profile),
            f"Printer at {host}:{port} does not answer — check power and network; receipts will queue", False)

    def file() -> ReceiptPrinter:
        path = config["pos.printer.file"]

        def make():
            if not os.path.exists(path):
                raise PrinterOffline(f"Printer device {path} not found — check cable and power; receipts will queue")
            return _escpos()["printer"].File(path, profile=profile)
        return DeviceFileReceiptPrinter(path, make)

    return choose_backend(config, "pos.printer.backend", {
        "usb": usb, "serial": serial, "network": network, "file": file,
        "sim": lambda: SimulatedReceiptPrinter(sim_folder(config)), "none": NoPrinter,
    })
