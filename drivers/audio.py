"""Sound through mpv: one idle mpv process per sound channel ("main", "fx"), driven over JSON IPC.

mpv runs as ``mpv --idle --no-video --input-ipc-server=<socket>`` (``--ao=null`` where the kit has
no sound card, which is also the simulated backend: the same player, the same commands, no noise).
Playlists play gapless; fades are the cue engine ramping the ``volume`` property. A player that
died is started again on the next command; a missing mpv is a doctor WARN, never a crash.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from drivers.base import DeviceUnavailable, choose_backend

log = logging.getLogger("fieldkit.audio")


class MpvError(Exception):
    pass


def has_sound_card() -> bool:
    cards = Path("/proc/asound/cards")
    try:
        return cards.exists() and "no soundcards" not in cards.read_text()
    except OSError:
        return False


class MpvPlayer:
    """One mpv process and its IPC socket. Thread-safe; every call answers or raises MpvError."""

    def __init__(self, name: str, socket_dir: Path | str, audio_output: str = "auto", binary: str | None = None):
        self.name = name
        self.socket_path = Path(socket_dir) / f"mpv-{name}.sock"
        self.audio_output = audio_output
        self.binary = binary or shutil.which("mpv")
        self.proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- process ----------------------------------------------------------------------------------
    def _args(self) -> list[str]:
        args = [self.binary, "--idle=yes", "--no-video", "--no-terminal", "--no-config",
                f"--input-ipc-server={self.socket_path}", "--gapless-audio=yes", "--prefetch-playlist=yes",
                "--volume=100", "--keep-open=no"]
        ao = self.audio_output
        if ao == "auto":
            ao = "" if has_sound_card() else "null"
        if ao:
            args.append(f"--ao={ao}")
        return args

    def start(self, timeout: float = 5.0) -> None:
        if not self.binary:
            raise DeviceUnavailable("mpv is not installed: apt-get install mpv (sound cues are silent until then)")
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        self.proc = subprocess.Popen(self._args(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.socket_path))
                sock.settimeout(3.0)
                self._sock, self._buffer = sock, b""
                log.info("event=mpv_started name=%s pid=%s", self.name, self.proc.pid)
                return
            except OSError:
                sock.close()
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop_process()
                    raise MpvError(f"mpv did not open its IPC socket {self.socket_path}") from None
                time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._sock is not None

    def stop_process(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.socket_path.unlink(missing_ok=True)

    # -- IPC --------------------------------------------------------------------------------------
    def command(self, *args: Any) -> Any:
        """Send one command and return its ``data``; restarts mpv once if it had died."""
        with self._lock:
            for attempt in (1, 2):
                if not self.running:
                    self.stop_process()
                    self.start()
                try:
                    return self._exchange(list(args))
                except (OSError, MpvError) as e:
                    if attempt == 2 or isinstance(e, MpvError) and "error" in str(e):
                        raise
                    log.warning("event=mpv_restart name=%s error=%r", self.name, str(e))
                    self.stop_process()
        raise MpvError("unreachable")

    def _exchange(self, args: list) -> Any:
        request_id = next(self._ids)
        self._sock.sendall(json.dumps({"command": args, "request_id": request_id}).encode() + b"\n")
        while True:
            while b"\n" not in self._buffer:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise MpvError("mpv closed its IPC socket")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if reply.get("request_id") != request_id:
                continue  # an event (start-file, idle…) or a late answer
            if reply.get("error") != "success":
                raise MpvError(f"mpv {args[0]} error: {reply.get('error')}")
            return reply.get("data")

    def get(self, prop: str) -> Any:
        return self.command("get_property", prop)

    # -- what the cue engine uses ------------------------------------------------------------------
    def play(self, paths: list[str], volume: float = 100, loop: bool = False) -> None:
        self.command("set_property", "volume", float(volume))
        self.command("set_property", "loop-playlist", "inf" if loop else "no")
        self.command("loadfile", paths[0], "replace")
        for path in paths[1:]:
            self.command("loadfile", path, "append")

    def set_volume(self, volume: float) -> None:
        self.command("set_property", "volume", float(volume))

    def stop(self) -> None:
        if self.running:
            self.command("stop")


class AudioBank:
    """The sound channels a cue sheet names, each its own mpv, started on first use."""

    def __init__(self, socket_dir: Path | str | None = None, audio_output: str = "auto", binary: str | None = None):
        # A unix socket path must fit in 108 bytes; a deep data dir falls back to a private temp dir.
        if socket_dir is None or len(str(Path(socket_dir) / "mpv-channelname.sock")) > 100:
            socket_dir = tempfile.mkdtemp(prefix="fk-mpv-")
        self.socket_dir = Path(socket_dir)
        self.audio_output, self.binary = audio_output, binary
        self.players: dict[str, MpvPlayer] = {}
        self.detail = ""

    def player(self, target: str) -> MpvPlayer:
        if target not in self.players:
            self.players[target] = MpvPlayer(target, self.socket_dir, self.audio_output, self.binary)
        return self.players[target]

    def play(self, target: str, paths: list[str], volume: float, loop: bool = False) -> None:
        self._call(target, "play", paths, volume, loop)

    def set_volume(self, target: str, volume: float) -> None:
        self._call(target, "set_volume", volume)

    def stop(self, target: str) -> None:
        if target in self.players:
            self._call(target, "stop")

    def _call(self, target: str, method: str, *args: Any) -> None:
        try:
            getattr(self.player(target), method)(*args)
            self.detail = ""
        except (DeviceUnavailable, MpvError, OSError) as e:
            self.detail = str(e)
            log.warning("event=sound_failed channel=%s action=%s error=%r", target, method, str(e))

    def status(self) -> dict:
        return {"available": not self.detail, "detail": self.detail,
                "channels": {n: p.running for n, p in self.players.items()}}

    def close(self) -> None:
        for p in self.players.values():
            p.stop_process()


def open_audio(config) -> AudioBank | None:
    """Sound output chosen by ``cues.audio.backend``: mpv on the sound card, mpv with null output, none."""
    sockets = config.data_dir / "run"
    factories = {
        "mpv": lambda: AudioBank(sockets, config["cues.audio.output"]),
        "sim": lambda: AudioBank(sockets, "null"),
        "none": lambda: None,
    }
    return choose_backend(config, "cues.audio.backend", factories)
