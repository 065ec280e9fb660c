"""The simulated door camera: real QR codes (segno) rendered into 640x480 grey frames, optionally
distorted the way a phone under a door camera is (size, rotation, tilt, blur, noise, dark, glare),
and read by the real decoder. The same renderer builds the decode benchmark's frame set.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from drivers.camera import CameraMissing, CameraScanSource, FrameSource

PAPER, INK = 225, 30


def qr_modules(payload: str, error: str = "m") -> np.ndarray:
    """The code's modules (True = dark) with the standard 4-module quiet zone."""
    import segno

    qr = segno.make_qr(payload, error=error)
    return np.pad(np.array(qr.matrix, dtype=bool), 4, constant_values=False)


def scene(size: tuple[int, int] = (640, 480), seed: int = 7) -> np.ndarray:
    """A plain 'door' background: a lighting gradient and a few darker shapes, no code."""
    w, h = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 90 + 70 * (x / w) + 30 * (y / h)
    for _ in range(6):
        x0, y0 = rng.integers(0, w - 60), rng.integers(0, h - 60)
        img[y0:y0 + rng.integers(20, 160), x0:x0 + rng.integers(20, 200)] *= rng.uniform(0.5, 0.9)
    return np.clip(img, 0, 255).astype(np.uint8)


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    return np.append(h, 1.0).reshape(3, 3)


def code_corners(n_modules: int, size: tuple[int, int], module_px: float, angle_deg: float = 0.0,
                 tilt: float = 0.0, center: tuple[float, float] | None = None) -> np.ndarray:
    """Where the code's four corners land in the frame; ``tilt`` (0..0.5) shortens the top edge."""
    w, h = size
    cx, cy = center or (w / 2, h / 2)
    half = n_modules * module_px / 2
    square = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    square[:2, 0] *= 1 - tilt  # the far edge looks shorter
    square[:2, 1] *= 1 - tilt / 2
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return square @ rot.T + [cx, cy]


def render_code_frame(payload: str, size: tuple[int, int] = (640, 480), module_px: float = 4.0,
                      angle_deg: float = 0.0, tilt: float = 0.0, center: tuple[float, float] | None = None,
                      background: np.ndarray | None = None) -> np.ndarray:
    """A grey frame with the code printed on paper, placed by a homography (nearest-module sampling)."""
    modules = qr_modules(payload)
    n = modules.shape[0]
    frame = (scene(size) if background is None else background).astype(np.uint8).copy()
    corners = code_corners(n, size, module_px, angle_deg, tilt, center)
    to_frame = _homography(np.array([[0, 0], [n, 0], [n, n], [0, n]], float), corners)
    to_code = np.linalg.inv(to_frame)
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size[0]), min(y1, size[1])
    if x1 <= x0 or y1 <= y0:
        return frame
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    den = to_code[2, 0] * xs + to_code[2, 1] * ys + to_code[2, 2]
    u = (to_code[0, 0] * xs + to_code[0, 1] * ys + to_code[0, 2]) / den
    v = (to_code[1, 0] * xs + to_code[1, 1] * ys + to_code[1, 2]) / den
    inside = (u >= 0) & (u < n) & (v >= 0) & (v < n)
    ui, vi = np.clip(u.astype(int), 0, n - 1), np.clip(v.astype(int), 0, n - 1)
    patch = frame[y0:y1, x0:x1]
    patch[inside] = np.where(modules[vi, ui], INK, PAPER)[inside]
    return blur(frame, 0.6)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (numpy only: the simulator must not need OpenCV)."""
    if sigma <= 0:
        return img
    r = max(1, int(3 * sigma + 0.5))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    out = img.astype(np.float32)
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        acc = np.zeros_like(out)
        n = out.shape[axis]
        for i, weight in enumerate(k):
            acc += weight * (padded[i:i + n] if axis == 0 else padded[:, i:i + n])
        out = acc
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def add_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def dim(img: np.ndarray, gain: float, offset: float = 0.0) -> np.ndarray:
    """Dark (gain 0.15) or washed-out (gain 0.3, offset 120) lighting."""
    return np.clip(img.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def glare(img: np.ndarray, center: tuple[float, float], radius: float, strength: float = 220) -> np.ndarray:
    """A specular reflection on a phone screen: a bright blob that washes part of the code out."""
    h, w = img.shape
    y, x = np.mgrid[0:h, 0:w]
    blob = strength * np.exp(-((x - center[0]) ** 2 + (y - center[1]) ** 2) / (2 * radius**2))
    return np.clip(img + blob, 0, 255).astype(np.uint8)


def distort(frame: np.ndarray, rng: np.random.Generator, blur_sigma: float = 0.0, noise: float = 0.0,
            gain: float = 1.0, offset: float = 0.0, glare_at: tuple[float, float] | None = None,
            glare_radius: float = 60.0) -> np.ndarray:
    """Photometric distortions, in the order a camera applies them."""
    if glare_at is not None:
        frame = glare(frame, glare_at, glare_radius)
    frame = blur(frame, blur_sigma)
    if gain != 1.0 or offset:
        frame = dim(frame, gain, offset)
    if noise:
        frame = add_noise(frame, noise, rng)
    return frame


class SimulatedFrames(FrameSource):
    """A camera that sees an empty door, or the code last ``show``n for ``seconds``; can be 'unplugged'."""

    def __init__(self, size: tuple[int, int] = (640, 480), fps: float = 10.0):
        self.size = size
        self.interval = 1.0 / fps
        self.idle = scene(size)
        self.plugged_in = True
        self._showing: tuple[np.ndarray, float] | None = None
        self._lock = threading.Lock()
        self._next = 0.0
        self._open = False

    def show(self, payload: str, seconds: float = 2.0, **placement) -> np.ndarray:
        """Hold a phone with ``payload`` under the camera. ``placement`` is passed to render_code_frame,
        plus optional photometric distortions of ``distort`` (blur_sigma, noise, gain, offset, glare_at)."""
        photometric = {k: placement.pop(k) for k in list(placement)
                       if k in ("blur_sigma", "noise", "gain", "offset", "glare_at", "glare_radius")}
        frame = render_code_frame(payload, self.size, **placement)
        if photometric:
            frame = distort(frame, np.random.default_rng(0), **photometric)
        with self._lock:
            self._showing = (frame, time.monotonic() + seconds)
        return frame

    def open(self) -> None:
        if not self.plugged_in:
            raise CameraMissing("Camera not found (simulated camera unplugged) — check the USB cable")
        self._open = True

    def read(self) -> np.ndarray:
        if not (self.plugged_in and self._open):
            raise OSError("simulated camera unplugged")
        now = time.monotonic()
        if self._next > now:  # a real camera delivers frames at its own pace
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval
        with self._lock:
            if self._showing and time.monotonic() < self._showing[1]:
                return self._showing[0]
            self._showing = None
        return self.idle

    def close(self) -> None:
        self._open = False


class SimulatedCamera(CameraScanSource):
    """The door camera of the demo and the tests: ``show(payload)`` holds a ticket in front of it."""

    def __init__(self, name: str = "camera", repeat_window_s: float = 2.0, size: tuple[int, int] = (640, 480),
                 fps: float = 10.0):
        self.sim = SimulatedFrames(size, fps)
        super().__init__(name, self.sim, repeat_window_s=repeat_window_s, max_fps=fps)

    def show(self, payload: str, seconds: float = 2.0, **placement) -> None:
        self.repeats.forget(payload)  # a new showing, even of the ticket just scanned
        self.sim.show(payload, seconds, **placement)
