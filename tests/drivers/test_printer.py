"""The receipt printer driver: real ESC/POS bytes rendered, sent over serial, TCP and a device file,
kept by the simulated printer, and decoded back to the lines a customer would read."""

from __future__ import annotations

import os
import socket
import threading
import tty

import pytest

from drivers.printer import (
    PrinterOffline,
    PrinterOutOfPaper,
    PrinterStatus,
    SimulatedReceiptPrinter,
    open_printer,
    profile_info,
    render,
)
from drivers.printer_decode import decode, text_lines
from kit.testing import wait_for

DOC = [
    {"text": "Night Market", "align": "center", "bold": True, "size": "double"},
    {"text": "2 x Größe L €", "align": "left"},
    {"text": "TOTAL EUR 29.00", "bold": True},
    {"qr": "6f1c0e7a-receipt"},
    {"cut": True},
]


@pytest.mark.parametrize("profile", ["TM-T20II", "NT-5890K"])
def test_rendered_bytes_decode_back_to_the_lines(profile):
    data = render(DOC, profile)
    assert data.startswith(b"\x1b@")  # a fresh INIT, so the printer and the encoder agree on the code page
    pages = profile_info(profile)["code_pages"]
    lines = [ln for ln in decode(data, pages) if ln.kind != "text" or ln.text]
    assert lines[0].text == "Night Market" and lines[0].align == "center" and lines[0].bold and lines[0].size == "double"
    assert lines[1].text == "2 x Größe L €" and not lines[1].bold and lines[1].size == "normal"
    assert lines[2].text == "TOTAL EUR 29.00" and lines[2].bold
    # native QR on the 80 mm profile; a raster picture on the 58 mm one, read back with zxing-cpp
    assert lines[3].kind == "qr" and lines[3].text == "6f1c0e7a-receipt"
    if profile_info(profile)["qr"]:
        assert lines[-1].kind == "cut"


def test_an_unknown_profile_is_a_device_problem_not_a_bad_document():
    from drivers.base import DeviceUnavailable

    with pytest.raises(DeviceUnavailable, match="pos.printer.profile"):
        render(DOC, "NO-SUCH-PRINTER")


def test_simulated_printer_keeps_bytes_and_can_be_offline_or_out_of_paper(tmp_path):
    sim = SimulatedReceiptPrinter(tmp_path / "sim")
    data = render(DOC, "TM-T20II")
    sim.send(data)
    assert sim.outputs()[0].read_bytes() == data
    sim.set_state(online=False)
    assert not sim.status().ready
    with pytest.raises(PrinterOffline, match="switched off"):
        sim.send(data)
    sim.set_state(online=True, paper="out")
    with pytest.raises(PrinterOutOfPaper):
        sim.send(data)
    sim.set_state(paper="ok")
    sim.send(data)
    assert len(sim.outputs()) == 2


def test_file_backend_writes_the_exact_bytes(config, tmp_path):
    dev = tmp_path / "lp0"
    dev.write_bytes(b"")
    cfg = config.with_values(kit__simulate=False, pos__printer__backend="file", pos__printer__file=str(dev))
    printer = open_printer(cfg)
    data = render(DOC, "TM-T20II")
    printer.send(data)
    assert dev.read_bytes() == data
    dev.unlink()
    assert not printer.status().online
    with pytest.raises(PrinterOffline, match="not found"):
        printer.send(data)


def test_network_backend_sends_to_port_9100_style_socket(config):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = bytearray()

    def serve():
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    port = server.getsockname()[1]
    cfg = config.with_values(kit__simulate=False, pos__printer__backend="network", pos__printer__host="127.0.0.1",
                             pos__printer__port=port)
    data = render(DOC, "TM-T20II")
    open_printer(cfg).send(data)
    t.join(5)
    server.close()
    assert bytes(received) == data
    assert "TOTAL EUR 29.00" in text_lines(bytes(received), profile_info("TM-T20II")["code_pages"])


def test_network_printer_that_does_not_answer_is_offline(config):
    from kit.testing import free_port

    cfg = config.with_values(kit__simulate=False, pos__printer__backend="network", pos__printer__host="127.0.0.1",
                             pos__printer__port=free_port())
    with pytest.raises(PrinterOffline, match="does not answer"):
        open_printer(cfg).send(b"x")


class _SerialPrinterOnPty:
    """The printer's end of a serial line: answers DLE EOT 4 paper queries like a real printer."""

    def __init__(self, paper_byte: int):
        self.master, slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave
        self.paper_byte = paper_byte
        self.received = bytearray()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        import select

        while not self.stop:
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            self.received.extend(chunk)
            if b"\x10\x04\x04" in chunk and self.paper_byte is not None:
                os.write(self.master, bytes([self.paper_byte]))

    def close(self):
        self.stop = True
        self.thread.join(2)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def printer_on_pty(config):
    """``(printer_end, printer)``: the kit's printer for ``backend`` on the printer's end of a pty."""
    ends = []

    def make(backend: str, paper_byte: int | None):
        end = _SerialPrinterOnPty(paper_byte)
        ends.append(end)
        setting = {"serial": "pos__printer__serial_device", "file": "pos__printer__file"}[backend]
        cfg = config.with_values(kit__simulate=False, pos__printer__backend=backend, **{setting: end.path})
        return end, open_printer(cfg)

    yield make
    for end in ends:
        end.close()

@pytest.mark.parametrize("paper_byte,ready", [(0x12, True), (0x72, False)])
def test_serial_backend_over_a_pty_checks_paper_then_prints(printer_on_pty, paper_byte, ready):
    printer_end, printer = printer_on_pty("serial", paper_byte)
    data = render(DOC, "TM-T20II")
    if ready:
        printer.send(data)
        wait_for(lambda: printer_end.received.endswith(data), 5, what="bytes on the serial line")
    else:
        assert printer.status().paper == "out"
        with pytest.raises(PrinterOutOfPaper, match="out of paper"):
            printer.send(data)
        assert data not in bytes(printer_end.received)


def test_file_backend_on_a_two_way_device_asks_the_paper_sensor(printer_on_pty):
    """usblp's /dev/usb/lp0 (like a tty) carries the printer's answers back: the file backend asks
    DLE EOT 4 before each job, holds the job while the paper is out and prints once it is back."""
    printer_end, printer = printer_on_pty("file", 0x72)  # paper out
    data = render(DOC, "TM-T20II")
    assert printer.status() == PrinterStatus(True, "out", f"Printer device {printer_end.path}: out of paper;"
                                                          " receipts will queue")
    with pytest.raises(PrinterOutOfPaper):
        printer.send(data)
    assert data not in bytes(printer_end.received)
    printer_end.paper_byte = 0x1E  # paper back in, near its end
    assert printer.status().paper == "low"
    printer.send(data)
    wait_for(lambda: bytes(printer_end.received).endswith(data), 5, what="the receipt on the device")
    assert bytes(printer_end.received).count(b"\x10\x04\x04") == 4  # two looks and two jobs: asked each time


def test_file_backend_on_a_device_that_never_answers_prints_and_stops_asking(printer_on_pty):
    printer_end, printer = printer_on_pty("file", None)
    data = render(DOC, "TM-T20II")
    for _ in range(3):
        printer.send(data)
    wait_for(lambda: bytes(printer_end.received).count(data) == 3, 5, what="three receipts on the device")
    assert bytes(printer_end.received).count(b"\x10\x04\x04") == 1  # one unanswered question, then none
    assert printer.status().paper == "unknown" and printer.status().online


def test_usb_backend_without_a_printer_is_a_clear_offline_error(config):
    cfg = config.with_values(kit__simulate=False, pos__printer__backend="usb")
    printer = open_printer(cfg)
    st = printer.status()
    assert not st.online
    assert "pyusb" in st.reason or "not found on USB" in st.reason


def test_control_characters_never_reach_the_printer():
    from pos.layout import PrintDocumentError, validate_document

    lines = validate_document({"lines": [{"text": "a\x1b@b\x1dV\x00c"}, {"cut": True}, {"text": "BIG", "size": 2}]})
    assert lines[0]["text"] == "a@bVc"
    assert lines[2]["size"] == "double"  # the door's rehearsal sheet writes sizes as numbers
    for bad in ({"lines": []}, {"lines": [{"text": 5}]}, {"lines": [{"qr": ""}]}, {"lines": [{"text": "x", "align": "up"}]}, {"lines": [{"text": "x", "size": 9}]},
                {"lines": [{"nothing": 1}]}, [1], {"lines": [{"text": "x"}] * 601}):
        with pytest.raises(PrintDocumentError):
            validate_document(bad)


def test_python_escpos_leaves_stdout_logging_and_temp_dirs_alone(tmp_path):
    """Importing and rendering must not print to stdout (a CLI's output) nor configure the root logger."""
    import subprocess
    import sys

    code = ("import logging\n"
            "from drivers.printer import render\n"
            "render([{'text': 'x'}, {'qr': 'abc'}, {'cut': True}], 'NT-5890K')\n"
            "render([{'text': 'x'}, {'qr': 'abc'}], 'TM-T20II')\n"
            "print('handlers', len(logging.getLogger().handlers))\n")
    env = {**os.environ, "ESCPOS_CAPABILITIES_PICKLE_DIR": str(tmp_path / "escpos-cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert out.stdout == "handlers 0\n"
    assert list((tmp_path / "escpos-cache").glob("*.capabilities.pickle"))  # the fixed cache dir, made if missing
