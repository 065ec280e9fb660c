"""The QR decoder on generated frames: real codes, real distortions, the real zxing-cpp."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from drivers.camera_sim import distort, render_code_frame, scene
from drivers.qr import QrDecoder, stretch, to_grey

TICKET = base64.b64encode(bytes(range(7, 91))).decode()[::-1]  # pretix-like: 112 characters, starts with '='


@pytest.fixture(scope="module")
def decoder():
    return QrDecoder()


def test_reads_a_ticket_and_reports_where_it_is(decoder):
    frame = render_code_frame(TICKET, module_px=4, center=(200, 300))
    [found] = decoder.decode(frame)
    assert found.text == TICKET
    xs, ys = zip(*found.corners, strict=True)
    assert 100 < min(xs) < 200 < max(xs) < 300 and 200 < min(ys) < 300 < max(ys) < 400


@pytest.mark.parametrize("placement", [
    {"angle_deg": 33}, {"angle_deg": 90}, {"tilt": 0.3, "angle_deg": 8}, {"module_px": 2.6}, {"module_px": 9},
])
def test_reads_rotated_tilted_small_and_large_codes(decoder, placement):
    placement = {"module_px": 4.5, **placement}
    assert [d.text for d in decoder.decode(render_code_frame(TICKET, **placement))] == [TICKET]


def test_dark_frame_needs_the_contrast_stretch(decoder):
    rng = np.random.default_rng(3)
    dark = distort(render_code_frame(TICKET, module_px=4.0), rng, gain=0.06, noise=1.5, blur_sigma=1.0)
    assert int(dark.max()) - int(dark.min()) < 60
    no_rescue = QrDecoder(second_attempt=False)
    assert no_rescue.decode(dark) == []  # plain zxing-cpp gives up on this frame
    assert [d.text for d in decoder.decode(dark)] == [TICKET]


def test_bgr_frames_and_odd_input_never_raise(decoder):
    grey = render_code_frame(TICKET, module_px=4)
    bgr = np.dstack([grey, grey, grey])
    assert [d.text for d in decoder.decode(bgr)] == [TICKET]
    assert (to_grey(bgr) == grey).all()
    for odd in (np.zeros((0, 0), np.uint8), np.zeros((4, 4, 2), np.uint8), np.full((480, 640), 128, np.uint8),
                np.random.default_rng(1).integers(0, 256, (480, 640), dtype=np.uint8), grey.astype(np.float32)):
        assert isinstance(decoder.decode(odd), list)


def test_no_code_is_seen_in_empty_or_noisy_scenes(decoder):
    rng = np.random.default_rng(11)
    for i in range(10):
        frame = distort(scene(seed=i), rng, noise=6 * i, gain=1.0 - 0.08 * i)
        assert decoder.decode(frame) == []


def test_only_qr_codes_are_read(decoder):
    import segno
    import zxingcpp

    micro = np.pad(np.array(segno.make_micro("NOTATICKET").matrix, dtype=bool), 2)
    modules = np.kron(micro, np.ones((8, 8), dtype=bool))
    frame = scene()
    frame[100:100 + modules.shape[0], 100:100 + modules.shape[1]] = np.where(modules, 20, 230)
    assert decoder.decode(frame) == []
    assert [b.text for b in zxingcpp.read_barcodes(frame)] == ["NOTATICKET"]  # any-format zxing reads it


def test_stretch_maps_the_range_to_full_scale():
    grey = np.array([[10, 20, 30]], np.uint8)
    assert stretch(grey, 10, 30).tolist() == [[0, 120, 240]]  # gain 12: nearly full scale
    assert stretch(np.array([[0, 5, 200]], np.uint8), 5, 100).tolist() == [[0, 0, 190]]  # clipped, no overflow
    assert stretch(grey, 30, 30) is grey and stretch(grey, 0, 200) is grey  # gain 1 would change nothing
