"""QR decoding for the door cameras: zxing-cpp restricted to QR codes, plus a cheap contrast rescue.

Why this shape (measured in bench/checkin_decode.py, numbers in REFERENCE.md):
- Only QR Model 2, no inverted-code search: ~9x cheaper than every format, half the p95, and camera
  noise is never read as a 1D barcode.
- Dark and washed-out frames are where plain zxing-cpp gives up; a min-max contrast stretch rescues
  them. Stretching every frame costs a little on good frames, so we stretch first only when the
  frame's contrast is low, and otherwise only as a second attempt when the first found nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# A frame whose (sub-sampled) grey levels span fewer than this many steps is "low contrast".
LOW_CONTRAST_SPAN = 96
# Percentiles for the second-attempt stretch: ignore specular glare and the darkest speckles.
SECOND_TRY_PERCENTILES = (2.0, 98.0)


@dataclass(frozen=True)
class Detection:
    """One decoded code: its text and its corners (top-left, top-right, bottom-right, bottom-left)."""

    text: str
    corners: tuple[tuple[int, int], ...]


def to_grey(frame: np.ndarray) -> np.ndarray:
    """A 2-D uint8 view of a frame: grey as is, BGR/BGRA through integer luma weights."""
    if frame.ndim == 2:
        return frame if frame.dtype == np.uint8 else np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] >= 3:
        b, g, r = (frame[:, :, i].astype(np.uint16) for i in range(3))
        return ((29 * b + 150 * g + 77 * r) >> 8).astype(np.uint8)
    raise ValueError(f"unsupported frame shape {frame.shape}")


def stretch(grey: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Map grey levels lo..hi onto 0..255 through a lookup table (one pass, no float image)."""
    if hi <= lo:
        return grey
    levels = np.arange(256, dtype=np.int32)
    lut = np.clip((levels - lo) * 255 // (hi - lo), 0, 255).astype(np.uint8)
    return lut[grey]


class QrDecoder:
    """Decodes QR codes in camera frames (grey or BGR numpy arrays)."""

    def __init__(self, low_contrast_span: int = LOW_CONTRAST_SPAN, second_attempt: bool = True):
        import zxingcpp  # small (~2 MB, ~3 ms); imported here so drivers import without it

        self._zx = zxingcpp
        self.low_contrast_span = low_contrast_span
        self.second_attempt = second_attempt
        fmt = getattr(zxingcpp.BarcodeFormat, "QRCodeModel2", zxingcpp.BarcodeFormat.QRCode)
        self._kwargs: dict = {"formats": fmt, "try_invert": False}
        if hasattr(zxingcpp, "TextMode"):
            self._kwargs["text_mode"] = zxingcpp.TextMode.Plain
        try:
            zxingcpp.read_barcodes(np.zeros((8, 8), np.uint8), **self._kwargs)
        except TypeError:  # zxing-cpp 2.x without try_invert / text_mode
            self._kwargs = {"formats": zxingcpp.BarcodeFormat.QRCode}

    def _read(self, grey: np.ndarray) -> list[Detection]:
        found = []
        for b in self._zx.read_barcodes(grey, **self._kwargs):
            p = b.position
            corners = tuple((int(q.x), int(q.y)) for q in (p.top_left, p.top_right, p.bottom_right, p.bottom_left))
            found.append(Detection(b.text, corners))
        return found

    def decode(self, frame: np.ndarray) -> list[Detection]:
        """Every QR code found in the frame; an empty list when none (never raises on odd frames)."""
        try:
            grey = np.ascontiguousarray(to_grey(frame))
        except ValueError as e:
            log.warning("event=qr_bad_frame reason=%s", e)
            return []
        if grey.size == 0:
            return []
        sample = grey[::8, ::8]
        lo, hi = int(sample.min()), int(sample.max())
        low_contrast = hi - lo < self.low_contrast_span
        if low_contrast:
            found = self._read(stretch(grey, lo, hi))
            if found or not self.second_attempt:
                return found
            return self._read(grey)
        found = self._read(grey)
        if found or not self.second_attempt:
            return found
        # Full range but nothing read: often glare or a dark code region; stretch the middle of the histogram.
        p_lo, p_hi = np.percentile(sample, SECOND_TRY_PERCENTILES)
        if p_hi - p_lo < 8 or (p_lo <= lo + 4 and p_hi >= hi - 4):
            return []  # a stretch would change (almost) nothing
        return self._read(stretch(grey, int(p_lo), int(p_hi)))
