"""INA219 current/voltage monitor over I2C (smbus2), as on Waveshare-style UPS HATs.

Registers (big-endian 16-bit): 0x00 configuration, 0x02 bus voltage (``(raw >> 3) * 4`` mV),
0x04 current (signed, ``current_lsb`` A per bit), 0x05 calibration. The calibration is written again
before every read: a brown-out resets the chip to 0 and its current would then read 0 A forever.

smbus2 is imported only when a real bus is opened, so a laptop without I2C gets a clear
``DeviceUnavailable`` (and a doctor WARN), never an ImportError.
"""

from __future__ import annotations

import os
from typing import Protocol

from drivers.base import DeviceUnavailable

REG_CONFIG, REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT, REG_CALIBRATION = 0, 1, 2, 3, 4, 5
# 32 V range, /8 gain (320 mV), 12-bit x32 averaging on both ADCs, shunt and bus continuous.
CONFIG_32V_2A = 0x3EEF
CALIBRATION_32V_2A = 4096  # for a 0.1 ohm shunt: current LSB 0.1 mA, power LSB 2 mW
CURRENT_LSB_A = 0.0001


class SMBusLike(Protocol):
    def read_i2c_block_data(self, addr: int, reg: int, length: int) -> list[int]: ...
    def write_i2c_block_data(self, addr: int, reg: int, data: list[int]) -> None: ...


def i2c_device_path(bus: int) -> str:
    return f"/dev/i2c-{bus}"


def open_smbus(bus: int) -> SMBusLike:
    path = i2c_device_path(bus)
    if not os.path.exists(path):
        raise DeviceUnavailable(f"no I2C bus at {path}: enable I2C (raspi-config nonint do_i2c 0) or use another source")
    try:
        from smbus2 import SMBus
    except ImportError:
        raise DeviceUnavailable("smbus2 is not installed: pip install smbus2") from None
    try:
        return SMBus(bus)
    except OSError as e:
        raise DeviceUnavailable(f"cannot open {path}: {e.strerror} (is the service user in the i2c group?)") from None


class INA219:
    """One INA219 chip; ``read()`` returns battery volts, amps and watts (positive = charging)."""

    def __init__(self, smbus: SMBusLike, address: int = 0x42, empty_v: float = 6.0, full_v: float = 8.4):
        self.bus = smbus
        self.address = address
        self.empty_v, self.full_v = empty_v, full_v

    def _write(self, reg: int, value: int) -> None:
        self.bus.write_i2c_block_data(self.address, reg, [(value >> 8) & 0xFF, value & 0xFF])

    def _read(self, reg: int) -> int:
        hi, lo = self.bus.read_i2c_block_data(self.address, reg, 2)
        return (hi << 8) | lo

    def close(self) -> None:
        """Give the bus's file descriptor back (a chip that stopped answering is opened again later)."""
        close = getattr(self.bus, "close", None)
        if close is not None:
            close()

    def read(self) -> dict[str, float]:
        try:
            self._write(REG_CALIBRATION, CALIBRATION_32V_2A)
            self._write(REG_CONFIG, CONFIG_32V_2A)
            bus_mv = (self._read(REG_BUS) >> 3) * 4
            raw_current = self._read(REG_CURRENT)
        except OSError as e:
            raise DeviceUnavailable(f"INA219 at 0x{self.address:02x} does not answer: {e}") from None
        if raw_current >= 0x8000:
            raw_current -= 0x10000
        volts = bus_mv / 1000.0
        amps = raw_current * CURRENT_LSB_A
        # A UPS HAT has no coulomb counter: its state of charge is read off the voltage (rough).
        soc = 100.0 * (volts - self.empty_v) / (self.full_v - self.empty_v)
        return {"battery_v": round(volts, 3), "battery_a": round(amps, 4), "battery_w": round(volts * amps, 2),
                "soc_percent": round(min(100.0, max(0.0, soc)), 1)}


class SimulatedINA219Bus:
    """The chip's registers behind an smbus-like interface (demo and tests of the register maths).

    Set ``volts`` and ``amps``; the current register only reads correctly once calibrated, as on
    the real chip, and ``brown_out()`` clears the calibration.
    """

    def __init__(self, volts: float = 7.6, amps: float = -0.4, address: int = 0x42):
        self.volts, self.amps, self.address = volts, amps, address
        self.registers = {REG_CONFIG: 0x399F, REG_CALIBRATION: 0}
        self.writes: list[tuple[int, int]] = []
        self.closed = False

    def brown_out(self) -> None:
        self.registers[REG_CALIBRATION] = 0

    def unplug(self) -> None:
        """The chip stops answering, as when the HAT's header works loose."""
        self.address = -1

    def close(self) -> None:
        self.closed = True

    def write_i2c_block_data(self, addr: int, reg: int, data: list[int]) -> None:
        self._check(addr)
        value = (data[0] << 8) | data[1]
        self.registers[reg] = value
        self.writes.append((reg, value))

    def read_i2c_block_data(self, addr: int, reg: int, length: int) -> list[int]:
        self._check(addr)
        if reg == REG_BUS:
            value = (round(self.volts * 1000 / 4) << 3) | 0b10  # CNVR set, OVF clear
        elif reg == REG_CURRENT:
            if self.registers[REG_CALIBRATION] == 0:
                value = 0
            else:
                scale = self.registers[REG_CALIBRATION] / CALIBRATION_32V_2A
                value = round(self.amps / CURRENT_LSB_A * scale) & 0xFFFF
        else:
            value = self.registers.get(reg, 0)
        return [(value >> 8) & 0xFF, value & 0xFF][:length]

    def _check(self, addr: int) -> None:
        if addr != self.address:
            raise OSError(121, "Remote I/O error")  # what the kernel says when no chip answers


def open_ina219(config) -> INA219:
    """The configured INA219: the simulated chip when the kit simulates, else the I2C bus."""
    address = int(str(config["power.ina219_address"]), 0)
    empty_v, full_v = config["power.ina219_empty_volts"], config["power.ina219_full_volts"]
    if config.simulate:
        return INA219(SimulatedINA219Bus(address=address), address, empty_v, full_v)
    return INA219(open_smbus(config["power.i2c_bus"]), address, empty_v, full_v)
