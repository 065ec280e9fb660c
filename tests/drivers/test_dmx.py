"""DMX out: ENTTEC DMX USB Pro bytes captured from a pseudo-terminal, Art-Net from a UDP socket."""

from __future__ import annotations

import os
import select
import socket
import time
import tty

import pytest

from drivers.dmx import (
    ArtNetSender,
    EnttecDmxPro,
    SimulatedDmxWidget,
    artnet_packet,
    enttec_frame,
    parse_enttec,
)


def read_all(fd: int, want: int, timeout: float = 2.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < want and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            data += os.read(fd, 4096)
    return data


def test_enttec_frame_has_the_start_code_and_the_length_counts_it():
    assert enttec_frame(bytes([255, 128, 0])) == bytes([0x7E, 0x06, 0x04, 0x00, 0x00, 255, 128, 0, 0xE7])
    full = enttec_frame(bytes(range(256)) * 2)
    assert full[2:4] == bytes([0x01, 0x02])  # 513 = 0x0201, LSB first
    assert len(full) == 5 + 512 + 1
    with pytest.raises(ValueError):
        enttec_frame(b"")


def test_frames_written_to_a_pty_are_byte_exact_and_sent_only_on_change():
    master, slave = os.openpty()
    tty.setraw(slave)
    port = EnttecDmxPro(os.ttyname(slave))
    try:
        port.send(bytes([10, 20, 30]))
        port.send(bytes([10, 20, 31]))
        wire = read_all(master, 18)
        assert wire == bytes([0x7E, 6, 4, 0, 0, 10, 20, 30, 0xE7, 0x7E, 6, 4, 0, 0, 10, 20, 31, 0xE7])
        assert port.frames_sent == 2
    finally:
        port.close()
        os.close(master)
        os.close(slave)


def test_a_widget_that_is_unplugged_is_reopened_and_gets_the_current_frame(tmp_path):
    widget = SimulatedDmxWidget(tmp_path / "by-id" / "usb-ENTTEC_DMX_USB_PRO")
    port = EnttecDmxPro(widget.path, reopen_every=0.05)
    try:
        port.send(bytes([1, 2, 3]))
        assert widget.read(1.0) == [bytes([1, 2, 3])]
        widget.unplug()
        port.send(bytes([4, 5, 6]))  # fails: the widget is gone, the service keeps going
        assert not port.available and "unplugged" in port.detail
        port.send(bytes([7, 8, 9]))  # still gone: kept as the frame to restore
        widget.plug()
        time.sleep(0.06)
        port.maintain()
        assert port.available
        assert widget.read(1.0) == [bytes([7, 8, 9])]
    finally:
        port.close()
        widget.close()


def test_the_widget_parser_skips_noise_and_keeps_partial_frames():
    stream = b"\x00garbage" + enttec_frame(b"\x01\x02") + bytes([0x7E, 0x07, 0x01, 0x00, 0x00, 0xE7]) + enttec_frame(b"\x09")
    frames, rest = parse_enttec(stream + enttec_frame(b"\x05\x06")[:4])
    assert frames == [b"\x01\x02", b"\x09"]
    frames, rest = parse_enttec(rest + enttec_frame(b"\x05\x06")[4:])
    assert frames == [b"\x05\x06"] and rest == b""


def test_artnet_packets_arrive_on_a_loopback_udp_socket():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    sender = ArtNetSender("127.0.0.1", receiver.getsockname()[1], universe=0x123)
    try:
        sender.send(bytes([255, 0, 7]))
        sender.send(bytes([254, 0, 7]))
        first, _ = receiver.recvfrom(1024)
        second, _ = receiver.recvfrom(1024)
    finally:
        sender.close()
        receiver.close()
    assert first[:8] == b"Art-Net\x00"
    assert first[8:10] == b"\x00\x50"  # OpDmx 0x5000, little-endian
    assert first[10:12] == b"\x00\x0e"  # protocol version 14
    assert (first[12], second[12]) == (1, 2)  # sequence
    assert first[14:16] == bytes([0x23, 0x01])  # SubUni, Net
    assert first[16:18] == b"\x00\x04"  # length, big-endian and even
    assert first[18:] == bytes([255, 0, 7, 0]) and second[18:] == bytes([254, 0, 7, 0])
    assert artnet_packet(bytes(512))[16:18] == b"\x02\x00"
