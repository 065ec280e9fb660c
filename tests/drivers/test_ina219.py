"""INA219 register maths against the simulated chip, and a clear answer when there is no I2C bus."""

from __future__ import annotations

import pytest

from drivers.base import DeviceUnavailable
from drivers.ina219 import CALIBRATION_32V_2A, INA219, REG_CALIBRATION, SimulatedINA219Bus, open_smbus


def test_reads_volts_and_signed_current():
    chip = SimulatedINA219Bus(volts=7.62, amps=-0.4321)
    reading = INA219(chip, 0x42, empty_v=6.0, full_v=8.4).read()
    assert reading["battery_v"] == 7.62
    assert reading["battery_a"] == pytest.approx(-0.4321, abs=1e-4)
    assert reading["battery_w"] == pytest.approx(7.62 * -0.4321, abs=0.01)
    assert reading["soc_percent"] == pytest.approx(67.5, abs=0.1)


def test_calibration_is_rewritten_before_every_read_so_a_brown_out_does_not_zero_the_current():
    chip = SimulatedINA219Bus(volts=8.0, amps=1.5)
    ina = INA219(chip)
    assert ina.read()["battery_a"] == pytest.approx(1.5)
    chip.brown_out()
    assert ina.read()["battery_a"] == pytest.approx(1.5)
    assert chip.registers[REG_CALIBRATION] == CALIBRATION_32V_2A


def test_a_chip_that_does_not_answer_is_device_unavailable():
    with pytest.raises(DeviceUnavailable, match="0x43"):
        INA219(SimulatedINA219Bus(address=0x42), address=0x43).read()


def test_a_missing_i2c_bus_is_a_clear_error():
    with pytest.raises(DeviceUnavailable, match="/dev/i2c-97"):
        open_smbus(97)
