"""Sample data for `make demo`: the demo cue sheet and the short sounds it plays."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

from cues.documents import DEMO_SHEET, KIND, sound_dir

# name -> (frequency Hz, seconds): tiny generated tones, so no audio files live in the repository
DEMO_SOUNDS = {"sting.wav": (880, 1.0), "bell.wav": (1320, 0.6), "walkin-1.wav": (440, 4.0), "walkin-2.wav": (523, 4.0)}


def write_tone(path: Path, frequency: float, seconds: float, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(rate * seconds)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        fade = max(1, frames // 10)
        out.writeframes(b"".join(
            struct.pack("<h", int(12000 * min(1.0, i / fade, (frames - i) / fade) * math.sin(2 * math.pi * frequency * i / rate)))
            for i in range(frames)))
    return path


def demo_setup(config, db) -> None:
    from kit.documents import import_document

    folder = sound_dir(config)
    for name, (frequency, seconds) in DEMO_SOUNDS.items():
        if not (folder / name).exists():
            write_tone(folder / name, frequency, seconds)
    import_document(config, db, KIND, DEMO_SHEET.read_bytes(), DEMO_SHEET.name, source="demo")
