"""Settings of the door's scan sources and feedback devices (included by checkin/settings.py).

Documented for leads in docs/scanners.md.
"""

from kit.settings import Setting

SETTINGS: list[Setting] = [
    Setting("checkin.scan.repeat_window_s", 2.0,
            "Seconds the same code is ignored by a source after it was last seen (a phone held under the camera)."),
    Setting("checkin.camera.backend", "auto",
            "Door camera: picamera (Pi camera), usb (webcam over V4L2), sim, none, or auto "
            "(picamera when python3-picamera2 is installed, else usb; sim when simulating).",
            choices=("auto", "picamera", "usb", "sim", "none")),
    Setting("checkin.camera.device", "/dev/video0", "USB webcam device path (or index) for the usb backend."),
    Setting("checkin.camera.width", 640, "Camera frame width in pixels (decoding is tuned for 640x480)."),
    Setting("checkin.camera.height", 480, "Camera frame height in pixels."),
    Setting("checkin.camera.max_fps", 15.0, "Frames decoded per second at most (lower saves battery)."),
    Setting("checkin.serial_scanner.backend", "auto",
            "Handheld scanner in USB serial (CDC) mode: serial, sim, none, or auto (serial; sim when simulating).",
            choices=("auto", "serial", "sim", "none")),
    Setting("checkin.serial_scanner.port", "/dev/ttyACM0",
            "Serial port of the handheld scanner; a /dev/serial/by-id/... path survives re-plugging."),
    Setting("checkin.serial_scanner.baudrate", 9600, "Baud rate of the serial scanner (ignored by USB CDC scanners)."),
    Setting("checkin.serial_scanner.max_line", 4096, "Longest code accepted from a serial scanner, in bytes."),
    Setting("checkin.hid_scanner.backend", "none",
            "Handheld scanner in keyboard (HID) mode: evdev, sim or none.",
            choices=("auto", "evdev", "sim", "none")),
    Setting("checkin.hid_scanner.device", "",
            "Input device of the keyboard-mode scanner, e.g. /dev/input/by-id/usb-...-event-kbd."),
    Setting("checkin.hid_scanner.layout", "us",
            "Keyboard layout the scanner is set to type in (us or de).", choices=("us", "de")),
    Setting("checkin.hid_scanner.end_pause_ms", 80,
            "A keyboard-mode code ends at Enter, or after this many milliseconds without a key."),
    Setting("checkin.feedback.backend", "auto",
            "Door lights and buzzer: gpio, sim (gpiozero mock pins), none, or auto (gpio; sim when simulating).",
            choices=("auto", "gpio", "sim", "none")),
    Setting("checkin.feedback.green_pin", "GPIO23", "GPIO pin of the green (admit) LED."),
    Setting("checkin.feedback.red_pin", "GPIO24", "GPIO pin of the red (refuse) LED."),
    Setting("checkin.feedback.buzzer_pin", "GPIO25", "GPIO pin of the buzzer (active buzzer, on = sound)."),
]
