"""Door cameras as scan sources: frames from a Pi camera (Picamera2) or a USB webcam (OpenCV/V4L2),
decoded by drivers.qr; the latest frame is offered as a small JPEG preview with the code outlined.

Both camera libraries are imported only when that camera is opened, so a kit without them still
starts (``fieldkit doctor`` says what to install).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from pathlib import Path

import numpy as np

from drivers.qr import Detection, QrDecoder, to_grey
from drivers.scan_source import ScanSource

log = logging.getLogger(__name__)

PREVIEW_WIDTH = 320
OUTLINE_SECONDS = 1.0  # how long the last detection stays outlined in the preview
MAX_READ_FAILURES = 10
STALE_SECONDS = 2.0  # an older frame is not shown as the live preview


class CameraMissing(Exception):
    """The camera cannot be opened; the message says what a lead can do."""


class CameraLibraryMissing(CameraMissing):
    """The library for this kind of camera is not installed."""


class FrameSource:
    """Where frames come from. ``read`` returns a grey or colour frame (channels in ``order``), or raises
    OSError when the camera went away."""

    order = "bgr"

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


class PicameraFrames(FrameSource):
    """The Pi camera through libcamera's Picamera2 (Debian's python3-picamera2).

    Picamera2's "BGR888" is named after libcamera's DRM fourcc: the numpy array is [R, G, B] per pixel.
    """

    order = "rgb"

    def __init__(self, size: tuple[int, int] = (640, 480)):
        self.size = size
        self._cam = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as e:
            raise CameraLibraryMissing(f"The Pi camera needs python3-picamera2 ({e}) — sudo apt install python3-picamera2") from None
        try:
            if not Picamera2.global_camera_info():
                raise CameraMissing("Pi camera not found — check the ribbon cable")
            cam = Picamera2()
            cam.configure(cam.create_video_configuration(main={"size": self.size, "format": "BGR888"}))
            cam.start()
        except CameraMissing:
            raise
        except Exception as e:  # libcamera reports a busy or broken camera as assorted errors
            raise CameraMissing(f"Pi camera cannot be started ({e}) — check the ribbon cable; is another program using it?") from None
        self._cam = cam

    def read(self) -> np.ndarray:
        if self._cam is None:
            raise OSError("camera not open")
        try:
            return self._cam.capture_array("main")
        except Exception as e:
            raise OSError(f"Pi camera stopped: {e}") from None

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
                cam.close()
            except Exception as e:
                log.debug("event=camera_close_failed error=%r", e)


class UsbCameraFrames(FrameSource):
    """A USB webcam through OpenCV's V4L2 backend."""

    def __init__(self, device: str | int = "/dev/video0", size: tuple[int, int] = (640, 480)):
        self.device = int(device) if str(device).isdigit() else str(device)
        self.size = size
        self._cap = None

    def open(self) -> None:
        try:
            import cv2
        except ImportError as e:
            raise CameraLibraryMissing(f"USB webcams need OpenCV ({e}) — sudo apt install python3-opencv") from None
        if isinstance(self.device, str) and not Path(self.device).exists():
            raise CameraMissing(f"Camera not found at {self.device} — check the USB cable")
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraMissing(f"Camera at {self.device} cannot be opened — is another program using it? "
                                "(the kit's user needs the video group)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # decode the newest frame, not a queue of old ones
        self._cap = cap

    def read(self) -> np.ndarray:
        if self._cap is None:
            raise OSError("camera not open")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise OSError(f"camera at {self.device} sent no frame")
        return frame

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class FirstCameraFound(FrameSource):
    """``auto``: the first camera that opens (the Pi camera, then a USB webcam), asked again at each reopen."""

    def __init__(self, candidates: list[FrameSource]):
        self.candidates = candidates
        self.current: FrameSource | None = None

    @property
    def order(self) -> str:  # type: ignore[override]
        return self.current.order if self.current else "bgr"

    def open(self) -> None:
        devices, libraries = [], []
        for candidate in self.candidates:
            try:
                candidate.open()
            except CameraLibraryMissing as e:
                libraries.append(str(e))
                continue
            except CameraMissing as e:
                devices.append(str(e))
                continue
            self.current = candidate
            return
        problems = devices or libraries  # a kit without picamera2 need not hear about it when it has a webcam
        raise CameraMissing(problems[0] if len(problems) == 1 else "No camera found: " + "; ".join(problems))

    def read(self) -> np.ndarray:
        if self.current is None:
            raise OSError("camera not open")
        return self.current.read()

    def close(self) -> None:
        current, self.current = self.current, None
        if current is not None:
            current.close()


class CameraScanSource(ScanSource):
    """Decodes every frame (up to ``max_fps``); reopens the camera when it stops sending frames."""

    kind = "camera"

    def __init__(self, name: str, frames: FrameSource, repeat_window_s: float = 2.0, max_fps: float = 15.0,
                 decoder: QrDecoder | None = None):
        super().__init__(name, repeat_window_s)
        self.frames = frames
        self.decoder = decoder or QrDecoder()
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self._latest: np.ndarray | None = None
        self._detections: list[Detection] = []
        self._detected_at = 0.0
        self._latest_at = 0.0
        self._frame_lock = threading.Lock()
        self.frames_decoded = 0

    def _run(self) -> None:
        retry = 0.5
        while not self._stopping.is_set():
            try:
                self.frames.open()
            except CameraMissing as e:
                self._set_status(str(e))
                if not self._wait(retry):
                    return
                retry = min(retry * 2, 5.0)
                continue
            retry = 0.5
            self._set_status("ok")
            try:
                self._decode_frames()
            except OSError as e:
                log.warning("event=camera_disconnected source=%s error=%r", self.name, str(e))
                self._set_status("Camera stopped sending pictures — check its cable; reconnecting")
            finally:
                self.frames.close()

    def _decode_frames(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                frame = self.frames.read()
                failures = 0
            except OSError:
                failures += 1
                if failures >= MAX_READ_FAILURES:
                    raise
                self._wait(0.05)
                continue
            try:
                found = self.decoder.decode(frame, self.frames.order)
            except Exception as e:  # one odd frame must not end the door camera
                log.warning("event=camera_frame_undecodable source=%s error=%r", self.name, e)
                found = []
            with self._frame_lock:
                self._latest, self._latest_at = frame, time.monotonic()
                if found:
                    self._detections, self._detected_at = found, time.monotonic()
            self.frames_decoded += 1
            for detection in found:
                self._emit(detection.text)
            spare = self.min_interval - (time.monotonic() - started)
            if spare > 0:
                self._wait(spare)

    def _close(self) -> None:
        self.frames.close()

    def latest_frame(self) -> np.ndarray | None:
        with self._frame_lock:
            return self._latest

    def preview_jpeg(self, width: int = PREVIEW_WIDTH, quality: int = 70) -> bytes | None:
        """The latest frame, ``width`` pixels wide, as JPEG, with a code read in the last second outlined
        in green; None when the camera has sent nothing for STALE_SECONDS (unplugged: show no picture)."""
        with self._frame_lock:
            frame = self._latest if time.monotonic() - self._latest_at < STALE_SECONDS else None
            outlines = self._detections if time.monotonic() - self._detected_at < OUTLINE_SECONDS else []
        if frame is None:
            return None
        return render_preview(frame, outlines, width, quality, self.frames.order)


def render_preview(frame: np.ndarray, outlines: list[Detection], width: int = PREVIEW_WIDTH, quality: int = 70,
                   order: str = "bgr") -> bytes:
    from PIL import Image, ImageDraw

    if frame.ndim == 3 and frame.shape[2] >= 3:
        rgb = frame[:, :, :3] if order == "rgb" else frame[:, :, 2::-1]
        image = Image.fromarray(np.ascontiguousarray(rgb).astype(np.uint8, copy=False))
    else:
        image = Image.fromarray(to_grey(frame)).convert("RGB")
    scale = width / image.width
    image = image.resize((width, max(1, round(image.height * scale))), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    for d in outlines:
        points = [(x * scale, y * scale) for x, y in d.corners]
        draw.line(points + points[:1], fill=(0, 230, 64), width=3)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()
