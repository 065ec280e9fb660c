"""QR decoding for the door cameras: zxing-cpp restricted to QR codes, plus a cheap contrast rescue.

Why this shape (measured in bench/checkin_decode.py, numbers in REFERENCE.md):
- Only QR Model 2, no inverted-code search: ~9x cheaper than every format, half the p95, and camera
  noise is never read as a 1D barcode.
- Dark and washed-out frames are where plain zxing-cpp gives up; a min-max contrast stretch rescues
  them. Stretching first also amplifies sensor noise, which makes zxing-cpp slower even on frames it
  would have read as they were, so the stretch is a second attempt, only when the first found nothing.
  Measured both ways in bench/checkin_decode.py: stretch-first doubled the median on dark frames
  (1.1 vs 0.56 ms) for the same hit rate.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# A frame whose (sub-sampled) grey levels span fewer than this many steps is "low contrast".
LOW_CONTRAST_SPAN = 96


@dataclass(frozen=True)
class Detection:
    """One decoded code: its text and its corners (top-left, top-right, bottom-right, bottom-left)."""

    text: str
    corners: tuple[tuple[int, int], ...]


_LUMA = {"bgr": np.array([0.114, 0.587, 0.299], np.float32), "rgb": np.array([0.299, 0.587, 0.114], np.float32)}


def to_grey(frame: np.ndarray, order: str = "bgr") -> np.ndarray:
    """A 2-D uint8 frame: grey as is; colour (``order`` bgr as OpenCV gives, or rgb as Picamera2's
    BGR888 gives) through luma weights, by OpenCV when it is loaded anyway (~0.2 ms), else numpy (~1 ms)."""
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return frame if frame.dtype == np.uint8 else np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] in (3, 4) and order in _LUMA:
        cv2 = sys.modules.get("cv2")
        if cv2 is not None and frame.dtype == np.uint8:
            code = {("bgr", 3): cv2.COLOR_BGR2GRAY, ("bgr", 4): cv2.COLOR_BGRA2GRAY,
                    ("rgb", 3): cv2.COLOR_RGB2GRAY, ("rgb", 4): cv2.COLOR_RGBA2GRAY}[order, frame.shape[2]]
            return cv2.cvtColor(frame, code)
        return np.clip(frame[:, :, :3].astype(np.float32) @ _LUMA[order], 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported frame shape {frame.shape}")


def stretch(grey: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Spread grey levels lo..hi over (nearly) 0..255 by an integer gain: three uint8 passes, ~0.05 ms
    per 640x480 frame (a lookup table costs ~1 ms). Returns ``grey`` itself when the gain would be 1."""
    gain = 255 // max(hi - lo, 1)
    if hi <= lo or gain < 2:
        return grey
    out = np.clip(grey, lo, hi)
    out -= np.uint8(lo)
    out *= np.uint8(gain)  # cannot overflow: (hi - lo) * gain <= 255
    return out


class QrDecoder:
    """Decodes QR codes in camera frames (grey or BGR numpy arrays)."""

    def __init__(self, low_contrast_span: int = LOW_CONTRAST_SPAN, second_attempt: bool = True):
        """``second_attempt=False`` is plain zxing-cpp restricted to QR (for comparisons)."""
        import zxingcpp  # small (~2 MB, ~3 ms); imported here so drivers import without it

        self._zx = zxingcpp
        self.low_contrast_span = low_contrast_span
        self.second_attempt = second_attempt
        self._warned = False
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

    def decode(self, frame: np.ndarray, order: str = "bgr") -> list[Detection]:
        """Every QR code found in the frame; an empty list when none (never raises on odd frames)."""
        try:
            grey = np.ascontiguousarray(to_grey(frame, order))
        except ValueError as e:
            if not self._warned:
                log.warning("event=qr_bad_frame reason=%s", e)
                self._warned = True
            return []
        if grey.size == 0:
            return []
        found = self._read(grey)
        if found or not self.second_attempt:
            return found
        # Nothing read: if the frame is dark or washed out, try once more with a min-max stretch. A
        # full-range frame is left alone: a stretch would not change it, and idle frames stay cheap.
        sample = grey[::8, ::8]
        lo, hi = int(sample.min()), int(sample.max())
        if hi - lo >= self.low_contrast_span:
            return []
        stretched = stretch(grey, lo, hi)
        return [] if stretched is grey else self._read(stretched)
