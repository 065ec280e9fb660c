"""Settings of the cues feature (see kit/settings.py for the declaration rules)."""

from kit.settings import Setting

SETTINGS: list[Setting] = [
    Setting("cues.dmx.backend", "auto", "DMX output: enttec (DMX USB Pro), artnet, sim, none, or auto (sim when simulating).",
            choices=("auto", "enttec", "artnet", "sim", "none")),
    Setting("cues.dmx.port", "/dev/ttyUSB0",
            "Serial port of the ENTTEC DMX USB Pro; prefer its /dev/serial/by-id/... name so it survives replugging."),
    Setting("cues.artnet.host", "255.255.255.255", "Art-Net node address (or a broadcast address)."),
    Setting("cues.artnet.port", 6454, "Art-Net UDP port."),
    Setting("cues.artnet.universe", 0, "Art-Net universe (0-32767) the cue sheet's DMX channels go to."),
    Setting("cues.audio.backend", "auto", "Sound: mpv, sim (mpv with no audio output), none, or auto (sim when simulating).",
            choices=("auto", "mpv", "sim", "none")),
    Setting("cues.audio.output", "auto", "mpv --ao value: auto (null when there is no sound card), alsa, pulse, pipewire, null."),
    Setting("cues.sound_dir", "", "Folder with the cue sheet's sound files; empty means <data dir>/sounds."),
    Setting("cues.gpio.backend", "auto", "GPIO lights and sensors: gpio (the Pi's pins), sim (gpiozero mock pins), none, or auto.",
            choices=("auto", "gpio", "sim", "none")),
    Setting("cues.low_battery", "dim", "While the battery is low: dim power-hungry cues, skip them, or ignore the battery.",
            choices=("dim", "skip", "ignore")),
    Setting("cues.low_battery_dim_percent", 40, "Level (percent of what the cue asks) power-hungry lights dim to on low battery."),
    Setting("cues.frame_rate", 30, "How many times a second fades are computed and changed DMX frames sent."),
]
