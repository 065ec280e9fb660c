"""The real mpv (Debian package) in idle mode with a null audio output, driven over its JSON IPC."""

from __future__ import annotations

import logging
import shutil
import wave
from datetime import datetime

import pytest

from cues.clock import VirtualClock
from cues.engine import Engine, Outputs
from cues.sheet import parse_sheet
from drivers.audio import AudioBank, MpvError
from kit.testing import wait_for

pytestmark = pytest.mark.skipif(shutil.which("mpv") is None, reason="needs mpv: apt-get install mpv (.ci/apt-packages)")


def write_wav(path, seconds: float = 2.0, rate: int = 8000):
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x10\x00\xf0\xff" * int(rate * seconds / 2))
    return path


SHEET = """
[[cues]]
name = "music"
[[cues.actions]]
kind = "sound"
files = ["a.wav", "b.wav"]
volume = 80
fade = 2.0
[[cues]]
name = "quieter"
[[cues.actions]]
kind = "sound_fade"
volume = 20
fade = 1.0
[[cues]]
name = "off"
[[cues.actions]]
kind = "sound_stop"
fade = 1.0
[[cues]]
name = "sting"
[[cues.actions]]
kind = "sound"
file = "missing.wav"
target = "fx"
[[cues.actions]]
kind = "publish"
topic = "cues/event/sting"
"""


def prop(player, name: str):
    """A property, or None while mpv is still loading the file (mpv says "property unavailable")."""
    try:
        return player.get(name)
    except MpvError:
        return None


@pytest.fixture
def audio(tmp_path):
    bank = AudioBank(tmp_path / "run", audio_output="null")
    yield bank
    bank.close()


def test_mpv_plays_a_gapless_playlist_and_the_engine_fades_its_volume(tmp_path, audio):
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    write_wav(sounds / "a.wav", 30)
    write_wav(sounds / "b.wav", 1)
    clock = VirtualClock(datetime(2026, 6, 20, 20, 0).timestamp())
    engine = Engine(parse_sheet(SHEET), clock, Outputs(audio=audio, sound_dir=sounds))
    engine.fire("music")
    player = audio.player("main")
    assert player.proc is not None and "--ao=null" in player.proc.args and "--idle=yes" in player.proc.args
    wait_for(lambda: prop(player, "filename") == "a.wav", 5, what="mpv to start playing a.wav")
    assert player.get("playlist-count") == 2
    assert player.get("gapless-audio") is True
    assert player.get("volume") == 0  # the fade starts from silence
    engine.run_for(1.0, step=0.1)
    assert player.get("volume") == 40
    engine.run_for(1.0, step=0.1)
    assert player.get("volume") == 80
    engine.fire("quieter")
    engine.run_for(1.0, step=0.1)
    assert player.get("volume") == 20
    wait_for(lambda: (prop(player, "time-pos") or 0) > 0, 5, what="playback to advance")
    engine.fire("off")
    engine.run_for(0.5, step=0.1)
    assert player.get("volume") == 10 and player.get("idle-active") is False
    engine.run_for(0.6, step=0.1)
    wait_for(lambda: player.get("idle-active") is True, 5, what="mpv to stop after the fade-out")


def test_a_missing_sound_file_is_logged_and_the_other_actions_run(tmp_path, audio, caplog):
    published = []
    clock = VirtualClock(datetime(2026, 6, 20, 20, 0).timestamp())
    engine = Engine(parse_sheet(SHEET), clock,
                    Outputs(audio=audio, sound_dir=tmp_path, publish=lambda t, p: published.append(t)))
    with caplog.at_level(logging.WARNING, logger="fieldkit.cues"):
        engine.fire("sting")
    assert f"event=sound_missing cue=sting file={tmp_path / 'missing.wav'}" in caplog.text
    assert published == ["cues/event/sting"]
    assert "fx" not in audio.players, "no player was started for a file that is not there"


def test_mpv_that_died_is_started_again(tmp_path, audio):
    write_wav(tmp_path / "a.wav", 5)
    audio.play("main", [str(tmp_path / "a.wav")], 50)
    player = audio.player("main")
    first = player.proc.pid
    player.proc.kill()
    player.proc.wait()
    audio.set_volume("main", 30)
    assert player.proc.pid != first
    assert player.get("volume") == 30
